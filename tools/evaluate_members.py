"""Evaluate every member of a population's checkpoint under the studies' protocol.

    python tools/evaluate_members.py runs/pop3/ckpt.pt --fcd --json pop3.json
    python tools/evaluate_members.py runs/a/ckpt.pt runs/b/ckpt.pt --mixture 3 --fcd
    python tools/evaluate_members.py runs/a/ckpt.pt:0,1 runs/a/ckpt.pt:1,2 --mixture 2

Member k (the run of seed s + k) samples ``--samples`` molecules (10,000) with sampling seed
``--seed-offset`` (10,000) + its seed, as ``scripts/sweep.py``'s final evaluation does; metrics
against the QM9 train split (novelty) and, with ``--fcd``, FCD against the test split. Prints
one row per member (and ``--temperatures``) and the mean ± std over members. With ``--mixture
K`` the members of every checkpoint given, in order, form consecutive groups of K, and each
group is evaluated as one model (``molgan.mixture``: ``--samples`` molecules in all, sampling
seed offset + its first member's seed); the mean ± std is then over groups.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys

COLUMNS = ("valid", "unique", "novel", "vun", "fcd", "distinct", "top100_share", "qed")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "checkpoint",
        nargs="+",
        help="a population's ckpt.pt (or its run directory), or PATH:k,k for some of its "
        "members; several with --mixture",
    )
    parser.add_argument(
        "--mixture",
        type=int,
        default=0,
        metavar="K",
        help="evaluate consecutive groups of K members as mixtures (one model each)",
    )
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
    from molgan.mixture import Mixture
    from molgan.sample import parse_temperature

    try:
        temperatures = [parse_temperature(t) for t in args.temperatures.split(",")]
        sources = _members(args)
        first = checkpoint.load(sources[0][0], member=sources[0][1])
        cfg = checkpoint.config_from({"config": first.config})
        data = dataset_of(cfg, first.atom_types, verbose=False)
        K = args.mixture
        if K < 0 or (K and len(sources) % K):
            raise ValueError(f"--mixture {K}: {len(sources)} members are not groups of {K}")
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    train, test = data.smiles_of("train"), data.smiles_of("test") if args.fcd else None
    groups = [sources[i : i + K] for i in range(0, len(sources), K)] if K else []
    units = groups or [[source] for source in sources]
    rows, blobs = [], {}  # each file read once, however many of its members are evaluated
    for unit in units:
        own = [
            checkpoint.member_blob(blobs.setdefault(p, checkpoint.read(p)), k, p) for p, k in unit
        ]
        models = [checkpoint.model_of(b, p) for b, (p, _) in zip(own, unit, strict=True)]
        model = Mixture(models) if K else models[0]
        seed, step = models[0].config["seed"], own[0].get("step", 0)
        for t in temperatures:
            smiles = model.sample(args.samples, seed=args.seed_offset + seed, temperature=t)
            result = metrics.evaluate(smiles, train, train_is_canonical=True, fcd_reference=test)
            who = {"member": unit[0][1], "seed": seed}
            if K:
                who = {"members": [f"{p}:{k}" for p, k in unit], "seed": seed}
                who["seeds"] = [m.config["seed"] for m in models]
                # each member's own distinct valid molecules in its share of the sample: their
                # sum less the mixture's distinct count is what the members have in common
                who["distinct_by_member"] = [len(set(smiles[k::K]) - {None}) for k in range(K)]
            rows.append(who | {"step": step} | _keys(t) | result)
            shown = {c: result[c] for c in COLUMNS if c in result}
            name = f"mixture of seeds {who['seeds']}" if K else f"member {unit[0][1]} (seed {seed})"
            print(f"{name}, T {_label(t)}: " + ", ".join(f"{c} {v:.4g}" for c, v in shown.items()))
    for t in temperatures:
        for c in COLUMNS:
            values = [float(r[c]) for r in rows if _same(r, t) and c in r]
            values = [v for v in values if math.isfinite(v)]
            if len(values) > 1:
                mean, std = statistics.mean(values), statistics.stdev(values)
                unit = "mixtures" if args.mixture else "members"
                print(f"T {_label(t)}, {c}: {mean:.4g} ± {std:.2g} over {len(values)} {unit}")
    if args.json:
        return rundir.save_json(args.json, rows, default=float)
    return 0


def _members(args) -> list[tuple[str, int]]:
    """The ``(checkpoint, member)`` pairs to evaluate, in order: every member of each file,
    the members a ``PATH:k,k`` argument names, or ``--members`` of the one file given."""
    from molgan.mixture import sources

    if args.members and len(args.checkpoint) > 1:
        raise ValueError("--members picks members of one checkpoint; several were given")
    if args.members:
        if not all(k.isdigit() for k in args.members.split(",")):
            raise ValueError(f"--members must be member numbers like 0,2, got {args.members!r}")
        return sources([f"{args.checkpoint[0]}:{args.members}"])
    return sources(args.checkpoint)


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
