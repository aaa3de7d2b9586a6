"""Mode-collapse remedies: each is a Config field, off in the paper preset, doing what it says;
remedies that lost are removed and refused with the commit that had them."""

from __future__ import annotations

import dataclasses
import importlib
import subprocess
import sys

import pytest
import torch

from molgan import batches, checkpoint, losses, steps
from molgan.config import Config
from molgan.data import load_dataset, one_hot
from molgan.generator import marginal_logits
from molgan.models import Discriminator, MolGAN
from molgan.population import Population
from molgan.presets import make_config
from molgan.removed import REMOVED, REMOVED_IN

train_module = importlib.import_module("molgan.train")
REMEDIES = {
    "gp_per_sample": True,
    "ema": 0.9,
    "lr_d": 4e-4,
    "beta1": 0.5,
    "beta2": 0.9,
    "mode_seeking": 1.0,
    "condition": True,
    "valence": 1.0,
    "overflow": 1.0,
    "isolated": 1.0,
    "spanning": 1.0,
    "composition": 1.0,
    "size_mask": True,
    "energy": 1.0,
    "reward_tilt": 5.0,
    "marginal_init": True,
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
    assert paper.ema == 0 and paper.energy == 0 and not paper.condition


def test_a_checkpoint_that_used_a_removed_setting_is_refused_naming_it_and_its_commit(tmp_path):
    model = MolGAN.from_config(make_config("debug"))
    path = checkpoint.save(tmp_path / "old.pt", model)
    blob = torch.load(path, weights_only=True)
    blob["config"] |= {name: off for name, off in REMOVED.items()}  # stored "off": loads
    torch.save(blob, path)
    assert isinstance(checkpoint.load(path), MolGAN)
    blob["config"]["spectral_norm"] = True
    torch.save(blob, path)
    with pytest.raises(ValueError, match=f"spectral_norm = True was removed.*{REMOVED_IN}"):
        checkpoint.load(path)


def test_a_removed_flag_is_a_one_line_error_naming_the_commit(tmp_path):
    out = subprocess.run(
        [sys.executable, "scripts/train_qm9.py", "--preset", "debug", "--tau-end", "0.5"],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 2 and out.stderr.count("\n") == 1
    assert "tau_end was removed" in out.stderr and REMOVED_IN in out.stderr
    with pytest.raises(ValueError, match=f"diversity was removed.*{REMOVED_IN}"):
        Config(members=2, member_settings={"diversity": (1, 0)})


def test_g_step_adds_each_generator_term_times_its_members_weight(tiny_path, monkeypatch):
    """GENERATOR_TERMS is the one list of G's extra terms: a term whose weight is 0 for every
    member is not computed, and each member's loss gains its own weight times the value."""
    data = load_dataset(tiny_path, verbose=False)
    real = one_hot(data.atoms[:6].expand(2, -1, -1), data.bonds[:6].expand(2, -1, -1, -1))
    calls = []
    extra = steps.Term("valence", lambda nets, f: calls.append(1) or torch.tensor([1.0, 2.0]))
    monkeypatch.setattr(steps, "GENERATOR_TERMS", (extra,))
    totals = {}
    for weight in ((0, 0), (3, 5)):
        cfg = make_config("debug", lam=1.0, members=2, member_settings={"valence": weight})
        torch.manual_seed(0)
        population = Population([MolGAN.from_config(cfg) for _ in range(2)])
        nets, weights = steps.step_nets(population), steps.member_weights(cfg, 2, "cpu")
        opt = torch.optim.SGD(population.generator.parameters(), lr=0.0)
        torch.manual_seed(1)
        stats, _ = steps.g_step(nets, opt, cfg, torch.ones(2), False, real, weights)
        totals[weight] = stats
    assert len(calls) == 1  # only with a nonzero weight
    assert "loss/valence" not in totals[(0, 0)]
    assert totals[(3, 5)]["loss/valence"].tolist() == [1.0, 2.0]


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


def test_separate_learning_rate_and_betas_reach_the_optimisers():
    cfg = make_config("debug", lr=1e-3, lr_d=4e-4, beta1=0.5, beta2=0.9)
    opts = steps.make_optimizers(MolGAN.from_config(cfg), cfg)
    assert opts["d"].param_groups[0]["lr"] == 4e-4 and opts["g"].param_groups[0]["lr"] == 1e-3
    assert all(o.param_groups[0]["betas"] == (0.5, 0.9) for o in opts.values())


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


def test_a_setting_removed_later_names_its_own_last_commit():
    with pytest.raises(ValueError, match="bond_count = 10.0 was removed .* is 7e41cc0"):
        Config.from_dict({"bond_count": 10.0}, "old run")
    with pytest.raises(ValueError, match="bond_composition = 10.0 was removed .* is 1ed2aa3"):
        Config.from_dict({"bond_composition": 10.0}, "old run")
    with pytest.raises(ValueError, match="aromatic_bonds = True was removed .* is 1ed2aa3"):
        Config.from_dict({"aromatic_bonds": True}, "old run")
    with pytest.raises(ValueError, match="atoms aromatic was removed .* is 801c5fa"):
        Config.from_dict({"atoms": "aromatic"}, "old run")


def _graph(atoms: list[int], bonds: dict[tuple[int, int], int], T=5, R=4):
    """One one-hot graph (1, N, T), (1, N, N, R) from atom types and {(i, j): bond type}."""
    b = torch.zeros(len(atoms), len(atoms), dtype=torch.long)
    for (i, j), kind in bonds.items():
        b[i, j] = b[j, i] = kind
    x = torch.nn.functional.one_hot(torch.tensor(atoms), T).float()
    return x[None], torch.nn.functional.one_hot(b, R).float()[None]


def test_isolated_atoms_counts_the_atoms_without_a_bond_and_not_the_pads():
    x, adj = _graph([1, 1, 2, 3, 0, 0], {(0, 1): 1, (4, 5): 1})  # C–C, N, O alone; pad–pad
    assert losses.isolated_atoms(x, adj).item() == pytest.approx(2.0)
    x, adj = _graph([1, 2, 3, 0], {(0, 1): 1, (1, 2): 2})  # one molecule and a pad
    assert losses.isolated_atoms(x, adj).item() == pytest.approx(0.0, abs=1e-12)
    x, adj = _graph([1, 1, 1], {})  # the empty graph the valence penalty leaves alone
    assert losses.isolated_atoms(x, adj).item() == pytest.approx(3.0)
    assert losses.valence_excess(x, adj, *_valence_tables()).item() == 0.0


def test_isolated_atoms_gradient_adds_bonds_to_a_lone_atom():
    x = torch.nn.functional.one_hot(torch.tensor([[1, 1]]), 5).float()  # two carbons
    logits = torch.zeros(1, 2, 2, 4)
    logits[0, 0, 1] = logits[0, 1, 0] = torch.tensor([3.0, 0.0, 0.0, 0.0])  # mostly no bond
    logits[0, 0, 0, 1:] = logits[0, 1, 1, 1:] = float("-inf")  # the "no bond" diagonal
    logits.requires_grad_(True)
    losses.isolated_atoms(x, torch.softmax(logits, -1)).backward()
    assert logits.grad[0, 0, 1, 0] > 0 and (logits.grad[0, 0, 1, 1:] < 0).all()


def test_a_sized_generator_spells_exactly_the_asked_atom_count_with_pads_last():
    from molgan.generator import Generator, gumbel_noise

    torch.manual_seed(0)
    N, T, R = 6, 4, 3
    g = Generator(5, (8,), N, T, R, cond_dim=N + T - 1, sized=True)
    counts = torch.tensor([1, 3, 6, 4])
    cond = torch.cat([torch.nn.functional.one_hot(counts - 1, N), torch.ones(4, T - 1)], -1)
    out = g(torch.randn(4, 5), cond.float())
    atoms = (out.x_logits + gumbel_noise(out.x_logits.shape)).argmax(-1)  # (4, N)
    bonds = (out.adj_logits + gumbel_noise(out.adj_logits.shape, symmetric=True)).argmax(-1)
    for n, a, b in zip(counts.tolist(), atoms, bonds, strict=True):
        assert (a[:n] > 0).all() and (a[n:] == 0).all()
        assert (b[n:] == 0).all() and (b[:, n:] == 0).all()
    assert (bonds[:, :3, :3] > 0).any()  # the atoms themselves may bond
    with pytest.raises(ValueError, match="class vector"):
        Generator(5, (8,), N, T, R, sized=True)
    with pytest.raises(ValueError, match="size_mask needs condition"):
        make_config("debug", size_mask=True)


def test_bond_shortfall_counts_the_bonds_missing_for_one_piece():
    x, adj = _graph([1, 1, 1, 1, 0], {(0, 1): 1, (2, 3): 1})  # C–C C–C and a pad: 2 pieces
    assert losses.bond_shortfall(x, adj).item() == pytest.approx(1.0)
    x, adj = _graph([1, 1, 1, 0], {(0, 1): 1, (1, 2): 2, (0, 3): 1})  # a bond to the pad
    assert losses.bond_shortfall(x, adj).item() == pytest.approx(0.0)  # pads hold no bonds
    x, adj = _graph([1, 1, 1], {(0, 1): 1, (1, 2): 1, (0, 2): 1})  # a ring: more than n - 1
    assert losses.bond_shortfall(x, adj).item() == 0.0
    x, adj = _graph([1, 2, 3], {})  # the empty graph: two bonds short
    assert losses.bond_shortfall(x, adj).item() == pytest.approx(2.0)


def test_composition_gap_is_the_per_graph_element_count_gap_between_batches():
    fake = _graph([1, 1, 4, 0], {})[0].expand(2, -1, -1)  # C, C, F, pad twice: 2 C and 1 F
    real = torch.cat([_graph([1, 2, 0, 0], {})[0], _graph([1, 1, 1, 2], {})[0]])  # mean 2 C, 1 N
    gap = losses.composition_gap(fake, real)
    assert gap.item() == pytest.approx(0.0 + 1.0 + 0.0 + 1.0)  # C even, N short 1, F over 1
    assert losses.composition_gap(real, real).item() == 0.0
    logits = torch.zeros(1, 3, 5, requires_grad=True)
    losses.composition_gap(torch.softmax(logits, -1), real).backward()
    assert (logits.grad[0, :, 1] < 0).all() and (logits.grad[0, :, 4] > 0).all()  # more C, no F


def test_marginal_logits_are_laplace_smoothed_log_frequencies_per_node_and_pair():
    atoms = torch.tensor([[1, 2], [1, 0]])  # C O, C pad
    bonds = torch.zeros(2, 2, 2, dtype=torch.long)
    bonds[0, 0, 1] = bonds[0, 1, 0] = 2  # C=O in the first graph only
    x_prior, adj_prior = marginal_logits(atoms, bonds, 3, 4)
    assert torch.allclose(x_prior[0].exp(), torch.tensor([1, 3, 1]) / 5)  # node 0: C twice
    assert torch.allclose(x_prior[1].exp(), torch.tensor([2, 1, 2]) / 5)
    assert torch.allclose(adj_prior[0, 1].exp(), torch.tensor([2, 1, 2, 1]) / 6)
    assert torch.equal(adj_prior[0, 1], adj_prior[1, 0])


def test_marginal_init_starts_g_at_the_datas_bond_types_and_leaves_other_runs_alone(tmp_path):
    data = load_dataset("data/qm9_debug.smi", atoms="qm9", verbose=False)
    train = data.split["train"]
    x_prior, adj_prior = marginal_logits(data.atoms[train], data.bonds[train], 5, 4)
    runs = {}
    for flag in (True, False):
        cfg = make_config("debug", marginal_init=flag, members=2, ema=0.9)
        torch.manual_seed(0)
        runs[flag] = train_module._population(cfg, data, None, None, tmp_path / "ckpt.pt")[0]
    for k in range(2):
        g, other = runs[True].member(k), runs[False].member(k)
        for net in (g.generator, g.generator_ema):
            assert torch.equal(net.edge_head.bias, adj_prior.flatten())
            assert torch.equal(net.node_head.bias, x_prior.flatten())
        assert torch.equal(g.generator.edge_head.weight, other.generator.edge_head.weight)
        assert not torch.equal(other.generator.edge_head.bias, adj_prior.flatten())


def _valence_tables():
    valence = torch.tensor([0.0, 4.0, 3.0, 2.0, 1.0])  # pad, C, N, O, F
    return valence, torch.tensor([0.0, 1.0, 2.0, 3.0])


def _overflow(x, adj, valence, order):
    return losses.valence_overflow(x, adj, valence, [int(o) for o in order], int(valence.max()) + 1)


def test_valence_overflow_sees_the_risk_of_uncertain_double_bonds_that_valence_misses():
    valence, order = _valence_tables()
    x = torch.zeros(1, 5, 5)
    x[0, :, 1] = 1.0  # five carbons
    adj = torch.zeros(1, 5, 5, 4)
    adj[..., 0] = 1.0
    for j in range(1, 5):  # carbon 0: a double bond to each other carbon with probability 1/2
        adj[0, 0, j] = adj[0, j, 0] = torch.tensor([0.5, 0.0, 0.5, 0.0])
    assert losses.valence_excess(x, adj, valence, order).item() == 0.0  # expected order 4
    # carbon 0 holds 2 · Binomial(4, 1/2) bonds: over 4 with probability 5/16
    overflow = _overflow(x, adj, valence, order)
    assert overflow.item() == pytest.approx(5 / 16)


def test_valence_overflow_counts_over_valent_atoms_of_hard_graphs_and_matches_sampling():
    valence, order = _valence_tables()
    x, adj = _batch(B=4, N=6, T=5, R=4, seed=3)
    adj = adj * (1 - torch.eye(6))[..., None]
    adj[..., 0] += torch.eye(6)  # no self bonds
    bonds = (adj * order).sum(dim=(-2, -1))  # (B, N)
    over = (bonds > (x @ valence)).float().sum(-1).mean()
    assert _overflow(x, adj, valence, order).item() == pytest.approx(over.item())
    torch.manual_seed(0)  # soft graphs: the mean over sampled graphs
    logits = torch.randn(2, 6, 6, 4) - torch.tensor([0.0, 1.0, 2.0, 3.0])
    logits = (logits + logits.transpose(1, 2)) / 2
    logits[:, range(6), range(6), 1:] = float("-inf")
    soft = torch.softmax(logits, -1)
    xs = torch.softmax(torch.randn(2, 6, 5), -1)
    draws = torch.distributions.Categorical(probs=soft).sample((20000,))  # (S, 2, 6, 6)
    upper = torch.triu(draws, diagonal=1)
    sym = upper + upper.transpose(-1, -2)
    held = order[sym].sum(-1)  # (S, 2, 6)
    mc = (xs * (held[..., None] > valence).float()).sum(-1).sum(-1).mean()
    up = torch.triu(torch.ones(6, 6, dtype=torch.bool), 1)
    soft_sym = torch.where(up[..., None], soft, soft.transpose(1, 2))  # the upper triangle's draws
    exact = _overflow(xs, soft_sym, valence, order)
    assert exact.item() == pytest.approx(mc.item(), abs=0.03)


def test_valence_overflow_gradient_sharpens_a_risky_atom():
    valence, order = _valence_tables()
    x = torch.zeros(1, 3, 5)
    x[0, :, 3] = 1.0  # three oxygens
    logits = torch.zeros(1, 3, 3, 4, requires_grad=True)
    mask = torch.eye(3, dtype=torch.bool)[None, ..., None] & (torch.arange(4) > 0)
    adj = torch.softmax(logits.masked_fill(mask, float("-inf")), -1)
    _overflow(x, adj, valence, order).backward()
    grad = logits.grad[0, 0, 1]  # descent raises "no bond" and lowers double and triple
    assert grad[0] < 0 and grad[2] > 0 and grad[3] > 0
