"""Reproduce the README results table: train per objective and seed, sample, evaluate, aggregate.

Protocol: for each objective (none = λ 1, i.e. no RL; qed / sa / logp = RL on that normalised
score with the default λ) and each seed, train with the given preset, sample ``--samples``
molecules with sampling seed 10_000 + seed, and evaluate against the QM9 train split (novelty) and
the QM9 test split (FCD, fcd_torch). Writes ``<out>/results.json`` and ``<out>/results.md``
(mean ± std over seeds). Finished runs are reused, so an interrupted reproduction continues.

    python scripts/reproduce.py                                  # 4 objectives × 3 seeds, 30 epochs
    python scripts/reproduce.py --objectives none qed --seeds 0 --epochs 5 --device cuda
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import math
import statistics
import sys
import time
from pathlib import Path

import molgan
from molgan import metrics
from molgan.config import make_config
from molgan.data import resolve_path
from molgan.models import resolve_device

train_module = importlib.import_module("molgan.train")

COLUMNS = ("valid", "valid_lenient", "unique", "novel", "qed", "sa", "logp", "fcd")
PAPER = {  # spec §1: Table 3 (valid/unique/novel) and Table 2 "MolGAN (QM9)" rows
    "paper, Table 3 (objective unknown)": {"valid": 98.1, "unique": 10.4, "novel": 94.2},
    "paper, QED, QM9": {"valid": 100.0, "unique": 2.2, "qed": 0.62, "sa": 0.59, "logp": 0.53},
    "paper, SA, QM9": {"valid": 100.0, "unique": 2.1, "qed": 0.53, "sa": 0.95, "logp": 0.68},
    "paper, logP, QM9": {"valid": 99.8, "unique": 2.0, "qed": 0.44, "sa": 0.22, "logp": 0.89},
}


def run_one(objective: str, seed: int, args, data) -> dict | None:
    name = f"{objective}-seed{seed}"
    done_file = Path(args.out) / "runs" / name / "result.json"
    if done_file.is_file():
        return json.loads(done_file.read_text())
    if args.aggregate_only:
        return None
    overrides = dict(
        seed=seed,
        name=name,
        out_dir=str(Path(args.out) / "runs"),
        progress=False,
        device=args.device,
    )
    if args.epochs:
        overrides["epochs"] = args.epochs
    if objective == "none":
        overrides["lam"] = 1.0
    else:
        overrides["reward"] = objective
    cfg = make_config(args.preset, **overrides)
    run_dir = Path(cfg.out_dir) / cfg.run_name
    log = run_dir / "log.jsonl"
    last = json.loads(log.read_text().splitlines()[-1]) if log.is_file() else {}
    total_reached = last.get("step") == cfg.max_steps if cfg.max_steps else False
    if last and (total_reached or last.get("epoch", 0) >= cfg.epochs - 1e-6):
        # A completed training run (e.g. copied in): evaluate it, do not retrain.
        model = molgan.load(run_dir / "ckpt.pt", device=resolve_device(cfg.device))
        minutes = last["time/elapsed_s"] / 60
    else:
        start = time.monotonic()
        model = molgan.train(dataclasses.replace(cfg, resume=(run_dir / "ckpt.pt").is_file()))
        minutes = (time.monotonic() - start) / 60
    smiles = model.sample(args.samples, seed=10_000 + seed, strict=False)
    result = metrics.evaluate(
        smiles,
        data.smiles_of("train"),
        train_is_canonical=True,
        fcd_reference=None if args.no_fcd else data.smiles_of("test"),
    )
    result |= {
        "minutes": minutes,
        "device": str(model.device),
        "objective": objective,
        "seed": seed,
    }
    done_file.write_text(json.dumps(result, indent=2))
    return result


def _cell(values: list[float], percent: bool, digits: int | None = None) -> str:
    values = [v for v in values if v is not None and not math.isnan(v)]
    if not values:
        return "n/a"
    scale = 100 if percent else 1
    mean = statistics.fmean(values) * scale
    digits = digits if digits is not None else (1 if percent else 3)
    if len(values) == 1:
        return f"{mean:.{digits}f}"
    std = statistics.stdev(values) * scale
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def table(results: list[dict], reference: dict | None) -> str:
    head = "| run | " + " | ".join(COLUMNS) + " | train min | device |"
    lines = [head, "|" + "---|" * (len(COLUMNS) + 3)]
    for objective in dict.fromkeys(r["objective"] for r in results):
        rows = [r for r in results if r["objective"] == objective]
        cells = [_cell([r.get(c, math.nan) for r in rows], c in metrics.PERCENT) for c in COLUMNS]
        label = "no RL (λ=1)" if objective == "none" else f"RL on {objective}"
        lines.append(
            f"| molgan, {label}, {len(rows)} seeds | "
            + " | ".join(cells)
            + f" | {_cell([r['minutes'] for r in rows], False, 1)} | {rows[0]['device']} |"
        )
    for label, row in PAPER.items():
        cells = [
            f"{row[c]:.1f}"
            if c in metrics.PERCENT and c in row
            else (f"{row[c]:.2f}" if c in row else "—")
            for c in COLUMNS
        ]
        lines.append(f"| {label} | " + " | ".join(cells) + " | — | — |")
    if reference:
        cells = [_cell([reference.get(c, math.nan)], c in metrics.PERCENT) for c in COLUMNS]
        lines.append(
            "| QM9 test split vs train (FCD: val split) | " + " | ".join(cells) + " | — | — |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument(
        "--objectives",
        nargs="+",
        default=["none", "qed", "sa", "logp"],
        help="table rows: 'none' = no RL (λ 1); a reward name = RL on it with the preset's λ",
    )
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2], help="training seeds")
    parser.add_argument("--preset", default="paper", help="settings every run starts from")
    parser.add_argument(
        "--epochs", type=float, default=0, help="override the preset's epochs (0 = keep them)"
    )
    parser.add_argument(
        "--samples", type=int, default=10_000, help="molecules sampled per run for the table"
    )
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--no-fcd", action="store_true", help="skip FCD (needs fcd_torch)")
    parser.add_argument(
        "--out", default="results", help="folder for results.{md,json} and the runs/ it trains"
    )
    parser.add_argument(
        "--aggregate-only",
        action="store_true",
        help="train nothing; tabulate the runs that have finished",
    )
    args = parser.parse_args(argv)
    from molgan.data import load_dataset

    try:
        data = load_dataset(resolve_path(make_config(args.preset).data))
        results = [run_one(o, s, args, data) for o in args.objectives for s in args.seeds]
        results = [r for r in results if r is not None]
        if not results:
            raise ValueError("no finished run to aggregate")
        reference = None
        if args.preset == "paper":
            splits = (data.smiles_of(k) for k in ("train", "val", "test"))
            reference = metrics.reference_row(*splits, with_fcd=not args.no_fcd)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    from molgan import fcd

    text = table(results, reference)
    seeds = sorted({r["seed"] for r in results})
    protocol = (
        f"{args.samples} samples per run, seeds {seeds}, preset {args.preset}"
        f"{f', {args.epochs} epochs' if args.epochs else ''}; valid = strict (one "
        f"fragment), valid_lenient = sanitisable; fractions in %; QED/SA/logP = mean "
        f"normalised score over valid molecules; FCD vs the QM9 test split with "
        f"{fcd.version()}; novelty vs the QM9 train split."
    )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(
        json.dumps({"protocol": protocol, "runs": results, "reference": reference}, indent=2)
    )
    (out / "results.md").write_text(text + "\n\n" + protocol + "\n")
    print(text + "\n\n" + protocol)
    return 0


if __name__ == "__main__":
    sys.exit(main())
