"""Benchmark where time goes: training cycle, sampling, reward scoring, dense vs PyG conv.

Every figure is the median of ``--repeats`` timed runs after a warm-up, on the device named in
the table. Prints a markdown table (and ``--json FILE``). Takes ~3-4 minutes on 2 CPU cores.

    python scripts/benchmark.py [--device cuda] [--quick] [--json bench.json]
    python scripts/benchmark.py --only training --compile     # eager vs torch.compile
    python scripts/benchmark.py --only population --json pop.json   # member-steps/s by K
    python scripts/benchmark.py --against ../old-checkout --json cmp.json  # this tree vs another
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

from molgan import checkpoint, chem, rewards, rundir, steps
from molgan.data import load_dataset, one_hot
from molgan.layers import RelationalGraphConv
from molgan.models import MolGAN
from molgan.population import Population
from molgan.presets import make_config

SECTIONS = ("training", "population", "sizes", "threads", "sampling", "scores", "conv")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, repeats: int, device: torch.device, warmup: int = 1) -> float:
    """Median seconds of ``fn()`` over ``repeats`` runs."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def training_cycles(
    data,
    device,
    batch: int,
    reward: bool,
    cycles: int,
    memo: bool = True,
    compile: bool = False,
    members: int = 1,
    graphs: bool = False,
):
    """A callable running ``cycles`` full cycles (n_critic D steps, one G step, one V step with
    RDKit rewards) of a population of ``members`` (1 = a single run), and the number of steps
    it runs.

    Starts every member from the shipped pretrained model's first member, with its settings
    (the default preset), so that generated molecules are mostly valid and diverse (an
    untrained generator's garbage costs RDKit nothing; the shipped file holds no trained D or
    reward network, which costs the same untrained); members differ by their noise and real
    batches."""
    if checkpoint.PRETRAINED.is_file():
        model = checkpoint.load(member=0)
        cfg = checkpoint.config_from({"config": model.config})
    else:
        cfg = make_config("latent")
        torch.manual_seed(0)
        model = MolGAN.from_config(cfg)
    cfg = dataclasses.replace(
        cfg, batch_size=batch, lam=0.9 if reward else 1.0, members=members, member_settings={}
    )
    population = Population([model] * members).to(device)
    graphs = graphs and device.type == "cuda"
    opts = steps.make_optimizers(population, cfg, capturable=graphs)
    weights = steps.member_weights(cfg, members, device)
    train_set = set(data.smiles_of("train"))
    train_idx = data.split["train"]
    idx = torch.stack(
        [train_idx[(k * batch) % (len(train_idx) - batch) :][:batch] for k in range(members)]
    )
    real = one_hot(data.atoms[idx], data.bonds[idx])  # (K, B, ...)
    real = type(real)(real.x.to(device), real.adj.to(device))
    r_real = torch.rand(members, batch, 1, device=device)
    nets = steps.step_nets(population, compile)
    decoder = rewards.Decoder.for_population(members * batch) if reward else None
    if decoder is not None:
        decoder.__enter__()  # for the benchmark's life; its workers die with it

    run_d, run_g, run_v = steps.step_functions(population, nets, opts, cfg, weights, graphs)

    def run():
        for step in range(cycles * cfg.n_critic):
            run_d(real.x, real.adj)
            if step % cfg.n_critic == 0:
                _, fake = run_g[reward](real.x, real.adj, weights["lam"])  # G step + EMA
                if reward:
                    if not memo:  # "before": every generated molecule scored afresh
                        rewards._MEMO["qed"].clear()
                    r_fake = steps.fake_rewards(fake[2], fake[3], cfg, train_set, decoder=decoder)
                    run_v(real.x, real.adj, r_real, fake[0], fake[1], r_fake.to(device))

    return run, cycles * cfg.n_critic


def bench_population(
    data, device, batch: int, members, reward: bool, cycles: int, repeats: int, graphs: bool
):
    """Member-steps/s of populations of each size in ``members`` (1 = a single run), timed
    alternately (size after size, ``repeats`` rounds) so that drift hits every size alike;
    ``graphs``: steps recorded in CUDA graphs (on CUDA)."""
    runs = {
        k: training_cycles(data, device, batch, reward, cycles, members=k, graphs=graphs)
        for k in members
    }
    for run, _ in runs.values():  # record the graphs (after their eager warm-up) untimed
        for _ in range(4 if graphs and device.type == "cuda" else 0):
            run()
    times = {k: [] for k in members}
    for _ in range(repeats):
        for k, (run, _) in runs.items():
            times[k].append(timed(run, 1, device))
    return {k: k * runs[k][1] / statistics.median(v) for k, v in times.items()}


def bench_training(data, device, batch: int, reward: bool, cycles: int, repeats: int, memo=True):
    """Steps/s and real molecules/s of full training cycles."""
    run, steps = training_cycles(data, device, batch, reward, cycles, memo)
    seconds = timed(run, repeats, device)
    return steps / seconds, steps * batch / seconds


def bench_compile(data, device, batch: int, cycles: int, repeats: int):
    """Eager vs torch.compile'd cycles (reward off), timed alternately so that drift in the
    machine's speed hits both: (eager steps/s, compiled steps/s, median per-pair speed-up)."""
    eager, steps = training_cycles(data, device, batch, False, cycles)
    compiled, _ = training_cycles(data, device, batch, False, cycles, compile=True)
    compiled()  # compilation, outside the timing
    pairs = [(timed(eager, 1, device), timed(compiled, 1, device)) for _ in range(repeats)]
    t_eager = statistics.median(e for e, _ in pairs)
    t_compiled = statistics.median(c for _, c in pairs)
    return steps / t_eager, steps / t_compiled, statistics.median(e / c for e, c in pairs)


def _burn(seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass


def bench_threads(data, device, batch: int, cycles: int, repeats: int, counts, load: bool):
    """Steps/s of training cycles (QED reward, memoised) per torch thread count, timed
    alternately (count after count, ``repeats`` rounds) so that drift hits every count alike.
    With ``load`` a busy process runs beside the timing, as another run or job would."""
    import multiprocessing

    run, steps = training_cycles(data, device, batch, True, cycles)
    before = torch.get_num_threads()
    burner = None
    if load:
        burner = multiprocessing.get_context("spawn").Process(target=_burn, args=(3600.0,))
        burner.start()
    try:
        times = {k: [] for k in counts}
        for _ in range(repeats):
            for k in counts:
                torch.set_num_threads(k)
                times[k].append(timed(run, 1, device))
    finally:
        torch.set_num_threads(before)
        if burner is not None:
            burner.kill()
            burner.join()
    return {k: steps / statistics.median(v) for k, v in times.items()}


def bench_sampling(device, n: int, repeats: int):
    torch.manual_seed(0)
    model = MolGAN.from_config(make_config("paper")).to(device)
    graphs = timed(
        lambda: model.sample_graphs(n, generator=torch.Generator().manual_seed(0)), repeats, device
    )
    smiles = timed(lambda: model.sample(n, seed=0), repeats, device)
    return n / graphs, n / smiles


def bench_scores(smiles: list[str], workers: int):
    """Molecules/s per raw score: cold (memo cleared) and memoised."""
    out = {}
    rewards._compute((["CCO"], rewards.RAW_SCORES))  # load the SA/NP models outside the timing
    for name in rewards.RAW_SCORES:
        rewards._MEMO[name].clear()
        start = time.perf_counter()
        rewards.raw_scores(smiles, [name], workers=workers)
        cold = len(smiles) / (time.perf_counter() - start)
        start = time.perf_counter()
        rewards.raw_scores(smiles, [name], workers=workers)
        out[name] = (cold, len(smiles) / (time.perf_counter() - start))
    return out


def bench_conv(device, batch: int, repeats: int):
    """Forward+backward time of our dense conv vs torch_geometric RGCNConv on the same graphs."""
    from torch_geometric.nn import RGCNConv

    data = load_dataset(verbose=False)
    bonds = data.bonds[:batch].long()
    adj = torch.nn.functional.one_hot(bonds, len(chem.BOND_TYPES)).float().to(device)
    h = torch.randn(batch, 9, 64, device=device, requires_grad=True)
    ours = RelationalGraphConv(64, 64, len(chem.BOND_TYPES)).to(device)
    theirs = RGCNConv(64, 64, len(chem.BOND_TYPES) - 1, aggr="add").to(device)
    b, i, j = torch.nonzero(bonds, as_tuple=True)
    edge_index = torch.stack([b * 9 + j, b * 9 + i]).to(device)
    edge_type = (bonds[b, i, j] - 1).to(device)
    flat = h.detach().reshape(-1, 64).requires_grad_(True)

    def dense():
        ours(h, adj).sum().backward()

    def sparse():
        theirs(flat, edge_index, edge_type).sum().backward()

    return timed(dense, repeats, device, 3), timed(sparse, repeats, device, 3)


def bench_conv_order(data, device, members: int, repeats: int, calls: int = 10) -> float:
    """Speed-up of a whole D step (GP included) from the first R-GCN layer aggregating its
    inputs before mapping them (``RelationalGraphConv.aggregate_first``), paired runs."""
    cfg = dataclasses.replace(make_config("latent", lam=1.0), members=members)
    torch.manual_seed(0)
    population = Population([MolGAN.from_config(cfg) for _ in range(members)]).to(device)
    opts = steps.make_optimizers(population, cfg)
    nets = steps.step_nets(population)
    weights = steps.member_weights(cfg, members, device)
    idx = torch.randint(0, len(data.smiles), (members, 32))
    real = one_hot(data.atoms[idx].to(device), data.bonds[idx].to(device))
    convs = [m for m in population.modules() if isinstance(m, RelationalGraphConv)]

    def run(first: bool):
        def go():
            for conv in convs:
                conv.aggregate_first = first and conv.in_dim < conv.out_dim
            for _ in range(calls):
                steps.d_step(nets, opts["d"], real, cfg, weights)

        return go

    ratios = [
        timed(run(False), 1, device) / timed(run(True), 1, device) for _ in range(2 * repeats + 1)
    ]
    return statistics.median(ratios)


def size_cycles(n: int, batch: int, cycles: int, device, members: int = 1):
    """A callable running ``cycles`` reward-off training cycles (n_critic D steps, one G step)
    at ``max_atoms`` N on random graphs (the default preset's nets; the cost depends on N, not
    on chemistry), and the number of steps it runs (as ``training_cycles``: per member)."""
    torch.manual_seed(0)
    k = members
    cfg = make_config("latent", max_atoms=n, batch_size=batch, lam=1.0, members=k)
    population = Population([MolGAN.from_config(cfg) for _ in range(k)]).to(device)
    opts = steps.make_optimizers(population, cfg)
    weights = steps.member_weights(cfg, k, device)
    nets = steps.step_nets(population)
    atoms = torch.randint(1, 5, (k, batch, n))  # random heavy atoms, a random bond pattern
    bonds = torch.randint(0, 4, (k, batch, n, n)).triu(1)
    real = one_hot(atoms, bonds + bonds.transpose(-1, -2))
    real = type(real)(real.x.to(device), real.adj.to(device))
    run_d, run_g, _ = steps.step_functions(population, nets, opts, cfg, weights, False)

    def run():
        for step in range(cycles * cfg.n_critic):
            run_d(real.x, real.adj)
            if step % cfg.n_critic == 0:
                run_g[False](real.x, real.adj, weights["lam"])

    return run, cycles * cfg.n_critic


def _size_child(args: tuple) -> tuple[float, float]:
    """In a fresh process: steps/s of reward-off training cycles at ``max_atoms`` N, and the
    process's peak resident memory (MB) after them."""
    import resource

    n, batch, cycles, threads, device, k = args
    torch.set_num_threads(threads)
    device = torch.device(device)
    run, steps_run = size_cycles(n, batch, cycles, device, k)
    run()  # warm-up
    seconds = timed(run, 3, device)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated(device) / 2**20
    return steps_run * k / seconds, peak


def bench_sizes(sizes, batch: int, cycles: int, threads: int, device, members=(1,)) -> dict:
    """Member-steps/s and peak memory of training (default preset's nets, reward off) per
    graph size N and population size K, each (N, K) in its own spawned process so that peaks
    do not mix."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    out = {}
    for n in sizes:
        for k in members:
            with context.Pool(1) as pool:
                job = (n, batch, cycles, threads, str(device), k)
                out[n, k] = pool.apply(_size_child, (job,))
    return out


# A worker process inside one checkout: that checkout's own benchmark and molgan build the
# default preset's training cycle (1 thread, batch 32) for each (N, members, reward) row (N 9:
# QM9 with its rewards; other N: random graphs, reward off); each line "row index" on stdin
# runs that row once and answers its seconds.
_CHILD = """
import importlib.util, json, sys, time, torch
torch.set_num_threads(1)
spec = importlib.util.spec_from_file_location("bench", "scripts/benchmark.py")
bench = importlib.util.module_from_spec(spec); spec.loader.exec_module(bench)
from molgan.data import load_dataset
data, cpu, rows = load_dataset(verbose=False), torch.device("cpu"), json.loads(sys.argv[1])
cycles = int(sys.argv[2])
runs = [
    bench.training_cycles(data, cpu, 32, r, cycles, members=k) if n == 9
    else bench.size_cycles(n, 32, max(1, cycles // 4), cpu, k)
    for n, k, r in rows
]
for run, _ in runs:
    run()  # warm-up
print(json.dumps([k * steps for (_, k, _), (_, steps) in zip(rows, runs)]), flush=True)
for line in sys.stdin:
    start = time.perf_counter()
    runs[int(line)][0]()
    print(time.perf_counter() - start, flush=True)
"""
COMPARE_ROWS = (
    (9, 1, False),
    (9, 1, True),
    (9, 8, False),
    (9, 8, True),
    (27, 1, False),
    (27, 3, False),
)


def bench_against(other: str, cycles: int, repeats: int) -> dict[tuple[int, bool], dict]:
    """This checkout against the checkout ``other`` (e.g. a worktree of an earlier commit) on
    the rows of ``COMPARE_ROWS``: one worker process per checkout, and ``repeats`` rounds in
    which each row runs in both, back to back (which goes first alternates), so that each pair
    of timings sees the same machine; a shared machine's drift cancels in the pair's ratio.
    Returns {(N, members, reward): {"this", "other": median member-steps/s, "ratio": median of
    the pairs' ratios}}."""
    import json
    import subprocess
    from pathlib import Path

    trees = {"this": Path(__file__).resolve().parents[1], "other": Path(other).resolve()}
    if not (trees["other"] / "molgan").is_dir():
        raise SystemExit(f"error: --against {other}: no molgan/ folder there")
    workers, steps = {}, {}
    for name, root in trees.items():
        env = {**os.environ, "PYTHONPATH": str(root)}
        args = [sys.executable, "-c", _CHILD, json.dumps(COMPARE_ROWS), str(cycles)]
        workers[name] = subprocess.Popen(
            args, cwd=root, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        line = workers[name].stdout.readline()
        if not line:
            raise SystemExit(f"error: the {name} checkout's worker failed to start")
        steps[name] = json.loads(line)

    def timed_in(name: str, row: int) -> float:
        workers[name].stdin.write(f"{row}\n")
        workers[name].stdin.flush()
        return float(workers[name].stdout.readline())

    rates = {name: [[] for _ in COMPARE_ROWS] for name in trees}
    ratios = [[] for _ in COMPARE_ROWS]
    try:
        for round_ in range(repeats):
            for row in range(len(COMPARE_ROWS)):
                order = ("this", "other") if (round_ + row) % 2 == 0 else ("other", "this")
                pair = {name: steps[name][row] / timed_in(name, row) for name in order}
                for name, rate in pair.items():
                    rates[name][row].append(rate)
                ratios[row].append(pair["this"] / pair["other"])
            print(f"  round {round_ + 1}/{repeats} done", file=sys.stderr)
    finally:
        for worker in workers.values():
            worker.stdin.close()
            worker.wait()
    return {
        key: {
            "this": statistics.median(rates["this"][row]),
            "other": statistics.median(rates["other"][row]),
            "ratio": statistics.median(ratios[row]),
            "ratio_range": (min(ratios[row]), max(ratios[row])),
        }
        for row, key in enumerate(COMPARE_ROWS)
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu / cuda")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per figure")
    parser.add_argument("--quick", action="store_true", help="smaller workloads (smoke test)")
    parser.add_argument("--json", help="also write the figures to this JSON file")
    parser.add_argument(
        "--only",
        nargs="+",
        choices=SECTIONS,
        default=SECTIONS,
        help="run only these sections (default: all)",
    )
    parser.add_argument(
        "--compile", action="store_true", help="add training rows with torch.compile'd networks"
    )
    parser.add_argument(
        "--threads", type=int, default=0, help="torch threads for all sections (0 = all cores)"
    )
    parser.add_argument(
        "--members", help="population sizes to time, e.g. 1,8,64 (default: 1 to 32; CUDA: 512)"
    )
    parser.add_argument(
        "--cuda-graphs",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="population section on CUDA: steps recorded in CUDA graphs (as training does)",
    )
    parser.add_argument(
        "--against",
        metavar="DIR",
        help="only compare the default preset's training cycle (QM9: K 1 and 8, RL off and on; "
        "N 27: K 1 and 3, RL off; batch 32, 1 thread) of this checkout with the checkout in "
        "DIR, interleaved",
    )
    args = parser.parse_args(argv)
    if args.against:
        table = bench_against(args.against, 2 if args.quick else 20, args.repeats)
        print(
            f"\nmember-steps/s, 1 thread, batch 32, the default preset's cycle: medians of "
            f"{args.repeats} rounds; ratio = median of the back-to-back pairs' ratios\n"
        )
        print("| N | members | reward | this | other | ratio (range) |\n|---|---|---|---|---|---|")
        rows = []
        for (n, members, reward), r in table.items():
            low, high = r["ratio_range"]
            print(
                f"| {n} | {members} | {'qed' if reward else 'off'} | {r['this']:,.1f} | "
                f"{r['other']:,.1f} | {r['ratio']:.3f} ({low:.2f}-{high:.2f}) |"
            )
            rows.append({"max_atoms": n, "members": members, "reward": reward, **r})
        if args.json:
            import json

            Path(args.json).write_text(json.dumps({"against": args.against, "rows": rows}))
        return 0
    device = torch.device(args.device)
    torch.set_num_threads(args.threads or os.cpu_count() or 1)
    name = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else (
            f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
            f"torch {torch.__version__}, {torch.get_num_threads()} threads"
        )
    )
    data = load_dataset(verbose=False)
    cycles = 2 if args.quick else 20
    rows: list[tuple[str, str, float]] = []

    def add(what: str, unit: str, value: float) -> None:
        rows.append((what, unit, value))
        print(f"  {what}: {value:,.1f} {unit}", file=sys.stderr)

    for batch in (32, 128) if "training" in args.only else ():
        for reward, memo in ((False, True), (True, False), (True, True)):
            kind = "off" if not reward else ("qed, memoised" if memo else "qed, no memo")
            label = f"training cycle, batch {batch}, reward {kind}"
            steps, mols = bench_training(data, device, batch, reward, cycles, args.repeats, memo)
            add(label, "steps/s", steps)
            add(label, "real molecules/s", mols)
        if args.compile:
            eager, compiled, ratio = bench_compile(
                data, device, batch, cycles, 2 * args.repeats + 1
            )
            label = f"training cycle, batch {batch}, reward off"
            add(f"{label}, eager (paired with the next row)", "steps/s", eager)
            add(f"{label}, torch.compile", "steps/s", compiled)
            add(f"{label}, torch.compile speed-up (median of paired runs)", "ratio", ratio)
    if "population" in args.only:
        sizes = [int(k) for k in args.members.split(",")] if args.members else None
        if sizes is None:
            top = 512 if device.type == "cuda" else 32
            sizes = [k for k in (1, 2, 4, 8, 16, 32, 64, 128, 256, 512) if k <= top]
        graphs = args.cuda_graphs and device.type == "cuda"
        for reward in (False, True):
            speeds = bench_population(
                data, device, 32, sizes, reward, 1 if args.quick else 4, args.repeats, graphs
            )
            for k, value in speeds.items():
                what = "a single run" if k == 1 else f"a population of {k}"
                how = ", CUDA graphs" if graphs else (", eager" if device.type == "cuda" else "")
                kind = "qed" if reward else "off"
                add(f"{what}, batch 32, reward {kind}{how}", "member-steps/s", value)
    if "threads" in args.only:
        counts = sorted({1, 2, os.cpu_count() or 1})
        for load in (False, True):
            for batch in (32, 128):
                speeds = bench_threads(data, device, batch, cycles, args.repeats, counts, load)
                for k, value in speeds.items():
                    where = "beside a busy process" if load else "idle machine"
                    add(
                        f"training cycle, batch {batch}, QED, {k} thread(s), {where}",
                        "steps/s",
                        value,
                    )
    if "sizes" in args.only:
        threads = torch.get_num_threads()
        where = "GPU memory" if device.type == "cuda" else "peak process RSS"
        ks = [int(k) for k in args.members.split(",")] if args.members else [1, 4]
        for (n, k), (speed, peak) in bench_sizes(
            (9, 27, 38), 32, 1 if args.quick else 4, threads, device, ks
        ).items():
            what = f"training, N = {n} atoms, K = {k}, batch 32, reward off"
            add(what, "member-steps/s", speed)
            add(f"{what}, {where}", "MB", peak)
    if "sampling" in args.only:
        n = 1000 if args.quick else 10_000
        graphs, smiles = bench_sampling(device, n, args.repeats)
        add(f"sampling {n} graphs (generator + Gumbel-argmax)", "graphs/s", graphs)
        add(f"sampling {n} SMILES (incl. RDKit decoding)", "SMILES/s", smiles)
    if "scores" in args.only:
        pool = data.smiles_of("test")[: 600 if args.quick else 4000]
        for workers in sorted({1, os.cpu_count() or 1}):
            for score, (cold, warm) in bench_scores(pool, workers).items():
                add(f"score {score}, {workers} process(es), cold", "molecules/s", cold)
                add(f"score {score}, {workers} process(es), memoised", "molecules/s", warm)
    if "conv" in args.only:
        dense, sparse = bench_conv(device, 128, 20 if not args.quick else 5)
        add("relational conv fwd+bwd, batch 128: dense (ours)", "ms", 1000 * dense)
        add("relational conv fwd+bwd, batch 128: PyG RGCNConv", "ms", 1000 * sparse)
        add("RGCNConv time / dense time", "ratio", sparse / dense)
        for k in (1, 8):
            ratio = bench_conv_order(data, device, k, args.repeats, 3 if args.quick else 10)
            add(
                f"D step (GP incl.), K = {k}, batch 32: first R-GCN layer aggregating "
                "inputs first, speed-up (median of paired runs)",
                "ratio",
                ratio,
            )

    print(f"\nDevice: {name}; medians of {args.repeats} runs\n")
    print("| what | value | unit |\n|---|---:|---|")
    for what, unit, value in rows:
        print(
            f"| {what} | {value:,.1f} | {unit} |"
            if value >= 10
            else f"| {what} | {value:.2f} | {unit} |"
        )
    if args.json:
        table = {"device": name, "rows": [dict(what=w, unit=u, value=v) for w, u, v in rows]}
        return rundir.save_json(args.json, table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
