"""A study is its definition: what its runs and their ranking depend on, stored with the study
(``<root>/study.json``, or ``study-<name>.json`` in a root of another name) when it first
runs, and compared each time it runs again.

A study file edited after it ran would otherwise be ignored: trials are matched to grid points
by their parameters, so a changed ``[fixed]`` setting, preset or evaluation trained nothing new
while the table kept describing the old runs. Adding values to a grid axis, new variants or
search trials only extends a study (and dropping points narrows it); any other change is
refused in one line.
"""

from __future__ import annotations

import json
from pathlib import Path

from molgan.rundir import write_text
from molgan.sweep.spec import VARIANT, StudySpec

FILE = "study.json"  # in a root named after the study; else study-<name>.json (shared roots)
KEYS = ("preset", "seed", "fixed", "space", "objectives", "at", "evaluate", "sampler", "pruner")


def _plain(value):
    """JSON's view of a value (tuples as lists, keys sorted): what two definitions compare."""
    return json.loads(json.dumps(value, sort_keys=True, default=list))


def definition(spec: StudySpec, source: str) -> dict:
    """The parts of ``spec`` that its runs and their ranking depend on, and where it came
    from (``source``: the study file's resolved path, or ``"<dict>"``)."""
    out = {key: _plain(getattr(spec, key)) for key in KEYS}
    out["pruner_options"] = _plain(spec.pruner_options)
    out["kind"] = "grid" if spec.grid else "search"
    out["grid"] = _plain(spec.grid)
    return {"name": spec.name, "source": source, **out}


def changes(stored: dict, now: dict) -> list[str]:
    """What differs between a stored definition and today's in what a run or its ranking
    means. Grid values and variants may come and go (each point's run is named by its own
    settings; the table shows the file's points), and a search's budget may grow; the grid's
    axes and a kept variant's overrides may not change."""
    changed = [key for key in (*KEYS, "pruner_options", "kind") if stored.get(key) != now[key]]
    if "kind" in changed:
        return changed
    old, new = stored.get("grid", {}), now["grid"]
    for axis in sorted(set(old) | set(new)):
        if axis not in old or axis not in new:
            changed.append(f"[grid] axis {axis}")
        elif axis == VARIANT:  # a variant kept under its name must mean what it meant
            both = set(old[axis]) & set(new[axis])
            changed += [f"[grid.variant] {v}" for v in sorted(both) if old[axis][v] != new[axis][v]]
    return changed


def check(spec: StudySpec, root: Path, source: str) -> dict | None:
    """Refuse to run ``spec`` in ``root`` if the study there was defined otherwise, or by
    another file of the same name. Reads only.

    Returns:
        The definition to store (``store``), or ``None`` when the stored one is today's.

    Raises:
        ValueError: one line naming what changed and how to start anew.
    """
    now = definition(spec, source)
    path = _path(root, spec.name)
    if not path.is_file():
        return now
    try:
        stored = json.loads(path.read_text())
    except (OSError, ValueError):
        raise ValueError(f"{path} is unreadable; move it away to start the study anew") from None
    old_source = stored.get("source", "")
    if old_source != source and old_source != "<dict>" and Path(old_source).is_file():
        raise ValueError(
            f"{root} holds study {spec.name!r} of {old_source}; {source} has the same name: "
            "rename one (name = ...) or give it another --root"
        )
    changed = changes(stored, now)
    if changed:
        raise ValueError(
            f"{root}: study {spec.name!r} ran with another definition ({', '.join(changed)} "
            "changed), and its runs would not describe this file: restore the file, or start "
            "anew with another name or --root"
        )
    return None if stored == now else now


def store(root: Path, defined: dict | None) -> None:
    """Write the definition ``check`` returned (atomically; nothing when it is unchanged)."""
    if defined is not None:
        Path(root).mkdir(parents=True, exist_ok=True)
        write_text(_path(root, defined["name"]), json.dumps(defined, indent=2) + "\n")


def _path(root: Path, name: str) -> Path:
    """A study's definition file: as its results (``results_paths``), plain in a folder of its
    own name, named after it in a folder other studies may share."""
    return Path(root) / (FILE if Path(root).name == name else f"study-{name}.json")
