"""Sample molecules from a checkpoint into .csv (SMILES + scores), .smi or .sdf, and a PNG grid.

python scripts/sample.py --checkpoint runs/paper-seed0/ckpt.pt -n 1000 --out samples.csv
python scripts/sample.py -n 100 --out samples.sdf --grid grid.png   # the shipped model
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import molgan
from molgan import chem, metrics


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", help="checkpoint file (default: shipped pretrained model)")
    parser.add_argument("-n", type=int, default=1000, help="number of molecules")
    parser.add_argument("--out", required=True, help="output file: .csv, .smi or .sdf")
    parser.add_argument("--seed", type=int, default=0, help="sampling seed")
    parser.add_argument("--device", default=None, help="cpu / cuda")
    parser.add_argument("--grid", help="also draw up to 48 valid molecules into this PNG")
    args = parser.parse_args(argv)
    out = Path(args.out)
    if out.suffix not in (".csv", ".smi", ".sdf"):
        parser.error("--out must end in .csv, .smi or .sdf")
    try:
        # CSV keeps multi-fragment graphs (dotted SMILES, valid=False) for lenient validity;
        # .smi/.sdf hold strictly valid molecules only.
        smiles = molgan.sample(
            args.n, args.checkpoint, seed=args.seed, device=args.device, strict=out.suffix != ".csv"
        )
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".csv":
        frame = metrics.evaluate_frame(smiles)
        frame.drop(columns=["novel"]).to_csv(out, index=False)
    elif out.suffix == ".smi":
        out.write_text("".join(f"{s or ''}\n" for s in smiles))  # empty line = invalid
    else:
        chem.mols_to_sdf(smiles, str(out))
    valid = sum(chem.is_strictly_valid(s) for s in smiles)
    print(f"{args.n} sampled, {valid} valid ({100 * valid / max(args.n, 1):.1f}%) -> {out}")
    if args.grid:
        try:
            drawn = chem.draw_grid(smiles, args.grid)
            print(f"{drawn} molecules drawn -> {args.grid}")
        except ValueError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
