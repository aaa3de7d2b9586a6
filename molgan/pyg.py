"""Graphs in and out as PyTorch Geometric ``Data`` / ``Batch`` (``torch_geometric``, imported
lazily).

``to_pyg`` turns molgan's dense graphs — generated ones, a dataset's, or any molecules' SMILES
encoded on the way, each in its own vocabulary — into sparse PyG molecules: ``x`` the atom
one-hot over the vocabulary without its pad type (n, T-1), ``edge_index`` both directions of
every bond (2, 2E), ``edge_attr`` the bond one-hot without "no bond" (2E, R-1), ``smiles``.
Atoms keep RDKit's order, as PyG's ``from_smiles`` does. ``smiles_of`` reads the SMILES of a
PyG molecule dataset, so that it can be training data (``MolGANGenerator.fit``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import torch

from molgan import chem
from molgan.data import Dataset, _encode


def graph_to_data(
    atoms: np.ndarray,
    bonds: np.ndarray,
    smiles: str | None = None,
    atom_types: Sequence[str] = chem.ATOM_TYPES,
    bond_types: Sequence[str] = chem.BOND_TYPES,
):
    """One dense graph (atoms (N,), bonds (N, N) type indices) as a PyG ``Data``; pad nodes
    and bonds to them are dropped. ``smiles`` default: the graph's own (fragments allowed),
    ``""`` when it is not a molecule (a generated graph may not be)."""
    from torch_geometric.data import Data

    atoms, bonds = np.asarray(atoms), np.asarray(bonds)
    if atoms.size and int(atoms.max()) >= len(atom_types):
        raise ValueError(
            f"the graph uses atom type {int(atoms.max())} but the vocabulary has "
            f"{len(atom_types)} types ({', '.join(atom_types)}): pass the model's or dataset's "
            "own, atom_types=model.atom_types"
        )
    keep = np.nonzero(atoms > 0)[0]  # real atoms, in node order
    index = {int(node): i for i, node in enumerate(keep)}
    x = torch.zeros(len(keep), len(atom_types) - 1)
    x[torch.arange(len(keep)), torch.as_tensor(atoms[keep], dtype=torch.long) - 1] = 1.0
    rows, cols = np.nonzero(np.triu(bonds, k=1))
    pairs = [(index[i], index[j], int(bonds[i, j])) for i, j in zip(rows, cols, strict=True)
             if i in index and j in index]  # fmt: skip
    src = [p[0] for p in pairs] + [p[1] for p in pairs]
    dst = [p[1] for p in pairs] + [p[0] for p in pairs]
    kinds = [p[2] for p in pairs] * 2
    edge_attr = torch.zeros(len(kinds), len(bond_types) - 1)
    if kinds:
        edge_attr[torch.arange(len(kinds)), torch.tensor(kinds) - 1] = 1.0
    edge_index = torch.tensor([src, dst], dtype=torch.long).reshape(2, -1)
    if smiles is None:
        smiles = chem.graph_to_smiles(atoms, bonds, strict=False, atom_types=tuple(atom_types))
    return Data(x=x, edge_index=edge_index, edge_attr=edge_attr, smiles=smiles or "")


def to_pyg(
    source,
    bonds: np.ndarray | None = None,
    *,
    atom_types: Sequence[str] | None = None,
    max_atoms: int = 38,
    batch: bool = True,
):
    """Molecules as PyG graphs.

    Args:
        source: a list of SMILES (any molecule RDKit parses: drug-like ones, charged atoms,
            halogens), an array of atom types (M, N) with ``bonds`` (M, N, N) (e.g.
            ``MolGAN.sample_graphs``; graphs that are not molecules convert too, with
            ``smiles`` ""), or a ``molgan.data.Dataset`` (its own vocabulary).
        atom_types: the atom vocabulary (index 0 = pad): for arrays, the model's
            (``model.atom_types``; default QM9's); for SMILES, default QM9's when every
            molecule fits it, else the (element, charge) types of the given molecules.
        max_atoms: with SMILES, the most heavy atoms a molecule may have.
        batch: return one ``Batch``; else a list of ``Data``.

    Raises:
        ValueError: a SMILES that cannot be encoded (its reason), atom indices beyond the
            vocabulary, or mismatched arrays.
    """
    from torch_geometric.data import Batch

    if isinstance(source, Dataset):
        types = source.atom_types
        graphs = zip(source.atoms.numpy(), source.bonds.numpy(), source.smiles, strict=True)
    elif bonds is not None:
        types = tuple(atom_types or chem.ATOM_TYPES)
        atoms = np.asarray(source)
        if atoms.shape[0] != np.asarray(bonds).shape[0]:
            raise ValueError(f"{atoms.shape[0]} atom rows but {np.asarray(bonds).shape[0]} bonds")
        graphs = ((a, b, None) for a, b in zip(atoms, np.asarray(bonds), strict=True))
    else:
        types, graphs = _encoded_all(list(source), max_atoms, atom_types)
    items = [graph_to_data(a, b, s, types) for a, b, s in graphs]
    return Batch.from_data_list(items) if batch else items


def _encoded_all(smiles: list[str], max_atoms: int, atom_types) -> tuple[tuple, list]:
    """SMILES -> (vocabulary, [(atoms, bonds, canonical)]); without ``atom_types`` the
    vocabulary is QM9's when every molecule fits it, else the molecules' own types."""
    if atom_types is not None:
        types = tuple(atom_types)
        return types, [_encoded(s, max_atoms, types) for s in smiles]
    own = [_encoded(s, max_atoms, None) for s in smiles]  # each in its own vocabulary
    present = {t for *_, kinds in own for t in kinds[1:]}
    if present <= set(chem.ATOM_TYPES[1:]):
        types = chem.ATOM_TYPES
    else:
        types = ("pad", *sorted(present, key=chem.type_sort_key))
    out = []
    for atoms, bonds, canonical, kinds in own:
        remap = np.array([types.index(t) if t != "pad" else 0 for t in kinds], dtype=np.int64)
        out.append((remap[atoms], bonds, canonical))
    return types, out


def _encoded(smiles: str, max_atoms: int, atom_types) -> tuple:
    """``(atoms, bonds, canonical)`` in ``atom_types``, or with ``None`` ``(atoms, bonds,
    canonical, its own types)``."""
    encoded = _encode(smiles, max_atoms, atom_types)
    if isinstance(encoded, str):
        raise ValueError(f"cannot encode {smiles!r}: {encoded}")
    canonical, atoms, bonds, types = encoded
    return (atoms, bonds, canonical) if atom_types is not None else (atoms, bonds, canonical, types)


def smiles_of(dataset: Iterable) -> list[str]:
    """The ``smiles`` of every molecule of a PyG dataset (e.g. ``torch_geometric.datasets.QM9``
    or a list of ``Data``), as training data for ``MolGANGenerator.fit``.

    Raises:
        ValueError: a graph without a ``smiles`` attribute.
    """
    out = []
    for i, data in enumerate(dataset):
        smiles = getattr(data, "smiles", None)
        if not isinstance(smiles, str):
            raise ValueError(f"graph {i} of the dataset has no smiles attribute")
        out.append(smiles)
    return out
