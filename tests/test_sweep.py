"""Many-run studies: grids run each point once, killed workers' trials resume, pruning stops runs,
results tabulate. Workers run through submitit's local (subprocess) and debug executors."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

pytest.importorskip("optuna")
pytest.importorskip("submitit")

from molgan import checkpoint, rundir, sweep  # noqa: E402

TINY = str(Path(__file__).parent / "data" / "qm9_tiny.smi")


def _spec(name="smoke", **extra):
    spec = {
        "name": name,
        "preset": "debug",
        "fixed": {"data": TINY, "max_steps": 12, "eval_every": 6, "eval_samples": 16},
        "grid": {"seed": [0, 1], "lam": [1.0, 0.5]},
        "objectives": [{"metric": "valid_lenient", "direction": "maximize"}],
    }
    for key, value in extra.items():
        if key == "fixed":
            spec[key] = {**spec[key], **value}
        else:
            spec[key] = value
    return spec


def _trials(root, spec):
    study = sweep.open_study(sweep.load_spec(spec), sweep.default_storage(Path(root)))
    return study.get_trials(deepcopy=False)


def test_grid_with_two_local_workers_runs_every_point_once(tmp_path):
    frame = sweep.launch(_spec(), tmp_path, workers=2, poll_s=0.5, out=lambda s: None)
    assert len(frame) == 4 and set(frame["state"]) == {"complete"}
    pairs = sorted(zip(frame["seed"], frame["lam"], strict=True))
    assert pairs == [(0, 0.5), (0, 1.0), (1, 0.5), (1, 1.0)]
    assert frame["run_dir"].nunique() == 4
    for run in frame["run_dir"]:
        steps = [r["step"] for r in rundir.read_log(run)]
        assert steps == sorted(set(steps)) and steps[-1] == 12
    expected = {"trial", "state", "seed", "lam", "objective:valid_lenient", "final_valid"}
    expected |= {"best_valid", "steps", "minutes", "run_dir", "pareto", "stop"}
    assert expected <= set(frame.columns)
    paths = sweep.results_paths(sweep.load_spec(_spec()), tmp_path)
    assert paths["csv"].name == "results-smoke.csv" and paths["csv"].is_file()
    table = paths["md"].read_text()
    assert "| lam | state | seeds | objective valid_lenient |" in table
    again = sweep.launch(_spec(), tmp_path, workers=2, poll_s=0.5, out=lambda s: None)
    assert len(again) == 4 and len(_trials(tmp_path, _spec())) == 4  # nothing ran again


@pytest.mark.slow  # 16 s; test_studies pins a worker's stop and resume in-process
def test_killed_worker_trial_resumes_from_its_checkpoint_and_runs_once(tmp_path):
    spec = _spec(
        "kill",
        fixed={"max_steps": 600, "eval_every": 200, "log_every": 20, "ckpt_minutes": 0.002},
        grid={"seed": [0], "lam": [1.0]},
    )
    sweep.launch(spec, tmp_path, workers=1, wait=False, out=lambda s: None)
    lock = tmp_path / "locks" / "trial-0.lock"
    runs = tmp_path / "runs"

    def checkpointed():
        return any(runs.glob("*/ckpt.pt")) and lock.is_file() and lock.read_text().strip()

    deadline = time.monotonic() + 120
    while not checkpointed() and time.monotonic() < deadline:
        time.sleep(0.05)
    pid = int(lock.read_text())
    os.kill(pid, signal.SIGKILL)
    # SIGKILL is asynchronous (a multi-threaded process releases its files last): wait for it
    deadline = time.monotonic() + 30
    while not all(sweep.is_free(p) for p in lock.parent.glob("*.lock") if p.name != "study.lock"):
        assert time.monotonic() < deadline, "the killed worker's locks were never released"
        time.sleep(0.01)
    run_dir = next(runs.glob("*/ckpt.pt")).parent
    killed_at = checkpoint.read(run_dir / "ckpt.pt")["step"]
    frame = sweep.launch(spec, tmp_path, workers=1, poll_s=0.5, out=lambda s: None)
    assert len(frame) == 1 and frame["state"][0] == "complete"
    states = sorted(t.state.name for t in _trials(tmp_path, spec))
    assert states == ["COMPLETE", "FAIL"]  # the dead worker's trial, re-queued once
    study = sweep.open_study(sweep.load_spec(spec), sweep.default_storage(tmp_path))
    status = sweep.status(study, sweep.load_spec(spec), tmp_path)
    assert "1 fail (1 interrupted and queued again)" in status  # not an error
    output = (run_dir / rundir.OUTPUT).read_text()  # the trial's own output, both segments
    resumed = [int(w.split("/")[0]) for w in output.split("at step ")[1:] if "/600" in w[:12]]
    assert resumed and 0 < resumed[0] and killed_at <= resumed[0] < 600
    rows = rundir.read_log(run_dir)
    assert [r for r in rows if r.get("event") == "resume"] == [
        {"step": resumed[0], "event": "resume"}
    ]
    steps = [r["step"] for r in rows if "event" not in r]
    assert steps == list(range(20, 601, 20))  # each step once: no row lost or repeated


def test_pruned_trial_stops_after_its_callback_and_keeps_its_checkpoint(tmp_path, monkeypatch):
    import optuna

    monkeypatch.setattr(optuna.trial.Trial, "should_prune", lambda self: True)
    spec = _spec("prune", pruner="median", grid={"seed": [0], "lam": [1.0]})
    frame = sweep.launch(spec, tmp_path, workers=1, executor="debug", out=lambda s: None)
    assert list(frame["state"]) == ["pruned"]
    run_dir = Path(frame["run_dir"][0])
    assert checkpoint.read(run_dir / "ckpt.pt")["step"] == 6
    stop = [r for r in rundir.read_log(run_dir) if r.get("event") == "stop"]
    assert stop == [{"step": 6, "event": "stop", "reason": "pruned (median pruner) at step 6"}]


def test_two_variants_with_equal_settings_are_refused_not_reported_twice():
    """They trained once and reported the one run as two rows (issue 40): refused now."""
    spec = _spec("twins", grid={"variant": {"a": {"lam": 1.0}, "b": {"lam": 1.0}}})
    with pytest.raises(ValueError, match=r"\{'variant': 'a'\} and \{'variant': 'b'\} are the same"):
        sweep.load_spec(spec)


def test_workers_train_with_one_thread_unless_asked_whatever_the_worker_count(
    tmp_path, monkeypatch
):
    import importlib

    train_module = importlib.import_module("molgan.train")
    threads = []
    original = train_module.train
    monkeypatch.setattr(
        train_module, "train", lambda cfg, **k: threads.append(cfg.threads) or original(cfg, **k)
    )
    spec = _spec("threads", grid={"seed": [0], "lam": [1.0]})
    sweep.launch(spec, tmp_path / "a", workers=1, executor="debug", out=lambda s: None)
    sweep.launch(spec, tmp_path / "b", workers=1, executor="debug", out=lambda s: None, threads=0)
    assert threads == [1, max(1, os.cpu_count() or 1)]  # one worker: 0 means all cores
    with pytest.raises(ValueError, match="threads"):
        sweep.launch(spec, tmp_path / "c", executor="debug", out=lambda s: None, threads=-1)


def test_a_resumed_trial_trains_with_its_workers_threads_not_its_own(tmp_path, monkeypatch):
    import dataclasses
    import importlib

    import torch

    train_module = importlib.import_module("molgan.train")
    spec = sweep.load_spec(_spec("resume", grid={"seed": [0], "lam": [1.0]}))
    cfg = sweep.resolve(spec, {"seed": 0, "lam": 1.0}, tmp_path / "runs")
    first = dataclasses.replace(cfg, threads=2, max_steps=6, eval_every=6)
    train_module.train(first, explicit=())  # a run a 2-thread worker started...
    ckpt = tmp_path / "runs" / cfg.name / "ckpt.pt"
    blob = checkpoint.read(ckpt)
    blob["step"] = 3  # ...and was killed half way
    torch.save(blob, ckpt)
    seen = []
    original = checkpoint.resume_config
    monkeypatch.setattr(
        checkpoint,
        "resume_config",
        lambda *a, **k: seen.append(original(*a, **k)[0].threads) or original(*a, **k),
    )
    sweep.run_trial(dataclasses.replace(cfg, threads=1, max_steps=6, eval_every=6), spec)
    assert seen == [1]


def test_a_grown_grid_runs_its_new_points_and_keeps_the_old_results(tmp_path):
    small = _spec("grows", grid={"variant": {"a": {"lam": 1.0}}}, fixed={"max_steps": 6})
    sweep.launch(small, tmp_path, workers=1, executor="debug", out=lambda s: None)
    grown = _spec("grows", grid={"variant": {"a": {"lam": 1.0}, "b": {"lam": 0.5}}})
    grown["fixed"]["max_steps"] = 6
    frame = sweep.launch(grown, tmp_path, workers=1, executor="debug", out=lambda s: None)
    assert sorted(frame["variant"]) == ["a", "b"] and set(frame["state"]) == {"complete"}
    assert len(_trials(tmp_path, grown)) == 2  # "a" did not run again


def test_a_worker_started_before_the_grid_grew_runs_the_new_points(tmp_path, monkeypatch):
    small = _spec("stale", grid={"variant": {"a": {"lam": 1.0}}}, fixed={"max_steps": 6})
    grown = _spec("stale", grid={"variant": {"a": {"lam": 1.0}, "b": {"lam": 1.0, "seed": 3}}})
    grown["fixed"]["max_steps"] = 6
    path = tmp_path / "stale.json"
    path.write_text(json.dumps(grown))
    storage = sweep.default_storage(tmp_path)
    sweep.open_study(sweep.load_spec(grown), storage, create=True)  # both points queued
    study_module = __import__("molgan.sweep.worker", fromlist=["load_spec"])
    read = []  # the worker's first read of the file still sees the small grid

    def load(source):
        read.append(source)
        return sweep.load_spec(small if len(read) == 1 else source)

    monkeypatch.setattr(study_module, "load_spec", load)
    study_module.work(str(path), str(tmp_path), storage)
    trials = _trials(tmp_path, grown)
    assert [t.state.name for t in trials] == ["COMPLETE", "COMPLETE"]
    assert len(read) == 2  # it read the file again for the point it did not know


def test_a_point_taken_out_of_the_grid_fails_once_and_the_worker_stops(tmp_path):
    """A queued point whose variant left the study file (a stopped candidate) is failed with
    its error, and the worker then stops: it used to ask Optuna for fresh trials without a grid
    point, failing each, forever."""
    both = _spec("shrinks", grid={"variant": {"a": {"lam": 1.0}, "b": {"lam": 0.5}}})
    storage = sweep.default_storage(tmp_path)
    sweep.open_study(sweep.load_spec(both), storage, create=True)  # a and b queued
    only_a = _spec("shrinks", grid={"variant": {"a": {"lam": 1.0}}}, fixed={"max_steps": 6})
    path = tmp_path / "shrinks.json"
    path.write_text(json.dumps(only_a))
    worker = __import__("molgan.sweep.worker", fromlist=["work"])
    assert worker.work(str(path), str(tmp_path), storage) == "done"
    trials = _trials(tmp_path, only_a)
    assert sorted(t.state.name for t in trials) == ["COMPLETE", "FAIL"]
    assert (
        "variant='b' is not in the grid"
        in [t for t in trials if t.state.name == "FAIL"][0].user_attrs["error"]
    )


def test_a_drained_worker_finishes_its_trial_and_takes_no_other_until_run_again(
    tmp_path, monkeypatch
):
    spec = _spec("drained", grid={"seed": [0, 1]}, fixed={"max_steps": 6})
    path = tmp_path / "drained.json"
    path.write_text(json.dumps(spec))
    storage = sweep.default_storage(tmp_path)
    sweep.open_study(sweep.load_spec(spec), storage, create=True)
    study_module = __import__("molgan.sweep.worker", fromlist=["run_trial"])
    real = study_module.run_trial

    def run_then_drain(*args, **kwargs):  # the request arrives while the first trial trains
        sweep.drain(tmp_path)
        return real(*args, **kwargs)

    monkeypatch.setattr(study_module, "run_trial", run_then_drain)
    study_module.work(str(path), str(tmp_path), storage)
    assert [t.state.name for t in _trials(tmp_path, spec)] == ["COMPLETE", "WAITING"]
    study = sweep.open_study(sweep.load_spec(spec), storage)
    assert "draining" in sweep.status(study, sweep.load_spec(spec), tmp_path)
    monkeypatch.setattr(study_module, "run_trial", real)
    frame = sweep.launch(spec, tmp_path, workers=1, executor="debug", out=lambda s: None)
    assert sorted(frame["seed"]) == [0, 1] and set(frame["state"]) == {"complete"}
    assert not (tmp_path / sweep.study.DRAIN).exists()


def test_search_runs_its_trial_budget(tmp_path):
    spec = _spec("search", grid={}, space={"lr": {"low": 1e-4, "high": 1e-2, "log": True}})
    spec |= {"trials": 3, "sampler": "random"}
    frame = sweep.launch(spec, tmp_path, workers=1, executor="debug", out=lambda s: None)
    assert len(frame) == 3 and frame["lr"].between(1e-4, 1e-2).all()


@pytest.mark.parametrize(
    "change, message",
    [
        ({"fixed": {"learning_rate": 1}}, "unknown setting"),
        ({"objectives": [{"metric": "validity"}]}, "unknown metric"),
        ({"objectives": [{"metric": "fcd", "direction": "minimize"}]}, "needs \\[evaluate\\]"),
        ({"space": {"lr": {"low": 1e-4, "high": 1e-2}}}, "either a \\[grid\\]"),
        ({"grid": {"lam": [2.0]}}, "lam must be in \\[0, 1\\]"),
        ({"pruner": "median", "objectives": ["valid", "unique"]}, "cannot prune multi"),
        ({"fixed": {"members": 4}}, "members cannot be set in a study"),
    ],
)
def test_bad_study_files_are_one_line_errors(change, message):
    spec = _spec()
    spec.update(change)
    if isinstance(spec["objectives"][0], str):
        spec["objectives"] = [{"metric": m} for m in spec["objectives"]]
    with pytest.raises(ValueError, match=message):
        sweep.load_spec(spec)


def test_progress_counts_each_grid_point_of_the_study_file_once():
    from types import SimpleNamespace

    from optuna.trial import TrialState

    from molgan.sweep.study import count_done

    def trial(state, seed, lam, result=True):
        attrs = {"grid": {"seed": seed, "lam": lam}} | ({"result": {}} if result else {})
        return SimpleNamespace(state=state, user_attrs=attrs, params={}, system_attrs={})

    trials = [
        trial(TrialState.FAIL, 0, 1.0),  # failed with a result, then run again:
        trial(TrialState.COMPLETE, 0, 1.0),  # one point
        trial(TrialState.FAIL, 1, 1.0, result=False),  # a dead worker's trial: not done
        trial(TrialState.COMPLETE, 0, 0.9),  # a point the file no longer holds
        trial(TrialState.RUNNING, 1, 0.5, result=False),
        trial(TrialState.COMPLETE, 0, 0.5),
    ]
    spec = sweep.load_spec(_spec())  # grid: seed 0, 1 × lam 1.0, 0.5
    assert count_done(trials, spec) == 2
    search = _spec(grid={}, space={"lr": {"low": 1e-4, "high": 1e-3}}, trials=9)
    assert count_done(trials, sweep.load_spec(search)) == 4


def test_objective_products_are_zero_when_a_factor_is_zero():
    assert sweep.objective_value("valid*unique", {"valid": 0.0, "unique": float("nan")}) == 0.0
    assert sweep.objective_value("valid*unique", {"score/valid": 0.5, "score/unique": 0.4}) == 0.2


def test_study_file_in_toml_and_the_shipped_studies_parse(tmp_path):
    for path in Path(__file__).parent.parent.joinpath("studies").glob("*.toml"):
        assert sweep.load_spec(path).budget > 0
    path = tmp_path / "s.toml"
    path.write_text('name = "t"\npreset = "debug"\n[grid]\nseed = [0, 1]\n')
    assert sweep.load_spec(path).grid_points == [{"seed": 0}, {"seed": 1}]


def test_sweep_script_slurm_options_map_to_submitit_parameters():
    import importlib.util

    path = Path(__file__).parent.parent / "scripts" / "sweep.py"
    spec = importlib.util.spec_from_file_location("sweep_script", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    params, array = script.parse_slurm(["partition=gpu", "time=600", "gpus=1", "array=8"])
    assert params == {"slurm_partition": "gpu", "timeout_min": 600, "gpus_per_node": 1}
    assert array == 8
    with pytest.raises(ValueError, match="unknown --slurm key"):
        script.parse_slurm(["nodes=2"])
    assert json.dumps(params)
