"""molgan.moses_metrics against MOSES's own source (molsets 0.3.1, imported with two shims:
``rdkit.six`` and ``DataFrame.append`` are gone from today's RDKit and pandas)."""

import importlib
import importlib.util
import math
import sys
import types

import numpy as np
import pytest

from molgan import moses_metrics

EDGE_CASES = [
    "CCO.CCN",  # two fragments: valid for MOSES
    "C[N+](C)(C)C",  # charged: fails Filters
    "C1CCCCCCC1",  # an 8-ring: fails Filters
    "CCCCI",  # iodine: not an allowed atom
    "CC(=O)C=CC(=O)c1ccccc1",  # a Michael acceptor (MCF)
    "Oc1ccccc1O",  # catechol
    "c1ccccc1",  # no fingerprint overlap problems, 1 ring: no scaffold counted
    "c1ccc2ccccc2c1",  # 2 rings: a scaffold
    "C",
    None,
    "",
    "C1CC",  # unparsable
    "c1cccc1",  # does not kekulise
]


@pytest.fixture(scope="module")
def moses_source():
    if importlib.util.find_spec("moses") is None:
        pytest.skip("molsets is not installed")
    import pandas as pd

    patch = pytest.MonkeyPatch()
    six = types.ModuleType("rdkit.six")
    six.iteritems = lambda d: iter(d.items())
    six.iterkeys = lambda d: iter(d.keys())
    six.itervalues = lambda d: iter(d.values())
    patch.setitem(sys.modules, "rdkit.six", six)
    if not hasattr(pd.DataFrame, "append"):
        patch.setattr(
            pd.DataFrame,
            "append",
            lambda self, other, sort=False: pd.concat([self, other], sort=sort),
            raising=False,
        )
    try:
        source = importlib.import_module("moses.metrics.metrics")
    except Exception as err:  # noqa: BLE001 -- a molsets that no shim revives
        patch.undo()
        pytest.skip(f"MOSES's metrics do not import here: {err}")
    yield source
    patch.undo()


@pytest.fixture(scope="module")
def sets():
    if importlib.util.find_spec("moses") is None:
        pytest.skip("molsets is not installed")
    test = moses_metrics.moses_smiles("test", 40)
    scaffolds = moses_metrics.moses_smiles("test_scaffolds", 30)
    train = moses_metrics.moses_smiles("train", 300)
    gen = scaffolds + train[:5] + train[:5] + test[:3] + EDGE_CASES  # duplicates, novel and not
    return gen, test, train


def test_each_metric_equals_moses_own_definition(moses_source, sets):
    mm = moses_source
    gen, test, train = sets
    ours = moses_metrics.evaluate(
        gen, train=train, test=test, test_scaffolds=None, k=(5, 40), fcd=False
    )
    valid = mm.remove_invalid(gen, canonize=True)
    mols = [mm.get_mol(s) for s in valid]
    test_mols = [mm.get_mol(s) for s in test]
    assert ours["valid"] == pytest.approx(mm.fraction_valid(gen))
    assert ours["valid"] < 1  # the unparsable entries count
    assert ours["unique@5"] == pytest.approx(mm.fraction_unique(valid, 5))
    assert ours["unique@40"] == pytest.approx(mm.fraction_unique(valid, 40))
    assert ours["unique@40"] < 1  # the duplicates count
    assert ours["SNN/Test"] == pytest.approx(mm.SNNMetric()(gen=mols, ref=test_mols), abs=1e-6)
    assert ours["Frag/Test"] == pytest.approx(mm.FragMetric()(gen=mols, ref=test_mols), abs=1e-9)
    assert ours["Scaf/Test"] == pytest.approx(mm.ScafMetric()(gen=mols, ref=test_mols), abs=1e-9)
    assert ours["IntDiv"] == pytest.approx(mm.internal_diversity(mols), abs=1e-6)
    assert ours["IntDiv2"] == pytest.approx(mm.internal_diversity(mols, p=2), abs=1e-6)
    assert ours["Filters"] == pytest.approx(mm.fraction_passes_filters(mols))
    assert 0 < ours["Filters"] < 1
    assert ours["Novelty"] == pytest.approx(mm.novelty(mols, train))
    assert 0 < ours["Novelty"] < 1


def test_filters_reject_what_moses_rejects_molecule_by_molecule(moses_source):
    from moses.metrics.utils import mol_passes_filters

    for smiles in EDGE_CASES:
        molecule = moses_metrics.mol(smiles)
        if molecule is None:
            continue
        assert moses_metrics.passes_filters(molecule) == mol_passes_filters(molecule), smiles
    assert not moses_metrics.passes_filters(moses_metrics.mol("C1CCCCCCC1"))


def test_scaffolds_need_two_rings_as_in_moses():
    assert moses_metrics.scaffold(moses_metrics.mol("c1ccccc1CC")) is None
    assert (
        moses_metrics.scaffold(moses_metrics.mol("c1ccc(Cc2ccccn2)cc1CC")) == "c1ccc(Cc2ccccn2)cc1"
    )


def test_internal_diversity_of_identical_molecules_is_zero_and_of_disjoint_ones_is_half():
    same = moses_metrics.fingerprint(moses_metrics.mol("CCOc1ccccc1"))[None].repeat(3, 0)
    assert 1 - moses_metrics.tanimoto_aggregate(same, same, agg="mean") == pytest.approx(0)
    disjoint = np.zeros((2, 1024), dtype=np.uint8)
    disjoint[0, :10] = 1
    disjoint[1, 10:20] = 1
    # pairs (i, j) include i = j: mean similarity (1 + 0) / 2.
    assert 1 - moses_metrics.tanimoto_aggregate(disjoint, disjoint, agg="mean") == pytest.approx(
        0.5
    )


@pytest.mark.slow
def test_fcd_against_the_shipped_test_statistics_equals_moses_call(moses_source, sets):
    pytest.importorskip("fcd_torch")
    gen, _, train = sets
    from moses.dataset import get_statistics

    stats = get_statistics("test")
    ours = moses_metrics.evaluate(gen, train=train, test_scaffolds=None, k=(5,))
    valid = moses_source.remove_invalid(gen, canonize=True)
    mols = [moses_source.get_mol(s) for s in valid]
    assert ours["SNN/Test"] == pytest.approx(
        moses_source.SNNMetric()(gen=mols, pref=stats["SNN"]), abs=1e-6
    )
    from fcd_torch import FCD

    try:
        theirs = FCD()(gen=valid, pref=stats["FCD"])
    except Exception as err:  # noqa: BLE001 -- fcd_torch's sqrtm call fails on newer SciPy
        pytest.skip(f"fcd_torch's own FCD call fails here: {err}")
    assert ours["FCD/Test"] == pytest.approx(theirs, rel=1e-4)
    assert not math.isnan(ours["Frag/Test"])
