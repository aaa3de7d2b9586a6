"""The MOSES benchmark's metrics (Polykovskiy et al. 2020), with MOSES's own definitions.

The ``molsets`` package ships the metrics but no longer imports (it needs ``rdkit.six`` and
``DataFrame.append``, gone from today's RDKit and pandas), so they are computed here, and
``tests/test_moses_metrics.py`` checks each one against MOSES's own functions (imported there
with two small shims). Definitions, as in ``moses/metrics/metrics.py`` (molsets 0.3.1):

  valid        share of the inputs that parse and sanitise (RDKit); multi-fragment (dotted)
               SMILES count as valid, as in MOSES. ``None`` / '' are invalid.
  unique@k     distinct canonical SMILES among the first k valid molecules / k.
  FCD          Fréchet ChemNet Distance (fcd_torch's ChemNet) of the valid molecules,
               duplicates kept, to the reference.
  SNN          mean over valid molecules of the highest Tanimoto similarity (Morgan, radius 2,
               1,024 bits) to a reference molecule.
  Frag, Scaf   cosine similarity of the BRICS-fragment counts, and of the Bemis–Murcko scaffold
               counts (scaffolds with at least 2 rings only), to the reference's.
  IntDiv(p)    1 − mean_i (mean_j T(i, j)^p)^(1/p) over all pairs of valid molecules, i = j
               included (IntDiv: p = 1, IntDiv2: p = 2).
  Filters      share of the valid molecules with only C N S O F Cl Br H, no charge, no ring of
               8 or more atoms, and no match of MOSES's MCF and PAINS patterns.
  Novelty      share of the distinct valid molecules not in the training SMILES.

``test="moses"`` uses the reference statistics molsets ships (``test_stats.npz`` and
``test_scaffolds_stats.npz``, as ``moses.get_all_metrics`` does); any other reference is a list
of SMILES whose statistics are computed here.
"""

from __future__ import annotations

import csv
import functools
import gzip
import math
import warnings
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from rdkit import Chem
from rdkit.Chem import BRICS, rdFingerprintGenerator
from rdkit.Chem.Scaffolds import MurckoScaffold

from molgan import chem
from molgan.pool import pool_map

ALLOWED = frozenset({"C", "N", "S", "O", "F", "Cl", "Br", "H"})  # MOSES's Filters atoms
KEYS = (
    "valid",
    "unique@1000",
    "unique@10000",
    "FCD/Test",
    "SNN/Test",
    "Frag/Test",
    "Scaf/Test",
    "FCD/TestSF",
    "SNN/TestSF",
    "Frag/TestSF",
    "Scaf/TestSF",
    "IntDiv",
    "IntDiv2",
    "Filters",
    "Novelty",
)


# --- one molecule ---------------------------------------------------------------------------


def mol(smiles: str | None):
    """MOSES's ``get_mol``: the sanitised RDKit molecule, or None ('' and None included)."""
    if not isinstance(smiles, str) or not smiles:
        return None
    return chem.mol_from_smiles(smiles)


@functools.cache
def _morgan():
    return rdFingerprintGenerator.GetMorganGenerator(radius=2, fpSize=1024)


def fingerprint(molecule) -> np.ndarray:
    """Morgan bits, radius 2, 1,024 (MOSES's ``fingerprint(..., 'morgan')``), uint8 (1024,)."""
    return _morgan().GetFingerprintAsNumPy(molecule).astype(np.uint8)


def fragments(molecule) -> list[str]:
    """SMILES of the pieces left by cutting every BRICS bond (dummy atoms mark the cuts)."""
    return Chem.MolToSmiles(BRICS.BreakBRICSBonds(molecule)).split(".")


def scaffold(molecule, min_rings: int = 2) -> str | None:
    """Bemis–Murcko scaffold SMILES, or None with fewer than ``min_rings`` rings (MOSES: 2)."""
    try:
        core = MurckoScaffold.GetScaffoldForMol(molecule)
    except (ValueError, RuntimeError):
        return None
    text = Chem.MolToSmiles(core)
    if not text or core.GetRingInfo().NumRings() < min_rings:
        return None
    return text


@functools.cache
def filter_patterns() -> tuple:
    """MOSES's MCF and PAINS patterns, from the molsets install (one-line error without)."""
    folder = _molsets_folder() / "metrics"
    patterns = []
    with open(folder / "mcf.csv", newline="") as handle:
        patterns += [row["smarts"] for row in csv.DictReader(handle)]
    with open(folder / "wehi_pains.csv", newline="") as handle:
        patterns += [row[0] for row in csv.reader(handle) if row]
    return tuple(Chem.MolFromSmarts(p) for p in patterns)


def passes_filters(molecule) -> bool:
    """MOSES's ``mol_passes_filters``: allowed atoms, no charge, rings < 8, no MCF/PAINS hit."""
    rings = molecule.GetRingInfo().AtomRings()
    if any(len(ring) >= 8 for ring in rings):
        return False
    atoms = list(molecule.GetAtoms())
    if any(a.GetFormalCharge() != 0 for a in atoms) or any(
        a.GetSymbol() not in ALLOWED for a in atoms
    ):
        return False
    with_h = Chem.AddHs(molecule)
    if any(with_h.HasSubstructMatch(pattern) for pattern in filter_patterns()):
        return False
    text = Chem.MolToSmiles(molecule, isomericSmiles=False)
    return bool(text) and Chem.MolFromSmiles(text) is not None


def _describe(smiles: str) -> tuple:
    """Everything the set metrics need of one canonical SMILES (run in worker processes)."""
    molecule = chem.mol_from_smiles(smiles)
    return fingerprint(molecule), fragments(molecule), scaffold(molecule), passes_filters(molecule)


# --- sets -----------------------------------------------------------------------------------


def tanimoto_rows(
    reference: np.ndarray,
    generated: np.ndarray,
    agg: str = "max",
    p: float = 1.0,
    ref_weights: np.ndarray | None = None,
    chunk: int = 4096,
) -> np.ndarray:
    """For each generated fingerprint, the max (or the p-mean, reference rows weighted by
    ``ref_weights``: copies) of its Tanimoto similarities to the reference fingerprints; 0/0
    counts as 1, as in MOSES. (G,) float64."""
    import torch

    ref = torch.from_numpy(np.ascontiguousarray(reference)).float()
    gen = torch.from_numpy(np.ascontiguousarray(generated)).float()
    w = None if ref_weights is None else torch.from_numpy(np.asarray(ref_weights)).double()
    out = torch.zeros(len(gen), dtype=torch.float64)
    ref_bits = ref.sum(1, keepdim=True)
    for i in range(0, len(gen), chunk):
        g = gen[i : i + chunk]
        acc = torch.zeros(len(g), dtype=torch.float64)
        for j in range(0, len(ref), chunk):
            r = ref[j : j + chunk]
            both = r @ g.T  # (R, G)
            sim = torch.nan_to_num(both / (ref_bits[j : j + chunk] + g.sum(1)[None, :] - both), 1.0)
            if agg == "max":
                acc = torch.maximum(acc, sim.max(0).values.double())
            else:
                powered = sim.double() ** p
                if w is not None:
                    powered = powered * w[j : j + chunk, None]
                acc += powered.sum(0)
        out[i : i + chunk] = acc
    if agg != "max":
        total = float(len(ref)) if w is None else float(w.sum())
        out = (out / total) ** (1.0 / p)
    return out.numpy()


def tanimoto_aggregate(
    reference: np.ndarray, generated: np.ndarray, agg: str = "max", p: float = 1.0
) -> float:
    """MOSES's ``average_agg_tanimoto``: the mean over generated fingerprints of
    ``tanimoto_rows``."""
    return float(tanimoto_rows(reference, generated, agg, p).mean())


def cosine_similarity(ref: Counter, gen: Counter) -> float:
    """Cosine similarity of two count dictionaries (missing keys count 0); NaN if one is empty."""
    if not ref or not gen:
        return math.nan
    keys = sorted(set(ref) | set(gen))
    a = np.array([ref.get(k, 0) for k in keys], dtype=np.float64)
    b = np.array([gen.get(k, 0) for k in keys], dtype=np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def statistics(smiles: Sequence[str], workers: int = 1, fcd: bool = True) -> dict:
    """A reference set's statistics, as MOSES's ``compute_intermediate_statistics``:
    ``FCD`` (mu, sigma), ``SNN`` (fingerprints), ``Frag`` and ``Scaf`` (counts)."""
    canon = [Chem.MolToSmiles(m) for m in map(mol, smiles) if m is not None]
    if not canon:
        raise ValueError("the reference set has no valid molecule")
    described = _describe_all(canon, workers)
    stats = {
        "SNN": {"fps": np.stack([d[0] for d in described])},
        "Frag": {"frag": Counter(f for d in described for f in d[1])},
        "Scaf": {"scaf": Counter(d[2] for d in described if d[2] is not None)},
    }
    if fcd:
        from molgan import fcd as fcd_module

        mu, sigma = fcd_module.statistics(canon)
        stats["FCD"] = {"mu": mu, "sigma": sigma}
    return stats


_DESCRIBED: dict[str, tuple] = {}  # canonical SMILES -> _describe (two readings share most)
_ACTIVATIONS: dict[str, np.ndarray] = {}  # canonical SMILES -> ChemNet activations


def _describe_all(canon: list[str], workers: int) -> list[tuple]:
    todo = [s for s in dict.fromkeys(canon) if s not in _DESCRIBED]
    if len(_DESCRIBED) + len(todo) > 500_000:
        _DESCRIBED.clear()
        todo = list(dict.fromkeys(canon))
    if workers < 2 or len(todo) < 2000:
        with chem.quiet_rdkit():
            found = [_describe(s) for s in todo]
    else:
        size = -(-len(todo) // (workers * 8))
        chunks = [todo[i : i + size] for i in range(0, len(todo), size)]
        found = [d for part in pool_map(_describe_chunk, chunks, workers) for d in part]
    _DESCRIBED.update(zip(todo, found, strict=True))
    return [_DESCRIBED[s] for s in canon]


def _fcd_statistics(unique: list[str], copies: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of the ChemNet activations of ``unique`` SMILES, each counted
    ``copies`` times (duplicates kept, as MOSES's FCD keeps them)."""
    from molgan import fcd as fcd_module

    todo = [s for s in unique if s not in _ACTIVATIONS]
    if len(_ACTIVATIONS) + len(todo) > 200_000:
        _ACTIVATIONS.clear()
        todo = list(unique)
    if todo:
        _ACTIVATIONS.update(zip(todo, fcd_module.activations(todo), strict=True))
    acts = np.stack([_ACTIVATIONS[s] for s in unique]).astype(np.float64)  # (U, D)
    mu = (acts * copies[:, None]).sum(0) / copies.sum()
    return mu, np.cov(acts, rowvar=False, fweights=copies)


def _describe_chunk(smiles: list[str]) -> list[tuple]:
    with chem.quiet_rdkit():
        return [_describe(s) for s in smiles]


def _molsets_folder() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("moses")
    if spec is None or spec.origin is None:
        raise ValueError(
            "the MOSES reference needs the molsets package: pip install --no-deps molsets"
        )
    return Path(spec.origin).parent


def reference_statistics(name: str = "test") -> dict:
    """The statistics molsets ships for its ``test`` or ``test_scaffolds`` split."""
    path = _molsets_folder() / "dataset" / "data" / f"{name}_stats.npz"
    if not path.is_file():
        raise ValueError(f"{path} is missing from the molsets install")
    return np.load(path, allow_pickle=True)["stats"].item()


def moses_smiles(split: str = "train", limit: int | None = None) -> list[str]:
    """The SMILES of a MOSES split (``train``, ``test``, ``test_scaffolds``), as shipped; the
    first ``limit`` only if given."""
    import itertools

    path = _molsets_folder() / "dataset" / "data" / f"{split}.csv.gz"
    with gzip.open(path, "rt", newline="") as handle:
        rows = itertools.islice(csv.DictReader(handle), limit)
        return [row["SMILES"] for row in rows]


def evaluate(
    smiles: Sequence[str | None],
    *,
    train: Sequence[str] | str | None = "moses",
    test: Sequence[str] | str = "moses",
    test_scaffolds: Sequence[str] | str | None = "moses",
    k: Sequence[int] = (1000, 10000),
    workers: int = 1,
    fcd: bool = True,
) -> dict[str, float]:
    """MOSES's metrics of generated SMILES (definitions in the module docstring).

    Args:
        smiles: generated SMILES as the model wrote them (``None`` = invalid).
        train: SMILES for Novelty (``"moses"``: the MOSES training split; None: no Novelty).
        test, test_scaffolds: the references (``"moses"``: molsets's shipped statistics);
            ``test_scaffolds=None`` leaves out the /TestSF columns.
        k: the unique@k sizes (a warning when fewer valid molecules than k are given).
        workers: processes for the per-molecule RDKit work.
        fcd: compute the FCD columns (needs fcd_torch).

    Returns:
        ``{"valid", "unique@k"..., "FCD/Test", "SNN/Test", "Frag/Test", "Scaf/Test", (the same
        for TestSF), "IntDiv", "IntDiv2", "Filters", "Novelty", "n"}``.
    """
    smiles = list(smiles)
    if not smiles:
        raise ValueError("no molecules to evaluate")
    with chem.quiet_rdkit():
        mols = [mol(s) for s in smiles]
        gen = [Chem.MolToSmiles(m) for m in mols if m is not None]
    out: dict[str, float] = {"n": float(len(smiles)), "valid": len(gen) / len(smiles)}
    for size in k:
        if len(gen) < size:
            warnings.warn(f"unique@{size}: only {len(gen)} valid molecules", stacklevel=2)
        first = gen[:size]
        out[f"unique@{size}"] = len(set(first)) / len(first) if first else math.nan
    if not gen:
        return out | {key: math.nan for key in KEYS if key not in out}
    copies_of = Counter(gen)
    unique = list(copies_of)  # first-seen order
    copies = np.array([copies_of[s] for s in unique], dtype=np.int64)  # (U,)
    described = _describe_all(unique, workers)
    fps = np.stack([d[0] for d in described])  # (U, 1024)
    frags: Counter = Counter()
    scafs: Counter = Counter()
    for d, c in zip(described, copies, strict=True):  # each copy counts, as in MOSES
        for f in d[1]:
            frags[f] += int(c)
        if d[2] is not None:
            scafs[d[2]] += int(c)
    weights = copies / copies.sum()
    references = [("Test", test)]
    if test_scaffolds is not None:
        references.append(("TestSF", test_scaffolds))
    gen_fcd = _fcd_statistics(unique, copies) if fcd else None
    for label, ref in references:
        if isinstance(ref, str):
            stats = reference_statistics("test" if label == "Test" else "test_scaffolds")
        else:
            stats = statistics(ref, workers, fcd=fcd)
        if gen_fcd is not None:
            from molgan import fcd as fcd_module

            out[f"FCD/{label}"] = fcd_module.frechet_distance(
                *gen_fcd, stats["FCD"]["mu"], stats["FCD"]["sigma"]
            )
        out[f"SNN/{label}"] = float(weights @ tanimoto_rows(stats["SNN"]["fps"], fps))
        out[f"Frag/{label}"] = cosine_similarity(stats["Frag"]["frag"], frags)
        out[f"Scaf/{label}"] = cosine_similarity(stats["Scaf"]["scaf"], scafs)
    for p, key in ((1, "IntDiv"), (2, "IntDiv2")):
        rows = tanimoto_rows(fps, fps, agg="mean", p=p, ref_weights=copies)
        out[key] = 1.0 - float(weights @ rows)
    out["Filters"] = float(weights @ np.array([d[3] for d in described], dtype=np.float64))
    if train is not None:
        train_set = set(moses_smiles("train") if isinstance(train, str) else train)
        out["Novelty"] = len(set(unique) - train_set) / len(unique)
    return out
