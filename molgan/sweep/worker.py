"""A study's worker: run trials until the grid or the budget is used up.

Under the study lock a worker asks for the next trial (and, with ``members`` > 1, for the
trials that can train in one population with it), then trains them outside the lock and tells
the results. A search trial that repeats the settings of an earlier one is told that trial's
values and not counted; after ``MAX_REPEATS`` in a row the search space counts as exhausted. A
trial that raises is failed with its error: a settings or data error stops the study at once,
other errors after ``max_failures`` of them. SIGTERM stops a worker (submitit's job handler
would ignore it); ``Worker`` is the submitit job Slurm requeues at its time limit.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import signal
import uuid
from pathlib import Path

from molgan.sweep.results import trial_params
from molgan.sweep.runner import locked, run_trial, total_steps
from molgan.sweep.spec import StudySpec, _key, load_spec, objective_value, resolve
from molgan.sweep.study import (
    DUPLICATE,
    EXHAUSTED,
    FAILED,
    LAUNCH,
    WORKERS,
    StudyFailed,
    _params,
    _sampler,
    _should_stop,
    _trial_lock,
    counts,
    make_pruner,
    open_study,
    reap_orphans,
    worker_seed,
)

MAX_REPEATS = 20  # repeated settings in a row before a worker calls the search space exhausted


def _repeat_of(study, trial, params: dict) -> object | None:
    """An earlier search trial with the same settings (finished, running, or failed with a
    result), or None."""
    from optuna.trial import TrialState

    key = _key(params)
    for other in study.get_trials(deepcopy=False):
        if other.number == trial.number or DUPLICATE in other.user_attrs:
            continue
        live = other.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)
        if (live or "result" in other.user_attrs) and _key(trial_params(other)) == key:
            return other
    return None


def _fail(study, trial, error: str) -> None:
    from optuna.trial import TrialState

    trial.set_user_attr("error", error[:2000])
    trial.set_user_attr(LAUNCH, study.user_attrs.get(LAUNCH, 0))
    study.tell(trial, state=TrialState.FAIL)


def _number_worker(study, root: Path) -> int:
    with locked(root / "locks" / "study.lock"):
        number = study.user_attrs.get(WORKERS, 0)
        study.set_user_attr(WORKERS, number + 1)
    return number


class _Stop(Exception):
    """SIGTERM between trials (training turns it into ``Interrupted`` itself)."""


def _stop_on_sigterm(signum, frame):
    raise _Stop


def work(
    spec_source,
    root: str,
    storage: str,
    threads: int = 1,
    die_with_parent: bool = False,
    worker: int | None = None,
    token: str | None = None,
    members: int = 1,
) -> str:
    """A worker: run trials until the grid or the budget is used up. Safe to start any number
    of times, anywhere that sees the storage and ``root``; killed, it leaves its trial to be
    re-queued. ``worker``: its number (sampler seed; default: the next free one); ``token``:
    the launcher's name for it (its start marker); ``members``: train up to this many trials
    that differ only in seed and per-member settings as one population
    (``molgan.sweep.packing``). Returns why it stopped; raises
    ``StudyFailed`` when the study failed."""
    if die_with_parent:
        from molgan.pool import _die_with_parent

        _die_with_parent(os.getppid())
        signal.signal(signal.SIGINT, signal.default_int_handler)
    spec, root = load_spec(spec_source), Path(root)
    token = token or uuid.uuid4().hex[:8]
    main = _main_thread()
    old = signal.getsignal(signal.SIGTERM) if main else None
    if main:
        signal.signal(signal.SIGTERM, _stop_on_sigterm)  # submitit's job handler ignores it
    try:
        return _work(spec_source, spec, root, storage, threads, worker, token, members)
    except (_Stop, KeyboardInterrupt):
        return "interrupted"
    finally:
        if main:
            signal.signal(signal.SIGTERM, old if old is not None else signal.SIG_DFL)


def _work(
    spec_source, spec, root: Path, storage: str, threads: int, worker, token: str, members: int
) -> str:
    from molgan.train import Interrupted

    study = open_study(spec, storage)
    number = _number_worker(study, root) if worker is None else worker
    study.sampler = _sampler(spec, worker_seed(spec, number))
    state = {"spec": spec, "source": spec_source, "repeats": 0, "why": None}
    with locked(root / "locks" / f"worker-{token}.lock"):
        (root / "locks" / f"worker-{token}.starting").unlink(missing_ok=True)
        while True:
            with locked(root / "locks" / "study.lock"):
                reap_orphans(study, state["spec"], root)
                why = _should_stop(study, state["spec"], root)
                if why is not None:
                    break
                held = contextlib.ExitStack()
                batch = _take(study, state, root, threads, members, held)
            try:
                if state["why"]:
                    why = state["why"]
                    break
                if batch:
                    _run(study, state["spec"], root, batch)
            except Interrupted as stop:  # checkpoint written; the trial is re-queued next time
                print(f"worker stopped: {stop}", flush=True)
                return "interrupted"
            except (_Stop, KeyboardInterrupt):
                return "interrupted"
            finally:
                held.close()
    if why not in ("done", "drained") and not why.startswith("search space"):
        raise StudyFailed(why)
    return why


def _take(study, state: dict, root: Path, threads: int, members: int, held) -> list[tuple]:
    """Ask for the next trial and, with ``members`` > 1, for up to ``members`` - 1 more that
    can train in one population with it (waiting trials next in line, or fresh draws of a
    search over per-member settings only). Returns ``[(trial, params, cfg), ...]``, each
    trial's lock held by ``held``. Called under the study lock."""
    from molgan.sweep.packing import PACKABLE, pack_key

    spec = state["spec"]
    batch = []
    while len(batch) < members:
        if spec.grid and _waiting(study) is None:
            break  # a grid study's trials are its queued points: none left (not a fresh ask)
        if batch:  # one more for the pack? the next waiting trial, if it fits
            waiting = _waiting(study)
            if waiting is not None:
                cfg = _config_of(spec, waiting, root, threads)
                if cfg is None or pack_key(cfg) != pack_key(batch[0][2]) or _finished(cfg):
                    break
            elif spec.grid or not set(spec.space) <= set(PACKABLE):
                break  # nothing waits, and fresh draws might not fit
            elif counts(study)["used"] >= spec.budget:
                break
        trial = study.ask()
        held.enter_context(locked(_trial_lock(root, trial.number)))
        # its enqueued grid point (a study's trial numbers are its list positions)
        fixed = study.get_trials(deepcopy=False)[trial.number].system_attrs.get("fixed_params", {})
        try:
            params = _params(trial, spec, fixed)
        except ValueError:  # the file's grid may have grown since this worker read it
            spec = state["spec"] = load_spec(state["source"])
            try:
                params = _params(trial, spec, fixed)
            except ValueError as error:  # a stray queued point no grid of the file holds
                _fail(study, trial, str(error))
                continue
        if not spec.grid and _told_twin(study, trial, params, state):
            if state["why"]:
                break
            continue
        state["repeats"] = 0
        cfg = dataclasses.replace(resolve(spec, params, root / "runs"), threads=threads)
        trial.set_user_attr("run_dir", str(Path("runs") / cfg.name))
        batch.append((trial, params, cfg))
        if _finished(cfg):
            break  # a finished run is reused alone, never packed
    return batch


def _waiting(study):
    from optuna.trial import TrialState

    waiting = study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
    return min(waiting, key=lambda t: t.number) if waiting else None


def _config_of(spec: StudySpec, trial, root: Path, threads: int):
    """The run settings of a waiting trial (its enqueued values), or None if incomplete."""
    fixed = dict(trial.system_attrs.get("fixed_params", {}))
    if not set(spec.grid) | set(spec.space) <= set(fixed):
        return None
    try:
        return dataclasses.replace(resolve(spec, fixed, root / "runs"), threads=threads)
    except ValueError:
        return None


def _finished(cfg) -> bool:
    return (Path(cfg.out_dir) / cfg.name / "result.json").is_file()


def _told_twin(study, trial, params: dict, state: dict) -> bool:
    """A search trial that repeats an earlier one's settings is told that trial's values and
    uses no budget; after ``MAX_REPEATS`` in a row the space counts as exhausted."""
    from optuna.trial import TrialState

    twin = _repeat_of(study, trial, params)
    if twin is None:
        return False
    trial.set_user_attr(DUPLICATE, twin.number)
    if twin.values is not None:
        study.tell(trial, twin.values)
    else:
        study.tell(trial, state=TrialState.FAIL)
    state["repeats"] += 1
    if state["repeats"] >= MAX_REPEATS:
        state["why"] = f"search space exhausted: {state['repeats']} repeated settings in a row"
        study.set_user_attr(EXHAUSTED, state["why"])
    return True


def _run(study, spec: StudySpec, root: Path, batch: list[tuple]) -> None:
    """Train a batch of trials (one run, or one population of them) and tell their results."""
    from molgan.sweep.packing import pack_name, run_pack
    from molgan.train import Interrupted

    study.pruner = make_pruner(spec, total_steps(batch[0][2]))
    last = total_steps(batch[0][2])  # the batch's runs share their schedule
    reports = [_reporter(study, trial, spec, last) for trial, _, _ in batch]
    try:
        if len(batch) == 1:
            results = [run_trial(batch[0][2], spec, reports[0])]
        else:
            cfgs = [cfg for _, _, cfg in batch]
            pack = Path("packs") / pack_name(cfgs)
            for trial, _, _ in batch:  # where `status` finds its progress while it trains
                trial.set_user_attr("pack_dir", str(pack))
            results = run_pack(cfgs, spec, root, reports)
    except (Interrupted, _Stop, KeyboardInterrupt):
        raise
    except ValueError as error:  # settings or data: every retry fails the same way
        message = f"trial {batch[0][0].number} {batch[0][1]}: {error}"
        for trial, _, _ in batch:
            _fail(study, trial, message)
        study.set_user_attr(FAILED, message)
        raise StudyFailed(message) from None
    except Exception as error:  # noqa: BLE001  (counted; the cap stops the study)
        for trial, _, _ in batch:
            _fail(study, trial, f"{type(error).__name__}: {error}")
        print(f"trial(s) {[t.number for t, _, _ in batch]} failed: {type(error).__name__}: {error}")
        return
    for (trial, _, _), result in zip(batch, results, strict=True):
        _tell(study, trial, spec, result)


def _tell(study, trial, spec: StudySpec, result: dict) -> None:
    from optuna.trial import TrialState

    trial.set_user_attr("result", json.loads(json.dumps(result, default=float)))
    if (result["stop"] or "").startswith("pruned"):
        study.tell(trial, state=TrialState.PRUNED)
        return
    values = [objective_value(e, result[spec.scored_at]) for e, _ in spec.objectives]
    if any(math.isnan(v) for v in values):
        study.tell(trial, state=TrialState.FAIL)
    else:
        study.tell(trial, values)


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def _reporter(study, trial, spec: StudySpec, last: int | None = None):
    """``report(step, scores)`` for ``run_trial``: every evaluation becomes an intermediate
    value of the trial (learning curves in Optuna's tools; single objective only, as Optuna
    allows), and the pruner, if any, may stop the run — not at its ``last`` step, where the
    run has finished (it was labelled pruned)."""
    expr = spec.objectives[0][0]
    single = len(spec.objectives) == 1

    def report(step: int, scores: dict, member: int = 0):
        value = objective_value(expr, scores)
        if not single or math.isnan(value):
            return None
        trial.report(value, step)
        finished = last is not None and step >= last
        if spec.pruner != "none" and not finished and trial.should_prune():
            return f"pruned ({spec.pruner} pruner) at step {step}"
        return None

    return report


class Worker:
    """``work`` as a submitit job that Slurm requeues when it reaches its time limit (submitit
    calls ``checkpoint`` on the timeout signal): the requeued worker resumes its trial from the
    run's last checkpoint (the dead one's trial is re-queued by its free lock)."""

    def __call__(self, *args, **kwargs) -> str:
        return work(*args, **kwargs)

    def checkpoint(self, *args, **kwargs):
        from submitit.helpers import DelayedSubmission

        return DelayedSubmission(Worker(), *args, **kwargs)
