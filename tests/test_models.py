import pytest
import torch

from molgan import chem
from molgan.generator import (
    Generator,
    discretize,
    fold_edges,
    gumbel_noise,
    softmax,
    unfold_edges,
)
from molgan.models import Discriminator, MolGAN, RewardNet
from molgan.presets import make_config


@pytest.fixture
def tiny_model():
    torch.manual_seed(0)
    return MolGAN.from_config(make_config("debug"))


def test_generator_shapes_with_distinct_atom_and_bond_counts():
    gen = Generator(7, (11, 13), num_nodes=6, num_atom_types=5, num_bond_types=4)
    out = gen(torch.randn(3, 7))
    assert out.x_logits.shape == (3, 6, 5)
    assert out.adj_logits.shape == (3, 6, 6, 4)


def test_generator_edges_are_symmetric_without_self_bonds(tiny_model):
    out = tiny_model.generator(torch.randn(5, 7))
    adj = torch.softmax(out.adj_logits, -1)
    assert torch.allclose(adj, adj.transpose(1, 2))
    diag = adj.diagonal(dim1=1, dim2=2)  # (B, R, N)
    assert torch.all(diag[:, 0] == 1) and torch.all(diag[:, 1:] == 0)


def test_a_folded_edge_head_keeps_one_row_per_pair_and_unfolds_to_the_same_logits():
    """G symmetrises its edge logits and masks the diagonal, so the head's symmetric part
    above the diagonal is all a sampling file needs (N(N-1)/2 of N² rows per bond type)."""
    torch.manual_seed(0)
    gen = Generator(7, (11, 13), num_nodes=6, num_atom_types=5, num_bond_types=4)
    folded = fold_edges(gen.state_dict(), 6, 4)
    assert folded["edge_head.weight"].shape == (15 * 4, 13)
    assert folded["edge_head.bias"].shape == (15 * 4,)
    twin = Generator(7, (11, 13), num_nodes=6, num_atom_types=5, num_bond_types=4)
    twin.load_state_dict(unfold_edges(folded, 6, 4))
    z = torch.randn(9, 7)
    a, b = gen(z), twin(z)
    assert torch.equal(a.x_logits, b.x_logits)
    off = ~torch.eye(6, dtype=torch.bool)  # the diagonal is "no bond" in both, at any logit
    assert torch.allclose(a.adj_logits[:, off], b.adj_logits[:, off], atol=1e-6)
    assert torch.allclose(torch.softmax(a.adj_logits, -1), torch.softmax(b.adj_logits, -1))
    weight = twin.edge_head.weight.unflatten(0, (6, 6, 4))
    assert torch.equal(weight, weight.transpose(0, 1)) and not weight[2, 2].any()


def test_gumbel_noise_is_symmetric_on_request():
    g = gumbel_noise((2, 5, 5, 4), symmetric=True, generator=torch.Generator().manual_seed(0))
    assert torch.equal(g, g.transpose(1, 2))
    assert not torch.equal(g[0, 0, 1], g[0, 0, 2])


@pytest.mark.parametrize("mode", ["softmax", "gumbel", "hard_gumbel"])
def test_discretize_modes(mode):
    logits = torch.randn(4, 6, 5, requires_grad=True)
    noise = gumbel_noise(logits.shape)
    out = discretize(logits, mode, 1.0, noise)
    assert torch.allclose(out.sum(-1), torch.ones(4, 6))
    if mode == "hard_gumbel":
        hard = torch.nn.functional.one_hot((logits + noise).argmax(-1), 5).float()
        assert torch.allclose(out, hard)
    else:
        assert (out > 0).all() and (out < 1).all()
    (out * torch.randn_like(out)).sum().backward()
    assert logits.grad.abs().sum() > 0  # straight-through keeps a gradient


def test_softmax_equals_torch_softmax_in_value_and_gradient_with_masked_channels():
    logits = torch.randn(3, 5, 5, 4, dtype=torch.float64) * 30  # large: overflow without a shift
    logits[:, range(5), range(5), 1:] = float("-inf")  # the diagonal's bonds, as G masks them
    ours = logits.clone().requires_grad_(True)
    theirs = logits.clone().requires_grad_(True)
    weight = torch.randn(3, 5, 5, 4, dtype=torch.float64)
    (softmax(ours) * weight).sum().backward()
    (torch.softmax(theirs, dim=-1) * weight).sum().backward()
    assert torch.allclose(softmax(logits), torch.softmax(logits, dim=-1), atol=1e-15)
    assert softmax(logits)[:, range(5), range(5), 0].eq(1).all()  # masked bonds: exactly 0
    assert torch.allclose(ours.grad, theirs.grad, atol=1e-12)


def test_discretize_rejects_unknown_mode_and_missing_noise():
    with pytest.raises(ValueError):
        discretize(torch.zeros(2, 3), "argmax")
    with pytest.raises(ValueError):
        discretize(torch.zeros(2, 3), "gumbel")


@pytest.mark.parametrize("net_class", [Discriminator, RewardNet])
def test_discriminator_and_reward_net_are_invariant_to_node_permutation(net_class):
    torch.manual_seed(0)
    net = net_class(5, 4, (11, 13), 17, (19,))
    x = torch.softmax(torch.randn(3, 6, 5), -1)
    adj = torch.softmax(torch.randn(3, 6, 6, 4), -1)
    adj = (adj + adj.transpose(1, 2)) / 2
    perm = torch.randperm(6)
    out = net(x, adj)
    permuted = net(x[:, perm], adj[:, perm][:, :, perm])
    assert out.shape == (3, 1)
    assert torch.allclose(out, permuted, atol=1e-5)


def test_swapped_atom_and_bond_axes_fail():
    net = Discriminator(5, 4, (8,), 8, (8,))
    x, adj = torch.rand(2, 6, 5), torch.rand(2, 6, 6, 4)
    net(x, adj)
    with pytest.raises(RuntimeError):
        net(torch.rand(2, 6, 4), torch.rand(2, 6, 6, 5))


def test_reward_net_output_is_in_unit_interval_and_discriminator_is_not_squashed():
    torch.manual_seed(0)
    v = RewardNet(5, 4, (8,), 8, (8,))
    d = Discriminator(5, 4, (8,), 8, (8,))
    with torch.no_grad():
        d.out.bias.fill_(5.0)
    x, adj = torch.rand(16, 6, 5), torch.rand(16, 6, 6, 4)
    assert ((v(x, adj) > 0) & (v(x, adj) < 1)).all()
    assert (d(x, adj) > 1).all()


def test_parameter_counts_match_the_paper_architecture():
    model = MolGAN.from_config(make_config("paper"))
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    # Hand-derived in the spec §2.6 for z=32, E=4, D [64, 32] / 128 / [128], with biases.
    assert count(model.generator) == 358_129
    assert count(model.discriminator) == 36_865
    assert count(model.reward_net) == count(model.discriminator)


def test_sample_returns_n_smiles_or_none_deterministic_for_a_seed(tiny_model):
    a = tiny_model.sample(20, seed=3)
    b = tiny_model.sample(20, seed=3)
    c = tiny_model.sample(20, seed=4, strict=False)
    assert len(a) == 20 and a == b
    assert all(s is None or chem.is_strictly_valid(s) for s in a)
    atoms_a, _ = tiny_model.sample_graphs(20, generator=torch.Generator().manual_seed(3))
    atoms_c, _ = tiny_model.sample_graphs(20, generator=torch.Generator().manual_seed(4))
    assert (atoms_a != atoms_c).any()
    assert len(c) == 20
