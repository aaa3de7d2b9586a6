"""Print the metrics table of a SMILES file (.smi/.csv/.sdf), optionally against a training set.

python scripts/evaluate.py samples.smi --train data/qm9.smi.gz --json metrics.json
python scripts/evaluate.py --qm9-reference     # QM9 test split vs its train split
"""

from __future__ import annotations

import argparse
import json
import math
import sys

from molgan import metrics
from molgan.data import DEFAULT_DATA, load_dataset, read_smiles

COLUMNS = ("valid", "valid_lenient", "unique", "novel", *metrics.PROPERTIES)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", nargs="?", help="SMILES file to evaluate (empty lines skipped)")
    parser.add_argument("--train", help="training SMILES file, for novelty")
    parser.add_argument(
        "--qm9-reference",
        action="store_true",
        help="evaluate the shipped QM9 test split against its train split",
    )
    parser.add_argument("--json", help="also write the metrics to this JSON file")
    args = parser.parse_args(argv)
    try:
        if args.qm9_reference:
            data = load_dataset(DEFAULT_DATA)
            smiles, train = data.smiles_of("test"), data.smiles_of("train")
        elif args.file:
            # Unparsable lines are kept: they count as invalid samples.
            smiles = [s for _, s in read_smiles(args.file)]
            train = [s for _, s in read_smiles(args.train)] if args.train else None
        else:
            parser.error("give a FILE or --qm9-reference")
        result = metrics.evaluate(smiles, train, paper_means=True)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"{int(result['n'])} molecules; fractions in %, scores are means over valid molecules")
    print("| " + " | ".join(COLUMNS) + " |")
    print("|" + "---|" * len(COLUMNS))
    print(metrics.format_row(result, COLUMNS))
    if args.json:
        clean = {
            k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in result.items()
        }
        with open(args.json, "w") as handle:
            json.dump(clean, handle, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
