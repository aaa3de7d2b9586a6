"""How closely a conditional model (trained with --condition) gives the class it is asked for.

python tools/class_check.py runs/latent-seed0/ckpt.pt -n 500 --out classes.md

For every heavy-atom count, and every element set, that the training split holds, samples n
molecules asking for that class only, and prints a markdown table: the class's share of the
training split, strict validity, and the share of the valid molecules that are of the class
asked for (their heavy-atom count, or exactly their element set).
"""

from __future__ import annotations

import argparse
import sys

import torch

import molgan
from molgan import chem
from molgan.cli import HelpFormatter
from molgan.rundir import output_path


def _rows(model, n: int, seed: int) -> list[str]:
    prior = model.class_prior
    counts = prior.counts.cpu()
    total = float(counts.sum())
    requests = [{"heavy_atoms": k} for k in range(1, prior.N + 1)]
    element_sets = [
        tuple(i + 1 for i in range(prior.T - 1) if bits >> i & 1)
        for bits in range(1, 2 ** (prior.T - 1))
    ]
    requests += [{"elements": types} for types in element_sets]
    rows = []
    for request in requests:
        share = float((counts * prior.mask(**request)).sum()) / total
        if share == 0:
            continue
        asked = dict(request)
        if "elements" in asked:
            asked["elements"] = [model.atom_types[t] for t in asked["elements"]]
        smiles = model.sample(n, seed, **asked)
        valid = [s for s in smiles if s is not None]
        if "heavy_atoms" in asked:
            label = f"{asked['heavy_atoms']} heavy atoms"
            hits = sum(len(chem.heavy_atoms(s)) == asked["heavy_atoms"] for s in valid)
        else:
            label = "{" + ",".join(asked["elements"]) + "}"
            hits = sum(set(chem.heavy_atoms(s)) == set(asked["elements"]) for s in valid)
        follows = f"{100 * hits / len(valid):.1f}" if valid else "—"
        rows.append(f"| {label} | {100 * share:.2g} | {100 * len(valid) / n:.1f} | {follows} |")
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=HelpFormatter
    )
    parser.add_argument("checkpoint", help="a conditional model's checkpoint (or run directory)")
    parser.add_argument("-n", type=int, default=500, help="molecules sampled per class")
    parser.add_argument("--seed", type=int, default=0, help="sampling seed")
    parser.add_argument("--out", help="also write the table to this markdown file")
    args = parser.parse_args(argv)
    try:
        if args.n < 1:
            raise ValueError("-n must be ≥ 1")
        out = output_path(args.out, "--out") if args.out else None
        torch.set_num_threads(1)
        model = molgan.load(args.checkpoint)
        if model.class_prior is None:
            raise ValueError(
                f"{args.checkpoint} is not a conditional model (train with --condition)"
            )
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    lines = [
        f"| class asked for | share of training split, % | valid, % (of {args.n}) "
        "| valid of the class asked for, % |",
        "|---|---|---|---|",
        *_rows(model, args.n, args.seed),
    ]
    table = "\n".join(lines) + "\n"
    print(table, end="")
    if out is not None:
        out.write_text(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
