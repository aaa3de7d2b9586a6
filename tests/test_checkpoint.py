import pytest
import torch

from molgan import checkpoint
from molgan.models import MolGAN
from molgan.presets import make_config


@pytest.fixture
def saved(tmp_path):
    torch.manual_seed(0)
    model = MolGAN.from_config(make_config("debug"))
    path = checkpoint.save(tmp_path / "ckpt.pt", model, step=7)
    return model, path


def test_save_then_load_gives_identical_samples(saved):
    model, path = saved
    loaded = checkpoint.load(path)
    assert loaded.sample(50, seed=1, strict=False) == model.sample(50, seed=1, strict=False)
    assert checkpoint.read(path)["step"] == 7


def test_checkpoint_loads_with_weights_only(saved):
    blob = torch.load(saved[1], weights_only=True)
    assert blob["format"] == checkpoint.FORMAT and blob["vocab"]["bonds"][0] == "none"


def test_old_checkpoint_missing_a_config_key_loads_with_the_default(saved, tmp_path):
    blob = torch.load(saved[1], weights_only=True)
    del blob["config"]["tau"], blob["config"]["normalize_conv"]
    old = tmp_path / "old.pt"
    torch.save(blob, old)
    assert checkpoint.load(old).config["tau"] == 1.0


def test_future_format_is_a_clear_error(saved, tmp_path):
    blob = torch.load(saved[1], weights_only=True)
    blob["format"] = checkpoint.FORMAT + 1
    future = tmp_path / "future.pt"
    torch.save(blob, future)
    with pytest.raises(ValueError, match="newer than this molgan"):
        checkpoint.load(future)


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "is empty"),
        (b"not a checkpoint at all", "not a molgan checkpoint \\(not a PyTorch file\\)"),
        (b"PK\x03\x04truncated", "truncated or corrupt"),
    ],
)
def test_corrupt_file_is_a_one_line_error_in_our_words(tmp_path, content, message):
    path = tmp_path / "bad.pt"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=message) as info:
        checkpoint.load(path)
    assert "\n" not in str(info.value) and "Weights only" not in str(info.value)


def test_truncated_checkpoint_is_reported_as_truncated(saved, tmp_path):
    data = saved[1].read_bytes()
    path = tmp_path / "cut.pt"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="truncated or corrupt"):
        checkpoint.load(path)


class _Payload:
    def __reduce__(self):
        import os

        return (os.getcwd, ())


def test_checkpoint_holding_python_objects_is_refused_without_running_them(tmp_path):
    path = tmp_path / "objects.pt"
    torch.save({"format": 1, "generator": _Payload()}, path)
    with pytest.raises(ValueError, match="refused: it holds Python objects"):
        checkpoint.load(path)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"format": "1"}, "format '1'"),
        ({"config": {"z_dim": "big"}}, "invalid settings: z_dim must be int"),
        ({"config": "nope"}, "malformed config"),
    ],
)
def test_checkpoint_with_wrongly_typed_entries_is_a_clear_error(saved, tmp_path, change, message):
    blob = torch.load(saved[1], weights_only=True)
    for key, value in change.items():
        if isinstance(value, dict):
            blob[key].update(value)
        else:
            blob[key] = value
    path = tmp_path / "typed.pt"
    torch.save(blob, path)
    with pytest.raises(ValueError, match=message):
        checkpoint.load(path)


def test_directory_given_as_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="is a directory"):
        checkpoint.load(tmp_path)


def test_foreign_torch_file_is_rejected(tmp_path):
    path = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(3)}, path)
    with pytest.raises(ValueError, match="not a molgan checkpoint"):
        checkpoint.load(path)


def test_mismatched_weights_are_a_clear_error(saved, tmp_path):
    blob = torch.load(saved[1], weights_only=True)
    blob["config"]["z_dim"] = 99
    path = tmp_path / "mismatch.pt"
    torch.save(blob, path)
    with pytest.raises(ValueError, match="do not match its config"):
        checkpoint.load(path)


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="checkpoint not found"):
        checkpoint.load(tmp_path / "nope.pt")


def test_interrupted_save_keeps_the_previous_file(saved, monkeypatch):
    model, path = saved
    before = path.read_bytes()

    def crash(obj, f, *args, **kwargs):
        with open(f, "wb") as handle:
            handle.write(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        checkpoint.save(path, model, step=8)
    assert path.read_bytes() == before


def test_export_drops_optimizer_state_and_keeps_samples(saved, tmp_path):
    model, path = saved
    blob = torch.load(path, weights_only=True)
    blob["optimizers"] = {"g": {"state": {}, "param_groups": []}}
    torch.save(blob, path)
    small = checkpoint.export(path, tmp_path / "small.pt")
    assert "optimizers" not in torch.load(small, weights_only=True)
    assert checkpoint.load(small).sample(20, seed=0) == model.sample(20, seed=0)
