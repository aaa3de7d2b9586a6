"""A study is its definition (issue 40): a study file edited after it ran, a second file of
the same name, and overlapping settings are refused in one line, before anything is created."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("optuna")
pytest.importorskip("submitit")

from molgan import sweep  # noqa: E402
from molgan.sweep import definition  # noqa: E402

TINY = str(Path(__file__).parent / "data" / "qm9_tiny.smi")


def _write(path: Path, **changes) -> Path:
    spec = {
        "name": "edited",
        "preset": "debug",
        "fixed": {"data": TINY, "max_steps": 60},
        "grid": {"seed": [0, 1]},
        "objectives": [{"metric": "valid", "direction": "maximize"}],
    }
    for key, value in changes.items():
        spec[key] = value
        if value is None:
            del spec[key]
    path.write_text(json.dumps(spec))
    return path


def _ran(path: Path, root: Path) -> None:
    """As ``run`` leaves a study: its definition stored beside it."""
    spec = sweep.load_spec(path)
    definition.store(root, definition.check(spec, root, str(path.resolve())))


def test_a_study_file_edited_after_it_ran_is_refused_by_run_and_dry_run_alike(tmp_path):
    path, root = _write(tmp_path / "s.json"), tmp_path / "root"
    _ran(path, root)
    assert "(new)" in sweep.dry_run(path, root)  # unchanged: fine
    _write(path, fixed={"data": TINY, "max_steps": 120})  # the runs would be other runs
    for call in (lambda: sweep.dry_run(path, root), lambda: sweep.launch(path, root, wait=False)):
        with pytest.raises(ValueError, match=r"ran with another definition \(fixed changed\)"):
            call()
    assert sorted(p.name for p in root.iterdir()) == ["study-edited.json"]  # nothing created
    _write(path, objectives=[{"metric": "valid", "direction": "minimize"}])
    with pytest.raises(ValueError, match=r"objectives changed"):
        sweep.dry_run(path, root)
    _write(path, grid={"lam": [0.5]})  # a grid that is another grid
    with pytest.raises(ValueError, match=r"\[grid\] axis lam, \[grid\] axis seed"):
        sweep.dry_run(path, root)
    _write(path, grid=None, space={"lam": {"low": 0.1, "high": 0.9}}, trials=4)
    with pytest.raises(ValueError, match=r"kind changed"):  # a grid turned into a search
        sweep.dry_run(path, root)


def test_more_grid_values_extend_a_study(tmp_path):
    path, root = _write(tmp_path / "s.json"), tmp_path / "root"
    _ran(path, root)
    _write(path, grid={"seed": [0, 1, 2]})
    assert "3 grid points" in sweep.dry_run(path, root)


def test_two_study_files_of_one_name_are_refused_in_one_root(tmp_path):
    root = tmp_path / "root"
    _ran(_write(tmp_path / "a.json"), root)
    other = _write(tmp_path / "b.json")
    with pytest.raises(ValueError, match=r"a.json; .*b.json has the same name: rename one"):
        sweep.dry_run(other, root)


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"grid": {"lam": [1, 1.0]}}, "are the same run"),
        ({"grid": {"variant": {"a": {"lam": 0.5}, "b": {"lam": 0.5}}}}, "are the same run"),
        ({"grid": {"lam": [0.5, 1.0], "variant": {"a": {"lam": 0.7}}}}, "lam is set in both"),
        ({"grid": {"max_steps": [6, 12]}}, r"max_steps is set in both \[fixed\] and \[grid\]"),
    ],
)
def test_a_setting_given_twice_is_refused_at_validation(tmp_path, changes, message):
    with pytest.raises(ValueError, match=message):
        sweep.load_spec(_write(tmp_path / "s.json", **changes))


def test_drain_of_a_study_that_never_ran_is_an_error_that_creates_nothing(tmp_path):
    with pytest.raises(ValueError, match="no study has run in"):
        sweep.drain(tmp_path / "nope")
    assert not (tmp_path / "nope").exists()


def test_slurm_without_srun_is_refused_before_the_study_folder_exists(tmp_path, monkeypatch):
    import shutil

    monkeypatch.setattr(
        shutil, "which", lambda tool: "/usr/bin/sbatch" if tool == "sbatch" else None
    )
    path, root = _write(tmp_path / "s.json"), tmp_path / "root"
    with pytest.raises(ValueError, match="needs Slurm's srun on PATH; nothing was created"):
        sweep.launch(path, root, executor="slurm", wait=False)
    assert not root.exists()


def test_status_tells_a_trial_whose_worker_died_from_a_running_one(tmp_path):
    path, root = _write(tmp_path / "s.json"), tmp_path / "root"
    spec = sweep.load_spec(path)
    study = sweep.open_study(spec, sweep.default_storage(root), create=True)
    study.ask()  # RUNNING in the storage, no worker holds its lock: a killed worker's trial
    text = sweep.status(study, spec, root)
    assert "0 running, 1 stopped (no live worker; `run` resumes them)" in text
    assert "trial 0 stopped (no live worker)" in text


def test_a_run_is_never_labelled_pruned_at_its_last_evaluation(tmp_path):
    """The pruner's verdict at the final step came after the run had finished (issue 40)."""
    from molgan.sweep.worker import _reporter

    class Trial:  # a pruner that always says prune
        def report(self, value, step):
            pass

        def should_prune(self):
            return True

    spec = sweep.load_spec(_write(tmp_path / "s.json", pruner="median"))
    report = _reporter(None, Trial(), spec, last=60)
    assert report(30, {"valid": 0.5}) == "pruned (median pruner) at step 30"
    assert report(60, {"valid": 0.5}) is None  # finished: a result, not a pruned run
