"""Studies at scale: searches that do not repeat themselves, study files checked whole before
anything starts, failures that stop a study instead of looping, Slurm arrays (a fake sbatch),
storage, results per study, Optuna's view of a study, pruner warm-up, worker replacement."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import stat
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("optuna")
pytest.importorskip("submitit")

from molgan import rundir, sweep  # noqa: E402
from molgan.sweep import study as study_module  # noqa: E402
from molgan.sweep import worker as worker_module  # noqa: E402

TINY = str(Path(__file__).parent / "data" / "qm9_tiny.smi")
QUIET = dict(out=lambda s: None)


def _spec(name="scale", **extra):
    spec = {
        "name": name,
        "preset": "debug",
        "fixed": {"data": TINY, "max_steps": 6, "eval_every": 3, "eval_samples": 16},
        "grid": {"seed": [0, 1]},
        "objectives": [{"metric": "valid_lenient", "direction": "maximize"}],
    }
    for key, value in extra.items():
        if key == "fixed":
            spec[key] = {**spec[key], **value}
        elif value is None:
            spec.pop(key, None)
        else:
            spec[key] = value
    return spec


def _search(name="search", trials=4, **space):
    space = space or {"lr": {"low": 1e-4, "high": 1e-2, "log": True}}
    return _spec(name, grid=None, space=space, trials=trials, sampler="random")


def _script():
    path = Path(__file__).parent.parent / "scripts" / "sweep.py"
    spec = importlib.util.spec_from_file_location("sweep_script", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    return script


def _study(root, spec):
    return sweep.open_study(sweep.load_spec(spec), sweep.default_storage(Path(root)))


def _checkpointed_worker(root: Path, folder: str = "runs") -> int:
    """The pid of the worker that holds trial 0, once its run (or pack) has a checkpoint."""
    lock = root / "locks" / "trial-0.lock"
    deadline = time.monotonic() + 120
    while not (
        list((root / folder).glob("*/ckpt.pt")) and lock.is_file() and lock.read_text().strip()
    ):
        assert time.monotonic() < deadline, "no checkpoint within 2 minutes"
        time.sleep(0.05)
    return int(lock.read_text())


# --- 1. samplers -------------------------------------------------------------------------------


def test_each_worker_samples_with_its_own_seed_derived_from_the_study_seed():
    spec = sweep.load_spec(_search())
    seeds = {study_module.worker_seed(spec, k) for k in range(8)}
    assert len(seeds) == 8  # before: every worker seed 0, so two workers drew the same settings
    assert study_module.worker_seed(spec, 3) == study_module.worker_seed(spec, 3)
    other = sweep.load_spec(_search() | {"seed": 1})
    assert study_module.worker_seed(other, 0) != study_module.worker_seed(spec, 0)


@pytest.mark.slow  # ~10 s; the seeds themselves are pinned by the test above
def test_two_local_workers_of_a_search_train_four_different_settings(tmp_path):
    frame = sweep.launch(_search(trials=4), tmp_path, workers=2, poll_s=0.3, **QUIET)
    assert len(frame) == 4 and frame["lr"].nunique() == 4
    assert frame["run_dir"].nunique() == 4


def test_a_search_that_runs_out_of_settings_stops_without_repeating_a_run(tmp_path):
    spec = _search(trials=5, lam={"choices": [1.0, 0.5]})
    frame = sweep.launch(spec, tmp_path, workers=1, executor="debug", **QUIET)
    assert sorted(frame["lam"]) == [0.5, 1.0]  # the two settings there are, each once
    assert frame.attrs["left"] == 0 and not frame.attrs["failed"]
    assert "search space exhausted" in frame.attrs["exhausted"]  # said, not a silent exit 0
    assert "search ended before its budget" in sweep.status(
        _study(tmp_path, spec), sweep.load_spec(spec), tmp_path
    )
    trials = _study(tmp_path, spec).get_trials(deepcopy=False)
    repeats = [t for t in trials if "duplicate_of" in t.user_attrs]
    assert len(repeats) >= worker_module.MAX_REPEATS  # told their twin's value, not trained
    assert all(t.values in ([r] for r in frame["objective:valid_lenient"]) for t in repeats)
    assert len(list((tmp_path / "runs").glob("*/result.json"))) == 2


# --- 2. validation -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "change, message",
    [
        ({"grid": {"seed": []}}, "seed must be a non-empty list"),
        ({"grid": {"seed": 0}}, "seed must be a non-empty list"),
        ({"objectives": [{"direction": "maximize"}]}, "objectives\\[0\\] needs metric"),
        ({"evaluate": {"sample": 100}}, "\\[evaluate\\] unknown key 'sample'"),
        ({"evaluate": {"fdc": True}}, "\\[evaluate\\] unknown key 'fdc'"),
        ({"trials": 4}, "belong to a \\[space\\] search"),
        ({"sampler": "random"}, "belong to a \\[space\\] search"),
        (
            {"grid": None, "trials": 2, "space": {"lr": {"low": 1e-2, "high": 1e-4}}},
            "low must be below high",
        ),
        (
            {"grid": None, "trials": 2, "space": {"lr": {"low": "a", "high": 1e-4}}},
            "low must be a number",
        ),
        (
            {"grid": None, "trials": 2, "space": {"lr": [1e-4, 1e-2]}},
            "\\[space\\] lr must be a table",
        ),
        (
            {"grid": None, "trials": 2, "space": {"lrr": {"low": 1e-4, "high": 1e-2}}},
            "unknown setting",
        ),
        (
            {"grid": None, "trials": 2, "space": {"batch_size": {"low": 0.5, "high": 8}}},
            "integer setting",
        ),
        (
            {"grid": None, "trials": 2, "space": {"lr": {"low": 0, "high": 1, "log": True}}},
            "log range needs low > 0",
        ),
        (
            {"grid": None, "trials": 2, "space": {"lam": {"low": 0.5, "high": 2.0}}},
            "lam must be in",
        ),
        ({"grid": None, "trials": 2, "space": {"lr": {"low": 1e-4, "hi": 1e-2}}}, "a range is"),
        ({"grid": None, "trials": 2, "space": {"mode": {"choices": ["softmax", "x"]}}}, "mode"),
        ({"pruner": {"kind": "median", "warmup": 2}}, "warmup is a share"),
        ({"pruner": {"kind": "median", "min_resource": 2}}, "unknown for median"),
        ({"seed": "a"}, "seed must be an integer"),
        ({"max_failures": 0}, "max_failures must be ≥ 1"),
    ],
)
def test_every_part_of_a_study_file_is_checked_up_front_as_one_line(change, message):
    spec = _spec()
    for key, value in change.items():
        if value is None:
            spec.pop(key)
        else:
            spec[key] = value
    with pytest.raises(ValueError, match=message) as err:
        sweep.load_spec(spec)
    assert "\n" not in str(err.value)


def test_a_bad_study_file_names_itself_and_the_launcher_creates_nothing(tmp_path, capsys):
    path = tmp_path / "bad.toml"
    path.write_text(
        'name = "bad"\npreset = "debug"\ntrials = 3\n[space]\nlr = {low = 1e-2, high = 1e-4}\n'
    )
    root = tmp_path / "root"
    assert _script().main(["run", str(path), "--root", str(root)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {path}: [space] lr: low must be below high") and "\n" not in err
    assert not root.exists()
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    assert _script().main(["run", str(broken), "--root", str(root)]) == 2
    assert f"{broken}: not valid JSON" in capsys.readouterr().err


def test_a_settings_error_in_a_trial_fails_the_study_with_its_message_at_once(tmp_path):
    spec = _spec("toobig", fixed={"batch_size": 100_000})  # the data decide: only a run finds out
    frame = sweep.launch(spec, tmp_path, workers=1, executor="debug", **QUIET)
    assert "batch_size 100000 exceeds" in frame.attrs["failed"]
    trials = _study(tmp_path, spec).get_trials(deepcopy=False)
    assert len(trials) == 2 and sum("error" in t.user_attrs for t in trials) == 1  # no retry loop


def test_failing_trials_count_toward_a_cap_and_the_worker_stops(tmp_path, monkeypatch):
    calls = []

    def broken(cfg, spec, report=None):
        calls.append(cfg.name)
        raise OSError("disk on fire")

    monkeypatch.setattr(worker_module, "run_trial", broken)
    spec = _spec("cap", grid={"seed": list(range(6))}, max_failures=2)
    frame = sweep.launch(spec, tmp_path, workers=1, executor="debug", **QUIET)
    assert len(calls) == 2 and "2 trials failed (max_failures = 2)" in frame.attrs["failed"]
    assert frame.attrs["left"] == 4
    text = sweep.status(_study(tmp_path, spec), sweep.load_spec(spec), tmp_path)
    assert "error: OSError: disk on fire" in text


def test_a_worker_stops_on_sigterm_between_and_during_trials(tmp_path):
    spec = _spec("term", fixed={"max_steps": 100_000, "ckpt_minutes": 0.002, "eval_every": 0})
    sweep.launch(spec, tmp_path, workers=1, wait=False, **QUIET)
    lock = tmp_path / "locks" / "trial-0.lock"
    pid = _checkpointed_worker(tmp_path)
    os.kill(pid, signal.SIGTERM)  # before: submitit's job handler ignored it
    deadline = time.monotonic() + 60
    while not all(sweep.is_free(p) for p in lock.parent.glob("*.lock")):
        assert time.monotonic() < deadline, "the worker ignored SIGTERM"
        time.sleep(0.05)
    said = " ".join(p.read_text() for p in (tmp_path / "jobs").glob("*_log.out"))
    assert "worker stopped: SIGTERM at step" in said  # and its run checkpointed


# --- 3. Slurm ----------------------------------------------------------------------------------


def _fake_slurm(bin_dir: Path, queued: int = 0) -> Path:
    """sbatch that records its calls and prints a job id; squeue that lists ``queued`` jobs."""
    bin_dir.mkdir()
    calls = bin_dir / "calls.txt"
    (bin_dir / "sbatch").write_text(
        f'#!/bin/sh\necho "$@" >> {calls}\ngrep -h "#SBATCH --array" "$@" >> {calls}\n'
        'echo "Submitted batch job 4242"\n'
    )
    lines = "".join(f"echo 4242_{k}\n" for k in range(queued))
    (bin_dir / "squeue").write_text(f"#!/bin/sh\n{lines}")
    (bin_dir / "srun").write_text("#!/bin/sh\n")
    for name in ("sbatch", "squeue", "srun"):
        (bin_dir / name).chmod((bin_dir / name).stat().st_mode | stat.S_IEXEC)
    return calls


def test_slurm_workers_are_one_job_array_and_a_rerun_counts_the_queued_ones(tmp_path, monkeypatch):
    calls = _fake_slurm(tmp_path / "bin", queued=3)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:{os.environ['PATH']}")
    root = tmp_path / "study"
    slurm = {"slurm_partition": "cpu", "timeout_min": 10}
    lines = []
    sweep.launch(
        _spec(), root, workers=3, executor="slurm", slurm=slurm, wait=False, out=lines.append
    )
    submitted = calls.read_text().splitlines()
    assert len([s for s in submitted if s.endswith(".sh")]) == 1  # one sbatch: one array
    assert any("--array=0-2" in s for s in submitted)
    assert "3 started (slurm" in lines[-1]
    sweep.launch(
        _spec(), root, workers=3, executor="slurm", slurm=slurm, wait=False, out=lines.append
    )
    assert len([s for s in calls.read_text().splitlines() if s.endswith(".sh")]) == 1
    assert "3 live worker(s), 0 started" in lines[-1]  # the queued array counts


def test_without_slurm_the_launcher_says_so_in_one_line_and_creates_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch anywhere
    with pytest.raises(ValueError, match="needs Slurm's sbatch, srun on PATH"):
        sweep.launch(_spec(), tmp_path / "study", executor="slurm", wait=False, **QUIET)
    assert not (tmp_path / "study").exists()


def test_a_slurm_worker_requeues_itself_with_its_arguments_on_time_limit():
    from submitit.helpers import DelayedSubmission

    args = ("study.toml", "root", "journal:x", 1, False, 7, "abcd")
    again = sweep.Worker().checkpoint(*args)
    assert isinstance(again, DelayedSubmission) and again.args == args
    assert isinstance(again.function, sweep.Worker) and hasattr(again.function, "checkpoint")


# --- 4. storage and results --------------------------------------------------------------------


def test_sqlite_storage_in_a_new_folder_is_created(tmp_path):
    url = f"sqlite:///{tmp_path}/new/folder/study.db"
    frame = sweep.launch(_spec(), tmp_path / "s", storage=url, executor="debug", **QUIET)
    assert len(frame) == 2 and (tmp_path / "new" / "folder" / "study.db").is_file()


@pytest.mark.slow  # ~5 s: two local launches, then one that follows the study to its end
def test_two_launchers_at_once_start_only_the_workers_asked_for(tmp_path):
    spec = _spec("twice", grid={"seed": [0, 1, 2]})
    lines = []
    sweep.launch(spec, tmp_path, workers=1, wait=False, out=lines.append)
    sweep.launch(spec, tmp_path, workers=1, wait=False, out=lines.append)  # within seconds
    assert "1 started" in lines[0] and "1 live worker(s), 0 started" in lines[1]
    frame = sweep.launch(spec, tmp_path, workers=1, poll_s=0.3, **QUIET)  # follows to the end
    assert len(frame) == 3


def test_two_studies_on_one_root_keep_their_own_results(tmp_path):
    a = sweep.launch(_spec("first"), tmp_path, executor="debug", **QUIET)
    b = sweep.launch(_spec("second", grid={"seed": [5]}), tmp_path, executor="debug", **QUIET)
    assert len(a) == 2 and len(b) == 1
    first = (tmp_path / "results-first.csv").read_text()
    assert len(first.splitlines()) == 3 and (tmp_path / "results-second.md").is_file()
    own = tmp_path / "third"  # a folder named after its study keeps plain names
    sweep.launch(_spec("third", grid={"seed": [0]}), own, executor="debug", **QUIET)
    assert (own / "results.csv").is_file() and not list(tmp_path.glob("*.tmp"))


def test_results_table_has_objective_and_state_and_keeps_pruned_runs_apart():
    import pandas as pd

    frame = pd.DataFrame(
        {
            "trial": [0, 1, 2],
            "state": ["complete", "complete", "pruned"],
            "lr": [0.000123456789, 0.000123456789, 0.000123456789],
            "objective:valid_lenient": [0.5, 0.7, 0.1],
            "final_valid": [0.5, 0.7, 0.1],
            "minutes": [1.0, 1.0, 0.5],
        }
    )
    spec = sweep.load_spec(_search())
    table = sweep.markdown_table(frame, spec)
    assert table.splitlines()[0] == (
        "| lr | state | seeds | objective valid_lenient | valid | minutes |"
    )
    assert "| 0.0001235 | complete | 2 | 0.600 ± 0.141 | 60.0 ± 14.1 | 1.0 ± 0.0 |" in table
    assert "| 0.0001235 | pruned | 1 | 0.100 | 10.0 | 0.5 |" in table


def test_a_search_writes_optunas_own_plots(tmp_path):
    pytest.importorskip("matplotlib")
    spec = _search(trials=3)
    spec["space"]["lam"] = {"low": 0.5, "high": 1.0}
    sweep.launch(spec, tmp_path, executor="debug", **QUIET)
    names = {p.name for p in tmp_path.glob("results-search*.png")}
    assert {"results-search.png", "results-search-history.png", "results-search-slice.png"} <= names


# --- 6. Optuna's view --------------------------------------------------------------------------


def test_grid_values_are_optuna_params_and_every_evaluation_an_intermediate_value(tmp_path):
    spec = _spec(
        "visible", grid={"seed": [0, 1], "lam": [1.0, 0.5], "variant": {"a": {}, "b": {"ema": 0.9}}}
    )
    sweep.launch(spec, tmp_path, executor="debug", **QUIET)
    frame = _study(tmp_path, spec).trials_dataframe()
    assert {"params_seed", "params_lam", "params_variant"} <= set(frame.columns)
    assert sorted(frame["params_seed"]) == [0, 0, 0, 0, 1, 1, 1, 1]
    trial = _study(tmp_path, spec).get_trials()[0]
    assert sorted(trial.intermediate_values) == [3, 6]  # no pruner, still a learning curve


# --- 7. pruner ---------------------------------------------------------------------------------


def test_the_median_pruner_waits_its_warmup_then_prunes_a_worse_run():
    import optuna

    spec = sweep.load_spec(_spec(pruner={"kind": "median", "n_startup_trials": 1, "warmup": 0.5}))
    study = optuna.create_study(direction="maximize", pruner=study_module.make_pruner(spec, 12))
    first = study.ask()
    for step in range(2, 13, 2):
        first.report(0.9, step)
    study.tell(first, 0.9)
    report = worker_module._reporter(study, study.ask(), spec)
    assert report(2, {"valid_lenient": 0.0}) is None  # within the warm-up (6 steps)
    assert report(4, {"valid_lenient": 0.0}) is None
    assert report(8, {"valid_lenient": 0.0}) == "pruned (median pruner) at step 8"


def test_pruner_defaults_wait_past_the_first_evaluations():
    median = study_module.make_pruner(sweep.load_spec(_spec(pruner="median")), 10_000)
    assert median._n_warmup_steps == 3_000 and median._n_startup_trials == 3
    set_ = sweep.load_spec(_spec(pruner={"kind": "median", "n_warmup_steps": 50}))
    assert study_module.make_pruner(set_, 10_000)._n_warmup_steps == 50
    halving = study_module.make_pruner(sweep.load_spec(_spec(pruner="halving")), 10_000)
    assert halving._min_resource == 3_000


# --- 8. workers --------------------------------------------------------------------------------


@pytest.mark.slow  # ~30 s: submitit notices a killed local worker after ~15 s
def test_a_dead_local_worker_is_replaced_while_the_launcher_runs(tmp_path):
    spec = _spec("replace", fixed={"max_steps": 200, "log_every": 20, "ckpt_minutes": 0.005})
    result, lines = {}, []
    thread = threading.Thread(
        target=lambda: result.update(
            frame=sweep.launch(spec, tmp_path, poll_s=0.3, out=lines.append)
        )
    )
    thread.start()
    pid = _checkpointed_worker(tmp_path)
    os.kill(pid, signal.SIGKILL)
    thread.join(timeout=240)
    assert not thread.is_alive()
    frame = result["frame"]
    assert len(frame) == 2 and set(frame["state"]) == {"complete"} and frame.attrs["left"] == 0
    assert any("started 1 anew" in line for line in lines)
    assert [r["step"] for r in rundir.read_log(frame["run_dir"][0]) if "event" not in r][-1] == 200


def test_the_launcher_exits_non_zero_while_trials_are_left(tmp_path, monkeypatch, capsys):
    original = worker_module._should_stop
    monkeypatch.setattr(
        worker_module,
        "_should_stop",
        lambda study, spec, root: (
            original(study, spec, root)
            or ("drained" if any(t.state.name == "COMPLETE" for t in study.get_trials()) else None)
        ),
    )
    path = tmp_path / "s.json"
    path.write_text(json.dumps(_spec("left")))
    code = _script().main(["run", str(path), "--root", str(tmp_path / "r"), "--executor", "debug"])
    assert code == 3 and "1 trial(s) left" in capsys.readouterr().err


def test_dry_run_lists_the_trials_and_creates_nothing(tmp_path, capsys):
    path = tmp_path / "s.json"
    path.write_text(json.dumps(_spec("dry", grid={"seed": [0, 1], "lam": [1.0, 0.5]})))
    root = tmp_path / "r"
    assert _script().main(["run", str(path), "--root", str(root), "--dry-run"]) == 0
    text = capsys.readouterr().out
    assert "4 grid points" in text and text.count("(new)") == 4 and not root.exists()
    assert "{'seed': 1, 'lam': 0.5} -> " in text


# --- packing trials into populations (issue 22, item 5) -----------------------------------------


def test_members_pack_trials_into_one_population_each_with_its_own_run_folder(tmp_path):
    import molgan
    from molgan import checkpoint

    spec = _spec("pack", grid={"seed": [0, 1], "lam": [1.0, 0.5]})
    lines = []
    frame = sweep.launch(spec, tmp_path, executor="debug", members=4, out=lines.append)
    assert "up to 4 trials per population" in lines[0]
    assert (
        len(frame) == 4 and set(frame["state"]) == {"complete"} and frame["run_dir"].nunique() == 4
    )
    packs = [p for p in (tmp_path / "packs").iterdir() if p.is_dir()]
    assert len(packs) == 1  # one process trained the four trials as one population
    pack_rows = rundir.read_log(packs[0])
    for row in frame.itertuples():
        run = Path(row.run_dir)
        model = molgan.load(run)  # the trial's member, sampling-ready
        assert (model.config["seed"], model.config["lam"]) == (row.seed, row.lam)
        result = json.loads((run / "result.json").read_text())
        k = result["member"]
        own = [r for r in pack_rows if r.get("member") == k and "event" not in r]
        rows = [r for r in rundir.read_log(run) if "event" not in r]
        assert rows == [{key: v for key, v in r.items() if key != "member"} for r in own]
        assert checkpoint.read(run / "best.pt")["config"]["seed"] == row.seed
    pack_dirs = {t.user_attrs["pack_dir"] for t in _study(tmp_path, spec).get_trials()}
    assert pack_dirs == {f"packs/{packs[0].name}"}  # where `status` reads their progress
    again = sweep.launch(spec, tmp_path, executor="debug", members=4, **QUIET)
    assert len(again) == 4 and len(_study(tmp_path, spec).get_trials()) == 4  # reused


def test_status_shows_a_packed_trials_step_from_its_population_log(tmp_path):
    import optuna

    study = optuna.create_study()
    trial = study.ask()
    trial.set_user_attr("run_dir", "runs/member-0")  # written only when the population ends
    trial.set_user_attr("pack_dir", "packs/pack-a")
    (tmp_path / "packs" / "pack-a").mkdir(parents=True)
    rows = [{"step": 20, "member": 0}, {"step": 20, "member": 1}, {"step": 40, "member": 0}]
    log = tmp_path / "packs" / "pack-a" / rundir.LOG
    log.write_text("".join(json.dumps(r) + "\n" for r in rows))
    spec = sweep.load_spec(_spec("progress"))
    from molgan.sweep.runner import locked

    with locked(tmp_path / "locks" / "trial-0.lock"):  # its worker is alive
        last = sweep.status(study, spec, tmp_path).splitlines()[-1]
        assert last == "  trial 0 running {}, step 40 of its population packs/pack-a"
        log.unlink()  # before the population's first log row: no step to show
        assert sweep.status(study, spec, tmp_path).splitlines()[-1] == "  trial 0 running {}"


def test_trials_that_differ_in_shared_settings_are_not_packed(tmp_path):
    spec = _spec("apart", grid={"seed": [0, 1], "z_dim": [4, 8]})
    frame = sweep.launch(spec, tmp_path, executor="debug", members=4, **QUIET)
    assert len(frame) == 4
    packs = sorted(p for p in (tmp_path / "packs").iterdir() if p.is_dir())
    assert len(packs) == 2  # one population per z_dim, seeds packed
    for pack in packs:
        cfg = json.loads((pack / "config.json").read_text())
        assert cfg["members"] == 2 and cfg["member_settings"] == {"seed": [0, 1]}


def test_a_search_over_per_member_settings_packs_its_draws(tmp_path):
    spec = _search(trials=3, lam={"low": 0.5, "high": 1.0})
    frame = sweep.launch(spec, tmp_path, executor="debug", members=3, **QUIET)
    assert len(frame) == 3 and frame["lam"].nunique() == 3
    assert len([p for p in (tmp_path / "packs").iterdir() if p.is_dir()]) == 1


@pytest.mark.slow  # ~15 s: a local worker killed mid-population, then the same command
def test_a_killed_population_of_trials_resumes_from_its_checkpoint(tmp_path):
    spec = _spec(
        "packkill",
        grid={"seed": [0, 1]},
        fixed={"max_steps": 300, "log_every": 20, "eval_every": 100, "ckpt_minutes": 0.002},
    )
    sweep.launch(spec, tmp_path, workers=1, wait=False, members=2, **QUIET)
    lock = tmp_path / "locks" / "trial-0.lock"
    pid = _checkpointed_worker(tmp_path, "packs")
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while not sweep.is_free(lock):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    frame = sweep.launch(spec, tmp_path, workers=1, poll_s=0.3, members=2, **QUIET)
    assert len(frame) == 2 and set(frame["state"]) == {"complete"}
    pack = next(p for p in (tmp_path / "packs").iterdir() if p.is_dir())
    rows = rundir.read_log(pack)
    assert [r["event"] for r in rows if "event" in r] == ["resume"]
    for k in (0, 1):
        steps = [r["step"] for r in rows if r.get("member") == k and "event" not in r]
        assert steps == list(range(20, 301, 20))  # each step once
