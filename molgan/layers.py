"""Graph layers of the MolGAN discriminator and reward network (torch only, dense batched).

Inputs follow the ``molgan.data`` conventions: node features (B, N, F) and a bond tensor
``adj`` (B, N, N, R) whose channel 0 ("no bond") is ignored. Every layer also takes leading axes
before B (a population's member axis K, ``molgan.population``): batch statistics are per member.
Paper §3.3, Eq. 1 (relational GCN, Schlichtkrull et al. 2018) and Eq. 2-3 (gated sum
aggregation, Li et al. 2016).
"""

from __future__ import annotations

import torch
from torch import nn


def mlp(dims: list[int] | tuple[int, ...], dropout: float = 0.0, act=nn.Tanh) -> nn.Sequential:
    """Linear -> act -> dropout for each consecutive pair in ``dims`` (every layer activated)."""
    layers: list[nn.Module] = []
    for d_in, d_out in zip(dims[:-1], dims[1:], strict=False):
        layers.append(nn.Linear(d_in, d_out))
        layers.append(act())
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers)


class RelationalGraphConv(nn.Module):
    """Dense relational graph convolution with separate weights per bond type.

    h'_i = W_0 h_i + b_0 + Σ_{r=1..R-1} Σ_j adj_ijr (W_r h_j + b_r)       (no activation here)

    As in the official TF layer each relation has its own bias, which the sum over neighbours
    adds once per bond; ``normalize=True`` divides the neighbour sum by the degree (the paper's
    1/|N_i|), which the official code does not do.

    Args:
        in_dim: F_in.
        out_dim: F_out.
        num_relations: R including the "no bond" channel 0 (which gets no weights).
        normalize: divide the message sum by max(degree, 1).
        bias: give the self and relation maps a bias.
    """

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        num_relations: int,
        normalize: bool = False,
        bias: bool = True,
    ) -> None:
        super().__init__()
        self.in_dim, self.out_dim, self.num_relations = in_dim, out_dim, num_relations
        self.normalize = normalize
        self.self_loop = nn.Linear(in_dim, out_dim, bias=bias)
        self.relations = nn.Linear(in_dim, out_dim * (num_relations - 1), bias=bias)
        # the same sum in the cheaper order: N²·F_in instead of N²·F_out aggregation work
        self.aggregate_first = in_dim < out_dim

    def forward(self, h: torch.Tensor, adj: torch.Tensor) -> torch.Tensor:
        """h (..., B, N, F_in), adj (..., B, N, N, R) -> (..., B, N, F_out)."""
        if self.aggregate_first:
            out = self._aggregate_first(h, adj[..., 1:])
        else:
            messages = self.relations(h)  # (..., B, N, (R-1)·F), relation-major per node
            messages = messages.unflatten(-1, (self.num_relations - 1, self.out_dim))
            edges = adj[..., 1:].flatten(-2)  # (..., B, N, N·(R-1)): column j·(R-1) + r
            out = edges @ messages.flatten(-3, -2)  # (..., B, N, F): Σ_j Σ_r adj_ijr m_jr
        if self.normalize:
            out = out / adj[..., 1:].sum(dim=(-2, -1)).clamp(min=1.0).unsqueeze(-1)
        return out + self.self_loop(h)

    def _aggregate_first(self, h: torch.Tensor, edges: torch.Tensor) -> torch.Tensor:
        """Σ_r (A_r h) W_r + Σ_r deg_r b_r: the same sum as messages-first, computed with the
        neighbour sums of the F_in inputs (cheaper when F_in < F_out, as in the first layer);
        edges (..., B, N, N, R-1). The relation weights are read from ``self.relations``, an
        ``nn.Linear`` or a population's stacked Linear (weights (K, F_in, (R-1)·F_out))."""
        r1, n = self.num_relations - 1, h.shape[-2]
        a = edges.movedim(-1, -2).flatten(-3, -2)  # (..., B, N·(R-1), N): row i·(R-1) + r
        summed = (a @ h).unflatten(-2, (n, r1)).flatten(-2)  # (..., B, N, (R-1)·F_in)
        parts = [summed]
        weight = self.relations.weight
        if weight.dim() == 2:  # nn.Linear: ((R-1)·F_out, F_in) -> ((R-1)·F_in, F_out)
            w = weight.view(r1, self.out_dim, self.in_dim).transpose(1, 2)
            w = w.reshape(r1 * self.in_dim, self.out_dim)
        else:  # stacked: (K, F_in, (R-1)·F_out) -> (K, (R-1)·F_in, F_out)
            w = weight.view(-1, self.in_dim, r1, self.out_dim).transpose(1, 2)
            w = w.reshape(-1, r1 * self.in_dim, self.out_dim)
        bias = self.relations.bias
        if bias is not None:  # each bond adds its relation's bias: Σ_r deg_ir b_r
            parts.append(edges.sum(-2))  # (..., B, N, R-1)
            w = torch.cat([w, bias.reshape(*w.shape[:-2], r1, self.out_dim)], dim=-2)
        x = torch.cat(parts, dim=-1) if len(parts) > 1 else summed  # (..., B, N, X)
        if w.dim() == 2:
            return x @ w
        K = w.shape[0]
        out = torch.bmm(x.reshape(K, -1, x.shape[-1]), w)  # (K, B·N, F_out)
        return out.view(*x.shape[:-1], self.out_dim)

    def extra_repr(self) -> str:
        return f"{self.in_dim}, {self.out_dim}, num_relations={self.num_relations}"


class GraphAggregation(nn.Module):
    """Gated sum over nodes: h_G = tanh(Σ_i σ(W_g a_i) ⊙ tanh(W_f a_i)) (paper Eq. 3).

    Args:
        in_dim: F of the node features a_i.
        out_dim: size of the graph embedding.
    """

    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.gate = nn.Linear(in_dim, out_dim)
        self.feature = nn.Linear(in_dim, out_dim)

    def forward(self, a: torch.Tensor) -> torch.Tensor:
        """a (..., B, N, F) -> (..., B, out_dim)."""
        gated = torch.sigmoid(self.gate(a)) * torch.tanh(self.feature(a))  # (..., B, N, out_dim)
        return torch.tanh(gated.sum(dim=-2))
