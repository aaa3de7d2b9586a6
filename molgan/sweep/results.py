"""Study results: a DataFrame of every finished trial, a markdown table, a plot."""

from __future__ import annotations

from pathlib import Path

from molgan import metrics
from molgan.sweep.spec import StudySpec

GRID_ATTR = "grid"  # the user attribute holding a trial's grid point


def trial_params(trial) -> dict:
    """A frozen trial's parameters: its grid point (a user attribute) and searched settings; a
    WAITING trial has them only as its enqueued fixed params."""
    params = {**trial.user_attrs.get(GRID_ATTR, {}), **trial.params}
    return params or dict(trial.system_attrs.get("fixed_params", {}))


def results_frame(study, spec: StudySpec, root: Path):
    """One row per finished trial: swept settings, objectives, final and best metrics, run
    directory, minutes; ``pareto`` marks the Pareto front (the best trial for one objective)."""
    import pandas as pd
    from optuna.trial import TrialState

    rows = []
    points = [dict(p) for p in spec.grid_points]
    for t in study.get_trials(deepcopy=False):
        params = trial_params(t)
        if points and params not in points:
            continue  # a grid point this version of the study file no longer holds
        if t.state == TrialState.FAIL and "result" not in t.user_attrs:
            continue  # a dead worker's trial (re-queued), not a result
        if t.state not in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL):
            continue
        result = t.user_attrs.get("result", {})
        row = {"trial": t.number, "state": t.state.name.lower(), **params}
        for (expr, _), value in zip(spec.objectives, t.values or [], strict=False):
            row[f"objective:{expr}"] = value
        row |= {f"final_{k}": v for k, v in result.get("final", {}).items()}
        row |= {f"best_{k}": v for k, v in result.get("best", {}).items()}
        row |= {
            "steps": result.get("steps"),
            "minutes": result.get("minutes"),
            "stop": result.get("stop"),
            "run_dir": str(root / t.user_attrs.get("run_dir", "")),
        }
        rows.append(row)
    frame = pd.DataFrame(rows)
    if not frame.empty:
        best = {t.number for t in study.best_trials} if any(frame["state"] == "complete") else set()
        frame["pareto"] = frame["trial"].isin(best)
    return frame


def write_results(frame, spec: StudySpec, root: Path) -> None:
    """``results.csv`` (every trial), ``results.md`` (mean ± std over seeds per setting) and
    ``results.png`` (the objectives against each other, or the first against a swept value)."""
    root.mkdir(parents=True, exist_ok=True)
    frame.to_csv(root / "results.csv", index=False)
    (root / "results.md").write_text(markdown_table(frame, spec) + "\n")
    try:
        plot(frame, spec, root / "results.png")
    except ImportError:
        pass  # matplotlib is optional


def markdown_table(frame, spec: StudySpec) -> str:
    """Mean ± std over seeds of the final metrics, one row per setting."""
    import statistics

    swept = [c for c in [*spec.grid, *spec.space] if c != "seed" and c in frame.columns]
    columns = [
        c
        for c in (
            "valid",
            "unique",
            "novel",
            "qed",
            "sa",
            "logp",
            "fcd",
            "distinct",
            "top100_share",
            "f_ratio",
            "small_ratio",
        )
        if f"final_{c}" in frame.columns
    ]
    head = "| " + " | ".join([*swept, "seeds", *columns, "minutes"]) + " |"
    lines = [head, "|" + "---|" * (len(swept) + len(columns) + 2)]
    groups = frame.groupby(swept, dropna=False, sort=False) if swept else [((), frame)]
    for key, group in groups:
        key = key if isinstance(key, tuple) else (key,)
        cells = [str(k) for k in key] + [str(len(group))]
        for c in [*columns, "minutes"]:
            column = group[f"final_{c}"] if f"final_{c}" in group else group[c]
            values = [float(v) for v in column if v is not None and v == v]
            scale = 100 if c in metrics.PERCENT else 1
            if not values:
                cells.append("n/a")
                continue
            mean = statistics.fmean(values) * scale
            digits = 0 if c == "distinct" else 1 if scale == 100 or c == "minutes" else 3
            spread = f" ± {statistics.stdev(values) * scale:.{digits}f}" if len(values) > 1 else ""
            cells.append(f"{mean:.{digits}f}{spread}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(frame, spec: StudySpec, path: Path) -> None:
    """Two or more objectives: the first two against each other, Pareto front marked. One
    objective: uniqueness against validity of every run, labelled by its setting."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    done = frame[frame["state"] == "complete"]
    names = [f"objective:{e}" for e, _ in spec.objectives]
    fig, ax = plt.subplots(figsize=(7, 5))
    if len(names) >= 2:
        x, y = names[0], names[1]
        ax.scatter(done[x], done[y], alpha=0.7)
        front = done[done["pareto"]]
        ax.scatter(front[x], front[y], color="red", label="Pareto front")
        ax.legend()
    else:
        x, y = "final_valid", "final_unique"
        swept = [c for c in [*spec.grid, *spec.space] if c != "seed" and c in done.columns]
        groups = done.groupby(swept[0], sort=False) if swept else [("runs", done)]
        markers = "osD^vP*X<>"  # 10 colours × 10 markers: up to 100 settings stay apart
        for i, (label, group) in enumerate(groups):
            ax.scatter(
                100 * group[x],
                100 * group[y],
                label=str(label),
                alpha=0.8,
                marker=markers[(i // 10) % len(markers)],
            )
        ax.legend(fontsize=6, ncol=2)
        ax.set_xlabel("valid (%, strict)")
        ax.set_ylabel("unique (%)")
    if len(names) >= 2:
        ax.set_xlabel(x.replace("objective:", ""))
        ax.set_ylabel(y.replace("objective:", ""))
    ax.set_title(f"study {spec.name}")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
