"""G pre-trained as the decoder of a VAE before adversarial training (``Config.pretrain``).

A small MLP encoder reads a training graph (its atom one-hots and the one-hots of its bonds
above the diagonal) and gives a Gaussian code; G decodes the code [with the graph's class
vector] back to the graph, trained by cross-entropy on each node's type and each pair's bond
plus β · KL(code ‖ N(0, I)) (β ramped up over the first half). The encoder is then dropped:
training goes on from G's weights, sampling draws z ~ N(0, I) as before, one forward pass per
molecule. Why: G spells MOSES's molecules when trained as a decoder, where adversarial training
from scratch never reached them (``tools/decoder_probe.py``, docs/results.md).
"""

from __future__ import annotations

import sys

import torch
import torch.nn.functional as F

from molgan import conditioning
from molgan.layers import mlp

BATCH = 128  # graphs per pre-training step
ENCODER = (1024, 512)  # the encoder's hidden sizes (ReLU)
LR = 1e-3  # Adam's learning rate for G and the encoder (training's own lr may be lower)


def pretrain_decoder(
    generator: torch.nn.Module,
    atoms: torch.Tensor,
    bonds: torch.Tensor,
    *,
    steps: int,
    beta: float,
    seed: int,
    lr: float = LR,
    encoder_dims: tuple[int, ...] = ENCODER,
    device=None,
    verbose: bool = False,
) -> dict[str, float]:
    """Train ``generator`` (a single ``Generator``) in place as a VAE's decoder of the graphs
    ``atoms`` (M, N) and ``bonds`` (M, N, N) (type indices) for ``steps`` steps of ``BATCH``;
    ``encoder_dims``: the encoder's hidden sizes.

    The codes are layer-normed means plus unit-scale noise (a code of norm ~√Z, as z ~ N(0, I)).
    A conditional G is given each graph's class vector. All randomness comes from ``seed``
    (drawn on the host: the same weights on any ``device``, to rounding); G is moved to
    ``device`` for the work and back.

    Returns:
        The last step's mean losses: ``atoms`` and ``bonds`` (cross-entropy per variable) and
        ``kl`` (per code).
    """
    gen = torch.Generator().manual_seed(seed)
    M, N = atoms.shape
    T, R, Z = generator.T, generator.R, generator.z_dim
    upper = torch.triu(torch.ones(N, N, dtype=torch.bool), 1)  # (N, N): each pair once
    variables = N + int(upper.sum())
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        encoder = mlp((N * T + int(upper.sum()) * R, *encoder_dims), act=torch.nn.ReLU)
        head = torch.nn.Linear(encoder_dims[-1], 2 * Z)
    home = next(generator.parameters()).device
    for net in (generator, encoder, head):
        net.to(device or home)
    atoms, bonds = atoms.to(device or home), bonds.to(device or home)
    upper = upper.to(device or home)
    params = [*generator.parameters(), *encoder.parameters(), *head.parameters()]
    opt = torch.optim.Adam(params, lr=lr)
    last = {}
    for step in range(1, steps + 1):
        i = torch.randint(0, M, (min(BATCH, M),), generator=gen).to(atoms.device)
        a, b = atoms[i].long(), bonds[i][:, upper].long()  # (B, N), (B, P)
        x = F.one_hot(a, T).float()  # (B, N, T)
        flat = torch.cat([x.flatten(1), F.one_hot(b, R).flatten(1).float()], 1)  # (B, N·T + P·R)
        mu, logvar = head(encoder(flat)).chunk(2, -1)  # (B, Z) each
        mu = F.layer_norm(mu, mu.shape[-1:])
        noise = torch.randn(mu.shape, generator=gen).to(mu.device)
        z = mu + noise * (0.5 * logvar).exp()  # (B, Z)
        cond = conditioning.one_hot_classes(x) if generator.cond_dim else None  # (B, C)
        out = generator(z, cond)
        loss_x = F.cross_entropy(out.x_logits.flatten(0, 1), a.flatten())
        loss_e = F.cross_entropy(out.adj_logits[:, upper].flatten(0, 1), b.flatten())
        kl = 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum(-1).mean()
        ramp = min(1.0, 2 * step / steps)
        loss = loss_x + loss_e + beta * ramp * kl / variables
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step == steps or (verbose and step % 500 == 0):  # reads the device: not every step
            last = {"atoms": loss_x.item(), "bonds": loss_e.item(), "kl": kl.item()}
        if verbose and (step % 500 == 0 or step == steps):
            text = " | ".join(f"{k} {v:.4f}" for k, v in last.items())
            print(f"pretrain {step}/{steps} | {text}", file=sys.stderr)
    generator.zero_grad(set_to_none=True)
    generator.to(home)
    return last
