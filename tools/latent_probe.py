"""Where in its latent space a pre-trained G spells molecules (issue 42, round 38).

G (the screen's model: N = 27, conditional and sized, marginal init) is pre-trained as a VAE's
decoder of the first M MOSES molecules (``molgan.pretrain``), then its graphs are read from
codes drawn five ways, each with a class vector (heavy-atom count, element set):

- ``prior N(0,I)``: what sampling draws, class from the class prior;
- ``fitted Gaussian of the means``: a full-covariance Gaussian fitted to the encoder's means
  (an affine map of z: what G's first layer could absorb), class from the prior;
- ``encoder means``: a random training molecule's mean code, with its own class;
- ``aggregate posterior``: the same plus its posterior noise (mu + σ·ε), with its own class;
- ``aggregate posterior, class from prior``: the same code, class from the prior.

Each decoded by Gumbel-argmax at T = 1 (as molgan samples) and by argmax; the readings of
``tools/decoder_probe.py`` (strict validity, share of copies of the M molecules, aromatic
rings, filters, FCD/Test of the first 250 valid). ``--match W`` adds W · the energy distance
between the batch's codes and N(0, I) draws to the pre-training loss (the aggregate posterior
matched to the prior, as a WAE does). ``--save F`` keeps G's and the encoder's weights for
``tools/latent_mapper.py``::

    python tools/latent_probe.py --molecules 2000 --steps 4000 --beta 0.1 --json probe.json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import torch
import torch.nn.functional as F

import molgan.pretrain as pretrain
from molgan import conditioning
from molgan.data import dataset_of, moses_file
from molgan.generator import gumbel_noise, marginal_logits
from molgan.losses import energy_distance
from molgan.models import MolGAN
from molgan.molfiles import read_smiles
from molgan.presets import make_config

sys.path.insert(0, str(Path(__file__).resolve().parent))
from decoder_probe import decode, reading  # noqa: E402

# The screen's settings (tools/moses_diagnose.py, the README's MOSES command): what G is built
# with (conditional, sized, marginal init); the loss terms do not act in pre-training.
SCREEN = dict(
    isolated=10.0, spanning=10.0, composition=10.0, size_mask=True, marginal_init=True,
    overflow=5.0, gp_per_sample=True,
)  # fmt: skip


def screen_model(molecules: int, z_dim: int):
    """``(model, data)``: the screen's untrained MolGAN (torch seed 0, G at the data's
    marginals, class prior fitted) on the first ``molecules`` of MOSES's training split."""
    smiles = [s for _, s in read_smiles(moses_file("moses"))][:molecules]
    path = Path(tempfile.mkdtemp()) / "moses_subset.smi"
    path.write_text("\n".join(smiles) + "\n")
    cfg = make_config("latent", data=str(path), max_atoms=27, z_dim=z_dim, **SCREEN)
    data = dataset_of(cfg, verbose=False)
    train = data.split["train"]
    torch.manual_seed(0)
    model = MolGAN.from_config(cfg, atom_types=data.atom_types)
    prior = marginal_logits(
        data.atoms[train], data.bonds[train], model.generator.T, model.generator.R
    )
    model.generator.start_at(*prior)
    model.class_prior.fit(data.atoms[train])
    return model, data


def with_match(weight: float, beta: float):
    """``pretrain.decoder_loss`` plus ``weight`` · energy distance(codes, N(0, I) draws), added
    to the KL it returns (divided by β, which multiplies it). It repeats ``decoder_loss``'s
    body to reuse its codes: wrapping it and encoding the batch again gives the same loss but,
    through float rounding, other weights after 4,000 steps than the committed evidence."""

    def loss(encoder, generator, x, adj, cond, noise):
        mu, logvar = encoder(x, adj)
        z = mu + noise * (0.5 * logvar).exp()
        out = generator(z, cond)
        upper = encoder.upper
        atoms = pretrain._cross_entropy(out.x_logits, x)
        bonds = pretrain._cross_entropy(out.adj_logits[..., upper, :], adj[..., upper, :])
        kl = 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum(-1).mean(-1) / encoder.variables
        if weight:
            kl = kl + weight / beta * energy_distance(z, torch.randn_like(z))
        return atoms, bonds, kl

    return loss


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--molecules", type=int, default=2000, help="MOSES training SMILES")
    parser.add_argument("--steps", type=int, default=4000, help="pre-training steps")
    parser.add_argument("--beta", type=float, default=0.1, help="the KL weight per variable")
    parser.add_argument("--match", type=float, default=0.0, help="energy-distance weight")
    parser.add_argument("--z-dim", type=int, default=128)
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--save", help="keep G's and the encoder's weights here")
    parser.add_argument("--json", help="also write the rows here")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    pretrain.decoder_loss = with_match(args.match, args.beta)
    model, data = screen_model(args.molecules, args.z_dim)
    G, train = model.generator, data.split["train"]
    N, T, R, Z = G.N, G.T, G.R, G.z_dim
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        enc = pretrain.Encoder(N, T, R, Z)
    last = pretrain.pretrain_decoder(
        G, data.atoms[train], data.bonds[train], steps=args.steps, beta=args.beta, seed=0,
        encoder=enc, verbose=True,
    )  # fmt: skip
    print(last, file=sys.stderr)
    G.eval()
    enc.eval()
    known, rows, n = set(data.smiles), [], args.samples
    x1 = F.one_hot(data.atoms[train].long(), T).float()  # (M, N, T)
    a1 = F.one_hot(data.bonds[train].long(), R).float()  # (M, N, N, R)
    gen = torch.Generator().manual_seed(1)

    def read(z: torch.Tensor, cond: torch.Tensor, name: str) -> None:
        out = G(z, cond)
        gx = gumbel_noise(out.x_logits.shape, generator=gen)
        ge = gumbel_noise(out.adj_logits.shape, symmetric=True, generator=gen)
        for how, (x, e) in (
            ("T=1", ((out.x_logits + gx).argmax(-1), (out.adj_logits + ge).argmax(-1))),
            ("argmax", (out.x_logits.argmax(-1), out.adj_logits.argmax(-1))),
        ):
            graphs = decode(x.numpy(), e.numpy(), data.atom_types)
            rows.append(reading(f"{name} {how}", graphs, known))
            print(json.dumps(rows[-1]), file=sys.stderr)

    with torch.no_grad():
        mu, logvar = enc(x1, a1)  # (M, Z) each
        own = conditioning.one_hot_classes(x1)  # (M, C)
        idx = torch.randint(0, len(x1), (n,), generator=gen)
        cond = model.class_prior.sample(n, gen)  # (n, C)
        read(torch.randn(n, Z, generator=gen), cond, "prior N(0,I)")
        cov = torch.cov(mu.T) + 1e-4 * torch.eye(Z)
        torch.manual_seed(1)
        gauss = torch.distributions.MultivariateNormal(mu.mean(0), cov)
        read(gauss.sample((n,)), cond, "fitted Gaussian of the means")
        read(mu[idx], own[idx], "encoder means")
        code = mu[idx] + torch.randn(n, Z, generator=gen) * (0.5 * logvar[idx]).exp()
        read(code, own[idx], "aggregate posterior")
        read(code, cond, "aggregate posterior, class from prior")
        near = torch.cdist(mu[:500], mu[:500]).fill_diagonal_(1e9).min(1).values
        info = {
            "kl": 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum(-1).mean().item(),
            "mean_sigma": (0.5 * logvar).exp().mean().item(),
            "nn_dist": near.mean().item(),  # between the means of 500 molecules
        }
    print(info, file=sys.stderr)
    if args.save:
        torch.save({"G": G.state_dict(), "enc": enc.state_dict()}, args.save)
    if args.json:
        Path(args.json).write_text(
            json.dumps({"args": vars(args), "info": info, "rows": rows}, indent=1)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
