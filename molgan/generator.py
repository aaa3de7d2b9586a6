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

    @torch.no_grad()
    def start_at(self, x_prior: torch.Tensor, adj_prior: torch.Tensor) -> None:
        """Set the output layers' biases to log-frequencies (``marginal_logits``: (N, T) and
        (N, N, R)), so that G's first graphs follow the data's marginals instead of being
        dense random graphs (``Config.marginal_init``). The weights are kept; no random
        numbers are drawn."""
        self.node_head.bias.copy_(x_prior.flatten())
        self.edge_head.bias.copy_(adj_prior.flatten())

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


def marginal_logits(
    atoms: torch.Tensor, bonds: torch.Tensor, num_atom_types: int, num_bond_types: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """log P(node i has type t) (N, T) and log P(pair i, j has bond type r) (N, N, R) over
    graphs ``atoms`` (M, N) and ``bonds`` (M, N, N), each with one pseudo-count per type
    (Laplace), so that no type is ruled out."""
    m = atoms.shape[0]
    x_count = torch.stack([(atoms == t).sum(0) for t in range(num_atom_types)], -1)  # (N, T)
    adj_count = torch.zeros(*bonds.shape[1:], num_bond_types, dtype=torch.long)  # (N, N, R)
    for start in range(0, m, 65536):  # bool masks of a chunk at a time: MOSES is 1.6M graphs
        chunk = bonds[start : start + 65536]
        for r in range(num_bond_types):
            adj_count[..., r] += (chunk == r).sum(0)
    x_prior = ((x_count + 1.0) / (m + num_atom_types)).log()
    return x_prior, ((adj_count + 1.0) / (m + num_bond_types)).log()


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


EDGE_HEAD = ("edge_head.weight", "edge_head.bias")


def fold_edges(state: dict, num_nodes: int, num_bond_types: int) -> dict:
    """G's state dict with its edge head kept only above the diagonal: rows (i < j, r) of
    (W + Wᵀ)/2, where Wᵀ swaps the atom pair. ``forward`` uses exactly this symmetric part
    and masks the diagonal, so ``unfold_edges`` restores a head of the same graphs (to
    float rounding) from N(N-1)/2 of the N² pairs: a sampling file about half as large."""
    i, j = torch.triu_indices(num_nodes, num_nodes, offset=1)
    out = dict(state)
    for key in EDGE_HEAD:
        v = state[key].unflatten(0, (num_nodes, num_nodes, num_bond_types))  # (N, N, R, ...)
        out[key] = ((v + v.transpose(0, 1)) / 2)[i, j].flatten(0, 1)  # (N(N-1)/2·R, ...)
    return out


def unfold_edges(state: dict, num_nodes: int, num_bond_types: int) -> dict:
    """The inverse of ``fold_edges``: a full symmetric edge head (diagonal rows zero)."""
    i, j = torch.triu_indices(num_nodes, num_nodes, offset=1)
    out = dict(state)
    for key in EDGE_HEAD:
        pairs = state[key].unflatten(0, (len(i), num_bond_types))  # (N(N-1)/2, R, ...)
        full = pairs.new_zeros(num_nodes, num_nodes, *pairs.shape[1:])  # (N, N, R, ...)
        full[i, j] = pairs
        full[j, i] = pairs
        out[key] = full.flatten(0, 2)
    return out


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


def softmax(logits: torch.Tensor) -> torch.Tensor:
    """``torch.softmax(logits, -1)`` as exp-normalise: the same values to rounding (≤ 1 ulp),
    4-5x faster on a CPU for the short last axes here (R = 4 bond types: torch's kernel is
    slow for them; 1.4 against 3.2 ms forward at N = 27, batch 32, one thread)."""
    e = (logits - logits.detach().amax(dim=-1, keepdim=True)).exp()  # the shift has no gradient
    return e / e.sum(dim=-1, keepdim=True)


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
        return softmax(logits / tau)
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; choose from {MODES}")
    if noise is None:
        raise ValueError(f"mode {mode!r} needs Gumbel noise")
    soft = softmax((logits + noise) / tau)
    if mode == "gumbel":
        return soft
    hard = nn.functional.one_hot(soft.argmax(dim=-1), logits.shape[-1]).to(soft.dtype)
    return hard + soft - soft.detach()
