"""Per-molecule scores in [0, 1] (ORGAN's constants, as in the official MolGAN code) and rewards.

Raw RDKit scores (QED, Crippen logP, Ertl SA, NP-likeness) are memoised by SMILES and computed in
a process pool for large sets, because training asks for them every generator step and RDKit's
QED runs at only ~660 molecules/s per core. Normalisations (spec §4.1):
  logP  (x + 2.12178879609) / (6.0429063424 + 2.12178879609)      clipped to [0, 1]
  SA    (x - 5) / (1.5 - 5)                                        clipped
  NP    (x + 3) / (1 - (-3))                                       clipped
  diversity  (mean Tanimoto distance to reference - 0.9) / 0.045   clipped
A reward is the product of the chosen normalised scores; an invalid molecule (``None``) gets 0.
"""

from __future__ import annotations

import functools
import gzip
import math
import os
import pickle
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Sequence

import numpy as np
from rdkit import Chem, DataStructs, RDConfig
from rdkit.Chem import QED, Crippen, rdFingerprintGenerator

from molgan import chem
from molgan.pool import _die_with_parent, pool_map, progress_bar

RAW_SCORES = ("qed", "logp", "sa", "np")
REWARDS = ("validity", "qed", "logp", "sa", "np", "diversity", "drugcandidate", "novelty", "unique")
POOL_THRESHOLD = 2000  # uncached molecules above which a process pool pays for its start-up
PROGRESS_THRESHOLD = 20_000  # uncached molecules above which scoring shows progress
_MEMO: dict[str, dict[str, float]] = {name: {} for name in RAW_SCORES}
_MEMO_LIMIT = 2_000_000


def normalize_logp(x: np.ndarray) -> np.ndarray:
    """Crippen logP -> [0, 1] ("solubility"), ORGAN's range [-2.1218, 6.0429], clipped."""
    return np.clip((x + 2.12178879609) / (6.0429063424 + 2.12178879609), 0.0, 1.0)


def normalize_sa(x: np.ndarray) -> np.ndarray:
    """Ertl SA score (1 easy .. 10 hard) -> [0, 1] ("synthesizability"): 1 at SA ≤ 1.5, 0 at ≥ 5."""
    return np.clip((x - 5.0) / (1.5 - 5.0), 0.0, 1.0)


def normalize_np(x: np.ndarray) -> np.ndarray:
    """NP-likeness (about -5..5) -> [0, 1] via ORGAN's remap(-3, 1), clipped."""
    return np.clip((x + 3.0) / 4.0, 0.0, 1.0)


def normalize_diversity(x: np.ndarray) -> np.ndarray:
    """Mean Tanimoto distance -> [0, 1] via ORGAN's remap(0.9, 0.945), clipped."""
    return np.clip((x - 0.9) / 0.045, 0.0, 1.0)


def constant_bump(x: np.ndarray, low: float, high: float, decay: float = 0.025) -> np.ndarray:
    """1 inside [low, high], Gaussian decay exp(-(x - edge)² / decay) outside (ORGAN)."""
    edge = np.where(x < low, low, np.where(x > high, high, x))
    return np.exp(-((x - edge) ** 2) / decay)


@functools.cache
def _sa_module():
    sys.path.append(os.path.join(RDConfig.RDContribDir, "SA_Score"))
    import sascorer  # RDKit Contrib, identical to the ORGAN pickle the official code downloads

    return sascorer


@functools.cache
def _np_model() -> dict:
    path = os.path.join(RDConfig.RDContribDir, "NP_Score", "publicnp.model.gz")
    with gzip.open(path) as handle:
        return pickle.load(handle)


@functools.cache
def _np_fingerprinter():
    return rdFingerprintGenerator.GetMorganGenerator(radius=2)


def np_score(mol: Chem.Mol) -> float:
    """Ertl NP-likeness, as RDKit Contrib ``npscorer.scoreMol`` (without its stderr prints)."""
    model = _np_model()
    bits = _np_fingerprinter().GetSparseCountFingerprint(mol).GetNonzeroElements()
    score = sum(model.get(bit, 0.0) for bit in bits) / mol.GetNumAtoms()
    if score > 4:
        score = 4.0 + math.log10(score - 4.0 + 1.0)
    elif score < -4:
        score = -4.0 - math.log10(-4.0 - score + 1.0)
    return score


_RAW: dict[str, Callable[[Chem.Mol], float]] = {
    "qed": QED.qed,
    "logp": Crippen.MolLogP,
    "sa": lambda mol: _sa_module().calculateScore(mol),
    "np": np_score,
}


def _compute(job: tuple[list[str], tuple[str, ...]]) -> list[list[float]]:
    smiles, names = job
    out = []
    for smi in smiles:
        mol = chem.mol_from_smiles(smi)
        out.append([_RAW[n](mol) if mol is not None else math.nan for n in names])
    return out


def raw_scores(
    smiles: Sequence[str | None], names: Iterable[str] = RAW_SCORES, workers: int | None = None
) -> dict[str, np.ndarray]:
    """Raw RDKit scores per molecule, NaN where a SMILES is ``None`` or does not parse.

    Results are memoised by SMILES string (pass canonical SMILES for best reuse). Above
    ``POOL_THRESHOLD`` uncached molecules the work is spread over ``workers`` processes
    (default: all cores).

    Args:
        smiles: B SMILES strings or ``None``.
        names: any of ``qed``, ``logp``, ``sa``, ``np``.
        workers: process count for large sets; 1 disables the pool.

    Returns:
        ``{name: (B,) float array}``.
    """
    names = tuple(names)
    unknown = set(names) - set(RAW_SCORES)
    if unknown:
        raise ValueError(f"unknown score(s) {sorted(unknown)}; choose from {RAW_SCORES}")
    todo = sorted({s for s in smiles if s and any(s not in _MEMO[n] for n in names)})
    if todo:
        workers = workers or os.cpu_count() or 1
        if _POOL and len(todo) >= _POOL[0].min_jobs:  # a population's decoder pool is running
            values = _POOL[0].map(_compute, [(part, names) for part in _POOL[0].split(todo)])
        elif workers > 1 and len(todo) >= POOL_THRESHOLD:
            size = -(-len(todo) // (workers * (16 if len(todo) >= PROGRESS_THRESHOLD else 4)))
            jobs = [(todo[i : i + size], names) for i in range(0, len(todo), size)]
            if len(todo) >= PROGRESS_THRESHOLD:
                with progress_bar(
                    len(jobs), f"scoring {len(todo):,} molecules ({', '.join(names)})"
                ) as update:
                    parts = list(pool_map(_compute, jobs, workers, update))
            else:
                parts = list(pool_map(_compute, jobs, workers))
            values = [row for part in parts for row in part]
        else:
            values = _compute((todo, names))
        for smi, row in zip(todo, values, strict=False):
            for name, value in zip(names, row, strict=False):
                memo = _MEMO[name]
                if len(memo) >= _MEMO_LIMIT:
                    memo.clear()
                memo[smi] = value
    return {
        n: np.array([_MEMO[n].get(s, math.nan) if s else math.nan for s in smiles]) for n in names
    }


def _decode(job: tuple) -> list[str | None]:
    atoms, bonds, atom_types = job
    return [
        chem.graph_to_smiles(a, b, atom_types=atom_types) for a, b in zip(atoms, bonds, strict=True)
    ]


class Decoder:
    """Decodes a population's generated graphs to SMILES, and scores the new ones, in a pool
    of worker processes kept for the run (they die with it, ``molgan.pool``): the K·B
    molecules of each generator step would otherwise take one core.

    Use as a context manager; while it is open ``raw_scores`` scores through its pool.
    """

    MIN_GRAPHS = 512  # graphs per generator step below which one process is faster

    def __init__(self, workers: int) -> None:
        self.workers, self.min_jobs, self._ex = workers, 4 * workers, None

    @classmethod
    def for_population(cls, graphs: int) -> Decoder | None:
        """A decoder for ``graphs`` molecules per generator step, or ``None`` where a pool
        does not pay (few graphs, or fewer than 3 cores)."""
        cores = os.cpu_count() or 1
        return cls(cores - 1) if graphs >= cls.MIN_GRAPHS and cores >= 3 else None

    def __enter__(self) -> Decoder:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        # spawned, not forked: the parent holds torch's threads and perhaps a CUDA context
        self._ex = ProcessPoolExecutor(
            self.workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_die_with_parent,
            initargs=(os.getpid(),),
        )
        _POOL.append(self)
        return self

    def __exit__(self, *exc) -> None:
        _POOL.remove(self)
        self._ex.shutdown(wait=False, cancel_futures=True)

    def split(self, items: Sequence) -> list:
        size = -(-len(items) // self.workers)
        return [items[i : i + size] for i in range(0, len(items), size)]

    def map(self, fn: Callable, jobs: list) -> list:
        return [row for part in self._ex.map(fn, jobs) for row in part]

    def __call__(
        self, atoms: np.ndarray, bonds: np.ndarray, atom_types: tuple[str, ...] = chem.ATOM_TYPES
    ) -> list[str | None]:
        """SMILES (``None`` if invalid) of index graphs atoms (M, N), bonds (M, N, N)."""
        parts = zip(self.split(atoms), self.split(bonds), strict=True)
        return self.map(_decode, [(a, b, atom_types) for a, b in parts])


_POOL: list[Decoder] = []  # the open Decoder, if any


@functools.cache
def _fingerprinter():
    return rdFingerprintGenerator.GetMorganGenerator(radius=4, fpSize=2048)


def diversity_raw(smiles: Sequence[str | None], reference: Sequence[str]) -> np.ndarray:
    """Mean Tanimoto distance (Morgan r=4, 2048 bits) of each molecule to the reference set."""
    ref_fps = [
        _fingerprinter().GetFingerprint(m) for m in map(chem.mol_from_smiles, reference) if m
    ]
    out = np.full(len(smiles), math.nan)
    if not ref_fps:
        return out
    for i, smi in enumerate(smiles):
        mol = chem.mol_from_smiles(smi)
        if mol is not None:
            sims = DataStructs.BulkTanimotoSimilarity(_fingerprinter().GetFingerprint(mol), ref_fps)
            out[i] = 1.0 - float(np.mean(sims))
    return out


def diversity_reference(train_smiles: Sequence[str], k: int = 100, seed: int = 0) -> list[str]:
    """A fixed, seeded draw of ``k`` reference molecules (the official code re-draws each call)."""
    pool = sorted(set(train_smiles))
    rng = np.random.default_rng(seed)
    return [pool[i] for i in rng.choice(len(pool), size=min(k, len(pool)), replace=False)]


def score_table(
    smiles: Sequence[str | None],
    train_smiles: Iterable[str] | None = None,
    names: Iterable[str] = REWARDS,
) -> dict[str, np.ndarray]:
    """Normalised per-molecule scores in [0, 1]; an invalid molecule scores 0 on every one.

    Args:
        smiles: B canonical SMILES or ``None``; only strictly valid molecules (single fragment,
            no dummy atoms) score above 0.
        train_smiles: reference set for ``novelty``, ``diversity`` and ``drugcandidate``; without
            it every molecule counts as novel and diversity is measured against ``smiles`` itself.
        names: which scores to return (see ``REWARDS``).

    Returns:
        ``{name: (B,) float array in [0, 1]}``.
    """
    names = tuple(names)
    unknown = set(names) - set(REWARDS)
    if unknown:
        raise ValueError(f"unknown reward(s) {sorted(unknown)}; choose from {REWARDS}")
    valid = np.array([chem.is_strictly_valid(s) for s in smiles], dtype=bool)
    kept = [s if ok else None for s, ok in zip(smiles, valid, strict=False)]
    train = (
        None
        if train_smiles is None
        else (train_smiles if isinstance(train_smiles, (set, frozenset)) else set(train_smiles))
    )
    needs = {
        "qed": {"qed"},
        "logp": {"logp"},
        "sa": {"sa"},
        "np": {"np"},
        "drugcandidate": {"logp", "sa"},
    }
    raw = raw_scores(kept, sorted(set().union(*(needs.get(n, set()) for n in names))))
    out: dict[str, np.ndarray] = {}
    novel = np.array([s is not None and (train is None or s not in train) for s in kept], float)
    for name in names:
        if name == "validity":
            value = valid.astype(float)
        elif name == "qed":
            value = raw["qed"]
        elif name == "logp":
            value = normalize_logp(raw["logp"])
        elif name == "sa":
            value = normalize_sa(raw["sa"])
        elif name == "np":
            value = normalize_np(raw["np"])
        elif name == "novelty":
            value = novel
        elif name == "unique":
            counts = Counter(s for s in kept if s is not None)
            value = np.array([min(0.75 + 1.0 / counts[s], 1.0) if s else 0.0 for s in kept])
        elif name == "diversity":
            reference = diversity_reference(train if train is not None else [s for s in kept if s])
            value = normalize_diversity(diversity_raw(kept, reference))
        else:  # drugcandidate, ORGAN's formula
            bump = constant_bump(normalize_logp(raw["logp"]), 0.210, 0.945)
            value = (bump + normalize_sa(raw["sa"]) + novel + 0.3 * (1.0 - novel)) / 4.0
        out[name] = np.where(valid, np.nan_to_num(value, nan=0.0), 0.0)
    return out


def parse_reward(spec: str) -> tuple[str, ...]:
    """``"qed"`` / ``"qed,sa"`` / ``"all"`` (= qed·sa·logp, the paper's "All") -> score names."""
    names = (
        ("qed", "sa", "logp")
        if spec.strip() == "all"
        else tuple(p.strip() for p in spec.split(",") if p.strip())
    )
    bad = [n for n in names if n not in REWARDS]
    if not names or bad:
        raise ValueError(f"bad reward {spec!r}: use a comma list of {', '.join(REWARDS)} or 'all'")
    return names


def reward(
    smiles: Sequence[str | None], spec: str, train_smiles: Iterable[str] | None = None
) -> np.ndarray:
    """Product of the normalised scores named in ``spec`` -> (B, 1) float32, invalid -> 0."""
    table = score_table(smiles, train_smiles, parse_reward(spec))
    product = np.prod(np.stack(list(table.values())), axis=0)  # (B,)
    return product.astype(np.float32)[:, None]  # (B, 1)
