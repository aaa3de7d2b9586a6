"""Can molgan's generator *represent* drug-like molecules? A probe for issue 42.

G (z -> MLP -> node and edge logits) is trained here as a plain decoder: each of M MOSES
molecules gets a latent code of its own, learned with G's weights by cross-entropy on its atom
types and bonds (GLO, Bojanowski et al. 2018: no encoder, no discriminator). Then:

- ``recon``: the codes decoded (argmax) — how many graphs G reproduces exactly, and how many
  strictly valid molecules with aromatic rings that gives;
- ``gauss``: fresh codes from a Gaussian fitted to the learned ones, decoded by sampling as
  molgan samples (Gumbel-argmax) — a one-step generator without any adversary.

If G reproduces MOSES's molecules and their aromatic rings, the generator's form is not what
keeps MolGAN's samples far from the data; what it is trained by is. Prints one JSON row per
reading (and writes them with ``--json``)::

    python tools/decoder_probe.py --molecules 2000 --steps 4000 --json probe.json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from molgan import chem
from molgan.data import dataset_of, moses_file
from molgan.generator import Generator, gumbel_noise
from molgan.layers import mlp
from molgan.molfiles import read_smiles
from molgan.presets import make_config

sys.path.insert(0, str(Path(__file__).resolve().parent))
from moses_diagnose import ring_kinds  # noqa: E402


def decode(atoms: np.ndarray, bonds: np.ndarray, types: tuple[str, ...]) -> list[str | None]:
    return [chem.graph_to_smiles(a, b, atom_types=types) for a, b in zip(atoms, bonds, strict=True)]


def reading(name: str, smiles: list[str | None], data_smiles: set[str], **extra) -> dict:
    """Strict validity, uniqueness and novelty against the M molecules, and the ring kinds of
    the valid ones; FCD/Test of the first 250 valid (the screen's reading)."""
    from molgan import fcd, moses_metrics

    valid = [s for s in smiles if s]
    row = {"reading": name, "n": len(smiles), "valid": len(valid) / len(smiles), **extra}
    if valid:
        row["unique"] = len(set(valid)) / len(valid)
        row["in_data"] = sum(s in data_smiles for s in valid) / len(valid)
        keys = ("aromatic", "cumulated", "three_rings", "filters")
        row |= dict(zip(keys, ring_kinds(valid), strict=True))
    if len(valid) >= 250:
        reference = moses_metrics.reference_statistics("test")["FCD"]
        mu, sigma = fcd.statistics(valid[:250])
        row["fcd_test_250"] = float(
            fcd.frechet_distance(mu, sigma, reference["mu"], reference["sigma"])
        )
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--molecules", type=int, default=2000, help="MOSES training SMILES")
    parser.add_argument("--steps", type=int, default=4000)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--samples", type=int, default=1000, help="graphs of the Gaussian")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--vae",
        type=float,
        metavar="BETA",
        help="codes from an MLP encoder with a KL term of this weight (a VAE; fresh codes "
        "from N(0, I)) instead of free codes (GLO; fresh codes from a fitted Gaussian)",
    )
    parser.add_argument("--json", help="also write the rows here")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    smiles = [s for _, s in read_smiles(moses_file("moses"))][: args.molecules]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "moses.smi"
        path.write_text("\n".join(smiles) + "\n")
        data = dataset_of(make_config("latent", data=str(path), max_atoms=27), verbose=False)
    cfg = make_config("latent")  # G's sizes as in every MOSES run: z 128, 128-256-512
    atoms, bonds = data.atoms.long(), data.bonds.long()  # (M, N), (M, N, N)
    M, N = atoms.shape
    T, R = len(data.atom_types), len(chem.BOND_TYPES)
    G = Generator(cfg.z_dim, cfg.gen_dims, N, T, R)
    upper = torch.triu(torch.ones(N, N, dtype=torch.bool), 1)  # (N, N): each pair once
    flat = torch.cat(  # (M, N·T + P·R): the one-hot graph as the encoder reads it
        [F.one_hot(atoms, T).flatten(1), F.one_hot(bonds[:, upper], R).flatten(1)], 1
    ).float()
    if args.vae is None:
        codes = torch.nn.Parameter(torch.randn(M, cfg.z_dim))  # (M, Z)
        params = [*G.parameters(), codes]
    else:
        encoder = mlp((flat.shape[1], 1024, 512), act=torch.nn.ReLU)
        head = torch.nn.Linear(512, 2 * cfg.z_dim)
        params = [*G.parameters(), *encoder.parameters(), *head.parameters()]
    opt = torch.optim.Adam(params, lr=1e-3)
    for step in range(1, args.steps + 1):
        i = torch.randint(0, M, (args.batch_size,))
        if args.vae is None:
            z, prior = codes[i], 1e-3 * codes[i].pow(2).sum(-1).mean()  # codes near N(0, I)
        else:
            mu, logvar = head(encoder(flat[i])).chunk(2, -1)  # (B, Z) each
            mu = F.layer_norm(mu, mu.shape[-1:])  # unit scale: unbounded codes saturate G's tanh
            z = mu + torch.randn_like(mu) * (0.5 * logvar).exp() * float(args.vae > 0)
            kl = 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum(-1).mean()
            prior = args.vae * min(1.0, 2 * step / args.steps) * kl / (N + len(upper.nonzero()))
        out = G(z)
        loss_x = F.cross_entropy(out.x_logits.flatten(0, 1), atoms[i].flatten())
        loss_e = F.cross_entropy(
            out.adj_logits[:, upper].flatten(0, 1), bonds[i][:, upper].flatten()
        )
        loss = loss_x + loss_e + prior
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 500 == 0:
            print(
                f"step {step} | atoms {loss_x.item():.4f} | bonds {loss_e.item():.4f}",
                file=sys.stderr,
            )

    rows, known = [], set(data.smiles)
    with torch.no_grad():
        if args.vae is not None:
            codes = head(encoder(flat)).chunk(2, -1)[0]  # the posterior means
            codes = F.layer_norm(codes, codes.shape[-1:])
        out = G(codes)
        x, e = out.x_logits.argmax(-1), out.adj_logits.argmax(-1)  # (M, N), (M, N, N)
        exact = ((x == atoms).all(-1) & (e == bonds).all((-2, -1))).float().mean().item()
        rows.append(
            reading("recon", decode(x.numpy(), e.numpy(), data.atom_types), known, exact=exact)
        )
        z = codes.detach()  # (M, Z)
        if args.vae is None:  # a Gaussian fitted to the learned codes
            gauss = torch.distributions.MultivariateNormal(
                z.mean(0), torch.cov(z.T) + 1e-4 * torch.eye(z.shape[1])
            )
        else:  # the VAE's prior
            gauss = torch.distributions.MultivariateNormal(
                z.new_zeros(z.shape[1]), torch.eye(z.shape[1])
            )
        gen = torch.Generator().manual_seed(args.seed + 1)
        torch.manual_seed(args.seed + 1)
        out = G(gauss.sample((args.samples,)))
        x, e = out.x_logits.argmax(-1), out.adj_logits.argmax(-1)
        rows.append(reading("gauss argmax", decode(x.numpy(), e.numpy(), data.atom_types), known))
        gx = gumbel_noise(out.x_logits.shape, generator=gen)  # as molgan samples, T = 1
        ge = gumbel_noise(out.adj_logits.shape, symmetric=True, generator=gen)
        x, e = (out.x_logits + gx).argmax(-1), (out.adj_logits + ge).argmax(-1)
        rows.append(reading("gauss T=1", decode(x.numpy(), e.numpy(), data.atom_types), known))
    data_row = reading("data", list(data.smiles[: args.samples]), known)
    rows.append(data_row)
    for row in rows:
        print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}))
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
