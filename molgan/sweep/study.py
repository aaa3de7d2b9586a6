"""The Optuna side of a study: storage, samplers, pruners, a trial's parameters, the states
workers share (dead workers' trials re-queued, drain, failure and exhaustion marks), progress.

A worker holds a lock file per trial, so a RUNNING trial whose lock is free belongs to a dead
worker and is re-queued (the journal storage has no heartbeat). Each worker's sampler has its
own seed, derived from the study seed and the worker's number. The worker loop: ``worker``;
launching and following: ``launcher``.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

from molgan import rundir
from molgan.sweep.results import GRID_ATTR, trial_params
from molgan.sweep.runner import is_free
from molgan.sweep.spec import (
    DEFAULT_WARMUP,
    VARIANT,
    StudySpec,
    _key,
    _param,
)

FAILED = "failed"  # study user attribute: why the study stopped (a settings or data error)
LAUNCH = "launch"  # study user attribute: how many times it was launched (errors count per launch)
WORKERS = "workers_started"  # study user attribute: workers numbered so far (sampler seeds)
EXHAUSTED = "exhausted"  # study user attribute: a search that keeps drawing settings it has run
DUPLICATE = "duplicate_of"  # trial user attribute: a search trial that repeated another's settings


class StudyFailed(ValueError):
    """A trial failed for a reason no retry can fix, or too many trials failed."""


def default_storage(root: Path) -> str:
    """The embedded default: a journal file in the study folder (nothing to start)."""
    return f"journal:{root / 'journal.log'}"


def _storage(url: str):
    import optuna

    if url.startswith("journal:"):
        from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

        path = url.split(":", 1)[1]
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        return optuna.storages.JournalStorage(JournalFileBackend(path, JournalFileOpenLock(path)))
    if url.startswith("sqlite:///"):  # SQLite creates its file, not its folder
        path = url[len("sqlite:///") :].split("?", 1)[0]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
    return url  # an RDB URL (sqlite:///, postgresql://, mysql://) Optuna understands


def storage_exists(url: str) -> bool:
    """Whether a file storage exists (a server database is taken to exist)."""
    if url.startswith("journal:"):
        return Path(url.split(":", 1)[1]).is_file()
    if url.startswith("sqlite:///"):
        return Path(url[len("sqlite:///") :].split("?", 1)[0]).is_file()
    return True


def worker_seed(spec: StudySpec, worker: int) -> int:
    """The sampler seed of worker number ``worker`` of the study: distinct per worker, fixed by
    the study seed (a restarted worker has a new number, so a new seed)."""
    digest = hashlib.sha256(f"{spec.name}/{spec.seed}/{worker}".encode()).hexdigest()
    return int(digest[:8], 16)


def _sampler(spec: StudySpec, seed: int):
    import optuna

    samplers = {
        "tpe": optuna.samplers.TPESampler,
        "random": optuna.samplers.RandomSampler,
        "nsga2": optuna.samplers.NSGAIISampler,
    }
    return samplers[spec.sampler](seed=seed)


def make_pruner(spec: StudySpec, steps: int):
    """The study file's pruner for runs of ``steps`` steps: none before ``warmup`` (default 0.3)
    of them, unless ``n_warmup_steps`` / ``min_resource`` say otherwise."""
    import optuna

    options = spec.pruner_options
    warm = int(options.get("warmup", DEFAULT_WARMUP) * steps)
    if spec.pruner == "median":
        return optuna.pruners.MedianPruner(
            n_startup_trials=options.get("n_startup_trials", 3),
            n_warmup_steps=options.get("n_warmup_steps", warm),
        )
    if spec.pruner == "halving":
        return optuna.pruners.SuccessiveHalvingPruner(
            min_resource=options.get("min_resource", max(warm, 1)),
            reduction_factor=options.get("reduction_factor", 3),
        )
    return optuna.pruners.NopPruner()


def open_study(spec: StudySpec, storage: str, create: bool = False, seed: int | None = None):
    """The Optuna study of ``spec``; ``create`` makes it (once) and enqueues its grid.
    ``seed``: the sampler's (default: the study seed's worker 0)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if not create and not storage_exists(storage):
        raise ValueError(f"study {spec.name} does not exist yet ({storage}); use run")
    kwargs = dict(
        study_name=spec.name,
        storage=_storage(storage),
        sampler=_sampler(spec, worker_seed(spec, 0) if seed is None else seed),
        pruner=make_pruner(spec, 0),  # the worker sets each trial's own (``make_pruner``)
    )
    if not create:
        try:
            return optuna.load_study(**kwargs)
        except KeyError:
            raise ValueError(
                f"study {spec.name} does not exist yet in {storage}; use run"
            ) from None
    study = optuna.create_study(
        **kwargs, directions=[d for _, d in spec.objectives], load_if_exists=True
    )
    if spec.grid:  # enqueue the grid points no live trial holds (a grown grid adds its new ones)
        from optuna.trial import TrialState

        held = {  # a failed trial without a result (dead worker, error) is queued again
            _key(trial_params(t))
            for t in study.get_trials(deepcopy=False)
            if t.state != TrialState.FAIL or "result" in t.user_attrs
        }
        for point in spec.grid_points:
            if _key(point) not in held:
                study.enqueue_trial(point)
    return study


def _grid_param(trial, axis: str, value, values: list):
    """Record a grid value as an Optuna parameter, so that Optuna's tools (dashboard,
    ``trials_dataframe``) see it: numbers as one-point int/float ranges (compatible across a
    grown grid), other values as a categorical over the axis. Returns False when Optuna refuses
    (a categorical axis that grew since its first trial): the value stays a user attribute."""
    numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
    try:
        if numbers and all(isinstance(v, int) for v in values):
            trial.suggest_int(axis, value, value)
        elif numbers:
            trial.suggest_float(axis, float(value), float(value))
        else:
            trial.suggest_categorical(axis, values)
    except ValueError:
        return False
    return True


def _params(trial, spec: StudySpec, fixed: dict) -> dict:
    """Every swept setting of ``trial``: its grid point from ``fixed`` (its enqueued values),
    searched settings asked of the sampler. Grid values are Optuna parameters and also a user
    attribute (the grid's record, kept when a grown categorical axis cannot be a parameter)."""
    params = {}
    for axis, values in spec.grid.items():
        choices = list(values) if axis == VARIANT else [_param(v) for v in values]
        if axis not in fixed or fixed[axis] not in choices:
            raise ValueError(f"trial {trial.number}: {axis}={fixed.get(axis)!r} is not in the grid")
        params[axis] = fixed[axis]
    if params:
        trial.set_user_attr(GRID_ATTR, params)
        for axis, value in params.items():
            values = list(spec.grid[axis]) if axis == VARIANT else spec.grid[axis]
            values = [_param(v) for v in values]
            _grid_param(trial, axis, value, values)
    for name, dist in spec.space.items():
        if "choices" in dist:
            params[name] = trial.suggest_categorical(name, [_param(v) for v in dist["choices"]])
        elif isinstance(dist["low"], int) and isinstance(dist["high"], int):
            params[name] = trial.suggest_int(
                name, dist["low"], dist["high"], log=dist.get("log", False)
            )
        else:
            params[name] = trial.suggest_float(
                name, float(dist["low"]), float(dist["high"]), log=dist.get("log", False)
            )
    return params


def _trial_lock(root: Path, number: int) -> Path:
    return root / "locks" / f"trial-{number}.lock"


def reap_orphans(study, spec: StudySpec, root: Path) -> list[int]:
    """Fail the RUNNING trials whose worker died (their lock is free) and queue their settings
    again: the new trial resumes the same run directory from its checkpoint."""
    from optuna.trial import TrialState

    reaped = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if is_free(_trial_lock(root, trial.number)):
            study.tell(trial.number, state=TrialState.FAIL, skip_if_finished=True)
            study.set_user_attr(f"orphan-{trial.number}", time.time())
            params = trial_params(trial)
            if set(spec.grid) <= set(params) and params:  # else it died before it had its point
                study.enqueue_trial(params, user_attrs={"retry_of": trial.number})
            reaped.append(trial.number)
    return reaped


DRAIN = "DRAIN"
"""A file in the study folder that tells every worker to finish its trial and take no other."""


def drain(root: str | Path) -> Path:
    """Ask the study's workers, wherever they run, to stop after their current trial (the
    trials left stay queued; ``launch`` lifts the request).

    Raises:
        ValueError: no study has run in ``root`` (nothing to drain; nothing is created).
    """
    path = Path(root) / DRAIN
    if not path.parent.is_dir():
        raise ValueError(f"no study has run in {root}: nothing to drain")
    path.write_text(f"requested {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
    return path


def counts(study) -> dict:
    """``used`` (finished, pruned, running or failed with a result: what the budget counts),
    ``waiting``, ``errors`` (trials that raised, this launch) and ``repeats`` (search trials
    that repeated another's settings; they use no budget)."""
    from optuna.trial import TrialState

    launch_no = study.user_attrs.get(LAUNCH, 0)
    out = {"used": 0, "waiting": 0, "errors": 0, "repeats": 0}
    for t in study.get_trials(deepcopy=False):
        if DUPLICATE in t.user_attrs:
            out["repeats"] += 1
        elif t.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING):
            out["used"] += 1
        elif t.state == TrialState.FAIL and "result" in t.user_attrs:
            out["used"] += 1
        elif t.state == TrialState.FAIL and t.user_attrs.get(LAUNCH) == launch_no:
            out["errors"] += "error" in t.user_attrs
        elif t.state == TrialState.WAITING:
            out["waiting"] += 1
    return out


def trials_left(study, spec: StudySpec) -> int:
    """Trials still to run: the waiting ones, and for a search the unused budget."""
    c = counts(study)
    if spec.grid:
        return c["waiting"]
    return 0 if study.user_attrs.get(EXHAUSTED) else max(spec.budget - c["used"], c["waiting"])


def _should_stop(study, spec: StudySpec, root: Path) -> str | None:
    """Why a worker takes no further trial, or None."""
    if (root / DRAIN).exists():
        return "drained"
    failed = study.user_attrs.get(FAILED)
    if failed:
        return failed
    if study.user_attrs.get(EXHAUSTED):
        return "done"
    c = counts(study)
    if c["errors"] >= spec.max_failures:
        return f"{c['errors']} trials failed (max_failures = {spec.max_failures})"
    if not c["waiting"] and (spec.grid or c["used"] >= spec.budget):
        return "done"  # a grid runs only its enqueued points; a search its budget
    return None


def count_done(trials, spec: StudySpec) -> int:
    """How much of the study is done: the grid points of this study file with a finished result
    (a point trained twice, or a failed trial kept beside its re-run, counts once; a point the
    file no longer holds not at all), or for a search its finished trials (repeats excluded)."""
    from optuna.trial import TrialState

    finished = [
        t
        for t in trials
        if t.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
        and "result" in t.user_attrs
        and DUPLICATE not in t.user_attrs
    ]
    if not spec.grid:
        return len(finished)
    points = {_key(p) for p in spec.grid_points}
    return len(points & {_key(trial_params(t)) for t in finished})


def status(study, spec: StudySpec, root: Path) -> str:
    """Counts per trial state and one line per unfinished or erroneous trial."""
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    by_state = {s.name.lower(): sum(t.state == s for t in trials) for s in TrialState}
    shown = {k: f"{n} {k}" for k, n in by_state.items() if n}
    dead = {  # RUNNING in the storage, but no worker holds their lock: stopped or killed
        t.number
        for t in trials
        if t.state == TrialState.RUNNING and is_free(_trial_lock(root, t.number))
    }
    if dead:
        running = by_state["running"] - len(dead)
        shown["running"] = (
            f"{running} running, {len(dead)} stopped (no live worker; `run` resumes them)"
        )
    reaped = sum(f"orphan-{t.number}" in study.user_attrs for t in trials)
    if reaped and "fail" in shown:  # not errors: a stopped worker's trials, queued again
        shown["fail"] += f" ({reaped} interrupted and queued again)"
    c = counts(study)
    lines = [
        f"study {spec.name}: {spec.budget} trials, {count_done(trials, spec)} done, "
        f"{trials_left(study, spec)} left; "
        + ", ".join(shown.values())
        + (f"; {c['repeats']} repeated settings (not counted)" if c["repeats"] else "")
        + ("; draining: workers stop after their trial" if (root / DRAIN).exists() else "")
    ]
    if study.user_attrs.get(FAILED):
        lines.append(f"  study failed: {study.user_attrs[FAILED]}")
    if study.user_attrs.get(EXHAUSTED):
        lines.append(f"  search ended before its budget: {study.user_attrs[EXHAUSTED]}")
    for t in trials:
        if t.state in (TrialState.RUNNING, TrialState.WAITING):
            where = _progress(root, t)
            state = "stopped (no live worker)" if t.number in dead else t.state.name.lower()
            lines.append(f"  trial {t.number} {state} {trial_params(t)}{where}")
        elif "error" in t.user_attrs:
            lines.append(f"  trial {t.number} error: {t.user_attrs['error']}")
    return "\n".join(lines)


def _progress(root: Path, trial) -> str:
    """Where a trial is, as ``", step S"``: its run's last logged step, or that of the population
    it trains in (a member writes its own run folder only when the population ends); "" before
    the first log row."""
    run, pack = trial.user_attrs.get("run_dir"), trial.user_attrs.get("pack_dir")
    for folder, note in ((run, ""), (pack, f" of its population {pack}")):
        rows = [r for r in rundir.read_log(root / folder) if "step" in r] if folder else []
        if rows:
            return f", step {rows[-1]['step']}{note}"
    return ""
