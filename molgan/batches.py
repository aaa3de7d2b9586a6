"""Which real molecules D sees, in which order: each epoch a permutation of the training split,
or, when molecules carry sampling weights (class balancing, reward tilt), an epoch's worth of
draws with replacement. The order depends only on (seed, epoch), so a resumed run sees the same
batches as an uninterrupted one. Torch only."""

from __future__ import annotations

import torch


def tilt_weights(r: torch.Tensor, beta: float) -> torch.Tensor:
    """Sampling weights (M,) of training molecules with rewards r (M,): exp(β · r), scaled so
    the largest is 1 (the reward-tilted data a ``reward_tilt`` run trains D on)."""
    r = r.double()
    return torch.exp(beta * (r - r.max()))


def combine(*weights: torch.Tensor | None) -> torch.Tensor | None:
    """The product of the sampling weights (M,) that are given; None (uniform) if none is."""
    given = [w for w in weights if w is not None]
    if not given:
        return None
    out = given[0]
    for w in given[1:]:
        out = out * w
    return out


def epoch_order(
    train_idx: torch.Tensor, weights: torch.Tensor | None, seed: int, epoch: int
) -> torch.Tensor:
    """Dataset indices (M,) of the training molecules (``train_idx``, (M,)) in the order epoch
    ``epoch`` draws them: a permutation, or M weighted draws with replacement."""
    g = torch.Generator().manual_seed((seed * 1_000_003 + epoch) % 2**64)
    if weights is None:
        order = torch.randperm(len(train_idx), generator=g)
    else:
        order = torch.multinomial(weights, len(train_idx), True, generator=g)
    return train_idx[order]
