"""Many-run studies on Optuna (the study) and submitit (the workers): grids and searches of
``Config`` settings, laptop by default, Slurm with the same command.

A study file (TOML or JSON) names fixed overrides, a grid (every combination exactly once, via
trials enqueued when the study is created) or a search space with a trial budget, objectives
over evaluation metrics (``valid``, ``unique``, ``fcd``, products such as ``valid*unique``),
and optionally a final evaluation of each run (``[evaluate]``: samples, FCD). Each trial is an
ordinary run in ``<root>/runs/<hash of its resolved settings>``: the same settings are never
trained twice, and a killed trial resumes from its checkpoint. Workers hold a lock file per
trial; a RUNNING trial whose lock is free belongs to a dead worker and is re-queued. Optuna
and submitit are imported lazily (``pip install -e ".[sweep]"``); nothing in molgan imports
this module.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import json
import math
import os
import shutil
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from molgan import metrics, rundir
from molgan.config import PRESETS, Config, make_config

METRICS = (*metrics.PERCENT, *metrics.PROPERTIES, "fcd")
# Settings that do not change what a run computes: left out of its hash.
NOT_HASHED = ("name", "out_dir", "progress", "threads", "device", "compile", "resume", "preset")
NOT_HASHED += ("ckpt_minutes",)
VARIANT = "variant"  # a grid axis of named override sets


@dataclass
class StudySpec:
    """A parsed study file (field meanings: ``load_spec``)."""

    name: str
    preset: str = "paper"
    fixed: dict = field(default_factory=dict)
    grid: dict = field(default_factory=dict)
    space: dict = field(default_factory=dict)
    trials: int = 0
    sampler: str = "tpe"
    pruner: str = "none"
    objectives: list = field(default_factory=lambda: [("valid*unique", "maximize")])
    at: str = "last"
    evaluate: dict = field(default_factory=dict)

    @property
    def grid_points(self) -> list[dict]:
        points = [{}]
        for axis, values in self.grid.items():
            names = list(values) if axis == VARIANT else [_param(v) for v in values]
            points = [{**p, axis: v} for p in points for v in names]
        return points if self.grid else []

    @property
    def budget(self) -> int:
        return len(self.grid_points) if self.grid else self.trials


def _param(value):
    """Optuna params are primitives: lists (e.g. gen_dims) travel as JSON text."""
    return json.dumps(value) if isinstance(value, (list, tuple)) else value


def _unparam(value):
    if isinstance(value, str) and value.startswith("["):
        return tuple(json.loads(value))
    return value


def load_spec(source: str | Path | dict) -> StudySpec:
    """Read and check a study file (.toml or .json) or dict; every error is one line.

    Keys: ``name``; ``preset``; ``[fixed]`` Config overrides; ``[grid]`` field -> list of
    values, and ``[grid.variant]`` name -> overrides (one axis of named settings); or
    ``[space]`` field -> ``{low, high, log}`` / ``{choices}`` with ``trials`` (budget),
    ``sampler`` (tpe | random | nsga2) and ``pruner`` (none | median | halving, single objective
    only); ``[[objectives]]`` with ``metric`` (a name or product ``a*b``) and ``direction``;
    ``at`` = last | best evaluation; ``[evaluate]`` ``samples``, ``seed_offset`` (sampling seed
    = offset + run seed), ``fcd`` (bool) for a final evaluation of each run.
    """
    if isinstance(source, dict):
        raw = dict(source)
    else:
        path = Path(source)
        if not path.is_file():
            raise ValueError(f"study file not found: {path}")
        if path.suffix == ".json":
            raw = json.loads(path.read_text())
        elif path.suffix == ".toml":
            try:
                import tomllib
            except ModuleNotFoundError:  # Python 3.10
                import tomli as tomllib
            try:
                raw = tomllib.loads(path.read_text())
            except tomllib.TOMLDecodeError as err:
                raise ValueError(f"{path}: {err}") from None
        else:
            raise ValueError(f"{path}: a study file is .toml or .json")
    raw.setdefault("name", "" if isinstance(source, dict) else Path(source).stem)
    known = {f.name for f in dataclasses.fields(StudySpec)}
    unknown = set(raw) - known
    if unknown:
        raise ValueError(f"unknown study keys {sorted(unknown)}; known: {sorted(known)}")
    raw["objectives"] = [
        (o["metric"], o.get("direction", "maximize")) if isinstance(o, dict) else tuple(o)
        for o in raw.get("objectives", [("valid*unique", "maximize")])
    ]
    spec = StudySpec(**raw)
    _check(spec)
    return spec


def _check(spec: StudySpec) -> None:
    fields = {f.name for f in dataclasses.fields(Config)}
    if not spec.name or "/" in spec.name:
        raise ValueError(f"study name must be a plain name, got {spec.name!r}")
    if spec.preset not in PRESETS:
        raise ValueError(f"unknown preset {spec.preset!r}")
    if bool(spec.grid) == bool(spec.space):
        raise ValueError("a study has either a [grid] or a [space] (with trials)")
    if spec.space and spec.trials < 1:
        raise ValueError("a [space] search needs trials ≥ 1")
    variants = spec.grid.get(VARIANT, {})
    if not isinstance(variants, dict):
        raise ValueError("[grid.variant] maps names to override tables")
    names = set(spec.fixed) | set(spec.space) | {k for k in spec.grid if k != VARIANT}
    names |= {k for overrides in variants.values() for k in overrides}
    bad = names - fields
    if bad:
        raise ValueError(f"unknown setting(s) {sorted(bad)}; see scripts/train_qm9.py --help")
    for metric, direction in spec.objectives:
        if direction not in ("maximize", "minimize"):
            raise ValueError(f"direction must be maximize or minimize, got {direction!r}")
        missing = [m for m in metric.split("*") if m.strip() not in METRICS]
        if missing:
            raise ValueError(f"unknown metric(s) {missing}; choose from {', '.join(METRICS)}")
        if "fcd" in metric and not spec.evaluate.get("fcd"):
            raise ValueError("an fcd objective needs [evaluate] fcd = true")
    if spec.at not in ("last", "best"):
        raise ValueError(f"at must be last or best, got {spec.at!r}")
    if spec.sampler not in ("tpe", "random", "nsga2") or spec.pruner not in (
        "none",
        "median",
        "halving",
    ):
        raise ValueError("sampler: tpe | random | nsga2; pruner: none | median | halving")
    if spec.pruner != "none" and len(spec.objectives) > 1:
        raise ValueError("Optuna cannot prune multi-objective studies; set pruner = 'none'")
    for point in spec.grid_points or [{}]:  # every grid point must be a valid Config
        resolve(spec, point, Path("."))


def resolve(spec: StudySpec, params: dict, runs: Path) -> Config:
    """The run settings of one trial: preset + fixed + variant + params, named by their hash."""
    overrides = dict(spec.fixed)
    params = dict(params)
    if VARIANT in params:
        overrides |= spec.grid[VARIANT][params.pop(VARIANT)]
    overrides |= {k: _unparam(v) for k, v in params.items()}
    try:
        cfg = make_config(spec.preset, **overrides, progress=False)
    except (TypeError, ValueError) as err:
        raise ValueError(f"study {spec.name}: bad settings {overrides}: {err}") from None
    key = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in NOT_HASHED}
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]
    return dataclasses.replace(cfg, out_dir=str(runs), name=digest)


def objective_value(expr: str, values: dict) -> float:
    """``a*b`` over a metrics dict (keys with or without ``score/``): 0 if any factor is 0
    (``valid*unique`` with no valid molecule), else NaN if any is missing or NaN."""
    factors = []
    for name in expr.split("*"):
        value = values.get(name.strip(), values.get(f"score/{name.strip()}"))
        factors.append(math.nan if value is None else float(value))
    return 0.0 if 0.0 in factors else math.prod(factors)


@contextlib.contextmanager
def locked(path: Path, blocking: bool = True):
    """An exclusive ``flock`` on ``path`` (yields False if not blocking and it is taken)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def is_free(path: Path) -> bool:
    """True when nobody holds the lock on ``path``."""
    with locked(path, blocking=False) as got:
        return bool(got)


def _final_evaluation(model, cfg: Config, spec: StudySpec) -> dict:
    from molgan.data import load_dataset, resolve_path

    data = load_dataset(resolve_path(cfg.data), cfg.max_atoms, cfg.split_seed, verbose=False)
    smiles = model.sample(
        int(spec.evaluate.get("samples", 10_000)),
        seed=int(spec.evaluate.get("seed_offset", 10_000)) + cfg.seed,
    )
    use_fcd = bool(spec.evaluate.get("fcd", False))
    return metrics.evaluate(
        smiles,
        data.smiles_of("train"),
        train_is_canonical=True,
        fcd_reference=data.smiles_of("test") if use_fcd else None,
    )


def _minutes(rows: list[dict]) -> float:
    """Training wall time over all segments of a (resumed) run's log."""
    total, last = 0.0, 0.0
    for row in rows:
        elapsed = row.get("time/elapsed_s")
        if elapsed is None:
            continue
        if elapsed < last:  # a resume restarted the clock
            total += last
        last = elapsed
    return (total + last) / 60


def summarize(run_dir: Path, spec: StudySpec, final: dict | None) -> dict:
    """A run's result: ``final`` metrics (the final evaluation, or the last training one) and
    ``best`` (the training evaluation with the best first objective)."""
    rows = rundir.read_log(run_dir)
    evals = [r for r in rows if "score/valid" in r]
    strip = lambda r: {k.split("/", 1)[1]: v for k, v in r.items() if k.startswith("score/")}  # noqa: E731
    expr, direction = spec.objectives[0]
    sign = 1 if direction == "maximize" else -1
    scored = [(objective_value(expr, r), r) for r in evals]
    scored = [(v, r) for v, r in scored if not math.isnan(v)]
    best = max(scored, key=lambda vr: sign * vr[0])[1] if scored else (evals[-1] if evals else {})
    stop = next((r["reason"] for r in reversed(rows) if r.get("event") == "stop"), None)
    return {
        "final": final if final is not None else (strip(evals[-1]) if evals else {}),
        "best": strip(best) | {"step": best.get("step")},
        "steps": max((r.get("step", 0) for r in rows), default=0),
        "minutes": _minutes(rows),
        "stop": stop,
    }


def run_trial(cfg: Config, spec: StudySpec, report=None) -> dict:
    """Train (or resume, or reuse) the run of ``cfg`` and summarise it; writes result.json.

    Args:
        cfg: resolved settings (``resolve``); its run directory is ``out_dir/name``.
        spec: the study (final evaluation, objectives).
        report: ``report(step, metrics) -> reason or None``, called after each evaluation
            (e.g. Optuna's ``trial.report`` + ``should_prune``).
    """
    from molgan import checkpoint
    from molgan.train import train

    run_dir = Path(cfg.out_dir) / cfg.name
    done = run_dir / "result.json"
    with locked(Path(cfg.out_dir) / f"{cfg.name}.lock"):  # one trainer per configuration
        if done.is_file():
            return json.loads(done.read_text())
        ckpt = run_dir / rundir.CKPT
        rows = rundir.read_log(run_dir)
        stopped = ckpt.is_file() and any(
            r.get("event") == "stop" and r["step"] == checkpoint.read(ckpt)["step"] for r in rows
        )
        if stopped:  # an early stop or pruning that finished before result.json: no more steps
            model = checkpoint.load(ckpt)
        else:
            if run_dir.exists() and not ckpt.is_file():
                shutil.rmtree(run_dir)  # killed before its first checkpoint: start afresh
            cfg = dataclasses.replace(cfg, resume=ckpt.is_file())
            model = train(cfg, explicit=(), callback=report)
        result = summarize(run_dir, spec, None)
        if spec.evaluate and not (result["stop"] or "").startswith("pruned"):
            result["final"] = _final_evaluation(model, cfg, spec)
        tmp = done.with_suffix(".tmp")
        tmp.write_text(json.dumps(result, indent=2, default=float))
        os.replace(tmp, done)
        return result


# --- the study: Optuna storage, trials, workers ---


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
    if spec.grid and not study.get_trials(deepcopy=False):
        for point in spec.grid_points:
            study.enqueue_trial(point)
    return study


def _params(trial, spec: StudySpec) -> dict:
    """Ask the trial for every swept setting (enqueued trials return their fixed values)."""
    params = {}
    for axis, values in spec.grid.items():
        choices = list(values) if axis == VARIANT else [_param(v) for v in values]
        params[axis] = trial.suggest_categorical(axis, choices)
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
            study.enqueue_trial(dict(trial.params), user_attrs={"retry_of": trial.number})
            reaped.append(trial.number)
    return reaped


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
            with locked(root / "locks" / "study.lock"):
                reap_orphans(study, spec, root)
                used, waiting = _open_trials(study)
                if not waiting and (spec.grid or used >= spec.budget):
                    return  # a grid runs only its enqueued points; a search its budget
                trial = study.ask()
                held = contextlib.ExitStack()
                held.enter_context(locked(_trial_lock(root, trial.number)))
            try:
                cfg = dataclasses.replace(
                    resolve(spec, _params(trial, spec), root / "runs"), threads=threads
                )
                trial.set_user_attr("run_dir", str(Path("runs") / cfg.name))
                pruning = spec.pruner != "none"
                expr = spec.objectives[0][0]

                def report(step: int, scores: dict, trial=trial, expr=expr, pruning=pruning):
                    value = objective_value(expr, scores)
                    if pruning and not math.isnan(value):
                        trial.report(value, step)
                        if trial.should_prune():
                            return f"pruned ({spec.pruner} pruner) at step {step}"
                    return None

                result = run_trial(cfg, spec, report)
                trial.set_user_attr("result", json.loads(json.dumps(result, default=float)))
                if (result["stop"] or "").startswith("pruned"):
                    study.tell(trial, state=TrialState.PRUNED)
                    continue
                values = [objective_value(e, result[_at(spec)]) for e, _ in spec.objectives]
                if any(math.isnan(v) for v in values):
                    study.tell(trial, state=TrialState.FAIL)
                else:
                    study.tell(trial, values)
            except Interrupted:
                return  # SIGINT/SIGTERM: checkpoint written; the trial is re-queued next time
            finally:
                held.close()


def _at(spec: StudySpec) -> str:
    return "final" if spec.at == "last" or spec.evaluate else "best"


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

    Returns:
        The results ``DataFrame`` (``results_frame``).
    """
    import submitit

    spec = load_spec(spec_source)
    root = Path(root or Path("sweeps") / spec.name)
    storage = storage or default_storage(root)
    study = open_study(spec, storage, create=True)
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
    threads = max(1, (os.cpu_count() or 1) // max(workers, 1))
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
    jobs = [ex.submit(work, *args) for _ in range(new)] if new else []
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
            follow(study, spec, jobs, poll_s, out)
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


def follow(study, spec: StudySpec, jobs: list, poll_s: float, out=print) -> None:
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
                final = result.get(_at(spec), {})
                shown = " ".join(
                    f"{k} {final[k]:.3f}"
                    for k in ("valid", "unique", "novel", "qed", "fcd")
                    if isinstance(final.get(k), (int, float))
                )
                done = sum(x.state in finished_states and "result" in x.user_attrs for x in trials)
                rate = (time.monotonic() - start) / max(len(seen), 1)
                eta = rate * max(spec.budget - done, 0) / 60
                out(
                    f"trial {t.number} {t.state.name.lower()} {t.params} "
                    f"({result.get('minutes', 0):.1f} min): {shown} | {done}/{spec.budget} "
                    f"done, ETA {eta:.0f} min"
                )
        running = any(t.state == TrialState.RUNNING for t in trials)
        if all(job.done() for job in jobs) and not running:
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
    ]
    for t in trials:
        if t.state in (TrialState.RUNNING, TrialState.WAITING):
            run = t.user_attrs.get("run_dir")
            step = rundir.read_log(root / run)[-1:] if run else []
            where = f", step {step[0].get('step')}" if step else ""
            lines.append(f"  trial {t.number} {t.state.name.lower()} {t.params}{where}")
    return "\n".join(lines)


def results_frame(study, spec: StudySpec, root: Path):
    """One row per finished trial: swept settings, objectives, final and best metrics, run
    directory, minutes; ``pareto`` marks the Pareto front (the best trial for one objective)."""
    import pandas as pd
    from optuna.trial import TrialState

    rows = []
    for t in study.get_trials(deepcopy=False):
        if t.state == TrialState.FAIL and "result" not in t.user_attrs:
            continue  # a dead worker's trial (re-queued), not a result
        if t.state not in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL):
            continue
        result = t.user_attrs.get("result", {})
        row = {"trial": t.number, "state": t.state.name.lower(), **t.params}
        for (expr, _), value in zip(spec.objectives, t.values or [], strict=False):
            row[f"objective:{expr}"] = value
        row |= {f"final_{k}": v for k, v in result.get("final", {}).items() if k != "n"}
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
        for c in ("valid", "unique", "novel", "qed", "sa", "logp", "fcd")
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
            digits = 1 if scale == 100 or c == "minutes" else 3
            spread = f" ± {statistics.stdev(values) * scale:.{digits}f}" if len(values) > 1 else ""
            cells.append(f"{mean:.{digits}f}{spread}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(frame, spec: StudySpec, path: Path) -> None:
    """Objectives against each other (Pareto front marked), or the first against a setting."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    done = frame[frame["state"] == "complete"]
    names = [f"objective:{e}" for e, _ in spec.objectives]
    fig, ax = plt.subplots(figsize=(5, 4))
    if len(names) >= 2:
        x, y = names[0], names[1]
    else:
        swept = [c for c in [*spec.space, *spec.grid] if c in done.columns]
        x, y = (swept[0] if swept else "trial"), names[0]
    ax.scatter(done[x].astype(str) if done[x].dtype == object else done[x], done[y], alpha=0.7)
    front = done[done["pareto"]]
    if len(names) >= 2 and len(front):
        ax.scatter(front[x], front[y], color="red", label="Pareto front")
        ax.legend()
    ax.set_xlabel(x.replace("objective:", ""))
    ax.set_ylabel(y.replace("objective:", ""))
    ax.set_title(f"study {spec.name}")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
