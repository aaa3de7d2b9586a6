"""One update of each net of a population (``molgan.population``; a single run is a population
of one): the WGAN-GP discriminator step, the generator step (WGAN, RL and the extra terms of
``GENERATOR_TERMS``), the reward-net step and the RDKit rewards it regresses onto; the loop that
schedules them is ``molgan.train``.

Tensors carry the member axis first: a real batch is x (K, B, N, T), adj (K, B, N, N, R); each
step minimises the sum of the K members' losses (their gradients do not mix) and returns (K,)
statistics. ``weights`` holds the per-member settings (``population.MEMBER_SETTINGS``) as (K,)
tensors.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch

from molgan import chem, conditioning, losses, rewards
from molgan.config import Config
from molgan.data import Batch
from molgan.generator import discretize, gumbel_noise, softmax
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
    limits: tuple[tuple[int, ...], int]  # on the host: bond orders, largest valence + 1


def step_nets(model: Population, compile: bool = False) -> Nets:
    """``Nets`` over ``model``; ``compile`` wraps G, D and V in ``torch.compile``."""
    wrap = torch.compile if compile else (lambda net: net)
    g, d, v = model.generator, model.discriminator, model.reward_net
    valences = [chem.type_valence(a) for a in model.atom_types]
    orders = tuple(int(chem.BOND_ORDER[b]) for b in model.bond_types)
    tables = (
        torch.tensor([float(v) for v in valences], device=model.device),
        torch.tensor([float(o) for o in orders], device=model.device),
    )
    limits = (orders, max(valences) + 1)  # no device sync to read them in a step
    return Nets(wrap(g), wrap(d), wrap(v), d, model.device, tables, limits)


class MemberWeights(dict):
    """The per-member settings as (K,) float tensors by name, and ``active``: the names that
    are nonzero for some member (known on the host, so that the steps never wait on the device
    to decide which terms to compute)."""

    active: frozenset[str] = frozenset()


def member_weights(cfg: Config, members: int, device) -> MemberWeights:
    """The per-member settings of ``cfg``: each member's own value where ``member_settings``
    gives one, else the shared value."""
    own = cfg.member_settings
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
    lrs = {"g": cfg.lr, "d": cfg.lr_d or cfg.lr, "v": cfg.lr}
    nets = {"g": model.generator, "d": model.discriminator, "v": model.reward_net}
    return {k: _adam(list(net.parameters()), lrs[k], betas, capturable) for k, net in nets.items()}


def _adam(params: list, lr: float, betas, capturable: bool) -> torch.optim.Optimizer:
    try:
        return torch.optim.Adam(params, lr=lr, betas=betas, fused=True, capturable=capturable)
    except (RuntimeError, TypeError):  # an older torch without fused Adam for this device
        return torch.optim.Adam(params, lr=lr, betas=betas, capturable=capturable)


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
            x_soft = softmax(out.x_logits / cfg.tau)  # (K, B, N, T)
            adj_soft = softmax(out.adj_logits / cfg.tau)  # (K, B, N, N, R)
    d_real = nets.discriminator(real.x, real.adj, cond)  # (K, B, 1)
    d_fake = nets.discriminator(x_fake, adj_fake, cond)  # (K, B, 1)
    critic = nets.gp_critic if cond is None else (lambda x, adj: nets.gp_critic(x, adj, cond))
    # As the official code: interpolate the real one-hot with the generator softmax.
    gp = losses.gradient_penalty(
        critic, real.x, real.adj, x_soft, adj_soft, per_sample=cfg.gp_per_sample
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
    return conditioning.one_hot_classes(real.x)


def _fake_inputs(out, cfg: Config, noise=None):
    """What D sees of G's output: (x, adj) as ``cfg.mode`` makes them."""
    if cfg.mode == "softmax":
        x = discretize(out.x_logits, "softmax", cfg.tau)
        adj = discretize(out.adj_logits, "softmax", cfg.tau)
    else:
        gx, ga = noise if noise is not None else _noise(out)
        x = discretize(out.x_logits, cfg.mode, cfg.tau, gx)
        adj = discretize(out.adj_logits, cfg.mode, cfg.tau, ga)
    return x, adj


def _noise(out):
    device = out.x_logits.device
    return (
        gumbel_noise(out.x_logits.shape, device=device),
        gumbel_noise(out.adj_logits.shape, symmetric=True, device=device),
    )


class Fake(NamedTuple):
    """What a generator step made, for its extra terms: the latent ``z`` (K, B, Z), the classes
    ``cond`` (K, B, C) or ``None``, the graphs D saw ``x`` (K, B, N, T) and ``adj``
    (K, B, N, N, R), and the ``real`` batch beside them."""

    z: torch.Tensor
    cond: torch.Tensor | None
    x: torch.Tensor
    adj: torch.Tensor
    real: Batch


class Term(NamedTuple):
    """An extra term of the generator's loss: ``name`` is the ``Config`` field holding its
    weight (one per member, ``MEMBER_SETTINGS``; 0 = off) and its log key ``loss/<name>``;
    ``value(nets, fake)`` gives its (K,) values."""

    name: str
    value: Callable[[Nets, Fake], torch.Tensor]


def _energy(nets: Nets, fake: Fake) -> torch.Tensor:
    real = losses.graph_features(fake.real.x, fake.real.adj)  # (K, B, N·T + N·N·R)
    return losses.energy_distance(losses.graph_features(fake.x, fake.adj), real)


GENERATOR_TERMS: tuple[Term, ...] = (
    # MSGAN's mode-seeking term: distinct z should give distinct graphs.
    Term("mode_seeking", lambda nets, f: losses.mode_seeking(f.x, f.adj, f.z)),
    # The energy distance between G's batch and the real batch (EGO), in graph space.
    Term("energy", _energy),
    # G's soft bond orders above each atom's valence (a validity signal without RDKit).
    Term("valence", lambda nets, f: losses.valence_excess(f.x, f.adj, *nets.valence)),
    # G's expected over-valent atoms in its samples (the risk the valence term does not see).
    Term(
        "overflow",
        lambda nets, f: losses.valence_overflow(f.x, f.adj, nets.valence[0], *nets.limits),
    ),
    # G's expected atoms without a bond (the valence penalty's blind spot: the empty graph).
    Term("isolated", lambda nets, f: losses.isolated_atoms(f.x, f.adj)),
    # G's expected bonds short of atoms - 1 (fewer bonds than one piece needs).
    Term("spanning", lambda nets, f: losses.bond_shortfall(f.x, f.adj)),
    # G's batch's element composition against the real batch's.
    Term("composition", lambda nets, f: losses.composition_gap(f.x, f.real.x)),
)
"""The generator's terms beyond WGAN and RL, summed in this order by ``g_step`` with each
member's weight; a term whose weight is 0 for every member is not computed."""


def g_step(nets: Nets, opt_g, cfg: Config, lam: torch.Tensor, use_rl: bool, real, weights: dict):
    """One generator update of every member on λ·L_WGAN + (1-λ)·α·L_RL + Σ_t w_t·L_t (``lam``:
    each member's λ at this step, (K,); ``use_rl``: this step has the RL term (some λ < 1);
    ``real``: the batch whose classes a conditional G is asked for; the L_t are the
    ``GENERATOR_TERMS`` with a nonzero weight ``weights[name]``).

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
    d_fake = nets.discriminator(x_fake, adj_fake, cond)  # (K, B, 1)
    v_fake = nets.reward_net(x_fake, adj_fake) if use_rl else None  # (K, B, 1)
    parts = losses.generator_loss(
        d_fake, v_fake, lam, scale_rl=cfg.scale_rl, alpha_eps=cfg.alpha_eps
    )
    loss, terms = parts.loss, {}  # (K,)
    fake = Fake(z, cond, x_fake, adj_fake, real)
    for term in GENERATOR_TERMS:
        if term.name in weights.active:
            terms[f"loss/{term.name}"] = value = term.value(nets, fake)  # (K,)
            loss = loss + weights[term.name] * value
    with torch.no_grad():
        atoms = (out.x_logits + noise[0]).argmax(-1)  # (K, B, N)
        bonds = (out.adj_logits + noise[1]).argmax(-1)  # (K, B, N, N)
    opt_g.zero_grad(set_to_none=True)
    loss.sum().backward(inputs=_params(opt_g))  # G's weights only: D's and V's grads unused
    opt_g.step()
    stats = {
        "loss/g": parts.loss.detach(),
        "loss/wgan": parts.wgan.detach(),
        "loss/rl": parts.rl.detach(),
        "alpha": parts.alpha.detach(),
    }
    stats |= {name: value.detach() for name, value in terms.items()}
    return stats, (x_fake.detach(), adj_fake.detach(), atoms, bonds)


def _params(opt: torch.optim.Optimizer) -> list[torch.Tensor]:
    return [p for group in opt.param_groups for p in group["params"]]


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
    decoder=None,
    atom_types: tuple[str, ...] = chem.ATOM_TYPES,
):
    """RDKit rewards (K, B, 1) of generated index graphs (K, B, N) and (K, B, N, N).
    ``decoder`` (``rewards.Decoder``) spreads the decoding over processes; default: in this
    process."""
    K, B = atoms.shape[:2]
    a, b = atoms.flatten(0, 1).cpu().numpy(), bonds.flatten(0, 1).cpu().numpy()
    with chem.signals_deferred():  # a Ctrl-C during RDKit's work is kept for the loop
        if decoder is not None:
            smiles = decoder(a, b, atom_types)
        else:
            pairs = zip(a, b, strict=True)
            smiles = [chem.graph_to_smiles(x, y, atom_types=atom_types) for x, y in pairs]
        r = rewards.reward(smiles, cfg.reward, train).reshape(K, B, 1)  # (K, B, 1)
    return torch.from_numpy(r)  # (K, B, 1)


def step_functions(population: Population, nets: Nets, opts: dict, cfg: Config, weights, graphs):
    """The D, G (one per RL on/off: ``run_g[rl]``) and V steps as functions of tensors only,
    recorded in CUDA graphs (``molgan.cudagraphs``) when ``graphs``. The G step includes the
    EMA update of G's weights."""

    def run_d(x, adj):
        return d_step(nets, opts["d"], Batch(x, adj), cfg, weights)

    def g_with(rl: bool):
        def run_g(x, adj, lam):
            out = g_step(nets, opts["g"], cfg, lam, rl, Batch(x, adj), weights)
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
