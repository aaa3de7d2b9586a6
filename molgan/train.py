"""The MolGAN training loop: WGAN-GP discriminator steps, generator steps mixing WGAN and RL, and
reward-net regression onto RDKit rewards (paper Algorithm 1; no replay buffer, no target nets).

Schedule: a discriminator step every step; every ``n_critic``-th step also a generator step and,
when λ < 1, a reward-net step. The generator is WGAN-only for the first ``rl_start`` of training
(the paper's warm-up) while the reward net already learns. Deviation from the official code:
there λ is forced to 1 only in epoch 0 and the schedule is 4 D steps : 1 G step. The updates
themselves are in ``molgan.steps``.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import os
import random
import signal
import sys
import threading
import time
from collections.abc import Callable, Collection
from pathlib import Path

import numpy as np
import torch

from molgan import batches, checkpoint, conditioning, metrics, rewards, rundir
from molgan.config import Config
from molgan.data import dataset_rewards, load_dataset, one_hot, resolve_path
from molgan.models import MolGAN, resolve_device
from molgan.steps import (
    d_step,
    decay_lrs,
    fake_rewards,
    g_step,
    make_optimizers,
    step_nets,
    v_step,
)

# After each evaluation: callback(step, metrics) -> a reason to stop (str or True), or None.
Callback = Callable[[int, dict], "str | bool | None"]
SMALL_DATA = 1000  # training molecules below which a notice is printed


class TrainingError(RuntimeError):
    """Training stopped on a non-finite loss; the last good checkpoint is kept."""


class Interrupted(RuntimeError):
    """SIGINT/SIGTERM during training: a checkpoint of the current step was written."""

    def __init__(self, message: str, step: int):
        super().__init__(message)
        self.step = step


class _Signals:
    """Turns the first SIGINT/SIGTERM into a flag the loop checks after each step (a second
    one acts at once, as usual). Only in the main thread, where Python delivers signals."""

    def __init__(self) -> None:
        self.received: str | None = None
        self._old: dict = {}

    def __enter__(self) -> _Signals:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                if signal.getsignal(sig) is signal.SIG_IGN:
                    continue  # e.g. SIGINT of a background job: it stays ignored
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        self.received = signal.Signals(signum).name
        for sig, old in self._old.items():
            signal.signal(sig, old)

    def __exit__(self, *exc) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (CUDA included): the one place global RNGs are seeded."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def evaluate_model(
    model: MolGAN, cfg: Config, train: set[str], step: int, fcd_reference=None
) -> dict[str, float]:
    """Sample ``eval_samples`` molecules (fixed seed) and score them with ``molgan.metrics``
    (collapse measures against ``train``; FCD against ``fcd_reference`` if given)."""
    smiles = model.sample(cfg.eval_samples, seed=cfg.seed + 1)
    result = metrics.evaluate(smiles, train, train_is_canonical=True, fcd_reference=fcd_reference)
    return {f"score/{k}": v for k, v in result.items() if k != "n"}


def train(
    cfg: Config,
    *,
    explicit: Collection[str] | None = None,
    callback: Callback | None = None,
) -> MolGAN:
    """Train MolGAN; writes ``<out_dir>/<name>/{config.json, log.jsonl, ckpt.pt}``.

    Args:
        cfg: all settings. With ``cfg.resume`` the run directory's checkpoint is continued
            exactly (same data order and RNG stream) with the run's own settings; only the
            ``checkpoint.RUN_CONTROL`` settings in ``explicit`` may differ.
        explicit: the settings given explicitly (the command line's flags); ``None`` = those
            that differ from ``cfg.preset``'s values.
        callback: called after each evaluation, once its checkpoint is written, with
            ``(step, metrics)``; a true return value (a reason string, or ``True``) stops the run.

    Returns:
        The trained model (in eval mode).

    Raises:
        ValueError: bad data or settings, or a run directory that is not empty (without
            resume). TrainingError: a loss became NaN/inf. Interrupted: SIGINT/SIGTERM, after a
            checkpoint of the current step was written.
    """
    run_dir = Path(cfg.out_dir) / cfg.run_name
    ckpt_path = run_dir / rundir.CKPT
    blob, changes = None, []
    if cfg.resume:
        if not ckpt_path.is_file():
            raise ValueError(f"nothing to resume: {ckpt_path} does not exist")
        blob = checkpoint.read(ckpt_path)
        cfg, changes = checkpoint.resume_config(blob, cfg, ckpt_path, explicit)
    else:
        rundir.check_new(run_dir)
    rewards.parse_reward(cfg.reward)  # a typo fails now, not after the data has loaded
    if cfg.best_metric:
        metrics.check_metric(cfg.best_metric)
    device = resolve_device(cfg.device)
    threads = torch.get_num_threads()
    torch.set_num_threads(cfg.threads or os.cpu_count() or 1)
    try:
        return _train(cfg, device, run_dir, blob, changes, callback)
    finally:
        torch.set_num_threads(threads)


def _train(cfg: Config, device, run_dir: Path, blob, changes: list[str], callback) -> MolGAN:
    ckpt_path = run_dir / rundir.CKPT
    seed_everything(cfg.seed)
    data = load_dataset(resolve_path(cfg.data), cfg.max_atoms, cfg.split_seed)
    train_idx = data.split["train"]
    if cfg.batch_size > len(train_idx):
        raise ValueError(
            f"batch_size {cfg.batch_size} exceeds the {len(train_idx)} training molecules"
        )
    if len(train_idx) < SMALL_DATA:
        print(
            f"note: only {len(train_idx)} training molecules; MolGAN needs thousands to learn "
            "a distribution (QM9 has 104,130)",
            file=sys.stderr,
        )
    steps_per_epoch = max(len(train_idx) // cfg.batch_size, 1)
    total = cfg.max_steps or max(int(cfg.epochs * steps_per_epoch), 1)
    eval_every = cfg.eval_every or steps_per_epoch
    # The step RL starts at is fixed when a run starts: extending a resumed run keeps it.
    rl_from = int(blob.get("rl_from", cfg.rl_start * total)) if blob else int(cfg.rl_start * total)
    use_rl = cfg.lam < 1.0
    train_set = set(data.smiles_of("train"))
    r_all = dataset_rewards(data, cfg.reward).to(device) if use_rl else None  # (M,)
    memory = None  # G's recent molecules, for the rarity factor of the RL reward
    if use_rl and cfg.rarity_window:
        memory = rewards.RarityMemory(cfg.rarity_window, blob.get("rarity", []) if blob else [])
    atoms_all, bonds_all = data.atoms.to(device), data.bonds.to(device)

    model = MolGAN.from_config(cfg).to(device)
    tilt = balance = None  # per training molecule: reward-tilted / class-balanced batches
    if cfg.reward_tilt:
        r_train = (r_all.cpu() if use_rl else dataset_rewards(data, cfg.reward))[train_idx]
        tilt = batches.tilt_weights(r_train, cfg.reward_tilt)
    if model.class_prior is not None:  # the class frequencies a conditional model samples
        model.class_prior.fit(data.atoms[train_idx], tilt)  # tilted ones, if tilted
        if cfg.condition_balance:
            T, power = len(model.atom_types), cfg.condition_balance
            formula = cfg.condition_formula
            balance = conditioning.balance_weights(data.atoms[train_idx], T, power, formula)
    weights = batches.combine(tilt, balance)
    opts = make_optimizers(model, cfg)
    start, last_metrics, latest = 0, {}, {}
    if blob is not None:
        start, last_metrics = checkpoint.restore(blob, model, opts, device)
        last_metrics = {k: v for k, v in last_metrics.items() if k.startswith("score/")}
        latest = dict(blob.get("stats", {}))  # the loss values the next log rows carry
        dropped = rundir.truncate_log(run_dir / rundir.LOG, start)
        note = f"; {dropped} log rows after it dropped" if dropped else ""
        print(f"resuming {run_dir} at step {start}/{total}{note}", file=sys.stderr)
        for change in changes:
            print(f"  changed for this resume: {change}", file=sys.stderr)
    else:
        rundir.write_config(run_dir, dataclasses.asdict(cfg))
    saved = {"step": start if blob else None, "time": time.monotonic()}
    best = dict(blob.get("best", {})) if blob else {}  # {"metric", "value", "step"} of best.pt
    fcd_reference = data.smiles_of("val") if cfg.eval_fcd else None

    def save(step: int, path: Path = ckpt_path) -> None:
        extra = {
            "rng": checkpoint.rng_state(device),
            "stats": {k: float(v) for k, v in latest.items()},
            "rl_from": rl_from,
            "best": dict(best),
        }
        if memory is not None:
            extra["rarity"] = memory.state()
        checkpoint.save(path, model, opts, step, last_metrics, extra=extra)
        if path == ckpt_path:
            saved["step"], saved["time"] = step, time.monotonic()

    def keep_best(step: int) -> None:
        """best.pt = the checkpoint of the best evaluation by ``best_metric`` (written before
        ckpt.pt, so a kill between the two redoes the same comparison on resume)."""
        if not cfg.best_metric:
            return
        sign = -1.0 if cfg.best_metric.startswith("-") else 1.0
        value = sign * metrics.metric_value(cfg.best_metric.lstrip("-"), last_metrics)
        if math.isfinite(value) and (not best or value > best["value"]):
            best.update(metric=cfg.best_metric, value=value, step=step)
            save(step, run_dir / "best.pt")

    bar = None
    if cfg.progress and sys.stderr.isatty():
        from tqdm.auto import tqdm

        bar = tqdm(
            total=total, initial=start, desc=cfg.run_name, dynamic_ncols=True, file=sys.stderr
        )
    emit = bar.write if bar is not None else (lambda s: print(s, file=sys.stderr, flush=True))
    print(
        f"run {run_dir}: {total} steps ({steps_per_epoch}/epoch) on {device}, "
        f"{torch.get_num_threads()} thread(s); "
        f"RL {'off' if not use_rl else f'from step {rl_from}, λ={cfg.lam}, reward {cfg.reward}'}",
        file=sys.stderr,
    )
    t0, t_last, perm, perm_epoch = time.monotonic(), time.monotonic(), None, -1
    last_done = start
    nets = step_nets(model, cfg.compile)
    step_cfg = copy.copy(cfg)  # cfg with this step's temperature (tau_end anneals it)
    model.train()
    with _Signals() as signals, open(run_dir / rundir.LOG, "a") as log:
        for step in range(start, total):
            epoch, pos = divmod(step, steps_per_epoch)
            if epoch != perm_epoch:  # data order depends only on (seed, epoch): resumable
                perm = batches.epoch_order(train_idx, weights, cfg.seed, epoch)
                perm_epoch = epoch
            idx = perm[pos * cfg.batch_size : (pos + 1) * cfg.batch_size].to(device)  # (B,)
            real = one_hot(atoms_all[idx], bonds_all[idx])
            if cfg.tau_end:  # linear temperature annealing of what D sees
                step_cfg.tau = cfg.tau + (cfg.tau_end - cfg.tau) * step / max(total - 1, 1)
            if cfg.lr_decay:  # linear learning-rate decay of all three nets
                decay_lrs(opts, cfg, step / max(total - 1, 1))
            latest |= d_step(nets, opts["d"], real, step_cfg)
            if step % cfg.n_critic == 0:
                lam = cfg.lam if use_rl and step >= rl_from else 1.0
                g_stats, fake = g_step(nets, opts["g"], step_cfg, lam, use_rl, real)
                model.update_ema(cfg.ema)
                latest |= g_stats
                if use_rl:
                    r_fake = fake_rewards(fake[2], fake[3], cfg, train_set, memory).to(device)
                    latest |= v_step(nets, opts["v"], real, r_all[idx][:, None], fake, r_fake)
            done = step + 1
            if bar is not None:
                bar.update(1)
            now = time.monotonic()
            reason = ""
            if done % cfg.log_every == 0 or done % eval_every == 0 or done == total:
                values = _finite(latest, done, saved["step"], ckpt_path)
                values |= {
                    "step": done,
                    "epoch": done / steps_per_epoch,
                    "time/it_per_s": (done - last_done) / max(now - t_last, 1e-9),
                    "time/elapsed_s": now - t0,
                    "time/eta_s": (now - t0) / max(done - start, 1) * (total - done),
                }
                t_last, last_done = now, done
                timed_out = cfg.time_limit and (now - t0) / 60 >= cfg.time_limit
                evaluated = done % eval_every == 0 or done == total or timed_out
                if evaluated:
                    last_metrics = evaluate_model(model, cfg, train_set, done, fcd_reference)
                    model.train()
                    values |= last_metrics
                rundir.write_row(log, values)  # before the checkpoint: a kill between loses nothing
                if evaluated:
                    keep_best(done)
                    save(done)
                    if callback is not None:
                        asked = callback(done, dict(last_metrics))
                        if asked:
                            reason = asked if isinstance(asked, str) else "stopped by callback"
                line = _format(values)
                if bar is not None:
                    bar.set_postfix_str(line.split(" | ", 1)[1][:80])
                if done % cfg.log_every == 0 or "score/valid" in values:
                    emit(line)
                reason = reason or _stop_reason(cfg, values, last_metrics, timed_out, done, rl_from)
                if reason:
                    rundir.write_row(log, {"step": done, "event": "stop", "reason": reason})
                    emit(reason)
                    break
            elif cfg.ckpt_minutes and now - saved["time"] >= 60 * cfg.ckpt_minutes:
                _finite(latest, done, saved["step"], ckpt_path)
                save(done)
            if signals.received:
                _finite(latest, done, saved["step"], ckpt_path)
                if saved["step"] != done:
                    save(done)
                if bar is not None:
                    bar.close()
                raise Interrupted(
                    f"{signals.received} at step {done}/{total}: checkpoint written to "
                    f"{ckpt_path}; continue with --name {cfg.run_name} --resume",
                    done,
                )
    if bar is not None:
        bar.close()
    print(f"done: {run_dir}", file=sys.stderr)
    return model.eval()


def _finite(stats: dict, done: int, saved_step: int | None, ckpt_path: Path) -> dict[str, float]:
    """``stats`` as floats; raises ``TrainingError`` naming any NaN/inf entry."""
    values = {k: float(v) for k, v in stats.items()}
    bad = [k for k, v in values.items() if not math.isfinite(v)]
    if bad:
        kept = (
            f"last good checkpoint (step {saved_step}) kept at {ckpt_path}"
            if saved_step is not None
            else "no checkpoint was written"
        )
        raise TrainingError(f"non-finite {', '.join(bad)} at step {done}; {kept}")
    return values


def _stop_reason(
    cfg: Config, values: dict, metrics: dict, timed_out, done: int, rl_from: int
) -> str:
    """Why training stops after this log step ("" = it goes on). The uniqueness stop watches
    for the collapse RL causes, so it acts only after the warm-up (``rl_from``): a WGAN-only
    generator starts below 2% unique and climbs (it stopped runs at epoch 1 otherwise)."""
    unique = metrics.get("score/unique")
    watching = cfg.early_stop_unique and done > rl_from and "score/valid" in values
    if watching and unique is not None:
        if unique < cfg.early_stop_unique:
            return f"early stop: uniqueness {unique:.3f} < {cfg.early_stop_unique}"
    if timed_out:
        return f"time limit of {cfg.time_limit} min reached at step {done}"
    return ""


def _format(values: dict) -> str:
    parts = [f"step {values['step']}"]
    names = {
        "loss/d": "d",
        "loss/g": "g",
        "loss/v": "v",
        "loss/gp": "gp",
        "score/valid": "valid",
        "score/unique": "unique",
        "score/novel": "novel",
        "score/qed": "qed",
    }
    for key, short in names.items():
        value = values.get(key)
        if isinstance(value, float) and math.isfinite(value):
            parts.append(f"{short} {value:.3f}")
    parts.append(f"{values['time/it_per_s']:.0f} it/s | eta {values['time/eta_s'] / 60:.0f} min")
    return " | ".join(parts)
