"""The RDKit boundary: atom/bond vocabulary and molecule <-> dense graph conversion.

A graph is a pair of integer arrays: ``atoms`` (N,) of atom-type indices (0 = pad / no atom) and
``bonds`` (N, N) of bond-type indices (0 = no bond), symmetric with a zero diagonal. Molecules are
kekulised, so the bond channels are [none, single, double, triple] as in the paper (Y = 4); the
official code keeps an aromatic channel, which leaves ~5.9% of QM9 undecodable (spec §3.2).
Nothing here raises on bad chemistry: unparsable or unsanitisable input gives ``None``.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator

import numpy as np
from rdkit import Chem, RDLogger

ATOM_TYPES: tuple[str, ...] = ("pad", "C", "N", "O", "F")
BOND_TYPES: tuple[str, ...] = ("none", "single", "double", "triple")

_ATOMIC_NUM = {"C": 6, "N": 7, "O": 8, "F": 9}
_RDKIT_BOND = {
    "single": Chem.BondType.SINGLE,
    "double": Chem.BondType.DOUBLE,
    "triple": Chem.BondType.TRIPLE,
}


@contextlib.contextmanager
def quiet_rdkit() -> Iterator[None]:
    """Silence RDKit's logger inside the block (generated graphs are often garbage)."""
    RDLogger.DisableLog("rdApp.*")
    try:
        yield
    finally:
        RDLogger.EnableLog("rdApp.*")


def mol_from_smiles(smiles: str | None) -> Chem.Mol | None:
    """Parse and sanitise a SMILES string; ``None`` if it is empty or RDKit rejects it."""
    if not smiles or not isinstance(smiles, str):
        return None
    with quiet_rdkit():
        return Chem.MolFromSmiles(smiles)


@functools.lru_cache(maxsize=500_000)
def canonical(smiles: str | None) -> str | None:
    """Canonical RDKit SMILES of ``smiles``, or ``None`` if it does not parse."""
    mol = mol_from_smiles(smiles)
    return None if mol is None else Chem.MolToSmiles(mol)


@functools.lru_cache(maxsize=500_000)  # called on every reward and metric; pure in its input
def is_strictly_valid(smiles: str | None) -> bool:
    """True for a parsable, non-empty, single-fragment SMILES without dummy (``*``) atoms."""
    mol = mol_from_smiles(smiles)
    if mol is None or mol.GetNumAtoms() == 0:
        return False
    if any(atom.GetAtomicNum() == 0 for atom in mol.GetAtoms()):
        return False
    return len(Chem.GetMolFrags(mol)) == 1


def graph_reject_reason(mol: Chem.Mol, max_atoms: int) -> str | None:
    """Why ``mol`` cannot be encoded as a graph of ``max_atoms`` nodes, or ``None`` if it can."""
    if mol.GetNumAtoms() == 0:
        return "no heavy atoms"
    if mol.GetNumAtoms() > max_atoms:
        return "too many heavy atoms"
    for atom in mol.GetAtoms():
        if atom.GetSymbol() not in _ATOMIC_NUM:
            return f"atom {atom.GetSymbol()} not in vocabulary"
    if any(atom.GetDegree() == 0 for atom in mol.GetAtoms()):
        return "isolated atom"  # the official code's filter; drops CH4, NH3, H2O
    if len(Chem.GetMolFrags(mol)) > 1:
        return "several fragments"
    return None


def mol_to_graph(mol: Chem.Mol, max_atoms: int) -> tuple[np.ndarray, np.ndarray] | None:
    """Encode a molecule as dense type-index arrays, kekulised.

    Args:
        mol: a sanitised RDKit molecule (implicit hydrogens).
        max_atoms: N, the number of graph nodes; shorter molecules are padded with type 0.

    Returns:
        ``(atoms, bonds)`` with shapes (N,) and (N, N), dtype int8, or ``None`` if the molecule has
        atoms outside the vocabulary, more than N heavy atoms, or cannot be kekulised.
    """
    if graph_reject_reason(mol, max_atoms) is not None:
        return None
    mol = Chem.Mol(mol)
    try:
        Chem.Kekulize(mol, clearAromaticFlags=True)
    except Chem.rdchem.KekulizeException:
        return None
    atoms = np.zeros(max_atoms, dtype=np.int8)  # (N,)
    bonds = np.zeros((max_atoms, max_atoms), dtype=np.int8)  # (N, N)
    for atom in mol.GetAtoms():
        atoms[atom.GetIdx()] = ATOM_TYPES.index(atom.GetSymbol())
    for bond in mol.GetBonds():
        name = str(bond.GetBondType()).lower()
        if name not in _RDKIT_BOND:
            return None
        i, j = bond.GetBeginAtomIdx(), bond.GetEndAtomIdx()
        bonds[i, j] = bonds[j, i] = BOND_TYPES.index(name)
    return atoms, bonds


def graph_to_mol(atoms: np.ndarray, bonds: np.ndarray) -> Chem.Mol | None:
    """Decode type-index arrays to a sanitised molecule; pad nodes and their bonds are dropped.

    Args:
        atoms: (N,) atom-type indices into ``ATOM_TYPES``.
        bonds: (N, N) bond-type indices into ``BOND_TYPES``; only the upper triangle is read.

    Returns:
        The sanitised molecule (possibly several fragments), or ``None`` if it is empty or RDKit
        cannot sanitise it (e.g. a valence violation).
    """
    atoms = np.asarray(atoms)
    bonds = np.asarray(bonds)
    mol = Chem.RWMol()
    node_to_idx: dict[int, int] = {}
    for node, kind in enumerate(atoms.tolist()):
        if kind > 0:
            node_to_idx[node] = mol.AddAtom(Chem.Atom(_ATOMIC_NUM[ATOM_TYPES[kind]]))
    if not node_to_idx:
        return None
    rows, cols = np.nonzero(np.triu(bonds, k=1))
    for i, j in zip(rows.tolist(), cols.tolist(), strict=False):
        if i in node_to_idx and j in node_to_idx:  # bonds to pad nodes are dropped (PR #13)
            mol.AddBond(node_to_idx[i], node_to_idx[j], _RDKIT_BOND[BOND_TYPES[bonds[i, j]]])
    mol = mol.GetMol()
    with quiet_rdkit():
        try:
            Chem.SanitizeMol(mol)
        except (Chem.rdchem.MolSanitizeException, ValueError, RuntimeError):
            return None
    return mol


def graph_to_smiles(atoms: np.ndarray, bonds: np.ndarray, strict: bool = True) -> str | None:
    """Canonical SMILES of a graph, or ``None`` if it is not a valid molecule.

    With ``strict`` a molecule of several fragments counts as invalid; without it the dotted
    SMILES of all fragments is returned (the official code's lenient validity).
    """
    mol = graph_to_mol(atoms, bonds)
    if mol is None:
        return None
    smiles = Chem.MolToSmiles(mol)
    if strict and "." in smiles:
        return None
    return smiles


def mols_to_sdf(smiles: list[str | None], path: str) -> int:
    """Write the valid SMILES as an SDF file (2D coordinates); returns the number written."""
    from rdkit.Chem import AllChem

    written = 0
    with Chem.SDWriter(str(path)) as writer:
        for i, smi in enumerate(smiles):
            mol = mol_from_smiles(smi)
            if mol is None:
                continue
            AllChem.Compute2DCoords(mol)
            mol.SetProp("_Name", f"sample_{i}")
            writer.write(mol)
            written += 1
    return written


def draw_grid(smiles: list[str | None], path: str, per_row: int = 6, max_mols: int = 48) -> int:
    """Draw up to ``max_mols`` valid molecules as a PNG grid; returns the number drawn."""
    from rdkit.Chem import Draw

    mols = [m for m in (mol_from_smiles(s) for s in smiles) if m is not None][:max_mols]
    if not mols:
        raise ValueError("no valid molecule to draw")
    image = Draw.MolsToGridImage(
        mols, molsPerRow=per_row, subImgSize=(200, 200), legends=[Chem.MolToSmiles(m) for m in mols]
    )
    image.save(str(path))
    return len(mols)
