"""G pre-trained as the decoder of a VAE before adversarial training (``Config.pretrain``).

An MLP ``Encoder`` reads a training graph (its atom one-hots and the one-hots of its bonds
above the diagonal) and gives a Gaussian code; G decodes the code [with the graph's class
vector] back to the graph, trained by cross-entropy on each node's type and each pair's bond
plus β · KL(code ‖ N(0, I)) per variable (``decoder_loss``; β ramped up over the first half).
The encoder is then dropped: training goes on from G's weights, sampling draws z ~ N(0, I) as
before, one forward pass per molecule. Why: G spells MOSES's molecules when trained as a
decoder, where adversarial training from scratch never reached them (``tools/decoder_probe.py``,
docs/results.md). Keeping the encoder and this loss as a term of G during adversarial training
(VAE-GAN, round 37) lost; its last commit is named in docs/ablation.md.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from molgan import conditioning
from molgan.layers import mlp
from molgan.population import Population, stack

BATCH = 128  # graphs per pre-training step
ENCODER = (1024, 512)  # the encoder's hidden sizes (ReLU)
LR = 1e-3  # Adam's learning rate for G and the encoder (training's own lr may be lower)


class Encoder(nn.Module):
    """q(z | graph): x (..., N, T) and adj (..., N, N, R) one-hots (or probabilities) ->
    ``(mu, logvar)``, (..., Z) each; ``mu`` is layer-normed (a code of norm ~√Z, as z ~ N(0, I)).

    Args:
        N, T, R: graph size and vocabulary sizes.
        z_dim: the code's size (G's latent size).
        dims: hidden sizes (ReLU).
    """

    def __init__(self, N: int, T: int, R: int, z_dim: int, dims=ENCODER):
        super().__init__()
        upper = torch.triu(torch.ones(N, N, dtype=torch.bool), 1)  # (N, N): each pair once
        self.register_buffer("upper", upper, persistent=False)
        self.variables = N + int(upper.sum())  # atom and pair variables a graph has
        self.body = mlp((N * T + int(upper.sum()) * R, *dims), act=nn.ReLU)
        self.head = nn.Linear(dims[-1], 2 * z_dim)

    def forward(self, x: torch.Tensor, adj: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        flat = torch.cat([x.flatten(-2), adj[..., self.upper, :].flatten(-2)], -1)
        mu, logvar = self.head(self.body(flat)).chunk(2, -1)  # (..., Z) each
        return F.layer_norm(mu, mu.shape[-1:]), logvar


def decoder_loss(
    encoder: Encoder,
    generator: nn.Module,
    x: torch.Tensor,
    adj: torch.Tensor,
    cond: torch.Tensor | None,
    noise: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """G's reconstruction of the graphs x (..., B, N, T), adj (..., B, N, N, R) (one-hots)
    from their codes ``mu + noise · σ`` (``noise`` (..., B, Z)), [with classes ``cond``].

    Returns:
        ``(atoms, bonds, kl)``, each (...,): the mean cross-entropy per node and per pair
        above the diagonal, and the mean KL per graph divided by its variables (nodes + pairs).
    """
    mu, logvar = encoder(x, adj)
    out = generator(mu + noise * (0.5 * logvar).exp(), cond)
    upper = encoder.upper
    atoms = _cross_entropy(out.x_logits, x)  # (...,)
    bonds = _cross_entropy(out.adj_logits[..., upper, :], adj[..., upper, :])  # (...,)
    kl = 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum(-1).mean(-1)  # (...,)
    return atoms, bonds, kl / encoder.variables


def _cross_entropy(logits: torch.Tensor, one_hot: torch.Tensor) -> torch.Tensor:
    """Mean -log p(target) over the last two axes but one, (..., B, V, C) -> (...,). Gathers
    the target's log-probability: the logits G rules out (-inf: the size mask, the diagonal)
    never meet a zero weight (0 · -inf is NaN)."""
    target = one_hot.argmax(-1, keepdim=True)  # (..., B, V, 1)
    return -logits.log_softmax(-1).gather(-1, target).squeeze(-1).mean((-2, -1))


def pretrain_decoder(
    generator: torch.nn.Module,
    atoms: torch.Tensor,
    bonds: torch.Tensor,
    *,
    steps: int,
    beta: float,
    seed: int | Sequence[int],
    lr: float = LR,
    encoder: Encoder | None = None,
    encoder_dims: tuple[int, ...] = ENCODER,
    device=None,
    verbose: bool = False,
) -> dict[str, float]:
    """Train ``generator`` in place as a VAE's decoder of the graphs ``atoms`` (M, N) and
    ``bonds`` (M, N, N) (type indices) for ``steps`` steps of ``BATCH`` (β ramped up to
    ``beta`` over the first half).

    ``seed`` an int: ``generator`` is a single ``Generator``; a sequence of K seeds: it is a
    population's stacked one (``molgan.population``) and member k draws its batches and noise
    from seed k, as it would alone (one Adam over stacked weights is K Adams). ``encoder``:
    one to train with G in place (stacked for a population); ``None`` = new ones of
    ``encoder_dims``, member k's seeded from its seed, dropped afterwards. A
    conditional G is given each graph's class vector. All randomness comes from the seeds
    (drawn on the host: the same weights on any ``device``, to rounding); the nets are moved
    to ``device`` for the work and back.

    Returns:
        The last step's losses (mean over members): ``atoms`` and ``bonds`` (cross-entropy per
        variable) and ``kl`` (per code).
    """
    seeds = [seed] if isinstance(seed, int) else list(seed)
    gens = [torch.Generator().manual_seed(s) for s in seeds]
    M, N = atoms.shape
    T, R, Z = generator.T, generator.R, generator.z_dim
    if encoder is None:  # member k's from seed k, as a single run's (the global RNG untouched)
        encoders = []
        for s in seeds:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(s)
                encoders.append(Encoder(N, T, R, Z, encoder_dims))
        encoder = encoders[0] if isinstance(seed, int) else stack(encoders)
    home = next(generator.parameters()).device
    for net in (generator, encoder):
        net.to(device or home)
    atoms, bonds = atoms.to(device or home), bonds.to(device or home)
    opt = torch.optim.Adam([*generator.parameters(), *encoder.parameters()], lr=lr)
    B = min(BATCH, M)
    last = {}
    for step in range(1, steps + 1):
        i, noise = [], []
        for gen in gens:  # each member's own stream, in the order a single run draws
            i.append(torch.randint(0, M, (B,), generator=gen))
            noise.append(torch.randn((B, Z), generator=gen))
        i = torch.stack(i).to(atoms.device)  # (K, B)
        x = F.one_hot(atoms[i].long(), T).float()  # (K, B, N, T)
        adj = F.one_hot(bonds[i].long(), R).float()  # (K, B, N, N, R)
        cond = conditioning.one_hot_classes(x) if generator.cond_dim else None  # (K, B, C)
        noise = torch.stack(noise).to(x.device)  # (K, B, Z)
        loss_x, loss_e, kl = decoder_loss(encoder, generator, x, adj, cond, noise)  # (K,)
        loss = loss_x + loss_e + beta * min(1.0, 2 * step / steps) * kl
        opt.zero_grad(set_to_none=True)
        loss.sum().backward()
        opt.step()
        if step == steps or (verbose and step % 500 == 0):  # reads the device: not every step
            parts = (loss_x, loss_e, kl * encoder.variables)
            last = {
                k: v.mean().item() for k, v in zip(("atoms", "bonds", "kl"), parts, strict=True)
            }
        if verbose and (step % 500 == 0 or step == steps):
            text = " | ".join(f"{k} {v:.4f}" for k, v in last.items())
            print(f"pretrain {step}/{steps} | {text}", file=sys.stderr)
    for net in (generator, encoder):
        net.zero_grad(set_to_none=True)
        net.to(home)
    return last


def pretrain_members(
    population: Population,
    atoms: torch.Tensor,
    bonds: torch.Tensor,
    *,
    steps: int,
    beta: float,
    seeds: Sequence[int],
    device=None,
    verbose: bool = False,
) -> None:
    """Every member's G of ``population`` pre-trained at once (``pretrain_decoder`` over the
    stacked G; member k from ``seeds[k]``, as a single run of that seed); the EMA copy is set
    to the result."""
    pretrain_decoder(
        population.generator, atoms, bonds, steps=steps, beta=beta, seed=seeds,
        device=device, verbose=verbose,
    )  # fmt: skip
    if population.generator_ema is not None:
        population.generator_ema.load_state_dict(population.generator.state_dict())
