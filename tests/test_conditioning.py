"""Conditioning on a coarse molecule class: the class of a graph, the prior that samples
classes with the data's frequencies, and the conditional G and D."""

from __future__ import annotations

import dataclasses
import importlib

import pytest
import torch
from conftest import one_member

from molgan import checkpoint, conditioning, steps
from molgan.config import Config
from molgan.generator import Generator
from molgan.models import Discriminator, MolGAN
from molgan.presets import make_config
from molgan.sample import graph_batches

train_module = importlib.import_module("molgan.train")
T = 5  # pad, C, N, O, F


def test_class_of_a_graph_is_its_heavy_atom_count_and_element_set():
    atoms = torch.tensor([[1, 1, 3, 0, 0], [4, 0, 0, 0, 0], [1, 2, 3, 4, 1]])
    # counts 3, 1, 5; elements {C, O} = bits 1 + 4, {F} = 8, {C, N, O, F} = 15
    index = conditioning.class_index(atoms, T)
    assert index.tolist() == [2 * 16 + 5, 0 * 16 + 8, 4 * 16 + 15]
    vectors = conditioning.class_vectors(index, 5, T)
    assert vectors.shape == (3, conditioning.class_dim(5, T)) == (3, 9)
    assert vectors[0].tolist() == [0, 0, 1, 0, 0, 1, 0, 1, 0]
    assert vectors[1].tolist() == [1, 0, 0, 0, 0, 0, 0, 0, 1]


def test_class_vectors_of_one_hots_ignore_atom_order():
    atoms = torch.tensor([[1, 3, 0, 2], [0, 2, 3, 1]])
    x = torch.nn.functional.one_hot(atoms, T).float()
    vectors = conditioning.one_hot_classes(x)
    torch.testing.assert_close(vectors[0], vectors[1])


def test_class_prior_samples_classes_with_the_training_frequencies():
    atoms = torch.tensor([[1, 1, 0]] * 300 + [[1, 4, 0]] * 100)  # 3:1
    prior = conditioning.ClassPrior(3, T).fit(atoms)
    drawn = prior.sample(4000, torch.Generator().manual_seed(0))
    has_fluorine = drawn[:, -1]
    assert drawn[:, 1].eq(1).all()  # every draw has two heavy atoms
    assert has_fluorine.mean().item() == pytest.approx(0.25, abs=0.03)


def test_class_prior_fitted_with_weights_counts_each_graph_by_its_weight():
    atoms = torch.tensor([[1, 1, 0]] * 3 + [[1, 4, 0]])
    prior = conditioning.ClassPrior(3, T).fit(atoms, torch.tensor([1.0, 1.0, 1.0, 9.0]))
    drawn = prior.sample(4000, torch.Generator().manual_seed(0))
    assert drawn[:, -1].mean().item() == pytest.approx(0.75, abs=0.03)  # 9 of 12


def test_an_unfitted_class_prior_refuses_to_sample():
    with pytest.raises(ValueError, match="never fitted"):
        conditioning.ClassPrior(3, T).sample(4)


def test_conditional_generator_and_discriminator_depend_on_the_class():
    torch.manual_seed(0)
    C = conditioning.class_dim(4, T)
    g = Generator(6, (16,), 4, T, 3, cond_dim=C)
    d = Discriminator(T, 3, (7,), 11, (13,), cond_dim=C)
    z = torch.randn(2, 6)
    small = conditioning.class_vectors(torch.tensor([1, 1]), 4, T)
    large = conditioning.class_vectors(torch.tensor([3 * 16 + 1, 3 * 16 + 1]), 4, T)
    a, b = g(z, small), g(z, large)
    assert not torch.allclose(a.x_logits, b.x_logits)
    x = torch.softmax(a.x_logits, -1)
    adj = torch.softmax(a.adj_logits, -1)
    assert not torch.allclose(d(x, adj, small), d(x, adj, large))


def test_condition_is_off_in_the_paper_preset():
    assert not make_config("paper").condition and not Config().condition
    assert MolGAN.from_config(make_config("debug")).class_prior is None


def test_conditional_training_fits_the_prior_and_its_checkpoint_samples(tiny_config):
    cfg = dataclasses.replace(tiny_config, condition=True)
    model = train_module.train(cfg)
    counts = model.class_prior.counts.cpu()  # the model trained on the default device
    assert counts.sum() > 0 and counts.min() == 0  # the tiny set does not hold every class
    loaded = checkpoint.load(f"{cfg.out_dir}/{cfg.run_name}/ckpt.pt")
    torch.testing.assert_close(loaded.class_prior.counts, counts)
    assert loaded.sample(20, seed=3) == model.sample(20, seed=3)


def test_a_conditional_generator_step_without_a_real_batch_says_why():
    cfg = make_config("debug", condition=True)
    population, nets, weights = one_member(MolGAN.from_config(cfg), cfg)
    opts = steps.make_optimizers(population, cfg)
    with pytest.raises(ValueError, match="needs the real batch"):
        steps.g_step(nets, opts["g"], cfg, torch.ones(1), False, None, weights)


def test_class_prior_restricted_to_a_class_draws_only_that_class():
    atoms = torch.tensor([[1, 1, 0]] * 300 + [[1, 4, 0]] * 100 + [[3, 0, 0]] * 50)
    prior = conditioning.ClassPrior(3, T).fit(atoms)
    gen = torch.Generator().manual_seed(0)
    two = prior.sample(500, gen, heavy_atoms=2)
    assert two[:, 1].eq(1).all() and two[:, -1].mean().item() == pytest.approx(0.25, abs=0.06)
    fluorinated = prior.sample(50, gen, elements=(1, 4))
    assert fluorinated[:, 3:].tolist() == [[1, 0, 0, 1]] * 50  # C and F, nothing else
    with pytest.raises(ValueError, match="no training molecule"):
        prior.sample(5, gen, heavy_atoms=3)


@pytest.fixture(scope="module")
def conditional_model(tmp_path_factory):
    from conftest import TINY

    cfg = make_config(
        "debug",
        data=str(TINY),
        atoms="qm9",
        out_dir=str(tmp_path_factory.mktemp("runs")),
        max_steps=3,
        eval_every=3,
        eval_samples=8,
        condition=True,
        lam=1.0,
    )
    return train_module.train(cfg)


def test_sampling_a_class_checks_the_request_in_one_line(conditional_model):
    model = conditional_model
    counts = model.class_prior.counts
    present = int(torch.nonzero(counts)[0, 0]) // 16 + 1  # a heavy-atom count the data has
    assert len(model.sample(12, seed=0, heavy_atoms=present)) == 12

    def graphs(**request):
        gen = torch.Generator().manual_seed(0)
        classes = model.class_request(**request)
        return next(graph_batches(model, 12, generator=gen, classes=classes))[1]

    assert (graphs(heavy_atoms=present) != graphs()).any()  # the request reaches G
    with pytest.raises(ValueError, match="elements must be atom symbols"):
        model.sample(4, seed=0, elements="C,Cl")
    with pytest.raises(ValueError, match=r"heavy_atoms must be in \[1, "):
        model.sample(4, seed=0, heavy_atoms=0)
    with pytest.raises(ValueError, match="no training molecule has 1 heavy atoms and exactly"):
        model.sample(4, seed=0, heavy_atoms=1, elements="F")


def test_an_unconditional_model_refuses_a_class_request():
    model = MolGAN.from_config(make_config("debug"))
    with pytest.raises(ValueError, match="not conditional"):
        model.sample(4, seed=0, heavy_atoms=3)


def test_balance_weights_draw_every_class_equally_often_at_power_one():
    atoms = torch.tensor([[1, 1, 0]] * 90 + [[1, 4, 0]] * 10)
    for power, rare_share in ((0.0, 0.1), (1.0, 0.5), (0.5, 0.25)):
        weights = conditioning.balance_weights(atoms, T, power)
        assert weights.shape == (100,)
        share = (weights[90:].sum() / weights.sum()).item()
        assert share == pytest.approx(rare_share, abs=1e-9)


def test_condition_balance_needs_condition_and_a_power_in_0_1():
    with pytest.raises(ValueError, match="needs condition"):
        make_config("debug", condition_balance=0.5)
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        make_config("debug", condition=True, condition_balance=1.5)


def test_class_balanced_training_oversamples_rare_classes(tiny_config, monkeypatch):
    seen = []
    real_d_step = steps.d_step

    def spy(nets, opt, real, cfg, weights):
        seen.append(conditioning.class_index(real.x[0].argmax(-1), T))
        return real_d_step(nets, opt, real, cfg, weights)

    monkeypatch.setattr(steps, "d_step", spy)
    runs = {}
    for power in (0.0, 1.0):
        seen.clear()
        cfg = dataclasses.replace(
            tiny_config,
            condition=True,
            condition_balance=power,
            batch_size=4,
            max_steps=60,
            eval_every=60,
            name=f"balance{power}",
        )
        train_module.train(cfg)
        runs[power] = torch.cat(seen)
    # the most common class of the data makes up less of the balanced batches
    top = torch.mode(runs[0.0]).values
    assert (runs[1.0] == top).float().mean() < (runs[0.0] == top).float().mean()
    assert len(torch.unique(runs[1.0])) >= len(torch.unique(runs[0.0]))
