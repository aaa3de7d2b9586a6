"""Coarse molecule classes for a conditional MolGAN (the ``condition`` setting; issue 10).

A graph's class is its heavy-atom count (1..N) and the set of elements it holds (a bit per
non-pad atom type). G and D both see the class as a vector, count one-hot (N) then element bits
(T - 1); fakes are asked for the classes of the real batch beside them, so D learns what each
class looks like and G cannot drop a class: every class is asked for as often as the data holds
it. Sampling draws classes from the training split's own frequencies (``ClassPrior``).

Torch only: classes are read off atom-type indices (index 0 = no atom).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

MAX_CLASSES = 10_000_000  # the prior's count table; larger vocabularies need coarser classes


def class_dim(num_nodes: int, num_atom_types: int) -> int:
    """Length C of a class vector: N count slots + (T - 1) element bits."""
    return num_nodes + num_atom_types - 1


def num_classes(num_nodes: int, num_atom_types: int) -> int:
    """K, the number of class indices: N · 2^(T-1)."""
    return num_nodes * 2 ** (num_atom_types - 1)


def class_index(atoms: torch.Tensor, num_atom_types: int) -> torch.Tensor:
    """Atom-type indices (B, N) -> class indices (B,) in [0, K): (count - 1) · 2^(T-1) +
    Σ_t 2^(t-1) [type t present]; an empty graph counts as 1 atom (it never occurs in the
    data: every molecule has one)."""
    atoms = atoms.long()
    types = torch.arange(1, num_atom_types, device=atoms.device)  # (T-1,)
    per_type = (atoms[:, :, None] == types).sum(dim=1)  # (B, T-1)
    count = per_type.sum(dim=1).clamp(min=1)  # (B,)
    return (count - 1) * 2 ** (num_atom_types - 1) + _element_bits(per_type)


def _element_bits(per_type: torch.Tensor) -> torch.Tensor:
    """Element counts (B, T-1) -> element-set bits (B,): 2^(t-1) for each type t present."""
    shifts = torch.arange(per_type.shape[1], device=per_type.device)  # (T-1,)
    return ((per_type > 0).long() << shifts).sum(dim=1)


def count_and_elements(
    index: torch.Tensor, num_nodes: int, num_atom_types: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Class indices (B,) -> (heavy-atom counts (B,), element bits (B,): 2^(t-1) per type t)."""
    per_count = 2 ** (num_atom_types - 1)
    return torch.div(index, per_count, rounding_mode="floor") + 1, index % per_count


def class_vectors(index: torch.Tensor, num_nodes: int, num_atom_types: int) -> torch.Tensor:
    """Class indices (B,) -> float class vectors (B, C): count one-hot, then element bits."""
    count, bits = count_and_elements(index, num_nodes, num_atom_types)  # (B,), (B,)
    shifts = torch.arange(num_atom_types - 1, device=index.device)  # (T-1,)
    present = (bits[:, None] >> shifts) & 1  # (B, T-1)
    counts = nn.functional.one_hot(count - 1, num_nodes)  # (B, N)
    return torch.cat([counts, present], dim=1).float()  # (B, C)


def one_hot_classes(x: torch.Tensor) -> torch.Tensor:
    """Class vectors (..., B, C) of a batch of node one-hots (..., B, N, T)."""
    N, T = x.shape[-2:]
    atoms = x.argmax(dim=-1).reshape(-1, N)  # (∏..., N)
    vectors = class_vectors(class_index(atoms, T), N, T)  # (∏..., C)
    return vectors.reshape(*x.shape[:-2], -1)  # (..., B, C)


def balance_weights(atoms: torch.Tensor, num_atom_types: int, power: float) -> torch.Tensor:
    """Sampling weights (M,) of graphs' atom indices (M, N): freq(class)^-power, so that with
    power 1 every class is drawn equally often and with 0 every graph."""
    index = class_index(atoms, num_atom_types)  # (M,)
    _, inverse, freq = torch.unique(index, return_inverse=True, return_counts=True)
    return freq[inverse].double().pow(-power)  # (M,)


class ClassPrior(nn.Module):
    """How often each class occurs in the training split; sampling draws classes from it.

    Its counts are a buffer, so they travel in the model's state dict and checkpoint.
    """

    def __init__(self, num_nodes: int, num_atom_types: int) -> None:
        super().__init__()
        self.N, self.T = num_nodes, num_atom_types
        count = num_classes(num_nodes, num_atom_types)
        if count > MAX_CLASSES:
            raise ValueError(
                f"{num_nodes} atoms and {num_atom_types - 1} atom types make {count:.3g} "
                f"classes (at most {MAX_CLASSES:,})"
            )
        self.register_buffer("counts", torch.zeros(count))

    @torch.no_grad()
    def fit(self, atoms: torch.Tensor, weights: torch.Tensor | None = None) -> ClassPrior:
        """Count the classes of training graphs' atom indices (M, N), each graph with its
        sampling weight (M,) when given (1 each otherwise)."""
        index = class_index(atoms, self.T).to(self.counts.device)
        if weights is None:
            weights = torch.ones_like(index, dtype=torch.float)
        self.counts.zero_().index_add_(0, index, weights.to(self.counts))
        return self

    def sample(
        self,
        n: int,
        generator: torch.Generator | None = None,
        *,
        heavy_atoms: int | None = None,
        elements: tuple[int, ...] | None = None,
    ) -> torch.Tensor:
        """n class vectors (n, C) drawn with the training frequencies (on the CPU), only from
        the classes with ``heavy_atoms`` heavy atoms and exactly the atom types ``elements``
        (type indices) when given.

        Raises:
            ValueError: the prior was never fitted (all counts zero), or no training molecule
                is of the class asked for.
        """
        counts = self.counts.detach().cpu()
        if not counts.sum() > 0:
            raise ValueError("this conditional model's class frequencies were never fitted")
        counts = counts * self.mask(heavy_atoms, elements)
        if not counts.sum() > 0:
            raise ValueError("no training molecule is of the class asked for")
        index = torch.multinomial(counts, n, replacement=True, generator=generator)  # (n,)
        return class_vectors(index, self.N, self.T)

    def mask(
        self, heavy_atoms: int | None = None, elements: tuple[int, ...] | None = None
    ) -> torch.Tensor:
        """(K,) 1/0: the classes with ``heavy_atoms`` heavy atoms and exactly ``elements``."""
        index = torch.arange(len(self.counts))
        count, bits = count_and_elements(index, self.N, self.T)  # (K,), (K,)
        keep = torch.ones_like(index, dtype=torch.bool)
        if heavy_atoms is not None:
            keep &= count == heavy_atoms
        if elements is not None:
            keep &= bits == sum(1 << (t - 1) for t in set(elements))
        return keep.float()


def class_request(
    prior: ClassPrior | None,
    atom_types: tuple[str, ...],
    heavy_atoms: int | None = None,
    elements: str | Sequence[str] | None = None,
) -> dict:
    """Check a class asked of a conditional model: ``heavy_atoms`` in 1..N, ``elements`` atom
    symbols (``"C,O"`` or a list; exactly this set) -> ``ClassPrior.sample`` keywords.

    Raises:
        ValueError: no prior (the model is not conditional), a bad count, an unknown element,
            or a class no training molecule is of.
    """
    if prior is None:
        raise ValueError(
            "this model is not conditional: only a model trained with --condition samples "
            "a given heavy-atom count or element set"
        )
    if heavy_atoms is not None:
        if isinstance(heavy_atoms, bool) or not isinstance(heavy_atoms, (int, np.integer)):
            raise ValueError(f"heavy_atoms must be an integer, got {heavy_atoms!r}")
        if not 1 <= heavy_atoms <= prior.N:
            raise ValueError(f"heavy_atoms must be in [1, {prior.N}], got {heavy_atoms}")
    types = None
    if elements is not None:
        symbols = elements.split(",") if isinstance(elements, str) else list(elements)
        symbols = [str(e).strip() for e in symbols if str(e).strip()]
        known = atom_types[1:]
        if not symbols or any(e not in known for e in symbols):
            raise ValueError(
                f"elements must be atom symbols of this model ({', '.join(known)}), "
                f"got {elements!r}"
            )
        types = tuple(atom_types.index(e) for e in symbols)
    request = {"heavy_atoms": heavy_atoms, "elements": types}
    if not (prior.counts.cpu() * prior.mask(**request)).sum() > 0:
        parts = [f"{heavy_atoms} heavy atoms"] if heavy_atoms is not None else []
        if types is not None:
            parts.append("exactly the elements " + ",".join(atom_types[t] for t in types))
        raise ValueError(f"no training molecule has {' and '.join(parts)}")
    return request
