"""Decoding: fresh z -> Gumbel-argmax graphs -> canonical SMILES, for one model at a time
(``MolGAN.sample`` and ``Mixture.sample`` run on it), with the checks of sampling arguments and
a progress bar. Models are duck-typed: anything with ``sampler`` (a ``Generator``),
``class_prior``, ``device``, ``atom_types`` and ``class_request``.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch

from molgan import chem
from molgan.generator import NOISE_BLOCK, gumbel_noise

if TYPE_CHECKING:
    from molgan.chem import Samples
    from molgan.models import MolGAN

MAX_SAMPLES = 10**9
"""The most molecules one call samples (SMILES lists of more do not fit in memory)."""

PROGRESS_FROM = 100_000  # molecules from which sample() shows a bar on a terminal by default


def with_progress(parts: Iterator[Samples], n: int, show: bool | None) -> Iterator[Samples]:
    """``parts`` as they come, counted on a progress bar on stderr when ``show`` (None: for
    ``PROGRESS_FROM`` molecules or more, when stderr is a terminal)."""

    if show is None:
        show = n >= PROGRESS_FROM and sys.stderr.isatty()
    if not show:
        yield from parts
        return
    from tqdm.auto import tqdm

    with tqdm(total=n, desc=f"sampling {n:,} molecules", file=sys.stderr, leave=False) as bar:
        for part in parts:
            bar.update(len(part))
            yield part


@torch.no_grad()
def graph_batches(
    model: MolGAN,
    n: int,
    *,
    generator: torch.Generator | None = None,
    batch_size: int = 4096,
    classes: dict | None = None,
    temperature: float | tuple[float, float] = 1.0,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Gumbel-argmax graphs from n fresh z of ``model``, at most ``batch_size`` at a time: ``(atoms
    (b, N), bonds (b, N, N))`` int arrays per batch (``classes``: a conditional model's
    ``class_request``; ``temperature``: the logits are divided by it before the argmax, or
    a pair: the atom logits by the first, the bond logits by the second).

    Noise is drawn on the CPU from ``generator``, in blocks of ``NOISE_BLOCK`` graphs
    whatever the batch size, so the graphs depend on neither the device nor ``batch_size``.
    """
    t_atoms, t_bonds = split_temperature(temperature)
    g = model.sampler
    was_training = g.training
    g.eval()
    try:
        for start in range(0, n, NOISE_BLOCK):
            b = min(NOISE_BLOCK, n - start)
            z = torch.randn(b, g.z_dim, generator=generator)  # (b, Z)
            gx = gumbel_noise((b, g.N, g.T), generator=generator)
            ga = gumbel_noise((b, g.N, g.N, g.R), symmetric=True, generator=generator)
            cond = None
            if model.class_prior is not None:  # drawn after the rest: same z as unconditioned
                cond = model.class_prior.sample(b, generator, **(classes or {}))  # (b, C)
            for i in range(0, b, batch_size):
                c = None if cond is None else cond[i : i + batch_size].to(model.device)
                out = g(z[i : i + batch_size].to(model.device), c)
                x_logits, adj_logits = out.x_logits, out.adj_logits
                if t_atoms != 1.0:
                    x_logits = x_logits / t_atoms
                if t_bonds != 1.0:
                    adj_logits = adj_logits / t_bonds
                atoms = (x_logits + gx[i : i + batch_size].to(model.device)).argmax(-1)
                bonds = (adj_logits + ga[i : i + batch_size].to(model.device)).argmax(-1)
                yield atoms.cpu().numpy(), bonds.cpu().numpy()  # (b', N), (b', N, N)
    finally:
        g.train(was_training)


def iter_samples(
    model: MolGAN,
    n: int,
    seed: int | None = None,
    *,
    strict: bool = True,
    batch_size: int = 4096,
    heavy_atoms: int | None = None,
    elements: str | Sequence[str] | None = None,
    temperature: float | tuple[float, float] = 1.0,
    correct: bool = False,
) -> Iterator[Samples]:
    """``model.sample`` in pieces of ``batch_size`` (memory stays bounded; same molecules).
    ``correct``: each graph's molecule after valency correction (``chem.corrected_smiles``:
    MoFlow's, largest fragment kept), marked so that ``molgan.evaluate`` reports its validity
    as ``valid_corrected``, never as strict validity.

    Raises:
        ValueError: ``n``, ``seed`` or ``batch_size`` is not a valid integer, a temperature
            that is not a positive finite number, or a class a conditional model cannot be
            asked for (``class_request``).
    """
    if hasattr(model, "iter_samples"):  # a Mixture: its members take turns
        asked = dict(heavy_atoms=heavy_atoms, elements=elements, temperature=temperature)
        asked["correct"] = correct
        return model.iter_samples(n, seed, strict=strict, batch_size=batch_size, **asked)
    check_count("n", n, 0)
    check_count("batch_size", batch_size, 1)
    check_temperature(temperature)
    classes = model.class_request(heavy_atoms, elements)  # checked now, not when iterated
    generator = torch.Generator()
    if seed is None:
        generator.seed()
    else:
        check_count("seed", seed, 0, 2**64)
        generator.manual_seed(seed)
    batches = graph_batches(
        model,
        n,
        generator=generator,
        batch_size=batch_size,
        classes=classes,
        temperature=temperature,
    )
    return _as_samples(batches, strict, tuple(model.atom_types), correct)


def _as_samples(
    batches: Iterator[tuple[np.ndarray, np.ndarray]],
    strict: bool,
    atom_types: tuple[str, ...],
    correct: bool = False,
) -> Iterator[Samples]:
    decode = chem.corrected_smiles if correct else chem.graph_to_smiles
    extra = {} if correct else {"strict": False}
    for atoms, bonds in batches:
        lenient = [
            decode(a, b, atom_types=atom_types, **extra) for a, b in zip(atoms, bonds, strict=True)
        ]
        yield chem.Samples(lenient, strict=strict, corrected=correct)


def parse_temperature(text: str) -> float | tuple[float, float]:
    """A temperature from the command line: ``"2"`` for atoms and bonds, ``"3:1"`` for atoms
    at 3 and bonds at 1. Raises ValueError (one line) for anything else."""
    parts = str(text).split(":")
    try:
        values = [float(p) for p in parts]
    except ValueError:
        values = []
    value = values[0] if len(values) == 1 else tuple(values)
    try:
        check_temperature(value)
    except ValueError:
        raise ValueError(
            f"temperature must be a positive number T or a pair ATOMS:BONDS, got {text!r}"
        ) from None
    return value


def split_temperature(value) -> tuple[float, float]:
    """``(atoms, bonds)`` of a sampling temperature: one number for both, or a pair."""
    check_temperature(value)
    if isinstance(value, (tuple, list)):
        return float(value[0]), float(value[1])
    return float(value), float(value)


def check_temperature(value) -> None:
    """Refuse a sampling temperature that is not a positive, finite number or a pair of them
    (atoms, bonds)."""

    def positive(v) -> bool:
        return not isinstance(v, bool) and isinstance(v, (int, float)) and 0 < v < math.inf

    pair = isinstance(value, (tuple, list)) and len(value) == 2 and all(map(positive, value))
    if not (positive(value) or pair):
        raise ValueError(
            f"temperature must be a positive number or a pair (atoms, bonds), got {value!r}"
        )


def check_count(name: str, value, low: int, high: int | None = None) -> None:
    """Refuse anything but an integer in [low, high) (bools, floats and strings included)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value < low or (high is not None and value >= high):
        top = "2**64" if high == 2**64 else str(high)
        bound = f"in [{low}, {top})" if high is not None else f"≥ {low}"
        raise ValueError(f"{name} must be {bound}, got {value}")


def check_n(n) -> None:
    """Refuse a molecule count that is not an integer in [0, ``MAX_SAMPLES``]."""
    check_count("n", n, 0)
    if n > MAX_SAMPLES:
        raise ValueError(
            f"n must be at most {MAX_SAMPLES:,} molecules per call (their SMILES would not fit "
            f"in memory; iterate with molgan.decoding.iter_samples), got {n:,}"
        )
