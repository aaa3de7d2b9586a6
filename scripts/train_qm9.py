"""Train MolGAN. With no arguments: the default preset (``latent``, molgan.presets.DEFAULT_PRESET)
on the shipped QM9: the paper's settings plus the remedies against mode collapse the ablation
kept — the mode-seeking term, conditioning on a coarse molecule class, class-balanced batches,
the valence penalty, an EMA of G's weights and a 128-dimensional latent (docs/ablation.md).

python scripts/train_qm9.py                       # latent preset, GPU if available
python scripts/train_qm9.py --preset paper        # the paper's settings, as published
python scripts/train_qm9.py --preset debug        # seconds, tiny sizes
python scripts/train_qm9.py --data my.smi --lam 1 # your own SMILES, no RL
python scripts/train_qm9.py --name run1 --resume  # continue an interrupted run

Ctrl-C (or SIGTERM) writes a checkpoint of the current step first; --resume continues from it.
"""

from __future__ import annotations

import contextlib
import signal
import sys
from pathlib import Path

from molgan import checkpoint
from molgan.cli import parse_cli
from molgan.train import Interrupted, TrainingError, train


def main(argv: list[str] | None = None) -> int:
    cfg, explicit = parse_cli(argv)
    try:
        train(cfg, explicit=explicit)
    except (ValueError, TrainingError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except Interrupted as err:
        _ignore_more_interrupts()
        print(f"interrupted: {err}", file=sys.stderr)
        return err.exit_code  # 130 after Ctrl-C, 143 after SIGTERM, as the shell reports them
    except KeyboardInterrupt:  # before the first step (e.g. while encoding), or a second Ctrl-C
        _ignore_more_interrupts()
        print(f"interrupted: {_on_disk(cfg)}", file=sys.stderr)
        return 130
    print(f"{cfg.out_dir}/{cfg.run_name}")
    return 0


def _ignore_more_interrupts() -> None:
    """The run is stopping: further Ctrl-Cs (people press it again) must not turn the one-line
    answer into a traceback."""
    with contextlib.suppress(ValueError):  # only the main thread may set a handler
        signal.signal(signal.SIGINT, signal.SIG_IGN)


def _on_disk(cfg) -> str:
    """What an interrupted run left, in words that are true."""
    path = Path(cfg.out_dir) / cfg.run_name / "ckpt.pt"
    try:
        step = checkpoint.read(path)["step"]
    except ValueError:
        return "no checkpoint was written"
    return f"the checkpoint at step {step} ({path}) is intact; continue with --resume"


if __name__ == "__main__":
    sys.exit(main())
