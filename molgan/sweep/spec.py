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
import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path

from molgan import metrics
from molgan.config import MEMBER_SEED, MEMBER_SETTINGS, Config
from molgan.presets import PRESETS, make_config
from molgan.removed import REMOVED, removed_message

METRICS = metrics.METRICS

NOT_HASHED = ("name", "out_dir", "progress", "threads", "device", "compile", "resume", "preset")

NOT_HASHED += ("ckpt_minutes", "cuda_graphs")

VARIANT = "variant"  # a grid axis of named override sets


PRUNERS = ("none", "median", "halving")
PRUNER_KEYS = {  # per pruner: the options a study file may set (``[pruner]`` table)
    "none": set(),
    "median": {"n_startup_trials", "n_warmup_steps", "warmup"},
    "halving": {"min_resource", "reduction_factor", "warmup"},
}
DEFAULT_WARMUP = 0.3
"""Pruners wait for this share of a run's steps by default: a GAN's first evaluations are noise."""
EVALUATE_KEYS = {"samples": int, "seed_offset": int, "fcd": bool}


@dataclass
class StudySpec:
    """A parsed study file (field meanings: ``load_spec``)."""

    name: str
    preset: str = "paper"
    seed: int = 0
    fixed: dict = field(default_factory=dict)
    grid: dict = field(default_factory=dict)
    space: dict = field(default_factory=dict)
    trials: int = 0
    sampler: str = "tpe"
    pruner: str = "none"
    pruner_options: dict = field(default_factory=dict)
    objectives: list = field(default_factory=lambda: [("valid*unique", "maximize")])
    at: str = "last"
    evaluate: dict = field(default_factory=dict)
    max_failures: int = 3

    @property
    def grid_points(self) -> list[dict]:
        """Every combination of the grid, the per-member settings (seed, λ, …) varying fastest,
        so that points one population can train (``--members``) are next to each other."""
        points = [{}]
        axes = sorted(
            self.grid.items(), key=lambda item: item[0] in (MEMBER_SEED, *MEMBER_SETTINGS)
        )
        for axis, values in axes:
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


def _read(path: Path) -> dict:
    if not path.is_file():
        raise ValueError(f"study file not found: {path}")
    text = path.read_text()
    if path.suffix == ".json":
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}: not valid JSON: {err}") from None
    elif path.suffix == ".toml":
        try:
            import tomllib
        except ModuleNotFoundError:  # Python 3.10
            import tomli as tomllib
        try:
            raw = tomllib.loads(text)
        except tomllib.TOMLDecodeError as err:
            raise ValueError(f"{path}: not valid TOML: {err}") from None
    else:
        raise ValueError(f"{path}: a study file is .toml or .json")
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: a study file is a table of keys, got {type(raw).__name__}")
    return raw


def load_spec(source: str | Path | dict) -> StudySpec:
    """Read and check a whole study file (.toml or .json) or dict; every problem is one line
    naming the file and the key, raised before anything is created or started.

    Keys: ``name``; ``preset``; ``seed`` (the study seed: each worker's sampler seed derives
    from it); ``[fixed]`` Config overrides; ``[grid]`` field -> non-empty list of values, and
    ``[grid.variant]`` name -> overrides (one axis of named settings); or ``[space]`` field ->
    ``{low, high, log}`` / ``{choices}`` with ``trials`` (budget), ``sampler`` (tpe | random |
    nsga2) and ``pruner`` (none | median | halving, single objective only; or a ``[pruner]``
    table with ``kind`` and its options: median ``n_startup_trials``, ``n_warmup_steps``;
    halving ``min_resource``, ``reduction_factor``; either ``warmup``, the share of a run's
    steps before any pruning, default 0.3); ``[[objectives]]`` with ``metric`` (a name or
    product ``a*b``) and ``direction``; ``at`` = last | best evaluation; ``[evaluate]``
    ``samples``, ``seed_offset`` (sampling seed = offset + run seed), ``fcd`` (bool) for a final
    evaluation of each run; ``max_failures`` (trials that raise an error before the study
    stops; default 3).
    """
    where = "study"
    if isinstance(source, dict):
        raw = dict(source)
    else:
        path = Path(source)
        raw, where = _read(path), str(path)
    raw.setdefault("name", "" if isinstance(source, dict) else Path(source).stem)
    try:
        spec = _parse(raw)
        _check(spec)
    except ValueError as err:
        raise ValueError(f"{where}: {err}") from None
    return spec


def _parse(raw: dict) -> StudySpec:
    known = {f.name for f in dataclasses.fields(StudySpec)} - {"pruner_options"}
    unknown = set(raw) - known
    if unknown:
        raise ValueError(f"unknown key(s) {sorted(unknown)}; known: {sorted(known)}")
    raw = dict(raw)
    for key in ("fixed", "grid", "space", "evaluate"):
        if not isinstance(raw.get(key, {}), dict):
            raise ValueError(f"[{key}] must be a table, got {raw[key]!r}")
    for key in ("name", "preset", "sampler", "at"):
        if key in raw and not isinstance(raw[key], str):
            raise ValueError(f"{key} must be a string, got {raw[key]!r}")
    for key in ("seed", "trials", "max_failures"):
        if key in raw and (not isinstance(raw[key], int) or isinstance(raw[key], bool)):
            raise ValueError(f"{key} must be an integer, got {raw[key]!r}")
    if raw.get("grid") and ("trials" in raw or "sampler" in raw):
        extra = [k for k in ("trials", "sampler") if k in raw]
        raise ValueError(f"{extra} belong to a [space] search; a [grid] runs every point once")
    pruner = raw.pop("pruner", "none")
    if isinstance(pruner, dict):
        options = dict(pruner)
        pruner = options.pop("kind", None)
        if pruner is None:
            raise ValueError(f"[pruner] needs kind = one of {', '.join(PRUNERS)}")
    else:
        options = {}
    if pruner not in PRUNERS:
        raise ValueError(f"pruner must be one of {', '.join(PRUNERS)}, got {pruner!r}")
    bad = set(options) - PRUNER_KEYS[pruner]
    if bad:
        raise ValueError(
            f"[pruner] {sorted(bad)} unknown for {pruner}; known: {sorted(PRUNER_KEYS[pruner])}"
        )
    for key, value in options.items():
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if key == "warmup":
            if not number or not 0 <= value < 1:
                raise ValueError(f"[pruner] warmup is a share of the run in [0, 1), got {value!r}")
        elif not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ValueError(f"[pruner] {key} must be an integer ≥ 0, got {value!r}")
    if options.get("reduction_factor", 2) < 2:
        raise ValueError("[pruner] reduction_factor must be ≥ 2")
    raw["pruner"], raw["pruner_options"] = pruner, options
    objectives = raw.get("objectives", [{"metric": "valid*unique"}])
    if not isinstance(objectives, list) or not objectives:
        raise ValueError("objectives must be a non-empty list of {metric, direction} tables")
    parsed = []
    for i, o in enumerate(objectives):
        if isinstance(o, (list, tuple)) and len(o) == 2:
            o = {"metric": o[0], "direction": o[1]}
        if not isinstance(o, dict):
            raise ValueError(f"objectives[{i}] must be a table with metric, got {o!r}")
        bad = set(o) - {"metric", "direction"}
        if bad:
            raise ValueError(
                f"objectives[{i}]: unknown key(s) {sorted(bad)}; known: metric, direction"
            )
        if not isinstance(o.get("metric"), str):
            raise ValueError(f"objectives[{i}] needs metric = a name such as 'valid*unique'")
        parsed.append((o["metric"], o.get("direction", "maximize")))
    raw["objectives"] = parsed
    return StudySpec(**raw)


def _kind(name: str):
    """The Python type of a ``Config`` field (int, float, bool, str or tuple)."""
    return type(getattr(Config(), name))


def _check_space(name: str, dist) -> list:
    """Check one ``[space]`` distribution; returns the values that must make a valid Config."""
    where = f"[space] {name}"
    if not isinstance(dist, dict):
        raise ValueError(f"{where} must be a table: {{low, high[, log]}} or {{choices}}")
    if "choices" in dist:
        if set(dist) != {"choices"}:
            raise ValueError(
                f"{where}: choices stand alone, got also {sorted(set(dist) - {'choices'})}"
            )
        if not isinstance(dist["choices"], list) or not dist["choices"]:
            raise ValueError(f"{where}: choices must be a non-empty list")
        return list(dist["choices"])
    bad = set(dist) - {"low", "high", "log"}
    if bad or not {"low", "high"} <= set(dist):
        raise ValueError(f"{where}: a range is {{low, high[, log]}}, got keys {sorted(dist)}")
    low, high, log = dist["low"], dist["high"], dist.get("log", False)
    for key, value in (("low", low), ("high", high)):
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise ValueError(f"{where}: {key} must be a number, got {value!r}")
    if not isinstance(log, bool):
        raise ValueError(f"{where}: log must be true or false, got {log!r}")
    kind = _kind(name)
    if kind is int and not (isinstance(low, int) and isinstance(high, int)):
        raise ValueError(f"{where}: {name} is an integer setting, got low={low!r} high={high!r}")
    if kind not in (int, float):
        raise ValueError(f"{where}: {name} is not numeric; give {{choices = [...]}}")
    if not low < high:
        raise ValueError(f"{where}: low must be below high, got low={low!r} high={high!r}")
    if log and low <= 0:
        raise ValueError(f"{where}: a log range needs low > 0, got {low!r}")
    return [low, high]


def _check(spec: StudySpec) -> None:
    fields = {f.name for f in dataclasses.fields(Config)}
    if not spec.name or "/" in spec.name:
        raise ValueError(f"name must be a plain name, got {spec.name!r}")
    if spec.preset not in PRESETS:
        raise ValueError(f"unknown preset {spec.preset!r}; choose from {', '.join(PRESETS)}")
    if bool(spec.grid) == bool(spec.space):
        raise ValueError("a study has either a [grid] or a [space] (with trials)")
    if spec.space and spec.trials < 1:
        raise ValueError("a [space] search needs trials ≥ 1")
    if spec.max_failures < 1:
        raise ValueError(f"max_failures must be ≥ 1, got {spec.max_failures}")
    for axis, values in spec.grid.items():
        if axis == VARIANT:
            if not isinstance(values, dict) or not values:
                raise ValueError("[grid.variant] maps names to override tables")
            for name, overrides in values.items():
                if not isinstance(overrides, dict):
                    raise ValueError(f"[grid.variant] {name} must be a table of settings")
        elif not isinstance(values, list) or not values:
            raise ValueError(f"[grid] {axis} must be a non-empty list of values, got {values!r}")
        elif len({_key(v) for v in values}) < len(values):
            raise ValueError(f"[grid] {axis} lists a value twice: {values!r}")
    variants = spec.grid.get(VARIANT, {})
    names = set(spec.fixed) | set(spec.space) | {k for k in spec.grid if k != VARIANT}
    names |= {k for overrides in variants.values() for k in overrides}
    for name in sorted(names & set(REMOVED)):
        raise ValueError(removed_message(name))
    bad = names - fields
    if bad:
        raise ValueError(f"unknown setting(s) {sorted(bad)}; see scripts/train_qm9.py --help")
    if names & {"members", "member_settings"}:  # packing trials into populations: not built yet
        raise ValueError(
            "members cannot be set in a study: run it with scripts/sweep.py run --members K"
        )
    for metric, direction in spec.objectives:
        if direction not in ("maximize", "minimize"):
            raise ValueError(f"direction must be maximize or minimize, got {direction!r}")
        metrics.check_metric(metric)
        if "fcd" in metric and not spec.evaluate.get("fcd"):
            raise ValueError("an fcd objective needs [evaluate] fcd = true")
    for key, value in spec.evaluate.items():
        if key not in EVALUATE_KEYS:
            raise ValueError(f"[evaluate] unknown key {key!r}; known: {', '.join(EVALUATE_KEYS)}")
        kind = EVALUATE_KEYS[key]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise ValueError(f"[evaluate] {key} must be {kind.__name__}, got {value!r}")
        if key == "samples" and value < 1:
            raise ValueError(f"[evaluate] samples must be ≥ 1, got {value}")
    if spec.at not in ("last", "best"):
        raise ValueError(f"at must be last or best, got {spec.at!r}")
    if spec.sampler not in ("tpe", "random", "nsga2"):
        raise ValueError(f"sampler must be tpe, random or nsga2, got {spec.sampler!r}")
    if spec.pruner != "none" and len(spec.objectives) > 1:
        raise ValueError("Optuna cannot prune multi-objective studies; set pruner = 'none'")
    axes = {k for k in spec.grid if k != VARIANT}
    places = {
        "[fixed]": set(spec.fixed),
        "[grid]": axes,
        "[grid.variant]": {k for overrides in variants.values() for k in overrides},
        "[space]": set(spec.space),
    }
    for (one, a), (other, b) in itertools.combinations(places.items(), 2):
        for name in sorted(a & b):
            raise ValueError(f"{name} is set in both {one} and {other}; set it in one place")
    runs: dict[str, dict] = {}
    for point in spec.grid_points:  # every grid point must be a valid Config, and its own run
        name = resolve(spec, point, Path(".")).name
        if name in runs:
            raise ValueError(
                f"[grid] points {runs[name]} and {point} are the same run (equal settings, "
                "e.g. 1 and 1.0, or two variants alike); list each setting once"
            )
        runs[name] = point
    resolve(spec, {}, Path("."))  # the fixed settings alone
    for name, dist in spec.space.items():  # and every bound and choice of the search
        for value in _check_space(name, dist):
            resolve(spec, {name: _param(value)}, Path("."))


def _key(value) -> str:
    return json.dumps(value, sort_keys=True, default=str)


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
        raise ValueError(f"bad settings {overrides}: {err}") from None
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
