import dataclasses
import importlib
import json

import pytest
import torch
from conftest import one_member

from molgan import checkpoint, losses, rewards, steps
from molgan.data import load_dataset, one_hot
from molgan.models import MolGAN
from molgan.presets import make_config

train_module = importlib.import_module("molgan.train")  # molgan.train is also the function


def _log(cfg, events=False):
    path = f"{cfg.out_dir}/{cfg.run_name}/log.jsonl"
    with open(path) as handle:
        rows = [json.loads(line) for line in handle]
    return rows if events else [r for r in rows if "event" not in r]


def test_short_run_has_finite_losses_and_updates_every_network(tiny_config):
    torch.manual_seed(tiny_config.seed)
    initial = MolGAN.from_config(tiny_config)
    cfg = tiny_config.__class__(**{**tiny_config.__dict__, "rl_start": 0.0})
    model = train_module.train(cfg)
    records = _log(cfg)
    assert records[-1]["step"] == 6
    for key in ("loss/d", "loss/g", "loss/v", "loss/gp"):
        assert all(v is not None and abs(v) < 1e6 for v in (r[key] for r in records)), key
    for net in ("generator", "discriminator", "reward_net"):
        before = torch.cat([p.flatten() for p in getattr(initial, net).parameters()])
        after = torch.cat([p.flatten().cpu() for p in getattr(model, net).parameters()])
        assert not torch.allclose(before, after), net
    assert "score/valid" in records[-1] and "score/unique" in records[-1]


def test_same_seed_gives_identical_losses(tiny_config, tmp_path):
    a = make_config("debug", **{**_overrides(tiny_config), "out_dir": str(tmp_path / "a")})
    b = make_config("debug", **{**_overrides(tiny_config), "out_dir": str(tmp_path / "b")})
    train_module.train(a)
    train_module.train(b)
    strip = lambda rs: [{k: v for k, v in r.items() if not k.startswith("time/")} for r in rs]  # noqa: E731
    assert strip(_log(a)) == strip(_log(b))


def _overrides(cfg):
    keep = ("data", "max_steps", "eval_every", "log_every", "eval_samples")
    return {k: getattr(cfg, k) for k in keep}


def _straight_and_resumed_at_3(base, tmp_path):
    """Train ``base`` straight through, and again stopped at step 3 and resumed: both configs
    and both final checkpoints."""
    straight = make_config("debug", **base, out_dir=str(tmp_path / "a"))
    train_module.train(straight)
    first = make_config("debug", **{**base, "max_steps": 3}, out_dir=str(tmp_path / "b"))
    train_module.train(first)
    resumed = make_config("debug", **base, out_dir=str(tmp_path / "b"), resume=True)
    train_module.train(resumed)
    a = checkpoint.read(tmp_path / "a" / "debug-seed0" / "ckpt.pt")
    b = checkpoint.read(tmp_path / "b" / "debug-seed0" / "ckpt.pt")
    return straight, resumed, a, b


def test_resume_continues_the_same_stream(tiny_config, tmp_path):
    base = {**_overrides(tiny_config), "rl_start": 0.0}
    straight, resumed, a, b = _straight_and_resumed_at_3(base, tmp_path)
    assert a["step"] == b["step"] == 6
    for name in a["generator"]:
        assert torch.equal(a["generator"][name], b["generator"][name]), name
    assert _log(straight)[-1]["loss/d"] == _log(resumed)[-1]["loss/d"]


def test_no_reward_means_no_rdkit_reward_calls(tiny_config, monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("RDKit reward called with lam=1")

    monkeypatch.setattr(rewards, "reward", forbidden)
    monkeypatch.setattr(train_module, "dataset_rewards", forbidden)
    cfg = make_config(
        "debug", **{**_overrides(tiny_config), "lam": 1.0, "out_dir": tiny_config.out_dir}
    )
    train_module.train(cfg)
    assert all(r["loss/rl"] == 0.0 for r in _log(cfg))


def test_rl_step_increases_the_reward_net_score_of_generated_graphs(tiny_config):
    torch.manual_seed(0)
    cfg = make_config("debug", lam=0.0, lr=1e-2)
    population, nets, weights = one_member(MolGAN.from_config(cfg), cfg)
    opt = torch.optim.Adam(population.generator.parameters(), lr=cfg.lr)
    z = torch.randn(256, cfg.z_dim)

    def score():
        model = population.member(0)
        with torch.no_grad():
            out = model.generator(z)
            return (
                model.reward_net(torch.softmax(out.x_logits, -1), torch.softmax(out.adj_logits, -1))
                .mean()
                .item()
            )

    before = score()
    for _ in range(3):
        steps.g_step(nets, opt, cfg, torch.zeros(1), True, None, weights)
    assert score() > before


def test_nan_loss_stops_with_a_clear_error_and_keeps_the_last_checkpoint(tiny_config, monkeypatch):
    calls = {"n": 0}
    original = losses.wasserstein_d

    def poisoned(d_real, d_fake):
        calls["n"] += 1
        out = original(d_real, d_fake)
        return out * float("nan") if calls["n"] > 3 else out

    monkeypatch.setattr(losses, "wasserstein_d", poisoned)
    with pytest.raises(
        train_module.TrainingError,
        match=r"non-finite loss/d, .* at step 6; last good checkpoint \(step 3\) kept",
    ):
        train_module.train(tiny_config)
    kept = checkpoint.read(f"{tiny_config.out_dir}/{tiny_config.run_name}/ckpt.pt")
    assert kept["step"] == 3
    assert all(torch.isfinite(t).all() for t in kept["generator"].values())


def test_discriminator_step_lowers_its_loss_on_a_fixed_batch(tiny_path):
    torch.manual_seed(0)
    cfg = make_config("debug")
    population, nets, weights = one_member(MolGAN.from_config(cfg), cfg)
    data = load_dataset(tiny_path, verbose=False)
    real = one_hot(data.atoms[None, :6], data.bonds[None, :6])
    opt = torch.optim.Adam(population.discriminator.parameters(), lr=1e-2)
    first = steps.d_step(nets, opt, real, cfg, weights)["loss/d"].item()
    for _ in range(20):
        last = steps.d_step(nets, opt, real, cfg, weights)["loss/d"].item()
    assert last < first


def test_a_new_run_never_overwrites_an_existing_checkpoint(tiny_config):
    train_module.train(tiny_config)
    with pytest.raises(ValueError, match="already holds a checkpoint: pass --resume"):
        train_module.train(tiny_config)


def test_resume_takes_the_runs_own_settings_and_rejects_sampling_only_files(tiny_config, tmp_path):
    first = make_config(
        "debug", **{**_overrides(tiny_config), "max_steps": 3, "lam": 1.0}, out_dir=str(tmp_path)
    )
    train_module.train(first)
    resumed = make_config("debug", **_overrides(tiny_config), out_dir=str(tmp_path), resume=True)
    train_module.train(resumed)  # lam not repeated on the command line: the run keeps lam=1
    assert all(r["loss/rl"] == 0.0 for r in _log(resumed))
    ckpt = tmp_path / "debug-seed0" / "ckpt.pt"
    checkpoint.export(ckpt, ckpt)
    with pytest.raises(ValueError, match="cannot be resumed"):
        train_module.train(resumed)


@pytest.mark.parametrize("mode", ["gumbel", "hard_gumbel"])
def test_gumbel_modes_train_with_finite_losses(tiny_config, mode):
    cfg = make_config(
        "debug",
        **{**_overrides(tiny_config), "mode": mode, "rl_start": 0.0},
        out_dir=tiny_config.out_dir,
    )
    train_module.train(cfg)
    assert all(r["loss/d"] is not None and r["loss/v"] is not None for r in _log(cfg))


@pytest.mark.slow
def test_compiled_steps_match_eager_steps(tiny_path):
    """--compile changes speed, not results: same losses and weights as eager steps."""
    data = load_dataset(tiny_path, verbose=False)
    real = one_hot(data.atoms[None, :8], data.bonds[None, :8])
    cfg = make_config("debug", batch_size=8, lam=0.5)
    runs = []
    for compiled in (False, True):
        torch.manual_seed(0)
        population, _, weights = one_member(MolGAN.from_config(cfg), cfg)
        opts = steps.make_optimizers(population, cfg)
        nets = steps.step_nets(population, compile=compiled)
        lam = torch.full((1,), 0.5)
        losses_seen = []
        for _ in range(3):
            losses_seen.append(steps.d_step(nets, opts["d"], real, cfg, weights)["loss/d"].item())
            stats, fake = steps.g_step(nets, opts["g"], cfg, lam, True, real, weights)
            r = torch.rand(1, 8, 1)
            losses_seen.append(stats["loss/g"].item())
            losses_seen.append(steps.v_step(nets, opts["v"], real, r, fake, r)["loss/v"].item())
        runs.append((losses_seen, population.member(0).generator.state_dict()))
    assert runs[1][0] == pytest.approx(runs[0][0], rel=1e-4, abs=1e-5)
    for name, value in runs[0][1].items():
        torch.testing.assert_close(runs[1][1][name], value, rtol=1e-4, atol=1e-5)


def test_early_stop_on_uniqueness_stops_at_the_first_evaluation_below_the_threshold(
    tiny_config, monkeypatch
):
    scores = iter([0.5, 0.01, 0.5])  # uniqueness at steps 3, 6, 9 (collapsed at 6)
    monkeypatch.setattr(
        train_module,
        "evaluate_model",
        lambda *args: {"score/valid": 0.9, "score/unique": next(scores)},
    )
    cfg = dataclasses.replace(tiny_config, early_stop_unique=0.02, max_steps=9)
    train_module.train(cfg)
    records = _log(cfg)
    assert records[-1]["step"] == 6 and records[-1]["score/unique"] == 0.01
    assert checkpoint.read(f"{cfg.out_dir}/{cfg.run_name}/ckpt.pt")["step"] == 6


def test_time_limit_stops_with_an_evaluation_and_a_checkpoint(tiny_config):
    cfg = dataclasses.replace(tiny_config, time_limit=1e-9, eval_every=1000, max_steps=9)
    train_module.train(cfg)
    records = _log(cfg)
    assert records[-1]["step"] == 3 and "score/valid" in records[-1]
    assert checkpoint.read(f"{cfg.out_dir}/{cfg.run_name}/ckpt.pt")["step"] == 3


def test_nan_before_any_checkpoint_says_none_was_written(tiny_config, monkeypatch):
    original = losses.wasserstein_d
    monkeypatch.setattr(losses, "wasserstein_d", lambda a, b: original(a, b) * float("nan"))
    with pytest.raises(train_module.TrainingError, match="no checkpoint was written"):
        train_module.train(tiny_config)
    assert not (tiny_config.out_dir + "/debug-seed0/ckpt.pt").endswith("x")
    assert not __import__("pathlib").Path(tiny_config.out_dir, "debug-seed0", "ckpt.pt").exists()


def _interrupt_at(monkeypatch, step_count: int, sig=None):
    """Send the process a signal during the ``step_count``-th discriminator step."""
    import os
    import signal

    original, calls = steps.d_step, {"n": 0}

    def d_step(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == step_count:
            os.kill(os.getpid(), sig or signal.SIGINT)
        return original(*args, **kwargs)

    monkeypatch.setattr(steps, "d_step", d_step)


@pytest.mark.parametrize("signame", ["SIGINT", "SIGTERM"])
def test_interrupt_writes_a_checkpoint_at_the_current_step(tiny_config, monkeypatch, signame):
    import signal

    cfg = dataclasses.replace(tiny_config, max_steps=12, eval_every=10)
    _interrupt_at(monkeypatch, 5, getattr(signal, signame))
    before = signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal
    try:
        with pytest.raises(train_module.Interrupted, match=f"{signame} at step 5/12: checkpoint"):
            train_module.train(cfg)
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored
    finally:
        signal.signal(signal.SIGINT, before)
    assert checkpoint.read(f"{cfg.out_dir}/{cfg.run_name}/ckpt.pt")["step"] == 5


def test_resume_after_an_interrupt_matches_the_uninterrupted_run(
    tiny_config, monkeypatch, tmp_path
):
    base = dict(max_steps=12, eval_every=6, log_every=2, rl_start=0.25)
    straight = dataclasses.replace(tiny_config, **base, out_dir=str(tmp_path / "a"))
    train_module.train(straight)
    cut = dataclasses.replace(tiny_config, **base, out_dir=str(tmp_path / "b"))
    _interrupt_at(monkeypatch, 9, __import__("signal").SIGTERM)
    with pytest.raises(train_module.Interrupted):
        train_module.train(cut)
    monkeypatch.undo()
    train_module.train(dataclasses.replace(cut, resume=True))
    strip = lambda rs: [{k: v for k, v in r.items() if not k.startswith("time/")} for r in rs]  # noqa: E731
    assert strip(_log(cut)) == strip(_log(straight))


def test_checkpoints_are_also_written_by_wall_time(tiny_config, monkeypatch):
    steps = []
    original = checkpoint.save
    monkeypatch.setattr(
        checkpoint,
        "save",
        lambda path, model, opts, step, *a, **k: (
            (steps.append(step) if str(path).endswith("ckpt.pt") else None)
            or original(path, model, opts, step, *a, **k)
        ),
    )
    cfg = dataclasses.replace(tiny_config, ckpt_minutes=1e-9, eval_every=6, log_every=6)
    train_module.train(cfg)
    assert steps == [1, 2, 3, 4, 5, 6]


def test_a_run_directory_with_any_content_is_never_reused_without_resume(tiny_config):
    run_dir = __import__("pathlib").Path(tiny_config.out_dir, tiny_config.run_name)
    run_dir.mkdir(parents=True)
    (run_dir / "config.json").write_text("{}")
    with pytest.raises(ValueError, match="already holds files of an earlier run"):
        train_module.train(tiny_config)
    assert (run_dir / "config.json").read_text() == "{}"


def test_resume_keeps_the_runs_own_run_control_settings(tiny_config, tmp_path):
    first = make_config(
        "debug", data=tiny_config.data, max_steps=8, eval_every=4, name="rr", out_dir=str(tmp_path)
    )
    model_cfg = dataclasses.replace(first, max_steps=4)  # stops at 4 of its 8 steps
    train_module.train(dataclasses.replace(model_cfg, max_steps=4))
    blob = checkpoint.read(tmp_path / "rr" / "ckpt.pt")
    assert blob["rl_from"] == 2
    # resume as a user would: only --name and --resume on the command line
    train_module.train(
        make_config("paper", name="rr", out_dir=str(tmp_path), resume=True),
        explicit={"name", "resume"},
    )
    rows = _log(dataclasses.replace(first, name="rr"))
    assert rows[-1]["step"] == 4  # max_steps 4 came from the checkpoint, not the paper preset
    config = json.loads((tmp_path / "rr" / "config.json").read_text())
    assert config["max_steps"] == 4 and config["eval_samples"] == 64


def test_resume_allows_run_control_changes_and_refuses_model_changes(tiny_config, capsys):
    train_module.train(tiny_config)
    more = dataclasses.replace(tiny_config, resume=True, max_steps=9, lr=5.0, batch_size=9)
    with pytest.raises(ValueError, match=r"refused: lr 0.001 -> 5.0; batch_size 6 -> 9"):
        train_module.train(more, explicit={"max_steps", "lr", "batch_size"})
    train_module.train(
        dataclasses.replace(tiny_config, resume=True, max_steps=9), explicit={"max_steps"}
    )
    assert "changed for this resume: max_steps 6 -> 9" in capsys.readouterr().err
    assert _log(tiny_config)[-1]["step"] == 9
    rl_from = checkpoint.read(f"{tiny_config.out_dir}/{tiny_config.run_name}/ckpt.pt")["rl_from"]
    assert rl_from == 3  # RL kept starting where the run first put it


def test_callback_can_stop_a_run_after_its_checkpoint(tiny_config):
    seen = []

    def callback(step, scores, member):
        seen.append((step, "score/valid" in scores))
        return "pruned by test"

    train_module.train(dataclasses.replace(tiny_config, max_steps=9), callback=callback)
    assert seen == [(3, True)]
    rows = _log(tiny_config, events=True)
    assert rows[-1] == {"step": 3, "event": "stop", "reason": "pruned by test"}
    assert checkpoint.read(f"{tiny_config.out_dir}/{tiny_config.run_name}/ckpt.pt")["step"] == 3


def test_bad_reward_fails_before_the_data_is_loaded(tiny_config, monkeypatch):
    monkeypatch.setattr(train_module, "dataset_of", lambda *a, **k: pytest.fail("data loaded"))
    with pytest.raises(ValueError, match="bad reward 'foo'"):
        train_module.train(dataclasses.replace(tiny_config, reward="foo"))


def test_batch_larger_than_the_training_split_is_refused(tiny_config):
    with pytest.raises(ValueError, match="batch_size 500 exceeds the 24 training molecules"):
        train_module.train(dataclasses.replace(tiny_config, batch_size=500))


def test_threads_setting_applies_during_training_and_is_restored(tiny_config, monkeypatch):
    seen = []
    original = steps.d_step
    monkeypatch.setattr(
        steps,
        "d_step",
        lambda *a, **k: seen.append(torch.get_num_threads()) or original(*a, **k),
    )
    before = torch.get_num_threads()
    train_module.train(dataclasses.replace(tiny_config, threads=1))
    assert set(seen) == {1} and torch.get_num_threads() == before


def test_best_checkpoint_holds_the_best_evaluation_by_the_chosen_metric(tiny_config, monkeypatch):
    scores = iter([0.2, 0.5, 0.3])  # valid at steps 3, 6, 9: best at 6
    monkeypatch.setattr(
        train_module,
        "evaluate_model",
        lambda *args: {"score/valid": next(scores), "score/unique": 1.0},
    )
    cfg = dataclasses.replace(tiny_config, max_steps=9, best_metric="valid*unique")
    train_module.train(cfg)
    run_dir = __import__("pathlib").Path(cfg.out_dir, cfg.run_name)
    best = checkpoint.read(run_dir / "best.pt")
    assert best["step"] == 6 and best["best"]["value"] == 0.5
    assert checkpoint.read(run_dir / "ckpt.pt")["step"] == 9
    assert checkpoint.load(run_dir).sample(5, seed=0) == checkpoint.load(
        run_dir / "ckpt.pt"
    ).sample(5, seed=0)


def test_unknown_best_metric_fails_before_training(tiny_config):
    with pytest.raises(ValueError, match="unknown metric"):
        train_module.train(dataclasses.replace(tiny_config, best_metric="validity"))


def test_early_stop_on_uniqueness_waits_for_the_end_of_the_warm_up(tiny_config, monkeypatch):
    scores = iter([0.01, 0.5, 0.01])  # a WGAN-only start below the threshold must not stop it
    monkeypatch.setattr(
        train_module,
        "evaluate_model",
        lambda *args: {"score/valid": 0.9, "score/unique": next(scores)},
    )
    cfg = dataclasses.replace(tiny_config, early_stop_unique=0.02, max_steps=9, rl_start=0.5)
    train_module.train(cfg)
    assert _log(cfg, events=True)[-1] == {
        "step": 9,
        "event": "stop",
        "reason": "early stop: uniqueness 0.010 < 0.02",
    }


def test_a_v_step_taken_one_d_step_later_gives_the_same_run(tiny_config):
    """The V step of a G step waits for the next D step (its RDKit work then overlaps the GPU)
    unless a report or a checkpoint comes first: the run is the same either way."""
    base = dict(rl_start=0.0, max_steps=12, log_every=4, eval_every=12)
    later = dataclasses.replace(tiny_config, **base, ckpt_minutes=0.0, name="later")
    at_once = dataclasses.replace(tiny_config, **base, ckpt_minutes=1e-9, name="at-once")
    train_module.train(later)
    train_module.train(at_once)
    strip = lambda rs: [{k: v for k, v in r.items() if not k.startswith("time/")} for r in rs]  # noqa: E731
    assert strip(_log(later)) == strip(_log(at_once))
    assert any(r["loss/v"] != 0 for r in _log(later))


def test_progress_line_shows_the_adversarial_loss_and_rl_not_their_rescaled_mix():
    from molgan.monitor import progress_line

    timing = {"time/it_per_s": 10.0, "time/eta_s": 60.0}
    # λ 0.5, L_WGAN 1.2, L_RL -0.3: α = 4, so the mix 0.5·1.2 + 0.5·4·(-0.3) is exactly 0
    rl_on = {"step": 5, "loss/g": 0.0, "loss/wgan": 1.2, "loss/rl": -0.3, "loss/d": -2.0}
    line = progress_line([rl_on | timing], K=1)
    assert "| g 1.200 |" in line and "| rl -0.300 |" in line
    rl_off = {"step": 5, "loss/g": 1.2, "loss/wgan": 1.2, "loss/rl": 0.0, "loss/d": -2.0}
    assert "rl" not in progress_line([rl_off | timing], K=1)
