"""Plot a run's learning curve (losses and evaluation scores) from its log.jsonl into a PNG.

python scripts/plot_log.py runs/paper-seed0 --out curve.png     (needs matplotlib)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from molgan.rundir import read_log


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", help="run directory holding log.jsonl")
    parser.add_argument("--out", help="PNG path (default: <run_dir>/curve.png)")
    parser.add_argument("--member", type=int, default=0, help="a population's member to plot")
    args = parser.parse_args(argv)
    log = Path(args.run_dir) / "log.jsonl"
    if not log.is_file():
        print(f"error: no log.jsonl in {args.run_dir}", file=sys.stderr)
        return 2
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("error: plotting needs matplotlib (pip install matplotlib)", file=sys.stderr)
        return 2
    try:
        frame = pd.DataFrame(read_log(log))
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if frame.empty:
        print(f"error: {log} holds no log rows", file=sys.stderr)
        return 2
    name = Path(args.run_dir).name
    if "member" in frame:  # a population: one member's rows
        if args.member not in set(frame["member"].dropna().astype(int)):
            print(f"error: {args.run_dir} has no member {args.member}", file=sys.stderr)
            return 2
        several = frame["member"].dropna().nunique() > 1
        frame = frame[frame["member"] == args.member]
        name = f"{name}, member {args.member}" if several else name
    evals = frame.dropna(subset=["score/valid"]) if "score/valid" in frame else frame.iloc[:0]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for key in ("loss/d", "loss/g", "loss/gp", "loss/v"):
        if key in frame:
            left.plot(frame["epoch"], frame[key], label=key, lw=1)
    left.set(xlabel="epoch", title="losses")
    left.legend()
    for key in ("score/valid", "score/unique", "score/novel", "score/qed"):
        if key in evals:
            right.plot(evals["epoch"], evals[key], marker="o", label=key.split("/")[1])
    right.set(xlabel="epoch", ylim=(0, 1), title=f"evaluation ({name})")
    right.legend()
    fig.tight_layout()
    out = args.out or str(Path(args.run_dir) / "curve.png")
    fig.savefig(out, dpi=110)
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
