"""A run directory: ``<out_dir>/<name>/{config.json, log.jsonl, ckpt.pt}``.

A new run never writes into a folder that holds anything. ``log.jsonl`` has one JSON object per
log step (``step`` plus namespaced values, e.g. ``loss/d``, ``score/valid``) and, when a run
stops early, one ``{"step", "event": "stop", "reason"}`` row. Rows are written before the
checkpoint of the same step, so a kill between the two loses nothing; a resume drops the rows
after its checkpoint's step, so the log of a resumed run equals an uninterrupted run's log.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import os
from pathlib import Path

CONFIG, LOG, CKPT = "config.json", "log.jsonl", "ckpt.pt"
OUTPUT = "output.log"  # a study trial's stdout/stderr (molgan.sweep): allowed in a new run's folder
LOCK = "run.lock"  # held by the one process that trains the run (``hold``)
KEPT = (OUTPUT, LOCK)  # files a new run's folder may already hold


class WriteError(ValueError):
    """A file could not be written: disk full, file-size limit, read-only or not a folder."""


def write_error(path: str | Path, err: BaseException) -> WriteError:
    """One line naming the path and the cause."""
    if isinstance(err, OSError) and err.strerror:
        cause = err.strerror
    else:  # e.g. torch.save's "[enforce fail at inline_container.cc] unexpected pos"
        cause = "the write failed (is the disk full, or a file-size limit set?)"
    return WriteError(f"cannot write {path}: {cause}")


@contextlib.contextmanager
def atomic_path(path: str | Path):
    """Yield a temporary path beside ``path``; when the block succeeds it replaces ``path``.
    On any failure the temporary file is removed and ``path`` is left as it was; write errors
    become one-line ``WriteError``s."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            yield tmp
            os.replace(tmp, path)
        finally:
            with contextlib.suppress(OSError):
                tmp.unlink()
    except (OSError, RuntimeError) as err:
        raise write_error(path, err) from None


def write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` atomically (``atomic_path``)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def save_json(path: str | Path, obj, **dumps) -> int:
    """A script's ``--json`` output, written atomically: returns its exit status, 0, or 2
    after printing the one-line error of a failed write."""
    import sys

    try:
        write_text(path, json.dumps(obj, indent=2, **dumps))
    except WriteError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


@contextlib.contextmanager
def hold(run_dir: Path):
    """Hold the run folder for this process (an exclusive lock on ``run.lock``, released when
    the process ends, however it ends): a second run or resume of the same folder is a one-line
    error naming the process that has it.

    Raises:
        ValueError: another process holds the folder, or it cannot be created.
    """
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        handle = open(run_dir / LOCK, "a+")
    except OSError as err:
        raise write_error(run_dir, err) from None
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            pid = handle.read().strip() or "another process"
            raise ValueError(
                f"{run_dir} is in use by process {pid} (a run or resume of it is going on); "
                "wait for it to end, or use another --name"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


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
    if run_dir.is_dir() and any(p.name not in KEPT for p in run_dir.iterdir()):
        what = "a checkpoint" if (run_dir / CKPT).is_file() else "files of an earlier run"
        raise ValueError(
            f"{run_dir} already holds {what}: pass --resume to continue it, "
            "or --name for a new run (nothing was overwritten)"
        )


def write_config(run_dir: Path, config: dict) -> None:
    """Write ``config.json`` atomically (a run's original settings; resumes keep it)."""
    write_text(run_dir / CONFIG, json.dumps(config, indent=2) + "\n")


def write_row(handle, record: dict) -> None:
    """Append one row to an open log; non-finite floats become ``null``."""
    clean = {
        k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in record.items()
    }
    try:
        handle.write(json.dumps(clean) + "\n")
        handle.flush()
    except OSError as err:
        raise write_error(handle.name, err) from None


def read_log(path: str | Path) -> list[dict]:
    """All complete rows of a ``log.jsonl`` (a half-written last line is skipped).

    Raises:
        ValueError: the file is not UTF-8 text (one line).
    """
    path = Path(path)
    if path.is_dir():
        path = path / LOG
    rows = []
    if path.is_file():
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as err:
            raise ValueError(f"{path} is not a run log (not UTF-8 text: {err.reason})") from None
        for line in text.splitlines():
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
    write_text(path, "".join(line + "\n" for line in kept))
    return len(lines) - len(kept)
