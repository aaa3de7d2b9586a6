"""Evaluate every member of a population's checkpoint under the studies' protocol.

    python scripts/evaluate_members.py runs/pop3/ckpt.pt --fcd --json pop3.json

Member k (the run of seed s + k) samples ``--samples`` molecules (10,000) with sampling seed
``--seed-offset`` (10,000) + its seed, as ``scripts/sweep.py``'s final evaluation does; metrics
against the QM9 train split (novelty) and, with ``--fcd``, FCD against the test split. Prints
one row per member (and ``--temperatures``) and the mean ± std over members.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys

COLUMNS = ("valid", "unique", "novel", "vun", "fcd", "distinct", "top100_share", "qed")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", help="a population's ckpt.pt (or its run directory)")
    parser.add_argument("--samples", type=int, default=10_000, help="molecules per member")
    parser.add_argument("--seed-offset", type=int, default=10_000, help="sampling seed - seed")
    parser.add_argument("--fcd", action="store_true", help="add FCD vs the test split")
    parser.add_argument(
        "--temperatures",
        default="1",
        help="sampling temperatures (molgan.sample), comma-separated: every member at each; "
        "ATOMS:BONDS (e.g. 3:1) scales atom and bond logits separately (the row's "
        "temperature is then the atoms', with a bond_temperature beside it)",
    )
    parser.add_argument("--members", help="only these members, e.g. 0,1,2 (default: all)")
    parser.add_argument("--json", help="also write the rows to this JSON file")
    args = parser.parse_args(argv)
    from molgan import checkpoint, metrics, rundir
    from molgan.data import dataset_of
    from molgan.sample import parse_temperature

    try:
        temperatures = [parse_temperature(t) for t in args.temperatures.split(",")]
        blob = checkpoint.read(args.checkpoint)
        count = checkpoint.members_of(blob)
        chosen = [int(k) for k in args.members.split(",")] if args.members else range(count)
        if any(not 0 <= k < count for k in chosen):
            raise ValueError(f"--members: the checkpoint has members 0..{count - 1}")
        first = checkpoint.load(args.checkpoint, member=0)
        cfg = checkpoint.config_from({"config": first.config})
        data = dataset_of(cfg, first.atom_types, verbose=False)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    train, test = data.smiles_of("train"), data.smiles_of("test") if args.fcd else None
    rows = []
    for k in chosen:
        model = first if k == 0 else checkpoint.load(args.checkpoint, member=k)
        seed = model.config["seed"]
        for t in temperatures:
            smiles = model.sample(args.samples, seed=args.seed_offset + seed, temperature=t)
            result = metrics.evaluate(smiles, train, train_is_canonical=True, fcd_reference=test)
            rows.append({"member": k, "seed": seed, "step": blob["step"]} | _keys(t) | result)
            shown = {c: result[c] for c in COLUMNS if c in result}
            print(
                f"member {k} (seed {seed}), T {_label(t)}: "
                + ", ".join(f"{c} {v:.4g}" for c, v in shown.items())
            )
    for t in temperatures:
        for c in COLUMNS:
            values = [float(r[c]) for r in rows if _same(r, t) and c in r]
            values = [v for v in values if math.isfinite(v)]
            if len(values) > 1:
                mean, std = statistics.mean(values), statistics.stdev(values)
                print(f"T {_label(t)}, {c}: {mean:.4g} ± {std:.2g} over {len(values)} members")
    if args.json:
        return rundir.save_json(args.json, rows, default=float)
    return 0


def _keys(t) -> dict:
    """A row's temperature fields: ``temperature`` (atoms'), and ``bond_temperature`` when the
    bonds had their own."""
    if isinstance(t, tuple):
        return {"temperature": t[0], "bond_temperature": t[1]}
    return {"temperature": t}


def _same(row: dict, t) -> bool:
    keys = _keys(t)
    return all(row.get(k) == keys.get(k) for k in ("temperature", "bond_temperature"))


def _label(t) -> str:
    return f"{t[0]:g}:{t[1]:g}" if isinstance(t, tuple) else f"{t:g}"


if __name__ == "__main__":
    sys.exit(main())
