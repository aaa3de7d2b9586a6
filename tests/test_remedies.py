"""Mode-collapse remedies: each is a Config field, off in the paper preset, doing what it says."""

from __future__ import annotations

import copy
import dataclasses
import importlib

import pytest
import torch
from conftest import one_member

from molgan import batches, checkpoint, losses, steps
from molgan.config import Config, make_config
from molgan.data import load_dataset, one_hot
from molgan.generator import Generator, noisy_one_hot
from molgan.layers import AttentionReadout, SpectralLinear, node_statistics
from molgan.models import Discriminator, MolGAN

train_module = importlib.import_module("molgan.train")
REMEDIES = {
    "minibatch_std": True,
    "pac": 2,
    "gp_per_sample": True,
    "ema": 0.9,
    "real_noise": 0.1,
    "lr_d": 4e-4,
    "beta1": 0.5,
    "beta2": 0.9,
    "diversity": 0.2,
    "mode_seeking": 1.0,
    "batch_discriminator": True,
    "feature_matching": True,
    "tau_end": 0.5,
    "condition": True,
    "valence": 1.0,
    "connectivity": 1.0,
    "connectivity_sampled": True,
    "gen_noise": 0.1,
    "lr_decay": 0.5,
    "rarity_window": 64,
    "condition_formula": True,
    "reward_tilt": 5.0,
    "node_noise": 2,
    "spectral_norm": True,
    "readout_stats": True,
    "readout_attention": 1,
    "gen_residual": True,
}


def _batch(B=6, N=5, T=4, R=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.nn.functional.one_hot(torch.randint(0, T, (B, N), generator=g), T).float()
    bonds = torch.randint(0, R, (B, N, N), generator=g).triu(1)
    adj = torch.nn.functional.one_hot(bonds + bonds.transpose(1, 2), R).float()
    return x, adj


def _encoder(**kwargs):
    torch.manual_seed(0)
    return Discriminator(4, 3, (7, 9), 11, (13,), **kwargs)


def test_every_remedy_is_off_in_the_paper_preset():
    paper, defaults = make_config("paper"), Config()
    for name in REMEDIES:
        assert getattr(paper, name) == getattr(defaults, name)
    assert not paper.minibatch_std and paper.pac == 1 and paper.ema == 0 and paper.diversity == 0


def test_minibatch_std_makes_a_samples_score_depend_on_its_batch():
    x, adj = _batch()
    plain, mbstd = _encoder(), _encoder(minibatch_std=True)
    other_x, other_adj = _batch(seed=1)
    mixed_x, mixed_adj = torch.cat([x[:1], other_x[1:]]), torch.cat([adj[:1], other_adj[1:]])
    assert torch.allclose(plain(x, adj)[0], plain(mixed_x, mixed_adj)[0])
    assert not torch.allclose(mbstd(x, adj)[0], mbstd(mixed_x, mixed_adj)[0])


def test_minibatch_std_gradient_penalty_stays_finite_with_a_constant_feature():
    # a feature equal across the batch (a class column, a collapsed G) has std 0, whose
    # second derivative is NaN unless the std is sqrt(var + eps)
    x, adj = _batch()
    critic = _encoder(minibatch_std=True, cond_dim=3)
    cond = torch.ones(6, 3)
    soft_x, soft_adj = torch.softmax(0.3 * x, -1), torch.softmax(0.3 * adj, -1)
    gp = losses.gradient_penalty(lambda a, b: critic(a, b, cond), x, adj, soft_x, soft_adj)
    gp.backward()
    assert all(torch.isfinite(p.grad).all() for p in critic.parameters() if p.grad is not None)


def test_pac_scores_packs_of_samples():
    x, adj = _batch(B=6)
    assert _encoder(pac=3)(x, adj).shape == (2, 1)
    with pytest.raises(ValueError, match="not a multiple of pac=4"):
        _encoder(pac=4)(x, adj)
    with pytest.raises(ValueError, match="pac must be ≥ 1 and divide batch_size"):
        Config(batch_size=32, pac=3)


def test_per_sample_gradient_penalty_is_zero_for_a_unit_norm_critic():
    x, adj = _batch(B=4)
    wx, wa = torch.randn(x.shape[1:]), torch.randn(adj.shape[1:])
    norm = (wx.pow(2).sum() + wa.pow(2).sum()).sqrt()

    def critic(x, adj):  # linear, input gradient of norm exactly 1 per sample
        return ((x * wx).sum(dim=(1, 2)) + (adj * wa).sum(dim=(1, 2, 3)))[:, None] / norm

    soft_x, soft_adj = (
        torch.softmax(torch.randn(x.shape), -1),
        torch.softmax(torch.randn(adj.shape), -1),
    )
    per_sample = losses.gradient_penalty(critic, x, adj, soft_x, soft_adj, per_sample=True)
    per_entry = losses.gradient_penalty(critic, x, adj, soft_x, soft_adj)
    assert per_sample.item() == pytest.approx(0.0, abs=1e-8) and per_entry.item() > 0.1


def test_ema_follows_the_generator_and_is_what_samples():
    cfg = make_config("debug", ema=0.9)
    torch.manual_seed(0)
    model = MolGAN.from_config(cfg)
    before = [p.clone() for p in model.generator_ema.parameters()]
    with torch.no_grad():
        for p in model.generator.parameters():
            p.add_(1.0)
    model.update_ema(0.9)
    for ema, old, live in zip(
        model.generator_ema.parameters(), before, model.generator.parameters(), strict=True
    ):
        torch.testing.assert_close(ema, 0.9 * old + 0.1 * live)
    assert model.sampler is model.generator_ema
    assert not any(p.requires_grad for p in model.generator_ema.parameters())


def test_ema_weights_survive_save_and_load(tmp_path):
    cfg = make_config("debug", ema=0.5)
    torch.manual_seed(0)
    model = MolGAN.from_config(cfg)
    with torch.no_grad():
        for p in model.generator.parameters():
            p.mul_(3.0)
    model.update_ema(0.5)
    path = checkpoint.save(tmp_path / "ema.pt", model)
    assert checkpoint.load(path).sample(30, seed=0) == model.sample(30, seed=0)


def test_gen_noise_is_added_to_every_hidden_layer_and_only_there():
    torch.manual_seed(0)
    plain = Generator(5, (7, 11), 4, 3, 2)
    noisy = Generator(5, (7, 11), 4, 3, 2, noise=0.5)
    noisy.load_state_dict(plain.state_dict())  # no parameters of its own
    z = torch.randn(6, 5)
    zeros = [torch.zeros(6, 7), torch.zeros(6, 11)]
    for a, b in zip(noisy(z, None, zeros), plain(z), strict=True):
        torch.testing.assert_close(a, b)  # zero noise = the plain G
    eps = [torch.randn(6, 7), torch.randn(6, 11)]
    for a, b in zip(noisy(z, None, eps), noisy(z, None, eps), strict=True):
        torch.testing.assert_close(a, b)  # given noise: deterministic
    # the last layer's noise reaches the heads linearly: head(h + 0.5 eps) - head(h)
    last = [torch.zeros(6, 7), eps[1]]
    shift = noisy(z, None, last).x_logits - plain(z).x_logits  # (6, N, T)
    torch.testing.assert_close(shift.reshape(6, -1), 0.5 * eps[1] @ plain.node_head.weight.T)
    drawn = noisy(z).x_logits  # no noise given: drawn, so the same z gives another graph
    assert not torch.allclose(drawn, noisy(z).x_logits)


def test_gen_noise_is_drawn_from_the_sampling_seed_whatever_the_batch_size():
    cfg = make_config("debug", gen_noise=1.0)
    torch.manual_seed(0)
    model = MolGAN.from_config(cfg)
    one = model.sample_graphs(40, generator=torch.Generator().manual_seed(3), batch_size=40)
    many = model.sample_graphs(40, generator=torch.Generator().manual_seed(3), batch_size=7)
    for a, b in zip(one, many, strict=True):
        assert (a == b).all()
    quiet = copy.deepcopy(model)
    quiet.generator.noise = 0.0  # same weights, same z and Gumbel noise, no hidden noise
    off = quiet.sample_graphs(40, generator=torch.Generator().manual_seed(3), batch_size=40)
    assert not all((a == b).all() for a, b in zip(one, off, strict=True))


def test_gen_noise_must_not_be_negative():
    with pytest.raises(ValueError, match="gen_noise must be ≥ 0"):
        Config(gen_noise=-0.1)


def test_spectral_norm_makes_d_blind_to_the_scale_of_its_weights_and_leaves_v_plain():
    """Every Linear map of a spectrally normalised D has largest singular value 1, so scaling
    its raw weights changes nothing; the reward net keeps ordinary layers."""
    x, adj = _batch()
    critic = _encoder(spectral_norm=True)
    linears = [m for m in critic.modules() if isinstance(m, torch.nn.Linear)]
    assert len(linears) == 8  # 2 per R-GCN layer, 2 in the aggregation, the head, the output
    for layer in linears:
        sigma = torch.linalg.matrix_norm(layer.normalized_weight(), ord=2)
        torch.testing.assert_close(sigma, torch.tensor(1.0))
    before = critic(x, adj)
    with torch.no_grad():
        for layer in linears:
            layer.weight.mul_(7.0)
    torch.testing.assert_close(critic(x, adj), before)
    plain = _encoder()
    plain_before = plain(x, adj)
    with torch.no_grad():
        for p in plain.parameters():
            p.mul_(7.0)
    assert not torch.allclose(plain(x, adj), plain_before)
    model = MolGAN.from_config(make_config("debug", spectral_norm=True))
    assert isinstance(model.discriminator.out, SpectralLinear)
    assert not any(isinstance(m, SpectralLinear) for m in model.reward_net.modules())


def test_a_d_step_without_gradient_penalty_skips_it(tiny_path, monkeypatch):
    """gp_weight 0 for every member: no penalty (no double backward), the loss is the
    Wasserstein term alone; a member with a weight brings the penalty back."""
    cfg = make_config("debug", spectral_norm=True, gp_weight=0.0)
    torch.manual_seed(0)
    population, nets, weights = one_member(MolGAN.from_config(cfg), cfg)
    data = load_dataset(tiny_path, verbose=False)
    real = one_hot(data.atoms[None, :6], data.bonds[None, :6])
    calls = []
    penalty = losses.gradient_penalty
    monkeypatch.setattr(
        losses, "gradient_penalty", lambda *a, **k: calls.append(1) or penalty(*a, **k)
    )
    opt = torch.optim.Adam(population.discriminator.parameters(), lr=1e-3)
    stats = steps.d_step(nets, opt, real, cfg, weights)
    assert not calls and stats["loss/gp"].tolist() == [0.0]
    cfg10 = dataclasses.replace(cfg, gp_weight=10.0)
    steps.d_step(nets, opt, real, cfg10, steps.member_weights(cfg10, 1, "cpu"))
    assert calls == [1]


def test_node_noise_moves_one_atom_and_its_bonds_and_nothing_else():
    torch.manual_seed(0)
    plain = Generator(5, (7, 11), 4, 3, 2)
    noisy = Generator(5, (7, 11), 4, 3, 2, node_noise=3)
    missing = noisy.load_state_dict(plain.state_dict(), strict=False).missing_keys
    assert sorted(missing) == ["noise_atoms.weight", "noise_bonds.weight"]
    z, u = torch.randn(6, 5), torch.randn(6, 4, 3)
    for a, b in zip(noisy(z, None, None, torch.zeros(6, 4, 3)), plain(z), strict=True):
        torch.testing.assert_close(a, b)  # zero noise = the plain G
    out = noisy(z, None, None, u)
    torch.testing.assert_close(out.adj_logits, out.adj_logits.transpose(1, 2))  # symmetric
    assert torch.isinf(out.adj_logits[:, 0, 0, 1:]).all()  # still no self-bonds
    moved = u.clone()
    moved[:, 2] += 1.0  # only node 2's noise changes
    other = noisy(z, None, None, moved)
    changed_atoms = (other.x_logits != out.x_logits).any(-1).any(0)  # (N,)
    assert changed_atoms.tolist() == [False, False, True, False]
    finite = torch.isfinite(out.adj_logits)
    changed_bonds = ((other.adj_logits != out.adj_logits) & finite).any(-1).any(0)  # (N, N)
    expected = torch.zeros(4, 4, dtype=torch.bool)
    expected[2, :] = expected[:, 2] = True  # row and column 2 (its diagonal: "no bond" only)
    assert torch.equal(changed_bonds, expected)
    assert not torch.allclose(noisy(z).x_logits, noisy(z).x_logits)  # drawn when not given


def test_node_noise_is_drawn_from_the_sampling_seed_whatever_the_batch_size():
    torch.manual_seed(0)
    model = MolGAN.from_config(make_config("debug", node_noise=4))
    one = model.sample_graphs(40, generator=torch.Generator().manual_seed(3), batch_size=40)
    many = model.sample_graphs(40, generator=torch.Generator().manual_seed(3), batch_size=7)
    for a, b in zip(one, many, strict=True):
        assert (a == b).all()
    with torch.no_grad():
        model.generator.noise_atoms.weight.zero_()
        model.generator.noise_bonds.weight.zero_()
    plain = MolGAN.from_config(make_config("debug"))
    plain.load_state_dict(model.state_dict(), strict=False)
    off = model.sample_graphs(40, generator=torch.Generator().manual_seed(3))
    ref = plain.sample_graphs(40, generator=torch.Generator().manual_seed(3))
    for a, b in zip(off, ref, strict=True):  # drawn after z and the Gumbel noise
        assert (a == b).all()


def test_node_statistics_are_the_mean_std_and_max_over_the_atoms_only():
    a = torch.tensor([[[0.5, -1.0], [0.1, 0.3], [0.9, 0.9]]])  # (B=1, N=3, F=2)
    stats = node_statistics(a, torch.tensor([[1.0, 1.0, 0.0]]))  # node 2 is a pad
    atoms = a[0, :2]
    expected = torch.cat(
        [atoms.mean(0), (atoms.var(0, unbiased=False) + 1e-6).sqrt(), atoms.amax(0)]
    )
    torch.testing.assert_close(stats[0], expected)


def test_readout_stats_widen_ds_graph_embedding_and_keep_the_penalty_finite():
    x, adj = _batch()
    critic = _encoder(readout_stats=True)
    assert critic.features(x, adj).shape == (6, 13)
    assert critic.head[0].in_features == 11 + 3 * (9 + 4)  # agg + mean, std, max of (F + T)
    soft_x, soft_adj = torch.softmax(0.3 * x, -1), torch.softmax(0.3 * adj, -1)
    gp = losses.gradient_penalty(critic, x, adj, soft_x, soft_adj)
    gp.backward()
    grads = [p.grad for p in critic.parameters() if p.grad is not None]
    assert torch.isfinite(gp) and grads and all(torch.isfinite(g).all() for g in grads)


def test_attention_readout_is_permutation_invariant_and_ignores_padded_nodes():
    """D with ``readout_attention``: the score does not depend on the order of the atoms, and a
    padded node (P(pad) = 1) gets no attention, whatever its other features say."""
    x, adj = _batch(T=4)
    x[:, -1] = torch.nn.functional.one_hot(torch.tensor(0), 4).float()  # last node: a pad
    adj[:, -1, :], adj[:, :, -1] = 0.0, 0.0
    adj[:, -1, :, 0], adj[:, :, -1, 0] = 1.0, 1.0  # no bonds to it
    critic = _encoder(readout_attention=1)
    assert critic.features(x, adj).shape == (6, 13)
    assert critic.head[0].in_features == 11 + 11  # gated sum + attention readout, agg_dim each
    perm = torch.tensor([3, 0, 4, 1, 2])
    permuted = critic(x[:, perm], adj[:, perm][:, :, perm])
    torch.testing.assert_close(permuted, critic(x, adj))
    readout = AttentionReadout(9 + 4, 12, heads=3)
    hx = torch.randn(6, 5, 9 + 4)
    weight = torch.ones(6, 5)
    weight[:, -1] = 0.0
    changed = hx.clone()
    changed[:, -1] = 5.0  # the pad's features
    torch.testing.assert_close(readout(changed, weight), readout(hx, weight))
    assert not torch.allclose(readout(changed, torch.ones(6, 5)), readout(hx, torch.ones(6, 5)))
    soft_x, soft_adj = torch.softmax(0.3 * x, -1), torch.softmax(0.3 * adj, -1)
    gp = losses.gradient_penalty(critic, x, adj, soft_x, soft_adj)
    gp.backward()
    grads = [p.grad for p in critic.attention.parameters()]
    assert torch.isfinite(gp) and all(g is not None and torch.isfinite(g).all() for g in grads)


def test_residual_generator_adds_a_linear_map_of_each_hidden_layers_input():
    torch.manual_seed(0)
    plain = Generator(5, (7, 11, 13), 4, 3, 2)
    residual = Generator(5, (7, 11, 13), 4, 3, 2, residual=True)
    missing = residual.load_state_dict(plain.state_dict(), strict=False).missing_keys
    assert sorted(missing) == ["skips.0.weight", "skips.1.weight"]
    assert [tuple(p.shape) for p in residual.skips.parameters()] == [(11, 7), (13, 11)]
    z = torch.randn(6, 5)
    assert not torch.allclose(residual(z).x_logits, plain(z).x_logits)
    with torch.no_grad():
        for p in residual.skips.parameters():
            p.zero_()
    for a, b in zip(residual(z), plain(z), strict=True):
        torch.testing.assert_close(a, b)  # zero skips = the plain G


def test_real_noise_keeps_one_hots_on_the_simplex_symmetric_with_an_exact_diagonal():
    x, adj = _batch()
    nx, nadj = noisy_one_hot(x, adj, 0.2, torch.Generator().manual_seed(0))
    torch.testing.assert_close(nx.sum(-1), torch.ones(x.shape[:2]))
    torch.testing.assert_close(nadj.sum(-1), torch.ones(adj.shape[:3]))
    torch.testing.assert_close(nadj, nadj.transpose(1, 2))
    assert torch.equal(nadj.diagonal(dim1=1, dim2=2), adj.diagonal(dim1=1, dim2=2))
    assert (nx.max(-1).values < 1).all() and (nx.max(-1).values >= 0.8).all()
    assert noisy_one_hot(x, adj, 0.0)[0] is x


def test_separate_learning_rate_and_betas_reach_the_optimisers():
    cfg = make_config("debug", lr=1e-3, lr_d=4e-4, beta1=0.5, beta2=0.9)
    opts = steps.make_optimizers(MolGAN.from_config(cfg), cfg)
    assert opts["d"].param_groups[0]["lr"] == 4e-4 and opts["g"].param_groups[0]["lr"] == 1e-3
    assert all(o.param_groups[0]["betas"] == (0.5, 0.9) for o in opts.values())


def test_lr_decay_lowers_every_learning_rate_linearly_from_its_own_base():
    cfg = make_config("debug", lr=1e-3, lr_d=4e-4, lr_decay=0.5)
    opts = steps.make_optimizers(MolGAN.from_config(cfg), cfg)
    steps.decay_lrs(opts, cfg, 0.0)
    assert [opts[k].param_groups[0]["lr"] for k in "gdv"] == pytest.approx([1e-3, 4e-4, 1e-3])
    steps.decay_lrs(opts, cfg, 1.0)  # the last step: base · (1 - 0.5)
    assert [opts[k].param_groups[0]["lr"] for k in "gdv"] == pytest.approx([5e-4, 2e-4, 5e-4])
    steps.decay_lrs(opts, cfg, 0.5)
    assert opts["d"].param_groups[0]["lr"] == pytest.approx(3e-4)
    with pytest.raises(ValueError, match="lr_decay must be in"):
        Config(lr_decay=1.5)


def test_diversity_bonus_rewards_spread_of_critic_scores():
    d_fake = torch.tensor([[1.0], [3.0]])
    plain = losses.generator_loss(d_fake, None, 1.0)
    bonus = losses.generator_loss(d_fake, None, 1.0, diversity=0.5)
    assert plain.loss.item() == -2.0 and bonus.loss.item() == pytest.approx(-2.0 - 0.5 * 2.0)


def test_mode_seeking_term_is_small_for_distinct_outputs_and_large_for_collapsed_ones():
    z = torch.tensor([[0.0, 0.0], [2.0, 2.0]])  # halves differ by 2 per latent
    x, adj = _batch(B=2)
    collapsed = losses.mode_seeking(x[:1].repeat(2, 1, 1), adj[:1].repeat(2, 1, 1, 1), z)
    distinct = losses.mode_seeking(
        torch.stack([x[0], 1 - x[0]]), torch.stack([adj[0], 1 - adj[0]]), z
    )
    assert collapsed.item() == pytest.approx(1e5)  # identical outputs: 1 / eps
    assert distinct.item() == pytest.approx(1 / (2 / 2 + 1e-5))  # every entry differs by 1


def test_mode_seeking_gradient_pushes_outputs_apart():
    z = torch.randn(4, 3)
    x = torch.rand(4, 5, 4, requires_grad=True)
    adj = torch.rand(4, 5, 5, 3)
    losses.mode_seeking(x, adj, z).backward()
    step = x - 0.01 * x.grad  # a gradient step on the term
    spread = lambda t: (t[:2] - t[2:]).abs().mean().item()  # noqa: E731
    assert spread(step) > spread(x)


def _valence_tables():
    """The (T,) valences and (R,) bond orders the training step uses (pad, C, N, O, F)."""
    return steps.step_nets(MolGAN.from_config(make_config("debug"))).valence


def test_valence_excess_is_zero_on_every_training_molecule(tiny_path):
    from molgan.data import load_dataset, one_hot

    data = load_dataset(tiny_path, 9, 0)
    real = one_hot(data.atoms.long(), data.bonds.long())
    assert losses.valence_excess(real.x, real.adj, *_valence_tables()).item() == 0.0


def test_valence_excess_agrees_with_rdkit_sanitisation_on_hard_graphs():
    from molgan import chem

    g = torch.Generator().manual_seed(0)
    agree = 0
    for _ in range(300):
        atoms = torch.randint(1, 5, (6,), generator=g)  # no pad nodes: every bond is kept
        upper = torch.randint(0, 4, (6, 6), generator=g) * (torch.rand(6, 6, generator=g) < 0.3)
        bonds = upper.triu(1) + upper.triu(1).T
        x, adj = torch.nn.functional.one_hot(atoms, 5), torch.nn.functional.one_hot(bonds, 4)
        excess = losses.valence_excess(x[None].float(), adj[None].float(), *_valence_tables())
        sanitises = chem.graph_to_mol(atoms.numpy(), bonds.numpy()) is not None
        assert (excess.item() == 0) == sanitises, (atoms, bonds)
        agree += sanitises
    assert 30 < agree < 270  # both kinds of graph were drawn


def test_valence_excess_counts_soft_bond_order_above_soft_valence_and_bonds_on_pads():
    valence, order = _valence_tables()
    x = torch.zeros(1, 3, 5)
    x[0, 0, 4] = x[0, 1, 1] = x[0, 2, 0] = 1.0  # F, C, pad
    adj = torch.zeros(1, 3, 3, 4)
    adj[..., 0] = 1.0
    adj[0, 0, 1] = adj[0, 1, 0] = torch.tensor([0.0, 0.5, 0.5, 0.0])  # F–C: order 1.5 expected
    adj[0, 1, 2] = adj[0, 2, 1] = torch.tensor([0.0, 1.0, 0.0, 0.0])  # C–pad single bond
    excess = losses.valence_excess(x, adj, valence, order)
    assert excess.item() == pytest.approx(0.5 + 0.0 + 1.0)  # F over by 0.5, pad by 1


def test_valence_excess_gradient_lowers_bond_orders_of_overfull_atoms():
    valence, order = _valence_tables()
    x = torch.nn.functional.one_hot(torch.tensor([[4, 4]]), 5).float()  # F–F
    logits = torch.zeros(1, 2, 2, 4)
    logits[0, 0, 1] = logits[0, 1, 0] = torch.tensor([0.0, 0.0, 3.0, 0.0])  # mostly double
    logits.requires_grad_(True)
    adj = torch.softmax(logits, -1)
    losses.valence_excess(x, adj, valence, order).backward()
    assert logits.grad[0, 0, 1, 2] > 0 and logits.grad[0, 0, 1, 0] < 0  # less double, more none


def _unreachable_pairs(atoms: torch.Tensor, bonds: torch.Tensor) -> int:
    """Pairs of real (non-pad) atoms in different fragments, by union-find (decoding drops pad
    atoms with their bonds, so a path through a pad joins nothing)."""
    parent = list(range(len(atoms)))

    def root(i):
        while parent[i] != i:
            i = parent[i]
        return i

    for i, j in (bonds > 0).nonzero().tolist():
        if atoms[i] > 0 and atoms[j] > 0:
            parent[root(i)] = root(j)
    real = [i for i in range(len(atoms)) if atoms[i] > 0]
    return sum(root(i) != root(j) for k, i in enumerate(real) for j in real[k + 1 :])


def test_disconnection_is_zero_on_every_training_molecule(tiny_path):
    from molgan.data import load_dataset, one_hot

    data = load_dataset(tiny_path, 9, 0)
    real = one_hot(data.atoms.long(), data.bonds.long())
    assert losses.disconnection(real.x, real.adj).item() < 1e-4


def test_disconnection_counts_pairs_of_real_atoms_in_different_fragments_on_hard_graphs():
    g = torch.Generator().manual_seed(0)
    counts = []
    for _ in range(200):
        atoms = torch.randint(0, 5, (9,), generator=g)  # pads included: they never count
        upper = torch.randint(1, 4, (9, 9), generator=g) * (torch.rand(9, 9, generator=g) < 0.2)
        bonds = upper.triu(1) + upper.triu(1).T
        x, adj = torch.nn.functional.one_hot(atoms, 5), torch.nn.functional.one_hot(bonds, 4)
        got = losses.disconnection(x[None].float(), adj[None].float()).item()
        counts.append(_unreachable_pairs(atoms, bonds))
        assert got == pytest.approx(counts[-1], abs=1e-3), (atoms, bonds)
    assert counts.count(0) > 5 and max(counts) > 10  # connected and split graphs were drawn


def test_disconnection_gradient_adds_a_bond_between_fragments_not_to_pads():
    x = torch.nn.functional.one_hot(torch.tensor([[1, 1, 0]]), 5).float()  # C, C, pad
    logits = torch.zeros(1, 3, 3, 4)
    logits[..., 0] = 3.0  # mostly no bond anywhere
    logits.requires_grad_(True)
    apart = losses.disconnection(x, torch.softmax(logits, -1))
    apart.backward()
    assert 0.5 < apart.item() < 1.0  # one pair of real atoms, probably apart
    assert logits.grad[0, 0, 1, 0] > 0 and logits.grad[0, 0, 1, 1] < 0  # more C–C bond
    assert logits.grad[0, 0, 2].abs().max() == 0  # a bond to a pad joins nothing


def test_sampled_connectivity_counts_exactly_the_fragments_of_the_graphs_g_samples():
    cfg = make_config("debug", connectivity=1.0, connectivity_sampled=True, lam=1.0)
    torch.manual_seed(0)
    model = MolGAN.from_config(cfg)
    head = model.generator.edge_head
    with torch.no_grad():  # a G that mostly draws "no bond", so that its graphs fall apart
        head.bias.view(head.out_features // 4, 4)[:, 0] += 2.5
    population, nets, weights = one_member(model, cfg)
    opt = torch.optim.Adam(population.generator.parameters(), lr=0.0)  # weights stay as they are
    lam = torch.ones(1)
    stats, (_, _, atoms, bonds) = steps.g_step(nets, opt, cfg, lam, False, None, weights)
    exact = [_unreachable_pairs(a, b) for a, b in zip(atoms[0], bonds[0], strict=True)]
    assert sum(exact) > 0  # an untrained G samples fragments
    assert stats["loss/disconnection"].item() == pytest.approx(sum(exact) / len(exact), abs=1e-3)
    soft = dataclasses.replace(cfg, connectivity_sampled=False)
    torch.manual_seed(0)
    soft_stats, _ = steps.g_step(nets, opt, soft, lam, False, None, weights)
    assert soft_stats["loss/disconnection"].item() < 0.8 * stats["loss/disconnection"].item()


def test_sampled_connectivity_may_delete_a_lone_atom_but_not_a_piece_of_the_molecule():
    # with the gradient on every atom G cut the count by deleting atoms (tiny molecules); with
    # none it bonded every stray atom in (only 9-atom graphs): only bond-less atoms keep it
    x = torch.nn.functional.one_hot(torch.tensor([[1, 1, 2, 1, 0]]), 5).float()  # C C N C pad
    x.requires_grad_(True)
    bonds = torch.zeros(1, 5, 5, dtype=torch.long)
    bonds[0, 0, 1] = bonds[0, 1, 0] = 1  # C–C; the N and the last C are alone
    adj = torch.nn.functional.one_hot(bonds, 4).float()
    apart = losses.disconnection(*steps._joinable(x, adj))
    apart.backward()
    assert apart.item() == pytest.approx(5.0, abs=1e-4)  # {0, 1}, {2}, {3}: 2 + 2 + 1 pairs
    assert x.grad[0, 2, 0] < 0 and x.grad[0, 3, 0] < 0  # the lone atoms: rather pads
    assert x.grad[0, :2].abs().max() == 0  # the C–C piece is joined, never deleted
    assert x.grad[0, 4, 0] < 0  # and a pad node is told to stay one


def test_sampled_connectivity_counts_an_atom_bonded_only_to_a_pad_as_lone():
    # a bond to a pad node is dropped when the graph becomes a molecule: the atom is alone
    x = torch.nn.functional.one_hot(torch.tensor([[1, 1, 2, 0]]), 5).float()  # C C N pad
    x.requires_grad_(True)
    bonds = torch.zeros(1, 4, 4, dtype=torch.long)
    bonds[0, 0, 1] = bonds[0, 1, 0] = 1  # C–C
    bonds[0, 2, 3] = bonds[0, 3, 2] = 1  # N–pad
    adj = torch.nn.functional.one_hot(bonds, 4).float()
    losses.disconnection(*steps._joinable(x, adj)).backward()
    assert x.grad[0, 2, 0] < 0  # the N may be deleted, as any lone atom
    assert x.grad[0, :2].abs().max() == 0


def test_sampled_connectivity_gradient_raises_a_bond_between_the_sampled_fragments():
    from molgan.generator import discretize

    x = torch.nn.functional.one_hot(torch.tensor([[1, 1, 1]]), 5).float()  # three C, no pads
    logits = torch.zeros(1, 3, 3, 4)
    logits[..., 0] = 3.0  # no bond anywhere ...
    logits[0, 0, 1, 1] = logits[0, 1, 0, 1] = 6.0  # ... but a C–C bond between atoms 0 and 1
    logits.requires_grad_(True)
    adj = discretize(logits, "hard_gumbel", 1.0, torch.zeros(1, 3, 3, 4))
    apart = losses.disconnection(x, adj)
    apart.backward()
    assert apart.item() == pytest.approx(2.0, abs=1e-4)  # atom 2 is cut off from 0 and 1
    assert logits.grad[0, 0, 2, 0] > 0 and logits.grad[0, 1, 2, 0] > 0  # less "no bond" to 2


def test_sampled_connectivity_needs_a_connectivity_weight():
    with pytest.raises(ValueError, match="connectivity_sampled needs"):
        Config(connectivity_sampled=True)
    with pytest.raises(ValueError, match="connectivity_sampled needs"):
        Config(connectivity_sampled=True, members=2, member_settings="connectivity=0,0")
    # one member with the penalty is enough: the other's weight is 0
    Config(connectivity_sampled=True, members=2, member_settings="seed=0,0;connectivity=0,1")


def test_batch_discriminator_appends_one_batch_mean_feature_to_every_sample():
    x, adj = _batch()
    other_x, other_adj = _batch(seed=1)
    mixed_x, mixed_adj = torch.cat([x[:1], other_x[1:]]), torch.cat([adj[:1], other_adj[1:]])
    plain, official = _encoder(), _encoder(batch_features=True)
    f = official.features(x, adj)  # (B, 13 + 11 // 8)
    assert f.shape == (6, 13 + 1) and torch.allclose(f[:, -1:], f[:1, -1:].expand(6, 1))
    assert not torch.allclose(official(x, adj)[0], official(mixed_x, mixed_adj)[0])
    assert torch.allclose(plain(x, adj)[0], plain(mixed_x, mixed_adj)[0])


def test_feature_matching_compares_batch_means_of_features():
    f_real = torch.tensor([[1.0, 0.0], [3.0, 2.0]])  # mean (2, 1)
    same_mean = torch.tensor([[2.0, 1.0], [2.0, 1.0]], requires_grad=True)
    assert losses.feature_matching(f_real, same_mean).item() == 0.0  # duplicates pass: mean only
    shifted = torch.tensor([[0.0, 1.0], [0.0, 1.0]])
    assert losses.feature_matching(f_real, shifted).item() == pytest.approx(4.0)
    parts = losses.generator_loss(torch.ones(2, 1), None, 1.0, feature_gap=torch.tensor(4.0))
    assert parts.loss.item() == 4.0  # it replaces the WGAN term


def test_tau_end_anneals_the_temperature_d_sees_from_tau_to_tau_end(tiny_config, monkeypatch):
    seen = []
    original = steps.d_step
    monkeypatch.setattr(
        steps,
        "d_step",
        lambda nets, opt, real, cfg, w: seen.append(cfg.tau) or original(nets, opt, real, cfg, w),
    )
    cfg = dataclasses.replace(tiny_config, mode="gumbel", tau=1.0, tau_end=0.25)
    train_module.train(cfg)
    assert seen[0] == 1.0 and seen[-1] == pytest.approx(0.25)
    assert all(a >= b for a, b in zip(seen, seen[1:], strict=False))
    assert Config(mode="gumbel").tau_end == 0.0  # off in the paper preset


def test_tilt_weights_are_exp_of_beta_times_reward_largest_one():
    w = batches.tilt_weights(torch.tensor([0.0, 0.5, 1.0]), 2.0)
    torch.testing.assert_close(w, torch.tensor([-2.0, -1.0, 0.0], dtype=torch.double).exp())
    assert batches.tilt_weights(torch.tensor([0.2, 0.9]), 0.0).tolist() == [1.0, 1.0]


def test_reward_tilt_draws_high_reward_molecules_into_the_real_batches(tiny_config, monkeypatch):
    # a stand-in reward without RDKit: the share of a molecule's atoms that are oxygen
    def oxygen_share(data, spec, verbose=True):
        atoms = data.atoms.long()
        return (atoms == 3).sum(1).double() / (atoms > 0).sum(1).double()

    seen = []
    original = steps.d_step

    def spy(nets, opt, real, cfg, weights):
        atoms = real.x[0].argmax(-1)
        seen.append(((atoms == 3).sum(1) / (atoms > 0).sum(1)).mean().item())
        return original(nets, opt, real, cfg, weights)

    monkeypatch.setattr(train_module, "dataset_rewards", oxygen_share)
    monkeypatch.setattr(steps, "d_step", spy)
    means = {}
    for beta in (0.0, 30.0):
        seen.clear()
        cfg = dataclasses.replace(
            tiny_config, lam=1.0, reward_tilt=beta, max_steps=40, eval_every=40, name=f"t{beta}"
        )
        train_module.train(cfg)
        means[beta] = sum(seen) / len(seen)
    assert means[30.0] > means[0.0] + 0.1
    with pytest.raises(ValueError, match="reward_tilt"):
        make_config("debug", reward_tilt=-1.0)


def test_training_with_every_remedy_on_stays_finite(tiny_config):
    cfg = dataclasses.replace(tiny_config, **REMEDIES, rl_start=0.0)
    model = train_module.train(cfg)
    rows = [
        r
        for r in __import__("molgan.rundir").rundir.read_log(f"{cfg.out_dir}/{cfg.run_name}")
        if "loss/d" in r
    ]
    assert rows and all(r["loss/d"] is not None and r["loss/g"] is not None for r in rows)
    assert model.generator_ema is not None
    blob = checkpoint.read(f"{cfg.out_dir}/{cfg.run_name}/ckpt.pt")
    assert "generator_ema" in blob
    assert model.class_prior.counts.sum() > 0  # the conditional model learnt its classes


def test_energy_samples_compare_more_of_gs_graphs_with_the_real_batch(tiny_path, monkeypatch):
    """energy_samples n: the energy term compares n batches of G's graphs (n - 1 drawn for it
    alone, with the real batch's classes) with the one real batch; D and every other term still
    see one batch, and n = 1 draws nothing more."""
    data = load_dataset(tiny_path, verbose=False)
    real = one_hot(data.atoms[None, :6], data.bonds[None, :6])
    seen = []
    energy = losses.energy_distance
    monkeypatch.setattr(
        losses,
        "energy_distance",
        lambda f, r, **k: seen.append((f.shape, r.shape, k)) or energy(f, r, **k),
    )
    for n in (1, 3):
        cfg = make_config("debug", energy=1.0, energy_samples=n, condition=True, lam=1.0)
        torch.manual_seed(0)
        population, nets, weights = one_member(MolGAN.from_config(cfg), cfg)
        calls = []
        g = population.generator
        monkeypatch.setattr(
            population.generator,
            "forward",
            lambda z, c=None, calls=calls, g=g, **k: (
                calls.append(z.shape) or type(g).forward(g, z, c, **k)
            ),
        )
        opt = torch.optim.Adam(population.generator.parameters(), lr=1e-3)
        _, fake = steps.g_step(nets, opt, cfg, torch.ones(1), False, real, weights)
        assert fake[0].shape[1] == 6  # what D saw and the reward targets: one batch
        assert calls == [(1, 6, cfg.z_dim)] + [(1, 6 * (n - 1), cfg.z_dim)] * (n > 1)
        assert seen[-1][0][1] == 6 * n and seen[-1][1][1] == 6
        assert seen[-1][2] == {"gram": n > 1}  # the published runs (n = 1) keep their arithmetic
    with pytest.raises(ValueError, match="energy_samples"):
        make_config("debug", energy_samples=0)
