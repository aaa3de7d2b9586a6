"""Reproduce the README results table: train per objective and seed, sample, evaluate, aggregate.

Protocol: for each objective (none = λ 1, i.e. no RL; qed / sa / logp = RL on that normalised
score with the default λ) and each seed, train with the given preset, sample ``--samples``
molecules with sampling seed 10_000 + seed, and evaluate against the QM9 train split (novelty) and
the QM9 test split (FCD, fcd_torch). Writes ``<out>/results.json`` and ``<out>/results.md``
(mean ± std over seeds). The runs are a ``molgan.sweep`` study in ``<out>/study/``: finished
runs are reused, interrupted ones resume from their checkpoints, ``--workers 2`` trains two at
a time (one thread each).

    python tools/reproduce.py --workers 2                      # 4 objectives × 3 seeds, 30 epochs
    python tools/reproduce.py --objectives none qed --seeds 0 --epochs 5 --device cuda
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import statistics
import sys
from pathlib import Path

from molgan import metrics
from molgan.cli import HelpFormatter
from molgan.data import resolve_path
from molgan.models import resolve_device
from molgan.presets import make_config

train_module = importlib.import_module("molgan.train")

COLUMNS = ("valid", "valid_lenient", "unique", "novel", "qed", "sa", "logp", "fcd")
PAPER = {  # spec §1: Table 3 (valid/unique/novel) and Table 2 "MolGAN (QM9)" rows
    "paper, Table 3 (objective unknown)": {"valid": 98.1, "unique": 10.4, "novel": 94.2},
    "paper, QED, QM9": {"valid": 100.0, "unique": 2.2, "qed": 0.62, "sa": 0.59, "logp": 0.53},
    "paper, SA, QM9": {"valid": 100.0, "unique": 2.1, "qed": 0.53, "sa": 0.95, "logp": 0.68},
    "paper, logP, QM9": {"valid": 99.8, "unique": 2.0, "qed": 0.44, "sa": 0.22, "logp": 0.89},
}


def study_spec(args) -> dict:
    """The reproduction as a study: a grid of objectives (named override sets) × seeds, each
    run evaluated once more on ``--samples`` molecules (sampling seed 10,000 + seed)."""
    variants = {o: ({"lam": 1.0} if o == "none" else {"reward": o}) for o in args.objectives}
    fixed = {"device": args.device} | ({"epochs": args.epochs} if args.epochs else {})
    return {
        "name": f"reproduce-{args.preset}",
        "preset": args.preset,
        "fixed": fixed,
        "grid": {"variant": variants, "seed": list(args.seeds)},
        "objectives": [{"metric": "valid*unique", "direction": "maximize"}],
        "evaluate": {"samples": args.samples, "seed_offset": 10_000, "fcd": not args.no_fcd},
    }


def run_study(args) -> list[dict]:
    """Train (or reuse) every run through ``molgan.sweep``; one result dict per finished run."""
    from molgan import sweep

    spec = study_spec(args)
    root = Path(args.out) / "study"
    if args.aggregate_only:
        study = sweep.open_study(sweep.load_spec(spec), sweep.default_storage(root))
        frame = sweep.results_frame(study, sweep.load_spec(spec), root)
    else:
        frame = sweep.launch(spec, root, workers=args.workers, poll_s=10)
    results = []
    for row in frame.to_dict("records") if not frame.empty else []:
        if row["state"] != "complete":
            continue
        result = {k[len("final_") :]: v for k, v in row.items() if k.startswith("final_")}
        device = resolve_device(args.device).type
        result |= {
            "minutes": row["minutes"],
            "device": device,
            "objective": row["variant"],
            "seed": row["seed"],
        }
        results.append(result)
    order = {o: i for i, o in enumerate(args.objectives)}
    return sorted(results, key=lambda r: (order.get(r["objective"], 99), r["seed"]))


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
        description=__doc__.splitlines()[0], formatter_class=HelpFormatter
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
        "--out", default="results", help="folder for results.{md,json}; its study/ holds the runs"
    )
    parser.add_argument(
        "--workers", type=int, default=1, help="runs trained at once (2 on a 2-core machine)"
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
        results = run_study(args)
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
