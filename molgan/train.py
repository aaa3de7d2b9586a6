"""The MolGAN training loop: WGAN-GP discriminator steps, generator steps mixing WGAN and RL, and
reward-net regression onto RDKit rewards (paper Algorithm 1; no replay buffer, no target nets).

Schedule: a discriminator step every step; every ``n_critic``-th step also a generator step and,
when λ < 1, a reward-net step. The generator is WGAN-only for the first ``rl_start`` of training
(the paper's warm-up) while the reward net already learns. Deviation from the official code:
there λ is forced to 1 only in epoch 0 and the schedule is 4 D steps : 1 G step. The updates
themselves are in ``molgan.steps``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import random
import signal
import sys
import threading
import time
from collections.abc import Callable, Collection
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from molgan import batches, checkpoint, conditioning, metrics, monitor, rewards, rundir
from molgan.config import Config
from molgan.data import dataset_of, dataset_rewards, one_hot
from molgan.models import MolGAN, resolve_device
from molgan.monitor import TrainingError  # noqa: F401  (raised here through monitor.finite)
from molgan.population import Freezer, Population
from molgan.steps import fake_rewards, make_optimizers, member_weights, step_functions, step_nets

# After each evaluation: callback(step, metrics) -> a reason to stop (str or True), or None.
Callback = Callable[[int, dict], "str | bool | None"]
SMALL_DATA = 1000  # training molecules below which a notice is printed


class Interrupted(RuntimeError):
    """SIGINT/SIGTERM during training: a checkpoint of the current step was written."""

    def __init__(self, message: str, step: int, signal_name: str = "SIGINT"):
        super().__init__(message)
        self.step, self.signal_name = step, signal_name

    @property
    def exit_code(self) -> int:
        """The shell's code for a process ended by this signal: 128 + its number."""
        return 128 + int(getattr(signal, self.signal_name, signal.SIGINT))


class _Signals:
    """Turns the first SIGINT/SIGTERM into a flag the loop checks after each step (a second
    one acts at once, as usual). Only in the main thread, where Python delivers signals."""

    def __init__(self) -> None:
        self.received: str | None = None
        self._old: dict = {}

    def __enter__(self) -> _Signals:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                if signal.getsignal(sig) is signal.SIG_IGN:
                    continue  # e.g. SIGINT of a background job: it stays ignored
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        self.received = signal.Signals(signum).name
        for sig, old in self._old.items():
            signal.signal(sig, old)

    def __exit__(self, *exc) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (CUDA included): the one place global RNGs are seeded."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def evaluate_model(
    model: MolGAN, cfg: Config, train: set[str], step: int, fcd_reference=None, member: int = 0
) -> dict[str, float]:
    """Sample ``eval_samples`` molecules (fixed seed: the member's seed + 1) and score them with
    ``molgan.metrics`` (collapse measures against ``train``; FCD against ``fcd_reference``)."""
    smiles = model.sample(cfg.eval_samples, seed=cfg.member_seed(member) + 1)
    result = metrics.evaluate(smiles, train, train_is_canonical=True, fcd_reference=fcd_reference)
    return {f"score/{k}": v for k, v in result.items() if k != "n"}


def train(
    cfg: Config,
    *,
    explicit: Collection[str] | None = None,
    callback: Callback | None = None,
) -> MolGAN:
    """Train MolGAN; writes ``<out_dir>/<name>/{config.json, log.jsonl, ckpt.pt}``.

    Args:
        cfg: all settings. With ``cfg.resume`` the run directory's checkpoint is continued
            exactly (same data order and RNG stream) with the run's own settings; only the
            ``checkpoint.RUN_CONTROL`` settings in ``explicit`` may differ.
        explicit: the settings given explicitly (the command line's flags); ``None`` = those
            that differ from ``cfg.preset``'s values.
        callback: called after each evaluation, once its checkpoint is written, with
            ``(step, metrics)``; a true return value (a reason string, or ``True``) stops the run.
            In a population: once per running member, ``(step, metrics, member=k)``, before the
            checkpoint, and a true value stops (freezes) that member.

    Returns:
        The trained model (in eval mode).

    Raises:
        ValueError: bad data or settings, or a run directory that is not empty (without
            resume). TrainingError: a loss became NaN/inf. Interrupted: SIGINT/SIGTERM, after a
            checkpoint of the current step was written.
    """
    run_dir = Path(cfg.out_dir) / cfg.run_name
    ckpt_path = run_dir / rundir.CKPT
    if cfg.resume and not ckpt_path.is_file():
        raise ValueError(f"nothing to resume: {ckpt_path} does not exist")
    if not cfg.resume:  # a bad value fails now, before the folder or the data are looked at
        rewards.parse_reward(cfg.reward)
        if cfg.best_metric:
            metrics.check_metric(cfg.best_metric)
        rundir.check_new(run_dir)
    with rundir.hold(run_dir):  # one process per run folder, for the run's life
        blob, changes = None, []
        if cfg.resume:
            blob = checkpoint.read(ckpt_path)
            cfg, changes = checkpoint.resume_config(blob, cfg, ckpt_path, explicit)
        else:
            rundir.check_new(run_dir)  # again, now that no other process can start in it
        rewards.parse_reward(cfg.reward)
        if cfg.best_metric:
            metrics.check_metric(cfg.best_metric)
        device = resolve_device(cfg.device)
        threads = torch.get_num_threads()
        torch.set_num_threads(cfg.threads or os.cpu_count() or 1)
        try:
            return _train(cfg, device, run_dir, blob, changes, callback)
        finally:
            torch.set_num_threads(threads)


def _train(cfg: Config, device, run_dir: Path, blob, changes: list[str], callback) -> MolGAN:
    ckpt_path = run_dir / rundir.CKPT
    K = cfg.members
    seed_everything(cfg.seed)
    vocab = blob.get("vocab", {}).get("atoms") if blob else None  # a resumed run keeps its own
    data = dataset_of(cfg, vocab)
    types = data.atom_types
    train_idx = data.split["train"]
    if cfg.batch_size > len(train_idx):
        raise ValueError(
            f"batch_size {cfg.batch_size} exceeds the {len(train_idx)} training molecules"
        )
    if len(train_idx) < SMALL_DATA:
        print(
            f"note: only {len(train_idx)} training molecules; MolGAN needs thousands to learn "
            "a distribution (QM9 has 104,130)",
            file=sys.stderr,
        )
    steps_per_epoch = max(len(train_idx) // cfg.batch_size, 1)
    total = cfg.max_steps or max(int(cfg.epochs * steps_per_epoch), 1)
    eval_every = cfg.eval_every or steps_per_epoch
    # The step RL starts at is fixed when a run starts: extending a resumed run keeps it.
    rl_from = int(blob.get("rl_from", cfg.rl_start * total)) if blob else int(cfg.rl_start * total)
    lams = cfg.member_values().get("lam", (cfg.lam,) * K)
    use_rl = min(lams) < 1.0
    train_set = set(data.smiles_of("train"))
    r_all = dataset_rewards(data, cfg.reward).to(device) if use_rl else None  # (M,)
    atoms_all, bonds_all = data.atoms.to(device), data.bonds.to(device)

    models = []
    for k in range(K):  # member k starts with the weights of a single run of its seed
        if k or cfg.member_seed(k) != cfg.seed:
            torch.manual_seed(cfg.member_seed(k))
        models.append(MolGAN.from_config(cfg, atom_types=data.atom_types))
    tilt = balance = None  # per training molecule: reward-tilted / class-balanced batches
    if cfg.reward_tilt:
        r_train = (r_all.cpu() if use_rl else dataset_rewards(data, cfg.reward))[train_idx]
        tilt = batches.tilt_weights(r_train, cfg.reward_tilt)
    if models[0].class_prior is not None:  # the class frequencies a conditional model samples
        models[0].class_prior.fit(data.atoms[train_idx], tilt)  # tilted ones, if tilted
        if cfg.condition_balance:
            T, power = len(models[0].atom_types), cfg.condition_balance
            balance = conditioning.balance_weights(data.atoms[train_idx], T, power)
    weights = batches.combine(tilt, balance)
    start, last_metrics, latest = 0, [{} for _ in range(K)], {}
    state = {"stopped": {}, "best": [{} for _ in range(K)]}  # member -> reason; best.pt records
    if blob is not None:
        for k, model in enumerate(models):
            checkpoint.load_weights(model, checkpoint.member_blob(blob, k, ckpt_path))
    population = Population(models).to(device)
    del models
    graphs = cfg.cuda_graphs and device.type == "cuda"
    graphs = graphs and not cfg.compile  # compiled nets run eagerly
    opts = make_optimizers(population, cfg, capturable=graphs)
    if blob is not None:
        start, stored = checkpoint.restore(blob, opts, device)
        last_metrics = stored.get("members", [stored]) if K > 1 else [stored]
        last_metrics = [
            {k: v for k, v in m.items() if k.startswith("score/")} for m in last_metrics
        ]
        latest = {k: torch.tensor(v) for k, v in blob.get("stats", {}).items()}
        state = _population_state(blob, K)
        asked = [c for c in changes if c.startswith(("max_steps ", "epochs "))]
        if asked and start >= total:
            raise ValueError(
                f"{ckpt_path} is at step {start}; {' and '.join(asked)} gives {total} steps, "
                f"nothing to train (ask for more than {start})"
            )
        dropped = rundir.truncate_log(run_dir / rundir.LOG, start)
        note = f"; {dropped} log rows after it dropped" if dropped else ""
        print(f"resuming {run_dir} at step {start}/{total}{note}", file=sys.stderr)
        for change in changes:
            print(f"  changed for this resume: {change}", file=sys.stderr)
    else:
        rundir.write_config(run_dir, dataclasses.asdict(cfg))
    freezer = Freezer(population)
    for k in state["stopped"]:
        freezer.freeze(int(k))
    saved = {"step": start if blob else None, "time": time.monotonic()}
    fcd_reference = data.smiles_of("val") if cfg.eval_fcd else None
    member_w = member_weights(cfg, K, device)
    lam_rl = member_w["lam"]  # (K,) λ after the warm-up
    lam_warm = torch.ones_like(lam_rl)  # WGAN only before it

    def save(step: int) -> None:
        extra = {
            "rng": checkpoint.rng_state(device),
            "stats": {k: _tolist(v) for k, v in latest.items()},
            "rl_from": rl_from,
            "best": state["best"][0] if K == 1 else state["best"],
            "stopped": {str(k): v for k, v in state["stopped"].items()},
        }
        metrics_blob = last_metrics[0] if K == 1 else {"members": last_metrics}
        checkpoint.save_population(ckpt_path, population, opts, step, metrics_blob, extra)
        saved["step"], saved["time"] = step, time.monotonic()

    def keep_best(k: int, step: int) -> None:
        """best.pt (member k of a population: best-member<k>.pt, a single model) = the
        checkpoint of the best evaluation by ``best_metric`` (written before ckpt.pt, so a kill
        between the two redoes the same comparison on resume)."""
        if not cfg.best_metric:
            return
        best = state["best"][k]
        sign = -1.0 if cfg.best_metric.startswith("-") else 1.0
        value = sign * metrics.metric_value(cfg.best_metric.lstrip("-"), last_metrics[k])
        if math.isfinite(value) and (not best or value > best["value"]):
            best.update(metric=cfg.best_metric, value=value, step=step)
            if K == 1:
                checkpoint.save_population(
                    run_dir / "best.pt", population, opts, step, last_metrics[0], {"best": best}
                )
            else:
                model = population.member(k)
                path = run_dir / f"best-member{k}.pt"
                checkpoint.save(path, model, None, step, last_metrics[k], {"best": best})

    def stop_member(k: int, reason: str, step: int) -> None:
        state["stopped"][k] = reason
        freezer.freeze(k)
        rundir.write_row(log, {"step": step, "event": "stop", "reason": reason, "member": k})
        emit(f"member {k}: {reason}")

    bar = None
    if cfg.progress and sys.stderr.isatty():
        from tqdm.auto import tqdm

        bar = tqdm(
            total=total, initial=start, desc=cfg.run_name, dynamic_ncols=True, file=sys.stderr
        )
    emit = bar.write if bar is not None else (lambda s: print(s, file=sys.stderr, flush=True))
    rl_text = (
        f"from step {rl_from}, λ={monitor.values_text(lams)}, reward {cfg.reward}"
        if use_rl
        else "off"
    )
    seeds = [cfg.member_seed(k) for k in range(K)]
    named = f"{seeds[0]}..{seeds[-1]}" if seeds == list(range(cfg.seed, cfg.seed + K)) else seeds
    who = f"{K} members (seeds {named}), " if K > 1 else ""
    print(
        f"run {run_dir}: {who}{total} steps ({steps_per_epoch}/epoch) on {device}, "
        f"{torch.get_num_threads()} thread(s); RL {rl_text}",
        file=sys.stderr,
    )
    t0, t_last, perm, perm_epoch = time.monotonic(), time.monotonic(), None, -1
    last_done = start
    nets = step_nets(population, cfg.compile)
    decoder = rewards.Decoder.for_population(K * cfg.batch_size) if use_rl else None
    run_d, run_g, run_v = step_functions(population, nets, opts, cfg, member_w, graphs)
    pending = None  # the V step of the last G step, not yet taken

    def settle(p: _Pending) -> dict:
        """The V step of a G step: RDKit rewards of its molecules, then V's update."""
        atoms, bonds = p.on_host()
        r_fake = fake_rewards(atoms, bonds, cfg, train_set, decoder, types)
        r_fake = r_fake.to(device)
        return run_v(p.real.x, p.real.adj, p.r_real, p.fake[0], p.fake[1], r_fake)

    population.train()
    with (
        _Signals() as signals,
        open(run_dir / rundir.LOG, "a") as log,
        decoder or contextlib.nullcontext(),
    ):
        if blob is not None:  # a resume leaves its mark (and what it changed) in the log
            mark = {"step": start, "event": "resume"} | ({"changes": changes} if changes else {})
            rundir.write_row(log, mark)
        for step in range(start, total):
            epoch, pos = divmod(step, steps_per_epoch)
            if epoch != perm_epoch:  # data order depends only on (seed, epoch): resumable
                perm = torch.stack(
                    [
                        batches.epoch_order(train_idx, weights, cfg.member_seed(k), epoch)
                        for k in range(K)
                    ]
                )  # (K, M)
                perm, perm_epoch = perm.to(device), epoch  # one copy per epoch, not per step
            idx = perm[:, pos * cfg.batch_size : (pos + 1) * cfg.batch_size]  # (K, B)
            real = one_hot(
                atoms_all[idx], bonds_all[idx], len(types)
            )  # x (K,B,N,T), adj (K,B,N,N,R)
            latest |= run_d(real.x, real.adj)
            if pending is not None:  # the last G step's V step, its RDKit work beside this D step
                latest |= settle(pending)
                pending = None
            if step % cfg.n_critic == 0:
                rl_now = use_rl and step >= rl_from
                lam = lam_rl if rl_now else lam_warm
                g_stats, fake = run_g[rl_now](real.x, real.adj, lam)  # G step, then its EMA
                latest |= g_stats
                if use_rl:  # V learns from G's molecules: at the next step, or before any report
                    pending = _Pending.start(real, r_all[idx][..., None], fake)
            freezer.restore()  # stopped members stay where they stopped
            done = step + 1
            reports = done % cfg.log_every == 0 or done % eval_every == 0 or done == total
            now = time.monotonic()  # one clock reading for every decision of this step
            due = cfg.ckpt_minutes and now - saved["time"] >= 60 * cfg.ckpt_minutes
            if pending is not None and (reports or signals.received or due):
                latest |= settle(pending)
                pending = None
                freezer.restore()
            if bar is not None:
                bar.update(1)
            reason = ""
            if reports:
                values = monitor.per_member(latest, K)
                for k in monitor.diverged(values, state["stopped"]):
                    if K == 1:
                        monitor.finite(values[0], done, saved["step"], ckpt_path)  # raises
                    stop_member(k, f"stopped: {monitor.nonfinite(values[k])} at step {done}", done)
                if len(state["stopped"]) == K and all(
                    "non-finite" in r for r in state["stopped"].values()
                ):
                    # every member diverged
                    monitor.finite(values[0], done, saved["step"], ckpt_path)
                common = {
                    "step": done,
                    "epoch": done / steps_per_epoch,
                    "time/it_per_s": (done - last_done) / max(now - t_last, 1e-9),
                    "time/elapsed_s": now - t0,
                    "time/eta_s": (now - t0) / max(done - start, 1) * (total - done),
                }
                t_last, last_done = now, done
                timed_out = cfg.time_limit and (now - t0) / 60 >= cfg.time_limit
                evaluated = done % eval_every == 0 or done == total or timed_out
                rows = []
                for k in range(K):
                    if k in state["stopped"]:
                        continue
                    row = values[k] | common | ({"member": k} if K > 1 else {})
                    if evaluated:
                        model = population.member(k)
                        last_metrics[k] = evaluate_model(
                            model, cfg, train_set, done, fcd_reference, k
                        )
                        row |= last_metrics[k]
                    rows.append(row)
                    rundir.write_row(
                        log, row
                    )  # before the checkpoint: a kill between loses nothing
                if evaluated:
                    for k in range(K):
                        if k not in state["stopped"]:
                            keep_best(k, done)
                    for k in range(K) if callback is not None and K > 1 else ():
                        asked = k not in state["stopped"] and callback(
                            done, dict(last_metrics[k]), member=k
                        )
                        if asked:
                            why = asked if isinstance(asked, str) else "stopped by callback"
                            stop_member(k, why, done)
                    save(done)
                    if callback is not None and K == 1:
                        asked = callback(done, dict(last_metrics[0]))
                        if asked:
                            reason = asked if isinstance(asked, str) else "stopped by callback"
                line = monitor.progress_line(rows, K)
                if bar is not None:
                    bar.set_postfix_str(line.split(" | ", 1)[1][:80])
                if done % cfg.log_every == 0 or evaluated:
                    emit(line)
                for row in rows:
                    k = row.get("member", 0)
                    why = monitor.stop_reason(cfg, row, last_metrics[k], False, done, rl_from)
                    if why and K > 1 and k not in state["stopped"]:
                        stop_member(k, why, done)
                    elif why:
                        reason = reason or why
                if K > 1 and len(state["stopped"]) == K:
                    reason = reason or "every member stopped"
                if timed_out:
                    reason = reason or f"time limit of {cfg.time_limit} min reached at step {done}"
                if reason:
                    rundir.write_row(log, {"step": done, "event": "stop", "reason": reason})
                    emit(reason)
                    break
            elif cfg.ckpt_minutes and now - saved["time"] >= 60 * cfg.ckpt_minutes:
                monitor.check_finite(latest, K, done, saved["step"], ckpt_path, state["stopped"])
                save(done)
            if signals.received:
                monitor.check_finite(latest, K, done, saved["step"], ckpt_path, state["stopped"])
                if saved["step"] != done:
                    save(done)
                if bar is not None:
                    bar.close()
                raise Interrupted(
                    f"{signals.received} at step {done}/{total}: checkpoint written to "
                    f"{ckpt_path}; continue with --name {cfg.run_name} --resume",
                    done,
                    signals.received,
                )
    if bar is not None:
        bar.close()
    print(f"done: {run_dir}", file=sys.stderr)
    if K == 1:
        return population.member(0).eval()
    return population.eval()


class _Pending(NamedTuple):
    """A G step's output waiting for its V step. The V step may come one D step later with the
    same result (D steps neither read nor write V, nor draw its randomness), which on CUDA lets
    the host decode and score the molecules while the GPU runs that D step: the graphs are
    copied to pinned host memory right after the G step, and only that copy is waited for."""

    real: object  # the real batch of the G step, x (K, B, N, T), adj (K, B, N, N, R)
    r_real: torch.Tensor  # (K, B, 1)
    fake: tuple  # g_step's (x, adj, atoms, bonds)
    host: tuple | None  # pinned copies of atoms (K, B, N), bonds (K, B, N, N), and their event

    @classmethod
    def start(cls, real, r_real: torch.Tensor, fake: tuple) -> _Pending:
        atoms, bonds = fake[2], fake[3]
        if atoms.device.type != "cuda":
            return cls(real, r_real, fake, None)
        copies = []
        for t in (atoms, bonds):
            copy = torch.empty(t.shape, dtype=t.dtype, pin_memory=True)
            copies.append(copy.copy_(t, non_blocking=True))
        event = torch.cuda.Event()
        event.record()
        return cls(real, r_real, fake, (*copies, event))

    def on_host(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self.host is None:
            return self.fake[2], self.fake[3]
        self.host[2].synchronize()
        return self.host[0], self.host[1]


def _population_state(blob: dict, K: int) -> dict:
    """The per-member bookkeeping of a training checkpoint: stopped members and best.pt
    records (a single run's checkpoint holds one best record)."""
    best = blob.get("best", {})
    best = [dict(best)] if K == 1 else [dict(b) for b in best] or [{} for _ in range(K)]
    stopped = {int(k): v for k, v in blob.get("stopped", {}).items()}
    return {"stopped": stopped, "best": best}


def _tolist(value) -> float | list[float]:
    """A statistic for the checkpoint: a float for one member, else one per member."""
    values = torch.as_tensor(value).detach().float().cpu().flatten().tolist()
    return values[0] if len(values) == 1 else values
