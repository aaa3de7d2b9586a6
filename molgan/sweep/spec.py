"""A study file: what a many-run study trains and how each run is scored.

TOML or JSON: fixed ``Config`` overrides, a grid (every combination once; ``[grid.variant]`` is
an axis of named override sets) or a search space with a trial budget, objectives over
evaluation metrics (``valid``, ``unique``, ``fcd``, products such as ``valid*unique``), the
evaluation they are read at, and an optional final evaluation of each run. ``resolve`` turns a
trial's parameters into the run's ``Config``, named by the hash of its settings.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from molgan import metrics
from molgan.config import PRESETS, Config, make_config

METRICS = metrics.METRICS

NOT_HASHED = ("name", "out_dir", "progress", "threads", "device", "compile", "resume", "preset")

NOT_HASHED += ("ckpt_minutes", "cuda_graphs")

VARIANT = "variant"  # a grid axis of named override sets


@dataclass
class StudySpec:
    """A parsed study file (field meanings: ``load_spec``)."""

    name: str
    preset: str = "paper"
    fixed: dict = field(default_factory=dict)
    grid: dict = field(default_factory=dict)
    space: dict = field(default_factory=dict)
    trials: int = 0
    sampler: str = "tpe"
    pruner: str = "none"
    objectives: list = field(default_factory=lambda: [("valid*unique", "maximize")])
    at: str = "last"
    evaluate: dict = field(default_factory=dict)

    @property
    def grid_points(self) -> list[dict]:
        points = [{}]
        for axis, values in self.grid.items():
            names = list(values) if axis == VARIANT else [_param(v) for v in values]
            points = [{**p, axis: v} for p in points for v in names]
        return points if self.grid else []

    @property
    def budget(self) -> int:
        return len(self.grid_points) if self.grid else self.trials

    @property
    def scored_at(self) -> str:
        """Which summary the objectives read: ``final`` (the final evaluation, or the last
        training one) or ``best`` (the training evaluation with the best first objective)."""
        return "final" if self.at == "last" or self.evaluate else "best"


def _param(value):
    """Optuna params are primitives: lists (e.g. gen_dims) travel as JSON text."""
    return json.dumps(value) if isinstance(value, (list, tuple)) else value


def _unparam(value):
    if isinstance(value, str) and value.startswith("["):
        return tuple(json.loads(value))
    return value


def load_spec(source: str | Path | dict) -> StudySpec:
    """Read and check a study file (.toml or .json) or dict; every error is one line.

    Keys: ``name``; ``preset``; ``[fixed]`` Config overrides; ``[grid]`` field -> list of
    values, and ``[grid.variant]`` name -> overrides (one axis of named settings); or
    ``[space]`` field -> ``{low, high, log}`` / ``{choices}`` with ``trials`` (budget),
    ``sampler`` (tpe | random | nsga2) and ``pruner`` (none | median | halving, single objective
    only); ``[[objectives]]`` with ``metric`` (a name or product ``a*b``) and ``direction``;
    ``at`` = last | best evaluation; ``[evaluate]`` ``samples``, ``seed_offset`` (sampling seed
    = offset + run seed), ``fcd`` (bool) for a final evaluation of each run.
    """
    if isinstance(source, dict):
        raw = dict(source)
    else:
        path = Path(source)
        if not path.is_file():
            raise ValueError(f"study file not found: {path}")
        if path.suffix == ".json":
            raw = json.loads(path.read_text())
        elif path.suffix == ".toml":
            try:
                import tomllib
            except ModuleNotFoundError:  # Python 3.10
                import tomli as tomllib
            try:
                raw = tomllib.loads(path.read_text())
            except tomllib.TOMLDecodeError as err:
                raise ValueError(f"{path}: {err}") from None
        else:
            raise ValueError(f"{path}: a study file is .toml or .json")
    raw.setdefault("name", "" if isinstance(source, dict) else Path(source).stem)
    known = {f.name for f in dataclasses.fields(StudySpec)}
    unknown = set(raw) - known
    if unknown:
        raise ValueError(f"unknown study keys {sorted(unknown)}; known: {sorted(known)}")
    raw["objectives"] = [
        (o["metric"], o.get("direction", "maximize")) if isinstance(o, dict) else tuple(o)
        for o in raw.get("objectives", [("valid*unique", "maximize")])
    ]
    spec = StudySpec(**raw)
    _check(spec)
    return spec


def _check(spec: StudySpec) -> None:
    fields = {f.name for f in dataclasses.fields(Config)}
    if not spec.name or "/" in spec.name:
        raise ValueError(f"study name must be a plain name, got {spec.name!r}")
    if spec.preset not in PRESETS:
        raise ValueError(f"unknown preset {spec.preset!r}")
    if bool(spec.grid) == bool(spec.space):
        raise ValueError("a study has either a [grid] or a [space] (with trials)")
    if spec.space and spec.trials < 1:
        raise ValueError("a [space] search needs trials ≥ 1")
    variants = spec.grid.get(VARIANT, {})
    if not isinstance(variants, dict):
        raise ValueError("[grid.variant] maps names to override tables")
    names = set(spec.fixed) | set(spec.space) | {k for k in spec.grid if k != VARIANT}
    names |= {k for overrides in variants.values() for k in overrides}
    bad = names - fields
    if bad:
        raise ValueError(f"unknown setting(s) {sorted(bad)}; see scripts/train_qm9.py --help")
    if names & {"members", "member_settings"}:  # packing trials into populations: not built yet
        raise ValueError("a study trains one run per trial: members cannot be set in a study")
    for metric, direction in spec.objectives:
        if direction not in ("maximize", "minimize"):
            raise ValueError(f"direction must be maximize or minimize, got {direction!r}")
        metrics.check_metric(metric)
        if "fcd" in metric and not spec.evaluate.get("fcd"):
            raise ValueError("an fcd objective needs [evaluate] fcd = true")
    if spec.at not in ("last", "best"):
        raise ValueError(f"at must be last or best, got {spec.at!r}")
    if spec.sampler not in ("tpe", "random", "nsga2") or spec.pruner not in (
        "none",
        "median",
        "halving",
    ):
        raise ValueError("sampler: tpe | random | nsga2; pruner: none | median | halving")
    if spec.pruner != "none" and len(spec.objectives) > 1:
        raise ValueError("Optuna cannot prune multi-objective studies; set pruner = 'none'")
    for point in spec.grid_points or [{}]:  # every grid point must be a valid Config
        resolve(spec, point, Path("."))


def resolve(spec: StudySpec, params: dict, runs: Path) -> Config:
    """The run settings of one trial: preset + fixed + variant + params, named by their hash."""
    overrides = dict(spec.fixed)
    params = dict(params)
    if VARIANT in params:
        overrides |= spec.grid[VARIANT][params.pop(VARIANT)]
    overrides |= {k: _unparam(v) for k, v in params.items()}
    try:
        cfg = make_config(spec.preset, **overrides, progress=False)
    except (TypeError, ValueError) as err:
        raise ValueError(f"study {spec.name}: bad settings {overrides}: {err}") from None
    # Only settings that differ from Config's defaults enter the hash, so that a field added to
    # Config later (with a default that keeps today's behaviour) does not rename every run.
    defaults = dataclasses.asdict(Config())
    key = {
        k: v
        for k, v in dataclasses.asdict(cfg).items()
        if k not in NOT_HASHED and v != defaults.get(k)
    }
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]
    return dataclasses.replace(cfg, out_dir=str(runs), name=digest)


# A study objective is a metric expression, evaluated by the one function metrics has for it.
objective_value = metrics.metric_value
