"""Populations: K members stacked on a leading axis train exactly as K runs alone would."""

from __future__ import annotations

import dataclasses
import importlib
import json
import subprocess
import sys

import pytest
import torch

from molgan import checkpoint, steps
from molgan.cli import parse_args
from molgan.config import Config
from molgan.data import Batch, load_dataset, one_hot
from molgan.models import MolGAN
from molgan.population import Population
from molgan.presets import make_config

train_module = importlib.import_module("molgan.train")


def _models(cfg, K):
    out = []
    for k in range(K):
        torch.manual_seed(100 + k)
        out.append(MolGAN.from_config(cfg))
    return out


class _Replay:
    """Records torch.rand/randn draws of a population step, then replays member k's slice of
    each draw (its leading axis is the member axis) into a population of one."""

    def __init__(self, monkeypatch):
        self.monkeypatch, self.draws = monkeypatch, []
        self.rand, self.randn = torch.rand, torch.randn

    def record(self):
        def wrap(fn):
            def draw(*args, **kwargs):
                out = fn(*args, **kwargs)
                self.draws.append(out)
                return out

            return draw

        self.monkeypatch.setattr(torch, "rand", wrap(self.rand))
        self.monkeypatch.setattr(torch, "randn", wrap(self.randn))

    def replay(self, k):
        queue = iter(list(self.draws))
        self.monkeypatch.setattr(torch, "rand", lambda *a, **kw: next(queue)[k : k + 1].clone())
        self.monkeypatch.setattr(torch, "randn", lambda *a, **kw: next(queue)[k : k + 1].clone())


@pytest.mark.parametrize(
    "preset_overrides",
    [
        dict(lam=0.5),
        dict(lam=0.5, mode_seeking=1.0, condition=True, valence=5.0),
        dict(lam=0.3, mode="hard_gumbel", gp_per_sample=True),
        dict(lam=0.5, energy=2.0, condition=True),
    ],
    ids=["plain", "latent-remedies", "hard-gumbel", "energy"],
)
def test_population_steps_equal_each_member_stepped_alone(tiny_path, monkeypatch, preset_overrides):
    """One D, G and V step of a population of 3 (member settings differing) moves each member's
    weights and losses as the same steps of that member alone, given the same noise."""
    K = 3
    torch.manual_seed(0)
    cfg = make_config("debug", batch_size=6, **preset_overrides)
    cfg = dataclasses.replace(
        cfg, members=K, member_settings={"lam": (0.5, 0.9, 0.2), "gp_weight": (10, 5, 1)}
    )
    data = load_dataset(tiny_path, verbose=False)
    idx = torch.stack([torch.arange(6) + 6 * k for k in range(K)])  # (K, B): own data per member
    real = one_hot(data.atoms[idx], data.bonds[idx])
    rewards = torch.rand(K, 6, 1)

    def run(models, real, r, weights_cfg):
        population = Population(models)
        opts = steps.make_optimizers(population, weights_cfg)
        nets = steps.step_nets(population)
        weights = steps.member_weights(weights_cfg, len(models), "cpu")
        d = steps.d_step(nets, opts["d"], real, weights_cfg, weights)
        g, fake = steps.g_step(nets, opts["g"], weights_cfg, weights["lam"], True, real, weights)
        v = steps.v_step(nets, opts["v"], real, r, fake, r)
        return population, d | g | v

    replay = _Replay(monkeypatch)
    replay.record()
    together, stats = run(_models(cfg, K), real, rewards, cfg)
    for k in range(K):
        replay.replay(k)
        single_cfg = make_config("debug", batch_size=6, **preset_overrides)
        single_cfg = dataclasses.replace(
            single_cfg, **{n: v[k] for n, v in cfg.member_settings.items()}
        )
        one = Batch(real.x[k : k + 1], real.adj[k : k + 1])
        models = _models(single_cfg, K)[k : k + 1]  # the same initial weights
        alone, alone_stats = run(models, one, rewards[k : k + 1], single_cfg)
        for name in ("loss/d", "loss/gp", "loss/g", "loss/v", "alpha"):
            torch.testing.assert_close(stats[name][k], alone_stats[name][0], rtol=1e-5, atol=1e-6)
        # each net's gradient of its last step (Adam's first step can flip a ~0 gradient's
        # sign, so weights are compared through the gradients, as the prototype did)
        for net in ("generator", "discriminator", "reward_net"):
            for (name, a), b in zip(
                getattr(together, net).named_parameters(),
                getattr(alone, net).parameters(),
                strict=True,
            ):
                torch.testing.assert_close(a.grad[k], b.grad[0], rtol=1e-4, atol=1e-6, msg=name)


def test_stacking_and_taking_members_back_gives_the_same_models():
    cfg = make_config("debug", ema=0.9, condition=True)
    models = _models(cfg, 3)
    for model in models:
        model.class_prior.counts.fill_(1.0)
    population = Population(models)
    for k, model in enumerate(models):
        back = population.member(k)
        for net in ("generator", "discriminator", "reward_net", "generator_ema"):
            a, b = getattr(model, net).state_dict(), getattr(back, net).state_dict()
            assert all(torch.equal(a[n], b[n]) for n in a), net
        assert back.config["seed"] == cfg.seed + k
        assert back.sample(8, seed=1) == model.sample(8, seed=1)


def _rows(cfg):
    with open(f"{cfg.out_dir}/{cfg.run_name}/log.jsonl") as handle:
        return [json.loads(line) for line in handle]


def _strip(rows):
    """Rows without timings and without the resume marks a resumed run adds."""
    return [
        {k: v for k, v in r.items() if not k.startswith("time/")}
        for r in rows
        if r.get("event") != "resume"
    ]


def test_a_population_run_logs_evaluates_and_exports_each_member(tiny_config):
    cfg = dataclasses.replace(
        tiny_config, members=2, member_settings={"lam": (0.5, 1)}, rl_start=0.0
    )
    population = train_module.train(cfg)
    run_dir = tiny_config.out_dir + "/" + cfg.run_name
    rows = [r for r in _rows(cfg) if "event" not in r]
    assert sorted({r["member"] for r in rows}) == [0, 1]
    evaluated = [r for r in rows if "score/valid" in r]
    assert {r["member"] for r in evaluated} == {0, 1} and len(evaluated) == 4
    assert [r["loss/rl"] for r in rows if r["member"] == 1] == [0.0, 0.0]  # λ = 1: no RL term
    assert any(r["loss/rl"] != 0.0 for r in rows if r["member"] == 0)
    second = checkpoint.load(run_dir, member=1)
    assert second.config["seed"] == cfg.seed + 1 and second.config["lam"] == 1.0
    assert second.sample(6, seed=0) == population.member(1).sample(6, seed=0)
    import molgan

    assert molgan.sample(6, run_dir, seed=0, member=1) == second.sample(6, seed=0)
    assert checkpoint.load(f"{run_dir}/best-member1.pt").config["lam"] == 1.0
    exported = checkpoint.export(f"{run_dir}/ckpt.pt", f"{run_dir}/m1.pt", member=1)
    assert checkpoint.load(exported).sample(6, seed=0) == second.sample(6, seed=0)
    with pytest.raises(ValueError, match=r"holds 2 member\(s\); member must be in \[0, 2\)"):
        checkpoint.load(run_dir, member=2)


def test_a_population_resumed_after_a_stop_matches_the_uninterrupted_run(tiny_config):
    # on the CPU: on CUDA a restarted run rounds 1 ulp differently (tests/test_scripts.py)
    base = dict(members=2, rl_start=0.0, max_steps=9, ema=0.9, device="cpu")
    straight = dataclasses.replace(tiny_config, **base, name="straight")
    train_module.train(straight)
    cut = dataclasses.replace(tiny_config, **{**base, "max_steps": 3}, name="cut")
    train_module.train(cut)
    train_module.train(dataclasses.replace(cut, max_steps=9, resume=True))
    assert _strip(_rows(cut)) == _strip(_rows(straight))
    assert [r for r in _rows(cut) if r.get("event") == "resume"] == [
        {"step": 3, "event": "resume", "changes": ["max_steps 3 -> 9"]}
    ]
    a = checkpoint.read(f"{tiny_config.out_dir}/straight/ckpt.pt")
    b = checkpoint.read(f"{tiny_config.out_dir}/cut/ckpt.pt")
    for k in range(2):
        for name, value in a["members"][k]["generator"].items():
            assert torch.equal(value, b["members"][k]["generator"][name]), (k, name)


def test_a_stopped_member_is_frozen_while_the_others_train(tiny_config, monkeypatch):
    scores = iter([0.5, 0.01, 0.5, 0.5, 0.5])  # member 1 collapses at its first RL evaluation
    monkeypatch.setattr(
        train_module,
        "evaluate_model",
        lambda *args: {"score/valid": 0.9, "score/unique": next(scores)},
    )
    cfg = dataclasses.replace(
        tiny_config, members=2, early_stop_unique=0.02, rl_start=0.0, max_steps=9
    )
    train_module.train(cfg)
    rows = _rows(cfg)
    stop = [r for r in rows if r.get("event") == "stop"]
    assert stop == [
        {"step": 3, "event": "stop", "reason": "early stop: uniqueness 0.010 < 0.02", "member": 1}
    ]
    assert max(r["step"] for r in rows if r.get("member") == 0) == 9
    assert max(r["step"] for r in rows if r.get("member") == 1) == 3
    blob = checkpoint.read(f"{cfg.out_dir}/{cfg.run_name}/ckpt.pt")
    best = checkpoint.read(f"{cfg.out_dir}/{cfg.run_name}/best-member1.pt")
    assert best["step"] == 3  # the frozen member is still its state at step 3
    for name, value in best["generator"].items():
        assert torch.equal(value, blob["members"][1]["generator"][name]), name


def test_a_diverged_member_is_stopped_and_the_others_go_on(tiny_config, monkeypatch):
    original = steps.losses.wasserstein_d
    calls = {"n": 0}

    def poisoned(d_real, d_fake):
        calls["n"] += 1
        out = original(d_real, d_fake)
        poison = torch.tensor([1.0, float("nan")], device=out.device)
        return out * poison if calls["n"] > 3 else out

    monkeypatch.setattr(steps.losses, "wasserstein_d", poisoned)
    cfg = dataclasses.replace(tiny_config, members=2, max_steps=9)
    train_module.train(cfg)
    stop = [r for r in _rows(cfg) if r.get("event") == "stop"]
    assert len(stop) == 1 and stop[0]["member"] == 1 and stop[0]["step"] == 6
    assert "non-finite loss/d" in stop[0]["reason"]
    assert max(r["step"] for r in _rows(cfg) if r.get("member") == 0) == 9


def test_member_settings_are_checked_up_front():
    with pytest.raises(ValueError, match="'lr' cannot differ between members"):
        make_config("debug", members=2, member_settings={"lr": (1e-3, 1e-4)})
    with pytest.raises(ValueError, match="lam has 3 values for 2 member"):
        make_config("debug", members=2, member_settings={"lam": (0.9, 0.8, 0.7)})
    with pytest.raises(ValueError, match=r"lam must be in \[0, 1\]"):
        make_config("debug", members=2, member_settings={"lam": (0.9, 1.5)})
    with pytest.raises(ValueError, match="not a finite number"):
        make_config("debug", members=2, member_settings={"lam": (0.9, "x")})
    with pytest.raises(ValueError, match="must be a mapping"):
        make_config("debug", members=2, member_settings="lam=0.9,0.8")
    with pytest.raises(ValueError, match="members must be in"):
        make_config("debug", members=0)


def test_member_settings_are_typed_and_the_command_line_parses_its_text_form():
    """--member-settings 'lam=0.9,0.8;seed=0,7' becomes {name: one value per member} (floats,
    seeds ints); a bad part is one line from argparse, not a traceback."""
    cfg = parse_args(
        ["--preset", "debug", "--members", "2", "--member-settings", "lam=0.9,0.8; seed=0,7"]
    )
    assert cfg.member_settings == {"lam": (0.9, 0.8), "seed": (0, 7)}
    assert [cfg.member(k).seed for k in range(2)] == [0, 7] and cfg.member(1).lam == 0.8
    assert cfg.member(1).members == 1 and cfg.member(1).member_settings == {}
    assert Config(members=2, member_settings={"lam": [1, 0]}).member_settings == {"lam": (1.0, 0.0)}
    out = subprocess.run(
        [
            sys.executable,
            "scripts/train_qm9.py",
            "--members",
            "2",
            "--member-settings",
            "lam=0.9,x",
        ],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 2 and "'lam=0.9,x' is not name=number" in out.stderr


def test_a_stored_config_with_the_old_text_form_of_member_settings_loads():
    """Checkpoints and config.json files written before member_settings was typed hold
    'lam=0.5,0.9' text; they load as the typed mapping (JSON's lists too)."""
    old = dataclasses.asdict(make_config("debug", members=2)) | {"member_settings": "lam=0.5,0.9"}
    assert Config.from_dict(old).member_settings == {"lam": (0.5, 0.9)}
    again = json.loads(json.dumps(dataclasses.asdict(Config.from_dict(old))))
    assert Config.from_dict(again) == Config.from_dict(old)


def test_the_decoder_pool_gives_the_molecules_and_rewards_of_one_process(tiny_path):
    from molgan import rewards
    from molgan.chem import graph_to_smiles

    data = load_dataset(tiny_path, verbose=False)
    atoms, bonds = data.atoms[:40].numpy(), data.bonds[:40].numpy()
    atoms[::7] = 0  # some empty graphs: invalid
    alone = [graph_to_smiles(a, b) for a, b in zip(atoms, bonds, strict=True)]
    rewards._MEMO["qed"].clear()
    expected = rewards.reward(alone, "qed")
    rewards._MEMO["qed"].clear()
    with rewards.Decoder(2) as decoder:
        decoder.min_jobs = 1  # score through the pool too
        smiles = decoder(atoms, bonds)
        scored = rewards.reward(smiles, "qed")
    assert smiles == alone and None in smiles
    assert scored.tolist() == expected.tolist()


def test_the_sample_script_samples_a_member_and_refuses_a_missing_one(tiny_config, tmp_path):
    import subprocess
    import sys

    cfg = dataclasses.replace(tiny_config, members=2, max_steps=3)
    train_module.train(cfg)
    ckpt = f"{cfg.out_dir}/{cfg.run_name}/ckpt.pt"

    def sample(member, out):
        args = ["scripts/sample.py", "--checkpoint", ckpt, "-n", "20", "--out", out]
        return subprocess.run(
            [sys.executable, *args, "--member", str(member)], capture_output=True, text=True
        )

    assert sample(1, str(tmp_path / "m1.smi")).returncode == 0
    expected = checkpoint.load(ckpt, member=1).sample(20, seed=0)
    lines = (tmp_path / "m1.smi").read_text().splitlines()
    assert [s or None for s in lines] == list(expected)
    bad = sample(5, str(tmp_path / "m5.smi"))
    assert bad.returncode != 0 and "member must be in [0, 2)" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_a_single_run_checkpoint_of_format_1_resumes_as_a_population_of_one(tiny_config):
    """A run stopped by an earlier molgan (format 1: Adam state over nn.Linear layouts, out x in)
    resumes as the same run: its Adam state is laid out for the stacked weights."""
    cut = dataclasses.replace(tiny_config, rl_start=0.0, max_steps=3, ema=0.9, name="new")
    train_module.train(cut)
    run_dir = f"{tiny_config.out_dir}/new"
    blob = checkpoint.read(f"{run_dir}/ckpt.pt")

    def single_layout(value):  # (1, in, out) -> (out, in); (1, 1, out) -> (out,)
        if not isinstance(value, torch.Tensor) or value.dim() < 3:
            return value
        return value[0].t().contiguous() if value.shape[1] != 1 else value[0, 0].clone()

    old = dict(blob, format=1)
    old.pop("stopped")
    old["optimizers"] = {
        k: {
            **o,
            "state": {
                i: {n: single_layout(v) for n, v in e.items()} for i, e in o["state"].items()
            },
        }
        for k, o in blob["optimizers"].items()
    }
    import shutil

    shutil.copytree(run_dir, f"{tiny_config.out_dir}/old")
    torch.save(old, f"{tiny_config.out_dir}/old/ckpt.pt")
    for name in ("new", "old"):
        train_module.train(dataclasses.replace(cut, name=name, max_steps=9, resume=True))
    new_rows = _strip(_rows(dataclasses.replace(cut, name="new")))
    old_rows = _strip(_rows(dataclasses.replace(cut, name="old")))
    assert [r["step"] for r in new_rows] == [3, 6, 9] and new_rows == old_rows


def test_members_may_have_their_own_seeds(tiny_config):
    cfg = dataclasses.replace(tiny_config, members=2, member_settings={"seed": (3, 7)}, seed=3)
    assert [cfg.member(k).seed for k in range(2)] == [3, 7]
    population = train_module.train(cfg)
    assert population.member(1).config["seed"] == 7
    run_dir = f"{tiny_config.out_dir}/{cfg.run_name}"
    assert checkpoint.load(run_dir, member=1).config["seed"] == 7
    # the seed is used: member 1 seeded 8 starts elsewhere (weights) than seeded 7
    other = dataclasses.replace(cfg, member_settings={"seed": (3, 8)}, name="other", max_steps=1)
    again = dataclasses.replace(cfg, name="again", max_steps=1)
    for run in (other, again):
        train_module.train(run)
    a = checkpoint.load(f"{tiny_config.out_dir}/again", member=1).generator.state_dict()
    b = checkpoint.load(f"{tiny_config.out_dir}/other", member=1).generator.state_dict()
    assert not any(torch.equal(a[n], b[n]) for n in a if a[n].dim() == 2)
    with pytest.raises(ValueError, match="not an integer"):
        dataclasses.replace(cfg, member_settings={"seed": (3, 1.5)})


def test_a_population_callback_stops_only_its_member(tiny_config):
    calls = []

    def callback(step, scores, member):
        calls.append((step, member))
        return "pruned by test" if member == 1 else None

    cfg = dataclasses.replace(tiny_config, members=2, max_steps=6, eval_every=3, name="cb")
    train_module.train(cfg, callback=callback)
    assert calls == [(3, 0), (3, 1), (6, 0)]  # member 1 frozen after its first evaluation
    rows = _rows(cfg)
    assert {"step": 3, "event": "stop", "reason": "pruned by test", "member": 1} in rows
    assert max(r["step"] for r in rows if r.get("member") == 0) == 6
    assert checkpoint.read(f"{tiny_config.out_dir}/cb/ckpt.pt")["stopped"] == {
        "1": "pruned by test"
    }
