"""The order in which training molecules reach D (molgan.batches)."""

from __future__ import annotations

import torch

from molgan import batches


def test_unweighted_epoch_is_a_permutation_of_the_training_split():
    train_idx = torch.tensor([3, 7, 11, 20, 42])
    order = batches.epoch_order(train_idx, None, seed=0, epoch=0)
    assert sorted(order.tolist()) == train_idx.tolist()


def test_epoch_order_depends_only_on_seed_and_epoch():
    train_idx = torch.arange(100)
    first = batches.epoch_order(train_idx, None, seed=3, epoch=5)
    torch.rand(10)  # the global RNG does not enter: a resumed run sees the same batches
    assert torch.equal(first, batches.epoch_order(train_idx, None, seed=3, epoch=5))
    assert not torch.equal(first, batches.epoch_order(train_idx, None, seed=3, epoch=6))
    assert not torch.equal(first, batches.epoch_order(train_idx, None, seed=4, epoch=5))


def test_weighted_epoch_draws_by_weight_and_never_a_zero_weight_molecule():
    train_idx = torch.tensor([10, 20, 30, 40])
    weights = torch.tensor([0.0, 1.0, 1.0, 2.0], dtype=torch.double)
    drawn = torch.cat([batches.epoch_order(train_idx, weights, 0, e) for e in range(500)])
    assert 10 not in drawn.tolist()
    share = (drawn == 40).double().mean().item()
    assert abs(share - 0.5) < 0.03  # weight 2 of 4


def test_combine_multiplies_given_weights_and_none_means_uniform():
    a, b = torch.tensor([1.0, 2.0]), torch.tensor([3.0, 0.5])
    assert batches.combine(None, None) is None
    assert batches.combine(a, None) is a
    torch.testing.assert_close(batches.combine(a, b), torch.tensor([3.0, 1.0]))
