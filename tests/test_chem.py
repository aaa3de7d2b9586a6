import numpy as np
import pytest
from rdkit import Chem

from molgan import chem
from molgan.molfiles import read_smiles


def test_vocabulary_is_pad_cnof_and_kekulised_bonds():
    assert chem.ATOM_TYPES == ("pad", "C", "N", "O", "F")
    assert chem.BOND_TYPES == ("none", "single", "double", "triple")


def test_round_trip_reproduces_canonical_smiles_for_every_fixture_molecule(tiny_path):
    smiles = [s for _, s in read_smiles(tiny_path)][:-2]  # last two: charged, malformed
    seen_atoms, seen_bonds = set(), set()
    for smi in smiles:
        graph = chem.mol_to_graph(Chem.MolFromSmiles(smi), 9)
        assert graph is not None, smi
        seen_atoms |= set(graph[0].tolist())
        seen_bonds |= set(graph[1].ravel().tolist())
        assert chem.graph_to_smiles(*graph) == chem.canonical(smi)
    assert seen_atoms == {0, 1, 2, 3, 4} and seen_bonds == {0, 1, 2, 3}


def test_graph_is_symmetric_with_empty_diagonal_and_padded():
    atoms, bonds = chem.mol_to_graph(Chem.MolFromSmiles("c1ccoc1"), 9)
    assert atoms.tolist() == [1, 1, 1, 3, 1, 0, 0, 0, 0]
    assert (bonds == bonds.T).all() and (np.diag(bonds) == 0).all()
    assert sorted(bonds[np.triu_indices(9, 1)][bonds[np.triu_indices(9, 1)] > 0]) == [1, 1, 1, 2, 2]


def test_pad_nodes_and_their_bonds_are_dropped():
    atoms = np.array([1, 0, 3, 0])
    bonds = np.zeros((4, 4), dtype=int)
    bonds[0, 2] = bonds[2, 0] = 1
    bonds[0, 1] = bonds[1, 0] = 2  # a bond to a pad node is ignored
    assert chem.graph_to_smiles(atoms, bonds) == "CO"


def test_invalid_valence_gives_none_not_an_exception():
    atoms = np.array([2, 1, 1, 1, 1, 3])  # N with 5 single bonds
    bonds = np.zeros((6, 6), dtype=int)
    for j in range(1, 6):
        bonds[0, j] = bonds[j, 0] = 1
    assert chem.graph_to_mol(atoms, bonds) is None
    assert chem.graph_to_smiles(atoms, bonds) is None


def test_fragments_are_none_when_strict_and_dotted_when_lenient():
    atoms = np.array([1, 1, 3, 0])
    bonds = np.zeros((4, 4), dtype=int)
    bonds[0, 1] = bonds[1, 0] = 1
    assert chem.graph_to_smiles(atoms, bonds) is None
    assert chem.graph_to_smiles(atoms, bonds, strict=False) == "CC.O"


def test_empty_graph_is_none():
    assert chem.graph_to_smiles(np.zeros(3, int), np.zeros((3, 3), int), strict=False) is None


@pytest.mark.parametrize(
    "smiles, reason",
    [
        ("CCCCCCCCCC", "too many heavy atoms"),
        ("CCS", "atom S not in vocabulary"),
        ("C", "isolated atom"),
        ("CC.O", "isolated atom"),
        ("CC.OO", "several fragments"),
    ],
)
def test_reject_reasons(smiles, reason):
    assert chem.graph_reject_reason(Chem.MolFromSmiles(smiles), 9) == reason


def test_charged_molecules_do_not_round_trip():
    graph = chem.mol_to_graph(Chem.MolFromSmiles("C[N+](=O)[O-]"), 9)
    assert chem.graph_to_smiles(*graph) != chem.canonical("C[N+](=O)[O-]")


def test_strict_validity_rejects_dummy_atoms_fragments_and_garbage():
    assert chem.is_strictly_valid("CCO")
    assert not chem.is_strictly_valid("*CCO")
    assert not chem.is_strictly_valid("CC.O")
    assert not chem.is_strictly_valid("C1CC")
    assert not chem.is_strictly_valid(None)
    assert not chem.is_strictly_valid("")
