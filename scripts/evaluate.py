"""Print the metrics table of a sample file, optionally against a training set and with FCD.

    python scripts/evaluate.py samples.csv --train qm9 --fcd     # novelty vs QM9 train, FCD vs test
    python scripts/evaluate.py samples.smi --train my_train.smi --json metrics.json
    python scripts/evaluate.py --qm9-reference --fcd              # QM9 test vs train split

Sample files keep one entry per generated graph: in .smi an empty line, in .csv an empty
``smiles`` cell marks an invalid sample (as ``scripts/sample.py`` writes them), so validity is
computed over all samples. "qm9" stands for the shipped QM9 split (seed 0).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from molgan import metrics
from molgan.data import DEFAULT_DATA, load_dataset, read_smiles

COLUMNS = ("valid", "valid_lenient", "unique", "novel", *metrics.PROPERTIES)


def read_samples(path: str) -> list[str | None]:
    """All samples of a file, ``None`` for empty entries (invalid graphs)."""
    file = Path(path)
    if not file.is_file():
        raise ValueError(f"file not found: {path}")
    if file.suffix == ".csv":
        import pandas as pd

        frame = pd.read_csv(file, dtype=str, keep_default_na=False)
        column = next((c for c in frame.columns if c.lower() == "smiles"), frame.columns[0])
        return [s.strip() or None for s in frame[column]]
    if file.suffix in (".sdf", ".gz"):
        return [s for _, s in read_smiles(file)]
    lines = file.read_text().splitlines()
    if lines and lines[0].strip().lower() == "smiles":
        lines = lines[1:]
    return [(line.split() or [None])[0] for line in lines]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", nargs="?", help="samples: .smi / .csv (or a .sdf / .gz set)")
    parser.add_argument("--train", help="training SMILES file for novelty, or 'qm9'")
    parser.add_argument(
        "--qm9-reference",
        action="store_true",
        help="evaluate the shipped QM9 test split against its train split",
    )
    parser.add_argument(
        "--fcd", action="store_true", help="add FCD vs the QM9 test split (needs fcd_torch)"
    )
    parser.add_argument("--json", help="also write the metrics to this JSON file")
    args = parser.parse_args(argv)
    if not args.file and not args.qm9_reference:
        parser.error("give a FILE or --qm9-reference")
    try:
        qm9 = None
        if args.qm9_reference or args.fcd or args.train == "qm9":
            qm9 = load_dataset(DEFAULT_DATA, verbose=False)
        if args.qm9_reference:
            splits = (qm9.smiles_of(k) for k in ("train", "val", "test"))
            result = metrics.reference_row(*splits, with_fcd=args.fcd, paper_means=True)
        else:
            train = None
            if args.train == "qm9":
                train = qm9.smiles_of("train")
            elif args.train:
                train = [s for _, s in read_smiles(args.train)]
            result = metrics.evaluate(
                read_samples(args.file),
                train,
                paper_means=True,
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
        with open(args.json, "w") as handle:
            json.dump(clean, handle, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
