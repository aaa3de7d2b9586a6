"""MolGAN trained on from a pre-trained decoder with the encoder's codes in place of N(0, I)
(issue 42, round 38): a probe, not a setting.

``tools/latent_probe.py`` found that a pre-trained G spells aromatic molecules for the codes its
encoder gives real molecules and not for z ~ N(0, I), which sampling draws. Here the screen's
run (``tools/moses_diagnose.py``'s variant with ``--pretrain``) is trained with its members'
encoders kept (frozen after pre-training) and, with ``--z codes``, every fake batch of the
adversarial phase (D's and G's steps) decoded from the codes of the real batch's molecules,
mu + σ·ε, ε the z the step draws, with their own classes (which a conditional G is given
anyway). With ``--z normal`` the run is the screen's own (fakes from N(0, I)). Then each
member's sampler reads 1,000 graphs from N(0, I), from the codes of random training molecules
(of the first ``--codebook``; own class) and from the same codes with classes from the class
prior (Gumbel-argmax, T = 1), with ``tools/decoder_probe.py``'s readings::

    python tools/code_prior_probe.py --z codes --json codes.json
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import tempfile
from pathlib import Path

import torch
import torch.nn.functional as F

import molgan.steps as steps
from molgan import conditioning
from molgan.data import moses_file
from molgan.generator import gumbel_noise
from molgan.molfiles import read_smiles
from molgan.population import stack
from molgan.presets import make_config
from molgan.pretrain import Encoder, pretrain_decoder

sys.path.insert(0, str(Path(__file__).resolve().parent))
from decoder_probe import decode, reading  # noqa: E402
from moses_diagnose import VARIANTS  # noqa: E402

training = importlib.import_module("molgan.train")  # the module (``molgan.train`` is the function)
VARIANT = (
    "latent, isolated 10, spanning 10, composition 10, sized, RL on validity, gp per sample, "
    "marginal init, overflow 5, G pretrained as a VAE decoder (4000 steps), β 0.1"
)
STATE: dict = {}  # the stacked encoder and the last real batch a step saw


def pretrain_keeping_encoders(population, atoms, bonds, *, steps, beta, seeds, **kw):
    """``pretrain.pretrain_members`` with the encoders kept (the same encoders and weights);
    with ``--z codes`` the live G decodes the real batch's codes from then on."""
    g = population.generator
    encoders = []
    for s in seeds:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(s)
            encoders.append(Encoder(atoms.shape[1], g.T, g.R, g.z_dim))
    encoder = stack(encoders)
    pretrain_decoder(
        g, atoms, bonds, steps=steps, beta=beta, seed=list(seeds), encoder=encoder, **kw
    )
    if population.generator_ema is not None:
        population.generator_ema.load_state_dict(g.state_dict())
    STATE["encoder"] = encoder.eval().requires_grad_(False)
    if STATE["mode"] == "codes":
        decode_z = g.forward

        def forward(z, cond=None):  # z (K, B, Z): the noise ε of the real batch's codes
            x, adj = STATE["real"]
            STATE["coded"] = STATE.get("coded", 0) + 1
            with torch.no_grad():
                mu, logvar = encoder(x, adj)  # (K, B, Z) each
            return decode_z(mu + z * (0.5 * logvar).exp(), cond)

        g.forward = forward


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--z", choices=("codes", "normal"), default="codes")
    parser.add_argument("--molecules", type=int, default=2000)
    parser.add_argument("--steps", type=int, default=6000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--pretrain", type=int, default=4000, help="pre-training steps")
    parser.add_argument(
        "--codebook",
        type=int,
        default=5000,
        help="read codes of the first this many training molecules",
    )
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    STATE["mode"] = args.z
    training.pretrain_members = pretrain_keeping_encoders
    classes_of = steps._classes

    def classes(real, cfg):  # every step asks the real batch's classes: keep the batch
        STATE["real"] = (real.x, real.adj)
        return classes_of(real, cfg)

    steps._classes = classes
    smiles = [s for _, s in read_smiles(moses_file("moses"))][: args.molecules]
    root = Path(tempfile.mkdtemp())
    (root / "moses_subset.smi").write_text("\n".join(smiles) + "\n")
    preset, overrides = VARIANTS[VARIANT]
    settings = dict(
        data=str(root / "moses_subset.smi"), max_atoms=27, lam=1.0, max_steps=args.steps,
        eval_every=args.steps, eval_samples=64, progress=False, seed=args.seeds[0],
        out_dir=str(root), name="run", members=len(args.seeds),
        member_settings={"seed": tuple(args.seeds)},
    )  # fmt: skip
    cfg = make_config(preset, **(settings | overrides | {"pretrain": args.pretrain}))
    trained = training.train(cfg)
    print(f"fake batches decoded from codes: {STATE.get('coded', 0)}", file=sys.stderr)
    data = training.dataset_of(cfg, verbose=False)
    train_idx = data.split["train"][: args.codebook]  # the codes sampling reads from
    T, R, K = len(data.atom_types), trained.member(0).generator.R, len(args.seeds)
    x1 = F.one_hot(data.atoms[train_idx].long(), T).float()  # (M, N, T)
    a1 = F.one_hot(data.bonds[train_idx].long(), R).float()  # (M, N, N, R)
    with torch.no_grad():
        mu, logvar = STATE["encoder"](x1.expand(K, *x1.shape), a1.expand(K, *a1.shape))
    own = conditioning.one_hot_classes(x1)  # (M, C)
    known, rows, n = set(data.smiles), [], args.samples
    for k, seed in enumerate(args.seeds):
        model = trained.member(k).eval()
        G, gen = model.sampler, torch.Generator().manual_seed(1)
        with torch.no_grad():
            idx = torch.randint(0, len(x1), (n,), generator=gen)
            code = (
                mu[k, idx] + torch.randn(n, G.z_dim, generator=gen) * (0.5 * logvar[k, idx]).exp()
            )
            prior_cond = model.class_prior.sample(n, gen)
            for name, z, cond in (
                ("prior N(0,I)", torch.randn(n, G.z_dim, generator=gen), prior_cond),
                ("codes, own class", code, own[idx]),
                ("codes, class from prior", code, prior_cond),
            ):
                out = G(z, cond)
                gx = gumbel_noise(out.x_logits.shape, generator=gen)
                ge = gumbel_noise(out.adj_logits.shape, symmetric=True, generator=gen)
                x, e = (out.x_logits + gx).argmax(-1), (out.adj_logits + ge).argmax(-1)
                graphs = decode(x.numpy(), e.numpy(), data.atom_types)
                rows.append(reading(name, graphs, known, seed=seed))
                print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
