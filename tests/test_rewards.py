import numpy as np
import pytest

from molgan import rewards


def test_sa_and_np_models_load_from_rdkit_contrib():
    assert hasattr(rewards._sa_module(), "calculateScore")
    assert len(rewards._np_model()) > 1000


def test_known_raw_scores_of_fixed_molecules():
    # Aspirin's QED 0.55 and logP 1.31 are the values of Bickerton 2012 / RDKit's own tests.
    raw = rewards.raw_scores(["CCO", "CC(=O)Oc1ccccc1C(=O)O", None], workers=1)
    assert raw["qed"][0] == pytest.approx(0.4068, abs=1e-3)
    assert raw["logp"][0] == pytest.approx(-0.0014, abs=1e-3)
    assert raw["sa"][0] == pytest.approx(1.9800, abs=1e-3)
    assert raw["qed"][1] == pytest.approx(0.550, abs=1e-3)
    assert raw["logp"][1] == pytest.approx(1.310, abs=1e-3)
    assert raw["sa"][1] == pytest.approx(1.580, abs=1e-3)
    assert all(np.isnan(raw[name][2]) for name in rewards.RAW_SCORES)


def test_memoised_scores_equal_fresh_scores():
    smiles = ["CC(=O)O", "CCN", "OCC#N"]
    first = rewards.raw_scores(smiles, workers=1)
    for memo in rewards._MEMO.values():
        for s in smiles:
            memo.pop(s, None)
    fresh = rewards.raw_scores(smiles, workers=1)
    for name in rewards.RAW_SCORES:
        np.testing.assert_array_equal(first[name], fresh[name])
        assert all(s in rewards._MEMO[name] for s in smiles)


def test_process_pool_gives_the_same_values(monkeypatch):
    smiles = [f"C{'C' * (i % 6)}O{'N' * (i % 3)}" for i in range(40)]
    serial = rewards._compute((smiles, rewards.RAW_SCORES))
    for memo in rewards._MEMO.values():
        memo.clear()
    monkeypatch.setattr(rewards, "POOL_THRESHOLD", 1)
    pooled = rewards.raw_scores(smiles, workers=2)
    np.testing.assert_allclose(np.array(serial)[:, 0], pooled["qed"])


@pytest.mark.parametrize(
    "fn, low, high",
    [
        (rewards.normalize_logp, -10.0, 10.0),
        (rewards.normalize_sa, 10.0, 1.0),
        (rewards.normalize_np, -5.0, 5.0),
        (rewards.normalize_diversity, 0.0, 1.0),
    ],
)
def test_normalisations_clip_to_unit_interval(fn, low, high):
    values = fn(np.array([low, high, np.linspace(low, high, 7)[3]]))
    assert values[0] == 0.0 and values[1] == 1.0 and 0.0 <= values[2] <= 1.0


def test_normalisation_constants_match_organ():
    assert rewards.normalize_logp(np.array(-2.12178879609))[()] == 0.0
    assert rewards.normalize_sa(np.array(3.25))[()] == pytest.approx(0.5)
    assert rewards.normalize_np(np.array(-1.0))[()] == pytest.approx(0.5)


def test_every_score_is_in_unit_interval_and_zero_for_invalid():
    smiles = ["CCO", "c1ccncc1", "OC1CC1C#N", "CC.O", None, "C1CC"]
    table = rewards.score_table(smiles, train_smiles=["CCO"])
    for name, values in table.items():
        assert ((values >= 0) & (values <= 1)).all(), name
        assert (values[3:] == 0).all(), name
    assert table["novelty"].tolist()[:3] == [0.0, 1.0, 1.0]


def test_uniqueness_reward_penalises_only_five_or_more_copies():
    table = rewards.score_table(["CCO"] * 5 + ["CCN"] * 4, names=["unique"])
    assert table["unique"][0] == pytest.approx(0.95) and table["unique"][-1] == 1.0


def test_reward_is_the_product_of_scores_and_zero_for_invalid():
    r = rewards.reward(["CCO", None, "CC.O"], "qed,sa")
    table = rewards.score_table(["CCO"], names=["qed", "sa"])
    assert r.shape == (3, 1) and r.dtype == np.float32
    assert r[0, 0] == pytest.approx(table["qed"][0] * table["sa"][0])
    assert r[1, 0] == 0 and r[2, 0] == 0


def test_bad_reward_names_are_rejected():
    with pytest.raises(ValueError, match="bad reward"):
        rewards.parse_reward("qed,foo")
    assert rewards.parse_reward("all") == ("qed", "sa", "logp")
