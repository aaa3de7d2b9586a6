"""Versioned checkpoints: a plain dict of tensors and primitives (loads with weights_only=True).

Keys: ``format``, ``config`` (dict), ``vocab`` (atom and bond symbols), ``generator``,
``discriminator``, ``reward_net`` (state dicts), ``optimizers``, ``step``, ``rng`` (torch RNG
states), ``metrics`` (last evaluation) and ``versions``. Writes are atomic (temp file + rename).
"""

from __future__ import annotations

import dataclasses
import pickle
import zipfile
from pathlib import Path

import torch

from molgan.config import Config
from molgan.generator import unfold_edges
from molgan.models import MolGAN, resolve_device
from molgan.population import Population, member_state
from molgan.presets import make_config
from molgan.rundir import atomic_path

FORMAT = 2  # 2: populations (``members``), optimiser state over stacked weights
NETS = ("generator", "discriminator", "reward_net")
OPTIONAL_PARTS = ("generator_ema", "class_prior")  # saved when the model's config has them
PRETRAINED = Path(__file__).resolve().parent / "pretrained" / "qm9.pt"
SHIPPED = ("qm9", "moses")  # names of the shipped models: molgan/pretrained/<name>.pt
# Settings a resumed run takes from the command line; all others come from its checkpoint.
# Settings an explicit flag may change when a run is resumed; all others (model, data,
# optimisation, RL) are fixed for the run's life and a different value is refused.
RUN_CONTROL = (
    "max_steps",
    "epochs",
    "time_limit",
    "progress",
    "log_every",
    "eval_every",
    "eval_samples",
    "eval_fcd",
    "best_metric",
    "early_stop_unique",
    "ckpt_minutes",
    "device",
    "threads",
    "compile",
    "cuda_graphs",
)


def versions() -> dict[str, str]:
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
    model: MolGAN | Population,
    optimizers: dict | None = None,
    step: int = 0,
    metrics: dict | None = None,
    extra: dict | None = None,
) -> Path:
    """Atomically write a checkpoint (the one writer; an interrupted save never corrupts an
    existing file). One layout for K ≥ 1 members: member 0's networks at the top level (what
    a single model's file holds), every member's under ``members`` when K > 1.

    Args:
        path: target file.
        model: a ``MolGAN`` (one member) or a ``Population`` (K members).
        optimizers: ``{"g": opt_g, "d": opt_d, "v": opt_v}`` for resuming (optional; over a
            population's stacked weights).
        step: training steps done.
        metrics: last evaluation, stored for reference.
        extra: further plain data (e.g. RNG states for resuming).
    """
    parts = population_parts(model) if isinstance(model, Population) else [_parts(model)]
    blob = {
        "format": FORMAT,
        "config": dict(model.config),
        "vocab": {"atoms": list(model.atom_types), "bonds": list(model.bond_types)},
        **parts[0],
        **({"members": parts} if len(parts) > 1 else {}),
        "optimizers": {k: opt.state_dict() for k, opt in (optimizers or {}).items()},
        "step": int(step),
        "metrics": dict(metrics or {}),
        "versions": versions(),
        **(extra or {}),
    }
    return write(blob, path)


def _parts(model: MolGAN) -> dict:
    """The state dicts of a model's networks (and the optional parts its config has)."""
    parts = {net: getattr(model, net).state_dict() for net in NETS}
    for name in OPTIONAL_PARTS:
        if getattr(model, name) is not None:
            parts[name] = getattr(model, name).state_dict()
    return parts


def population_parts(population: Population) -> list[dict]:
    """Each member's networks as single-model state dicts (``_parts`` of ``member(k)``)."""
    stacked = {net: getattr(population, net) for net in (*NETS, "generator_ema")}
    stacked = {net: m.state_dict() for net, m in stacked.items() if m is not None}
    prior = population.class_prior
    out = []
    for k in range(population.members):
        parts = {net: member_state(sd, k) for net, sd in stacked.items()}
        if prior is not None:
            parts["class_prior"] = prior.state_dict()
        out.append(parts)
    return out


def write(blob: dict, path: str | Path) -> Path:
    """Save ``blob`` atomically: a failed write (disk full, size limit) is a one-line
    ``rundir.WriteError``, leaves no temporary file and the previous checkpoint intact."""
    with atomic_path(path) as tmp:
        torch.save(blob, tmp)
    return Path(path)


def members_of(blob: dict) -> int:
    """How many members a checkpoint holds (1 for a single run's)."""
    return len(blob.get("members", ())) or 1


def export(path: str | Path, out: str | Path, member: int | None = None) -> Path:
    """Copy a checkpoint without optimiser and RNG state (for sampling only, ~1/3 the size);
    from a population's checkpoint, member ``member`` (default 0) as a single model."""
    blob = read(path)
    if member is not None or members_of(blob) > 1:
        blob = member_blob(blob, member or 0, path)
    blob = {k: v for k, v in blob.items() if k not in ("optimizers", "rng")}
    return write(blob, out)


def read(path: str | Path) -> dict:
    """Read and validate a checkpoint dict; every failure is a one-line ``ValueError``."""
    path = Path(path)
    if str(path) in SHIPPED and not path.exists():
        path = pretrained(str(path))  # a shipped model by name: molgan.sample(n, "moses")
    if path.is_dir() and (path / "ckpt.pt").is_file():
        path = path / "ckpt.pt"  # a run directory: its latest checkpoint (best.pt beside it)
    elif path.is_dir() and (path / "model.pt").is_file():
        path = path / "model.pt"  # a study trial trained in a population: its member
    if path.is_dir():
        raise ValueError(f"{path} is a directory, not a checkpoint file")
    if not path.is_file():
        raise ValueError(f"checkpoint not found: {path}")
    with open(path, "rb") as handle:
        head = handle.read(4)
    if head and not (head.startswith(b"PK") or head[:1] == b"\x80"):  # e.g. samples.csv
        raise ValueError(f"{path} is not a molgan checkpoint (not a PyTorch file)")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        if head.startswith(b"PK") or head[:1] == b"\x80":
            raise ValueError(
                f"{path}: refused: it holds Python objects, not only tensors (not a molgan "
                "checkpoint; nothing in it was run)"
            ) from None
        raise ValueError(f"{path} is not a molgan checkpoint (not a PyTorch file)") from None
    except EOFError:
        raise ValueError(f"{path} is empty, not a molgan checkpoint") from None
    except (RuntimeError, zipfile.BadZipFile, OSError, ValueError, IndexError, KeyError) as err:
        if head.startswith(b"PK"):
            raise ValueError(f"{path} is truncated or corrupt (unreadable archive)") from None
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise ValueError(f"{path} is not a molgan checkpoint ({first[:100]})") from None
    if not isinstance(blob, dict) or "generator" not in blob or "format" not in blob:
        raise ValueError(f"{path} is not a molgan checkpoint (no generator/format entry)")
    if not isinstance(blob["format"], int) or isinstance(blob["format"], bool):
        raise ValueError(f"{path} is not a molgan checkpoint (format {blob['format']!r})")
    if blob["format"] > FORMAT:
        raise ValueError(
            f"{path} has checkpoint format {blob['format']}, newer than this molgan "
            f"reads ({FORMAT}); upgrade molgan"
        )
    if not isinstance(blob.get("config", {}), dict) or not isinstance(blob["generator"], dict):
        raise ValueError(f"{path} is not a molgan checkpoint (malformed config or weights)")
    return blob


def config_from(blob: dict, path: str | Path = "checkpoint") -> Config:
    """The ``Config`` of a checkpoint; keys missing in older files take today's defaults.

    Raises:
        ValueError: the stored settings are not valid settings.
    """
    return Config.from_dict(blob.get("config", {}), str(path))


def resume_config(
    blob: dict, cfg: Config, path: str | Path = "checkpoint", explicit=None
) -> tuple[Config, list[str]]:
    """The settings to resume ``blob`` with: the run's own, changed only where asked.

    Args:
        blob: the run's checkpoint.
        cfg: the settings asked for now (its ``out_dir`` and run name locate the run).
        path: for messages.
        explicit: the field names given explicitly (e.g. on the command line); ``None`` = the
            fields of ``cfg`` that differ from its preset's values.

    Returns:
        ``(config, changes)``: ``changes`` describes each run-control setting that differs
        from the run's own (e.g. ``"max_steps 40 -> 80"``).

    Raises:
        ValueError: a sampling-only export, or an explicit change of a setting that fixes the
            model, data or optimisation (only ``RUN_CONTROL`` settings may change).
    """
    if "rng" not in blob or not blob.get("optimizers"):
        raise ValueError(
            f"{path} holds no optimiser/RNG state (sampling-only export); it cannot be resumed"
        )
    stored = config_from(blob, path)
    if explicit is None:
        base = make_config(cfg.preset) if cfg.preset else Config()
        explicit = [
            f.name
            for f in dataclasses.fields(Config)
            if getattr(cfg, f.name) != getattr(base, f.name)
        ]
    if "preset" in explicit and cfg.preset != stored.preset:
        raise ValueError(
            f"--resume continues {path} with its own settings (preset {stored.preset!r}); "
            f"refused: --preset {cfg.preset} (start a new run with --name to change it)"
        )
    skip = ("resume", "out_dir", "name", "preset")
    asked = {  # in field order, so that messages are stable
        f.name: getattr(cfg, f.name)
        for f in dataclasses.fields(Config)
        if f.name in explicit and f.name not in skip
    }
    changed = {k: v for k, v in asked.items() if v != getattr(stored, k)}
    fixed = [
        f"{k} {getattr(stored, k)!r} -> {v!r}" for k, v in changed.items() if k not in RUN_CONTROL
    ]
    if fixed:
        raise ValueError(
            f"--resume continues {path} with its own model and optimisation settings; refused: "
            f"{'; '.join(fixed)} (start a new run with --name to change them)"
        )
    resumed = dataclasses.replace(
        stored, **changed, out_dir=cfg.out_dir, name=cfg.run_name, resume=True
    )
    return resumed, [f"{k} {getattr(stored, k)!r} -> {v!r}" for k, v in changed.items()]


def rng_state(device: torch.device) -> dict:
    """The torch RNG states a resumed run needs to continue the same random stream."""
    cuda = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
    return {"torch": torch.get_rng_state(), "cuda": cuda}


def load_weights(model: MolGAN, blob: dict) -> None:
    """Load every network (and the optional parts the model's config has) from ``blob``.

    Raises:
        KeyError / RuntimeError: a part is missing or its tensors do not fit.
    """
    sampler_only = blob.get("sampler_only", False)  # a sampling file: G's sampler alone
    states = {net: blob[net] for net in (("generator",) if sampler_only else NETS)}
    if blob.get("compact", False):  # a compact sampling file (mixture.export): half, folded
        full = {k: v.float() for k, v in blob["generator"].items()}
        states["generator"] = unfold_edges(full, model.generator.N, model.generator.R)
    for net, state in states.items():
        getattr(model, net).load_state_dict(state)
    if model.generator_ema is not None:  # checkpoints from before the EMA: start from G
        model.generator_ema.load_state_dict(blob.get("generator_ema", states["generator"]))
    if model.class_prior is not None:
        model.class_prior.load_state_dict(blob["class_prior"])


def restore(blob: dict, optimizers: dict, device: torch.device) -> tuple[int, dict]:
    """Load the optimiser and RNG states of a training checkpoint in place (the weights:
    ``load_weights`` of each ``member_blob``). A format-1 checkpoint's Adam state, over a
    single model's weights, is laid out as that of a population of one.

    Returns:
        ``(step, metrics)`` stored in the checkpoint.
    """
    for k, opt in optimizers.items():
        state = blob["optimizers"][k]
        if blob["format"] < 2:
            state = _stacked_adam_state(state)
        opt.load_state_dict(state)
    torch.set_rng_state(blob["rng"]["torch"])
    if device.type == "cuda" and blob["rng"].get("cuda") is not None:
        torch.cuda.set_rng_state(blob["rng"]["cuda"], device)
    return blob["step"], blob.get("metrics", {})


def member_blob(blob: dict, member: int, path: str | Path = "checkpoint") -> dict:
    """Member ``member`` of a checkpoint as a single model's checkpoint dict (its own settings:
    seed + member, its per-member values; no optimiser state).

    Raises:
        ValueError: no such member.
    """
    count = members_of(blob)
    if isinstance(member, bool) or not isinstance(member, int) or not 0 <= member < count:
        raise ValueError(
            f"{path} holds {count} member(s); member must be in [0, {count}), got {member!r}"
        )
    try:
        population = Config.from_dict({**blob.get("config", {}), "members": count}, str(path))
        config = dataclasses.asdict(population.member(member))
    except ValueError as err:
        raise ValueError(f"{path} holds invalid settings: {err}") from None
    parts = dict(blob["members"][member]) if "members" in blob else {}
    config = parts.pop("config", None) or config  # a mixture file keeps each member's own
    keep = {k: v for k, v in blob.items() if k not in ("members", "optimizers", "rng")}
    return keep | parts | {"config": config}


def _stacked_adam_state(state: dict) -> dict:
    """Adam state over nn.Linear weights (out, in) and biases (out,) -> over a population of
    one's (1, in, out) and (1, 1, out) (same order; Adam is elementwise, so the values carry)."""

    def stacked(value):
        if not isinstance(value, torch.Tensor) or value.dim() == 0:
            return value
        return value.t().unsqueeze(0).contiguous() if value.dim() == 2 else value.view(1, 1, -1)

    per_param = {
        i: {name: stacked(v) for name, v in entry.items()} for i, entry in state["state"].items()
    }
    return {**state, "state": per_param}


def load(
    path: str | Path | None = None, device: str | torch.device = "cpu", member: int = 0
) -> MolGAN:
    """Member ``member`` (default 0) of a checkpoint as one ``MolGAN`` (default file: the
    shipped model). A single run's checkpoint holds one member; a population's or a mixture
    file's hold several. ``molgan.load`` also gives a mixture file as one ``Mixture``.

    Raises:
        ValueError: missing, corrupt, foreign or future-format checkpoint, or no such member.
    """
    path = path if path is not None else pretrained()
    return model_of(member_blob(read(path), member, path), path, device)


def pretrained(name: str = "qm9") -> Path:
    """A shipped model's file (``SHIPPED``; default the QM9 model). Raises ValueError (one
    line) when the install does not have it."""
    path = PRETRAINED.with_name(f"{name}.pt")
    if name not in SHIPPED or not path.is_file():
        raise ValueError(
            f"this install ships no pretrained model named {name!r} (it has: "
            f"{', '.join(n for n in SHIPPED if PRETRAINED.with_name(f'{n}.pt').is_file())}); "
            "pass a checkpoint path"
        )
    return path


def model_of(blob: dict, path: str | Path, device: str | torch.device = "cpu") -> MolGAN:
    """The ``MolGAN`` of a single model's checkpoint dict (``member_blob``), in eval mode.
    From a sampling file (``sampler_only``) D and the reward network are untrained.

    Raises:
        ValueError: settings or weights that do not fit.
    """
    device = resolve_device(str(device))
    cfg = config_from(blob, path)
    vocab = blob.get("vocab", {})
    try:
        with torch.random.fork_rng(devices=[]):  # weight init must not move the caller's RNG
            model = MolGAN.from_config(
                cfg, tuple(vocab.get("atoms", ())), tuple(vocab.get("bonds", ()))
            )
        load_weights(model, blob)
    except (RuntimeError, KeyError, TypeError, AttributeError) as err:
        raise ValueError(
            f"{path}: weights do not match its config ({str(err).splitlines()[0]})"
        ) from None
    return model.to(device).eval()
