"""Write a mixture file: trained members sampled as one model (``molgan.mixture``).

    python scripts/make_mixture.py runs/pop3/ckpt.pt --out mix.pt          # every member
    python scripts/make_mixture.py runs/a/ckpt.pt:0,2 runs/b/ckpt.pt --out mix.pt

The file keeps each member's sampler (its EMA generator) and settings, no discriminator, reward
network or optimiser state: ~1.5 MB per default-size member, for sampling only
(``molgan.sample(n, "mix.pt")``, ``scripts/sample.py --checkpoint mix.pt``).
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "checkpoint", nargs="+", help="checkpoints (every member) or PATH:k,k (those members)"
    )
    parser.add_argument("--out", required=True, help="the mixture file to write (.pt)")
    parser.add_argument("--force", action="store_true", help="replace an existing --out")
    parser.add_argument(
        "--compact",
        action="store_true",
        help="half precision, each atom pair's bond weights stored once: under half the size, "
        "the same samples up to float rounding (how the shipped models are stored)",
    )
    args = parser.parse_args(argv)
    from molgan import mixture
    from molgan.rundir import WriteError, output_path

    try:
        out = output_path(args.out, "--out")
        if out.exists() and not args.force:
            raise ValueError(f"--out {out} exists; pass --force to replace it")
        chosen = mixture.sources(args.checkpoint)
        path = mixture.export(chosen, out, compact=args.compact)
    except (ValueError, WriteError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    size = path.stat().st_size / 1e6
    print(f"wrote {path}: a mixture of {len(chosen)} members ({size:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
