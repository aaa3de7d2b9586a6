import math

import pytest

import molgan
from molgan import chem, metrics


def test_validity_counts_none_unparsable_fragments_and_dummies_as_invalid():
    result = metrics.evaluate(["CCO", None, "xyz", "CC.O", "*CC", "c1ccccc1"])
    assert result["valid"] == pytest.approx(2 / 6)
    assert result["valid_lenient"] == pytest.approx(4 / 6)  # fragments and * parse


def test_uniqueness_counts_equivalent_smiles_as_duplicates():
    result = metrics.evaluate(["CCO", "OCC", "C(O)C", "CCN"])
    assert result["unique"] == pytest.approx(2 / 4)


def test_uniqueness_is_over_valid_molecules_only():
    assert metrics.evaluate(["CCO", None, None, "CCN"])["unique"] == 1.0


def test_novelty_is_zero_when_all_in_train():
    assert metrics.evaluate(["CCO", "OCC", "CCN"], train_smiles=["NCC", "CCO"])["novel"] == 0.0


def test_novelty_is_fraction_of_valid_not_in_train():
    result = metrics.evaluate(["CCO", "CCN", "CCC", None], train_smiles=["OCC"])
    assert result["novel"] == pytest.approx(2 / 3)


def test_novelty_is_nan_without_a_training_set():
    assert math.isnan(metrics.evaluate(["CCO"])["novel"])


def test_property_means_are_plain_means_over_valid_molecules():
    frame = metrics.evaluate_frame(["CCO", "CCN"])
    result = metrics.evaluate(["CCO", "CCN", None, "CC.O"])
    for name in ("qed", "logp", "sa", "np"):
        assert result[name] == pytest.approx(frame[name].mean())


def test_paper_nonzero_means_are_an_extra_and_at_least_the_plain_mean():
    smiles = ["CCO", "CC12CC3C4C1C4(C)N32"]  # the cage has SA_norm 0
    plain = metrics.evaluate(smiles)
    paper = metrics.evaluate(smiles, paper_means=True)
    assert "sa_nonzero" not in plain
    assert paper["sa_nonzero"] > paper["sa"]


def test_no_valid_molecule_gives_nan_means_not_an_error():
    result = metrics.evaluate([None, "C1CC"])
    assert result["valid"] == 0.0 and math.isnan(result["qed"])


def test_empty_input_is_a_clear_error():
    with pytest.raises(ValueError, match="at least one"):
        metrics.evaluate([])


def test_frame_has_one_row_per_input_with_raw_and_normalised_scores():
    frame = metrics.evaluate_frame(["OCC", None], train_smiles=["CCO"])
    assert list(frame["smiles"]) == ["CCO", None]
    assert frame.loc[0, "novel"] == 0.0 and not frame.loc[1, "valid"]
    assert frame.loc[0, "sa_raw"] == pytest.approx(1.98, abs=0.01)
    assert 0 < frame.loc[0, "sa"] <= 1


def test_format_row_prints_percentages_and_na():
    row = metrics.format_row(
        {"valid": 0.5, "qed": 0.41234, "novel": math.nan}, ("valid", "novel", "qed")
    )
    assert row == "| 50.0 | n/a | 0.412 |"


def test_reference_row_scores_test_against_train_and_takes_fcd_of_val_vs_test(monkeypatch):
    from molgan import fcd

    seen = []
    monkeypatch.setattr(fcd, "fcd", lambda a, b: seen.append((list(a), list(b))) or 0.5)
    train, val, test = ["CCO", "CCN"], ["CCC"], ["CCO", "CC(C)O"]
    row = metrics.reference_row(train, val, test, with_fcd=True)
    assert row["valid"] == 1.0 and row["novel"] == 0.5 and row["fcd"] == 0.5
    assert seen == [(val, test)]  # never test vs itself (that FCD is 0)
    assert "fcd" not in metrics.reference_row(train, val, test)


@pytest.mark.parametrize(
    "smiles, train, message",
    [
        (None, None, "smiles must be a list of SMILES strings, got NoneType"),
        ("CCO", None, "got str \\(wrap one SMILES in a list\\)"),
        (["CCO"], "CCO", "train_smiles must be a list of SMILES strings, got str"),
        ([1.5], None, "smiles holds 1.5"),
    ],
)
def test_inputs_that_are_not_lists_of_smiles_are_refused(smiles, train, message):
    with pytest.raises(ValueError, match=message):
        metrics.evaluate(smiles, train)


def test_a_huge_smiles_is_invalid_not_a_hang():
    assert metrics.evaluate(["C" * 200_000, "CCO"])["valid"] == 0.5


def test_collapse_measures_count_distinct_molecules_and_the_top100_share():
    smiles = ["CCO"] * 50 + ["CCN"] * 30 + [f"C{'C' * i}O" for i in range(2, 122)]
    result = metrics.evaluate(smiles)
    assert result["distinct"] == 122.0
    assert result["top100_share"] == pytest.approx((50 + 30 + 98) / 200)


def test_mode_shares_and_distances_to_the_training_set():
    train = ["CCO", "CF", "CCCCCCCCO", "CCCCCCCCN"]  # sizes 3, 2, 9, 9; one F in 22 atoms
    same = metrics.evaluate(train, train)
    assert same["atom_tv"] == 0.0 and same["size_tv"] == 0.0
    assert same["f_ratio"] == 1.0 and same["small_ratio"] == 1.0
    big = metrics.evaluate(["CCCCCCCCO", "CCCCCCCCN"], train)
    assert big["f_share"] == 0.0 and big["small_share"] == 0.0 and big["f_ratio"] == 0.0
    assert big["size_tv"] == pytest.approx(0.5)  # half of the train mass sits on sizes 2 and 3


def test_metric_products_and_minimised_metrics_are_checked():
    assert metrics.metric_value("valid*unique", {"score/valid": 0.5, "unique": 0.4}) == 0.2
    assert metrics.metric_value("valid*unique", {"valid": 0.0, "unique": math.nan}) == 0.0
    assert metrics.check_metric("-fcd") == "-fcd"
    with pytest.raises(ValueError, match="unknown metric"):
        metrics.check_metric("validity")


def test_vun_counts_distinct_strictly_valid_novel_molecules_over_all_samples():
    samples = ["CCO", "CCO", "CCN", "CCN", "C.C", None, "CCCC", "not a smiles"]
    result = molgan.evaluate(samples, ["CCO"])
    assert result["vun"] == 2 / 8  # CCN and CCCC; CCO is not novel, C.C not connected
    assert math.isnan(molgan.evaluate(samples)["vun"])  # novelty needs a training set


def test_valency_correction_lowers_overfull_bonds_and_keeps_the_largest_fragment():
    """MoFlow's correction, as GDSS reports "validity with correction"."""
    import numpy as np

    f2 = np.array([4, 4, 0]), np.zeros((3, 3), dtype=np.int64)
    f2[1][0, 1] = f2[1][1, 0] = 2  # F=F: one order down
    assert chem.graph_to_smiles(*f2) is None and chem.corrected_smiles(*f2) == "FF"
    five = np.array([1, 1, 1, 1, 1, 1, 3, 0]), np.zeros((8, 8), dtype=np.int64)
    for j in range(1, 6):  # a carbon with five bonds, and a lone oxygen
        five[1][0, j] = five[1][j, 0] = 1
    assert chem.corrected_smiles(*five) == "CC(C)(C)C"  # one bond gone; the largest piece
    ethanol = np.array([1, 1, 3]), np.zeros((3, 3), dtype=np.int64)
    ethanol[1][0, 1] = ethanol[1][1, 0] = ethanol[1][1, 2] = ethanol[1][2, 1] = 1
    assert chem.corrected_smiles(*ethanol) == chem.graph_to_smiles(*ethanol) == "CCO"


def test_corrected_samples_report_valid_corrected_never_strict_validity():
    corrected = molgan.sample(200, seed=0, correct=True)
    plain = molgan.sample(200, seed=0)
    result = metrics.evaluate(corrected)
    assert "valid" not in result and "valid_lenient" not in result
    assert result["valid_corrected"] >= metrics.evaluate(plain)["valid"]  # correction only adds
    assert all(s is None or "." not in s for s in corrected)  # one fragment each
