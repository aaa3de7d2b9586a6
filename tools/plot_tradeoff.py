"""Uniqueness against validity of every full-length configuration of issues 10 and 25 (mean ± std
over seeds, 10,000 samples each), without RL and with RL on QED, with the goals drawn in.

python tools/plot_tradeoff.py --out docs/evidence/tradeoff.png      (needs matplotlib)

Reads the committed study tables (sweeps/<study>/results.csv), the paper preset's
results/results.json, the default's re-run, docs/evidence/latent_rerun.json, and the mixtures' rows
(sweeps/mixtures/*.json, tools/evaluate_members.py --mixture; one point per mixture, at T 1);
a configuration whose table is missing is skipped with a notice.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# (label, study folder under sweeps/ or a JSON file of runs (a tuple: several, their rows
# together), variant or objective, RL?); a mixture's "seeds" are its independent mixtures (one
# mixture: no error bar)
CONFIGS = [
    ("paper", "results/results.json", "none", False),
    ("paper", "results/results.json", "qed", True),
    ("diverse", "finalists", "diverse_no_rl", False),
    ("diverse", "finalists", "diverse", True),
    ("conditional", "finalists", "conditional_no_rl", False),
    ("conditional", "finalists", "conditional", True),
    ("balanced", "finalists", "conditional_balanced_no_rl", False),
    ("balanced", "finalists", "conditional_balanced", True),
    ("valence", "finalists", "balanced_valence5_no_rl", False),
    ("valence", "finalists", "balanced_valence5", True),
    ("ema", "finalists-ema", "valence_ema_no_rl", False),
    ("ema", "finalists-ema", "valence_ema", True),
    ("latent (default)", "ema-zdim", "zdim128", False),
    ("latent (default)", "ema-zdim", "zdim128_rl", True),
    ("latent, re-run", "latent-rerun", None, False),
    ("latent, re-run", "docs/evidence/latent_rerun.json", None, True),
    ("latent, z 256", "latent-zdim", "zdim256", False),
    ("latent, 5 seeds (issue 25)", "uniqueness-finalists", "latent", False),
    ("energy (latent + energy distance 5)", "uniqueness-finalists", "energy5", False),
    ("energy (latent + energy distance 5)", "energy-rl", None, True),
    ("valence, 50 epochs", "longer", "no_rl_50ep", False),
    ("valence, λ 0.8", "rl-diversity", "lam08", True),
    ("valence, λ 0.7", "rl-diversity", "lam07", True),
    ("valence, λ 0.5", "rl-weight", "lam05", True),
    ("ema, λ 0.8", "ema-lambda", "lam08", True),
    ("ema, tilt 20", "reward-tilt", "tilt20", True),
    ("ema, tilt 30", "reward-tilt", "tilt30", True),
    ("ema, tilt 25, λ 0.85", "reward-tilt3", "tilt25_lam085", True),
    ("mixture of 5 latent runs", "sweeps/mixtures/latent-30ep-k5.json", None, False),
    (
        "mixtures of 5 energy runs, 45 epochs",
        (
            "sweeps/mixtures/energy5-45ep-k5.json",
            "sweeps/mixtures/energy5-45ep-k5-s5-9.json",
            "sweeps/mixtures/energy5-45ep-k5-s10-14-s20-24.json",
            "sweeps/mixtures/energy5-45ep-k5-s15-19.json",
        ),
        None,
        False,
    ),
    (
        "mixtures of 8 energy runs, 45 epochs",
        (
            "sweeps/mixtures/energy5-45ep-k8.json",
            "sweeps/mixtures/energy5-45ep-k8-s10-14-s20-22.json",
        ),
        None,
        False,
    ),
    ("mixture of 3 latent runs (shipped)", "sweeps/mixtures/rl-k3.json", None, True),
    ("mixtures of 3 ema runs, tilt 25, λ 0.85", "sweeps/mixtures/ema-tilt25-k3x3.json", None, True),
    (
        "latent runs alone, seeds 3–8 (populations of 3)",
        "sweeps/mixtures/rl-singles-s3-s8.json",
        None,
        True,
    ),
]
GOALS = {False: (90.0, 50.0), True: (95.0, 30.0)}  # issue 10: (valid ≥, unique ≥) in %
TARGETS = {False: (90.0, 60.0), True: (95.0, 40.0)}  # issue 25's targets, likewise


def points(sweeps: Path, root: Path = ROOT) -> list[tuple[str, bool, list, list, str]]:
    """(label, rl, valid %, unique %, count) per configuration, one value per seed: from a study's
    results.csv (its ``variant`` rows, or all its rows for ``None``) or a JSON file of runs
    (those with that ``objective``, or all)."""
    import pandas as pd

    out = []
    for label, source, key, rl in CONFIGS:
        files = [root / f for f in source] if isinstance(source, tuple) else None
        if files is None and source.endswith(".json"):
            files = [root / source]
        path = sweeps / source / "results.csv" if files is None else files[0]
        path = next((f for f in files or [] if not f.is_file()), path)
        if not path.is_file():
            print(f"notice: {path} missing, {label} skipped", file=sys.stderr)
            continue
        if files is not None:
            blobs = [json.loads(f.read_text()) for f in files]
            if isinstance(blobs[0], list):  # tools/evaluate_members.py rows: those at T 1
                runs = [r for b in blobs for r in b if r["temperature"] == 1]
                runs = [r for r in runs if "bond_temperature" not in r]
            else:
                runs = [r for b in blobs for r in b["runs"] if key in (None, r.get("objective"))]
            valid, unique = [r["valid"] for r in runs], [r["unique"] for r in runs]
            sizes = {len(r["seeds"]) for r in runs if "seeds" in r}
        else:
            frame = pd.read_csv(path)
            frame = frame[frame["state"] == "complete"]
            if key is not None:
                frame = frame[frame["variant"] == key]
            valid, unique = list(frame["final_valid"]), list(frame["final_unique"])
            sizes = set()
        n = len(valid)
        count = f"{n} seed{'s' * (n > 1)}"
        if sizes:  # mixtures: each point's K members are seeds of their own
            count = f"{n} mixture{'s' * (n > 1)} of {'/'.join(map(str, sorted(sizes)))} seeds"
        if valid:
            out.append((label, rl, [100 * v for v in valid], [100 * u for u in unique], count))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "docs" / "tradeoff.png"), help="PNG path")
    parser.add_argument("--sweeps", default=str(ROOT / "sweeps"), help="study folders")
    args = parser.parse_args(argv)
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("error: plotting needs matplotlib (pip install matplotlib)", file=sys.stderr)
        return 2
    data = points(Path(args.sweeps))
    if not data:
        print("error: no study results found", file=sys.stderr)
        return 2
    fig, axes = plt.subplots(1, 2, figsize=(14, 7.5))
    colours = plt.get_cmap("tab20").colors
    order = list(dict.fromkeys(label for label, *_ in CONFIGS))  # one colour per label
    for ax, rl in zip(axes, (False, True), strict=True):
        goal_valid, goal_unique = GOALS[rl]
        ax.axvline(goal_valid, color="grey", ls="--", lw=0.8)
        ax.axhline(goal_unique, color="grey", ls="--", lw=0.8)
        ax.fill_between([goal_valid, 100], goal_unique, 100, color="green", alpha=0.1, lw=0)
        target_valid, target_unique = TARGETS[rl]
        ax.fill_between([target_valid, 100], target_unique, 100, color="blue", alpha=0.08, lw=0)
        top = max(goal_unique, target_unique) + 5
        for label, _, valid, unique, count in (d for d in data if d[1] == rl):
            i = order.index(label)
            top = max(top, max(unique) + 3)
            sd = (statistics.stdev(valid), statistics.stdev(unique)) if len(valid) > 1 else (0, 0)
            style = {"fmt": "osD^vP*X<>"[i % 10], "color": colours[i % len(colours)]}
            if "mixture" in count:  # mixtures stand apart: large stars in dark colours
                m = [d[0] for d in data if "mixture" in d[4]].index(label)
                dark = ("black", "purple", "darkred", "darkgreen", "saddlebrown")
                style = {"fmt": "*", "ms": 14, "color": dark[m % len(dark)]}
            ax.errorbar(
                statistics.fmean(valid),
                statistics.fmean(unique),
                xerr=sd[0],
                yerr=sd[1],
                capsize=2,
                label=f"{label} ({count})",
                **style,
            )
        ax.set(
            xlabel="valid (%, strict)",
            ylabel="unique (% of valid, 10,000 samples)",
            title="RL on QED (λ 0.9 unless named)" if rl else "no RL (λ 1)",
        )
        ax.set_ylim(top=top)
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=2)
        ax.grid(alpha=0.3)
    fig.suptitle(
        "Full-length runs, mean ± std over seeds; shaded: issue 10's goal (green), "
        "issue 25's target (blue)"
    )
    fig.tight_layout()
    fig.savefig(args.out, dpi=120)
    plt.close(fig)
    print(f"wrote {args.out} ({len(data)} configurations)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
