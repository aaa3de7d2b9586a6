"""One-call sampling: ``molgan.sample(n)`` -> canonical SMILES from a checkpoint or model."""

from __future__ import annotations

from pathlib import Path

import torch

from molgan import checkpoint as ckpt
from molgan.models import MolGAN


def sample(
    n: int,
    checkpoint: str | Path | MolGAN | None = None,
    *,
    seed: int | None = None,
    device: str | None = None,
    strict: bool = True,
    batch_size: int = 4096,
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

    Returns:
        ``n`` canonical SMILES, ``None`` where a graph is not a valid molecule; the validity of
        the sample is ``mean(s is not None)``.

    Raises:
        ValueError: a missing, corrupt or foreign checkpoint.
    """
    model = checkpoint if isinstance(checkpoint, MolGAN) else ckpt.load(checkpoint)
    if device is not None:
        model = model.to(torch.device(device))
    return model.sample(n, seed, strict=strict, batch_size=batch_size)
