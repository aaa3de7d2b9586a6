"""The user's entry points for generated molecules: ``molgan.load(path)`` -> a model (a single
``MolGAN`` or a ``Mixture``) and ``molgan.sample(n)`` -> canonical SMILES from a checkpoint,
a mixture file or a model. The decoding itself is ``molgan.decoding``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from molgan import checkpoint as ckpt
from molgan import mixture as mixtures
from molgan.decoding import (  # noqa: F401  (the decoding API, also reachable from here)
    PROGRESS_FROM,
    check_count,
    check_n,
    graph_batches,
    iter_samples,
    parse_temperature,
    split_temperature,
    with_progress,
)
from molgan.mixture import Mixture
from molgan.models import MolGAN, resolve_device


def sample(
    n: int,
    checkpoint: str | Path | MolGAN | Mixture | None = None,
    *,
    seed: int | None = None,
    device: str | None = None,
    strict: bool = True,
    batch_size: int = 4096,
    heavy_atoms: int | None = None,
    elements: str | Sequence[str] | None = None,
    member: int | None = None,
    progress: bool | None = None,
    temperature: float | tuple[float, float] = 1.0,
    mixture: bool | None = None,
    correct: bool = False,
) -> list[str | None]:
    """Generate ``n`` molecules as canonical SMILES.

    Args:
        n: number of molecules; exactly ``n`` entries come back, in order.
        checkpoint: a checkpoint file, a loaded ``MolGAN``, the name of a model shipped with
            the package (``"qm9"``, ``"moses"``: drug-like, 27 heavy atoms), or ``None`` for
            the shipped QM9 model.
        seed: fixes the output (a local RNG is used; the global one is untouched).
        device: ``cpu``, ``cuda``...; default the model's device (CPU for files).
        strict: ``None`` also for multi-fragment graphs (else their dotted SMILES).
        batch_size: graphs per forward pass.
        heavy_atoms, elements: ask a conditional model (trained with ``--condition``) for this
            heavy-atom count and/or exactly this element set, e.g. ``elements="C,N,F"``.
        member: from a population's checkpoint (``--members K``) or a mixture file, member k
            alone (default: 0, or a mixture file's every member).
        mixture: ``True``: every member of the checkpoint as one mixture (``molgan.mixture``;
            sample i from member i mod K); ``None``: so for a mixture file (the shipped model
            is one), else member ``member``.
        progress: a progress bar on stderr; default: for ``PROGRESS_FROM`` (100,000) molecules
            or more when stderr is a terminal.
        temperature: draw each atom and bond from softmax(logits / temperature) (Gumbel-argmax
            of the scaled logits): above 1 trades validity for distinct molecules (figures:
            docs/results.md, "Sampling temperature"); 1 = as trained.
            A pair ``(atoms, bonds)`` scales the atom and the bond logits separately.
        correct: valency-corrected molecules (MoFlow's correction, largest fragment kept),
            which ``molgan.evaluate`` reports as ``valid_corrected``, never as ``valid``.

    Returns:
        ``n`` canonical SMILES, ``None`` where a graph is not a valid molecule; the validity of
        the sample is ``mean(s is not None)``.

    Raises:
        ValueError: a missing, corrupt or foreign checkpoint; ``n``, ``seed`` or
            ``batch_size`` not an integer in range; an unknown or unavailable device; a class
            asked of a model that is not conditional, or that no training molecule is of.
    """
    check_n(n)
    check_count("batch_size", batch_size, 1)
    if seed is not None:
        check_count("seed", seed, 0, 2**64)
    target = resolve_device(device) if device is not None else None
    if isinstance(checkpoint, (MolGAN, Mixture)):
        model = checkpoint
    elif mixture:
        if member is not None:
            raise ValueError("give member (one member) or mixture=True (all of them), not both")
        model = mixtures.load(checkpoint)
    else:
        model = load(checkpoint, member=0 if mixture is False and member is None else member)
    if target is not None:
        model = model.to(target)
    return model.sample(
        n,
        seed,
        strict=strict,
        batch_size=batch_size,
        heavy_atoms=heavy_atoms,
        elements=elements,
        progress=progress,
        temperature=temperature,
        correct=correct,
    )


def load(
    path: str | Path | None = None, device: str | torch.device = "cpu", member: int | None = None
) -> MolGAN | Mixture:
    """Rebuild a trained model from a checkpoint (or a shipped model's name, ``"qm9"`` or
    ``"moses"``; default: the shipped QM9 model): a ``MolGAN``; from a population's
    checkpoint, member ``member`` (default 0); from a mixture file (``molgan.mixture.export``,
    the shipped models) all its members as one ``Mixture`` unless a ``member`` is asked for.

    Raises:
        ValueError: missing, corrupt, foreign or future-format checkpoint, or no such member.
    """
    path = path if path is not None else ckpt.pretrained()
    blob = ckpt.read(path)
    if member is None and mixtures.is_mixture(blob):
        return mixtures.of_blob(blob, path, device)
    return ckpt.model_of(ckpt.member_blob(blob, member or 0, path), path, device)
