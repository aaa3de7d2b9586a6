"""molgan: MolGAN (De Cao & Kipf, 2018) in PyTorch — train on QM9, sample SMILES, evaluate."""

from molgan.checkpoint import load
from molgan.config import Config
from molgan.metrics import evaluate
from molgan.models import MolGAN
from molgan.sample import sample
from molgan.train import train

__version__ = "0.1.0"
__all__ = ["Config", "MolGAN", "load", "sample", "train", "evaluate", "__version__"]
