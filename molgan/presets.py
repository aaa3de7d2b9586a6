"""Named presets (the remedies each adds to the one before it) and ``make_config``, the one way
a preset and overrides become a ``Config``."""

from __future__ import annotations

from molgan.config import Config

DEFAULT_PRESET = "latent"
"""What ``scripts/train_qm9.py`` trains with no ``--preset`` (the ``Config`` defaults are
``paper``)."""

# The remedies each preset adds to the one before it (their comments: PRESETS).
_BALANCED = dict(mode_seeking=1.0, condition=True, condition_balance=0.5)
_VALENCE = _BALANCED | dict(valence=5.0)
_EMA = _VALENCE | dict(ema=0.995)
_LATENT = _EMA | dict(z_dim=128)

PRESETS: dict[str, dict] = {
    # De Cao & Kipf 2018 as published (spec §2.1): every mode-collapse remedy off.
    "paper": {},
    # The paper's networks, data, optimiser and RL schedule plus the mode-seeking term on G, the
    # best single remedy of the ablation (docs/ablation.md). Combined with Gumbel-softmax inputs
    # or a G EMA (each fine alone) it did worse in the screening, so neither is in.
    "diverse": dict(mode_seeking=1.0),
    # ``diverse`` plus conditioning G and D on a coarse class of the molecule (heavy-atom
    # count, element set) drawn from the data's frequencies.
    "conditional": dict(mode_seeking=1.0, condition=True),
    # ``conditional`` with class-balanced training batches (rare classes drawn more often), so
    # that G learns to give them when asked.
    "balanced": _BALANCED,
    # ``balanced`` plus a penalty on G's soft bond orders above each atom's valence (more valid
    # graphs without RL, more distinct molecules).
    "valence": _VALENCE,
    # ``valence`` sampling and evaluating with an EMA of G's weights (more valid with and
    # without RL, lower FCD; docs/ablation.md §2).
    "ema": _EMA,
    # The default: ``ema`` with a 128-dimensional latent instead of the paper's 32 (as good as
    # ``ema`` or better on every measure; its uniqueness gain is within the spread of runs,
    # docs/ablation.md §3).
    "latent": _LATENT,
    # ``latent`` plus an energy distance between G's batch and the real batch (weight 5; the
    # one candidate of issue 25's screens above the baseline's uniqueness-validity curve,
    # docs/ablation.md §4).
    "energy": _LATENT | dict(energy=5.0),
    # ``ema`` trained on reward-tilted data (molecules drawn with weight exp(25 · QED)) with
    # λ 0.85: the RL answer of issue 25 as 3 runs sampled as one mixture (docs/results.md).
    "tilted": _EMA | dict(reward_tilt=25.0, lam=0.85),
    # Sizes that all differ (from each other and from N=9, T=5, R=4) so a swapped axis fails.
    "debug": dict(
        data="data/qm9_debug.smi",
        atoms="qm9",  # a QM9 subset: QM9's vocabulary, whichever types the subset happens to hold
        z_dim=7,
        gen_dims=(11, 13),
        conv_dims=(11, 13),
        agg_dim=17,
        head_dims=(19,),
        batch_size=6,
        max_steps=30,
        n_critic=3,
        log_every=10,
        eval_every=15,
        eval_samples=64,
        progress=False,
    ),
}


def make_config(preset: str = "paper", **overrides) -> Config:
    """A ``Config`` from a preset name plus field overrides. Data of one's own (``data``
    other than the preset's) takes its own vocabulary (``atoms`` auto) unless ``atoms`` is
    given too: a preset's vocabulary belongs to its own data (``debug``: QM9's)."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose from {', '.join(PRESETS)}")
    base = PRESETS[preset]
    own_data = "data" in overrides and overrides["data"] != base.get("data", "")
    if own_data and "atoms" not in overrides and base.get("atoms"):
        overrides = {**overrides, "atoms": ""}  # '' = auto for a file of one's own
    return Config(**{**base, **overrides, "preset": preset})
