"""A rarity signal on G without RL: the graphs G made lately, and an unlikelihood penalty on
the ones it keeps repeating (issue 25).

``GraphMemory`` keeps each member's last ``window`` sampled graphs as 62-bit keys (a fixed
random linear hash of the argmax atom and bond types, torch only: no RDKit, no host sync, so
it runs inside a CUDA graph). ``repeat_penalty`` is the unlikelihood term (Welleck et al.
2020, "Neural text generation with unlikelihood training", against repeated tokens; here
against repeated graphs, in the spirit of EGO's rarity archive): for each sampled graph, its
share of the recent graphs times the mean log-probability G gave to its own node and bond
choices. Minimising it lowers G's confidence in the graphs it makes too often, so the same z
region lands on another graph; a graph made once adds nothing. The same molecule with its
atoms in another order is another key: the memory counts graphs, not molecules.
"""

from __future__ import annotations

import functools

import torch

_MASK = (1 << 62) - 1


def graph_keys(atoms: torch.Tensor, bonds: torch.Tensor) -> torch.Tensor:
    """62-bit keys of argmax graphs: atoms (..., N), bonds (..., N, N) -> (...,) int64; equal
    graphs get equal keys, different graphs (almost surely) different ones."""
    coef = _coefficients(atoms.shape[-1], atoms.device)  # (N + N²,)
    flat = torch.cat([atoms, bonds.flatten(-2)], dim=-1).long() + 1
    return (flat * coef).sum(-1) & _MASK  # int64 arithmetic wraps: a hash, not a sum


@functools.cache
def _coefficients(n: int, device: torch.device) -> torch.Tensor:
    """The hash's odd multipliers for N-node graphs, made once per (N, device): fixed, so keys
    mean the same across runs, and never copied to the device inside a captured step."""
    gen = torch.Generator().manual_seed(1729)
    coef = torch.randint(1, 2**62, (n + n * n,), generator=gen, dtype=torch.int64)
    return (coef | 1).to(device)


class GraphMemory:
    """The last ``window`` graph keys of each of ``members`` members, written in place.

    ``update(keys)`` adds a (K, B) batch and returns each graph's count among the remembered
    graphs and the batch itself (itself included: 1 for a graph seen once)."""

    def __init__(self, members: int, window: int, device=None) -> None:
        if window < 1:
            raise ValueError(f"window must be ≥ 1, got {window}")
        self.window = window
        self.keys = torch.full((members, window), -1, dtype=torch.int64, device=device)
        self.pos = torch.zeros((), dtype=torch.int64, device=device)

    def update(self, keys: torch.Tensor) -> torch.Tensor:
        """keys (K, B) -> counts (K, B) float."""
        seen = (self.keys[:, None, :] == keys[:, :, None]).sum(-1)  # (K, B)
        within = (keys[:, None, :] == keys[:, :, None]).sum(-1)  # (K, B), itself included
        B = keys.shape[1]
        slots = (self.pos + torch.arange(B, device=keys.device)) % self.window  # (B,)
        if B > self.window:  # only the batch's last `window` graphs are kept
            keys, slots = keys[:, -self.window :], slots[-self.window :]
        self.keys[:, slots] = keys
        self.pos.copy_((self.pos + B) % self.window)
        return (seen + within).float()

    def state(self) -> dict[str, torch.Tensor]:
        return {"keys": self.keys.cpu().clone(), "pos": self.pos.cpu().clone()}

    def load_state(self, state: dict[str, torch.Tensor]) -> None:
        keys = state["keys"]
        if keys.shape != self.keys.shape:
            raise ValueError(
                f"the checkpoint's graph memory is {tuple(keys.shape)}, "
                f"this run's {tuple(self.keys.shape)}"
            )
        self.keys.copy_(keys)
        self.pos.copy_(state["pos"])


def choice_log_prob(
    x_logits: torch.Tensor,
    adj_logits: torch.Tensor,
    atoms: torch.Tensor,
    bonds: torch.Tensor,
    tau: float = 1.0,
) -> torch.Tensor:
    """Mean log-probability (softmax at temperature ``tau``) of a graph's own choices over its
    N node slots and N(N−1)/2 atom pairs: logits (..., N, T), (..., N, N, R); choices
    (..., N), (..., N, N) -> (...,)."""
    n = atoms.shape[-1]
    node = torch.log_softmax(x_logits / tau, -1).gather(-1, atoms[..., None])[..., 0]
    edge = torch.log_softmax(adj_logits / tau, -1).gather(-1, bonds[..., None])[..., 0]
    upper = torch.triu(torch.ones(n, n, dtype=torch.bool, device=atoms.device), diagonal=1)
    pairs = n * (n - 1) // 2
    return (node.sum(-1) + edge[..., upper].sum(-1)) / (n + pairs)


def repeat_penalty(log_prob: torch.Tensor, counts: torch.Tensor, window: int) -> torch.Tensor:
    """The unlikelihood term per member: mean over the batch of (count − 1) / window ×
    −log(1 − p), p = exp(the graph's mean log-probability); log_prob, counts (K, B) -> (K,).
    Zero for a batch of graphs not seen before; its gradient lowers the probability of the
    repeated ones, and fades as that probability goes to 0 (unlike −log p, it is bounded)."""
    share = (counts - 1.0).clamp(min=0.0) / window  # (K, B), no gradient
    p = log_prob.exp().clamp(max=1.0 - 1e-6)
    return (share * -torch.log1p(-p)).mean(-1)
