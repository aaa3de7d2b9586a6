"""MolGAN with the interfaces of the ecosystem: a scikit-learn-style estimator
(``MolGANGenerator(**settings).fit(smiles).generate(n)``, the shape of torch-molecule's
generators) and a GuacaMol ``DistributionMatchingGenerator`` (``generate(number_samples)``).

``fit`` is an ordinary training run (``molgan.train``) on the given SMILES, in a run folder of
its own (``out_dir``; by default a temporary one, removed once the model is in memory), so
everything a run does — filters and their counts, checkpoints, the log — happens here too.
"""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Iterable
from pathlib import Path

from molgan import chem
from molgan.config import MAX_ATOMS_LIMIT, Config
from molgan.mixture import Mixture
from molgan.models import MolGAN
from molgan.presets import DEFAULT_PRESET, make_config
from molgan.pyg import smiles_of
from molgan.sample import load
from molgan.train import train


class MolGANGenerator:
    """Train on SMILES, generate SMILES.

    Args:
        preset: starting settings (default: the default preset); ``"paper"`` for the paper's.
        out_dir: where ``fit`` keeps its run folder (default: a temporary folder).
        **settings: any ``molgan.Config`` field, e.g. ``epochs=10``, ``lam=1.0``.

    Raises:
        ValueError: an unknown or invalid setting (at construction, before any training).
    """

    def __init__(self, preset: str = DEFAULT_PRESET, out_dir: str | None = None, **settings):
        self.config = make_config(preset, **settings)  # checked now
        self._sized = "max_atoms" in settings  # else fit sizes the graphs to the data
        self._typed = "atoms" in settings  # else fit takes the data's own vocabulary
        self.out_dir = out_dir
        self.model_ = None
        self.run_dir_: Path | None = None

    def get_params(self, deep: bool = True) -> dict:
        """The settings (scikit-learn's convention)."""
        return dataclasses.asdict(self.config)

    def fit(self, smiles: Iterable[str], name: str = "fit") -> MolGANGenerator:
        """Train on ``smiles`` (a list of SMILES, or a PyG dataset with ``smiles``).

        Returns:
            ``self``, trained (``model_``: the ``MolGAN``; ``run_dir_``: its run folder, or
            ``None`` without ``out_dir``: the temporary folder is removed after training).

        Raises:
            ValueError: no SMILES, or ``out_dir`` already holds a fit of this ``name``.
        """
        smiles = list(smiles)
        if not all(isinstance(s, str) for s in smiles):  # PyG molecules: their smiles
            smiles = smiles_of(smiles)
        if not smiles:
            raise ValueError("fit needs at least one SMILES")
        if self.out_dir is None:  # a temporary folder, gone once the model is in memory
            with tempfile.TemporaryDirectory(prefix="molgan-") as root:
                self.model_ = self._train(smiles, Path(root), name)
            self.run_dir_ = None
            return self
        root = Path(self.out_dir)
        if (root / name).exists() or (root / f"{name}.smi").exists():
            raise ValueError(
                f"{root / name} already holds a fit: give fit(smiles, name=...) another name, "
                "or the estimator another out_dir (nothing was overwritten)"
            )
        self.model_ = self._train(smiles, root, name)
        self.run_dir_ = root / name
        return self

    def _train(self, smiles: list[str], root: Path, name: str):
        root.mkdir(parents=True, exist_ok=True)
        data = root / f"{name}.smi"
        data.write_text("".join(f"{s}\n" for s in smiles))
        cfg = dataclasses.replace(self.config, data=str(data), out_dir=str(root), name=name)
        if not self._sized:  # N: the largest molecule's heavy atoms (drug-like data: 27-38)
            largest = max(len(chem.heavy_atoms(s, sanitize=False)) for s in smiles)
            cfg = dataclasses.replace(cfg, max_atoms=min(max(largest, 1), MAX_ATOMS_LIMIT))
        if not self._typed:
            cfg = dataclasses.replace(cfg, atoms="")  # auto: the data's own vocabulary
        return train(cfg)

    def generate(self, n: int, seed: int | None = None, strict: bool = True) -> list[str | None]:
        """``n`` SMILES from the trained model (``None`` where a graph is not a valid
        molecule; ``strict=False`` keeps multi-fragment ones as dotted SMILES)."""
        if self.model_ is None:
            raise ValueError("generate needs a fitted model: call fit first (or from_checkpoint)")
        return list(self.model_.sample(n, seed, strict=strict))

    @classmethod
    def from_checkpoint(cls, path: str | Path | None = None, member: int | None = None):
        """A fitted estimator from a checkpoint (default: the shipped QM9 model)."""
        model = load(path, member=member)
        fields = {f.name for f in dataclasses.fields(Config)}
        out = cls.__new__(cls)
        out.config = Config(**{k: v for k, v in model.config.items() if k in fields})
        out.out_dir, out.model_, out.run_dir_ = None, model, None
        return out


class GuacaMolGenerator:
    """A GuacaMol ``DistributionMatchingGenerator`` over a trained model: ``generate`` returns
    ``number_samples`` SMILES strings, an empty string where a graph is not a valid molecule
    (GuacaMol counts those as invalid). Built by ``guacamol_generator``."""

    def __init__(self, model, seed: int = 0) -> None:
        self.model, self.seed, self.calls = model, seed, 0

    def generate(self, number_samples: int) -> list[str]:
        seed = self.seed + self.calls  # each call draws new molecules, reproducibly
        self.calls += 1
        return [s or "" for s in self.model.sample(number_samples, seed)]


def guacamol_generator(model=None, seed: int = 0):
    """``model`` (a ``MolGAN`` or ``Mixture``, a checkpoint path, or ``None`` for the shipped
    model) as a GuacaMol ``DistributionMatchingGenerator`` — a subclass of GuacaMol's own class when
    ``guacamol`` is installed (``pip install --no-deps guacamol``: its old pins need not come
    along), else the same object without that base class."""
    model = model if isinstance(model, (MolGAN, Mixture)) else load(model)
    try:
        from guacamol.distribution_matching_generator import DistributionMatchingGenerator
    except ImportError:
        return GuacaMolGenerator(model, seed)
    bases = (GuacaMolGenerator, DistributionMatchingGenerator)
    bound = type("GuacaMolGenerator", bases, {"__module__": __name__})
    return bound(model, seed)
