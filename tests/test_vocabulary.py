"""Atom vocabularies from the data (issue 24, item 1): (element, charge) types seen in the
training file, stored in the checkpoint and used wherever graphs are decoded; QM9 stays C/N/O/F."""

from __future__ import annotations

import dataclasses
import importlib
from pathlib import Path

import pytest
import torch

from molgan import checkpoint, chem, steps
from molgan.data import load_dataset, vocabulary
from molgan.presets import make_config

train_module = importlib.import_module("molgan.train")
DRUGS = Path(__file__).parent / "data" / "druglike_tiny.smi"


def test_atom_types_name_element_and_charge_and_know_their_valence():
    from rdkit import Chem

    mol = Chem.MolFromSmiles("C[N+](=O)[O-]")
    assert [chem.atom_type(a) for a in mol.GetAtoms()] == ["C", "N+", "O", "O-"]
    assert chem.parse_atom_type("Fe+2") == ("Fe", 2) and chem.parse_atom_type("Cl") == ("Cl", 0)
    valences = {t: chem.type_valence(t) for t in ("C", "N", "O", "F", "N+", "O-", "S", "Cl")}
    assert valences == {"C": 4, "N": 3, "O": 2, "F": 1, "N+": 4, "O-": 1, "S": 6, "Cl": 1}
    types = ("pad", "C", "N", "O", "N+", "O-")
    graph = chem.mol_to_graph(mol, 9, types)
    assert chem.graph_to_smiles(*graph, atom_types=types) == "C[N+](=O)[O-]"
    # QM9's vocabulary has no charged types: the nitro group encodes neutral and does not decode
    assert chem.graph_to_smiles(*chem.mol_to_graph(mol, 9)) is None


def test_auto_vocabulary_comes_from_the_data_and_drops_rare_types(tmp_path):
    path = tmp_path / "d.smi"
    path.write_text(DRUGS.read_text())
    data = load_dataset(path, atoms="auto", min_count=2, verbose=False)
    assert data.atom_types == ("pad", "C", "N", "N+", "O-", "O", "S", "Cl", "Br")
    assert data.drops["rare atom type F (in fewer than 2 molecules)"] == 1
    assert data.drops["isotope label (a graph has none)"] == 1
    for k, smiles in enumerate(data.smiles):  # every kept molecule decodes to itself
        decoded = chem.graph_to_smiles(
            data.atoms[k].numpy(), data.bonds[k].numpy(), atom_types=data.atom_types
        )
        assert decoded == smiles
    again = load_dataset(path, atoms="auto", min_count=2, verbose=False)  # from the cache
    assert again.atom_types == data.atom_types and again.smiles == data.smiles
    fixed = load_dataset(path, atoms="C,N,O,S", verbose=False)
    assert fixed.atom_types == ("pad", "C", "N", "O", "S")
    assert not any("+" in s or "-" in s for s in fixed.smiles)  # charged ones did not round-trip
    assert load_dataset(path, verbose=False).atom_types == chem.ATOM_TYPES  # qm9 by default


def test_bad_vocabularies_are_one_line_errors():
    assert vocabulary("qm9") == chem.ATOM_TYPES and vocabulary("C,N,O,F") == chem.ATOM_TYPES
    assert vocabulary("auto") is None
    with pytest.raises(ValueError, match="unknown element 'Xx'"):
        vocabulary("C,Xx")
    with pytest.raises(ValueError, match="distinct"):
        vocabulary("C,C")


def test_training_on_drug_like_data_keeps_its_vocabulary_in_the_checkpoint(tmp_path):
    path = tmp_path / "d.smi"
    path.write_text(DRUGS.read_text())
    cfg = make_config(
        "debug", data=str(path), atoms="auto", atoms_min_count=2, batch_size=4, max_steps=4,
        eval_every=4, eval_samples=8, out_dir=str(tmp_path / "runs"), valence=1.0,
    )  # fmt: skip
    model = train_module.train(cfg)
    types = ("pad", "C", "N", "N+", "O-", "O", "S", "Cl", "Br")
    assert model.atom_types == types and model.generator.T == len(types)
    run = tmp_path / "runs" / cfg.run_name
    assert checkpoint.load(run).atom_types == types
    nets = steps.step_nets(steps.Population([model]))
    assert nets.valence[0].tolist() == [0, 4, 3, 4, 1, 2, 6, 1, 1]  # per type, charges too
    # the molecules it samples are decoded with its own vocabulary
    atoms = torch.tensor([[1, 3, 5, 4, 0, 0, 0, 0, 0]])  # C, N+, O, O-
    bonds = torch.zeros(1, 9, 9, dtype=torch.long)
    bonds[0, 0, 1] = bonds[0, 1, 0] = 1
    bonds[0, 1, 2] = bonds[0, 2, 1] = 2
    bonds[0, 1, 3] = bonds[0, 3, 1] = 1
    from molgan.decoding import _as_samples

    (samples,) = _as_samples(iter([(atoms.numpy(), bonds.numpy())]), True, model.atom_types)
    assert samples == ["C[N+](=O)[O-]"]
    # a resume reuses the run's encoded data (one cache file, no second encoding) ...
    caches = sorted((tmp_path / "cache").iterdir())
    resumed = train_module.train(dataclasses.replace(cfg, max_steps=6, resume=True))
    assert resumed.atom_types == types and sorted((tmp_path / "cache").iterdir()) == caches
    # ... and refuses, in one line, a data file that changed since the run started
    path.write_text("CCO\nCCN\nCCC\nCCOC\n" * 3)
    with pytest.raises(ValueError, match=r"d.smi changed since this run started \(sha256 "):
        train_module.train(dataclasses.replace(cfg, max_steps=8, resume=True))


def test_the_shipped_qm9_keeps_c_n_o_f_and_a_file_of_ones_own_gets_its_own(monkeypatch):
    from molgan import data as data_module

    asked = []

    def load(*args, **kwargs):
        asked.append(kwargs["atoms"])
        return data_module.Dataset(None, None, [], {}, {}, ("pad", "C", "N+"))

    monkeypatch.setattr(data_module, "load_dataset", load)
    data_module.dataset_of(make_config("latent"))  # the shipped QM9
    data_module.dataset_of(make_config("latent", data="my.smi"))
    data_module.dataset_of(make_config("latent", data="my.smi", atoms="C,N,O,S"))
    # a resumed run asks with its own settings (the same cache key), then checks its vocabulary
    data_module.dataset_of(make_config("latent", data="my.smi"), ("pad", "C", "N+"))
    assert asked == ["qm9", "auto", "C,N,O,S", "auto"]
    with pytest.raises(ValueError, match="the data changed since the run started"):
        data_module.dataset_of(make_config("latent", data="my.smi"), ("pad", "C", "O"))


def test_data_moses_reads_the_molsets_split_and_asks_for_its_size():
    from molgan import data as data_module
    from molgan.molfiles import read_smiles

    with pytest.raises(ValueError, match="add --max-atoms 27"):
        data_module.dataset_of(make_config("latent", data="moses"))
    try:
        path = data_module.resolve_path("moses")
    except ValueError as err:  # molsets not installed: the one-line advice
        assert "pip install --no-deps molsets" in str(err)
        return
    assert path.name == "train.csv.gz" and path.parent.name == "data"
    entries = read_smiles(data_module.resolve_path("moses-test"))
    assert len(entries) == 176_074 and entries[0][1].startswith("CC1C2CCC(C2)C1CN(CCO)")


def test_the_atoms_setting_is_checked_when_the_settings_are_made():
    assert make_config("latent", atoms="C,N,O,N+,O-,Cl").atoms == "C,N,O,N+,O-,Cl"
    with pytest.raises(ValueError, match="atoms must be qm9, auto or a list"):
        make_config("latent", atoms="carbon")


def test_a_zinc250k_format_csv_is_read_as_it_is(tmp_path):
    """The Chemical VAE release's ZINC250k CSV: a `smiles` column whose quoted cells end in a
    newline, beside logP/qed/SAS; drug-like atoms, charges and stereo marks. (Rows written
    here in that format, not copied from the file.)"""
    rows = [
        "CC(C)(C)c1ccc2occ(CC(=O)Nc3ccccc3F)c2c1",
        "C[C@@H]1CC(Nc2cncc(-c3nncn3C)c2)C[C@@H](C)C1",
        "C[NH+]1CCC(NC(=O)c2ccc(Cl)cc2)CC1",
        "O=C([O-])c1ccc(Br)s1",
    ]
    text = "smiles,logP,qed,SAS\n" + "".join(f'"{s}\n",1.0,0.5,2.0\n' for s in rows)
    path = tmp_path / "250k_rndm_zinc_drugs_clean_3.csv"
    path.write_text(text)
    from molgan.molfiles import read_smiles

    assert [s for _, s in read_smiles(path)] == rows
    data = load_dataset(path, max_atoms=38, atoms="auto", min_count=1, use_cache=False)
    assert len(data.smiles) == 4
    assert {"N+", "O-", "S", "Cl", "Br", "F"} <= set(data.atom_types)
