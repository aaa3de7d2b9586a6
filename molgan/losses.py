"""MolGAN losses as pure functions (torch only; no optimiser calls).

WGAN-GP (Gulrajani et al. 2017) for the discriminator, L2 regression of the reward network onto
RDKit rewards, and the generator's mix λ·L_WGAN + (1-λ)·α·L_RL (paper Eq. 5 and the official
code's α = |L_WGAN / L_RL| rescaling), where L_RL = -mean(V(G(z))) is the deterministic policy
gradient through the reward network (DDPG-style, one-step episodes).

Every loss also takes leading axes before the batch axis B (a population's member axis K,
``molgan.population``) and then returns one value per member, (K,): members never mix.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import torch

Critic = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class GeneratorLoss(NamedTuple):
    """Total generator loss and its parts (``alpha`` is the detached RL scale)."""

    loss: torch.Tensor
    wgan: torch.Tensor
    rl: torch.Tensor
    alpha: torch.Tensor


def wasserstein_d(d_real: torch.Tensor, d_fake: torch.Tensor) -> torch.Tensor:
    """Discriminator's WGAN loss mean(D(fake)) - mean(D(real)); inputs (..., B, 1)."""
    return d_fake.mean(dim=(-2, -1)) - d_real.mean(dim=(-2, -1))


def wasserstein_g(d_fake: torch.Tensor) -> torch.Tensor:
    """Generator's WGAN loss -mean(D(fake)); input (..., B, 1)."""
    return -d_fake.mean(dim=(-2, -1))


def gradient_penalty(
    critic: Critic,
    x_real: torch.Tensor,
    adj_real: torch.Tensor,
    x_fake: torch.Tensor,
    adj_fake: torch.Tensor,
    generator: torch.Generator | None = None,
    per_sample: bool = False,
) -> torch.Tensor:
    """WGAN-GP on random real/fake interpolates, norm per node and per edge over the type axis.

    With one ε ~ U(0, 1) per sample, x̂ = ε·x_real + (1-ε)·x_fake (likewise adj), the penalty is
    mean_b[ mean_ij (1 - ‖∂D/∂adĵ_ij‖)² + mean_i (1 - ‖∂D/∂x̂_i‖)² ], as the official code.
    Deviation from the usual WGAN-GP: the norm is per entry, not over the whole sample.
    The gradient is taken of the critic **output** at the interpolates (peers differentiate
    features or evaluate at the real inputs).

    Args:
        critic: D, called as ``critic(x, adj) -> (..., B, 1)``.
        x_real, adj_real: one-hot real batch, (..., B, N, T) and (..., B, N, N, R).
        x_fake, adj_fake: generated probabilities of the same shapes (detached here).
        generator: RNG for ε.
        per_sample: the standard WGAN-GP instead: one norm over each whole sample (nodes and
            edges together), mean_b (1 - ‖∂D/∂(x̂_b, adĵ_b)‖)².

    Returns:
        Penalty (weight not applied), differentiable w.r.t. the critic's parameters: a scalar,
        or (K,) for (K, B, ...) inputs (the gradient of Σ outputs w.r.t. one member's inputs
        is that member's own: members do not mix).
    """
    lead = x_real.shape[:-2]  # (..., B)
    eps = torch.rand(*lead, 1, 1, generator=generator, device=x_real.device)  # (..., B, 1, 1)
    x_hat = (eps * x_real + (1 - eps) * x_fake.detach()).requires_grad_(True)  # (..., B, N, T)
    adj_hat = eps[..., None] * adj_real + (1 - eps[..., None]) * adj_fake.detach()
    adj_hat.requires_grad_(True)  # (..., B, N, N, R)
    out = critic(x_hat, adj_hat)  # (..., B, 1)
    grad_x, grad_adj = torch.autograd.grad(out.sum(), (x_hat, adj_hat), create_graph=True)
    if per_sample:
        squares = grad_x.pow(2).sum(dim=(-2, -1)) + grad_adj.pow(2).sum(dim=(-3, -2, -1))
        return (1 - (squares + 1e-12).sqrt()).pow(2).mean(dim=-1)  # squares: (..., B)
    penalty_adj = (1 - grad_adj.norm(dim=-1)).pow(2).mean(dim=(-2, -1))  # (..., B)
    penalty_x = (1 - grad_x.norm(dim=-1)).pow(2).mean(dim=-1)  # (..., B)
    return (penalty_adj + penalty_x).mean(dim=-1)


def energy_distance(fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """Energy distance between two samples, (..., B, F) and (..., B', F) (Székely & Rizzo 2013):
    2·E‖X−Y‖ − E‖X−X'‖ − E‖Y−Y'‖ over all pairs (the same-sample terms without the diagonal).

    Zero when the two samples have the same distribution and positive otherwise; as a loss of G
    (on ``fake``) its −E‖X−X'‖ term pushes G's samples apart, so it matches the data's spread as
    well as its location (EGO's objective, here beside the adversarial loss). Gradients reach
    ``fake`` only. Returns (...).
    """
    real = real.detach()

    def mean_distance(a: torch.Tensor, b: torch.Tensor, same: bool) -> torch.Tensor:
        d2 = (a.unsqueeze(-2) - b.unsqueeze(-3)).pow(2).sum(-1)  # (..., B, B')
        d = torch.sqrt(d2 + 1e-8)  # smooth at 0 (the diagonal of a same-sample matrix)
        if not same:
            return d.mean(dim=(-2, -1))
        n = a.shape[-2]
        off = d.sum(dim=(-2, -1)) - d.diagonal(dim1=-2, dim2=-1).sum(-1)
        return off / max(n * (n - 1), 1)

    return (
        2 * mean_distance(fake, real, False)
        - mean_distance(fake, fake, True)
        - mean_distance(real, real, True)
    )


def graph_features(x: torch.Tensor, adj: torch.Tensor) -> torch.Tensor:
    """A graph as one flat vector, (..., B, N·T + N·N·R): node and edge one-hots (or G's soft
    versions) side by side, for ``energy_distance`` in graph space."""
    return torch.cat([x.flatten(-2), adj.flatten(-3)], dim=-1)


def mode_seeking(x: torch.Tensor, adj: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """Mode-seeking term (MSGAN, Mao et al. 2019): 1 / (d(G(z1), G(z2)) / d(z1, z2) + 1e-5).

    The batch is split into halves paired row by row; d is the mean absolute difference, over
    all entries of the node and of the edge tensors (summed), and over the latents. Minimising
    it pushes G to map distant latents to distant graphs, i.e. against collapse onto few outputs.

    Args:
        x: G's node output as D sees it, (..., B, N, T); adj: (..., B, N, N, R); z: the
            latents, (..., B, Z).

    Returns:
        Scalar, (...) with leading axes (0 for a batch of fewer than 2).
    """
    half = x.shape[-3] // 2
    if half == 0:
        return x.new_zeros(x.shape[:-3])
    dx = x[..., :half, :, :] - x[..., half : 2 * half, :, :]  # (..., B/2, N, T)
    dadj = adj[..., :half, :, :, :] - adj[..., half : 2 * half, :, :, :]  # (..., B/2, N, N, R)
    d_out = dx.abs().mean(dim=(-3, -2, -1)) + dadj.abs().mean(dim=(-4, -3, -2, -1))  # (...)
    d_z = (z[..., :half, :] - z[..., half : 2 * half, :]).abs().mean(dim=(-2, -1))  # (...)
    return 1.0 / (d_out / d_z + 1e-5)


def valence_excess(
    x: torch.Tensor, adj: torch.Tensor, valence: torch.Tensor, order: torch.Tensor
) -> torch.Tensor:
    """Σ over atoms of max(0, expected bond-order sum - expected valence), mean over graphs.

    A validity signal that needs neither RDKit nor a reward net: zero on every molecule of the
    data (and on any one-hot graph RDKit sanitises), positive where G puts more bond order on a
    node than its atom type holds (bonds on pad nodes included: those atoms hold none).

    Args:
        x: node type probabilities (..., B, N, T); adj: bond type probabilities
            (..., B, N, N, R) with a "no bond" diagonal.
        valence: (T,) valence of each atom type (0 for pad); order: (R,) order of each bond type.

    Returns:
        Scalar, (...) with leading axes.
    """
    bonds = (adj * order).sum(dim=(-2, -1))  # (..., B, N)
    capacity = x @ valence  # (..., B, N)
    return torch.relu(bonds - capacity).sum(dim=-1).mean(dim=-1)


def valence_overflow(
    x: torch.Tensor, adj: torch.Tensor, valence: torch.Tensor, orders: Sequence[int], top: int
) -> torch.Tensor:
    """Expected over-valent atoms per graph in G's *samples*: Σ_i Σ_t x_it · P(S_i > v_t), with
    S_i = Σ_j order(bond i-j) and each bond drawn from its own softmax (as sampling draws it).

    ``valence_excess`` penalises the expected order above the valence, which is zero for an
    atom whose four possible double bonds each have probability 1/2 — half of whose samples
    are over-valent. This term sees that risk: the exact distribution of S_i, by dynamic
    programming over the neighbours j (bond sums above the largest valence pooled).

    Args:
        x: node type probabilities (..., B, N, T); adj: bond type probabilities
            (..., B, N, N, R) with a "no bond" diagonal; valence: (T,) valence of each atom type
            (0 for pad: any bond on a pad counts); orders: the R bond types' integer orders and
            top: the largest valence + 1, both on the host (reading them off the device would
            wait for it in every step).

    Returns:
        Scalar, (...) with leading axes.
    """
    # sums ≥ top share one bin: every type is over there
    dist = torch.zeros(*adj.shape[:-2], top + 1, dtype=adj.dtype, device=adj.device)
    dist[..., 0] = 1.0  # (..., B, N, top + 1): P(S_i = s) over the neighbours seen so far
    for j in range(adj.shape[-2]):
        p = adj[..., j, :]  # (..., B, N, R): the bond i-j of every atom i
        new = dist * p[..., :1]  # no bond
        for r in range(1, len(orders)):
            k = min(orders[r], top)
            moved = torch.cat(  # s -> s + k; sums reaching top pooled in the top bin
                [dist.new_zeros(*dist.shape[:-1], k), dist[..., : top - k],
                 dist[..., top - k :].sum(dim=-1, keepdim=True)], dim=-1,
            )  # fmt: skip
            new = new + moved * p[..., r : r + 1]
        dist = new
    tail = dist.flip(-1).cumsum(-1).flip(-1)  # (..., B, N, top + 1): P(S_i ≥ s)
    over = tail[..., (valence.long() + 1).clamp(max=top)]  # (..., B, N, T): P(S_i > v_t)
    return (x * over).sum(dim=(-2, -1)).mean(dim=-1)


def isolated_atoms(x: torch.Tensor, adj: torch.Tensor) -> torch.Tensor:
    """Expected atoms without a bond per graph: Σ_i P(node i is an atom) · Π_j P(no bond i-j).

    The complement of the valence penalty: that one is zero on a graph without bonds, this one
    is largest there (every atom of a molecule of two or more atoms has a bond). Bonds to pad
    nodes count as bonds here (``size_mask`` rules them out).

    Args:
        x: node type probabilities (..., B, N, T), index 0 = no atom; adj: bond type
            probabilities (..., B, N, N, R), index 0 = no bond, with a "no bond" diagonal.

    Returns:
        Scalar, (...) with leading axes.
    """
    lone = adj[..., 0].clamp_min(1e-30).log().sum(dim=-1).exp()  # (..., B, N) P(no bond at all)
    return ((1.0 - x[..., 0]) * lone).sum(dim=-1).mean(dim=-1)


def bond_shortfall(x: torch.Tensor, adj: torch.Tensor) -> torch.Tensor:
    """max(0, expected atoms - 1 - expected bonds between atoms) per graph, mean over graphs:
    a molecule of n atoms in one piece has at least n - 1 bonds, so a shortfall of s bonds
    leaves at least s + 1 fragments (what ``isolated_atoms`` misses: pieces of two or more).

    Args:
        x: node type probabilities (..., B, N, T), index 0 = no atom; adj: bond type
            probabilities (..., B, N, N, R), index 0 = no bond, with a "no bond" diagonal.

    Returns:
        Scalar, (...) with leading axes.
    """
    atom = 1.0 - x[..., 0]  # (..., B, N)
    both = atom[..., :, None] * atom[..., None, :]  # (..., B, N, N)
    bonds = ((1.0 - adj[..., 0]) * both).sum(dim=(-2, -1)) / 2  # (..., B)
    return torch.relu(atom.sum(dim=-1) - 1.0 - bonds).mean(dim=-1)


def composition_gap(x_fake: torch.Tensor, x_real: torch.Tensor) -> torch.Tensor:
    """Σ_t |mean atoms of type t per graph in G's batch - in the real batch| (pads excluded):
    the batch's element composition against the data's, which the valence terms alone bend
    toward the atoms that hold the most bonds.

    Args:
        x_fake: G's node type probabilities (..., B, N, T), index 0 = no atom; x_real: the real
            batch's one-hots (..., B', N, T).

    Returns:
        Scalar, (...) with leading axes.
    """
    fake = x_fake[..., 1:].sum(dim=-2).mean(dim=-2)  # (..., T-1)
    real = x_real[..., 1:].sum(dim=-2).mean(dim=-2)  # (..., T-1)
    return (fake - real).abs().sum(dim=-1)


def reward_net_loss(
    v_real: torch.Tensor, r_real: torch.Tensor, v_fake: torch.Tensor, r_fake: torch.Tensor
) -> torch.Tensor:
    """L2 regression of the reward net onto real and fake RDKit rewards; all (..., B, 1)."""
    return (v_real - r_real).pow(2).mean(dim=(-2, -1)) + (v_fake - r_fake).pow(2).mean(dim=(-2, -1))


def generator_loss(
    d_fake: torch.Tensor,
    v_fake: torch.Tensor | None,
    lam: float | torch.Tensor,
    *,
    scale_rl: bool = True,
    alpha_eps: float = 1e-2,
) -> GeneratorLoss:
    """λ·L_WGAN + (1-λ)·α·L_RL, with L_WGAN = -mean(D(fake)) and L_RL = -mean(V(fake)).

    α = |L_WGAN| / max(|L_RL|, alpha_eps), detached, rescales the RL gradient to the WGAN loss's
    current size (the official code; the paper writes α = 1). Deviation: the denominator is
    clamped, since with every fake invalid V(fake) → 0 and the unclamped ratio explodes.

    Args:
        d_fake: D(G(z)), (..., B, 1).
        v_fake: V(G(z)), (..., B, 1); ``None`` when λ = 1 (no RL).
        lam: λ in [0, 1]; 1 = pure WGAN, 0 = pure RL; or one λ per member, (K,).
        scale_rl: apply α (else α = 1).
        alpha_eps: lower clamp of |L_RL| in α.
    """
    wgan = wasserstein_g(d_fake)
    if v_fake is None or (not isinstance(lam, torch.Tensor) and lam >= 1.0):
        zero = torch.zeros_like(wgan)
        return GeneratorLoss(wgan, wgan, zero, zero)
    rl = -v_fake.mean(dim=(-2, -1))
    if scale_rl:
        alpha = wgan.detach().abs() / rl.detach().abs().clamp(min=alpha_eps)
    else:
        alpha = torch.ones_like(rl)
    # at λ = 0 the first term is an exact 0: the same value as α·L_RL alone
    loss = lam * wgan + (1.0 - lam) * alpha * rl
    if isinstance(lam, torch.Tensor):  # members at λ = 1 have no RL term: report none
        rl, alpha = torch.where(lam < 1.0, rl, 0.0), torch.where(lam < 1.0, alpha, 0.0)
    return GeneratorLoss(loss, wgan, rl, alpha)
