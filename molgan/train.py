"""The MolGAN training loop: WGAN-GP discriminator steps, generator steps mixing WGAN and RL, and
reward-net regression onto RDKit rewards (paper Algorithm 1; no replay buffer, no target nets).

Schedule: a discriminator step every step; every ``n_critic``-th step also a generator step and,
when λ < 1, a reward-net step. The generator is WGAN-only for the first ``rl_start`` of training
(the paper's warm-up) while the reward net already learns. Deviation from the official code:
there λ is forced to 1 only in epoch 0 and the schedule is 4 D steps : 1 G step. The updates
themselves are in ``molgan.steps``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import random
import sys
import time
from collections.abc import Collection
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from molgan import batches, checkpoint, conditioning, metrics, monitor, rewards, rundir
from molgan.config import Config
from molgan.data import (
    Dataset,
    check_fingerprint,
    dataset_of,
    dataset_rewards,
    fingerprint,
    one_hot,
)
from molgan.generator import marginal_logits
from molgan.models import MolGAN, resolve_device
from molgan.monitor import TrainingError  # noqa: F401  (raised here through monitor.finite)
from molgan.population import Population
from molgan.pretrain import pretrain_members
from molgan.runstate import Callback, Interrupted, RunState
from molgan.steps import fake_rewards, make_optimizers, member_weights, step_functions, step_nets

__all__ = ["Callback", "Interrupted", "TrainingError", "evaluate_model", "seed_everything", "train"]
SMALL_DATA = 1000  # training molecules below which a notice is printed
MIN_EVAL_EVERY = 100  # default evaluations (each samples eval_samples) come no more often


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (CUDA included): the one place global RNGs are seeded."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def evaluate_model(
    model: MolGAN, cfg: Config, train: set[str], step: int, fcd_reference=None, member: int = 0
) -> dict[str, float]:
    """Sample ``eval_samples`` molecules (fixed seed: the member's seed + 1) and score them with
    ``molgan.metrics`` (collapse measures against ``train``; FCD against ``fcd_reference``)."""
    smiles = model.sample(cfg.eval_samples, seed=cfg.member(member).seed + 1)
    result = metrics.evaluate(smiles, train, train_is_canonical=True, fcd_reference=fcd_reference)
    return {f"score/{k}": v for k, v in result.items() if k != "n"}


def train(
    cfg: Config,
    *,
    explicit: Collection[str] | None = None,
    callback: Callback | None = None,
) -> MolGAN | Population:
    """Train MolGAN; writes ``<out_dir>/<name>/{config.json, log.jsonl, ckpt.pt}``.

    Args:
        cfg: all settings. With ``cfg.resume`` the run directory's checkpoint is continued
            exactly (same data order and RNG stream) with the run's own settings; only the
            ``checkpoint.RUN_CONTROL`` settings in ``explicit`` may differ.
        explicit: the settings given explicitly (the command line's flags); ``None`` = those
            that differ from ``cfg.preset``'s values.
        callback: called after each evaluation once per running member as
            ``(step, metrics, member=k)``; a true return value (a reason string, or ``True``)
            stops that member (a single run: once its checkpoint is written, and the run
            stops; a population: before the checkpoint, and the member is frozen).

    Returns:
        The trained model (in eval mode): a ``MolGAN``, or with ``members`` > 1 the
        ``Population`` (``.member(k)`` is member k as a ``MolGAN``).

    Raises:
        ValueError: bad data or settings, or a run directory that is not empty (without
            resume). TrainingError: a loss became NaN/inf. Interrupted: SIGINT/SIGTERM, after a
            checkpoint of the current step was written.
    """
    run_dir = Path(cfg.out_dir) / cfg.run_name
    ckpt_path = run_dir / rundir.CKPT
    if cfg.resume and not ckpt_path.is_file():
        raise ValueError(f"nothing to resume: {ckpt_path} does not exist")
    if not cfg.resume:  # a bad value fails now, before the folder or the data are looked at
        rewards.parse_reward(cfg.reward)
        if cfg.best_metric:
            metrics.check_metric(cfg.best_metric)
        rundir.check_new(run_dir)
    with rundir.hold(run_dir):  # one process per run folder, for the run's life
        blob, changes = None, []
        if cfg.resume:
            blob = checkpoint.read(ckpt_path)
            cfg, changes = checkpoint.resume_config(blob, cfg, ckpt_path, explicit)
        else:
            rundir.check_new(run_dir)  # again, now that no other process can start in it
        rewards.parse_reward(cfg.reward)
        if cfg.best_metric:
            metrics.check_metric(cfg.best_metric)
        device = resolve_device(cfg.device)
        threads = torch.get_num_threads()
        torch.set_num_threads(cfg.threads or os.cpu_count() or 1)
        try:
            return _train(cfg, device, run_dir, blob, changes, callback)
        finally:
            torch.set_num_threads(threads)


def _train(
    cfg: Config, device, run_dir: Path, blob, changes: list[str], callback
) -> MolGAN | Population:
    K = cfg.members
    seed_everything(cfg.seed)
    if blob is not None and "data" in blob:  # the data it started with, or a one-line refusal
        check_fingerprint(blob["data"], cfg, str(run_dir / rundir.CKPT))
    data = dataset_of(cfg, blob.get("vocab", {}).get("atoms") if blob else None)  # the run's own
    data_id = blob["data"] if blob is not None and "data" in blob else fingerprint(cfg)
    train_idx, types = data.split["train"], data.atom_types
    schedule = _schedule(cfg, len(train_idx), blob)
    total, steps_per_epoch, _, rl_from = schedule
    lams = cfg.member_settings.get("lam", (cfg.lam,) * K)
    use_rl = min(lams) < 1.0
    train_set = set(data.smiles_of("train"))
    r_all = dataset_rewards(data, cfg.reward).to(device) if use_rl else None  # (M,)
    population, weights = _population(cfg, data, r_all, blob, run_dir / rundir.CKPT, device)
    population = population.to(device)
    graphs = cfg.cuda_graphs and device.type == "cuda" and not cfg.compile  # compile: eager
    opts = make_optimizers(population, cfg, capturable=graphs)
    fcd_reference = data.smiles_of("val") if cfg.eval_fcd else None

    def evaluate(k: int, model: MolGAN) -> dict:
        return evaluate_model(model, cfg, train_set, 0, fcd_reference, k)

    run = RunState(cfg, run_dir, population, opts, blob, schedule, evaluate, callback,
                   {"rl_from": rl_from, "data": data_id})  # fmt: skip
    if blob is not None:
        _announce_resume(run, changes)
    else:
        rundir.write_config(run_dir, dataclasses.asdict(cfg))
    _announce(cfg, run, device, lams, use_rl)
    member_w = member_weights(cfg, K, device)
    lam_rl, lam_warm = member_w["lam"], torch.ones_like(member_w["lam"])  # after / in warm-up
    nets = step_nets(population, cfg.compile)
    decoder = rewards.Decoder.for_population(K * cfg.batch_size) if use_rl else None
    run_d, run_g, run_v = step_functions(population, nets, opts, cfg, member_w, graphs)
    atoms_all, bonds_all = data.atoms.to(device), data.bonds.to(device)
    order, order_epoch, pending = None, -1, None  # pending: the last G step's V step

    def settle(p: _Pending) -> dict:
        """The V step of a G step: RDKit rewards of its molecules, then V's update."""
        atoms, bonds = p.on_host()
        r_fake = fake_rewards(atoms, bonds, cfg, train_set, decoder, types).to(device)
        return run_v(p.real.x, p.real.adj, p.r_real, p.fake[0], p.fake[1], r_fake)

    seeds = [cfg.member(k).seed for k in range(K)]  # each member's data order
    population.train()
    with run, decoder or contextlib.nullcontext():
        if blob is not None:
            run.mark_resume(changes)
        for step in range(run.start, total):
            epoch, pos = divmod(step, steps_per_epoch)
            if epoch != order_epoch:  # data order depends only on (seed, epoch): resumable
                order = torch.stack(
                    [batches.epoch_order(train_idx, weights, s, epoch) for s in seeds]
                ).to(device)  # (K, M): one copy per epoch, not per step
                order_epoch = epoch
            idx = order[:, pos * cfg.batch_size : (pos + 1) * cfg.batch_size]  # (K, B)
            real = one_hot(atoms_all[idx], bonds_all[idx], len(types))  # (K, B, N, T), (..., R)
            run.latest |= run_d(real.x, real.adj)
            if pending is not None:  # the last G step's V step, its RDKit work beside this D step
                run.latest |= settle(pending)
                pending = None
            if step % cfg.n_critic == 0:
                rl_now = use_rl and step >= rl_from
                stats, fake = run_g[rl_now](real.x, real.adj, lam_rl if rl_now else lam_warm)
                run.latest |= stats  # (the G step includes its EMA update)
                if use_rl:  # V learns from G's molecules: at the next step, or before any report
                    pending = _Pending.start(real, r_all[idx][..., None], fake)
            run.freezer.restore()  # stopped members stay where they stopped
            now = time.monotonic()
            if pending is not None and run.needs_host(step + 1, now):
                run.latest |= settle(pending)
                pending = None
                run.freezer.restore()
            if run.after_step(step + 1, now):
                break
    print(f"done: {run_dir}", file=sys.stderr)
    if K == 1:
        return population.member(0).eval()
    return population.eval()


def _schedule(cfg: Config, train_size: int, blob) -> tuple[int, int, int, int]:
    """``(total steps, steps per epoch, steps between evaluations, RL's first step)``."""
    if cfg.batch_size > train_size:
        raise ValueError(f"batch_size {cfg.batch_size} exceeds the {train_size} training molecules")
    if train_size < SMALL_DATA:
        print(
            f"note: only {train_size} training molecules; MolGAN needs thousands to learn "
            "a distribution (QM9 has 104,130)",
            file=sys.stderr,
        )
    steps_per_epoch = max(train_size // cfg.batch_size, 1)
    total = cfg.max_steps or max(int(cfg.epochs * steps_per_epoch), 1)
    # The step RL starts at is fixed when a run starts: extending a resumed run keeps it.
    rl_from = int(blob.get("rl_from", cfg.rl_start * total)) if blob else int(cfg.rl_start * total)
    eval_every = cfg.eval_every or steps_per_epoch
    if not cfg.eval_every and steps_per_epoch < MIN_EVAL_EVERY:  # tiny data: not every step
        eval_every = MIN_EVAL_EVERY
        print(
            f"note: an epoch is {steps_per_epoch} step(s); evaluating every {eval_every} steps "
            "instead of every epoch (--eval-every to choose)",
            file=sys.stderr,
        )
    return total, steps_per_epoch, eval_every, rl_from


def _population(cfg: Config, data: Dataset, r_all, blob, ckpt_path: Path, device=None):
    """The run's members (member k starts with the weights of a single run of its seed, or
    its checkpoint's) and the sampling weights of the training molecules (reward tilt, class
    balance; ``None`` = uniform)."""
    train_idx = data.split["train"]
    models = []
    for k in range(cfg.members):
        if k or cfg.member(k).seed != cfg.seed:
            torch.manual_seed(cfg.member(k).seed)
        models.append(MolGAN.from_config(cfg, atom_types=data.atom_types))
    if cfg.marginal_init and blob is None:  # G starts at the data's marginals
        sizes = len(data.atom_types), len(models[0].bond_types)
        prior = marginal_logits(data.atoms[train_idx], data.bonds[train_idx], *sizes)
        for g in (net for m in models for net in (m.generator, m.generator_ema) if net is not None):
            g.start_at(*prior)
    tilt = balance = None
    if cfg.reward_tilt:
        r_train = r_all.cpu() if r_all is not None else dataset_rewards(data, cfg.reward)
        tilt = batches.tilt_weights(r_train[train_idx], cfg.reward_tilt)
    if models[0].class_prior is not None:  # the class frequencies a conditional model samples
        models[0].class_prior.fit(data.atoms[train_idx], tilt)  # tilted ones, if tilted
        if cfg.condition_balance:
            T, power = len(models[0].atom_types), cfg.condition_balance
            balance = conditioning.balance_weights(data.atoms[train_idx], T, power)
    if blob is not None:
        for k, model in enumerate(models):
            checkpoint.load_weights(model, checkpoint.member_blob(blob, k, ckpt_path))
    population = Population(models)
    if cfg.pretrain and blob is None:  # G starts as a VAE's decoder of the training graphs
        seeds = [cfg.member(k).seed for k in range(cfg.members)]
        print(f"pretraining G as a decoder: {cfg.pretrain} steps", file=sys.stderr)
        pretrain_members(
            population, data.atoms[train_idx], data.bonds[train_idx], steps=cfg.pretrain,
            beta=cfg.pretrain_beta, seeds=seeds, device=device, verbose=cfg.progress,
        )  # fmt: skip
    return population, batches.combine(tilt, balance)


def _announce_resume(run: RunState, changes: list[str]) -> None:
    """Refuse a resume with nothing left to train; drop log rows after the checkpoint."""
    asked = [c for c in changes if c.startswith(("max_steps ", "epochs "))]
    if asked and run.start >= run.total:
        raise ValueError(
            f"{run.ckpt} is at step {run.start}; {' and '.join(asked)} gives {run.total} "
            f"steps, nothing to train (ask for more than {run.start})"
        )
    dropped = rundir.truncate_log(run.run_dir / rundir.LOG, run.start)
    note = f"; {dropped} log rows after it dropped" if dropped else ""
    print(f"resuming {run.run_dir} at step {run.start}/{run.total}{note}", file=sys.stderr)
    for change in changes:
        print(f"  changed for this resume: {change}", file=sys.stderr)


def _announce(cfg: Config, run: RunState, device, lams, use_rl: bool) -> None:
    K = cfg.members
    rl_text = f"from step {run.rl_from}, λ={monitor.values_text(lams)}, reward {cfg.reward}"
    seeds = [cfg.member(k).seed for k in range(K)]
    named = f"{seeds[0]}..{seeds[-1]}" if seeds == list(range(cfg.seed, cfg.seed + K)) else seeds
    who = f"{K} members (seeds {named}), " if K > 1 else ""
    print(
        f"run {run.run_dir}: {who}{run.total} steps ({run.steps_per_epoch}/epoch) on {device}, "
        f"{torch.get_num_threads()} thread(s); RL {rl_text if use_rl else 'off'}",
        file=sys.stderr,
    )


class _Pending(NamedTuple):
    """A G step's output waiting for its V step. The V step may come one D step later with the
    same result (D steps neither read nor write V, nor draw its randomness), which on CUDA lets
    the host decode and score the molecules while the GPU runs that D step: the graphs are
    copied to pinned host memory right after the G step, and only that copy is waited for."""

    real: object  # the real batch of the G step, x (K, B, N, T), adj (K, B, N, N, R)
    r_real: torch.Tensor  # (K, B, 1)
    fake: tuple  # g_step's (x, adj, atoms, bonds)
    host: tuple | None  # pinned copies of atoms (K, B, N), bonds (K, B, N, N), and their event

    @classmethod
    def start(cls, real, r_real: torch.Tensor, fake: tuple) -> _Pending:
        atoms, bonds = fake[2], fake[3]
        if atoms.device.type != "cuda":
            return cls(real, r_real, fake, None)
        copies = []
        for t in (atoms, bonds):
            copy = torch.empty(t.shape, dtype=t.dtype, pin_memory=True)
            copies.append(copy.copy_(t, non_blocking=True))
        event = torch.cuda.Event()
        event.record()
        return cls(real, r_real, fake, (*copies, event))

    def on_host(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self.host is None:
            return self.fake[2], self.fake[3]
        self.host[2].synchronize()
        return self.host[0], self.host[1]
