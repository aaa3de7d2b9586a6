"""Fréchet ChemNet Distance (Preuer et al. 2018) between generated and reference molecules.

ChemNet activations come from the optional package ``fcd_torch`` (MIT; ships its ChemNet
weights, so it works offline): ``pip install -e ".[fcd]"``. The Fréchet distance itself is
computed here from the activations' means and covariances, via the eigenvalues of Σ1·Σ2, so no
SciPy ``sqrtm`` is needed (fcd_torch's own call breaks on SciPy ≥ 1.18). Inputs are
canonicalised first; ``None`` and unparsable SMILES are left out.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np

from molgan import chem


def frechet_distance(
    mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray
) -> float:
    """‖μ1 − μ2‖² + tr(Σ1 + Σ2 − 2·(Σ1Σ2)^½) of two Gaussians; (D,) means, (D, D) covariances."""
    eigenvalues = np.linalg.eigvals(sigma1 @ sigma2)
    trace_sqrt = np.sqrt(np.clip(eigenvalues.real, 0.0, None)).sum()
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * trace_sqrt)


@functools.cache
def _chemnet(device: str):
    try:
        from fcd_torch import FCD
    except ImportError as err:
        raise ValueError(
            "FCD needs the optional package fcd_torch: pip install 'molgan[fcd]'"
        ) from err
    return FCD(device=device, n_jobs=1)


def activations(canonical: Sequence[str], device: str = "cpu") -> np.ndarray:
    """ChemNet activations (M, D) of canonical SMILES (not checked: canonicalise first)."""
    return _chemnet(device).get_predictions(list(canonical))


def statistics(smiles: Sequence[str | None], device: str = "cpu") -> tuple[np.ndarray, np.ndarray]:
    """Mean (D,) and covariance (D, D) of the ChemNet activations of the valid molecules."""
    canon = [c for c in (chem.canonical(s) for s in smiles if isinstance(s, str)) if c]
    if len(canon) < 2:
        raise ValueError("FCD needs at least 2 valid molecules")
    activations = _chemnet(device).get_predictions(canon)  # (M, D)
    return activations.mean(axis=0), np.cov(activations, rowvar=False)


_REFERENCE: dict = {}


def _reference_statistics(reference: Sequence[str], device: str):
    """``statistics`` of a reference set, memoised (training compares every evaluation with
    the same validation split; its activations cost most of an FCD)."""
    key = (len(reference), tuple(reference[:64]), tuple(reference[-64:]), device)
    if key not in _REFERENCE:
        _REFERENCE.clear()
        _REFERENCE[key] = statistics(reference, device)
    return _REFERENCE[key]


def fcd(smiles: Sequence[str | None], reference: Sequence[str], device: str = "cpu") -> float:
    """FCD of ``smiles`` (invalid entries dropped) against ``reference``; lower is closer."""
    reference = list(reference)
    return frechet_distance(*statistics(smiles, device), *_reference_statistics(reference, device))


def version() -> str:
    """The fcd_torch version, to print next to every FCD value."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as package_version

    try:
        return f"fcd_torch {package_version('fcd_torch')}"
    except PackageNotFoundError:
        return "fcd_torch not installed"
