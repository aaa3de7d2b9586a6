"""MolGAN losses as pure functions (torch only; no optimiser calls).

WGAN-GP (Gulrajani et al. 2017) for the discriminator, L2 regression of the reward network onto
RDKit rewards, and the generator's mix λ·L_WGAN + (1-λ)·α·L_RL (paper Eq. 5 and the official
code's α = |L_WGAN / L_RL| rescaling), where L_RL = -mean(V(G(z))) is the deterministic policy
gradient through the reward network (DDPG-style, one-step episodes).

Every loss also takes leading axes before the batch axis B (a population's member axis K,
``molgan.population``) and then returns one value per member, (K,): members never mix.
"""

from __future__ import annotations

from collections.abc import Callable
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


def relativistic_d(d_real: torch.Tensor, d_fake: torch.Tensor) -> torch.Tensor:
    """Discriminator's relativistic pairing loss (RpGAN; Huang et al. 2024, "The GAN is dead;
    long live the GAN!"): mean_b softplus(D(fake_b) - D(real_b)), the b-th fake paired with the
    b-th real sample; inputs (..., B, 1)."""
    return torch.nn.functional.softplus(d_fake - d_real).mean(dim=(-2, -1))


def relativistic_g(d_fake: torch.Tensor, d_real: torch.Tensor) -> torch.Tensor:
    """Generator's relativistic pairing loss mean_b softplus(D(real_b) - D(fake_b)) (D's real
    scores detached: only G learns here); inputs (..., B, 1)."""
    return torch.nn.functional.softplus(d_real.detach() - d_fake).mean(dim=(-2, -1))


def zero_centered_penalty(critic: Critic, x: torch.Tensor, adj: torch.Tensor) -> torch.Tensor:
    """mean_b ‖∂D/∂(x_b, adj_b)‖² at the given samples: R1 on real data, R2 on generated data
    (zero-centred, unlike WGAN-GP's one-centred penalty at interpolates). Inputs (..., B, N, T)
    and (..., B, N, N, R), detached here; returns one value per member, (...)."""
    x = x.detach().requires_grad_(True)
    adj = adj.detach().requires_grad_(True)
    out = critic(x, adj)  # (..., B, 1)
    grad_x, grad_adj = torch.autograd.grad(out.sum(), (x, adj), create_graph=True)
    squares = grad_x.pow(2).sum(dim=(-2, -1)) + grad_adj.pow(2).sum(dim=(-3, -2, -1))  # (..., B)
    return squares.mean(dim=-1)


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


def feature_matching(f_real: torch.Tensor, f_fake: torch.Tensor) -> torch.Tensor:
    """Σ_k (mean_b f_real - mean_b f_fake)²: the official code's feature-matching loss of G over
    D's features before its final Linear, (..., B, F) each (first moments only)."""
    return (f_real.detach().mean(dim=-2) - f_fake.mean(dim=-2)).pow(2).sum(dim=-1)


def energy_distance(fake: torch.Tensor, real: torch.Tensor, gram: bool = False) -> torch.Tensor:
    """Energy distance between two samples, (..., B, F) and (..., B', F) (Székely & Rizzo 2013):
    2·E‖X−Y‖ − E‖X−X'‖ − E‖Y−Y'‖ over all pairs (the same-sample terms without the diagonal).

    Zero when the two samples have the same distribution and positive otherwise; as a loss of G
    (on ``fake``) its −E‖X−X'‖ term pushes G's samples apart, so it matches the data's spread as
    well as its location (EGO's objective, here beside the adversarial loss). Gradients reach
    ``fake`` only. ``gram``: squared distances from inner products, ‖a‖² + ‖b‖² − 2a·b, in
    float64 (memory O(B·B') instead of O(B·B'·F), equal up to rounding; for large batches —
    the default keeps the published runs' arithmetic). Returns (...).
    """
    real = real.detach()

    def mean_distance(a: torch.Tensor, b: torch.Tensor, same: bool) -> torch.Tensor:
        if gram:  # in float64: ‖a‖² + ‖b‖² − 2a·b cancels for close pairs, the ones that matter
            wide = torch.float32 if a.device.type == "mps" else torch.float64  # MPS: no float64
            a64, b64 = a.to(wide), b.to(wide)
            inner = a64 @ b64.transpose(-1, -2)  # (..., B, B')
            norms = a64.pow(2).sum(-1).unsqueeze(-1) + b64.pow(2).sum(-1).unsqueeze(-2)
            d2 = (norms - 2 * inner).clamp_min(0.0).to(a.dtype)  # (..., B, B')
        else:
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


def disconnection(x: torch.Tensor, adj: torch.Tensor) -> torch.Tensor:
    """Expected number of atom pairs with no path between them, per graph, mean over graphs.

    A connectivity signal that needs neither RDKit nor a reward net: zero on every molecule of
    the data, the number of unreachable pairs of real atoms on a one-hot graph (two fragments
    of a and b atoms: a·b), and differentiable in G's soft output. Index 0 of the node types is
    the pad atom and index 0 of the bond types is "no bond". With p_ij the probability of a bond
    between real atoms i and j, reachability r starts at r = I + p and is composed with itself,
    r_ij <- 1 - Π_k (1 - r_ik r_kj), until paths of N - 1 bonds are covered; a pair counts by
    exists_i · exists_j · (1 - r_ij). On one-hot graphs this is exact (breadth-first search); on
    soft ones it treats paths as independent, so it rewards raising every bond of a path.

    Args:
        x: node type probabilities (..., B, N, T); adj: bond type probabilities
            (..., B, N, N, R).

    Returns:
        Scalar, (...) with leading axes.
    """
    n = x.shape[-2]
    exists = 1.0 - x[..., 0]  # (..., B, N)
    pair = exists[..., :, None] * exists[..., None, :]  # (..., B, N, N)
    eye = torch.eye(n, dtype=x.dtype, device=x.device)
    reach = torch.maximum((1.0 - adj[..., 0]) * pair, eye)  # (..., B, N, N)
    hops = 1
    while hops < n - 1:
        # P(no path i -> k -> j) over every k, as a sum of logs for a stable gradient
        miss = reach[..., :, :, None] * reach[..., None, :, :]  # (..., B, N, N, N): i, k, j
        log_miss = torch.log1p(-miss.clamp(max=1.0 - 1e-6)).sum(dim=-2)  # (..., B, N, N)
        reach = 1.0 - torch.exp(log_miss)
        hops *= 2
    unreached = pair * (1.0 - reach) * (1.0 - eye)  # (..., B, N, N), each pair twice
    return unreached.sum(dim=(-2, -1)).mean(dim=-1) / 2


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
    diversity: float | torch.Tensor = 0.0,
    feature_gap: torch.Tensor | None = None,
    d_real: torch.Tensor | None = None,
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
        diversity: weight w of a bonus on the spread of critic scores over the fake batch:
            L_WGAN - w·Var(D(fake)) (ALMGIG's variance penalty with a negative weight); or one
            weight per member, (K,).
        feature_gap: replaces L_WGAN when given (the official feature matching; see
            ``feature_matching``).
        d_real: D(real), (..., B, 1): the adversarial term is then the relativistic pairing
            loss (``relativistic_g``) instead of WGAN's.
    """
    if feature_gap is not None:
        wgan = feature_gap
    elif d_real is not None:
        wgan = relativistic_g(d_fake, d_real)
    else:
        wgan = wasserstein_g(d_fake)
    # (no test of a tensor's values here: it would make the host wait for the device)
    weighted = isinstance(diversity, torch.Tensor) or diversity > 0
    if weighted and d_fake.shape[-2] > 1:
        wgan = wgan - diversity * d_fake.var(dim=(-2, -1))
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
