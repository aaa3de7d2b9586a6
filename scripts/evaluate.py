"""Print the metrics table of a sample file, optionally against a training set and with FCD.

    python scripts/evaluate.py samples.csv --train qm9 --fcd     # novelty vs QM9 train, FCD vs test
    python scripts/evaluate.py samples.smi --train my_train.smi --json metrics.json
    python scripts/evaluate.py --qm9-reference --fcd              # QM9 test vs train split
    python scripts/evaluate.py samples.csv --moses                # MOSES's metrics (molsets)

Sample files keep one entry per generated graph: in .smi an empty line, in .csv an empty
``smiles`` cell, in .sdf an empty record marks an invalid sample (as ``scripts/sample.py``
writes them; any may be gzipped), so validity is the same whatever the format. "qm9" stands for
the shipped QM9 split (seed 0).
"""

from __future__ import annotations

import argparse
import math
import sys

from molgan import chem, metrics, rundir
from molgan.cli import HelpFormatter
from molgan.data import DEFAULT_DATA, load_dataset
from molgan.molfiles import read_samples, read_smiles
from molgan.rundir import output_path

COLUMNS = ("valid", "valid_lenient", "unique", "novel", *metrics.PROPERTIES)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=HelpFormatter
    )
    parser.add_argument("file", nargs="?", help="samples: .smi, .csv or .sdf, optionally .gz")
    parser.add_argument("--train", help="training SMILES file for novelty, or 'qm9'")
    parser.add_argument(
        "--qm9-reference",
        action="store_true",
        help="evaluate the shipped QM9 test split against its train split",
    )
    parser.add_argument(
        "--fcd",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="add FCD vs the QM9 test split (needs fcd_torch); with --moses the FCD columns "
        "are on unless --no-fcd",
    )
    parser.add_argument(
        "--moses",
        action="store_true",
        help="MOSES's metrics instead (molgan.moses_metrics): vs the MOSES test, scaffold-test "
        "and train splits of the molsets package",
    )
    parser.add_argument("--json", help="also write the metrics to this JSON file")
    args = parser.parse_args(argv)
    if not args.file and not args.qm9_reference:
        parser.error("give a FILE or --qm9-reference")
    if args.moses:
        args.fcd = args.fcd is not False
        return _moses(args)
    args.fcd = bool(args.fcd)
    try:
        if args.json:
            output_path(args.json, "--json")
        qm9 = None
        if args.qm9_reference or args.fcd or args.train == "qm9":
            qm9 = load_dataset(DEFAULT_DATA, verbose=False)
        if args.qm9_reference:
            splits = (qm9.smiles_of(k) for k in ("train", "val", "test"))
            result = metrics.reference_row(*splits, with_fcd=args.fcd, paper_means=True)
        else:
            samples = read_samples(args.file)  # read (and checked) before the training set
            long = sum(isinstance(s, str) and len(s) > chem.MAX_SMILES_LENGTH for s in samples)
            if long:
                print(
                    f"note: {long} SMILES longer than {chem.MAX_SMILES_LENGTH} characters count "
                    "as invalid (no molecule molgan makes is that long)",
                    file=sys.stderr,
                )
            train = None
            if args.train == "qm9":
                train = qm9.smiles_of("train")
            elif args.train:
                train = [s for _, s in read_smiles(args.train)]
                if not any(chem.canonical(s) for s in train):
                    raise ValueError(f"no valid molecule in the training file {args.train}")
            result = metrics.evaluate(
                samples,
                set(train) if args.train == "qm9" else train,
                paper_means=True,
                train_is_canonical=args.train == "qm9",  # the dataset's SMILES are canonical
                fcd_reference=qm9.smiles_of("test") if args.fcd else None,
            )
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    columns = COLUMNS + (("fcd",) if args.fcd else ())
    print(f"{int(result['n'])} molecules; fractions in %, scores are means over valid molecules")
    if args.fcd:
        from molgan import fcd

        source = "the val split's" if args.qm9_reference else "the samples'"
        print(f"FCD: {source} vs the QM9 test split (13,016 molecules), {fcd.version()}")
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    print(metrics.format_row(result, columns))
    if args.json:
        clean = {
            k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in result.items()
        }
        return rundir.save_json(args.json, clean)
    return 0


def _moses(args) -> int:
    from molgan import moses_metrics

    try:
        if args.json:
            output_path(args.json, "--json")
        samples = read_samples(args.file)
        result = moses_metrics.evaluate(samples, workers=2, fcd=args.fcd)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    keys = [k for k in moses_metrics.KEYS if k in result]
    print(f"{int(result['n'])} molecules; MOSES's metrics (fractions, not %)")
    print("| " + " | ".join(keys) + " |")
    print("|" + "---|" * len(keys))
    print("| " + " | ".join(f"{result[k]:.4f}" for k in keys) + " |")
    if args.json:
        return rundir.save_json(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
