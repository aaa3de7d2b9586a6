"""The generator (actor) and what the discriminator sees of a graph.

The generator maps z (B, Z) [and a class vector (B, C)] to node logits (B, N, T) and symmetric
edge logits (B, N, N, R) whose diagonal is forced to "no bond" (paper §3). ``discretize`` turns
logits into D's input (softmax, Gumbel-softmax or straight-through one-hots), ``gumbel_noise``
draws the noise of sampling.
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
        sized: make exactly the heavy-atom count the class vector asks for (its first N
            entries, a count one-hot): nodes 0..n-1 are atoms, the rest pads without bonds, as
            in the data (needs ``cond_dim`` ≥ N).
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
        sized: bool = False,
    ) -> None:
        super().__init__()
        if sized and cond_dim < num_nodes:
            raise ValueError("a sized generator needs the class vector (its atom count)")
        self.z_dim, self.N, self.T, self.R = z_dim, num_nodes, num_atom_types, num_bond_types
        self.sized = sized
        self.cond_dim, self.hidden = cond_dim, tuple(hidden)
        self.body = mlp((z_dim + cond_dim, *hidden), dropout)
        self.node_head = nn.Linear(hidden[-1], num_nodes * num_atom_types)
        self.edge_head = nn.Linear(hidden[-1], num_nodes * num_nodes * num_bond_types)
        diagonal = torch.eye(num_nodes, dtype=torch.bool)[..., None].expand(-1, -1, num_bond_types)
        channel = torch.arange(num_bond_types) > 0
        self.register_buffer("self_bond", diagonal & channel, persistent=False)  # (N, N, R)

    def forward(self, z: torch.Tensor, cond: torch.Tensor | None = None) -> GeneratorOutput:
        """z (..., B, Z) [and class vectors cond (..., B, C)] -> ``GeneratorOutput``; edge logits
        symmetric with no self-bonds."""
        h = z if cond is None else torch.cat([z, cond], dim=-1)  # (B, Z + C)
        h = self.body(h)  # (B, H)
        x_logits = self.node_head(h).unflatten(-1, (self.N, self.T))  # (..., B, N, T)
        adj_logits = self.edge_head(h).unflatten(-1, (self.N, self.N, self.R))  # (..., B, N, N, R)
        adj_logits = (adj_logits + adj_logits.transpose(-3, -2)) / 2  # symmetric, as the TF code
        # Deviation from the TF code: the diagonal is masked to "no bond" (spec §6.3).
        adj_logits = adj_logits.masked_fill(self.self_bond, float("-inf"))  # (B, N, N, R)
        if self.sized:
            x_logits, adj_logits = size_mask(x_logits, adj_logits, cond[..., : self.N])
        return GeneratorOutput(x_logits, adj_logits)


def size_mask(
    x_logits: torch.Tensor, adj_logits: torch.Tensor, count: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits that spell exactly n atoms: nodes 0..n-1 cannot be pads, nodes n.. can only be
    pads and have no bonds (logits of what is ruled out: -inf).

    Args:
        x_logits: (..., B, N, T); adj_logits: (..., B, N, N, R); count: the heavy-atom count
            as a one-hot (..., B, N) over 1..N.
    """
    atom = count.flip(-1).cumsum(-1).flip(-1) > 0.5  # (..., B, N): node i < n
    pad_type = torch.arange(x_logits.shape[-1], device=x_logits.device) == 0  # (T,)
    x_logits = x_logits.masked_fill(atom[..., None] == pad_type, float("-inf"))  # (..., B, N, T)
    pair = atom[..., :, None] & atom[..., None, :]  # (..., B, N, N)
    bond_type = torch.arange(adj_logits.shape[-1], device=adj_logits.device) > 0  # (R,)
    return x_logits, adj_logits.masked_fill(bond_type & ~pair[..., None], float("-inf"))


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
