"""G pre-trained as a VAE's decoder (``Config.pretrain``, ``molgan.pretrain``)."""

from __future__ import annotations

import dataclasses
import importlib

import numpy as np
import pytest
import torch

from molgan import chem
from molgan.data import load_dataset
from molgan.generator import Generator, GeneratorOutput
from molgan.models import MolGAN
from molgan.presets import make_config
from molgan.pretrain import Encoder, decoder_loss, pretrain_decoder

train_module = importlib.import_module("molgan.train")


def _graphs(smiles: list[str], N: int = 9):
    graphs = [chem.mol_to_graph(chem.Chem.MolFromSmiles(s), N) for s in smiles]
    atoms = torch.tensor(np.stack([g[0] for g in graphs]))  # (M, N)
    bonds = torch.tensor(np.stack([g[1] for g in graphs]))  # (M, N, N)
    return atoms, bonds


def _argmax_smiles(g: Generator, n: int, cond=None) -> list[str | None]:
    with torch.no_grad():
        out = g(torch.randn(n, g.z_dim, generator=torch.Generator().manual_seed(5)), cond)
    x, e = out.x_logits.argmax(-1).numpy(), out.adj_logits.argmax(-1).numpy()
    return [chem.graph_to_smiles(a, b) for a, b in zip(x, e, strict=True)]


def test_a_decoder_pretrained_on_one_molecule_spells_it_from_fresh_codes():
    atoms, bonds = _graphs(["OC1=CC=CC=C1"])  # phenol: an aromatic ring in Kekulé form
    torch.manual_seed(0)
    g = Generator(8, (32, 64), 9, 5, 4)
    assert "Oc1ccccc1" not in _argmax_smiles(g, 64)
    losses = pretrain_decoder(
        g, atoms, bonds, steps=150, beta=1.0, lr=1e-2, seed=0, encoder_dims=(64,)
    )
    assert losses["atoms"] < 0.01 and losses["bonds"] < 0.01
    # codes far from the one it learned (N(0, I) has a tail; its codes have norm √Z) may not
    assert _argmax_smiles(g, 64).count("Oc1ccccc1") >= 48


def test_a_conditional_sized_decoder_learns_the_size_its_class_asks_for():
    from molgan import conditioning

    atoms, bonds = _graphs(["CCO", "CC(C)CCO"])
    torch.manual_seed(0)
    g = Generator(8, (32, 64), 9, 5, 4, cond_dim=conditioning.class_dim(9, 5), sized=True)
    losses = pretrain_decoder(
        g, atoms, bonds, steps=200, beta=1.0, lr=1e-2, seed=0, encoder_dims=(64,)
    )  # the size mask's -inf logits stay out of the loss (0 · -inf would be NaN)
    assert losses["atoms"] < 0.01 and losses["bonds"] < 0.01
    assert all(torch.isfinite(p).all() for p in g.parameters())
    x = torch.nn.functional.one_hot(atoms.long(), 5).float()
    cond = conditioning.one_hot_classes(x).repeat_interleave(4, 0)  # (8, C): each class 4 times
    assert _argmax_smiles(g, 8, cond) == ["CCO"] * 4 + ["CC(C)CCO"] * 4


def test_pretraining_is_reproducible_from_its_seed_and_leaves_the_global_rng_alone():
    atoms, bonds = _graphs(["CCO", "C1CC1", "CC#N"])
    weights = []
    for seed in (3, 3, 4):
        torch.manual_seed(0)
        g = Generator(8, (16, 32), 9, 5, 4)
        state = torch.random.get_rng_state()
        pretrain_decoder(g, atoms, bonds, steps=5, beta=1.0, lr=1e-3, seed=seed, encoder_dims=(64,))
        assert torch.equal(torch.random.get_rng_state(), state)
        weights.append(g.node_head.weight.detach().clone())
    assert torch.equal(weights[0], weights[1]) and not torch.equal(weights[0], weights[2])


def test_pretrain_sets_each_members_g_and_its_ema_copy_and_leaves_d_alone(tmp_path, capsys):
    data = load_dataset("data/qm9_debug.smi", atoms="qm9", verbose=False)
    runs = {}
    for steps in (20, 0):
        cfg = make_config("debug", pretrain=steps, members=2, ema=0.9, progress=False)
        torch.manual_seed(0)
        runs[steps] = train_module._population(cfg, data, None, None, tmp_path / "c.pt")[0]
    for k in range(2):
        member, before = runs[20].member(k), runs[0].member(k)
        assert torch.equal(member.generator.node_head.weight, member.generator_ema.node_head.weight)
        assert not torch.equal(member.generator.node_head.weight, before.generator.node_head.weight)
        for name, value in member.discriminator.state_dict().items():
            assert torch.equal(value, before.discriminator.state_dict()[name])
    first, second = (runs[20].member(k).generator.node_head.weight for k in range(2))
    assert not torch.equal(first, second)  # each member from its own seed
    assert "pretraining G as a decoder: 20 steps" in capsys.readouterr().err


def test_a_resumed_run_is_not_pretrained_again(tiny_config, capsys):
    cfg = dataclasses.replace(tiny_config, pretrain=10)
    train_module.train(cfg)
    assert "pretraining G as a decoder: 10 steps" in capsys.readouterr().err
    train_module.train(dataclasses.replace(cfg, resume=True, max_steps=9))
    err = capsys.readouterr().err
    assert "resuming" in err and "pretraining" not in err


def test_pretraining_on_a_device_leaves_g_where_it_was(device):
    atoms, bonds = _graphs(["CCO", "C1CC1"])
    torch.manual_seed(0)
    g = Generator(8, (16, 32), 9, 5, 4)
    before = g.node_head.weight.detach().clone()
    pretrain_decoder(g, atoms, bonds, steps=3, beta=1.0, seed=0, device=device, encoder_dims=(16,))
    assert g.node_head.weight.device.type == "cpu"
    assert not torch.equal(g.node_head.weight, before)


def test_the_decoder_loss_is_per_variable_cross_entropy_plus_kl_per_variable():
    """A G that says nothing (zero logits) costs log T per atom and log R per pair whatever the
    graph; the KL is per graph, divided by its N + N(N-1)/2 variables."""
    atoms, bonds = _graphs(["CCO", "C1CC1"])
    x, adj = _one_hots(atoms, bonds)  # (2, 9, 5), (2, 9, 9, 4)
    encoder = Encoder(9, 5, 4, 8, dims=(16,))

    def silent(z, cond):
        return GeneratorOutput(torch.zeros(2, 9, 5), torch.zeros(2, 9, 9, 4))

    a, b, kl = decoder_loss(encoder, silent, x, adj, None, torch.zeros(2, 8))
    assert a.item() == pytest.approx(np.log(5)) and b.item() == pytest.approx(np.log(4))
    mu, logvar = encoder(x, adj)
    per_graph = 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum(-1)  # (2,)
    assert kl.item() == pytest.approx(per_graph.mean().item() / (9 + 36), rel=1e-5)


def test_pretrain_decoder_trains_the_encoder_it_is_given():
    atoms, bonds = _graphs(["OC1=CC=CC=C1"])
    torch.manual_seed(0)
    g, encoder = Generator(8, (32, 64), 9, 5, 4), Encoder(9, 5, 4, 8, dims=(64,))
    pretrain_decoder(g, atoms, bonds, steps=150, beta=1.0, lr=1e-2, seed=0, encoder=encoder)
    x, adj = _one_hots(atoms, bonds)
    loss_x, loss_e, _ = decoder_loss(encoder, g, x, adj, None, torch.zeros(1, 8))
    assert loss_x < 0.01 and loss_e < 0.01  # this encoder's codes are the ones G learned


def _one_hots(atoms, bonds):
    F = torch.nn.functional
    return F.one_hot(atoms.long(), 5).float(), F.one_hot(bonds.long(), 4).float()


def test_a_population_pretrains_at_once_as_each_member_would_alone():
    """One pass over the stacked G (member k from seed k) gives each member the weights its
    own pretraining gives, to rounding: the K× cost of pretraining members one by one is gone."""
    from molgan.population import Population
    from molgan.pretrain import pretrain_members

    atoms, bonds = _graphs(["CCO", "C1CC1", "CC#N", "OC1=CC=CC=C1"])
    cfg = make_config("debug", members=2, ema=0.9)
    models = []
    for seed in (3, 8):
        torch.manual_seed(seed)
        models.append(MolGAN.from_config(cfg))
    population = Population(models)
    pretrain_members(population, atoms, bonds, steps=6, beta=0.1, seeds=[3, 8])
    for k, seed in enumerate((3, 8)):
        alone = models[k].generator
        pretrain_decoder(alone, atoms, bonds, steps=6, beta=0.1, seed=seed)
        together = population.member(k)
        for name, value in alone.state_dict().items():
            torch.testing.assert_close(together.generator.state_dict()[name], value, msg=name)
            torch.testing.assert_close(together.generator_ema.state_dict()[name], value)
