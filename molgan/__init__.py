"""molgan: MolGAN (De Cao & Kipf, 2018) in PyTorch — train on QM9, sample SMILES, evaluate."""

from molgan.config import Config
from molgan.estimator import MolGANGenerator, guacamol_generator
from molgan.metrics import evaluate
from molgan.mixture import Mixture
from molgan.models import MolGAN
from molgan.pyg import to_pyg
from molgan.sample import load, sample
from molgan.train import train

__version__ = "0.1.0"
__all__ = [
    "Config",
    "Mixture",
    "MolGAN",
    "MolGANGenerator",
    "evaluate",
    "guacamol_generator",
    "load",
    "sample",
    "to_pyg",
    "train",
    "__version__",
]
