"""Faults a new user hit (issue 40): each is a one-line answer, never a traceback or a
silent exit 0."""

import sys

import pytest
import torch
from conftest import script_module

import molgan
from molgan import checkpoint, chem, data
from molgan.models import MolGAN


@pytest.mark.parametrize("text", ["smiles,valid\nCCO,True\n", "CCO\n" * 3, "e"])
def test_a_text_file_given_as_a_checkpoint_is_a_one_line_error(tmp_path, text):
    """E.g. the run's samples.csv, which sits beside ckpt.pt (torch's unpickler raised
    IndexError or KeyError on it)."""
    path = tmp_path / "samples.csv"
    path.write_text(text)
    for load in (checkpoint.read, molgan.load):
        with pytest.raises(ValueError, match=r"samples.csv is not a molgan checkpoint \(not a"):
            load(path)


def test_plot_log_on_a_log_that_is_not_utf8_is_a_one_line_error(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    (tmp_path / "log.jsonl").write_bytes(b'{"step": 1}\n\xff\xfe\x00garbage\n')
    assert script_module("plot_log").main([str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is not a run log (not UTF-8 text" in err


def test_a_mixture_member_that_is_not_a_number_is_named_as_such(tmp_path, capsys):
    path = tmp_path / "pop.pt"
    checkpoint.save(path, MolGAN.from_config(molgan.presets.make_config("debug")))
    args = [f"{path}:0,x", "--out", str(tmp_path / "mix.pt")]
    assert script_module("make_mixture").main(args) == 2
    err = capsys.readouterr().err
    assert "members must be numbers like" in err and "'0,x'" in err and "not found" not in err


def test_ctrl_c_while_sampling_writes_nothing_and_says_so(tmp_path, monkeypatch, capsys):
    script = script_module("sample")

    def interrupted(*args, **kwargs):
        yield from ()
        raise KeyboardInterrupt

    monkeypatch.setattr(script, "iter_samples", lambda *a, **k: interrupted())
    out = tmp_path / "s.csv"
    assert script.main(["-n", "10", "--out", str(out)]) == 130
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.splitlines()[-1].startswith("interrupted after 0")
    assert "nothing written" in err and not out.exists() and list(tmp_path.iterdir()) == []


def test_an_unknown_element_is_one_line_without_rdkits_cxx_stack(capfd):
    with pytest.raises(ValueError, match="atoms: unknown element 'Zz'"):
        data.vocabulary("C,Zz")
    assert capfd.readouterr().err == ""  # RDKit printed 43 lines of C++ stack here
    assert "Zz" not in chem.elements() and {"C", "Cl", "Br"} <= chem.elements()


def test_fit_without_out_dir_leaves_no_folder_and_a_used_out_dir_is_refused(
    tmp_path, tiny_path, monkeypatch
):
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    smiles = tiny_path.read_text().split()
    settings = dict(max_steps=2, eval_every=2, eval_samples=4, progress=False)
    fitted = molgan.MolGANGenerator("debug", **settings).fit(smiles)
    left = [p.name for p in (tmp_path / "tmp").iterdir() if p.name.startswith("molgan-")]
    assert left == [] and fitted.run_dir_ is None
    assert len(fitted.generate(3, seed=0)) == 3  # the model is in memory
    estimator = molgan.MolGANGenerator("debug", out_dir=str(tmp_path / "out"), **settings)
    estimator.fit(smiles)
    with pytest.raises(ValueError, match=r"already holds a fit: give fit\(smiles, name=...\)"):
        estimator.fit(smiles)
    assert "--" not in str(sys.exc_info()[1] or "")  # no command-line flag names


def test_sampling_seed_streams_do_not_touch_the_global_rng():
    torch.manual_seed(5)
    before = torch.rand(1)
    torch.manual_seed(5)
    molgan.sample(10, seed=0)
    assert torch.equal(torch.rand(1), before)


def test_a_stop_during_pool_work_ends_every_worker_within_seconds():
    """Ctrl-C while --data moses encodes: the workers used to finish their chunk (minutes)."""
    import time

    from molgan.pool import pool_map

    jobs = pool_map(time.sleep, [0.05, 60, 60, 60], 2)
    next(jobs)
    start = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        jobs.throw(KeyboardInterrupt)
    assert time.monotonic() - start < 10


def test_a_signal_during_rdkit_scoring_is_delivered_after_it_not_lost():
    """RDKit's interruptible searches catch a Ctrl-C themselves and go on (one Ctrl-C in 21
    was swallowed during training): rewards are scored with SIGINT/SIGTERM held back. In a
    process of its own: signals reach only a main thread (pytest-xdist runs tests elsewhere)."""
    import subprocess

    code = (
        "import os, signal\n"
        "from molgan import chem\n"
        "got = []\n"
        "signal.signal(signal.SIGTERM, lambda *a: got.append('TERM'))\n"
        "with chem.signals_deferred():\n"
        "    os.kill(os.getpid(), signal.SIGTERM)\n"
        "    held = list(got)\n"
        "print(held, got)\n"
    )
    import os

    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # as a run (--threads 1): no other threads
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env
    )
    assert out.stdout.strip() == "[] ['TERM']", out.stderr


def test_tiny_data_evaluates_every_100_steps_not_every_one_step_epoch(tmp_path, capsys):
    """40 molecules, batch 32: an epoch is one step, and evaluating 5,000 samples after each
    made 300 steps take 27 minutes; the default now evaluates every 100 steps and says so."""
    from molgan.presets import make_config
    from molgan.train import train

    path = tmp_path / "small.smi"
    path.write_text("\n".join(["CCO", "CCN", "CCC", "CCOC", "CC(C)O"] * 8))
    cfg = make_config(
        "debug", data=str(path), batch_size=4, max_steps=110, eval_every=0, log_every=100,
        eval_samples=8, out_dir=str(tmp_path / "runs"), lam=1.0, atoms="auto", atoms_min_count=1,
    )  # fmt: skip
    train(cfg)
    rows = molgan.rundir.read_log(tmp_path / "runs" / cfg.run_name)
    assert [r["step"] for r in rows if "score/valid" in r] == [100, 110]
    assert "evaluating every 100 steps instead of every epoch" in capsys.readouterr().err


def test_fit_on_drug_like_smiles_generates_in_their_vocabulary_and_size(tmp_path):
    """MolGANGenerator.fit(drug-like SMILES) -> generate() end to end (issue 42): the graphs
    are sized to the largest molecule and the vocabulary is the data's, whatever the preset."""
    from pathlib import Path

    smiles = (Path(__file__).parent / "data" / "druglike_tiny.smi").read_text().split()
    settings = dict(max_steps=2, eval_every=2, eval_samples=4, progress=False, batch_size=4)
    fitted = molgan.MolGANGenerator("debug", atoms_min_count=2, **settings).fit(smiles)
    largest = max(len(chem.heavy_atoms(s)) for s in smiles if chem.heavy_atoms(s))
    assert fitted.model_.generator.N == min(largest, 40)
    assert {"S", "Cl", "N+"} <= set(fitted.model_.atom_types)
    assert len(fitted.generate(5, seed=0)) == 5


def test_own_data_with_a_preset_takes_the_datas_vocabulary_unless_atoms_is_given():
    from molgan.presets import make_config

    assert make_config("debug").atoms == "qm9"  # the debug data is a QM9 subset
    assert make_config("debug", data="my.smi").atoms == ""  # '' = auto for one's own file
    assert make_config("debug", data="my.smi", atoms="C,N,O").atoms == "C,N,O"
