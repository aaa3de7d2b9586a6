"""Can a mapper draw the codes a pre-trained G decodes? (issue 42, round 38; LatentGAN's route)

Loads G and its encoder from ``tools/latent_probe.py --save F`` and trains a mapper M(z,
class) -> code (z + an MLP 512-512, ReLU) to match the encoder's aggregate posterior (a
training molecule's mu + σ·ε, with its class), G frozen: by the energy distance between the
batches (``ed``), or as a WGAN-GP generator against a critic on (code, class) (``wgan``,
LatentGAN's objective). Then reads G's graphs from z ~ N(0, I) and from M(z) (Gumbel-argmax,
T = 1; classes from the class prior) with ``tools/decoder_probe.py``'s readings::

    python tools/latent_mapper.py probe.pt --method wgan --steps 3000 --json mapper.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from molgan import conditioning
from molgan.generator import gumbel_noise
from molgan.losses import energy_distance
from molgan.pretrain import Encoder

sys.path.insert(0, str(Path(__file__).resolve().parent))
from decoder_probe import decode, reading  # noqa: E402
from latent_probe import screen_model  # noqa: E402

BATCH = 128


class Mapper(nn.Module):
    """(z (B, Z), class (B, C)) -> code (B, Z): z plus an MLP of both."""

    def __init__(self, Z: int, C: int):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(Z + C, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, Z)
        )

    def forward(self, z: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        return z + self.net(torch.cat([z, c], -1))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("weights", help="a file of tools/latent_probe.py --save")
    parser.add_argument("--method", choices=("ed", "wgan"), default="wgan")
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--molecules", type=int, default=2000, help="as the probe was given")
    parser.add_argument("--z-dim", type=int, default=128, help="as the probe was given")
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--json", help="also write the rows here")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    model, data = screen_model(args.molecules, args.z_dim)
    G, train = model.generator, data.split["train"]
    N, T, R, Z = G.N, G.T, G.R, G.z_dim
    enc = Encoder(N, T, R, Z)
    blob = torch.load(args.weights)
    G.load_state_dict(blob["G"])
    enc.load_state_dict(blob["enc"])
    for net in (G, enc):
        net.eval().requires_grad_(False)
    x1 = F.one_hot(data.atoms[train].long(), T).float()  # (M, N, T)
    a1 = F.one_hot(data.bonds[train].long(), R).float()  # (M, N, N, R)
    with torch.no_grad():
        mu, logvar = enc(x1, a1)  # (M, Z) each
        sigma = (0.5 * logvar).exp()
        classes = conditioning.one_hot_classes(x1)  # (M, C)
    C = classes.shape[1]
    mapper = Mapper(Z, C)
    wgan = args.method == "wgan"
    opt = torch.optim.Adam(
        mapper.parameters(), lr=1e-4 if wgan else 1e-3, betas=(0.5, 0.9) if wgan else (0.9, 0.999)
    )
    gen = torch.Generator().manual_seed(0)
    if wgan:
        critic = nn.Sequential(
            nn.Linear(Z + C, 512), nn.LeakyReLU(0.2), nn.Linear(512, 512), nn.LeakyReLU(0.2),
            nn.Linear(512, 1),
        )  # fmt: skip
        opt_c = torch.optim.Adam(critic.parameters(), lr=1e-4, betas=(0.5, 0.9))

    def real_batch() -> tuple[torch.Tensor, torch.Tensor]:
        i = torch.randint(0, len(mu), (BATCH,), generator=gen)
        return mu[i] + sigma[i] * torch.randn(BATCH, Z, generator=gen), classes[i]

    for step in range(1, args.steps + 1):
        if not wgan:  # match code | class: the real batch's classes for both
            code, c = real_batch()
            fake = mapper(torch.randn(BATCH, Z, generator=gen), c)
            loss = energy_distance(torch.cat([fake, 3 * c], -1), torch.cat([code, 3 * c], -1))
        else:
            for _ in range(5):
                code, c = real_batch()
                with torch.no_grad():
                    fake = mapper(torch.randn(BATCH, Z, generator=gen), c)
                real, fake = torch.cat([code, c], -1), torch.cat([fake, c], -1)
                eps = torch.rand(BATCH, 1, generator=gen)
                mix = (eps * real + (1 - eps) * fake).requires_grad_(True)
                (grad,) = torch.autograd.grad(critic(mix).sum(), mix, create_graph=True)
                gp = ((grad.norm(dim=-1) - 1) ** 2).mean()
                loss_c = critic(fake).mean() - critic(real).mean() + 10 * gp
                opt_c.zero_grad()
                loss_c.backward()
                opt_c.step()
            code, c = real_batch()
            fake = mapper(torch.randn(BATCH, Z, generator=gen), c)
            loss = -critic(torch.cat([fake, c], -1)).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 500 == 0:
            print(step, round(loss.item(), 4), file=sys.stderr)
    known, rows, n = set(data.smiles), [], args.samples
    with torch.no_grad():
        cond = model.class_prior.sample(n, gen)
        z = torch.randn(n, Z, generator=gen)
        for name, code in (("prior N(0,I)", z), (f"mapper {args.method}", mapper(z, cond))):
            out = G(code, cond)
            gx = gumbel_noise(out.x_logits.shape, generator=gen)
            ge = gumbel_noise(out.adj_logits.shape, symmetric=True, generator=gen)
            x, e = (out.x_logits + gx).argmax(-1), (out.adj_logits + ge).argmax(-1)
            graphs = decode(x.numpy(), e.numpy(), data.atom_types)
            rows.append(reading(f"{name} T=1", graphs, known))
            print(json.dumps(rows[-1]), file=sys.stderr)
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
