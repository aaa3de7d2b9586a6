"""Train MolGAN. With no arguments: the paper's QM9 settings on the shipped QM9.

python scripts/train_qm9.py                       # paper settings, GPU if available
python scripts/train_qm9.py --preset debug        # seconds, tiny sizes
python scripts/train_qm9.py --data my.smi --lam 1 # your own SMILES, no RL
python scripts/train_qm9.py --name run1 --resume  # continue an interrupted run
"""

from __future__ import annotations

import sys

from molgan.config import parse_args
from molgan.train import TrainingError, train


def main(argv: list[str] | None = None) -> int:
    cfg = parse_args(argv)
    try:
        train(cfg)
    except (ValueError, TrainingError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: the last checkpoint is intact; continue with --resume", file=sys.stderr)
        return 130
    print(f"{cfg.out_dir}/{cfg.run_name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
