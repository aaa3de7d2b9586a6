"""Regenerate data/qm9.smi.gz: canonical SMILES, one per line, gzipped deterministically.

The source is the PyPI package ``qm9pack`` (130,831 QM9 molecules, MIT), read by path because
``import qm9pack`` fails on current setuptools. ``--input`` takes any .smi/.csv/.sdf file instead.

    pip install qm9pack==1.0.3 && python scripts/prepare_qm9.py --force  # rewrites data/qm9.smi.gz
    python scripts/prepare_qm9.py --input my.sdf --out data/my.smi.gz

An existing output file (the shipped ``data/qm9.smi.gz`` by default) is only replaced with
``--force``, and atomically: an interrupted run leaves it as it was.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import os
import sys
from pathlib import Path

from rdkit import Chem

from molgan import chem
from molgan.data import DEFAULT_DATA
from molgan.molfiles import read_smiles
from molgan.rundir import output_path


def qm9pack_smiles() -> list[str]:
    import importlib.metadata

    import pandas as pd

    try:
        folder = Path(importlib.metadata.distribution("qm9pack").locate_file("qm9pack/data"))
    except importlib.metadata.PackageNotFoundError:
        sys.exit("error: qm9pack is not installed (pip install qm9pack==1.0.3), or pass --input")
    parts = [
        pd.read_csv(folder / f"qm9_part{i}.csv", usecols=["Index", "SMILES"]) for i in (1, 2, 3)
    ]
    return pd.concat(parts).sort_values("Index")["SMILES"].tolist()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", help="a .smi/.csv/.sdf file (default: the qm9pack table)")
    parser.add_argument(
        "--out", default=str(DEFAULT_DATA), help="output .smi.gz path (default: the shipped QM9)"
    )
    parser.add_argument("--force", action="store_true", help="replace an existing output file")
    args = parser.parse_args(argv)
    out = Path(args.out)
    try:
        output_path(out, "--out")
        if out.exists() and not args.force:
            raise ValueError(f"{out} exists; pass --force to replace it, or another --out")
        raw = [s for _, s in read_smiles(args.input)] if args.input else qm9pack_smiles()
    except ValueError as err:
        sys.exit(f"error: {err}")
    lines = []
    for smiles in raw:
        mol = chem.mol_from_smiles(smiles)
        if mol is not None:  # stereo is dropped: the graphs cannot carry it
            lines.append(Chem.MolToSmiles(mol, isomericSmiles=False))
    if not lines:
        sys.exit(f"error: no valid molecule in {args.input}; {out} left unchanged")
    payload = ("\n".join(lines) + "\n").encode()
    tmp = out.with_name(out.name + ".part")
    with open(tmp, "wb") as handle, gzip.GzipFile(fileobj=handle, mode="wb", mtime=0) as gz:
        gz.write(payload)
    os.replace(tmp, out)
    digest = hashlib.sha256(out.read_bytes()).hexdigest()
    print(f"{len(raw)} read, {len(lines)} written to {out} (sha256 {digest})")


if __name__ == "__main__":
    main()
