"""Settings that lost their screens and were removed: each name with the value that meant "off"
(a checkpoint or study file holding that value still loads; any other value is refused in one
line naming the last commit that had the setting). Results of each: docs/ablation.md.
"""

from __future__ import annotations

REMOVED_IN = "a3dc0e9"
"""The last commit with the settings in ``REMOVED`` (issue 39 removed them)."""
REMOVED: dict[str, object] = {
    # Remedies that lost every screen (docs/ablation.md, its first table), with the value
    # that meant "off": a checkpoint or study file holding that value still loads.
    "tau_end": 0.0,
    "rarity_window": 0,
    "minibatch_std": False,
    "pac": 1,
    "real_noise": 0.0,
    "lr_decay": 0.0,
    "diversity": 0.0,
    "connectivity": 0.0,
    "connectivity_sampled": False,
    "batch_discriminator": False,
    "feature_matching": False,
    "condition_formula": False,
    "adversarial": "wgan",
    "energy_space": "graph",
    "energy_samples": 1,
    "gen_norm": False,
    "repeat_penalty": 0.0,
    "repeat_window": 4096,
    "gen_noise": 0.0,
    "node_noise": 0,
    "readout_stats": False,
    "readout_attention": 0,
    "gen_residual": False,
    "spectral_norm": False,
    "bond_count": 0.0,  # issue 42's first candidate at N = 27 (docs/results.md, "MOSES")
    "mask_pad": False,  # issue 42's screen: D seeing no bonds on pads cost lenient validity
    "bond_composition": 0.0,  # issue 42's rounds 10, 22: the data's double bonds, as allenes
    "walk_steps": 0,  # issue 42's rounds 14, 25: ring features for D taught G no ring sizes
    "aromatic_bonds": False,  # issue 42's rounds 24-26: aromatic rings of every size
    "aromatic_ends": 0.0,  # issue 42's round 26: aromatic rings, at 18% validity
    "triangles": 0.0,  # issue 42's round 30: no 3-rings, but no better filters or FCD
    "positions": False,  # issue 42's round 31: D seeing node indices moved no goal column
    "recon": 0.0,  # issue 42's round 37: a VAE reconstruction term on G (VAE-GAN)
}
REMOVED_AT = {
    "bond_count": "7e41cc0",
    "mask_pad": "e0f4f18",
    "bond_composition": "1ed2aa3",
    "walk_steps": "1ed2aa3",
    "aromatic_bonds": "1ed2aa3",
    "aromatic_ends": "1ed2aa3",
    "triangles": "ebf11e2",
    "positions": "c23919e",
    "recon": "a7b00eb",
}
"""Settings removed later than ``REMOVED_IN``, with the last commit that had them."""


def removed_message(name: str, value: object = None) -> str:
    """The one-line refusal of a removed setting (``REMOVED``)."""
    shown = "" if value is None else f" = {value!r}"
    return (
        f"setting {name}{shown} was removed (it lost: docs/ablation.md); "
        f"the last commit that has it is {REMOVED_AT.get(name, REMOVED_IN)}"
    )


def check_removed(settings: dict, where: str) -> None:
    """Refuse ``settings`` (a stored config or a study's settings) that use a removed setting
    with another value than its "off" one.

    Raises:
        ValueError: one line naming ``where``, the setting and the commit that had it.
    """
    for name, value in settings.items():
        if name in REMOVED and value != REMOVED[name]:
            raise ValueError(f"{where}: {removed_message(name, value)}")
