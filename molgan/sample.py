"""One-call sampling: ``molgan.sample(n)`` -> canonical SMILES from a checkpoint or model."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from molgan import checkpoint as ckpt
from molgan.models import MolGAN, check_count, resolve_device


def sample(
    n: int,
    checkpoint: str | Path | MolGAN | None = None,
    *,
    seed: int | None = None,
    device: str | None = None,
    strict: bool = True,
    batch_size: int = 4096,
    heavy_atoms: int | None = None,
    elements: str | Sequence[str] | None = None,
) -> list[str | None]:
    """Generate ``n`` molecules as canonical SMILES.

    Args:
        n: number of molecules; exactly ``n`` entries come back, in order.
        checkpoint: a checkpoint file, a loaded ``MolGAN``, or ``None`` for the pretrained
            QM9 model shipped with the package.
        seed: fixes the output (a local RNG is used; the global one is untouched).
        device: ``cpu``, ``cuda``...; default the model's device (CPU for files).
        strict: ``None`` also for multi-fragment graphs (else their dotted SMILES).
        batch_size: graphs per forward pass.
        heavy_atoms, elements: ask a conditional model (trained with ``--condition``) for this
            heavy-atom count and/or exactly this element set, e.g. ``elements="C,N,F"``.

    Returns:
        ``n`` canonical SMILES, ``None`` where a graph is not a valid molecule; the validity of
        the sample is ``mean(s is not None)``.

    Raises:
        ValueError: a missing, corrupt or foreign checkpoint; ``n``, ``seed`` or
            ``batch_size`` not an integer in range; an unknown or unavailable device; a class
            asked of a model that is not conditional, or that no training molecule is of.
    """
    check_count("n", n, 0)
    check_count("batch_size", batch_size, 1)
    if seed is not None:
        check_count("seed", seed, 0, 2**64)
    target = resolve_device(device) if device is not None else None
    model = checkpoint if isinstance(checkpoint, MolGAN) else ckpt.load(checkpoint)
    if target is not None:
        model = model.to(target)
    return model.sample(
        n, seed, strict=strict, batch_size=batch_size, heavy_atoms=heavy_atoms, elements=elements
    )
