"""The generator (actor) and what the discriminator sees of a graph.

The generator maps z (B, Z) [and a class vector (B, C)] to node logits (B, N, T) and symmetric
edge logits (B, N, N, R) whose diagonal is forced to "no bond" (paper §3). ``discretize`` turns
logits into D's input (softmax, Gumbel-softmax or straight-through one-hots), ``gumbel_noise``
draws the noise of sampling, and ``noisy_one_hot`` blurs real one-hots (a remedy).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from molgan.layers import mlp

MODES = ("softmax", "gumbel", "hard_gumbel")


class GeneratorOutput(NamedTuple):
    """Logits of one generated batch: ``x_logits`` (B, N, T), ``adj_logits`` (B, N, N, R)."""

    x_logits: torch.Tensor
    adj_logits: torch.Tensor


class Generator(nn.Module):
    """z -> MLP (tanh) -> node and edge logits.

    Args:
        z_dim: Z.
        hidden: MLP hidden sizes, e.g. (128, 256, 512).
        num_nodes: N.
        num_atom_types: T (index 0 = no atom).
        num_bond_types: R (index 0 = no bond).
        dropout: dropout after each hidden layer.
        cond_dim: length C of a class vector appended to z (0 = unconditional; see
            ``molgan.conditioning``).
        noise: std of the Gaussian noise added to each hidden layer's activation, in training
            and in sampling (noise injection, SPECTRE's ``noisy_gen``); 0 = off.
        norm: normalise each hidden layer's pre-activation (LayerNorm without parameters).
        node_noise: D, the size of a standard normal vector u_i drawn for every node i of
            every graph, in training and sampling; node logits get A u_i and the bond logits of
            (i, j) get B (u_i ⊙ u_j) (A, B learnt, no bias): noise G can use to vary one atom
            and its bonds together, apart from the rest of the graph; 0 = off.
        residual: every hidden layer after the first adds a linear map (no bias) of its input
            to its activation: h_l = tanh(W_l h_(l-1) + b_l) + P_l h_(l-1).
    """

    def __init__(
        self,
        z_dim: int,
        hidden: tuple[int, ...],
        num_nodes: int,
        num_atom_types: int,
        num_bond_types: int,
        dropout: float = 0.0,
        cond_dim: int = 0,
        noise: float = 0.0,
        norm: bool = False,
        node_noise: int = 0,
        residual: bool = False,
    ) -> None:
        super().__init__()
        self.z_dim, self.N, self.T, self.R = z_dim, num_nodes, num_atom_types, num_bond_types
        self.cond_dim, self.noise, self.hidden = cond_dim, noise, tuple(hidden)
        self.body = mlp((z_dim + cond_dim, *hidden), dropout, norm=norm)
        self.skips = None
        if residual:
            pairs = zip(hidden[:-1], hidden[1:], strict=True)
            self.skips = nn.ModuleList(nn.Linear(a, b, bias=False) for a, b in pairs)
        self.node_head = nn.Linear(hidden[-1], num_nodes * num_atom_types)
        self.edge_head = nn.Linear(hidden[-1], num_nodes * num_nodes * num_bond_types)
        self.node_noise = node_noise
        if node_noise:
            self.noise_atoms = nn.Linear(node_noise, num_atom_types, bias=False)
            self.noise_bonds = nn.Linear(node_noise, num_bond_types, bias=False)
        diagonal = torch.eye(num_nodes, dtype=torch.bool)[..., None].expand(-1, -1, num_bond_types)
        channel = torch.arange(num_bond_types) > 0
        self.register_buffer("self_bond", diagonal & channel, persistent=False)  # (N, N, R)

    def forward(
        self,
        z: torch.Tensor,
        cond: torch.Tensor | None = None,
        hidden_noise: list[torch.Tensor] | None = None,
        node_eps: torch.Tensor | None = None,
    ) -> GeneratorOutput:
        """z (..., B, Z) [and class vectors cond (..., B, C)] -> ``GeneratorOutput``; edge logits
        symmetric with no self-bonds. With ``noise`` > 0, ``hidden_noise`` gives the standard
        normal draws of the hidden layers, (B, H_l) each; with ``node_noise``, ``node_eps``
        gives the nodes' draws u, (..., B, N, D) (default: drawn here)."""
        h = z if cond is None else torch.cat([z, cond], dim=-1)  # (B, Z + C)
        if not self.noise and self.skips is None:
            h = self.body(h)  # (B, H)
        else:
            layer, inputs = 0, h
            for module in self.body:
                if hasattr(module, "in_features"):  # a Linear (or a population's stacked one)
                    inputs = h  # this layer's input, (B, H_(l-1))
                h = module(h)
                if isinstance(module, nn.Tanh):  # after each hidden layer's activation
                    if self.skips is not None and layer > 0:
                        h = h + self.skips[layer - 1](inputs)  # (B, H_l)
                    if self.noise:
                        eps = torch.randn_like(h) if hidden_noise is None else hidden_noise[layer]
                        h = h + self.noise * eps.to(h.device)  # (B, H_l)
                    layer += 1
        x_logits = self.node_head(h).unflatten(-1, (self.N, self.T))  # (..., B, N, T)
        adj_logits = self.edge_head(h).unflatten(-1, (self.N, self.N, self.R))  # (..., B, N, N, R)
        if self.node_noise:
            shape = (*z.shape[:-1], self.N, self.node_noise)
            u = torch.randn(shape, device=z.device) if node_eps is None else node_eps.to(z.device)
            x_logits = x_logits + self.noise_atoms(u)  # (..., B, N, T)
            pairs = u.unsqueeze(-2) * u.unsqueeze(-3)  # (..., B, N, N, D): symmetric in (i, j)
            adj_logits = adj_logits + self.noise_bonds(pairs)  # (..., B, N, N, R)
        adj_logits = (adj_logits + adj_logits.transpose(-3, -2)) / 2  # symmetric, as the TF code
        # Deviation from the TF code: the diagonal is masked to "no bond" (spec §6.3).
        adj_logits = adj_logits.masked_fill(self.self_bond, float("-inf"))  # (B, N, N, R)
        return GeneratorOutput(x_logits, adj_logits)


NOISE_BLOCK = 4096  # graphs per draw of sampling noise (fixes the random stream of a seed)


def gumbel_noise(
    shape: tuple[int, ...],
    *,
    symmetric: bool = False,
    generator: torch.Generator | None = None,
    device=None,
) -> torch.Tensor:
    """Standard Gumbel noise; with ``symmetric`` (shape (B, N, N, R)) the upper triangle is
    drawn and mirrored so that sampled graphs stay symmetric (the TF code draws (i, j) and
    (j, i) independently)."""
    u = torch.rand(shape, generator=generator, device=device).clamp_(1e-10, 1.0 - 1e-7)
    g = -torch.log(-torch.log(u))
    if symmetric:
        upper = torch.triu(g.movedim(-1, 1), diagonal=1)  # (B, R, N, N)
        g = (upper + upper.transpose(-1, -2)).movedim(1, -1)  # (B, N, N, R)
    return g


def discretize(
    logits: torch.Tensor, mode: str, tau: float = 1.0, noise: torch.Tensor | None = None
) -> torch.Tensor:
    """Turn logits (..., C) into what D and the reward net see, along the last axis.

    Args:
        logits: (..., C) pre-softmax scores.
        mode: ``softmax`` (probabilities), ``gumbel`` (Gumbel-softmax, soft) or ``hard_gumbel``
            (straight-through: one-hot of the Gumbel-argmax forward, Gumbel-softmax gradient).
        tau: temperature.
        noise: Gumbel noise like ``logits`` (needed for the Gumbel modes).

    Returns:
        (..., C) tensor: probabilities, or exactly one-hot for ``hard_gumbel``.
    """
    if mode == "softmax":
        return torch.softmax(logits / tau, dim=-1)
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; choose from {MODES}")
    if noise is None:
        raise ValueError(f"mode {mode!r} needs Gumbel noise")
    soft = torch.softmax((logits + noise) / tau, dim=-1)
    if mode == "gumbel":
        return soft
    hard = nn.functional.one_hot(soft.argmax(dim=-1), logits.shape[-1]).to(soft.dtype)
    return hard + soft - soft.detach()


def noisy_one_hot(
    x: torch.Tensor, adj: torch.Tensor, eps: float, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Real one-hots (B, N, T) and (B, N, N, R) mixed with ``eps`` of normalised uniform noise:
    still on the simplex, no longer exactly one-hot (so D cannot tell real from soft fakes by
    that alone). ``adj`` noise is symmetric and the diagonal stays "no bond", as generated."""
    if eps <= 0:
        return x, adj
    u = torch.rand(x.shape, generator=generator, device=x.device)  # (B, N, T)
    x = (1 - eps) * x + eps * u / u.sum(-1, keepdim=True)
    v = torch.rand(adj.shape, generator=generator, device=adj.device).movedim(-1, 1)
    v = torch.triu(v, diagonal=1)
    v = (v + v.transpose(-1, -2)).movedim(1, -1)  # (..., B, N, N, R), symmetric, zero diagonal
    mixed = (1 - eps) * adj + eps * v / v.sum(-1, keepdim=True).clamp(min=1e-12)
    diagonal = torch.eye(adj.shape[-2], dtype=torch.bool, device=adj.device)[:, :, None]
    return x, torch.where(diagonal, adj, mixed)
