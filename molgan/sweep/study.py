"""The Optuna side of a study: storage, trials, workers (via submitit) and progress.

A worker asks for trials until the grid or the budget is used up; it holds a lock file per
trial, so a RUNNING trial whose lock is free belongs to a dead worker and is re-queued (the
journal storage has no heartbeat). The launcher creates the study once, before any worker
starts (two workers creating it at once would collide), and tops the workers up to ``workers``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import time
import uuid
from pathlib import Path

from molgan import rundir
from molgan.sweep.results import GRID_ATTR, results_frame, trial_params, write_results
from molgan.sweep.runner import is_free, locked, run_trial
from molgan.sweep.spec import VARIANT, StudySpec, _param, load_spec, objective_value, resolve


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
    return url  # an RDB URL (sqlite:///, postgresql://, mysql://) Optuna understands


def open_study(spec: StudySpec, storage: str, create: bool = False):
    """The Optuna study of ``spec``; ``create`` makes it (once) and enqueues its grid."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    samplers = {
        "tpe": optuna.samplers.TPESampler,
        "random": optuna.samplers.RandomSampler,
        "nsga2": optuna.samplers.NSGAIISampler,
    }
    pruners = {
        "none": optuna.pruners.NopPruner(),
        "median": optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=0),
        "halving": optuna.pruners.SuccessiveHalvingPruner(),
    }
    kwargs = dict(
        study_name=spec.name,
        storage=_storage(storage),
        sampler=samplers[spec.sampler](seed=0),
        pruner=pruners[spec.pruner],
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

        held = {  # a failed trial without a result (dead worker, deferred) is queued again
            _key(trial_params(t))
            for t in study.get_trials(deepcopy=False)
            if t.state != TrialState.FAIL or "result" in t.user_attrs
        }
        for point in spec.grid_points:
            if _key(point) not in held:
                study.enqueue_trial(point)
    return study


def _key(params: dict) -> str:
    return json.dumps(params, sort_keys=True, default=str)


def _params(trial, spec: StudySpec, fixed: dict) -> dict:
    """Every swept setting of ``trial``: its grid point from ``fixed`` (its enqueued values),
    searched settings asked of the sampler.

    Grid values are kept as a user attribute, not as Optuna parameters: an Optuna categorical
    parameter cannot change its choices, and a study's grid may grow between launches.
    """
    params = {}
    for axis, values in spec.grid.items():
        choices = list(values) if axis == VARIANT else [_param(v) for v in values]
        if axis not in fixed or fixed[axis] not in choices:
            raise ValueError(f"trial {trial.number}: {axis}={fixed.get(axis)!r} is not in the grid")
        params[axis] = fixed[axis]
    if params:
        trial.set_user_attr(GRID_ATTR, params)
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
            if set(spec.grid) <= set(params):  # else it died before it had its point
                study.enqueue_trial(params, user_attrs={"retry_of": trial.number})
            reaped.append(trial.number)
    return reaped


DRAIN = "DRAIN"
"""A file in the study folder that tells every worker to finish its trial and take no other."""


def drain(root: str | Path) -> Path:
    """Ask the study's workers, wherever they run, to stop after their current trial (the
    trials left stay queued; ``launch`` lifts the request)."""
    path = Path(root) / DRAIN
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"requested {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
    return path


def _open_trials(study) -> tuple[int, int]:
    """(finished or running trials, waiting trials), failed ones excluded."""
    from optuna.trial import TrialState

    counts = {s: 0 for s in TrialState}
    for trial in study.get_trials(deepcopy=False):
        counts[trial.state] += 1
    used = counts[TrialState.COMPLETE] + counts[TrialState.PRUNED] + counts[TrialState.RUNNING]
    return used, counts[TrialState.WAITING]


def work(spec_source, root: str, storage: str, threads: int = 1, die_with_parent: bool = False):
    """A worker: run trials until the grid or the budget is used up. Safe to start any number
    of times, anywhere that sees the storage and ``root``; killed, it leaves its trial to be
    re-queued."""
    from optuna.trial import TrialState

    from molgan.train import Interrupted

    if die_with_parent:
        from molgan.pool import _die_with_parent

        _die_with_parent(os.getppid())
        import signal

        signal.signal(signal.SIGINT, signal.default_int_handler)
    spec, root = load_spec(spec_source), Path(root)
    study = open_study(spec, storage)
    with locked(root / "locks" / f"worker-{uuid.uuid4().hex[:8]}.lock"):
        while True:
            if (root / DRAIN).exists():
                return  # asked to stop after the last trial (``drain``)
            with locked(root / "locks" / "study.lock"):
                reap_orphans(study, spec, root)
                used, waiting = _open_trials(study)
                if not waiting and (spec.grid or used >= spec.budget):
                    return  # a grid runs only its enqueued points; a search its budget
                trial = study.ask()
                # its enqueued grid point (a study's trial numbers are its list positions)
                fixed = study.get_trials(deepcopy=False)[trial.number].system_attrs.get(
                    "fixed_params", {}
                )
                held = contextlib.ExitStack()
                held.enter_context(locked(_trial_lock(root, trial.number)))
            try:
                try:
                    params = _params(trial, spec, fixed)
                except ValueError:  # the file's grid may have grown since this worker read it
                    spec = load_spec(spec_source)
                    try:
                        params = _params(trial, spec, fixed)
                    except ValueError as error:  # a stray queued point no grid of the file holds
                        trial.set_user_attr("error", str(error))
                        study.tell(trial, state=TrialState.FAIL)
                        continue
                cfg = dataclasses.replace(resolve(spec, params, root / "runs"), threads=threads)
                trial.set_user_attr("run_dir", str(Path("runs") / cfg.name))
                expr = spec.objectives[0][0]

                def report(step: int, scores: dict, trial=trial, expr=expr, pruner=spec.pruner):
                    value = objective_value(expr, scores)
                    if pruner != "none" and not math.isnan(value):
                        trial.report(value, step)
                        if trial.should_prune():
                            return f"pruned ({pruner} pruner) at step {step}"
                    return None

                result = run_trial(cfg, spec, report)
                trial.set_user_attr("result", json.loads(json.dumps(result, default=float)))
                if (result["stop"] or "").startswith("pruned"):
                    study.tell(trial, state=TrialState.PRUNED)
                    continue
                values = [objective_value(e, result[spec.scored_at]) for e, _ in spec.objectives]
                if any(math.isnan(v) for v in values):
                    study.tell(trial, state=TrialState.FAIL)
                else:
                    study.tell(trial, values)
            except Interrupted:
                return  # SIGINT/SIGTERM: checkpoint written; the trial is re-queued next time
            finally:
                held.close()


def launch(
    spec_source,
    root: str | Path | None = None,
    *,
    storage: str | None = None,
    workers: int = 1,
    executor: str = "local",
    slurm: dict | None = None,
    wait: bool = True,
    poll_s: float = 5.0,
    out=print,
    threads: int = 1,
):
    """Create the study (once), start workers through submitit, report progress, tabulate.

    Args:
        spec_source: a study file or dict.
        root: the study folder (default ``sweeps/<name>``).
        storage: an Optuna storage URL (default: a journal file in ``root``).
        workers: how many workers should run; live ones (e.g. after a launcher was killed) count.
        executor: ``local`` (subprocesses), ``slurm``, or ``debug`` (in this process).
        slurm: submitit Slurm parameters, e.g. ``{"slurm_partition": "gpu", "timeout_min": 600}``.
        wait: follow the study until it is done (else return after starting the workers).
        poll_s: seconds between progress checks.
        threads: torch CPU threads of each local worker (0 = cores // workers). One is as fast
            as two for MolGAN-sized nets, and a second launcher that adds workers cannot then
            oversubscribe the cores (OpenMP teams slow down ~100x when they do). Slurm workers
            take ``cpus_per_task``.

    Returns:
        The results ``DataFrame`` (``results_frame``).
    """
    import submitit

    spec = load_spec(spec_source)
    root = Path(root or Path("sweeps") / spec.name)
    storage = storage or default_storage(root)
    study = open_study(spec, storage, create=True)
    (root / DRAIN).unlink(missing_ok=True)  # running again lifts a drain request
    with locked(root / "locks" / "study.lock"):
        reaped = reap_orphans(study, spec, root)
    if reaped:
        out(f"re-queued trial(s) {reaped} of dead workers: they resume from their checkpoints")
    source = spec_source if isinstance(spec_source, dict) else str(Path(spec_source).resolve())
    live = sum(not is_free(p) for p in (root / "locks").glob("worker-*.lock"))
    new = max(workers - live, 0)
    used, waiting = _open_trials(study)
    if waiting == 0 and (spec.grid or used >= spec.budget):
        new = 0
    if threads < 0:
        raise ValueError(f"threads must be ≥ 0, got {threads}")
    threads = threads or max(1, (os.cpu_count() or 1) // max(workers, 1))
    folder = root / "jobs"
    if executor == "local":
        ex = submitit.LocalExecutor(folder)
        ex.update_parameters(timeout_min=60 * 24 * 365)
    elif executor == "debug":
        ex = submitit.DebugExecutor(folder)
    elif executor == "slurm":
        ex = submitit.AutoExecutor(folder, cluster="slurm")
        ex.update_parameters(**(slurm or {}))
        threads = int((slurm or {}).get("cpus_per_task", 1))
    else:
        raise ValueError(f"executor must be local, slurm or debug, got {executor!r}")
    args = (source, str(root), storage, threads, executor == "local")
    gpus = _local_gpus() if executor == "local" else 0
    jobs = []
    for k in range(new):
        if gpus:  # one GPU per local worker, round robin (not yet run on a GPU machine)
            ex.update_parameters(gpus_per_node=1, visible_gpus=((live + k) % gpus,))
        jobs.append(ex.submit(work, *args))
    out(
        f"study {spec.name}: {spec.budget} trials, {used} done or running, {waiting} waiting; "
        f"{live} live worker(s), {len(jobs)} started ({executor}, {threads} thread(s) each); "
        f"storage {storage}"
    )
    if executor == "debug":
        for job in jobs:
            job.result()
    elif wait:
        try:
            follow(study, spec, root, jobs, poll_s, out)
        except KeyboardInterrupt:
            if executor == "local":
                for job in jobs:
                    job.cancel()  # each worker checkpoints its run; the same command resumes
            out("stopped following; run the same command again to continue the study")
            raise
    frame = results_frame(study, spec, root)
    if not frame.empty:
        write_results(frame, spec, root)
    return frame


def _local_gpus() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def count_done(trials, spec: StudySpec) -> int:
    """How much of the study is done: the grid points of this study file with a finished result
    (a point trained twice, or a failed trial kept beside its re-run, counts once; a point the
    file no longer holds not at all), or for a search its finished trials."""
    from optuna.trial import TrialState

    finished = [
        t
        for t in trials
        if t.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
        and "result" in t.user_attrs
    ]
    if not spec.grid:
        return len(finished)
    points = {_key(p) for p in spec.grid_points}
    return len(points & {_key(trial_params(t)) for t in finished})


def follow(study, spec: StudySpec, root: Path, jobs: list, poll_s: float, out=print) -> None:
    """Print one line per finished trial with its metrics and the study's ETA until the work
    is done (all trials finished and the workers ended)."""
    from optuna.trial import TrialState

    seen, start = set(), time.monotonic()
    finished_states = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
    while True:
        trials = study.get_trials(deepcopy=False)
        for t in trials:
            if t.state in finished_states and t.number not in seen and "result" in t.user_attrs:
                seen.add(t.number)
                result = t.user_attrs.get("result", {})
                final = result.get(spec.scored_at, {})
                shown = " ".join(
                    f"{k} {final[k]:.3f}"
                    for k in ("valid", "unique", "novel", "qed", "fcd")
                    if isinstance(final.get(k), (int, float))
                )
                done = count_done(trials, spec)
                rate = (time.monotonic() - start) / max(len(seen), 1)
                eta = rate * max(spec.budget - done, 0) / 60
                out(
                    f"trial {t.number} {t.state.name.lower()} {trial_params(t)} "
                    f"({result.get('minutes', 0):.1f} min): {shown} | {done}/{spec.budget} "
                    f"done, ETA {eta:.0f} min"
                )
        if all(job.done() for job in jobs):  # our workers ended: is anyone else still working?
            with locked(root / "locks" / "study.lock"):
                reap_orphans(study, spec, root)  # a trial whose worker died is re-queued
            states = {t.state for t in study.get_trials(deepcopy=False)}
            if TrialState.RUNNING not in states:
                if TrialState.WAITING in states:
                    out("trials are left but no worker is running: run the same command again")
                return
        time.sleep(poll_s)


def status(study, spec: StudySpec, root: Path) -> str:
    """Counts per trial state and one line per unfinished trial."""
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    counts = {s.name.lower(): sum(t.state == s for t in trials) for s in TrialState}
    lines = [
        f"study {spec.name}: {spec.budget} trials; "
        + ", ".join(f"{n} {k}" for k, n in counts.items() if n)
        + ("; draining: workers stop after their trial" if (root / DRAIN).exists() else "")
    ]
    for t in trials:
        if t.state in (TrialState.RUNNING, TrialState.WAITING):
            run = t.user_attrs.get("run_dir")
            step = rundir.read_log(root / run)[-1:] if run else []
            where = f", step {step[0].get('step')}" if step else ""
            lines.append(f"  trial {t.number} {t.state.name.lower()} {trial_params(t)}{where}")
    return "\n".join(lines)
