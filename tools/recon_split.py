"""Where a ``--recon`` model's generator keeps the data: its encoder's codes or the prior?

A run trained with ``--recon`` keeps its VAE encoder. This decodes with G (its trained
weights, not the EMA copy; argmax, each molecule's own size class) two sets of codes for the
first ``-n`` molecules of a SMILES file: the encoder's means of those molecules
(``posterior``) and fresh z ~ N(0, I) (``prior``, what sampling uses), and prints the
strictly valid share (one fragment, sanitises) and the aromatic rings a valid molecule of
each, with the posterior's KL per code, one JSON row per member::

    python tools/recon_split.py RUN/ckpt.pt moses_subset.smi -n 300 --json split.json
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch
import torch.nn.functional as F

from molgan import checkpoint, chem, conditioning


def _reading(model, out) -> dict:
    from rdkit.Chem import rdMolDescriptors

    atoms, bonds = out.x_logits.argmax(-1).numpy(), out.adj_logits.argmax(-1).numpy()
    smiles = [
        chem.graph_to_smiles(a, b, atom_types=model.atom_types)
        for a, b in zip(atoms, bonds, strict=True)
    ]
    mols = [chem.Chem.MolFromSmiles(s) for s in smiles if s and "." not in s]
    mols = [m for m in mols if m is not None]
    rings = [rdMolDescriptors.CalcNumAromaticRings(m) for m in mols]
    return {
        "valid": len(mols) / len(smiles),
        "aromatic_rings": float(np.mean(rings)) if mols else 0.0,
    }


def split(path: str, smiles_file: str, n: int, seed: int = 0) -> list[dict]:
    """One row per member of ``path``: the posterior and prior readings (see the module)."""
    blob = checkpoint.read(path)
    rows = []
    for k in range(checkpoint.members_of(blob)):
        model = checkpoint.load(path, member=k)
        if model.encoder is None:
            raise SystemExit(f"{path} member {k} has no encoder: train it with --recon")
        N, T, R = model.generator.N, len(model.atom_types), len(model.bond_types)
        smiles = [line.split()[0] for line in open(smiles_file) if line.strip()][:n]
        graphs = [
            chem.mol_to_graph(chem.Chem.MolFromSmiles(s), N, atom_types=model.atom_types)
            for s in smiles
        ]
        x = F.one_hot(torch.tensor(np.stack([g[0] for g in graphs])).long(), T).float()  # (n, N, T)
        adj = F.one_hot(
            torch.tensor(np.stack([g[1] for g in graphs])).long(), R
        ).float()  # (n, N, N, R)
        cond = conditioning.one_hot_classes(x) if model.generator.cond_dim else None
        with torch.no_grad():
            mu, logvar = model.encoder(x, adj)  # (n, Z) each
            z = torch.randn(mu.shape, generator=torch.Generator().manual_seed(seed))
            kl = 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum(-1).mean()
            rows.append({
                "checkpoint": path, "member": k, "molecules": len(smiles), "kl_per_code": kl.item(),
                "posterior": _reading(model, model.generator(mu, cond)),
                "prior": _reading(model, model.generator(z, cond)),
            })  # fmt: skip
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint")
    parser.add_argument("smiles", help="molecules of the run's data (one SMILES a line)")
    parser.add_argument("-n", type=int, default=300)
    parser.add_argument("--json", help="also write the rows here")
    args = parser.parse_args(argv)
    rows = split(args.checkpoint, args.smiles, args.n)
    for row in rows:
        print(json.dumps(row))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
