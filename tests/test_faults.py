"""Faults a real user hits (issue 26): a run folder belongs to one process; every write failure
is one line and leaves no litter; nothing on the command line is silently ignored."""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from molgan import checkpoint, rundir

train_module = importlib.import_module("molgan.train")  # the module (molgan.train is the function)

ROOT = Path(__file__).resolve().parent.parent


def _script(*args, limit: int | None = None, check: bool = False):
    """Run a script as a user does; ``limit``: a file-size limit in bytes (``ulimit -f``), so
    that the writes larger than it fail as on a full disk."""

    def cap():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    result = subprocess.run(
        [sys.executable, *map(str, args)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=cap if limit else None,
    )
    if check:
        assert result.returncode == 0, result.stderr
    return result


def _train(tmp_path, tiny_path, name, *extra, limit=None, check=False):
    """The training script in a subprocess (needed for a file-size limit)."""
    args = ["scripts/train_qm9.py", *_train_args(tmp_path, tiny_path, name, *extra)]
    return _script(*args, limit=limit, check=check)


def _train_args(tmp_path, tiny_path, name, *extra) -> list[str]:
    args = ["--preset", "debug", "--data", tiny_path, "--out-dir", tmp_path, "--name", name]
    return [str(a) for a in (*args, "--eval-samples", "8", *extra)]


def _main(script: str, args: list, capsys):
    """A script's ``main`` in this process (faster than a subprocess): ``(code, stderr)``."""
    spec = importlib.util.spec_from_file_location(script, ROOT / "scripts" / f"{script}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    capsys.readouterr()
    code = module.main([str(a) for a in args])
    return subprocess.CompletedProcess(args, code, "", capsys.readouterr().err)


def _one_line_error(result, *parts):
    """Exit 2 and the error as the last line of stderr (after any progress notes), no
    traceback."""
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    err = result.stderr.strip().splitlines()[-1]
    assert err.startswith("error: "), result.stderr
    for part in parts:
        assert part in err, err


def _litter(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.suffix in (".tmp", ".part")]


# --- 2. one process per run folder --------------------------------------------------------------


def test_a_run_folder_in_use_is_refused_naming_the_process(tiny_config):
    run_dir = Path(tiny_config.out_dir) / tiny_config.run_name
    with rundir.hold(run_dir):  # as if another training process had it (flock is per open file)
        with pytest.raises(ValueError, match=r"is in use by process \d+"):
            train_module.train(tiny_config)
        assert not (run_dir / rundir.CONFIG).exists()  # nothing of the run was written
    train_module.train(tiny_config)  # released: the run starts
    with rundir.hold(run_dir):
        with pytest.raises(ValueError, match="in use by process"):
            train_module.train(dataclasses.replace(tiny_config, resume=True, max_steps=9))


def test_a_stale_lock_of_a_dead_process_does_not_block(tiny_config):
    run_dir = Path(tiny_config.out_dir) / tiny_config.run_name
    run_dir.mkdir(parents=True)
    (run_dir / rundir.LOCK).write_text("999999\n")  # left by a killed run: no flock held
    train_module.train(tiny_config)
    assert (run_dir / rundir.CKPT).is_file()


# --- 3. write failures --------------------------------------------------------------------------


def test_a_full_disk_while_saving_a_checkpoint_is_one_line_and_keeps_the_old_one(
    tmp_path, tiny_path, capsys
):
    assert _main("train_qm9", _train_args(tmp_path, tiny_path, "full", "--max-steps", 4), capsys)
    ckpt = tmp_path / "full" / "ckpt.pt"
    size = ckpt.stat().st_size
    result = _train(tmp_path, tiny_path, "full", "--resume", "--max-steps", "8", limit=size // 2)
    _one_line_error(result, "cannot write", str(ckpt))
    assert checkpoint.read(ckpt)["step"] == 4 and not _litter(tmp_path)
    args = _train_args(tmp_path, tiny_path, "full", "--resume", "--max-steps", 8)
    done = _main("train_qm9", args, capsys)
    assert done.returncode == 0 and "resuming" in done.stderr
    assert checkpoint.read(ckpt)["step"] == 8


def test_an_output_folder_that_is_a_file_is_one_line(tmp_path, tiny_path, capsys):
    target = tmp_path / "file"
    target.write_text("not a folder")
    result = _main("train_qm9", _train_args(target, tiny_path, "x", "--max-steps", 2), capsys)
    _one_line_error(result, "cannot write", str(target / "x"))


@pytest.mark.slow  # ~9 s: three subprocesses under a file-size limit (the checkpoint: not slow)
def test_sample_and_evaluate_writes_that_fail_are_one_line_and_leave_no_part(tmp_path, tiny_path):
    out = tmp_path / "s.csv"
    result = _script("scripts/sample.py", "-n", "500", "--chunk", "100", "--out", out, limit=4_000)
    _one_line_error(result, "cannot write", str(out), "File too large")
    assert not out.exists() and not _litter(tmp_path)
    grid = tmp_path / "g.png"
    result = _script("scripts/sample.py", "-n", "200", "--grid", grid, limit=2_000)
    _one_line_error(result, "cannot write", str(grid))
    assert not grid.exists() and not _litter(tmp_path)
    smi = tmp_path / "in.smi"
    smi.write_text("".join(f"{'C' * (k % 8 + 1)}O\n" for k in range(50)))
    js = tmp_path / "m.json"
    result = _script("scripts/evaluate.py", smi, "--json", js, limit=100)
    _one_line_error(result, "cannot write", str(js))
    assert not js.exists() and not _litter(tmp_path)


# --- 4. nothing silently ignored ----------------------------------------------------------------


def test_resume_refuses_another_preset_and_a_step_count_it_has_passed(tmp_path, tiny_path, capsys):
    def train(*extra):
        return _main("train_qm9", _train_args(tmp_path, tiny_path, "r", *extra), capsys)

    assert train("--max-steps", 6).returncode == 0
    result = train("--resume", "--preset", "paper")
    _one_line_error(result, "refused: --preset paper", "preset 'debug'")
    result = train("--resume", "--max-steps", 4)
    _one_line_error(result, "is at step 6", "max_steps 6 -> 4", "nothing to train")
    result = train("--resume", "--preset", "debug", "--max-steps", 8)
    assert result.returncode == 0, result.stderr  # the run's own preset is fine


def test_early_stop_unique_is_a_share_and_no_valid_molecule_counts_as_below_it():
    from molgan.monitor import stop_reason
    from molgan.presets import make_config

    with pytest.raises(ValueError, match=r"early_stop_unique is a share .* got 2"):
        make_config("debug", early_stop_unique=2.0)
    cfg = make_config("debug", early_stop_unique=0.02)
    nothing_valid = {"score/valid": 0.0, "score/unique": float("nan")}
    why = stop_reason(cfg, {"score/valid": 0.0}, nothing_valid, False, 10, 5)
    assert why == "early stop: uniqueness 0.000 < 0.02"
    fine = {"score/valid": 0.5, "score/unique": 0.5}
    assert stop_reason(cfg, {"score/valid": 0.5}, fine, False, 10, 5) == ""


def test_sample_script_refuses_to_overwrite_without_force(tmp_path, capsys):
    out = tmp_path / "s.smi"
    out.write_text("keep me\n")
    result = _main("sample", ["-n", 5, "--out", out], capsys)
    _one_line_error(result, f"--out {out} exists; pass --force")
    assert out.read_text() == "keep me\n"
    assert _main("sample", ["-n", 5, "--out", out, "--force"], capsys).returncode == 0
    assert len(out.read_text().splitlines()) == 5


def test_isotopes_and_overlong_smiles_are_counted_drops(tmp_path):
    from molgan.data import load_dataset

    path = tmp_path / "iso.smi"
    path.write_text("CCO\n[13CH3]O\nCCN\n" + "C" * 1001 + "\n")
    data = load_dataset(path, verbose=False)
    assert sorted(data.smiles) == ["CCN", "CCO"]
    assert data.drops["isotope label (a graph has none)"] == 1
    assert data.drops["SMILES longer than 1000 characters"] == 1


def test_evaluate_says_when_overlong_smiles_count_as_invalid(tmp_path, capsys):
    path = tmp_path / "s.smi"
    path.write_text("CCO\n" + "C" * 1001 + "\n")
    result = _main("evaluate", [path], capsys)
    assert result.returncode == 0
    assert "note: 1 SMILES longer than 1000 characters count as invalid" in result.stderr


# --- 5. progress --------------------------------------------------------------------------------


def test_sample_shows_progress_when_asked_and_on_a_terminal_for_large_n(capsys, monkeypatch):
    import molgan

    sample_module = importlib.import_module("molgan.sample")
    smiles = molgan.sample(300, seed=0, progress=True, batch_size=100)
    assert len(smiles) == 300 and "sampling 300 molecules" in capsys.readouterr().err
    molgan.sample(300, seed=0)
    assert capsys.readouterr().err == ""  # small n, not a terminal: quiet
    shown = []
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    parts = sample_module.with_progress(iter([[1] * 5]), sample_module.PROGRESS_FROM, None)
    shown = list(parts)
    assert shown == [[1] * 5] and "sampling 100,000 molecules" in capsys.readouterr().err
