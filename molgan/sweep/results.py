"""Study results: a DataFrame of every finished trial, a markdown table, plots.

Files are named after the study and written atomically: ``results.{csv,md,png}`` in a folder
named after the study (the default ``sweeps/<name>``), ``results-<name>.*`` in a folder that
other studies may share. Searches add Optuna's own history, slice and importance plots.
"""

from __future__ import annotations

import os
from pathlib import Path

from molgan import metrics
from molgan.sweep.spec import StudySpec

GRID_ATTR = "grid"  # the user attribute holding a trial's grid point


def trial_params(trial) -> dict:
    """A frozen trial's parameters: its grid point (a user attribute) and searched settings; a
    WAITING trial has them only as its enqueued fixed params."""
    params = {**trial.params, **trial.user_attrs.get(GRID_ATTR, {})}  # grid values as written
    return params or dict(trial.system_attrs.get("fixed_params", {}))


def results_frame(study, spec: StudySpec, root: Path):
    """One row per finished trial: swept settings, state, objectives, final and best metrics,
    run directory, minutes; ``pareto`` marks the Pareto front (the best trial for one
    objective). Search trials that repeated another's settings are left out."""
    import pandas as pd
    from optuna.trial import TrialState

    rows = []
    points = [dict(p) for p in spec.grid_points]
    for t in study.get_trials(deepcopy=False):
        params = trial_params(t)
        if points and params not in points:
            continue  # a grid point this version of the study file no longer holds
        if t.state == TrialState.FAIL and "result" not in t.user_attrs:
            continue  # a dead worker's trial (re-queued) or an error (see status), not a result
        if t.state not in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL):
            continue
        if "duplicate_of" in t.user_attrs:
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


def results_paths(spec: StudySpec, root: Path) -> dict[str, Path]:
    """Where a study's results go: ``results.*`` in its own folder, ``results-<name>.*`` in a
    folder of another name (which other studies may share)."""
    stem = "results" if Path(root).name == spec.name else f"results-{spec.name}"
    return {ext: Path(root) / f"{stem}.{ext}" for ext in ("csv", "md", "png")}


def _atomic(path: Path, write) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_results(frame, spec: StudySpec, root: Path, study=None) -> dict[str, Path]:
    """``results.csv`` (every trial), ``results.md`` (mean ± std over seeds per setting and
    state), ``results.png`` (objective against the swept setting, or the objectives against
    each other) and, for a search with ``study``, Optuna's history, slice and parameter
    importance plots (``results-history.png`` …). Returns the paths written."""
    root.mkdir(parents=True, exist_ok=True)
    paths = results_paths(spec, root)
    _atomic(paths["csv"], lambda p: frame.to_csv(p, index=False))
    _atomic(paths["md"], lambda p: p.write_text(markdown_table(frame, spec) + "\n"))
    written = {"csv": paths["csv"], "md": paths["md"]}
    try:
        _atomic(paths["png"], lambda p: plot(frame, spec, p))
        written["png"] = paths["png"]
        if study is not None and spec.space:
            written |= optuna_plots(study, spec, paths["png"])
    except ImportError:
        pass  # matplotlib is optional
    return written


def optuna_plots(study, spec: StudySpec, png: Path) -> dict[str, Path]:
    """Optuna's own plots of a search (first objective): optimisation history, slice (the
    objective against each searched setting) and parameter importances (from 3 trials)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import optuna.visualization.matplotlib as ovm
    from optuna.trial import TrialState

    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    name = spec.objectives[0][0]
    target = (lambda t: t.values[0]) if len(spec.objectives) > 1 else None
    plots = {"history": ovm.plot_optimization_history, "slice": ovm.plot_slice}
    if len(complete) >= 3 and len(spec.space) >= 2:
        plots["importance"] = ovm.plot_param_importances
    written = {}
    for kind, draw in plots.items():
        if not complete:
            break
        path = png.with_name(png.stem + f"-{kind}.png")
        try:
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # Optuna marks these plots experimental
                axes = draw(study, target=target, target_name=name)
        except (ValueError, RuntimeError):
            continue  # e.g. importances of settings that never varied
        figure = (axes.flat[0] if hasattr(axes, "flat") else axes).figure
        figure.set_size_inches(max(7, 3.5 * len(spec.space)) if kind == "slice" else 7, 5)
        figure.tight_layout()
        _atomic(path, lambda p, figure=figure: figure.savefig(p, dpi=120, format="png"))
        plt.close(figure)
        written[kind] = path
    return written


def _cell(value) -> str:
    """A swept value for a table: floats rounded to 4 significant digits."""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def markdown_table(frame, spec: StudySpec) -> str:
    """Mean ± std over seeds of the objectives and final metrics, one row per setting and
    state (finished runs apart from pruned ones, whose metrics are from their pruning step)."""
    import statistics

    swept = [c for c in [*spec.grid, *spec.space] if c != "seed" and c in frame.columns]
    objectives = [f"objective:{e}" for e, _ in spec.objectives if f"objective:{e}" in frame]
    columns = [
        c
        for c in (
            "valid",
            "unique",
            "novel",
            "vun",
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
    names = [*swept, "state", "seeds", *[o.replace("objective:", "objective ") for o in objectives]]
    head = "| " + " | ".join([*names, *columns, "minutes"]) + " |"
    lines = [head, "|" + "---|" * (len(names) + len(columns) + 1)]
    groups = frame.groupby([*swept, "state"], dropna=False, sort=False)
    for key, group in groups:
        key = key if isinstance(key, tuple) else (key,)
        cells = [_cell(k) for k in key] + [str(len(group))]
        for c in [*objectives, *columns, "minutes"]:
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
    objective: the objective against the first swept setting (the study's question), one point
    per run, pruned runs hollow; uniqueness against validity when nothing but seeds is swept."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [f"objective:{e}" for e, _ in spec.objectives]
    finished = frame[frame["state"].isin(["complete", "pruned"])]
    fig, ax = plt.subplots(figsize=(7, 5))
    if len(names) >= 2:
        done = frame[frame["state"] == "complete"]
        x, y = names[0], names[1]
        ax.scatter(done[x], done[y], alpha=0.7, label="runs")
        front = done[done["pareto"]]
        ax.scatter(front[x], front[y], color="red", label="Pareto front")
        ax.legend(fontsize=9)
        ax.set_xlabel(x.replace("objective:", ""))
        ax.set_ylabel(y.replace("objective:", ""))
    else:
        swept = [c for c in [*spec.grid, *spec.space] if c != "seed" and c in frame.columns]
        objective = names[0] if names[0] in frame else None
        if swept and objective:
            setting = swept[0]
            values = list(dict.fromkeys(finished[setting]))
            numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
            position = (lambda v: v) if numeric else {v: i for i, v in enumerate(values)}.get
            for state, marker in (("complete", "o"), ("pruned", "o")):
                part = finished[finished["state"] == state]
                if part.empty:
                    continue
                ax.scatter(
                    [position(v) for v in part[setting]],
                    part[objective],
                    marker=marker,
                    facecolors="none" if state == "pruned" else None,
                    edgecolors="gray" if state == "pruned" else None,
                    alpha=0.8,
                    label=f"{state} runs" if state == "complete" else "pruned (at pruning step)",
                )
            if not numeric:
                ax.set_xticks(range(len(values)), [_cell(v) for v in values], rotation=30)
            elif spec.space.get(setting, {}).get("log"):
                ax.set_xscale("log")
            ax.set_xlabel(setting)
            ax.set_ylabel(names[0].replace("objective:", ""))
            ax.legend(title=f"each point: one run ({len(finished)})", fontsize=9)
        else:
            ax.scatter(100 * finished["final_valid"], 100 * finished["final_unique"], alpha=0.8)
            ax.set_xlabel("valid (%, strict)")
            ax.set_ylabel("unique (%)")
    ax.set_title(f"study {spec.name}")
    fig.tight_layout()
    fig.savefig(path, dpi=120, format="png")
    plt.close(fig)
