import numpy as np
import pytest

from molgan import fcd


def test_frechet_distance_of_identical_gaussians_is_zero():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(50, 4))
    sigma = np.cov(a, rowvar=False)
    assert fcd.frechet_distance(a.mean(0), sigma, a.mean(0), sigma) == pytest.approx(0, abs=1e-8)


def test_frechet_distance_matches_the_closed_form_in_one_dimension():
    # (μ1 − μ2)² + σ1² + σ2² − 2·σ1·σ2 for variances σ1² = 4, σ2² = 1.
    value = fcd.frechet_distance(
        np.array([1.0]), np.array([[4.0]]), np.array([3.0]), np.array([[1.0]])
    )
    assert value == pytest.approx(4.0 + 4.0 + 1.0 - 4.0)


def test_fcd_of_a_set_with_itself_is_near_zero_and_grows_with_difference():
    pytest.importorskip("fcd_torch")
    ring = ["c1ccccc1", "c1ccncc1", "C1CCCCC1", "c1ccoc1", "C1CCOC1", "c1cc[nH]c1"]
    chains = ["CCO", "CCN", "CCCC", "CC(C)O", "CCOC", "CC#N"]
    assert fcd.fcd(ring, ring) == pytest.approx(0, abs=1e-3)
    assert fcd.fcd(chains, ring) > 1.0
