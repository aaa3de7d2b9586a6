"""Set-level metrics of generated molecules: validity, uniqueness, novelty and property means.

Definitions (pinned by tests/test_metrics.py):
  valid          strictly valid / all inputs; strict = parses, non-empty, one fragment, no ``*``.
                 ``None`` and unparsable strings count as invalid.
  valid_lenient  parses and non-empty / all inputs (fragments allowed): the official code's
                 figure, most likely behind the paper's 98.1%.
  valid_corrected  of samples drawn with ``correct=True`` (MoFlow's valency correction, the
                 largest fragment kept: MoFlow's and GDSS's "validity with correction"): the
                 share that is a molecule after it. Such samples report no ``valid`` and no
                 ``valid_lenient``: a corrected molecule is not what the generator made.
  unique         distinct canonical SMILES / strictly valid.
  novel          strictly valid and not in the training set / strictly valid (NaN without one).
  vun            V.U.N. as the one-step papers count it (EGO's "strict V.U.N."): distinct,
                 strictly valid (hence connected), novel molecules / all inputs (NaN without a
                 training set). ``valid_lenient`` is the GDSS protocol's "validity without
                 correction" (molgan never corrects a graph; fragments count as valid there).
  qed, logp, sa, np, diversity, drugcandidate
                 plain means over strictly valid molecules of the normalised [0, 1] scores of
                 ``molgan.rewards`` (the paper's convention). NaN when no molecule is valid.
Collapse measures (over strictly valid samples):
  distinct       number of distinct molecules (uniqueness × valid × n).
  top100_share   share of the valid samples that are one of the 100 most frequent molecules
                 (a random QM9 sample: ~1%).
  f_share        share of heavy atoms that are fluorine; small_share: share of molecules with
                 at most 7 heavy atoms (QM9 modes a collapsed generator drops).
  atom_tv, size_tv
                 total variation distance of the atom-type (C, N, O, F) and heavy-atom-count
                 distributions to the training set's (0 = same, 1 = disjoint); f_ratio and
                 small_ratio = share / the training set's share (1 = matched). Need a train set.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from collections.abc import Iterable, Sequence

import numpy as np

from molgan import chem, rewards

PROPERTIES = ("qed", "logp", "sa", "np", "diversity", "drugcandidate")
PERCENT = ("valid", "valid_lenient", "valid_corrected", "unique", "novel", "vun")  # as %
COLLAPSE = ("distinct", "top100_share", "f_share", "small_share")
REFERENCED = ("atom_tv", "size_tv", "f_ratio", "small_ratio")  # need a training set
METRICS = (*PERCENT, *PROPERTIES, *COLLAPSE, *REFERENCED, "fcd")  # names a metric may take
ELEMENTS = ("C", "N", "O", "F")
SMALL = 7  # heavy atoms: "small" molecules, 3% of QM9
_COMPOSITION_CACHE: dict = {}


def composition(smiles: Iterable[str], sanitize: bool = True) -> dict[str, np.ndarray]:
    """Atom-type shares (C, N, O, F) and heavy-atom-count shares (index = count, up to 40) of
    a set of molecules; each sums to 1 (all zeros for an empty set). ``sanitize=False`` for a
    set known to be valid (a training set): the same counts, ~3× faster."""
    atoms, sizes = np.zeros(len(ELEMENTS)), np.zeros(41)
    for smi in smiles:
        symbols = chem.heavy_atoms(smi, sanitize=sanitize)
        if not symbols:
            continue
        sizes[min(len(symbols), 40)] += 1
        for symbol in symbols:
            if symbol in ELEMENTS:
                atoms[ELEMENTS.index(symbol)] += 1
    return {
        "atoms": atoms / max(atoms.sum(), 1),
        "sizes": sizes / max(sizes.sum(), 1),
    }


def _reference_composition(train) -> dict[str, np.ndarray]:
    """``composition`` of a training set, memoised (training evaluates against the same set
    every epoch; parsing 100k molecules takes seconds)."""
    head = tuple(sorted(itertools.islice(iter(train), 64)))
    key = (len(train), head)
    if key not in _COMPOSITION_CACHE:
        _COMPOSITION_CACHE.clear()
        _COMPOSITION_CACHE[key] = composition(train, sanitize=False)
    return _COMPOSITION_CACHE[key]


def collapse_metrics(valid_smiles: Sequence[str], train=None) -> dict[str, float]:
    """The collapse measures of the module docstring for canonical, strictly valid SMILES."""
    counts = Counter(valid_smiles)
    n = len(valid_smiles)
    mine = composition(counts.elements()) if n else None
    result = {
        "distinct": float(len(counts)),
        "top100_share": sum(c for _, c in counts.most_common(100)) / n if n else math.nan,
        "f_share": float(mine["atoms"][3]) if n else math.nan,
        "small_share": float(mine["sizes"][: SMALL + 1].sum()) if n else math.nan,
    }
    if train is not None:
        ref = _reference_composition(train)
        ref_small = float(ref["sizes"][: SMALL + 1].sum())
        result |= {
            "atom_tv": 0.5 * float(np.abs(mine["atoms"] - ref["atoms"]).sum()) if n else math.nan,
            "size_tv": 0.5 * float(np.abs(mine["sizes"] - ref["sizes"]).sum()) if n else math.nan,
            "f_ratio": float(result["f_share"] / ref["atoms"][3])
            if n and ref["atoms"][3]
            else math.nan,
            "small_ratio": float(result["small_share"] / ref_small)
            if n and ref_small
            else math.nan,
        }
    return result


def check_metric(expr: str) -> str:
    """``expr`` if it names metrics (``valid``, ``valid*unique``, ``-fcd`` to minimise)."""
    names = [n.strip() for n in expr.lstrip("-").split("*")]
    bad = [n for n in names if n not in METRICS]
    if bad:
        raise ValueError(f"unknown metric(s) {bad} in {expr!r}; choose from {', '.join(METRICS)}")
    return expr


def metric_value(expr: str, values: dict) -> float:
    """A metric or a product of metrics (``valid*unique``) from a metrics dict, whose keys may
    carry a ``score/`` prefix: 0 if any factor is 0 (no valid molecule), else NaN if any is
    missing or NaN."""
    factors = []
    for name in expr.split("*"):
        value = values.get(name.strip(), values.get(f"score/{name.strip()}"))
        factors.append(math.nan if value is None else float(value))
    return 0.0 if 0.0 in factors else math.prod(factors)


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
    trusted = train_is_canonical and isinstance(train_smiles, (set, frozenset))
    if train_smiles is not None and not trusted:  # evaluate() passes its checked set
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
        "drugcandidate", "n"}`` and the collapse measures (``distinct``, ``top100_share``,
        ``f_share``, ``small_share``; with ``train_smiles`` also ``atom_tv``, ``size_tv``,
        ``f_ratio``, ``small_ratio``) as floats (fractions in [0, 1]; ``n`` = inputs).
    """
    if not isinstance(smiles, chem.Samples):
        smiles = check_smiles_list(smiles)
    if len(smiles) == 0:
        raise ValueError("evaluate() needs at least one molecule")
    train = None
    if train_smiles is not None:  # canonical once, for novelty and the composition reference
        if not (train_is_canonical and isinstance(train_smiles, (set, frozenset))):
            train_smiles = check_smiles_list(train_smiles, "train_smiles", allow_none=False)
        train = (
            train_smiles
            if train_is_canonical and isinstance(train_smiles, (set, frozenset))
            else set(train_smiles)
            if train_is_canonical
            else {chem.canonical(s) or s for s in train_smiles}
        )
    frame = evaluate_frame(smiles, train, train_is_canonical=True)
    valid = frame[frame["valid"]]
    n_valid = len(valid)
    result = {
        "n": float(len(frame)),
        "valid": n_valid / len(frame),
        "valid_lenient": float(frame["valid_lenient"].mean()),
        "unique": valid["smiles"].nunique() / n_valid if n_valid else math.nan,
        "novel": float(valid["novel"].mean()) if n_valid and train_smiles is not None else math.nan,
    }
    novel = valid["smiles"][valid["novel"].astype(bool)] if n_valid else []
    result["vun"] = len(set(novel)) / len(frame) if train_smiles is not None else math.nan
    if getattr(smiles, "corrected", False):  # valency-corrected samples: their own column
        result["valid_corrected"] = result.pop("valid")
        result.pop("valid_lenient")
    train = None
    if train_smiles is not None:
        train = (
            train_smiles if train_is_canonical else {chem.canonical(s) or s for s in train_smiles}
        )
    result |= collapse_metrics(list(valid["smiles"]), train)
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
