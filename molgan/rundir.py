"""A run directory: ``<out_dir>/<name>/{config.json, log.jsonl, ckpt.pt}``.

A new run never writes into a folder that holds anything. ``log.jsonl`` has one JSON object per
log step (``step`` plus namespaced values, e.g. ``loss/d``, ``score/valid``) and, when a run
stops early, one ``{"step", "event": "stop", "reason"}`` row. Rows are written before the
checkpoint of the same step, so a kill between the two loses nothing; a resume drops the rows
after its checkpoint's step, so the log of a resumed run equals an uninterrupted run's log.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

CONFIG, LOG, CKPT = "config.json", "log.jsonl", "ckpt.pt"
OUTPUT = "output.log"  # a study trial's stdout/stderr (molgan.sweep): allowed in a new run's folder


def output_path(path: str | Path, what: str = "output") -> Path:
    """``path`` as a file we can write, checked before any work starts (one-line errors)."""
    out = Path(path)
    if out.is_dir():
        raise ValueError(f"{what} {out} is a directory; give a file name")
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise ValueError(f"{what}: folder {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise ValueError(f"{what}: folder {parent} is not writable")
    return out


def check_new(run_dir: Path) -> None:
    """Refuse to start a new run in a folder that exists and is not empty.

    Raises:
        ValueError: ``run_dir`` is a file, or holds anything.
    """
    if run_dir.exists() and not run_dir.is_dir():
        raise ValueError(f"{run_dir} exists and is not a folder")
    if run_dir.is_dir() and any(p.name != OUTPUT for p in run_dir.iterdir()):
        what = "a checkpoint" if (run_dir / CKPT).is_file() else "files of an earlier run"
        raise ValueError(
            f"{run_dir} already holds {what}: pass --resume to continue it, "
            "or --name for a new run (nothing was overwritten)"
        )


def write_config(run_dir: Path, config: dict) -> None:
    """Write ``config.json`` atomically (a run's original settings; resumes keep it)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    tmp = run_dir / (CONFIG + ".tmp")
    tmp.write_text(json.dumps(config, indent=2) + "\n")
    os.replace(tmp, run_dir / CONFIG)


def write_row(handle, record: dict) -> None:
    """Append one row to an open log; non-finite floats become ``null``."""
    clean = {
        k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in record.items()
    }
    handle.write(json.dumps(clean) + "\n")
    handle.flush()


def read_log(path: str | Path) -> list[dict]:
    """All complete rows of a ``log.jsonl`` (a half-written last line is skipped)."""
    path = Path(path)
    if path.is_dir():
        path = path / LOG
    rows = []
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return rows


def truncate_log(path: Path, step: int) -> int:
    """Keep the rows up to ``step`` (a checkpoint's step), atomically; returns the rows dropped."""
    if not path.is_file():
        return 0
    lines = path.read_text().splitlines()
    kept = []
    for line in lines:
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict) and row.get("step", 0) <= step:
            kept.append(line)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(line + "\n" for line in kept))
    os.replace(tmp, path)
    return len(lines) - len(kept)
