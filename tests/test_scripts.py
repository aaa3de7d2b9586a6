"""End-to-end smoke tests of the command-line scripts, as a user runs them."""

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parent.parent


def run(*args, check=True):
    result = subprocess.run(
        [sys.executable, *map(str, args)], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    if check:
        assert result.returncode == 0, result.stderr
    return result


def train_debug(tmp_path, data, steps, *extra) -> Path:
    """Run the training script on the debug preset; returns the run directory it prints."""
    out = run(
        "scripts/train_qm9.py",
        "--preset",
        "debug",
        "--data",
        data,
        "--out-dir",
        tmp_path,
        "--max-steps",
        steps,
        *extra,
    )
    return Path(out.stdout.strip().splitlines()[-1])


def test_train_debug_then_sample_then_evaluate(tmp_path, tiny_path):
    run_dir = train_debug(tmp_path, tiny_path, 8)
    ckpt = run_dir / "ckpt.pt"
    assert ckpt.is_file() and (run_dir / "config.json").is_file()
    assert len((run_dir / "log.jsonl").read_text().splitlines()) >= 1
    csv = tmp_path / "s.csv"
    done = run("scripts/sample.py", "--checkpoint", ckpt, "-n", "50", "--out", csv)
    assert "50 sampled" in done.stdout
    frame = pd.read_csv(csv)
    assert len(frame) == 50 and {"smiles", "valid", "qed", "sa", "logp"} <= set(frame.columns)
    smi = tmp_path / "s.smi"
    run("scripts/sample.py", "--checkpoint", ckpt, "-n", "20", "--out", smi, "--seed", "1")
    run("scripts/sample.py", "--checkpoint", ckpt, "-n", "20", "--out", tmp_path / "s.sdf")
    metrics_json = tmp_path / "m.json"
    table = run("scripts/evaluate.py", tiny_path, "--train", tiny_path, "--json", metrics_json)
    assert "| valid |" in table.stdout
    result = json.loads(metrics_json.read_text())
    assert result["valid"] == 31 / 32 and result["novel"] == 0.0  # the malformed line is invalid


def test_sample_script_draws_a_grid(tmp_path):
    from molgan import chem

    png = tmp_path / "grid.png"
    assert chem.draw_grid(["CCO", None, "c1ccoc1"], str(png)) == 2
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_corrupt_checkpoint_is_a_one_line_error(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_text("garbage")
    result = run(
        "scripts/sample.py",
        "--checkpoint",
        bad,
        "-n",
        "5",
        "--out",
        tmp_path / "x.csv",
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "error:" in result.stderr
    assert "Traceback" not in result.stderr


def test_train_on_unreadable_data_is_a_one_line_error(tmp_path):
    result = run(
        "scripts/train_qm9.py",
        "--preset",
        "debug",
        "--data",
        tmp_path / "missing.smi",
        "--out-dir",
        tmp_path,
        check=False,
    )
    assert result.returncode == 2 and "data file not found" in result.stderr
    assert "Traceback" not in result.stderr


def test_train_help_lists_every_setting():
    out = run("scripts/train_qm9.py", "--help").stdout
    for flag in ("--lam", "--reward", "--n-critic", "--resume", "--data", "--time-limit"):
        assert flag in out


def test_reproduce_runs_and_aggregates_on_the_debug_preset(tmp_path):
    out = run(
        "scripts/reproduce.py",
        "--preset",
        "debug",
        "--objectives",
        "none",
        "qed",
        "--seeds",
        "0",
        "1",
        "--samples",
        "40",
        "--no-fcd",
        "--out",
        tmp_path,
    )
    assert "no RL (λ=1), 2 seeds" in out.stdout and "RL on qed, 2 seeds" in out.stdout
    results = json.loads((tmp_path / "results.json").read_text())
    assert len(results["runs"]) == 4 and all(r["n"] == 40 for r in results["runs"])
    again = run(
        "scripts/reproduce.py",
        "--preset",
        "debug",
        "--objectives",
        "none",
        "--seeds",
        "0",
        "--samples",
        "40",
        "--no-fcd",
        "--out",
        tmp_path,
    )
    assert "1 seeds" in again.stdout  # finished runs are reused, not retrained


@pytest.mark.slow
def test_benchmark_quick_prints_the_table(tmp_path):
    out = run("scripts/benchmark.py", "--quick", "--repeats", "1", "--json", tmp_path / "b.json")
    assert "| what | value | unit |" in out.stdout
    rows = json.loads((tmp_path / "b.json").read_text())["rows"]
    assert any("RGCNConv time / dense time" == r["what"] for r in rows)


def test_plot_log_writes_a_png(tmp_path, tiny_path):
    pytest.importorskip("matplotlib")
    run_dir = train_debug(tmp_path, tiny_path, 6, "--eval-every", "3")
    run("scripts/plot_log.py", run_dir, "--out", tmp_path / "c.png")
    assert (tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG"
