"""What MolGAN makes at drug-like size after a short run on a MOSES subset (issue 42, "find out
why it fails at 27 atoms"): per variant and seed, the graphs' atoms and bonds, how many are
empty, fragmented or over-valent, their double and triple bonds (``multiple``), rings,
aromatic rings, atoms with two or more double bonds (``cumulated``, e.g. allenes) and 3-rings
(``three_rings``; all four of the strictly valid ones), the share of those passing MOSES's
filters (``filters``), and strict / lenient / valency-corrected validity. MOSES's first
2,000 molecules, kekulised: 20.5 atoms, 22.0 bonds, 6.9 of them double or triple, 2.5 rings,
2.05 aromatic rings, 0.14 cumulated atoms (sulfonyl S), 0.01 3-rings; all pass the filters.

    python tools/moses_diagnose.py --molecules 2000 --steps 1000 --seeds 0 1 --json diag.json

The subset is the first ``--molecules`` SMILES of MOSES's training split (molsets' file); each
run trains ``--steps`` steps at N = 27, without RL (λ 1) unless the variant says, then samples
1,000 graphs (seed 0) per sampling temperature.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from molgan import chem
from molgan.data import moses_file
from molgan.decoding import parse_temperature
from molgan.molfiles import read_smiles
from molgan.presets import make_config
from molgan.train import train

# name -> (preset, overrides); bond_count ran at 7e41cc0, "pad bonds masked" at e0f4f18,
# aromatic types (round 11) at 801c5fa; bond composition (rounds 10, 22-24), aromatic bonds,
# aromatic ends and walk steps (rounds 14, 24-26) at 1ed2aa3, RL on filters (round 29) at 6493550,
# triangles (round 30) at ebf11e2, positions (round 31) at c23919e, recon (round 37) at
# a7b00eb
_TERMS = {"isolated": 10.0, "spanning": 10.0, "composition": 10.0, "size_mask": True}
_RL_GP = {"lam": 0.5, "rl_start": 0.2, "gp_per_sample": True}  # RL from 20%, per-sample GP
_NEW = {"reward": "validity", "marginal_init": True, "overflow": 5.0}  # round 18's additions
# the terms at a tenth of their weights (valence 5 -> 0.5): D's gradient against theirs
_TERMS_TENTH = {"isolated": 1.0, "spanning": 1.0, "composition": 1.0, "valence": 0.5}
VARIANTS = {
    "latent (default: valence 5)": ("latent", {}),
    "latent, valence 0": ("latent", {"valence": 0.0}),
    "paper (no remedy)": ("paper", {}),
    "latent, D sees samples (hard_gumbel)": ("latent", {"mode": "hard_gumbel"}),
    "latent, isolated 5": ("latent", {"isolated": 5.0}),
    "latent, valence 1.7 (5·9/27)": ("latent", {"valence": 1.7}),
    "latent, sized": ("latent", {"size_mask": True}),
    "latent, isolated 5, sized": ("latent", {"isolated": 5.0, "size_mask": True}),
    "latent, isolated 20": ("latent", {"isolated": 20.0}),
    "latent, isolated 5, valence 0": ("latent", {"isolated": 5.0, "valence": 0.0}),
    "latent, isolated 10, sized": ("latent", {"isolated": 10.0, "size_mask": True}),
    "latent, isolated 20, sized": ("latent", {"isolated": 20.0, "size_mask": True}),
    "latent, isolated 10, spanning 10, sized": (
        "latent",
        {"isolated": 10.0, "spanning": 10.0, "size_mask": True},
    ),
    "latent, isolated 10, sized, valence 2": (
        "latent",
        {"isolated": 10.0, "size_mask": True, "valence": 2.0},
    ),
    "latent, isolated 10, sized, D 5 layers": (
        "latent",
        {"isolated": 10.0, "size_mask": True, "conv_dims": (64, 64, 64, 64, 32)},
    ),
    "latent, isolated 10, spanning 10, composition 10, sized": (
        "latent",
        {"isolated": 10.0, "spanning": 10.0, "composition": 10.0, "size_mask": True},
    ),
    "latent, isolated 10, spanning 10, composition 10, sized, RL on validity (λ 0.5 from 20%)": (
        "latent",
        {"isolated": 10.0, "spanning": 10.0, "composition": 10.0, "size_mask": True}
        | {"lam": 0.5, "reward": "validity", "rl_start": 0.2},
    ),
    "latent, isolated 10, spanning 10, sized, gp per sample": (
        "latent",
        {"isolated": 10.0, "spanning": 10.0, "size_mask": True, "gp_per_sample": True},
    ),
    "latent, isolated 10, spanning 10, composition 10, sized, RL on validity, gp per sample": (
        "latent",
        _TERMS | _RL_GP | {"reward": "validity"},
    ),
    "latent, isolated 10, spanning 10, composition 10, sized, RL on QED x SA, gp per sample": (
        "latent",
        _TERMS | _RL_GP | {"reward": "qed,sa"},
    ),
    "latent, isolated 10, spanning 10, composition 10, sized, RL on SA, gp per sample": (
        "latent",
        _TERMS | _RL_GP | {"reward": "sa"},
    ),
    "latent, the terms at a tenth, sized, RL on validity, gp per sample": (
        "latent",
        _TERMS | _TERMS_TENTH | _RL_GP | {"reward": "validity"},
    ),
    "latent, the terms at a tenth, sized, gp per sample": (
        "latent",
        _TERMS | _TERMS_TENTH | {"gp_per_sample": True},
    ),
    "latent, isolated 10, spanning 10, composition 10, sized, RL on validity, gp per sample, "
    "marginal init": ("latent", _TERMS | _RL_GP | {"reward": "validity", "marginal_init": True}),
    "latent, isolated 10, spanning 10, composition 10, sized, RL on validity, gp per sample, "
    "marginal init, valence 0": (
        "latent",
        _TERMS | _RL_GP | {"reward": "validity", "marginal_init": True, "valence": 0.0},
    ),
    "latent, isolated 10, spanning 10, composition 10, sized, gp per sample, marginal init": (
        "latent",
        _TERMS | {"gp_per_sample": True, "marginal_init": True},
    ),
    "latent, isolated 10, spanning 10, composition 10, sized, RL on SA, gp per sample, "
    "marginal init": ("latent", _TERMS | _RL_GP | {"reward": "sa", "marginal_init": True}),
    "latent, isolated 10, spanning 10, composition 10, sized, gp per sample, marginal init, "
    "valence 10": (
        "latent",
        _TERMS | {"gp_per_sample": True, "marginal_init": True, "valence": 10.0},
    ),
    "latent, isolated 10, spanning 10, composition 10, sized, gp per sample, marginal init, "
    "overflow 5": (
        "latent",
        _TERMS | {"gp_per_sample": True, "marginal_init": True, "overflow": 5.0},
    ),
    "latent, isolated 10, spanning 10, composition 10, sized, RL on validity, gp per sample, "
    "marginal init, overflow 5": (
        "latent",
        _TERMS | _RL_GP | {"reward": "validity", "marginal_init": True, "overflow": 5.0},
    ),
    "latent, isolated 10, spanning 30, composition 10, sized, gp per sample, marginal init, "
    "overflow 5": (
        "latent",
        _TERMS | {"spanning": 30.0, "gp_per_sample": True, "marginal_init": True, "overflow": 5.0},
    ),
    "latent, isolated 10, spanning 10, composition 10, sized, RL on validity, gp per sample, "
    "overflow 5": ("latent", _TERMS | _RL_GP | {"reward": "validity", "overflow": 5.0}),
    "latent, isolated 10, spanning 10, composition 10, sized, RL on SA, gp per sample, "
    "marginal init, overflow 5": (
        "latent",
        _TERMS | _RL_GP | {"reward": "sa", "marginal_init": True, "overflow": 5.0},
    ),
    "latent, isolated 10, spanning 10, composition 10, sized, RL on validity at λ 0.8, gp per "
    "sample, marginal init, overflow 5": (
        "latent",
        _TERMS
        | _RL_GP
        | {"reward": "validity", "lam": 0.8, "marginal_init": True}
        | {"overflow": 5.0},
    ),
    "latent, isolated 10, spanning 10, composition 10, sized, RL on validity, gp per sample, "
    "marginal init, overflow 5, D sees samples (hard_gumbel)": (
        "latent",
        _TERMS | _RL_GP | _NEW | {"mode": "hard_gumbel"},
    ),
    "latent, isolated 10, spanning 10, composition 10, sized, RL on QED, gp per sample, "
    "marginal init, overflow 5": ("latent", _TERMS | _RL_GP | _NEW | {"reward": "qed"}),
    "latent, isolated 10, spanning 10, composition 10, sized, RL on validity, gp per sample, "
    "marginal init, overflow 5, energy 5": ("latent", _TERMS | _RL_GP | _NEW | {"energy": 5.0}),
    "latent, isolated 10, spanning 10, composition 10, sized, RL on validity, gp per sample, "
    "marginal init, overflow 5, energy 2": ("latent", _TERMS | _RL_GP | _NEW | {"energy": 2.0}),
    "latent, isolated 10, spanning 10, composition 10, sized, RL on validity, gp per sample, "
    "marginal init, overflow 5, G 256-512-1024": (
        "latent",
        _TERMS | _RL_GP | _NEW | {"gen_dims": (256, 512, 1024)},
    ),
    "latent, isolated 10, spanning 10, composition 10, sized, RL on validity, gp per sample, "
    "marginal init, overflow 5, D 128-64-64, agg 256, head 256": (
        "latent",
        _TERMS | _RL_GP | _NEW | {"conv_dims": (128, 64, 64), "agg_dim": 256, "head_dims": (256,)},
    ),
    "latent, isolated 10, spanning 10, composition 10, sized, RL on validity, gp per sample, "
    "marginal init, overflow 5, mode seeking 5": (
        "latent",
        _TERMS | _RL_GP | _NEW | {"mode_seeking": 5.0},
    ),
    "latent, isolated 10, spanning 10, composition 10, sized, RL on validity, gp per sample, "
    "marginal init, overflow 5, G pretrained as a VAE decoder (4000 steps)": (
        "latent",
        _TERMS | _RL_GP | _NEW | {"pretrain": 4000, "pretrain_beta": 1.0},  # round 34's β 1
    ),
    "latent, isolated 10, spanning 10, composition 10, sized, RL on validity, gp per sample, "
    "marginal init, overflow 5, G pretrained as a VAE decoder (4000 steps), β 0.1": (
        "latent",
        _TERMS | _RL_GP | _NEW | {"pretrain": 4000, "pretrain_beta": 0.1},
    ),
    "latent, isolated 10, spanning 10, composition 10, sized, RL on validity, gp per sample, "
    "marginal init, G pretrained as a VAE decoder (4000 steps), β 0.1, valence 0": (
        "latent",
        _TERMS
        | _RL_GP
        | _NEW
        | {"pretrain": 4000, "pretrain_beta": 0.1}
        | {"valence": 0.0, "overflow": 0.0},
    ),
    "latent, isolated 10, spanning 10, composition 10, sized, gp per sample, "
    "marginal init, G pretrained as a VAE decoder (4000 steps), β 0.1, valence 0": (
        "latent",
        _TERMS
        | _NEW
        | {"pretrain": 4000, "pretrain_beta": 0.1, "gp_per_sample": True}
        | {"valence": 0.0, "overflow": 0.0},
    ),
    "latent, isolated 10, spanning 10, composition 10, sized, RL on validity, gp per sample, "
    "marginal init, overflow 5, G pretrained as a VAE decoder (4000 steps), β 0.1, G and V "
    "at lr 1e-4": (
        "latent",
        _TERMS
        | _RL_GP
        | _NEW
        | {"pretrain": 4000, "pretrain_beta": 0.1}
        | {"lr": 1e-4, "lr_d": 1e-3},
    ),
    "latent, isolated 10, spanning 10, composition 10, sized, no RL, gp per sample, "
    "marginal init, overflow 5, G pretrained as a VAE decoder (4000 steps), β 0.1": (
        "latent",
        _TERMS
        | _NEW
        | {"pretrain": 4000, "pretrain_beta": 0.1}
        | {"lam": 1.0, "gp_per_sample": True},
    ),
    "latent, isolated 10, spanning 10, composition 10, sized, RL on validity, gp per sample, "
    "marginal init, overflow 5, G pretrained as a VAE decoder (4000 steps), β 0.1, valence 0": (
        "latent",
        _TERMS | _RL_GP | _NEW | {"pretrain": 4000, "pretrain_beta": 0.1, "valence": 0.0},
    ),
    "latent, isolated 10, spanning 10, composition 10, sized, RL on validity, gp per sample, "
    "marginal init, overflow 1, G pretrained as a VAE decoder (4000 steps), β 0.1, valence 0": (
        "latent",
        _TERMS
        | _RL_GP
        | _NEW
        | {"pretrain": 4000, "pretrain_beta": 0.1, "valence": 0.0, "overflow": 1.0},
    ),
    "latent, isolated 10, spanning 30, sized": (
        "latent",
        {"isolated": 10.0, "spanning": 30.0, "size_mask": True},
    ),
    "latent, isolated 10, spanning 10, sized, RL on validity (λ 0.5 from 20%)": (
        "latent",
        {"isolated": 10.0, "spanning": 10.0, "size_mask": True}
        | {"lam": 0.5, "reward": "validity", "rl_start": 0.2},
    ),
}


def composition(atoms: np.ndarray, num_types: int) -> np.ndarray:
    """Each non-pad atom type's share of the atoms of graphs (atoms (n, N)), (T-1,)."""
    counts = np.bincount(atoms[atoms > 0].ravel(), minlength=num_types)[1:]
    return counts / max(1, counts.sum())


def ring_kinds(smiles: list[str]) -> tuple[float, float, float, float]:
    """Aromatic rings, atoms with ≥ 2 double bonds (allene centres, sulfonyl S) and 3-rings
    per molecule of ``smiles`` (valid SMILES), and the share passing MOSES's filters."""
    from rdkit import Chem
    from rdkit.Chem import rdMolDescriptors

    from molgan.moses_metrics import passes_filters

    mols = [Chem.MolFromSmiles(s) for s in smiles]
    aromatic = [rdMolDescriptors.CalcNumAromaticRings(m) for m in mols]
    double = Chem.BondType.DOUBLE
    cumulated = [
        sum(sum(b.GetBondType() == double for b in a.GetBonds()) >= 2 for a in m.GetAtoms())
        for m in mols
    ]
    three = [sum(len(r) == 3 for r in m.GetRingInfo().AtomRings()) for m in mols]
    passes = [passes_filters(m) for m in mols]
    return tuple(float(np.mean(v)) for v in (aromatic, cumulated, three, passes))


def graph_stats(
    atoms: np.ndarray, bonds: np.ndarray, atom_types: tuple[str, ...], data_share=None
) -> dict:
    """Shares and means over generated graphs (atoms (n, N), bonds (n, N, N)); ``atom_tv``:
    the total variation between their atom types and ``data_share`` (``composition``)."""
    real = atoms > 0  # (n, N)
    pair = real[:, :, None] & real[:, None, :]  # bonds between real atoms only
    upper = np.triu(np.ones(atoms.shape[1:] * 2, dtype=bool), k=1)
    n_bonds = ((bonds > 0) & pair & upper).sum(axis=(1, 2))  # (n,)
    n_multiple = ((bonds > 1) & pair & upper).sum(axis=(1, 2))  # (n,) double and triple
    n_atoms = real.sum(axis=1)
    strict, lenient, corrected = [], [], []
    for a, b in zip(atoms, bonds, strict=True):
        strict.append(chem.graph_to_smiles(a, b, atom_types=atom_types))
        loose = chem.graph_to_smiles(a, b, strict=False, atom_types=atom_types)
        lenient.append(loose)
        corrected.append(chem.corrected_smiles(a, b, atom_types) is not None)
    parsed = [s for s in lenient if s]
    one = np.array([s is not None for s in strict])  # rings of a molecule: bonds - atoms + 1
    kinds = ring_kinds([s for s in strict if s]) if one.any() else (None,) * 4
    aromatic, cumulated, three_rings, filters = kinds
    return {
        "atoms": float(n_atoms.mean()),
        "bonds": float(n_bonds.mean()),
        "multiple": float(n_multiple.mean()),
        "rings": float((n_bonds - n_atoms + 1)[one].mean()) if one.any() else None,
        "aromatic": aromatic,
        "cumulated": cumulated,
        "three_rings": three_rings,
        "filters": filters,
        "empty": float((n_atoms == 0).mean()),
        "no_bond": float(((n_bonds == 0) & (n_atoms > 1)).mean()),
        "fragments": float(np.mean([s.count(".") + 1 for s in parsed])) if parsed else 0.0,
        "atom_tv": float(np.abs(composition(atoms, len(atom_types)) - data_share).sum() / 2)
        if data_share is not None
        else None,
        "valid": float(np.mean([s is not None for s in strict])),
        "unique": len({s for s in strict if s}) / max(1, sum(s is not None for s in strict)),
        "valid_lenient": float(np.mean([s is not None for s in lenient])),
        "valid_corrected": float(np.mean(corrected)),
    }


@torch.no_grad()
def soft_bonds(model, n: int) -> float:
    """Expected bonds per graph under G's own softmax (what D sees in training), for fresh z:
    against ``bonds`` (its Gumbel-argmax samples) it tells a diffuse G from a bondless one."""
    gen = torch.Generator().manual_seed(1)
    g = model.sampler
    z = torch.randn(n, g.z_dim, generator=gen)  # (n, Z)
    cond = None if model.class_prior is None else model.class_prior.sample(n, gen)
    adj = torch.softmax(g.eval()(z, cond).adj_logits, dim=-1)  # (n, N, N, R)
    return float((adj[..., 1:].sum(dim=(-3, -2, -1)) / 2).mean())


def summary(rows: list[dict]) -> str:
    """A markdown table of mean ± std over seeds per variant and sampling temperature."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in rows:
        groups.setdefault((r["variant"], r["steps"], r.get("temperature", "1")), []).append(r)
    keys = ["atoms", "bonds", "multiple", "rings", "aromatic", "cumulated", "three_rings"]
    keys += ["fragments", "atom_tv", "valid"]
    keys += ["valid_lenient", "unique", "filters", "fcd_test"]
    keys = [k for k in keys if all(r.get(k) is not None for r in rows)]
    pct = {"valid", "valid_lenient", "unique", "filters"}
    lines = ["| variant | steps | T | seeds | " + " | ".join(keys) + " |"]
    lines.append("|---|---|---|---|" + "---|" * len(keys))
    for (variant, steps, t), group in groups.items():
        cells = []
        for k in keys:
            v = np.array([r[k] for r in group]) * (100 if k in pct else 1)
            unit = "%" if k in pct else ""
            digits = 2 if k == "atom_tv" else 1
            sd = v.std(ddof=1) if len(v) > 1 else 0.0
            cells.append(f"{v.mean():.{digits}f}{unit} ± {sd:.{digits}f}")
        seeds = ",".join(str(r["seed"]) for r in group)
        lines.append(f"| {variant} | {steps} | {t} | {seeds} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


FCD_VALID = 250  # FCD's bias grows as the sample shrinks: every run's reading uses this many


def fcd_test(model, tries: int = 4) -> float | None:
    """FCD of the first ``FCD_VALID`` strictly valid molecules of ``model`` (drawn 1,000 graphs
    at a time with sampling seed 1, at most ``tries`` times; ``None`` if fewer turn up)
    against MOSES's shipped test statistics: a reading for comparing variants only (250
    molecules of MOSES's own training split score 12.7-13.4 here, where 30,000 of them would
    score ~0.1)."""
    from molgan import fcd, moses_metrics

    gen, valid = torch.Generator().manual_seed(1), []
    for _ in range(tries):
        atoms, bonds = model.sample_graphs(1000, generator=gen)
        pairs = zip(atoms, bonds, strict=True)
        valid += [
            s for a, b in pairs if (s := chem.graph_to_smiles(a, b, atom_types=model.atom_types))
        ]
        if len(valid) >= FCD_VALID:
            break
    if len(valid) < FCD_VALID:
        return None
    reference = moses_metrics.reference_statistics("test")["FCD"]
    mu, sigma = fcd.statistics(valid[:FCD_VALID])
    return float(fcd.frechet_distance(mu, sigma, reference["mu"], reference["sigma"]))


def _run_name(root: str, preset: str) -> str:
    """A run folder name not yet used under ``root``."""
    n = 0
    while (Path(root) / f"{preset}-{n}").exists():
        n += 1
    return f"{preset}-{n}"


def data_atoms(model, smiles: list[str]) -> np.ndarray:
    """The atom-type indices (n, N) of ``smiles`` in ``model``'s vocabulary."""
    from rdkit import Chem

    mols = [Chem.MolFromSmiles(s) for s in smiles]
    graphs = [chem.mol_to_graph(m, model.generator.N, model.atom_types) for m in mols if m]
    return np.stack([g[0] for g in graphs if g is not None])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--molecules", type=int, default=2000, help="MOSES training SMILES")
    parser.add_argument("--steps", type=int, default=1000, help="training steps per run")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--json", help="also write the rows here")
    parser.add_argument("--only", nargs="+", help="these variants (names as in the table)")
    parser.add_argument(
        "--population", action="store_true", help="train the seeds as one population"
    )
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument(
        "--fcd", action="store_true",
        help="also FCD/Test of each run's strictly valid samples (against MOSES's shipped test "
        "statistics; ~1,000 samples: biased up against the 30,000-sample MOSES row, but "
        "comparable between variants)",
    )  # fmt: skip
    parser.add_argument("--keep", help="keep the trained runs in this folder (else deleted)")
    parser.add_argument(
        "--temperatures", nargs="+", default=["1"],
        help="sampling temperatures, T or ATOMS:BONDS (molgan.sample's)",
    )  # fmt: skip
    parser.add_argument(
        "--report", nargs="+", help="print the mean ± std table of these --json files and stop"
    )
    args = parser.parse_args(argv)
    if args.report:
        runs = [json.loads(Path(f).read_text()) for f in args.report]
        print(summary([{"steps": run["args"]["steps"], **r} for run in runs for r in run["rows"]]))
        return 0
    torch.set_num_threads(args.threads)
    smiles = [s for _, s in read_smiles(moses_file("moses"))][: args.molecules]
    rows, shares = [], {}
    with tempfile.TemporaryDirectory() as scratch:
        root = args.keep or scratch
        Path(root).mkdir(parents=True, exist_ok=True)
        data = Path(root) / "moses_subset.smi"
        data.write_text("\n".join(smiles) + "\n")
        chosen = {k: v for k, v in VARIANTS.items() if not args.only or k in args.only}
        for name, (preset, overrides) in chosen.items():
            for seeds in [args.seeds] if args.population else [[s] for s in args.seeds]:
                settings = dict(
                    data=str(data), max_atoms=27, lam=1.0, max_steps=args.steps,
                    eval_every=args.steps, eval_samples=64, progress=False, seed=seeds[0],
                    out_dir=root, name=_run_name(root, preset), members=len(seeds),
                    member_settings={"seed": tuple(seeds)} if len(seeds) > 1 else {},
                )  # fmt: skip
                cfg = make_config(preset, **(settings | overrides))
                trained = train(cfg)
                for k, seed in enumerate(seeds):
                    model = trained.member(k) if len(seeds) > 1 else trained
                    for text in args.temperatures:
                        gen = torch.Generator().manual_seed(0)
                        t = parse_temperature(text)
                        atoms, bonds = model.sample_graphs(
                            args.samples, generator=gen, temperature=t
                        )
                        if model.atom_types not in shares:  # the data in the model's types
                            atoms_of = data_atoms(model, smiles)
                            shares[model.atom_types] = composition(atoms_of, len(model.atom_types))
                        share = shares[model.atom_types]
                        stats = graph_stats(atoms, bonds, model.atom_types, share)
                        row = {"variant": name, "seed": seed, "temperature": text, **stats}
                        row["soft_bonds"] = soft_bonds(model, args.samples)
                        if args.fcd:
                            row["fcd_test"] = fcd_test(model)
                        rows.append(row)
                        print(json.dumps(row), file=sys.stderr, flush=True)
    keys = ["atoms", "bonds", "soft_bonds", "empty", "no_bond", "fragments", "valid"]
    keys.append("valid_lenient")
    keys.append("valid_corrected")
    print("| variant | seed | T | " + " | ".join(keys) + " |")
    print("|---|---|---|" + "---|" * len(keys))
    for r in rows:
        cells = " | ".join(f"{r[k]:.3f}" for k in keys)
        print(f"| {r['variant']} | {r['seed']} | {r.get('temperature', '1')} | {cells} |")
    print(summary([{"steps": args.steps, **r} for r in rows]))
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
