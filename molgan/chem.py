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
import io
import signal
import threading
from collections.abc import Iterator

import numpy as np
from rdkit import Chem, RDLogger

from molgan.rundir import atomic_path

ATOM_TYPES: tuple[str, ...] = ("pad", "C", "N", "O", "F")
BOND_TYPES: tuple[str, ...] = ("none", "single", "double", "triple")
# Neutral valences (the data holds no charged atoms: they do not round-trip) and bond orders,
# by vocabulary name, for a valence check on soft graphs (molgan.losses.valence_excess).
VALENCE: dict[str, int] = {"pad": 0, "C": 4, "N": 3, "O": 2, "F": 1}
BOND_ORDER: dict[str, int] = {"none": 0, "single": 1, "double": 2, "triple": 3}

_ATOMIC_NUM = {"C": 6, "N": 7, "O": 8, "F": 9}
_TABLE = Chem.GetPeriodicTable()
_RDKIT_BOND = {
    "single": Chem.BondType.SINGLE,
    "double": Chem.BondType.DOUBLE,
    "triple": Chem.BondType.TRIPLE,
}


MAX_SMILES_LENGTH = 1000  # far beyond any molecule molgan can encode; longer input is refused


class Samples(list):
    """Generated SMILES, one per graph, that also remember each graph's lenient SMILES.

    The list holds the strict result (``None`` for a graph that is not one valid molecule)
    or, with ``strict=False``, the dotted SMILES of multi-fragment graphs. ``lenient[i]`` is
    always the latter, so ``molgan.evaluate`` reports lenient validity correctly either way.
    """

    def __init__(self, lenient: list[str | None], strict: bool = True, corrected: bool = False):
        super().__init__([None if strict and s and "." in s else s for s in lenient])
        self.lenient = list(lenient)
        self.corrected = corrected  # valency-corrected: never reported as strict validity

    @classmethod
    def concat(cls, parts: list[Samples], strict: bool = True) -> Samples:
        corrected = any(getattr(part, "corrected", False) for part in parts)
        return cls([s for part in parts for s in part.lenient], strict, corrected)


@contextlib.contextmanager
def quiet_rdkit() -> Iterator[None]:
    """Silence RDKit's logger inside the block (generated graphs are often garbage)."""
    RDLogger.DisableLog("rdApp.*")
    try:
        yield
    finally:
        RDLogger.EnableLog("rdApp.*")


@contextlib.contextmanager
def signals_deferred() -> Iterator[None]:
    """Hold SIGINT and SIGTERM back while RDKit works, and deliver them when the block ends.

    RDKit's interruptible searches catch a Ctrl-C themselves ("Substructure search was
    interrupted") and carry on, so a stop asked for during scoring could be lost. Held back in
    the calling thread, which must be the main one (elsewhere, or without ``pthread_sigmask``,
    a no-op); threads started inside the block inherit the mask, but one of another library
    started before it with the signals open could still take them.
    """
    if threading.current_thread() is not threading.main_thread() or not hasattr(
        signal, "pthread_sigmask"
    ):
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def mol_from_smiles(smiles: str | None) -> Chem.Mol | None:
    """Parse and sanitise a SMILES string; ``None`` if it is empty or RDKit rejects it."""
    if not smiles or not isinstance(smiles, str) or len(smiles) > MAX_SMILES_LENGTH:
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


def heavy_atoms(smiles: str | None, sanitize: bool = True) -> list[str]:
    """Element symbols of the heavy atoms of a SMILES (``[]`` if it does not parse).
    ``sanitize=False`` skips RDKit's sanitisation (~3× faster; the same symbols for any valid
    SMILES, e.g. a training set's)."""
    if not sanitize and smiles and isinstance(smiles, str) and len(smiles) <= MAX_SMILES_LENGTH:
        with quiet_rdkit():
            mol = Chem.MolFromSmiles(smiles, sanitize=False)
    else:
        mol = mol_from_smiles(smiles)
    return (
        []
        if mol is None
        else [atom.GetSymbol() for atom in mol.GetAtoms() if atom.GetAtomicNum() > 1]
    )


def atom_type(atom: Chem.Atom) -> str:
    """An atom's vocabulary name: its element and formal charge, e.g. ``C``, ``N+``, ``O-``,
    ``Fe+2``."""
    charge = atom.GetFormalCharge()
    if charge == 0:
        return atom.GetSymbol()
    sign = "+" if charge > 0 else "-"
    return f"{atom.GetSymbol()}{sign}{abs(charge) if abs(charge) > 1 else ''}"


def parse_atom_type(name: str) -> tuple[str, int]:
    """``"N+"`` -> ``("N", 1)``, ``"O-"`` -> ``("O", -1)``, ``"Fe+2"`` -> ``("Fe", 2)``."""
    for sign, value in (("+", 1), ("-", -1)):
        if sign in name:
            symbol, _, count = name.partition(sign)
            return symbol, value * int(count or 1)
    return name, 0


@functools.cache
def elements() -> frozenset[str]:
    """The element symbols RDKit knows (H to Og)."""
    return frozenset(_TABLE.GetElementSymbol(number) for number in range(1, 119))


def type_sort_key(name: str) -> tuple[int, int]:
    """Vocabulary order: by atomic number, then charge (so C, N, O, F lead as in QM9's).

    Raises:
        ValueError: not an element symbol (checked before RDKit, which would print a C++ stack
            trace for it).
    """
    symbol, charge = parse_atom_type(name)
    if symbol not in elements():
        raise ValueError(f"unknown element {symbol!r}")
    return _TABLE.GetAtomicNumber(symbol), charge


def type_valence(name: str) -> int:
    """The most bonds an atom of vocabulary type ``name`` makes, for the valence penalty on
    soft graphs: QM9's neutral valences for C, N, O, F; otherwise RDKit's largest allowed
    valence of the isoelectronic element (N+ like C: 4; O- like F: 1; S: 6)."""
    if name in VALENCE:
        return VALENCE[name]
    symbol, charge = parse_atom_type(name)
    number = _TABLE.GetAtomicNumber(symbol) - charge
    if number < 1:
        return 0
    valences = [v for v in _TABLE.GetValenceList(number) if v >= 0]
    return max(valences) if valences else 0


def _symbols(atom_types) -> set[str]:
    return {parse_atom_type(t)[0] for t in atom_types[1:]}


def graph_reject_reason(
    mol: Chem.Mol, max_atoms: int, atom_types: tuple[str, ...] = ATOM_TYPES
) -> str | None:
    """Why ``mol`` cannot be encoded as a graph of ``max_atoms`` nodes, or ``None`` if it can.
    (A charged atom whose type the vocabulary lacks is encoded neutral, so it fails the round
    trip of ``molgan.data``: QM9's charged molecules are counted that way.)"""
    if mol.GetNumAtoms() == 0:
        return "no heavy atoms"
    if mol.GetNumAtoms() > max_atoms:
        return "too many heavy atoms"
    symbols = _symbols(atom_types) if atom_types is not ATOM_TYPES else _ATOMIC_NUM
    for atom in mol.GetAtoms():
        if atom.GetSymbol() not in symbols:
            return f"atom {atom.GetSymbol()} not in vocabulary"
        if atom.GetIsotope():
            return "isotope label (a graph has none)"
    if any(atom.GetDegree() == 0 for atom in mol.GetAtoms()):
        return "isolated atom"  # the official code's filter; drops CH4, NH3, H2O
    if len(Chem.GetMolFrags(mol)) > 1:
        return "several fragments"
    return None


def mol_to_graph(
    mol: Chem.Mol, max_atoms: int, atom_types: tuple[str, ...] = ATOM_TYPES
) -> tuple[np.ndarray, np.ndarray] | None:
    """Encode a molecule as dense type-index arrays, kekulised.

    Args:
        mol: a sanitised RDKit molecule (implicit hydrogens).
        max_atoms: N, the number of graph nodes; shorter molecules are padded with type 0.
        atom_types: the vocabulary (index 0 = pad); an atom whose charged type it lacks is
            encoded as its neutral element.

    Returns:
        ``(atoms, bonds)`` with shapes (N,) and (N, N), dtype int8, or ``None`` if the molecule has
        atoms outside the vocabulary, more than N heavy atoms, or cannot be kekulised.
    """
    if graph_reject_reason(mol, max_atoms, atom_types) is not None:
        return None
    mol = Chem.Mol(mol)
    try:
        Chem.Kekulize(mol, clearAromaticFlags=True)
    except Chem.rdchem.KekulizeException:
        return None
    atoms = np.zeros(max_atoms, dtype=np.int8)  # (N,)
    bonds = np.zeros((max_atoms, max_atoms), dtype=np.int8)  # (N, N)
    index = {name: i for i, name in enumerate(atom_types)}
    for atom in mol.GetAtoms():
        atoms[atom.GetIdx()] = index.get(atom_type(atom), index.get(atom.GetSymbol(), 0))
    for bond in mol.GetBonds():
        name = str(bond.GetBondType()).lower()
        if name not in _RDKIT_BOND:
            return None
        i, j = bond.GetBeginAtomIdx(), bond.GetEndAtomIdx()
        bonds[i, j] = bonds[j, i] = BOND_TYPES.index(name)
    return atoms, bonds


def graph_to_mol(
    atoms: np.ndarray, bonds: np.ndarray, atom_types: tuple[str, ...] = ATOM_TYPES
) -> Chem.Mol | None:
    """Decode type-index arrays to a sanitised molecule; pad nodes and their bonds are dropped.

    Args:
        atoms: (N,) atom-type indices into ``atom_types`` (default: QM9's ``ATOM_TYPES``).
        bonds: (N, N) bond-type indices into ``BOND_TYPES``; only the upper triangle is read.

    Returns:
        The sanitised molecule (possibly several fragments), or ``None`` if it is empty or RDKit
        cannot sanitise it (e.g. a valence violation).
    """
    mol = _unsanitised(atoms, bonds, atom_types)
    if mol is None:
        return None
    mol = mol.GetMol()
    with quiet_rdkit():
        try:
            Chem.SanitizeMol(mol)
        except (Chem.rdchem.MolSanitizeException, ValueError, RuntimeError):
            return None
    return mol


def _unsanitised(
    atoms: np.ndarray, bonds: np.ndarray, atom_types: tuple[str, ...]
) -> Chem.RWMol | None:
    """The molecule a graph spells, not sanitised (``None`` without atoms)."""
    atoms = np.asarray(atoms)
    bonds = np.asarray(bonds)
    mol = Chem.RWMol()
    node_to_idx: dict[int, int] = {}
    for node, kind in enumerate(atoms.tolist()):
        if kind > 0:
            node_to_idx[node] = mol.AddAtom(_new_atom(atom_types[kind]))
    if not node_to_idx:
        return None
    rows, cols = np.nonzero(np.triu(bonds, k=1))
    for i, j in zip(rows.tolist(), cols.tolist(), strict=False):
        if i in node_to_idx and j in node_to_idx:  # bonds to pad nodes are dropped (PR #13)
            mol.AddBond(node_to_idx[i], node_to_idx[j], _RDKIT_BOND[BOND_TYPES[bonds[i, j]]])
    return mol


_LOWER = {3.0: Chem.BondType.DOUBLE, 2.0: Chem.BondType.SINGLE}  # one order down; single: gone


def corrected_smiles(
    atoms: np.ndarray, bonds: np.ndarray, atom_types: tuple[str, ...] = ATOM_TYPES
) -> str | None:
    """The graph's molecule after valency correction, as MoFlow (Zang & Wang 2020) and GDSS
    report it: while an atom holds more bonds than its valence, lower that atom's
    highest-order bond by one (a single bond is removed); then keep the largest fragment.

    Returns:
        Canonical SMILES of one fragment, or ``None`` (no atom, or a problem correction does
        not touch, e.g. an aromatic ring that does not kekulise).
    """
    mol = _unsanitised(atoms, bonds, atom_types)
    if mol is None:
        return None
    with quiet_rdkit():
        for _ in range(mol.GetNumBonds() * 3 + 1):  # each round lowers one order: it ends
            over = [
                p
                for p in Chem.DetectChemistryProblems(mol)
                if p.GetType() == "AtomValenceException"
            ]
            if not over:
                break
            atom = mol.GetAtomWithIdx(over[0].GetAtomIdx())
            bonds_of = list(atom.GetBonds())
            if not bonds_of:
                return None  # over its valence without a bond (a charge): nothing to lower
            bond = max(bonds_of, key=lambda b: (b.GetBondTypeAsDouble(), -b.GetIdx()))
            lower = _LOWER.get(bond.GetBondTypeAsDouble())
            if lower is None:
                mol.RemoveBond(bond.GetBeginAtomIdx(), bond.GetEndAtomIdx())
            else:
                bond.SetBondType(lower)
        try:
            Chem.SanitizeMol(mol)
        except (Chem.rdchem.MolSanitizeException, ValueError, RuntimeError):
            return None
        pieces = Chem.GetMolFrags(mol, asMols=True, sanitizeFrags=False)
    largest = max(pieces, key=lambda piece: piece.GetNumAtoms())
    return Chem.MolToSmiles(largest)


@functools.lru_cache(maxsize=256)
def _atom_template(name: str) -> Chem.Atom:
    symbol, charge = parse_atom_type(name)
    atom = Chem.Atom(symbol)
    atom.SetFormalCharge(charge)
    return atom


def _new_atom(name: str) -> Chem.Atom:
    return Chem.Atom(_atom_template(name))


def graph_to_smiles(
    atoms: np.ndarray,
    bonds: np.ndarray,
    strict: bool = True,
    atom_types: tuple[str, ...] = ATOM_TYPES,
) -> str | None:
    """Canonical SMILES of a graph, or ``None`` if it is not a valid molecule.

    With ``strict`` a molecule of several fragments counts as invalid; without it the dotted
    SMILES of all fragments is returned (the official code's lenient validity).
    """
    mol = graph_to_mol(atoms, bonds, atom_types)
    if mol is None:
        return None
    smiles = Chem.MolToSmiles(mol)
    if strict and "." in smiles:
        return None
    return smiles


def sdf_block(smiles: list[str | None], start: int = 0) -> str:
    """SDF text with one record per entry, named ``sample_<start + i>``, 2D coordinates.

    An entry that is not a molecule gives an empty record (no atoms), so a reader counts every
    sample; multi-fragment molecules are kept as such. For ``Samples`` the lenient SMILES are
    written (each record's ``strictly_valid`` property says 1 or 0).
    """
    from rdkit.Chem import AllChem

    entries = smiles.lenient if isinstance(smiles, Samples) else list(smiles)
    out = io.StringIO()
    with Chem.SDWriter(out) as writer:
        for i, smi in enumerate(entries):
            mol = mol_from_smiles(smi)
            if mol is None:
                mol = Chem.Mol()
            else:
                AllChem.Compute2DCoords(mol)
            mol.SetProp("_Name", f"sample_{start + i}")
            mol.SetIntProp("strictly_valid", int(is_strictly_valid(smi)))
            writer.write(mol)
    return out.getvalue()


def draw_grid(smiles: list[str | None], path: str, per_row: int = 6, max_mols: int = 48) -> int:
    """Draw up to ``max_mols`` strictly valid molecules (one fragment) as a PNG grid.

    Returns:
        The number drawn. Raises ``ValueError`` when none is strictly valid, or when RDKit's
        drawing cannot load (a system library missing, as on headless GPU hosts).
    """
    try:
        from rdkit.Chem import Draw
    except ImportError as err:  # e.g. "libXrender.so.1: cannot open shared object file"
        missing = str(err).split(":")[0].strip() or "a system library"
        raise ValueError(
            f"cannot draw molecules: RDKit's drawing needs {missing}, which is not installed "
            "(on Debian/Ubuntu: apt-get install libxrender1 libxext6)"
        ) from None

    valid = [s for s in smiles if is_strictly_valid(s)][:max_mols]
    mols = [mol_from_smiles(s) for s in valid]
    if not mols:
        raise ValueError("no strictly valid molecule to draw")
    image = Draw.MolsToGridImage(
        mols, molsPerRow=per_row, subImgSize=(200, 200), legends=[Chem.MolToSmiles(m) for m in mols]
    )
    with atomic_path(path) as tmp:  # a failed write is one line and leaves no partial PNG
        image.save(str(tmp), format="PNG")
    return len(mols)


def sdf_smiles(text: str) -> list[tuple[int, str]]:
    """``(record number, SMILES)`` of every record of an SD file's text; ``""`` for a record
    RDKit cannot read."""
    entries = []
    with quiet_rdkit():
        supplier = Chem.ForwardSDMolSupplier(io.BytesIO(text.encode()))
        for number, mol in enumerate(supplier, start=1):
            entries.append((number, Chem.MolToSmiles(mol) if mol is not None else ""))
    return entries
