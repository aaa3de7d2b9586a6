import pytest
import torch

import molgan
from molgan import checkpoint
from molgan.config import make_config
from molgan.models import MolGAN


@pytest.fixture
def ckpt(tmp_path):
    torch.manual_seed(0)
    return checkpoint.save(tmp_path / "ckpt.pt", MolGAN.from_config(make_config("debug")))


def test_sample_returns_exactly_n_smiles_or_none(ckpt):
    out = molgan.sample(37, ckpt, seed=0)
    assert len(out) == 37
    assert all(s is None or isinstance(s, str) for s in out)


def test_sample_is_deterministic_for_a_seed_and_leaves_the_global_rng_alone(ckpt):
    state = torch.get_rng_state()
    a = molgan.sample(40, ckpt, seed=5, strict=False)
    assert torch.equal(state, torch.get_rng_state())
    assert a == molgan.sample(40, ckpt, seed=5, strict=False)


def test_sample_accepts_a_loaded_model_and_batches_do_not_change_results(ckpt):
    model = molgan.load(ckpt)
    assert model.sample(30, seed=2) == molgan.sample(30, model, seed=2, batch_size=7)


def test_sample_of_zero_is_empty_and_negative_is_an_error(ckpt):
    assert molgan.sample(0, ckpt, seed=0) == []
    with pytest.raises(ValueError):
        molgan.sample(-1, ckpt)


def test_pretrained_model_or_a_clear_message():
    if checkpoint.PRETRAINED.is_file():
        out = molgan.sample(5, seed=0)
        assert len(out) == 5
    else:
        with pytest.raises(ValueError, match="no pretrained model"):
            molgan.sample(5, seed=0)


@pytest.mark.gpu
def test_cpu_and_gpu_models_give_the_same_samples(ckpt):
    assert molgan.sample(64, ckpt, seed=0, device="cuda") == molgan.sample(64, ckpt, seed=0)
