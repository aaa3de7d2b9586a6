"""CUDA checks (``gpu`` marker; skipped without CUDA): a population computes on the GPU what it
computes on the CPU, and trains end to end there."""

from __future__ import annotations

import dataclasses
import importlib

import pytest
import torch

from molgan import checkpoint, steps
from molgan.data import load_dataset, one_hot
from molgan.models import MolGAN
from molgan.population import Population
from molgan.presets import make_config

train_module = importlib.import_module("molgan.train")
pytestmark = pytest.mark.gpu


def _cycles(device, cfg, real, draws, n=3):
    """Losses of ``n`` D/G/V cycles of 2 seeded members on ``device``; random draws are taken
    from ``draws`` (recorded on the CPU) so that both devices see the same noise."""
    models = []
    for k in range(2):
        torch.manual_seed(k)
        models.append(MolGAN.from_config(cfg))
    population = Population(models).to(device)
    opts = steps.make_optimizers(population, cfg)
    nets = steps.step_nets(population)
    weights = steps.member_weights(cfg, 2, device)
    real = type(real)(real.x.to(device), real.adj.to(device))
    seen = []
    for _ in range(n):
        seen.append(steps.d_step(nets, opts["d"], real, cfg, weights)["loss/d"])
        stats, fake = steps.g_step(nets, opts["g"], cfg, weights["lam"], True, real, weights)
        r = next(draws).to(device)
        seen += [stats["loss/g"], steps.v_step(nets, opts["v"], real, r, fake, r)["loss/v"]]
    return torch.stack(seen).cpu()


def test_a_population_on_cuda_equals_the_same_population_on_cpu(tiny_path, monkeypatch):
    """3 cycles of a population of 2 (the default preset's remedies, different λ per member):
    the same losses on CUDA as on the CPU, given the same noise."""
    cfg = make_config("latent", **_debug_sizes(), members=2, member_settings={"lam": (0.5, 0.9)})
    data = load_dataset(tiny_path, verbose=False)
    idx = torch.stack([torch.arange(6), torch.arange(6, 12)])
    real = one_hot(data.atoms[idx], data.bonds[idx])
    rewards = [torch.rand(2, 6, 1) for _ in range(3)]
    recorded, rand, randn = [], torch.rand, torch.randn

    def record(fn):
        def draw(*args, device=None, **kwargs):
            out = fn(*args, **kwargs)  # drawn on the CPU
            recorded.append(out)
            return out

        return draw

    monkeypatch.setattr(torch, "rand", record(rand))
    monkeypatch.setattr(torch, "randn", record(randn))
    on_cpu = _cycles("cpu", cfg, real, iter(rewards))
    replay = iter(list(recorded))
    monkeypatch.setattr(torch, "rand", lambda *a, device=None, **kw: next(replay).to(device))
    monkeypatch.setattr(torch, "randn", lambda *a, device=None, **kw: next(replay).to(device))
    on_cuda = _cycles("cuda", cfg, real, iter(rewards))
    torch.testing.assert_close(on_cuda, on_cpu, rtol=1e-4, atol=1e-5)


def _debug_sizes():
    keep = ("data", "z_dim", "gen_dims", "conv_dims", "agg_dim", "head_dims", "batch_size")
    debug = make_config("debug")
    return {k: getattr(debug, k) for k in keep}


def test_a_population_trains_end_to_end_on_cuda(tiny_config):
    cfg = dataclasses.replace(tiny_config, device="cuda", members=2, rl_start=0.0)
    population = train_module.train(cfg)
    assert population.device.type == "cuda"
    run_dir = f"{cfg.out_dir}/{cfg.run_name}"
    loaded = checkpoint.load(run_dir, member=1)  # on the CPU
    assert loaded.sample(8, seed=0) == population.member(1).sample(8, seed=0)


def _losses(cfg):
    rows = __import__("molgan.rundir").rundir.read_log(f"{cfg.out_dir}/{cfg.run_name}")
    keys = ("loss/d", "loss/gp", "loss/g", "loss/v", "loss/rl")
    return torch.tensor([[r[k] for k in keys] for r in rows if "loss/d" in r])


def test_graphed_and_eager_steps_give_the_same_losses_for_20_steps(tiny_config):
    """CUDA graphs change speed, not results: 25 steps (graphs recorded after 3 eager calls
    of each step, RL from the start) log the losses of eager steps."""
    base = dict(device="cuda", members=2, rl_start=0.0, max_steps=25, log_every=1, eval_every=25)
    graphed = dataclasses.replace(tiny_config, **base, cuda_graphs=True, name="graphed")
    eager = dataclasses.replace(tiny_config, **base, cuda_graphs=False, name="eager")
    train_module.train(graphed)
    train_module.train(eager)
    a, b = _losses(graphed), _losses(eager)
    assert a.shape == b.shape == (50, 5)
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
