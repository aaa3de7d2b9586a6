"""MOSES's metrics of a model trained on MOSES (--data moses), member by member.

    python scripts/moses_benchmark.py runs/moses-pop2/best.pt --json docs/evidence/moses_eval.json
    python scripts/moses_benchmark.py --train-reference \\
        --json docs/evidence/moses_train_reference.json
    python scripts/moses_benchmark.py --report m0.json m1.json m2.json --json row.json

Each member samples ``-n`` graphs (30,000, MOSES's advice) with sampling seed ``--seed`` (0) +
its training seed; the metrics are MOSES's (``molgan.moses_metrics``) against the MOSES test
and scaffold-test splits molsets ships, Novelty against the MOSES training split. Three
readings of the same samples are reported: ``moses`` (the SMILES as generated, so a
multi-fragment graph is a dotted SMILES that MOSES counts as valid) and ``strict`` (a
multi-fragment graph counts as invalid, molgan's own validity); a third, ``corrected``, reads
the same graphs after MoFlow's valency correction with the largest fragment kept
(``--no-corrected``: not). Prints a markdown table: one
row per member and reading, then the mean ± std over members; ``--mixture``: every member of
the checkpoint sampled as one model (``molgan.mixture``: sample i from member i mod K, sampling
seed ``--seed``), one row per reading. ``--train-reference`` scores
``-n`` random molecules of the MOSES training split instead (sampling seed ``--seed``): MOSES's
own "Train" row, to check these metrics against MOSES's published one. ``--report FILES``
samples nothing: it prints (and with ``--json`` writes) the rows of earlier ``--json`` files
and their mean ± std over all of them, e.g. one row from runs scored one at a time.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
import warnings

from molgan.cli import HelpFormatter

SHOWN = (
    "valid",
    "unique@1000",
    "unique@10000",
    "FCD/Test",
    "FCD/TestSF",
    "SNN/Test",
    "SNN/TestSF",
    "Frag/Test",
    "Frag/TestSF",
    "Scaf/Test",
    "Scaf/TestSF",
    "IntDiv",
    "IntDiv2",
    "Filters",
    "Novelty",
)


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for package in ("molsets", "fcd_torch", "rdkit", "torch"):
        try:
            out[package] = version(package)
        except PackageNotFoundError:
            out[package] = "not installed"
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=HelpFormatter
    )
    parser.add_argument("checkpoint", nargs="?", help="a checkpoint (a population's: every member)")
    parser.add_argument(
        "--train-reference",
        action="store_true",
        help="score -n random MOSES training molecules instead of a model's samples",
    )
    parser.add_argument("-n", type=int, default=30_000, help="graphs sampled per member")
    parser.add_argument("--seed", type=int, default=0, help="sampling seed - training seed")
    parser.add_argument("--workers", type=int, default=2, help="processes for the RDKit work")
    parser.add_argument(
        "--fcd", action=argparse.BooleanOptionalAction, default=True, help="the FCD columns"
    )
    parser.add_argument(
        "--corrected",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="a third reading: the same graphs after MoFlow's valency correction, largest "
        "fragment kept (never strict validity)",
    )
    parser.add_argument(
        "--mixture",
        action="store_true",
        help="score the checkpoint's members as one model (a mixture), not one by one",
    )
    parser.add_argument(
        "--temperature",
        default="1",
        help="sampling temperature T, or ATOMS:BONDS (molgan.sample's temperature; 1 = as "
        "trained): above 1 trades validity for distinct molecules",
    )
    parser.add_argument("--json", help="also write every row and the settings to this file")
    parser.add_argument(
        "--report", nargs="+", metavar="FILE", help="the mean ± std of these --json files' rows"
    )
    args = parser.parse_args(argv)
    if args.report:
        return report(args.report, args.json)
    if not args.checkpoint and not args.train_reference:
        parser.error("give a CHECKPOINT or --train-reference")
    from molgan import checkpoint, mixture, moses_metrics, rundir
    from molgan.decoding import parse_temperature

    if args.n < 10_000:
        print(f"note: unique@10000 is over {args.n} graphs' valid molecules", file=sys.stderr)
    try:
        if args.json:
            rundir.output_path(args.json, "--json")
        temperature = parse_temperature(args.temperature)
        if args.train_reference and temperature != 1:
            raise ValueError("--temperature applies to a model's samples, not --train-reference")
        train_list = moses_metrics.moses_smiles("train")
        train = set(train_list)
        if args.train_reference:
            blob, count = {"step": 0}, 1
        else:
            blob = checkpoint.read(args.checkpoint)
            count = checkpoint.members_of(blob)
        if args.mixture:
            if args.train_reference:
                raise ValueError("--mixture scores a checkpoint's members, not --train-reference")
            whole, count = mixture.load(args.checkpoint), 1
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    shown = [key for key in SHOWN if args.fcd or not key.startswith("FCD")]
    rows = []
    for k in range(count):
        start, label = time.perf_counter(), k
        if args.train_reference:
            import random

            seed = args.seed
            generated = random.Random(seed).sample(train_list, args.n)
        elif args.mixture:
            model, seed = whole, args.seed
            label = f"mixture of {len(whole)}"
        else:
            model = checkpoint.load(args.checkpoint, member=k)
            seed = args.seed + model.config["seed"]
        if not args.train_reference:
            options = {"seed": seed, "temperature": temperature}
            generated = model.sample(args.n, strict=False, **options)
        strict = [s if s and "." not in s else None for s in generated]
        readings = [("moses", generated), ("strict", strict)]
        if args.corrected and not args.train_reference:  # the same graphs, corrected
            readings.append(("corrected", model.sample(args.n, correct=True, **options)))
        for reading, smiles in readings:
            with warnings.catch_warnings():  # unique@k of fewer than k: MOSES warns as well
                warnings.simplefilter("ignore", UserWarning)
                result = moses_metrics.evaluate(
                    smiles, train=train, workers=args.workers, fcd=args.fcd
                )
            row = {"member": label, "sampling_seed": seed, "temperature": temperature}
            rows.append({**row, "reading": reading, **result})
            print(
                f"member {label} ({reading}, {time.perf_counter() - start:.0f} s): "
                + ", ".join(f"{key} {result[key]:.4f}" for key in shown),
                file=sys.stderr,
            )
    summary = print_table(rows, shown)
    if args.json:
        step = int(blob.get("step", 0))
        record = {
            "checkpoint": "MOSES train (reference)"
            if args.train_reference
            else str(args.checkpoint),
            "step": step,
            "n": args.n,
            "fcd": args.fcd,
            "sampling_seed": args.seed
            if args.mixture or args.train_reference
            else f"{args.seed} + training seed",
            "temperature": temperature,
            "versions": _versions(),
            "rows": rows,
            "summary": summary,
        }
        return rundir.save_json(args.json, record, default=float)
    return 0


def print_table(rows: list[dict], shown: list[str]) -> dict[str, list[float]]:
    """Print one markdown row per row (member, reading) and the mean ± std over the rows of
    each reading; returns ``{"reading/metric": [mean, std]}``."""
    print("| member | reading | " + " | ".join(shown) + " |")
    print("|---|---|" + "---|" * len(shown))
    for row in rows:
        cells = " | ".join(f"{row[key]:.4f}" for key in shown)
        print(f"| {row.get('run', row['member'])} | {row['reading']} | {cells} |")
    summary = {}
    for reading in dict.fromkeys(r["reading"] for r in rows):
        chosen = [r for r in rows if r["reading"] == reading]
        cells = []
        for key in shown:
            values = [r[key] for r in chosen if key in r and math.isfinite(r[key])]
            mean = statistics.mean(values) if values else math.nan
            std = statistics.stdev(values) if len(values) > 1 else 0.0
            summary[f"{reading}/{key}"] = [mean, std]
            cells.append(f"{mean:.4f}±{std:.4f}")
        print(f"| mean of {len(chosen)} | {reading} | " + " | ".join(cells) + " |")
    return summary


def report(files: list[str], out: str | None) -> int:
    """``--report``: the rows of earlier ``--json`` files, each tagged with its file's
    checkpoint, and their mean ± std; ``out``: also write them with each file's settings."""
    import json
    from pathlib import Path

    from molgan import rundir

    records, rows = [], []
    for name in files:
        try:
            record = json.loads(Path(name).read_text())
            tagged = [
                r | {"run": f"{record['checkpoint']}@{record['step']}"} for r in record["rows"]
            ]
        except (OSError, ValueError, KeyError, TypeError) as err:
            print(f"error: {name}: not a moses_benchmark --json file ({err})", file=sys.stderr)
            return 2
        records.append({k: v for k, v in record.items() if k not in ("rows", "summary")})
        rows += tagged
    shown = [key for key in SHOWN if any(key in r for r in rows)]
    summary = print_table(rows, shown)
    if out:
        return rundir.save_json(out, {"files": records, "rows": rows, "summary": summary})
    return 0


if __name__ == "__main__":
    sys.exit(main())
