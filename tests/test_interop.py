"""The ecosystem's interfaces: PyG graphs in and out, a scikit-learn-style estimator, GuacaMol's
DistributionMatchingGenerator."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import molgan
from molgan import chem
from molgan.pyg import smiles_of

pyg = pytest.importorskip("torch_geometric")

MOLECULES = ["CC(=O)N", "OCC#N", "FC1CC1O", "c1ccccc1O", "CN1C=CC=C1"]


def _undirected(edge_index: torch.Tensor) -> set[tuple[int, int]]:
    return {tuple(sorted(pair)) for pair in edge_index.t().tolist()}


def test_to_pyg_follows_pygs_from_smiles_conventions():
    from torch_geometric.utils import from_smiles

    batch = molgan.to_pyg(MOLECULES)
    assert batch.num_graphs == len(MOLECULES)
    for smiles, ours in zip(MOLECULES, batch.to_data_list(), strict=True):
        theirs = from_smiles(smiles, kekulize=True)
        assert ours.num_nodes == theirs.num_nodes  # heavy atoms, in RDKit's order
        assert _undirected(ours.edge_index) == _undirected(theirs.edge_index)
        elements = [chem.ATOM_TYPES[1 + int(k)] for k in ours.x.argmax(1)]
        numbers = {"C": 6, "N": 7, "O": 8, "F": 9}
        assert [numbers[e] for e in elements] == theirs.x[:, 0].tolist()  # atomic numbers
        ours_bonds = {
            (min(i, j), max(i, j)): 1 + int(k)
            for (i, j), k in zip(
                ours.edge_index.t().tolist(), ours.edge_attr.argmax(1), strict=True
            )
        }
        theirs_bonds = {
            (min(i, j), max(i, j)): int(k)
            for (i, j), k in zip(
                theirs.edge_index.t().tolist(), theirs.edge_attr[:, 0], strict=True
            )
        }
        assert ours_bonds == theirs_bonds  # single 1, double 2, triple 3 (kekulised)
        assert ours.x.shape[1] == len(chem.ATOM_TYPES) - 1
        assert ours.edge_attr.shape[1] == len(chem.BOND_TYPES) - 1
        assert ours.smiles == chem.canonical(smiles)


def test_generated_graphs_become_pyg_graphs_that_decode_to_their_smiles():
    model = molgan.load()
    atoms, bonds = model.sample_graphs(40, generator=torch.Generator().manual_seed(0))
    graphs = molgan.to_pyg(atoms, bonds, batch=False)
    assert len(graphs) == 40
    for data, a, b in zip(graphs, atoms, bonds, strict=True):
        assert data.num_nodes == int((a > 0).sum())
        assert data.smiles == (chem.graph_to_smiles(a, b, strict=False) or "")
        src, dst = data.edge_index
        assert _undirected(data.edge_index) == {
            tuple(sorted(p)) for p in zip(dst.tolist(), src.tolist(), strict=True)
        }
        # back to a dense graph: the same molecule
        n = data.num_nodes
        dense_atoms = np.zeros(a.shape, dtype=np.int64)
        dense_atoms[:n] = data.x.argmax(1).numpy() + 1
        dense_bonds = np.zeros(b.shape, dtype=np.int64)
        for (i, j), k in zip(
            data.edge_index.t().tolist(), data.edge_attr.argmax(1).tolist(), strict=True
        ):
            dense_bonds[i, j] = k + 1
        assert chem.graph_to_smiles(dense_atoms, dense_bonds, strict=False) == data.smiles
    with pytest.raises(ValueError, match="cannot encode 'CCCl'"):
        molgan.to_pyg(["CCO", "CCCl"], atom_types=chem.ATOM_TYPES)  # QM9's, asked for


def test_any_molecule_and_any_models_graphs_convert_in_their_own_vocabulary():
    """to_pyg raised ValueError (QM9 vocabulary) on nitrobenzene and dichlorobenzene,
    IndexError on a non-QM9 model's graphs, and KeyError 'smiles' on an invalid graph."""
    batch = molgan.to_pyg(["O=[N+]([O-])c1ccccc1", "Clc1ccc(Cl)cc1"])
    assert batch.num_graphs == 2 and batch.x.shape[1] == 5  # C, N+, O, O-, Cl
    assert batch.smiles == [chem.canonical("O=[N+]([O-])c1ccccc1"), "Clc1ccc(Cl)cc1"]
    types = ("pad", "C", "N+", "O", "O-", "Cl")
    atoms = np.array([[1, 2, 3, 4, 0], [1, 5, 5, 5, 5]])  # nitromethane; C with 4 lone Cl
    bonds = np.zeros((2, 5, 5), dtype=np.int64)
    for i, j, k in ((0, 1, 1), (1, 2, 2), (1, 3, 1)):
        bonds[0, i, j] = bonds[0, j, i] = k
    graphs = molgan.to_pyg(atoms, bonds, atom_types=types, batch=False)
    assert graphs[0].smiles == "C[N+](=O)[O-]" and graphs[0].x.shape == (4, 5)
    assert graphs[1].smiles == "C.Cl.Cl.Cl.Cl" and graphs[1].num_edges == 0
    invalid = np.array([[1, 1, 0, 0, 0]]), np.zeros((1, 5, 5), dtype=np.int64)
    invalid[1][0, 0, 1] = invalid[1][0, 1, 0] = 3
    invalid[1][0, 1, 2] = invalid[1][0, 2, 1] = 3  # a triple bond to a pad node: dropped
    assert molgan.to_pyg(*invalid).smiles == ["C#C"]
    overfull = np.array([[4, 4, 0, 0, 0]]), np.zeros((1, 5, 5), dtype=np.int64)
    overfull[1][0, 0, 1] = overfull[1][0, 1, 0] = 2  # F=F: not a molecule, converts anyway
    assert molgan.to_pyg(*overfull).smiles == [""]
    with pytest.raises(ValueError, match="pass the model's or dataset's own"):
        molgan.to_pyg(atoms, bonds)  # type 5 is beyond QM9's vocabulary


def test_a_dataset_converts_and_a_pyg_dataset_is_training_data(tmp_path, tiny_path):
    from torch_geometric.data import Data

    from molgan.data import load_dataset

    data = load_dataset(tiny_path, verbose=False)
    batch = molgan.to_pyg(data)
    assert batch.num_graphs == len(data.smiles) and batch.smiles == data.smiles
    graphs = batch.to_data_list()
    assert smiles_of(graphs) == data.smiles
    estimator = molgan.MolGANGenerator(
        "debug", out_dir=str(tmp_path), max_steps=3, eval_every=3, eval_samples=8
    )
    estimator.fit(graphs)  # a PyG dataset of molecules
    assert (estimator.run_dir_ / "ckpt.pt").is_file()
    smiles = estimator.generate(12, seed=1)
    assert len(smiles) == 12 and smiles == estimator.generate(12, seed=1)
    with pytest.raises(ValueError, match="has no smiles"):
        smiles_of([Data(x=torch.zeros(1, 4))])


def test_the_estimator_checks_settings_first_and_loads_checkpoints():
    with pytest.raises(ValueError, match="lam must be in"):
        molgan.MolGANGenerator(lam=3.0)
    with pytest.raises(TypeError):
        molgan.MolGANGenerator(learning_rate=1.0)
    with pytest.raises(ValueError, match="call fit first"):
        molgan.MolGANGenerator().generate(3)
    shipped = molgan.MolGANGenerator.from_checkpoint()
    assert shipped.generate(20, seed=3) == molgan.sample(20, seed=3)
    assert shipped.get_params()["z_dim"] == shipped.model_.config["z_dim"]


def test_guacamol_generator_is_guacamols_interface_class():
    model = molgan.load()
    generator = molgan.guacamol_generator(model, seed=5)
    first, second = generator.generate(30), generator.generate(30)
    assert len(first) == 30 and all(isinstance(s, str) for s in first)
    assert first != second  # each call draws new molecules
    assert first == molgan.guacamol_generator(model, seed=5).generate(30)  # reproducibly
    assert sum(s == "" for s in first) == sum(s is None for s in model.sample(30, 5))
    base = pytest.importorskip("guacamol.distribution_matching_generator")
    assert isinstance(generator, base.DistributionMatchingGenerator)
