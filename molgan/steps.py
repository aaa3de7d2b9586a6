"""One update of each net of a population (``molgan.population``; a single run is a population
of one): the WGAN-GP discriminator step, the generator step (WGAN, RL and the remedies' terms on
G), the reward-net step and the RDKit rewards it regresses onto; the loop that schedules them is
``molgan.train``.

Tensors carry the member axis first: a real batch is x (K, B, N, T), adj (K, B, N, N, R); each
step minimises the sum of the K members' losses (their gradients do not mix) and returns (K,)
statistics. ``weights`` holds the per-member settings (``population.MEMBER_SETTINGS``) as (K,)
tensors.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch

from molgan import chem, conditioning, losses, repeats, rewards
from molgan.config import Config
from molgan.data import Batch
from molgan.generator import GeneratorOutput, discretize, gumbel_noise, noisy_one_hot
from molgan.models import random_embedding
from molgan.population import MEMBER_SETTINGS, Population


class Nets(NamedTuple):
    """The networks the step functions call: a model's own, or torch.compile'd views of them.

    Compiled views share the model's parameters. The gradient penalty differentiates twice,
    which compiled graphs do not support, so it always calls the eager ``gp_critic``.
    """

    generator: torch.nn.Module
    discriminator: torch.nn.Module
    reward_net: torch.nn.Module
    gp_critic: torch.nn.Module
    device: torch.device
    valence: tuple[torch.Tensor, torch.Tensor]  # (T,) atom valences, (R,) bond orders


def step_nets(model: Population, compile: bool = False) -> Nets:
    """``Nets`` over ``model``; ``compile`` wraps G, D and V in ``torch.compile``."""
    wrap = torch.compile if compile else (lambda net: net)
    g, d, v = model.generator, model.discriminator, model.reward_net
    tables = (
        torch.tensor([float(chem.type_valence(a)) for a in model.atom_types], device=model.device),
        torch.tensor([float(chem.BOND_ORDER[b]) for b in model.bond_types], device=model.device),
    )
    return Nets(wrap(g), wrap(d), wrap(v), d, model.device, tables)


class MemberWeights(dict):
    """The per-member settings as (K,) float tensors by name, and ``active``: the names that
    are nonzero for some member (known on the host, so that the steps never wait on the device
    to decide which terms to compute)."""

    active: frozenset[str] = frozenset()


def member_weights(cfg: Config, members: int, device) -> MemberWeights:
    """The per-member settings of ``cfg``: each member's own value where ``member_settings``
    gives one, else the shared value."""
    own = cfg.member_values()
    values = {name: own.get(name, (getattr(cfg, name),) * members) for name in MEMBER_SETTINGS}
    out = MemberWeights({n: torch.tensor(v, device=device) for n, v in values.items()})
    out.active = frozenset(n for n, v in values.items() if any(x > 0 for x in v))
    return out


def make_optimizers(
    model: Population, cfg: Config, capturable: bool = False
) -> dict[str, torch.optim.Optimizer]:
    """One Adam for each of G, D and V over the stacked weights (``opt_g``, ``opt_d``,
    ``opt_v``; exactly K Adams, Adam being elementwise): ``lr`` (D: ``lr_d`` if set), betas
    (``beta1``, ``beta2``). The fused implementation where torch has it for the device (the
    same update in one kernel per step; +4-9% training steps/s on our 2-core CPU);
    ``capturable`` for steps recorded in CUDA graphs."""
    betas = (cfg.beta1, cfg.beta2)
    lrs = _base_lrs(cfg)
    nets = {"g": model.generator, "d": model.discriminator, "v": model.reward_net}
    return {k: _adam(list(net.parameters()), lrs[k], betas, capturable) for k, net in nets.items()}


def _adam(params: list, lr: float, betas, capturable: bool) -> torch.optim.Optimizer:
    try:
        return torch.optim.Adam(params, lr=lr, betas=betas, fused=True, capturable=capturable)
    except (RuntimeError, TypeError):  # an older torch without fused Adam for this device
        return torch.optim.Adam(params, lr=lr, betas=betas, capturable=capturable)


def _base_lrs(cfg: Config) -> dict[str, float]:
    return {"g": cfg.lr, "d": cfg.lr_d or cfg.lr, "v": cfg.lr}


def decay_lrs(opts: dict[str, torch.optim.Optimizer], cfg: Config, fraction: float) -> None:
    """Set each optimiser's learning rate for this point of training (``fraction`` done, 0..1):
    its base rate times 1 - ``lr_decay`` · fraction (a function of the step: resumes exactly)."""
    for k, lr in _base_lrs(cfg).items():
        for group in opts[k].param_groups:
            group["lr"] = lr * (1.0 - cfg.lr_decay * fraction)


def d_step(nets: Nets, opt_d, real, cfg: Config, weights: dict) -> dict[str, torch.Tensor]:
    """One WGAN-GP discriminator update of every member on its real batch (K, B, ...) and a
    fresh fake batch."""
    K, B = real.x.shape[:2]
    z = torch.randn(K, B, cfg.z_dim, device=real.x.device)  # (K, B, Z)
    cond = _classes(real, cfg)  # fakes are asked for the real batch's classes
    with torch.no_grad():
        out = nets.generator(z, cond)
        x_fake, adj_fake = _fake_inputs(out, cfg)
        if cfg.mode == "softmax":  # what D sees is already the softmax: do not compute it twice
            x_soft, adj_soft = x_fake, adj_fake
        else:
            x_soft = torch.softmax(out.x_logits / cfg.tau, -1)  # (K, B, N, T)
            adj_soft = torch.softmax(out.adj_logits / cfg.tau, -1)  # (K, B, N, N, R)
    x_real, adj_real = noisy_one_hot(real.x, real.adj, cfg.real_noise)  # exact unless asked
    d_real = nets.discriminator(x_real, adj_real, cond)  # (K, B, 1), (K, B / pac, 1) with packs
    d_fake = nets.discriminator(x_fake, adj_fake, cond)  # (K, B, 1)
    critic = nets.gp_critic if cond is None else (lambda x, adj: nets.gp_critic(x, adj, cond))
    if cfg.adversarial == "rpgan":  # relativistic pairing loss with R1 + R2, weight γ/2
        gp = losses.zero_centered_penalty(critic, x_real, adj_real)  # R1, (K,)
        gp = gp + losses.zero_centered_penalty(critic, x_fake, adj_fake)  # + R2
        loss_d = losses.relativistic_d(d_real, d_fake) + 0.5 * weights["gp_weight"] * gp
    elif "gp_weight" not in weights.active:  # no penalty (e.g. a spectrally normalised D)
        gp = d_real.new_zeros(K)
        loss_d = losses.wasserstein_d(d_real, d_fake)  # (K,)
    else:  # As the official code: interpolate the real one-hot with the generator softmax.
        gp = losses.gradient_penalty(
            critic, x_real, adj_real, x_soft, adj_soft, per_sample=cfg.gp_per_sample
        )  # (K,)
        loss_d = losses.wasserstein_d(d_real, d_fake) + weights["gp_weight"] * gp  # (K,)
    opt_d.zero_grad(set_to_none=True)
    loss_d.sum().backward()
    opt_d.step()
    return {"loss/d": loss_d.detach(), "loss/gp": gp.detach()}


def _classes(real, cfg: Config) -> torch.Tensor | None:
    """The real batch's class vectors (K, B, C) for a conditional model, else ``None``."""
    if not cfg.condition:
        return None
    if real is None:
        raise ValueError("a conditional generator step needs the real batch (its classes)")
    return conditioning.one_hot_classes(real.x, cfg.condition_formula)


def _fake_inputs(out, cfg: Config, noise=None):
    if cfg.mode == "softmax":
        return discretize(out.x_logits, "softmax", cfg.tau), discretize(
            out.adj_logits, "softmax", cfg.tau
        )
    gx, ga = noise if noise is not None else _noise(out)
    return (
        discretize(out.x_logits, cfg.mode, cfg.tau, gx),
        discretize(out.adj_logits, cfg.mode, cfg.tau, ga),
    )


def _noise(out):
    device = out.x_logits.device
    return (
        gumbel_noise(out.x_logits.shape, device=device),
        gumbel_noise(out.adj_logits.shape, symmetric=True, device=device),
    )


def g_step(
    nets: Nets,
    opt_g,
    cfg: Config,
    lam: torch.Tensor,
    use_rl: bool,
    real,
    weights: dict,
    memory: repeats.GraphMemory | None = None,
):
    """One generator update of every member on λ·L_WGAN + (1-λ)·α·L_RL (``lam``: each member's
    λ at this step, (K,); ``use_rl``: this step has the RL term (some λ < 1); ``real``: the
    batch that feature matching compares with, and whose classes a conditional G is asked
    for).

    Returns:
        ``(stats, fake)``: ``fake = (x, adj, atoms, bonds)`` holds the detached inputs D saw and
        the Gumbel-argmax graphs of the same z (their molecules are the reward targets), each
        with the member axis first.
    """
    K = lam.shape[0]
    z = torch.randn(K, cfg.batch_size, cfg.z_dim, device=nets.device)  # (K, B, Z)
    cond = _classes(real, cfg)  # (K, B, C) or None
    out = nets.generator(z, cond)
    noise = _noise(out)
    x_fake, adj_fake = _fake_inputs(out, cfg, noise)
    gap = None
    if cfg.feature_matching:  # D's features, not its score: the score is Linear in them
        features = nets.gp_critic.features(x_fake, adj_fake, cond)  # (K, B, F)
        d_fake = nets.gp_critic.out(features)  # (K, B, 1)
        with torch.no_grad():
            real_features = nets.gp_critic.features(real.x, real.adj, cond)  # (K, B, F)
        gap = losses.feature_matching(real_features, features)  # (K,)
    else:
        d_fake = nets.discriminator(x_fake, adj_fake, cond)  # (K, B, 1)
    d_real = None
    if cfg.adversarial == "rpgan":  # the pairing loss compares each fake with a real sample
        with torch.no_grad():
            d_real = nets.discriminator(real.x, real.adj, cond)  # (K, B, 1)
    v_fake = nets.reward_net(x_fake, adj_fake) if use_rl else None  # (K, B, 1)
    parts = losses.generator_loss(
        d_fake,
        v_fake,
        lam,
        scale_rl=cfg.scale_rl,
        alpha_eps=cfg.alpha_eps,
        diversity=weights["diversity"] if "diversity" in weights.active else 0.0,
        feature_gap=gap,
        d_real=d_real,
    )
    loss = parts.loss  # (K,)
    if "mode_seeking" in weights.active:
        loss = loss + weights["mode_seeking"] * losses.mode_seeking(x_fake, adj_fake, z)
    energy = None
    if "energy" in weights.active:
        x_e, adj_e, cond_e = x_fake, adj_fake, cond  # the graphs the term compares
        if cfg.energy_samples > 1:  # more of G's samples, for this term alone
            more = cfg.energy_samples - 1
            z_more = torch.randn(K, more * cfg.batch_size, cfg.z_dim, device=nets.device)
            cond_more = None if cond is None else cond.repeat(1, more, 1)  # (K, more·B, C)
            x_more, adj_more = _fake_inputs(nets.generator(z_more, cond_more), cfg)
            x_e = torch.cat([x_fake, x_more], dim=1)  # (K, n·B, N, T)
            adj_e = torch.cat([adj_fake, adj_more], dim=1)  # (K, n·B, N, N, R)
            cond_e = None if cond is None else torch.cat([cond, cond_more], dim=1)
        if cfg.energy_space == "critic":
            fake_f = nets.gp_critic.features(x_e, adj_e, cond_e)  # (K, n·B, F)
            with torch.no_grad():
                real_f = nets.gp_critic.features(real.x, real.adj, cond)  # (K, B, F)
        elif cfg.energy_space == "random":
            embed = random_embedding(x_e.shape[-1], adj_e.shape[-1], nets.device)
            fake_f = embed.features(x_e, adj_e)  # (K, n·B, 128)
            with torch.no_grad():
                real_f = embed.features(real.x, real.adj)  # (K, B, 128)
        else:
            fake_f = losses.graph_features(x_e, adj_e)  # (K, n·B, N·T + N·N·R)
            real_f = losses.graph_features(real.x, real.adj)
        energy = losses.energy_distance(fake_f, real_f, gram=cfg.energy_samples > 1)  # (K,)
        loss = loss + weights["energy"] * energy
    penalties = _graph_penalties(nets, cfg, weights, out, noise, x_fake, adj_fake)
    with torch.no_grad():
        atoms = (out.x_logits + noise[0]).argmax(-1)  # (K, B, N)
        bonds = (out.adj_logits + noise[1]).argmax(-1)  # (K, B, N, N)
    if memory is not None:  # the unlikelihood of the graphs G keeps repeating
        counts = memory.update(repeats.graph_keys(atoms, bonds))  # (K, B)
        log_p = repeats.choice_log_prob(out.x_logits, out.adj_logits, atoms, bonds, cfg.tau)
        penalty = repeats.repeat_penalty(log_p, counts, memory.window)  # (K,)
        penalties["loss/repeat"] = (weights["repeat_penalty"], penalty)
    for weight, value in penalties.values():
        loss = loss + weight * value
    opt_g.zero_grad(set_to_none=True)
    loss.sum().backward(inputs=_params(opt_g))  # G's weights only: D's and V's grads unused
    opt_g.step()
    stats = {
        "loss/g": parts.loss.detach(),
        "loss/wgan": parts.wgan.detach(),
        "loss/rl": parts.rl.detach(),
        "alpha": parts.alpha.detach(),
    }
    stats |= {name: value.detach() for name, (_, value) in penalties.items()}
    if energy is not None:
        stats["loss/energy"] = energy.detach()
    return stats, (x_fake.detach(), adj_fake.detach(), atoms, bonds)


def _params(opt: torch.optim.Optimizer) -> list[torch.Tensor]:
    return [p for group in opt.param_groups for p in group["params"]]


def _graph_penalties(
    nets: Nets,
    cfg: Config,
    weights: dict,
    out: GeneratorOutput,
    noise: tuple[torch.Tensor, torch.Tensor],
    x_fake: torch.Tensor,
    adj_fake: torch.Tensor,
) -> dict[str, tuple[float, torch.Tensor]]:
    """The validity penalties on G's graphs that are switched on: log name -> ((K,) weights,
    (K,) values)."""
    penalties = {}
    if "valence" in weights.active:
        excess = losses.valence_excess(x_fake, adj_fake, *nets.valence)
        penalties["loss/valence"] = (weights["valence"], excess)
    if "connectivity" in weights.active:
        graph = (x_fake, adj_fake)
        if cfg.connectivity_sampled:  # the Gumbel-argmax graphs g_step returns, exactly
            graph = _joinable(
                discretize(out.x_logits, "hard_gumbel", cfg.tau, noise[0]),
                discretize(out.adj_logits, "hard_gumbel", cfg.tau, noise[1]),
            )
        penalties["loss/disconnection"] = (weights["connectivity"], losses.disconnection(*graph))
    return penalties


def _joinable(x: torch.Tensor, adj: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A sampled graph (x (..., B, N, T), adj (..., B, N, N, R)) whose fragments the
    connectivity penalty may join but not delete: only atoms without a bond to another atom keep
    their gradient.

    A lone atom is most often a pad node sampled as an atom, and deleting it is the fix; a piece
    of two or more atoms is part of the molecule. With the gradient on every atom G cut the count
    by deleting atoms (tiny molecules); with none it bonded every stray atom in (9-atom graphs
    only; docs/ablation.md §1).
    """
    real = x.detach().argmax(-1) != 0  # (..., B, N): sampled as an atom, not a pad
    bonded = adj.detach()[..., 1:].sum(-1) * real[..., None, :]  # (..., B, N, N): to real atoms
    lone = bonded.sum(-1) == 0  # (..., B, N): no bond to another atom (one to a pad is dropped)
    return torch.where(lone[..., None], x, x.detach()), adj


def v_step(nets: Nets, opt_v, real, r_real: torch.Tensor, fake, r_fake: torch.Tensor):
    """One reward-net update of every member regressing V onto real and generated rewards,
    (K, B, 1) each."""
    v_real = nets.reward_net(real.x, real.adj)  # (K, B, 1)
    v_fake = nets.reward_net(fake[0], fake[1])  # (K, B, 1)
    loss_v = losses.reward_net_loss(v_real, r_real, v_fake, r_fake)  # (K,)
    opt_v.zero_grad(set_to_none=True)
    loss_v.sum().backward()
    opt_v.step()
    return {
        "loss/v": loss_v.detach(),
        "reward/real": r_real.mean(dim=(1, 2)),
        "reward/fake": r_fake.mean(dim=(1, 2)),
    }


def fake_rewards(
    atoms: torch.Tensor,
    bonds: torch.Tensor,
    cfg: Config,
    train: set[str],
    memories: list[rewards.RarityMemory] | None = None,
    decoder=None,
    atom_types: tuple[str, ...] = chem.ATOM_TYPES,
):
    """RDKit rewards (K, B, 1) of generated index graphs (K, B, N) and (K, B, N, N); with
    ``memories`` (``rarity_window``, one per member), times each molecule's rarity among its
    member's recent molecules. ``decoder`` (``rewards.Decoder``) spreads the decoding over
    processes; default: in this process."""
    K, B = atoms.shape[:2]
    a, b = atoms.flatten(0, 1).cpu().numpy(), bonds.flatten(0, 1).cpu().numpy()
    if decoder is not None:
        smiles = decoder(a, b, atom_types)
    else:
        smiles = [
            chem.graph_to_smiles(x, y, atom_types=atom_types) for x, y in zip(a, b, strict=True)
        ]
    r = rewards.reward(smiles, cfg.reward, train).reshape(K, B, 1)  # (K, B, 1)
    if memories is not None:
        for k, memory in enumerate(memories):
            r[k] *= memory.update(smiles[k * B : (k + 1) * B])[:, None].astype(np.float32)
    return torch.from_numpy(r)  # (K, B, 1)


def step_functions(
    population: Population,
    nets: Nets,
    opts: dict,
    cfg: Config,
    weights,
    graphs: bool,
    memory: repeats.GraphMemory | None = None,
):
    """The D, G (one per RL on/off: ``run_g[rl]``) and V steps as functions of tensors only,
    recorded in CUDA graphs (``molgan.cudagraphs``) when ``graphs``. The G step includes the
    EMA update of G's weights."""

    def run_d(x, adj):
        return d_step(nets, opts["d"], Batch(x, adj), cfg, weights)

    def g_with(rl: bool):
        def run_g(x, adj, lam):
            out = g_step(nets, opts["g"], cfg, lam, rl, Batch(x, adj), weights, memory)
            population.update_ema(cfg.ema)
            return out

        return run_g

    def run_v(x, adj, r_real, x_fake, adj_fake, r_fake):
        return v_step(nets, opts["v"], Batch(x, adj), r_real, (x_fake, adj_fake), r_fake)

    run_g = {False: g_with(False), True: g_with(True)}
    if not graphs:
        return run_d, run_g, run_v
    from molgan.cudagraphs import Graphed

    graphed_g = {
        rl: Graphed(fn, f"G step (RL {'on' if rl else 'off'})") for rl, fn in run_g.items()
    }
    return Graphed(run_d, "D step"), graphed_g, Graphed(run_v, "V step")
