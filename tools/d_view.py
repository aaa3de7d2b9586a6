"""What a trained discriminator scores (issue 42, round 38): the run's first 1,000 training
graphs, the same graphs saturated (every double and triple bond made single: the molecules G
makes), G's soft graphs (softmax, what D is trained on) and G's argmax graphs, for each member's
best checkpoint of a run kept by ``tools/moses_diagnose.py --keep DIR``::

    python tools/d_view.py DIR/latent-0 --json d_view.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

from molgan import checkpoint, conditioning


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", help="a run folder with best-member{k}.pt, its cache beside it")
    parser.add_argument("--json", help="also write the rows here")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    run = Path(args.run)
    cache = torch.load(next(run.parent.glob("cache/*.pt")), weights_only=False)
    atoms, bonds = cache["atoms"][:1000].long(), cache["bonds"][:1000].long()
    rows = {}
    for path in sorted(run.glob("best-member*.pt")):
        m = checkpoint.load(path).eval()
        T, R = m.generator.T, m.generator.R
        x, adj = F.one_hot(atoms, T).float(), F.one_hot(bonds, R).float()
        cond = conditioning.one_hot_classes(x)  # (B, C)
        adj_sat = F.one_hot(bonds.clamp(max=1), R).float()  # every bond single
        gen = torch.Generator().manual_seed(0)
        with torch.no_grad():
            z = torch.randn(len(x), m.generator.z_dim, generator=gen)
            c = m.class_prior.sample(len(x), gen)
            out = m.sampler(z, c)
            hard_x = F.one_hot(out.x_logits.argmax(-1), T).float()
            hard_adj = F.one_hot(out.adj_logits.argmax(-1), R).float()
            real, sat = m.discriminator(x, adj, cond), m.discriminator(x, adj_sat, cond)
            row = {
                "real": real.mean().item(),
                "real_saturated": sat.mean().item(),
                "G_soft": m.discriminator(out.x_logits.softmax(-1), out.adj_logits.softmax(-1), c)
                .mean()
                .item(),
                "G_argmax": m.discriminator(hard_x, hard_adj, c).mean().item(),
                "real_above_saturated": (real > sat).float().mean().item(),
            }
        rows[path.stem] = row
        print(path.stem, {k: round(v, 3) for k, v in row.items()})
    if args.json:
        Path(args.json).write_text(json.dumps({"run": str(run), "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
