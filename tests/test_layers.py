import pytest
import torch
from torch_geometric.nn import RGCNConv

from molgan.layers import GraphAggregation, RelationalGraphConv, mlp


def _random_graph(n=7, relations=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    bonds = torch.randint(0, relations + 1, (n, n), generator=g)
    bonds = torch.triu(bonds, 1)
    bonds = bonds + bonds.T  # symmetric, zero diagonal
    return bonds


def test_dense_relational_conv_equals_torch_geometric_rgcnconv():
    torch.manual_seed(0)
    n, f_in, f_out, relations = 7, 5, 6, 3
    bonds = _random_graph(n, relations)
    adj = torch.nn.functional.one_hot(bonds, relations + 1).float()[None]  # (1, N, N, R)
    h = torch.randn(1, n, f_in)
    ours = RelationalGraphConv(f_in, f_out, relations + 1)
    torch.nn.init.zeros_(ours.relations.bias)  # RGCNConv has no per-relation bias
    theirs = RGCNConv(f_in, f_out, relations, aggr="add", root_weight=True, bias=True)
    with torch.no_grad():
        weight = ours.relations.weight.view(relations, f_out, f_in)  # (R-1, F_out, F_in)
        theirs.weight.copy_(weight.transpose(1, 2))
        theirs.root.copy_(ours.self_loop.weight.T)
        theirs.bias.copy_(ours.self_loop.bias)
    src, dst = torch.nonzero(bonds, as_tuple=True)
    edge_type = bonds[src, dst] - 1
    # PyG sends messages source -> target; adj[i, j] sums neighbour j into i.
    expected = theirs(h[0], torch.stack([dst, src]), edge_type)
    assert torch.allclose(ours(h, adj)[0], expected, atol=1e-5)


def test_relation_bias_is_added_once_per_bond_as_in_the_tf_layer():
    conv = RelationalGraphConv(2, 3, 2)
    with torch.no_grad():
        for p in conv.parameters():
            p.zero_()
        conv.relations.bias.fill_(1.0)
    adj = torch.zeros(1, 3, 3, 2)
    adj[0, 0, 1, 1] = adj[0, 1, 0, 1] = adj[0, 0, 2, 1] = adj[0, 2, 0, 1] = 1.0
    out = conv(torch.randn(1, 3, 2), adj)
    assert out[0, :, 0].tolist() == [2.0, 1.0, 1.0]  # node 0 has two bonds


def test_no_bond_channel_carries_no_message():
    conv = RelationalGraphConv(4, 3, 3)
    h = torch.randn(2, 5, 4)
    adj = torch.zeros(2, 5, 5, 3)
    adj[..., 0] = 1.0  # everything "no bond"
    assert torch.allclose(conv(h, adj), conv.self_loop(h))


def test_degree_normalisation_divides_messages():
    conv = RelationalGraphConv(2, 2, 2, normalize=True)
    plain = RelationalGraphConv(2, 2, 2)
    plain.load_state_dict(conv.state_dict())
    adj = torch.zeros(1, 3, 3, 2)
    adj[0, 0, 1, 1] = adj[0, 1, 0, 1] = adj[0, 0, 2, 1] = adj[0, 2, 0, 1] = 1.0
    h = torch.randn(1, 3, 2)
    msg_norm = conv(h, adj) - conv.self_loop(h)
    msg_plain = plain(h, adj) - plain.self_loop(h)
    assert torch.allclose(msg_norm[0, 0], msg_plain[0, 0] / 2, atol=1e-6)


def test_aggregation_is_a_bounded_permutation_invariant_sum():
    agg = GraphAggregation(6, 4)
    a = torch.randn(3, 5, 6)
    out = agg(a)
    assert out.shape == (3, 4) and out.abs().max() <= 1
    assert torch.allclose(agg(a[:, torch.randperm(5)]), out, atol=1e-6)


def test_mlp_shapes_and_repr():
    net = mlp((3, 8, 2), dropout=0.1)
    assert net(torch.randn(4, 3)).shape == (4, 2)
    assert "num_relations=4" in repr(RelationalGraphConv(3, 5, 4))


@pytest.mark.parametrize("normalize", [False, True])
@pytest.mark.parametrize("members", [0, 3])
def test_aggregating_inputs_first_gives_the_messages_first_values_and_gradients(normalize, members):
    """The first R-GCN layer sums the neighbours' inputs before mapping them (cheaper when
    F_in < F_out); on soft graphs and on a population's stacked weights it must give what
    mapping each neighbour first gives, value and gradient."""
    from molgan.population import stack

    torch.manual_seed(0)
    convs = [RelationalGraphConv(5, 8, 4, normalize=normalize) for _ in range(max(members, 1))]
    conv = stack(convs) if members else convs[0]
    lead = (members,) if members else ()
    h = torch.randn(*lead, 2, 6, 5, requires_grad=True)
    adj = torch.softmax(torch.randn(*lead, 2, 6, 6, 4), -1)
    assert conv.aggregate_first
    fast = conv(h, adj)
    (grad_fast,) = torch.autograd.grad(fast.square().sum(), h)
    conv.aggregate_first = False
    slow = conv(h, adj)
    (grad_slow,) = torch.autograd.grad(slow.square().sum(), h)
    torch.testing.assert_close(fast, slow, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(grad_fast, grad_slow, rtol=1e-5, atol=1e-5)
