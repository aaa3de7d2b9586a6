"""Config validation and the command line built from it."""

import dataclasses

import pytest

from molgan.cli import parse_cli
from molgan.config import Config
from molgan.presets import make_config


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("log_every", 0, "log_every must be ≥ 1"),
        ("max_steps", -5, "max_steps must be ≥ 0"),
        ("eval_every", -1, "eval_every must be ≥ 0"),
        ("time_limit", -1.0, "time_limit must be ≥ 0"),
        ("gp_weight", -10.0, "gp_weight must be ≥ 0"),
        ("alpha_eps", -1.0, "alpha_eps must be positive"),
        ("gen_dims", (0,), "gen_dims sizes must be ≥ 1"),
        ("conv_dims", (-3,), "conv_dims sizes must be ≥ 1"),
        ("device", "tpu", "device must be auto, cpu"),
        ("max_atoms", 1000, "max_atoms must be ≤ 40"),
        ("z_dim", "big", "z_dim must be int"),
        ("lr", float("nan"), "lr must be positive and finite"),
        ("seed", 2**70, "seed and split_seed must be < 2\\*\\*32"),
        ("threads", -1, "threads must be ≥ 0"),
        ("name", "../escaped", "name must be a plain folder name"),
        ("name", "a/b", "name must be a plain folder name"),
    ],
)
def test_bad_settings_are_refused_with_the_field_named(field, value, message):
    with pytest.raises(ValueError, match=message):
        Config(**{field: value})


def test_fractional_epochs_are_accepted_on_the_command_line():
    cfg, explicit = parse_cli(["--epochs", "0.5"])
    assert cfg.epochs == 0.5 and explicit == {"epochs"}


def test_command_line_records_only_the_flags_given():
    cfg, explicit = parse_cli(["--preset", "debug", "--lr", "0.01", "--no-progress"])
    assert explicit == {"preset", "lr", "progress"} and cfg.preset == "debug"
    assert cfg.batch_size == 6
    assert parse_cli(["--lr", "0.01"])[1] == {"lr"}  # the default preset was not given


def test_bad_flag_value_exits_with_one_line(capsys):
    with pytest.raises(SystemExit) as info:
        parse_cli(["--log-every", "0"])
    assert info.value.code == 2
    assert capsys.readouterr().err == "error: log_every must be ≥ 1, got 0\n"


def test_help_names_the_chosen_presets_values(capsys):
    with pytest.raises(SystemExit):
        parse_cli(["--preset", "debug", "--help"])
    out = capsys.readouterr().out
    assert "(debug preset: 6)" in out and "paper preset" not in out.replace("'paper' preset", "")


def test_ints_are_accepted_for_float_fields_and_lists_for_sizes():
    cfg = make_config("paper", epochs=2, gen_dims=[4, 5])
    assert cfg.epochs == 2.0 and isinstance(cfg.epochs, float) and cfg.gen_dims == (4, 5)


def test_no_flags_train_the_default_preset_and_paper_stays_the_paper():
    from molgan.presets import DEFAULT_PRESET, PRESETS

    cfg, explicit = parse_cli([])
    assert cfg.preset == DEFAULT_PRESET != "paper" and not explicit
    assert all(getattr(cfg, k) == v for k, v in PRESETS[DEFAULT_PRESET].items())
    paper = parse_cli(["--preset", "paper"])[0]
    assert dataclasses.replace(paper, preset="x") == dataclasses.replace(Config(), preset="x")
    assert paper.mode_seeking == 0 and paper.ema == 0 and paper.mode == "softmax"


def test_each_ablation_preset_is_the_previous_one_plus_one_remedy():
    """The README describes the presets as a chain: each adds one remedy to the one before."""
    from molgan.presets import PRESETS

    chain = ["paper", "diverse", "conditional", "balanced", "valence", "ema", "latent", "energy"]
    added = ["mode_seeking", "condition", "condition_balance", "valence", "ema", "z_dim", "energy"]
    for before, after, field in zip(chain[:-1], chain[1:], added, strict=True):
        a, b = make_config(before), make_config(after)
        changed = {
            f.name for f in dataclasses.fields(Config) if getattr(a, f.name) != getattr(b, f.name)
        }
        assert changed == {field, "preset"}, (before, after, changed)
    assert set(chain) < set(PRESETS)
