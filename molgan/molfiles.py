"""Molecule files: read SMILES from .smi/.txt, .csv or .sdf files, plain or gzipped, with a
one-line error for anything that is not one. ``read_smiles`` feeds the datasets
(``molgan.data``), ``read_samples`` the evaluation of sample files (invalid samples kept as
``None``). SDF records are parsed by RDKit through ``molgan.chem``."""

from __future__ import annotations

import gzip
import io
import zlib
from pathlib import Path

from molgan import chem


def _read_text(path: Path) -> str:
    """A file's text, gunzipped if it is gzip; one-line errors for anything that is not text."""
    if path.is_dir():
        raise ValueError(f"{path} is a directory, not a file")
    if not path.is_file():
        raise ValueError(f"file not found: {path}")
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise ValueError(f"cannot read {path}: {err.strerror}") from None
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as err:
            raise ValueError(f"{path}: corrupt gzip data ({err})") from None
    elif path.suffix.lower() == ".gz":
        raise ValueError(f"{path} ends in .gz but is not gzip-compressed")
    if b"\x00" in raw[:65536]:
        raise ValueError(f"{path} holds binary data, not molecules as text")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(
            f"{path} is not UTF-8 text (bad byte at offset {err.start}); not a molecule file?"
        ) from None


def _kind(path: Path) -> str:
    suffixes = [s.lower() for s in path.suffixes if s.lower() != ".gz"]
    return suffixes[-1] if suffixes and suffixes[-1] in (".sdf", ".csv") else ".smi"


def _entries(path: Path, keep_blank: bool) -> list[tuple[int, str]]:
    """``(line or record number, SMILES)`` of every entry; ``""`` for blank or unreadable ones
    when ``keep_blank`` (sample files mark invalid graphs that way), else those are skipped."""
    text, kind = _read_text(path), _kind(path)
    if kind == ".sdf":
        entries = chem.sdf_smiles(text)
    elif kind == ".csv":
        import pandas as pd

        try:
            frame = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
        except Exception as err:  # pandas' parser errors have no common base  # noqa: BLE001
            raise ValueError(f"cannot read {path} as CSV: {str(err).splitlines()[0]}") from None
        column = next((c for c in frame.columns if c.strip().lower() == "smiles"), None)
        if column is None:
            found = ", ".join(map(str, frame.columns[:8])) or "none"
            raise ValueError(f"{path} has no 'smiles' column (columns: {found})")
        entries = [(i + 2, s.strip()) for i, s in enumerate(frame[column])]
    else:
        entries = []
        for number, line in enumerate(text.splitlines(), start=1):
            fields = line.split()
            if number == 1 and fields and fields[0].lower() == "smiles":
                continue  # a header line
            entries.append((number, fields[0] if fields else ""))
    return entries if keep_blank else [(n, s) for n, s in entries if s]


def read_smiles(path: str | Path) -> list[tuple[int, str]]:
    """Read molecules from a .smi/.txt, .csv or .sdf file, plain or gzipped.

    Args:
        path: the file. In .smi files the first whitespace-separated token of each line is the
            SMILES; .csv files need a ``smiles`` column (any case).

    Returns:
        ``(line_number, smiles)`` pairs (record number for SDF), in file order, blanks skipped;
        an SDF record RDKit cannot read gives ``""``.

    Raises:
        ValueError: the file is missing, a directory, binary, not gzip although named .gz, a CSV
            without a ``smiles`` column, or holds no molecules.
    """
    path = Path(path)
    entries = _entries(path, keep_blank=_kind(path) == ".sdf")
    if not entries:
        raise ValueError(f"no molecules in {path}")
    return entries


def read_samples(path: str | Path) -> list[str | None]:
    """All samples of a sample file, in order, ``None`` for invalid ones (an empty line in .smi,
    an empty ``smiles`` cell in .csv, an empty or unreadable record in .sdf), so that validity is
    counted over every generated graph whatever the format.

    Raises:
        ValueError: as ``read_smiles``, or a file without any entry.
    """
    path = Path(path)
    samples = [s or None for _, s in _entries(path, keep_blank=True)]
    if not samples:
        raise ValueError(f"no samples in {path}")
    return samples
