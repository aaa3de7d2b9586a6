"""Set-level metrics of generated molecules: validity, uniqueness, novelty and property means.

Definitions (pinned by tests/test_metrics.py):
  valid          strictly valid / all inputs; strict = parses, non-empty, one fragment, no ``*``.
                 ``None`` and unparsable strings count as invalid.
  valid_lenient  parses and non-empty / all inputs (fragments allowed): the official code's
                 figure, most likely behind the paper's 98.1%.
  unique         distinct canonical SMILES / strictly valid.
  novel          strictly valid and not in the training set / strictly valid (NaN without one).
  qed, logp, sa, np, diversity, drugcandidate
                 plain means over strictly valid molecules of the normalised [0, 1] scores of
                 ``molgan.rewards`` (the paper's convention). NaN when no molecule is valid.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np

from molgan import chem, rewards

PROPERTIES = ("qed", "logp", "sa", "np", "diversity", "drugcandidate")
PERCENT = ("valid", "valid_lenient", "unique", "novel")  # fractions, printed as %


def _canonical_all(smiles: Sequence[str | None]) -> list[str | None]:
    return [chem.canonical(s) if isinstance(s, str) else None for s in smiles]


def check_smiles_list(smiles, name: str = "smiles", allow_none: bool = True) -> list:
    """``smiles`` as a list, refusing a bare string (a str is not a list of SMILES), ``None``,
    and entries that are neither ``str`` nor (where allowed) ``None``."""
    if smiles is None or isinstance(smiles, (str, bytes)):
        raise ValueError(
            f"{name} must be a list of SMILES strings, got {type(smiles).__name__}"
            + (" (wrap one SMILES in a list)" if isinstance(smiles, str) else "")
        )
    try:
        items = list(smiles)
    except TypeError:
        raise ValueError(
            f"{name} must be a list of SMILES strings, got {type(smiles).__name__}"
        ) from None
    bad = next((s for s in items if not (isinstance(s, str) or (allow_none and s is None))), 0)
    if bad != 0:
        raise ValueError(
            f"{name} holds {bad!r}; expected SMILES strings" + (" or None" if allow_none else "")
        )
    return items


def evaluate_frame(
    smiles: Sequence[str | None],
    train_smiles: Iterable[str] | None = None,
    *,
    train_is_canonical: bool = False,
):
    """One row per input molecule: validity flags, raw and normalised scores.

    Args:
        smiles: generated SMILES (``None`` for graphs that are not molecules).
        train_smiles: the training set, for ``novel`` and the reference of ``diversity``.
        train_is_canonical: skip canonicalising ``train_smiles`` (e.g. a ``Dataset``'s SMILES).

    Returns:
        ``pandas.DataFrame`` with columns ``smiles`` (canonical or None), ``valid``,
        ``valid_lenient``, ``novel``, ``qed``, ``logp_raw``, ``logp``, ``sa_raw``, ``sa``,
        ``np_raw``, ``np``, ``diversity``, ``drugcandidate``; scores are 0 for invalid rows and
        ``novel`` is NaN without a training set.
    """
    import pandas as pd

    lenient = getattr(smiles, "lenient", None)
    smiles = check_smiles_list(smiles)
    canon = _canonical_all(smiles)
    if lenient is not None and len(lenient) == len(smiles):  # strict samples keep fragments here
        lenient_ok = [chem.canonical(s) is not None if s else False for s in lenient]
    else:
        lenient_ok = [s is not None and len(s) > 0 for s in canon]
    if train_smiles is not None:
        train_smiles = check_smiles_list(train_smiles, "train_smiles", allow_none=False)
    if train_smiles is None:
        train = None
    elif train_is_canonical:
        train = train_smiles if isinstance(train_smiles, (set, frozenset)) else set(train_smiles)
    else:
        train = {chem.canonical(s) or s for s in train_smiles}
    valid = [chem.is_strictly_valid(s) for s in canon]
    strict = [s if ok else None for s, ok in zip(canon, valid, strict=False)]
    table = rewards.score_table(strict, train, PROPERTIES)
    raw = rewards.raw_scores(strict, ("logp", "sa", "np"))
    frame = pd.DataFrame(
        {
            "smiles": pd.Series(canon, dtype=object),
            "valid": valid,
            "valid_lenient": lenient_ok,
            "novel": [
                math.nan if train is None else float(ok and s not in train)
                for s, ok in zip(canon, valid, strict=False)
            ],
        }
    )
    frame["qed"] = table["qed"]
    for name in ("logp", "sa", "np"):
        frame[f"{name}_raw"] = raw[name]
        frame[name] = table[name]
    frame["diversity"] = table["diversity"]
    frame["drugcandidate"] = table["drugcandidate"]
    return frame


def evaluate(
    smiles: Sequence[str | None],
    train_smiles: Iterable[str] | None = None,
    *,
    paper_means: bool = False,
    train_is_canonical: bool = False,
    fcd_reference: Sequence[str] | None = None,
) -> dict[str, float]:
    """Set-level metrics of a list of generated molecules (definitions in the module docstring).

    Args:
        smiles: generated SMILES, ``None`` where a graph was not a molecule.
        train_smiles: training SMILES for novelty (and the diversity reference).
        paper_means: also return ``<property>_nonzero``, the official code's mean over nonzero
            scores only (inflated: it drops legitimately zero scores, e.g. 22% of QM9's SA).
        train_is_canonical: trust ``train_smiles`` to be canonical already (saves parsing it).
        fcd_reference: also return ``fcd``, the Fréchet ChemNet Distance of the strictly valid
            molecules to these (needs the optional ``fcd_torch``; see ``molgan.fcd``).

    Returns:
        ``{"valid", "valid_lenient", "unique", "novel", "qed", "logp", "sa", "np", "diversity",
        "drugcandidate", "n"}`` as floats (fractions in [0, 1]; ``n`` = number of inputs).
    """
    if not isinstance(smiles, chem.Samples):
        smiles = check_smiles_list(smiles)
    if len(smiles) == 0:
        raise ValueError("evaluate() needs at least one molecule")
    frame = evaluate_frame(smiles, train_smiles, train_is_canonical=train_is_canonical)
    valid = frame[frame["valid"]]
    n_valid = len(valid)
    result = {
        "n": float(len(frame)),
        "valid": n_valid / len(frame),
        "valid_lenient": float(frame["valid_lenient"].mean()),
        "unique": valid["smiles"].nunique() / n_valid if n_valid else math.nan,
        "novel": float(valid["novel"].mean()) if n_valid and train_smiles is not None else math.nan,
    }
    for name in PROPERTIES:
        result[name] = float(valid[name].mean()) if n_valid else math.nan
        if paper_means:
            nonzero = valid[name][valid[name] > 0]
            result[f"{name}_nonzero"] = float(nonzero.mean()) if len(nonzero) else math.nan
    if fcd_reference is not None:
        from molgan import fcd

        result["fcd"] = fcd.fcd(list(valid["smiles"]), fcd_reference) if n_valid > 1 else math.nan
    return result


def reference_row(
    train: Sequence[str],
    val: Sequence[str],
    test: Sequence[str],
    *,
    with_fcd: bool = False,
    paper_means: bool = False,
) -> dict[str, float]:
    """The reference row: the (canonical) test split scored like a sample set against the train
    split. A set's FCD to itself is 0, so ``fcd`` (with ``with_fcd``) is val vs test."""
    result = evaluate(test, train, paper_means=paper_means, train_is_canonical=True)
    if with_fcd:
        from molgan import fcd

        result["fcd"] = fcd.fcd(val, test)
    return result


def format_row(metrics: dict[str, float], keys: Sequence[str] | None = None) -> str:
    """One markdown table row, percentages for the fractions, 3 decimals for the scores."""
    keys = keys or ("valid", "valid_lenient", "unique", "novel", *PROPERTIES)
    cells = []
    for key in keys:
        value = metrics.get(key, math.nan)
        if isinstance(value, float) and np.isnan(value):
            cells.append("n/a")
        elif key in PERCENT:
            cells.append(f"{100 * value:.1f}")
        else:
            cells.append(f"{value:.3f}")
    return "| " + " | ".join(cells) + " |"
