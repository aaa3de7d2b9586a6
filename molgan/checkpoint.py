"""Versioned checkpoints: a plain dict of tensors and primitives (loads with weights_only=True).

Keys: ``format``, ``config`` (dict), ``vocab`` (atom and bond symbols), ``generator``,
``discriminator``, ``reward_net`` (state dicts), ``optimizers``, ``step``, ``rng`` (torch RNG
states), ``metrics`` (last evaluation) and ``versions``. Writes are atomic (temp file + rename).
"""

from __future__ import annotations

import dataclasses
import os
import pickle
import zipfile
from pathlib import Path

import torch

from molgan.config import Config
from molgan.models import MolGAN

FORMAT = 1
PRETRAINED = Path(__file__).resolve().parent / "pretrained" / "qm9.pt"
# Settings a resumed run takes from the command line; all others come from its checkpoint.
RUN_CONTROL = (
    "max_steps",
    "epochs",
    "time_limit",
    "progress",
    "log_every",
    "eval_every",
    "eval_samples",
    "early_stop_unique",
    "device",
    "compile",
    "resume",
    "out_dir",
    "name",
)


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"torch": str(torch.__version__)}
    for name in ("rdkit", "molgan"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "unknown"
    return out


def save(
    path: str | Path,
    model: MolGAN,
    optimizers: dict | None = None,
    step: int = 0,
    metrics: dict | None = None,
    extra: dict | None = None,
) -> Path:
    """Atomically write a checkpoint; an interrupted save never corrupts an existing file.

    Args:
        path: target file.
        model: the ``MolGAN`` to save.
        optimizers: ``{"g": opt_g, "d": opt_d, "v": opt_v}`` for resuming (optional).
        step: training steps done.
        metrics: last evaluation, stored for reference.
        extra: further plain data (e.g. RNG states for resuming).
    """
    path = Path(path)
    blob = {
        "format": FORMAT,
        "config": dict(model.config),
        "vocab": {"atoms": list(model.atom_types), "bonds": list(model.bond_types)},
        "generator": model.generator.state_dict(),
        "discriminator": model.discriminator.state_dict(),
        "reward_net": model.reward_net.state_dict(),
        "optimizers": {k: opt.state_dict() for k, opt in (optimizers or {}).items()},
        "step": int(step),
        "metrics": dict(metrics or {}),
        "versions": _versions(),
        **(extra or {}),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(blob, tmp)
    os.replace(tmp, path)
    return path


def export(path: str | Path, out: str | Path) -> Path:
    """Copy a checkpoint without optimiser and RNG state (for sampling only, ~1/3 the size)."""
    blob = read(path)
    blob = {k: v for k, v in blob.items() if k not in ("optimizers", "rng")}
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    torch.save(blob, tmp)
    os.replace(tmp, out)
    return out


def read(path: str | Path) -> dict:
    """Read and validate a checkpoint dict; every failure is a one-line ``ValueError``."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"checkpoint not found: {path}")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, pickle.UnpicklingError, zipfile.BadZipFile, EOFError, OSError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(f"{path} is not a readable molgan checkpoint ({first[:120]})") from None
    if not isinstance(blob, dict) or "generator" not in blob or "format" not in blob:
        raise ValueError(f"{path} is not a molgan checkpoint (no generator/format entry)")
    if blob["format"] > FORMAT:
        raise ValueError(
            f"{path} has checkpoint format {blob['format']}, newer than this molgan "
            f"reads ({FORMAT}); upgrade molgan"
        )
    return blob


def config_from(blob: dict) -> Config:
    """The ``Config`` of a checkpoint; keys missing in older files take today's defaults."""
    known = {f.name for f in dataclasses.fields(Config)}
    return Config(**{k: v for k, v in blob.get("config", {}).items() if k in known})


def resume_config(blob: dict, cfg: Config, path: str | Path = "checkpoint") -> Config:
    """The settings to resume ``blob`` with: its own, except the ``RUN_CONTROL`` fields of ``cfg``.

    Raises:
        ValueError: ``blob`` is a sampling-only export (no optimiser or RNG state).
    """
    if "rng" not in blob or not blob.get("optimizers"):
        raise ValueError(
            f"{path} holds no optimiser/RNG state (sampling-only export); it cannot be resumed"
        )
    control = {k: getattr(cfg, k) for k in RUN_CONTROL}
    return dataclasses.replace(config_from(blob), **control)


def rng_state(device: torch.device) -> dict:
    """The torch RNG states a resumed run needs to continue the same random stream."""
    cuda = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
    return {"torch": torch.get_rng_state(), "cuda": cuda}


def restore(blob: dict, model: MolGAN, optimizers: dict, device: torch.device) -> tuple[int, dict]:
    """Load weights, optimiser and RNG states of a training checkpoint in place.

    Returns:
        ``(step, metrics)`` stored in the checkpoint.
    """
    for net in ("generator", "discriminator", "reward_net"):
        getattr(model, net).load_state_dict(blob[net])
    for k, opt in optimizers.items():
        opt.load_state_dict(blob["optimizers"][k])
    torch.set_rng_state(blob["rng"]["torch"])
    if device.type == "cuda" and blob["rng"].get("cuda") is not None:
        torch.cuda.set_rng_state(blob["rng"]["cuda"], device)
    return blob["step"], blob.get("metrics", {})


def load(path: str | Path | None = None, device: str | torch.device = "cpu") -> MolGAN:
    """Rebuild a trained ``MolGAN`` from a checkpoint (default: the shipped pretrained model).

    Raises:
        ValueError: missing, corrupt, foreign or future-format checkpoint.
    """
    if path is None:
        if not PRETRAINED.is_file():
            raise ValueError("this install ships no pretrained model; pass a checkpoint path")
        path = PRETRAINED
    blob = read(path)
    cfg = config_from(blob)
    vocab = blob.get("vocab", {})
    with torch.random.fork_rng(devices=[]):  # weight init must not move the caller's RNG
        model = MolGAN.from_config(
            cfg, tuple(vocab.get("atoms", ())), tuple(vocab.get("bonds", ()))
        )
    try:
        model.generator.load_state_dict(blob["generator"])
        model.discriminator.load_state_dict(blob["discriminator"])
        model.reward_net.load_state_dict(blob["reward_net"])
    except (RuntimeError, KeyError) as err:
        raise ValueError(
            f"{path}: weights do not match its config ({str(err).splitlines()[0]})"
        ) from None
    return model.to(device).eval()
