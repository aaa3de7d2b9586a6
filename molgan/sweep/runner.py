"""One trial of a study = one ordinary molgan run, trained at most once per configuration.

The run lives in ``<root>/runs/<hash>``; a lock file beside it keeps two workers from training
the same configuration, ``result.json`` marks it finished (then it is reused, never retrained),
and a run killed after its first checkpoint resumes from it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import math
import os
import shutil
from pathlib import Path

from molgan import metrics, rundir
from molgan.config import Config
from molgan.sweep.spec import StudySpec, objective_value


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
    from molgan.data import dataset_of

    data = dataset_of(cfg, model.atom_types, verbose=False)
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


@contextlib.contextmanager
def output_to(path: Path):
    """Send this process's stdout and stderr (file descriptors 1 and 2, so child processes and
    C code too) to ``path`` (appended) while the block runs."""
    import sys

    path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    with open(path, "ab", buffering=0) as handle:
        os.dup2(handle.fileno(), 1)
        os.dup2(handle.fileno(), 2)
        try:
            yield path
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)


def total_steps(cfg: Config) -> int:
    """The steps a run of ``cfg`` trains (as ``molgan.train`` counts them)."""
    if cfg.max_steps:
        return cfg.max_steps
    from molgan.data import dataset_of

    data = dataset_of(cfg, verbose=False)
    per_epoch = max(len(data.split["train"]) // cfg.batch_size, 1)
    return max(int(cfg.epochs * per_epoch), 1)


def _clear(run_dir: Path) -> None:
    """Remove a run killed before its first checkpoint, keeping its output log."""
    for path in run_dir.iterdir():
        if path.name == rundir.OUTPUT:
            continue
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()


def run_trial(cfg: Config, spec: StudySpec, report=None) -> dict:
    """Train (or resume, or reuse) the run of ``cfg`` and summarise it; writes result.json.

    The run's output (progress, notes) goes to ``output.log`` in its folder. A run whose loss
    diverged is a result too (``stop`` says so; its objectives are NaN).

    Args:
        cfg: resolved settings (``resolve``); its run directory is ``out_dir/name``.
        spec: the study (final evaluation, objectives).
        report: ``report(step, metrics, member=0) -> reason or None``, called after each evaluation
            (e.g. Optuna's ``trial.report`` + ``should_prune``).
    """
    from molgan import checkpoint
    from molgan.train import TrainingError, train

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
        diverged = None
        with output_to(run_dir / rundir.OUTPUT):
            if stopped:  # an early stop or pruning that finished before result.json: no more steps
                model = checkpoint.load(ckpt)
            else:
                if run_dir.exists() and not ckpt.is_file():
                    _clear(run_dir)  # killed before its first checkpoint: start afresh
                cfg = dataclasses.replace(cfg, resume=ckpt.is_file())
                # threads are the worker's to set, also for a run it resumes (run control)
                try:
                    model = train(cfg, explicit=("threads",), callback=report)
                except TrainingError as err:
                    model, diverged = None, f"diverged: {err}"
            result = summarize(run_dir, spec, None)
            if diverged:
                result["stop"], result["final"] = diverged, {}
            elif spec.evaluate and not (result["stop"] or "").startswith("pruned"):
                result["final"] = _final_evaluation(model, cfg, spec)
        _write_result(run_dir, result)
        return result


def _write_result(run_dir: Path, result: dict) -> None:
    """``result.json``, atomically: the mark of a finished trial."""
    tmp = run_dir / "result.json.tmp"
    tmp.write_text(json.dumps(result, indent=2, default=float))
    os.replace(tmp, run_dir / "result.json")
