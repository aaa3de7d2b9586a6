"""A mixture of independently trained generators, sampled as one model.

Each GAN run collapses onto its own set of favourite molecules, and runs of different seeds
share few of them (docs/ablation.md §4: three RL runs of 3,333 samples each, 1,813 + 1,918 +
1,552 distinct molecules alone, 5,240 together). Sampling from K members in turn spreads a
sample over K such sets: more distinct molecules and a lower FCD at the members' own validity.
It is still a one-step generator (one member's forward pass per molecule), with K times the
weights; multiple generators are a known remedy for mode collapse (MAD-GAN, Ghosh et al. 2018;
MGAN, Hoang et al. 2018), here without a term coupling the members.

Sample i comes from member i mod K, so every prefix of a sample is split evenly; member k
draws its molecules from its own stream, seeded by (seed, k).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from molgan import checkpoint, chem
from molgan.decoding import check_count, check_n, iter_samples, with_progress
from molgan.generator import fold_edges

if TYPE_CHECKING:
    from molgan.chem import Samples
    from molgan.conditioning import ClassPrior
    from molgan.models import MolGAN


class Mixture:
    """K trained ``MolGAN`` members (same vocabulary) that sample as one model.

    Args:
        members: the models; each must sample on its own (``MolGAN.sample``).

    Raises:
        ValueError: no members, or members with different atom or bond vocabularies or graph
            sizes (their samples would not be of one kind).
    """

    def __init__(self, members: Sequence[MolGAN]):
        self.members = list(members)
        if not self.members:
            raise ValueError("a mixture needs at least one member")
        first = self.members[0]
        for k, m in enumerate(self.members[1:], 1):
            if (m.atom_types, m.bond_types, m.sampler.N) != (
                first.atom_types,
                first.bond_types,
                first.sampler.N,
            ):
                raise ValueError(
                    f"mixture member {k} has another vocabulary or graph size than member 0 "
                    f"({m.atom_types}, N={m.sampler.N} against {first.atom_types}, "
                    f"N={first.sampler.N})"
                )

    def __len__(self) -> int:
        return len(self.members)

    @property
    def atom_types(self) -> tuple[str, ...]:
        return self.members[0].atom_types

    @property
    def bond_types(self) -> tuple[str, ...]:
        return self.members[0].bond_types

    @property
    def config(self) -> dict:
        """Member 0's settings (the members' differ at most by their seed)."""
        return self.members[0].config

    @property
    def device(self) -> torch.device:
        return self.members[0].device

    @property
    def class_prior(self) -> ClassPrior | None:
        """A conditional model's class frequencies (member 0's: the members share their data)."""
        return self.members[0].class_prior

    def class_request(
        self, heavy_atoms: int | None = None, elements: str | Sequence[str] | None = None
    ) -> dict:
        """Member 0's ``MolGAN.class_request`` (each member checks its own when sampling)."""
        return self.members[0].class_request(heavy_atoms, elements)

    def sample_graphs(
        self, n: int, *, generator: torch.Generator | None = None, batch_size: int = 4096
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(atoms (n, N), bonds (n, N, N))``: graph i from member i mod K, each member's from
        its own generator seeded by ``generator``."""
        seeds = torch.randint(0, 2**62, (len(self.members),), generator=generator).tolist()
        K, N = len(self.members), self.members[0].sampler.N
        atoms, bonds = np.zeros((n, N), np.int64), np.zeros((n, N, N), np.int64)
        for k, (member, seed) in enumerate(zip(self.members, seeds, strict=True)):
            own = torch.Generator().manual_seed(seed)
            a, b = member.sample_graphs(len(range(k, n, K)), generator=own, batch_size=batch_size)
            atoms[k::K], bonds[k::K] = a, b
        return atoms, bonds

    def to(self, device: str | torch.device) -> Mixture:
        self.members = [m.to(device) for m in self.members]
        return self

    def eval(self) -> Mixture:
        for m in self.members:
            m.eval()
        return self

    def sample(
        self, n: int, seed: int | None = None, *, progress: bool | None = None, **options
    ) -> Samples:
        """``n`` canonical SMILES (``None`` where invalid): sample i from member i mod K.

        Args:
            n, seed, progress: as ``MolGAN.sample``; ``seed`` fixes every member's stream.
            options: ``strict``, ``batch_size``, ``heavy_atoms``, ``elements``,
                ``temperature``, as ``MolGAN.sample``; the result does not depend on
                ``batch_size``.

        Raises:
            ValueError: as ``MolGAN.sample``.
        """
        check_n(n)
        parts = self.iter_samples(n, seed, **options)
        strict = options.get("strict", True)
        return chem.Samples.concat(list(with_progress(parts, n, progress)), strict=strict)

    def iter_samples(
        self,
        n: int,
        seed: int | None = None,
        *,
        strict: bool = True,
        batch_size: int = 4096,
        **options,
    ) -> Iterator[Samples]:
        """``sample`` in consecutive pieces of about ``batch_size`` molecules (each member draws
        its share of a piece; memory stays bounded; the same molecules as ``sample``);
        ``options``: ``heavy_atoms``, ``elements``, ``temperature``, ``correct``."""
        check_count("n", n, 0)
        check_count("batch_size", batch_size, 1)
        if seed is None:
            seed = int(torch.randint(0, 2**62, (1,)).item())
        check_count("seed", seed, 0, 2**64)
        K = len(self.members)
        share = -(-batch_size // K)  # each member's graphs per piece
        streams = [
            iter_samples(
                m,
                len(range(k, n, K)),
                member_seed(seed, k),
                strict=False,
                batch_size=share,
                **options,
            )
            for k, m in enumerate(self.members)
        ]
        return _interleaved(streams, strict, options.get("correct", False))


def _interleaved(streams: list[Iterator], strict: bool, corrected: bool) -> Iterator[Samples]:
    """Piece j of every member's stream woven together (member k's i-th molecule at position
    k + K·i of the piece): pieces of equal length per member make the global positions
    contiguous."""
    K = len(streams)
    while True:
        pieces = [next(s, None) for s in streams]
        pieces = [p for p in pieces if p is not None]
        if not pieces:
            return
        woven: list[str | None] = [None] * sum(len(p) for p in pieces)
        for k, p in enumerate(pieces):
            woven[k::K] = p.lenient
        yield chem.Samples(woven, strict=strict, corrected=corrected)


def member_seed(seed: int, member: int) -> int:
    """Member ``member``'s sampling seed for a mixture sample of seed ``seed``: one number in
    [0, 2**63) from both (NumPy's SeedSequence), so that no two members share a stream."""
    state = np.random.SeedSequence([int(seed), int(member)]).generate_state(1, np.uint64)
    return int(state[0] >> np.uint64(1))


def load(
    path: str | Path | None = None,
    device: str | torch.device = "cpu",
    members: Sequence[int] | None = None,
) -> Mixture:
    """Every member of a checkpoint (``members``: only these) as one ``Mixture``: a mixture
    file (``export``), a population's checkpoint (``--members K``), or ``None`` for the
    shipped model.

    Raises:
        ValueError: as ``molgan.load`` (one line), or no members chosen.
    """
    path = path if path is not None else checkpoint.pretrained()
    return of_blob(checkpoint.read(path), path, device, members)


def of_blob(
    blob: dict,
    path: str | Path,
    device: str | torch.device = "cpu",
    members: Sequence[int] | None = None,
) -> Mixture:
    """The ``Mixture`` of a checkpoint dict's members (all, or ``members``)."""
    chosen = range(checkpoint.members_of(blob)) if members is None else list(members)
    own = [checkpoint.member_blob(blob, k, path) for k in chosen]
    return Mixture([checkpoint.model_of(b, path, device) for b in own])


def sources(specs: Sequence[str | Path]) -> list[tuple[str, int]]:
    """``(checkpoint, member)`` pairs named on a command line, in order: ``PATH`` is every
    member of the file, ``PATH:0,2`` those members.

    Raises:
        ValueError: an unreadable checkpoint or a member it does not hold (one line).
    """
    out = []
    for spec in map(str, specs):
        head, sep, tail = spec.rpartition(":")
        named = sep and tail and all(p.isdigit() for p in tail.split(","))
        if sep and not named and Path(head).is_file() and not Path(spec).exists():
            raise ValueError(f"{spec}: members must be numbers like {head}:0,2, got {tail!r}")
        path = head if named else spec
        count = checkpoint.members_of(checkpoint.read(path))
        chosen = [int(k) for k in tail.split(",")] if named else range(count)
        if any(not 0 <= k < count for k in chosen):
            raise ValueError(f"{spec}: {path} has members 0..{count - 1}")
        out += [(path, k) for k in chosen]
    return out


def is_mixture(blob: dict) -> bool:
    """Whether a checkpoint dict is a mixture file (sampled as one model by default)."""
    return bool(blob.get("mixture", False))


def export(
    sources: Sequence[tuple[str | Path, int]], out: str | Path, compact: bool = False
) -> Path:
    """Write the mixture of these members (``(checkpoint, member)`` pairs) as one sampling
    file: each member's sampler (its EMA generator when it has one), its settings and step;
    no discriminator, reward network or optimiser state (it cannot be resumed). Atomic.
    ``compact``: half precision and the edge head folded (``generator.fold_edges``): under
    half the size at N = 9, 29% at N = 27; samples agree with the full file's to rounding.

    Raises:
        ValueError: an unreadable source, no such member, or members of different kinds.
    """
    blobs: dict[str, dict] = {}
    parts, models = [], []
    for path, k in sources:
        blob = blobs.setdefault(str(path), checkpoint.read(path))
        own = checkpoint.member_blob(blob, k, path)
        model = checkpoint.model_of(own, path)
        models.append(model)
        part = {"generator": model.sampler.state_dict(), "config": own["config"]}
        if compact:
            folded = fold_edges(part["generator"], model.sampler.N, model.sampler.R)
            part |= {"generator": {k: v.half() for k, v in folded.items()}, "compact": True}
        part["step"] = int(own.get("step", 0))
        if model.class_prior is not None:
            part["class_prior"] = model.class_prior.state_dict()
        parts.append(part)
    if not parts:
        raise ValueError("a mixture needs at least one member")
    Mixture(models)  # same vocabulary and graph size, or a one-line error
    first = models[0]
    blob = {
        "format": checkpoint.FORMAT,
        "config": dict(parts[0]["config"]),
        "vocab": {"atoms": list(first.atom_types), "bonds": list(first.bond_types)},
        **{k: v for k, v in parts[0].items() if k != "config"},
        "members": parts,
        "mixture": True,
        "sampler_only": True,
        "sources": [f"{Path(p).as_posix()}:{k}" for p, k in sources],
        "versions": checkpoint.versions(),
    }
    return checkpoint.write(blob, out)
