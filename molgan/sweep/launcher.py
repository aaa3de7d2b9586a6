"""Launching a study: create it once, start workers through submitit (local processes, or one
Slurm job array), follow it (replacing dead local workers), tabulate; and a dry run.

Concurrent launchers of one study count the live workers and start the missing ones under one
lock; a started worker is counted from its submission (a start marker, or its Slurm job while
queued), so a second launcher or a second run of the command never starts more than asked.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
from pathlib import Path

from molgan.config import MAX_MEMBERS
from molgan.sweep import definition
from molgan.sweep.results import results_frame, write_results
from molgan.sweep.runner import is_free, locked
from molgan.sweep.spec import StudySpec, load_spec, resolve
from molgan.sweep.study import (
    DRAIN,
    EXHAUSTED,
    FAILED,
    LAUNCH,
    WORKERS,
    count_done,
    counts,
    default_storage,
    open_study,
    reap_orphans,
    storage_exists,
    trials_left,
)
from molgan.sweep.worker import Worker

STARTING_S = 600  # a submitted local worker not yet holding its lock counts this long
SLURM_JOBS = "slurm-jobs.txt"  # in <root>/jobs: the Slurm job ids this study submitted


def _locks(root: Path) -> Path:
    return root / "locks"


def live_local(root: Path) -> int:
    """Workers holding their lock, plus those submitted but not yet started (fresh markers;
    stale ones are removed)."""
    held = sum(not is_free(p) for p in _locks(root).glob("worker-*.lock"))
    starting = 0
    for marker in _locks(root).glob("worker-*.starting"):
        try:
            fresh = time.time() - marker.stat().st_mtime < STARTING_S
        except FileNotFoundError:
            continue  # its worker just started
        if fresh and not (
            marker.with_suffix(".lock").exists() and not is_free(marker.with_suffix(".lock"))
        ):
            starting += 1
        elif not fresh:
            marker.unlink(missing_ok=True)
    return held + starting


def slurm_queued(root: Path) -> int:
    """This study's Slurm workers that are pending or running (``squeue``; 0 if unknown)."""
    path = root / "jobs" / SLURM_JOBS
    if not path.is_file():
        return 0
    ids = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if not ids or shutil.which("squeue") is None:
        return 0
    try:
        out = subprocess.run(
            ["squeue", "--noheader", "--array", "--format=%i", f"--jobs={','.join(ids)}"],
            capture_output=True,
            text=True,
            timeout=60,
        )
    except (OSError, subprocess.TimeoutExpired):
        return 0
    return len([line for line in out.stdout.splitlines() if line.strip()])


def _executor(kind: str, folder: Path, slurm: dict | None):
    import submitit

    if kind == "local":
        ex = submitit.LocalExecutor(folder)
        ex.update_parameters(timeout_min=60 * 24 * 365)
    elif kind == "debug":
        ex = submitit.DebugExecutor(folder)
    else:
        ex = submitit.AutoExecutor(folder, cluster="slurm")
        ex.update_parameters(**(slurm or {}))
    return ex


SLURM_TOOLS = ("sbatch", "srun")  # submitting an array needs both (sbatch runs srun)


def _source_name(spec_source) -> str:
    """Where a study's definition came from: its file's resolved path, or ``<dict>``."""
    return "<dict>" if isinstance(spec_source, dict) else str(Path(spec_source).resolve())


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
    members: int = 1,
):
    """Create the study (once), start workers through submitit, report progress, tabulate.

    Args:
        spec_source: a study file or dict.
        root: the study folder (default ``sweeps/<name>``).
        storage: an Optuna storage URL (default: a journal file in ``root``).
        workers: how many workers should run; live and queued ones (another launcher's, or
            Slurm jobs still pending) count.
        executor: ``local`` (subprocesses), ``slurm`` (one job array), or ``debug`` (here).
        slurm: submitit Slurm parameters, e.g. ``{"slurm_partition": "gpu", "timeout_min": 600}``.
        wait: follow the study until it is done (else return after starting the workers);
            local workers that die meanwhile are replaced while trials are left.
        poll_s: seconds between progress checks.
        threads: torch CPU threads of each local worker (0 = cores // workers). One is as fast
            as two for MolGAN-sized nets, and a second launcher that adds workers cannot then
            oversubscribe the cores (OpenMP teams slow down ~100x when they do). Slurm workers
            take ``cpus_per_task``.
        members: each worker trains up to this many trials at once as one population, when
            they differ only in seed and per-member settings (``molgan.sweep.packing``).

    Returns:
        The results ``DataFrame`` (``results_frame``); ``attrs["left"]`` counts the trials left
        and ``attrs["failed"]`` says why the study stopped, if it failed; ``attrs["exhausted"]``
        why a search ended before its budget (it drew only settings it had run).
    """
    spec = load_spec(spec_source)
    root = Path(root or Path("sweeps") / spec.name)
    storage = storage or default_storage(root)
    if executor not in ("local", "slurm", "debug"):
        raise ValueError(f"executor must be local, slurm or debug, got {executor!r}")
    if threads < 0:
        raise ValueError(f"threads must be ≥ 0, got {threads}")
    if workers < 1:
        raise ValueError(f"workers must be ≥ 1, got {workers}")
    if not 1 <= members <= MAX_MEMBERS:
        raise ValueError(f"members must be in [1, {MAX_MEMBERS}], got {members}")
    if executor == "slurm":  # checked before anything is created
        missing = [tool for tool in SLURM_TOOLS if shutil.which(tool) is None]
        if missing:
            raise ValueError(
                f"--slurm needs Slurm's {', '.join(missing)} on PATH; nothing was created"
            )
    import submitit  # noqa: F401  (fail here, before anything exists, if the extra is missing)

    source = spec_source if isinstance(spec_source, dict) else str(Path(spec_source).resolve())
    defined = definition.check(spec, root, _source_name(spec_source))  # before anything exists
    study = open_study(spec, storage, create=True)
    definition.store(root, defined)
    (root / DRAIN).unlink(missing_ok=True)  # running again lifts a drain request
    with locked(_locks(root) / "study.lock"):
        study.set_user_attr(LAUNCH, study.user_attrs.get(LAUNCH, 0) + 1)  # errors count anew
        study.set_user_attr(FAILED, None)
        study.set_user_attr(EXHAUSTED, None)
        reaped = reap_orphans(study, spec, root)
    if reaped:
        out(f"re-queued trial(s) {reaped} of dead workers: they resume from their checkpoints")
    threads = threads or max(1, (os.cpu_count() or 1) // workers)
    if executor == "slurm":
        threads = int((slurm or {}).get("cpus_per_task", 1))
    ex = _executor(executor, root / "jobs", slurm)
    start = _starter(
        spec, study, root, ex, executor, (source, str(root), storage, threads), members
    )
    with locked(_locks(root) / "launch.lock"):  # concurrent launchers count each other's starts
        live = live_local(root)
        if executor == "slurm":
            live = max(live, slurm_queued(root))
        c = counts(study)
        new = 0 if trials_left(study, spec) == 0 else max(workers - live, 0)
        jobs = start(new, live)
    packing = f", up to {members} trials per population" if members > 1 else ""
    out(
        f"study {spec.name}: {spec.budget} trials, {c['used']} done or running, "
        f"{c['waiting']} waiting; {live} live worker(s), {len(jobs)} started ({executor}, "
        f"{threads} thread(s) each{packing}); storage {storage}"
    )
    if executor == "debug":
        for job in jobs:
            _result(job, out)
    elif wait:
        try:
            follow(
                study,
                spec,
                root,
                jobs,
                poll_s,
                out,
                restart=start if executor == "local" else None,
                workers=workers,
            )
        except KeyboardInterrupt:
            if executor == "local":
                for job in jobs:
                    job.cancel()  # each worker checkpoints its run; the same command resumes
            out("stopped following; run the same command again to continue the study")
            raise
    frame = results_frame(study, spec, root)
    if not frame.empty:
        write_results(frame, spec, root, study)
    frame.attrs["left"] = trials_left(study, spec)
    frame.attrs["failed"] = study.user_attrs.get(FAILED) or _capped(study, spec)
    frame.attrs["exhausted"] = study.user_attrs.get(EXHAUSTED)  # a search with nothing new
    return frame


def _capped(study, spec: StudySpec) -> str | None:
    c = counts(study)
    if c["errors"] >= spec.max_failures:
        return f"{c['errors']} trials failed (max_failures = {spec.max_failures}); see status"
    return None


def _result(job, out) -> None:
    """A finished job's outcome; a worker that stopped the study has said why in the study."""
    from molgan.sweep.study import StudyFailed

    try:
        job.result()
    except StudyFailed:
        pass
    except Exception as err:  # noqa: BLE001  (submitit wraps the worker's error)
        if "StudyFailed" not in str(err):
            lines = [line for line in str(err).splitlines() if "Error" in line]
            # a killed process leaves no error, and submitit calls its job FINISHED: say so
            why = lines[-1].strip() if lines else "no error message: killed, or out of memory"
            out(f"worker {job.job_id} died ({why}); its trial is re-queued from its checkpoint")


def _starter(spec: StudySpec, study, root: Path, ex, executor: str, args: tuple, members: int):
    """``start(n, live) -> jobs``: submit ``n`` numbered workers (one array on Slurm)."""
    gpus = _local_gpus() if executor == "local" else 0

    def start(n: int, live: int) -> list:
        if n <= 0:
            return []
        with locked(_locks(root) / "study.lock"):
            first = study.user_attrs.get(WORKERS, 0)
            study.set_user_attr(WORKERS, first + n)
        jobs, tokens = [], [uuid.uuid4().hex[:8] for _ in range(n)]
        _locks(root).mkdir(parents=True, exist_ok=True)
        for token in tokens:
            (_locks(root) / f"worker-{token}.starting").write_text(f"{time.time()}\n")
        try:
            if executor == "slurm":
                with ex.batch():  # one job array
                    for k, token in enumerate(tokens):
                        jobs.append(ex.submit(Worker(), *args, False, first + k, token, members))
                ids = sorted({str(job.job_id).split("_")[0] for job in jobs})
                with open(root / "jobs" / SLURM_JOBS, "a") as handle:
                    handle.write("".join(f"{i}\n" for i in ids))
            else:
                for k, token in enumerate(tokens):
                    if gpus:  # one GPU per local worker, round robin
                        ex.update_parameters(gpus_per_node=1, visible_gpus=((live + k) % gpus,))
                    local = executor == "local"
                    jobs.append(ex.submit(Worker(), *args, local, first + k, token, members))
        except Exception:
            for token in tokens:
                (_locks(root) / f"worker-{token}.starting").unlink(missing_ok=True)
            raise
        return jobs

    return start


def _local_gpus() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def follow(
    study,
    spec: StudySpec,
    root: Path,
    jobs: list,
    poll_s: float,
    out=print,
    restart=None,
    workers: int = 0,
) -> None:
    """Print one line per finished trial with its metrics and the study's ETA until the work
    is done (all trials finished and the workers ended). ``restart(n, live)``: start ``n``
    workers in place of dead ones while trials are left (local workers)."""
    from optuna.trial import TrialState

    from molgan.sweep.results import trial_params
    from molgan.sweep.study import DUPLICATE

    seen, start = set(), time.monotonic()
    restarts = max(3, 2 * workers)  # a worker that dies at once every time is not restarted forever
    finished_states = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
    jobs = list(jobs)
    while True:
        trials = study.get_trials(deepcopy=False)
        for t in trials:
            if t.number in seen or t.state not in finished_states:
                continue
            if "error" in t.user_attrs:
                seen.add(t.number)
                out(f"trial {t.number} error: {t.user_attrs['error']}")
                continue
            if "result" not in t.user_attrs or DUPLICATE in t.user_attrs:
                continue
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
        ended = [job for job in jobs if job.done()]
        for job in ended:
            jobs.remove(job)
            _result(job, out)
        stopped = (root / DRAIN).exists() or study.user_attrs.get(FAILED) or _capped(study, spec)
        if ended and restart is not None and not stopped and trials_left(study, spec) and restarts:
            with locked(_locks(root) / "study.lock"):
                reap_orphans(study, spec, root)  # the dead worker's trial first
            with locked(_locks(root) / "launch.lock"):
                live = live_local(root)
                fresh = restart(max(min(len(ended), workers - live), 0), live)
            restarts -= len(fresh)
            if fresh:
                out(f"{len(fresh)} worker(s) ended with trials left: started {len(fresh)} anew")
            jobs += fresh
        if not jobs:  # our workers ended (or another launcher's run): is anyone still working?
            with locked(_locks(root) / "study.lock"):
                reap_orphans(study, spec, root)  # a trial whose worker died is re-queued
            states = {t.state for t in study.get_trials(deepcopy=False)}
            others = live_local(root) and trials_left(study, spec) and not stopped
            if TrialState.RUNNING not in states and not others:
                return
        time.sleep(poll_s)


def dry_run(spec_source, root: str | Path | None = None, storage: str | None = None) -> str:
    """What ``run`` would train, creating nothing: each grid point with its run folder and
    state (new, checkpointed, finished), or a search's space and budget."""
    spec = load_spec(spec_source)
    root = Path(root or Path("sweeps") / spec.name)
    storage = storage or default_storage(root)
    definition.check(spec, root, _source_name(spec_source))  # refused here as run refuses it
    lines = [f"study {spec.name} ({spec.preset} preset), root {root}, storage {storage}"]
    if spec.grid:
        for k, point in enumerate(spec.grid_points):
            cfg = resolve(spec, point, root / "runs")
            run = root / "runs" / cfg.name
            state = (
                "finished"
                if (run / "result.json").is_file()
                else "checkpointed, resumes"
                if (run / "ckpt.pt").is_file()
                else "new"
            )
            lines.append(f"  {k}: {point} -> {run} ({state})")
        lines.append(f"{len(spec.grid_points)} grid points")
    else:
        for name, dist in spec.space.items():
            lines.append(f"  {name}: {dist}")
        done = ""
        if storage_exists(storage):
            try:
                done = f", {counts(open_study(spec, storage))['used']} used"
            except ValueError:
                done = ""
        lines.append(f"search of {spec.budget} trials ({spec.sampler} sampler{done})")
    return "\n".join(lines)
