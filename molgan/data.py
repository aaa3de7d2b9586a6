"""Molecule datasets: read SMILES files, filter, encode as dense graphs, split and cache.

Tensor conventions used everywhere in molgan (channel last, so softmax/argmax use ``dim=-1``):
  ``x``    (B, N, T) node types, T = len(ATOM_TYPES), channel 0 = no atom (padding);
  ``adj``  (B, N, N, R) bond types, R = len(BOND_TYPES), channel 0 = no bond; symmetric, and the
           diagonal is always "no bond";
  ``z``    (B, Z) latent noise; rewards are (B, 1) floats in [0, 1].
On disk and in ``Dataset`` graphs are stored as int8 type indices, ``atoms`` (M, N) and
``bonds`` (M, N, N); ``one_hot`` turns a batch of them into ``x`` / ``adj``.
"""

from __future__ import annotations

import hashlib
import os
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from molgan import chem, rewards
from molgan.molfiles import read_smiles
from molgan.pool import pool_map, progress_bar

FORMAT = 2  # bump when the cached tensor layout or the filter changes (2: isotopes dropped)
DEFAULT_DATA = Path(__file__).resolve().parent.parent / "data" / "qm9.smi.gz"
_MAX_REPORTED_LINES = 10


class Batch(NamedTuple):
    """One-hot graph batch: ``x`` (B, N, T) and ``adj`` (B, N, N, R)."""

    x: torch.Tensor
    adj: torch.Tensor


@dataclass
class Dataset:
    """Encoded molecules and a fixed train/val/test split.

    Attributes:
        atoms: (M, N) int8 atom-type indices.
        bonds: (M, N, N) int8 bond-type indices.
        smiles: M canonical SMILES, in the same order.
        split: ``{"train", "val", "test"}`` -> int64 index tensors into the rows above.
        drops: count of input lines dropped, per reason.
        atom_types: the atom vocabulary (index 0 = pad): QM9's C, N, O, F, or the (element,
            charge) types of the data (``atoms="auto"``).
    """

    atoms: torch.Tensor
    bonds: torch.Tensor
    smiles: list[str]
    split: dict[str, torch.Tensor]
    drops: dict[str, int]
    atom_types: tuple[str, ...] = field(default=chem.ATOM_TYPES)

    @property
    def max_atoms(self) -> int:
        return self.atoms.shape[1]

    def smiles_of(self, part: str) -> list[str]:
        """Canonical SMILES of one split part (``train``, ``val`` or ``test``)."""
        return [self.smiles[i] for i in self.split[part].tolist()]


def one_hot(atoms: torch.Tensor, bonds: torch.Tensor, num_atom_types: int = 0) -> Batch:
    """Index tensors (B, N) and (B, N, N) -> float one-hot ``Batch(x, adj)``."""
    T = num_atom_types or len(chem.ATOM_TYPES)
    x = torch.nn.functional.one_hot(atoms.long(), T).float()  # (B, N, T)
    adj = torch.nn.functional.one_hot(bonds.long(), len(chem.BOND_TYPES)).float()  # (B, N, N, R)
    return Batch(x, adj)


AUTO = "auto"  # atom vocabulary from the data: (element, charge) types of the training file


def _encode(
    smiles: str, max_atoms: int, atom_types: tuple[str, ...] | None = chem.ATOM_TYPES
) -> tuple | str:
    """Encode one SMILES; returns ``(canonical, atoms, bonds, types)`` or the reason it was
    dropped. ``atom_types`` None (``auto``): the molecule's own types are its vocabulary
    (``types``, index 0 = pad), remapped to the data's vocabulary by ``load_dataset``."""
    if len(smiles) > chem.MAX_SMILES_LENGTH:
        return f"SMILES longer than {chem.MAX_SMILES_LENGTH} characters"
    mol = chem.mol_from_smiles(smiles)
    if mol is None:
        return "unparsable SMILES"
    types = atom_types
    if types is None:
        own = {chem.atom_type(atom) for atom in mol.GetAtoms()}
        types = ("pad", *sorted(own, key=chem.type_sort_key))
    reason = chem.graph_reject_reason(mol, max_atoms, types)
    if reason is not None:
        return reason
    graph = chem.mol_to_graph(mol, max_atoms, types)
    if graph is None:
        return "cannot kekulise"
    from rdkit import Chem

    target = Chem.MolToSmiles(mol, isomericSmiles=False)  # the graph carries no stereo
    if chem.graph_to_smiles(*graph, atom_types=types) != chem.canonical(target):
        return "does not round-trip (charges/radicals)"
    return chem.canonical(target), graph[0], graph[1], types


def _encode_chunk(args: tuple) -> list:
    smiles, max_atoms, atom_types = args
    return [_encode(s, max_atoms, atom_types) for s in smiles]


def encode_all(
    smiles: list[str],
    max_atoms: int,
    workers: int | None = None,
    atom_types: tuple[str, ...] | None = chem.ATOM_TYPES,
) -> list:
    """Encode many SMILES (``_encode`` on each), in a process pool when the list is large,
    with a progress bar on a terminal (a first QM9 load takes ~20 s)."""
    workers = workers or min(os.cpu_count() or 1, 8)
    if len(smiles) < 5000 or workers < 2:
        return _encode_chunk((smiles, max_atoms, atom_types))
    size = -(-len(smiles) // (workers * 16))
    chunks = [(smiles[i : i + size], max_atoms, atom_types) for i in range(0, len(smiles), size)]
    with progress_bar(len(chunks), f"encoding {len(smiles):,} molecules") as update:
        parts = list(pool_map(_encode_chunk, chunks, workers, update))
    return [item for part in parts for item in part]


def vocabulary(spec: str | Sequence[str]) -> tuple[str, ...] | None:
    """An atom vocabulary from its spec: ``qm9`` (C, N, O, F), ``auto`` (None: from the data),
    or a comma list of types such as ``C,N,O,N+,O-,S,Cl``.

    Raises:
        ValueError: an unknown element or a malformed type.
    """
    if not isinstance(spec, str):
        spec = ",".join(spec)
    spec = spec.strip()
    if spec in ("", "qm9"):
        return chem.ATOM_TYPES
    if spec == AUTO:
        return None
    names = [t.strip() for t in spec.split(",") if t.strip() and t.strip() != "pad"]
    for name in names:
        symbol, _ = chem.parse_atom_type(name)
        try:
            chem.type_sort_key(name)
        except (RuntimeError, ValueError):
            raise ValueError(f"atoms: unknown element {symbol!r} in {name!r}") from None
        if not symbol[:1].isupper():
            raise ValueError(f"atoms: {name!r} is not an element symbol with an optional charge")
    if len(set(names)) != len(names) or not names:
        raise ValueError(f"atoms: give distinct atom types, got {spec!r}")
    types = ("pad", *names)
    return chem.ATOM_TYPES if types == chem.ATOM_TYPES else types


def split_indices(m: int, seed: int) -> dict[str, torch.Tensor]:
    """Deterministic 80/10/10 split of ``m`` rows for a seed (val and test get int(0.1·m))."""
    perm = torch.randperm(m, generator=torch.Generator().manual_seed(seed))  # (M,)
    n_val = n_test = int(0.1 * m)
    n_train = m - n_val - n_test
    return {
        "train": perm[:n_train].sort().values,
        "val": perm[n_train : n_train + n_val].sort().values,
        "test": perm[n_train + n_val :].sort().values,
    }


MOSES = {  # --data names of the MOSES splits (ZINC Clean Leads, C N S O F Cl Br, ≤ 27 atoms)
    "moses": "train.csv.gz",
    "moses-test": "test.csv.gz",
    "moses-test-scaffolds": "test_scaffolds.csv.gz",
}
MOSES_MAX_ATOMS = 27


def moses_file(name: str = "moses") -> Path:
    """A MOSES split from the ``molsets`` package (``pip install --no-deps molsets``: its old
    pins are not needed to read its files), found without importing it (its import needs an
    old RDKit).

    Raises:
        ValueError: molsets is not installed, or its files are missing.
    """
    import importlib.util

    spec = importlib.util.find_spec("moses")
    if spec is None or spec.origin is None:
        raise ValueError(
            f"--data {name} reads the MOSES splits from the molsets package: "
            "pip install --no-deps molsets"
        )
    path = Path(spec.origin).parent / "dataset" / "data" / MOSES[name]
    if not path.is_file():
        raise ValueError(f"--data {name}: {path} is missing from the molsets install")
    return path


def resolve_path(path: str | Path) -> Path:
    """The data file: empty -> shipped QM9; ``moses`` (and ``moses-test``,
    ``moses-test-scaffolds``) -> the MOSES split of the molsets package; a relative path
    missing here is tried in the repo."""
    if not str(path):
        return DEFAULT_DATA
    if str(path) in MOSES and not Path(path).exists():
        return moses_file(str(path))
    candidate = Path(path)
    repo_relative = DEFAULT_DATA.parent.parent / candidate
    if not candidate.exists() and not candidate.is_absolute() and repo_relative.exists():
        return repo_relative
    return candidate


def file_digest(path: Path) -> str:
    """SHA-256 of a file's bytes (hex), read in blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fingerprint(cfg) -> dict:
    """What a run of ``cfg`` trains on: its data file's checksum and the settings that encode
    it (stored in the run's checkpoints, so that a resume can tell whether the data changed)."""
    path = resolve_path(cfg.data)
    return {
        "file": str(path),
        "sha256": file_digest(path) if path.is_file() else "",
        "max_atoms": cfg.max_atoms,
        "atoms": cfg.atoms,
        "atoms_min_count": cfg.atoms_min_count,
        "split_seed": cfg.split_seed,
        "format": FORMAT,
    }


def check_fingerprint(stored: dict, cfg, where: str) -> None:
    """Refuse to resume a run on data other than it started with.

    Raises:
        ValueError: one line: the data file's checksum differs from ``stored``'s.
    """
    now = fingerprint(cfg)
    if stored.get("sha256") and now["sha256"] != stored["sha256"]:
        raise ValueError(
            f"{where}: the data file {now['file']} changed since this run started (sha256 "
            f"{stored['sha256'][:12]} -> {now['sha256'][:12] or 'missing'}); a resume trains on "
            "the same data: restore the file, or start a new run with --name"
        )


def _cache_path(path: Path, max_atoms: int, types=chem.ATOM_TYPES, min_count: int = 0) -> Path:
    digest = file_digest(path)[:16]
    vocab = ",".join((types or (AUTO, str(min_count))) + chem.BOND_TYPES)
    key = hashlib.sha256(f"{digest}|{max_atoms}|{vocab}|{FORMAT}".encode()).hexdigest()[:16]
    return path.resolve().parent / "cache" / f"{path.name.split('.')[0]}-{key}.pt"


def load_dataset(
    path: str | Path = DEFAULT_DATA,
    max_atoms: int = 9,
    split_seed: int = 0,
    *,
    use_cache: bool = True,
    verbose: bool = True,
    atoms: str | Sequence[str] = "qm9",
    min_count: int = 10,
) -> Dataset:
    """Read, filter, encode and split a molecule file, with an on-disk cache.

    Molecules are dropped (and counted per reason) when they do not parse, have more than
    ``max_atoms`` heavy atoms, atoms outside C/N/O/F, an isolated atom or several fragments, or
    do not decode back to the same canonical SMILES. The encoded tensors are cached next to the
    file in ``cache/``, keyed by the file's checksum, ``max_atoms`` and the vocabulary.

    Args:
        path: a .smi/.csv/.sdf file, optionally gzipped. Defaults to the shipped QM9.
        max_atoms: N, the number of graph nodes.
        split_seed: seed of the 80/10/10 split (independent of the training seed).
        use_cache: read and write the cache.
        verbose: print drop counts and malformed lines to stderr.
        atoms: the atom vocabulary (``vocabulary``): ``qm9`` (C, N, O, F; charged molecules do
            not round-trip), ``auto`` (every (element, charge) type in at least ``min_count``
            molecules; molecules with a rarer type are dropped and counted), or a comma list.
        min_count: with ``auto``, the fewest molecules a type must be in.

    Raises:
        ValueError: the file is unreadable, empty, or no molecule survives the filters.
    """
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path} is a directory, not a data file")
    if not path.is_file():
        raise ValueError(f"data file not found: {path}")
    types = vocabulary(atoms)
    cache = _cache_path(path, max_atoms, types, min_count)
    if use_cache and cache.is_file():
        try:
            blob = torch.load(cache, weights_only=True)
            cached = (blob["atoms"], blob["bonds"], blob["smiles"], blob["drops"])
            kinds = tuple(blob.get("atom_types", chem.ATOM_TYPES))
        except Exception:  # noqa: BLE001 -- a broken cache is rebuilt, never fatal
            blob = None
        if blob is not None:
            split = split_indices(len(cached[2]), split_seed)
            return Dataset(cached[0], cached[1], cached[2], split, cached[3], kinds)

    entries = read_smiles(path)
    results = encode_all([s for _, s in entries], max_atoms, atom_types=types)
    drops: Counter[str] = Counter()
    kept, seen = [], set()
    for (number, raw), result in zip(entries, results, strict=False):
        if isinstance(result, str):
            drops[result] += 1
            if result == "unparsable SMILES" and verbose and drops[result] <= _MAX_REPORTED_LINES:
                what = f"malformed entry {raw[:60]!r}" if raw else "an SDF record RDKit cannot read"
                print(f"{path.name}:{number}: skipped {what}", file=sys.stderr)
        elif result[0] in seen:
            drops["duplicate"] += 1
        else:
            seen.add(result[0])
            kept.append(result)
    if types is None:
        kept, types = _common_types(kept, min_count, drops)
    if verbose:
        summary = ", ".join(f"{n} {reason}" for reason, n in drops.most_common()) or "none"
        print(
            f"{path.name}: {len(entries)} read, {len(kept)} kept; dropped: {summary}",
            file=sys.stderr,
        )
        if types != chem.ATOM_TYPES:
            print(f"{path.name}: atom types {', '.join(types[1:])}", file=sys.stderr)
    if not kept:
        allowed = ", ".join(types[1:]) if types else "types in ≥ {min_count} molecules"
        raise ValueError(f"no usable molecule in {path} (≤{max_atoms} heavy atoms of {allowed})")
    smiles = [k[0] for k in kept]
    atom_index = torch.from_numpy(np.stack([k[1] for k in kept]))  # (M, N)
    bonds = torch.from_numpy(np.stack([k[2] for k in kept]))  # (M, N, N)
    if use_cache:
        blob = {"atoms": atom_index, "bonds": bonds, "smiles": smiles, "drops": dict(drops)}
        _save_cache(cache, blob | {"atom_types": list(types)})
    split = split_indices(len(smiles), split_seed)
    return Dataset(atom_index, bonds, smiles, split, dict(drops), tuple(types))


def _common_types(kept: list, min_count: int, drops: Counter) -> tuple[list, tuple[str, ...]]:
    """``auto``: the vocabulary of the types in at least ``min_count`` molecules, and the
    molecules re-indexed into it; those with a rarer type are dropped and counted."""
    counts = Counter(t for k in kept for t in k[3][1:])  # each molecule's own types, once
    common = sorted((t for t, n in counts.items() if n >= min_count), key=chem.type_sort_key)
    types = ("pad", *common)
    index = {t: i for i, t in enumerate(types)}
    out = []
    for canonical, atoms, bonds, own in kept:
        rare = [t for t in own[1:] if t not in index]
        if rare:
            drops[f"rare atom type {rare[0]} (in fewer than {min_count} molecules)"] += 1
            continue
        remap = np.array([index[t] for t in own], dtype=np.int8)
        out.append((canonical, remap[atoms], bonds))
    return out, (types if common else chem.ATOM_TYPES)


def dataset_of(cfg, vocab: Sequence[str] | None = None, verbose: bool = True) -> Dataset:
    """The data a run of ``cfg`` (a ``Config``) trains on: its file, ``max_atoms``, split and
    atom vocabulary (``atoms``; '' = qm9 for the shipped QM9, auto for a file of one's own).
    ``vocab``: a checkpoint's atom types, which a resumed run keeps: the run's own settings
    give them again (and its encoded cache, under the same key), or the resume is refused.

    Raises:
        ValueError: bad data or settings, or data whose vocabulary is not ``vocab``.
    """
    spec = cfg.atoms or ("auto" if cfg.data else "qm9")
    if cfg.data in MOSES and cfg.max_atoms < MOSES_MAX_ATOMS:
        raise ValueError(
            f"MOSES molecules have up to {MOSES_MAX_ATOMS} heavy atoms: add --max-atoms "
            f"{MOSES_MAX_ATOMS} (now {cfg.max_atoms})"
        )
    data = load_dataset(
        resolve_path(cfg.data),
        cfg.max_atoms,
        cfg.split_seed,
        verbose=verbose,
        atoms=spec,
        min_count=cfg.atoms_min_count,
    )
    if vocab and tuple(vocab) != data.atom_types:
        raise ValueError(
            f"the data's atom types ({', '.join(data.atom_types[1:])}) are not the run's "
            f"({', '.join(list(vocab)[1:])}): the data changed since the run started"
        )
    return data


def _save_cache(cache: Path, blob: dict) -> None:
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(".tmp")
        torch.save(blob, tmp)
        os.replace(tmp, cache)
    except OSError as err:  # a read-only data folder only costs the cache
        print(f"note: cannot write cache {cache}: {err}", file=sys.stderr)


def dataset_rewards(data: Dataset, spec: str, verbose: bool = True) -> torch.Tensor:
    """Reward ``spec`` of every dataset molecule, (M,), computed once and cached in data/cache/."""
    key = hashlib.sha256(("\n".join(data.smiles) + "|" + spec).encode()).hexdigest()[:16]
    cache = DEFAULT_DATA.parent / "cache" / f"rewards-{key}.pt"
    if cache.is_file():
        try:
            return torch.load(cache, weights_only=True)
        except Exception:  # noqa: BLE001 -- a broken cache is recomputed
            pass
    if verbose:
        print(
            f"scoring {len(data.smiles)} dataset molecules for reward {spec!r} (once)...",
            file=sys.stderr,
        )
    train = set(data.smiles_of("train"))
    values = torch.from_numpy(rewards.reward(data.smiles, spec, train)[:, 0])  # (M,)
    _save_cache(cache, values)
    return values
