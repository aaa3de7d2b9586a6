"""Sample molecules from a checkpoint into .csv (SMILES + scores), .smi or .sdf, and a PNG grid.

python scripts/sample.py --checkpoint runs/paper-seed0/ckpt.pt -n 1000 --out runs/samples.csv
python scripts/sample.py -n 100 --out runs/samples.sdf --grid runs/grid.png   # the shipped model
python scripts/sample.py --checkpoint runs/pop/ckpt.pt --member 2 -n 1000 --out m2.csv
python scripts/sample.py --checkpoint runs/pop/ckpt.pt --mixture -n 1000 --out mix.csv

Every output keeps one entry per generated graph, so validity reads the same from each: in .csv
an empty ``smiles`` cell (multi-fragment graphs keep their dotted SMILES with valid=False), in
.smi an empty line (fragments as dotted SMILES), in .sdf an empty record named ``sample_<i>``.
Any of them may end in .gz. Samples are written in chunks, so memory stays bounded for any -n.
"""

from __future__ import annotations

import argparse
import gzip
import os
import sys
from pathlib import Path

import molgan
from molgan import chem, metrics
from molgan.cli import HelpFormatter
from molgan.mixture import load as load_mixture
from molgan.models import resolve_device
from molgan.rundir import output_path, write_error
from molgan.sample import iter_samples, parse_temperature

FORMATS = (".csv", ".smi", ".sdf")
GRID_SIZE = 48


def _format(out: Path) -> str:
    suffixes = [s.lower() for s in out.suffixes if s.lower() != ".gz"]
    return suffixes[-1] if suffixes and suffixes[-1] in FORMATS else ""


class Writer:
    """Appends sample chunks to .csv / .smi / .sdf (optionally .gz), via a temporary file that
    replaces ``out`` only when every sample is written."""

    def __init__(self, out: Path):
        self.out, self.kind, self.index = out, _format(out), 0
        self.tmp = out.with_name(out.name + ".part")
        raw = open(self.tmp, "wb")
        self.handle = gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) if out.suffix == ".gz" else raw
        self.raw = raw

    def write(self, samples: chem.Samples) -> None:
        if self.kind == ".csv":
            frame = metrics.evaluate_frame(samples).drop(columns=["novel"])
            frame["smiles"] = samples.lenient  # None, or dotted SMILES for fragments (valid=False)
            self.handle.write(frame.to_csv(index=False, header=self.index == 0).encode())
        elif self.kind == ".smi":
            self.handle.write("".join(f"{s or ''}\n" for s in samples.lenient).encode())
        else:
            self.handle.write(chem.sdf_block(samples, start=self.index).encode())
        self.index += len(samples)

    def close(self) -> None:
        if self.handle is not self.raw:
            self.handle.close()
        self.raw.close()
        os.replace(self.tmp, self.out)

    def abort(self) -> None:
        try:
            self.raw.close()
        except OSError:
            pass  # the write that failed may fail again on close; the file goes anyway
        self.tmp.unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=HelpFormatter
    )
    parser.add_argument(
        "--checkpoint", help="checkpoint file (default: the shipped pretrained QM9 model)"
    )
    parser.add_argument(
        "--member", type=int, help="a population's checkpoint (--members K): sample member k"
    )
    parser.add_argument(
        "--mixture",
        action="store_true",
        help="a population's checkpoint: its members as one mixture (sample i from member i "
        "mod K; a mixture file, as the shipped model, is sampled so without it)",
    )
    parser.add_argument("-n", type=int, default=1000, help="number of molecules")
    parser.add_argument("--out", help="samples file: .csv, .smi or .sdf, optionally .gz")
    parser.add_argument("--seed", type=int, default=0, help="sampling seed")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (0 = all)")
    parser.add_argument(
        "--grid", help=f"also draw the first {GRID_SIZE} strictly valid molecules into this PNG"
    )
    parser.add_argument(
        "--heavy-atoms", type=int, help="a conditional model: only this heavy-atom count"
    )
    parser.add_argument(
        "--elements", help="a conditional model: exactly these elements, e.g. C,O,F"
    )
    parser.add_argument(
        "--temperature",
        default="1",
        help="sample atoms and bonds from softmax(logits / T): above 1 more distinct, fewer "
        "valid molecules (docs/remedies.md); ATOMS:BONDS (e.g. 3:1) scales them separately",
    )
    parser.add_argument("--chunk", type=int, default=10_000, help="graphs per written chunk")
    parser.add_argument(
        "--force", action="store_true", help="replace an existing --out / --grid file"
    )
    args = parser.parse_args(argv)
    try:
        if not args.out and not args.grid:
            raise ValueError("give --out FILE, --grid FILE.png, or both")
        out = output_path(args.out, "--out") if args.out else None
        if out is not None and not _format(out):
            raise ValueError("--out must end in .csv, .smi or .sdf (optionally + .gz)")
        grid = output_path(args.grid, "--grid") if args.grid else None
        if grid is not None and grid.suffix.lower() != ".png":
            raise ValueError("--grid must end in .png")
        for path, flag in ((out, "--out"), (grid, "--grid")):
            if path is not None and path.exists() and not args.force:
                raise ValueError(f"{flag} {path} exists; pass --force to replace it")
        if args.n < 1 or args.chunk < 1 or args.threads < 0:
            raise ValueError("-n and --chunk must be ≥ 1, --threads ≥ 0")
        import torch

        torch.set_num_threads(args.threads or os.cpu_count() or 1)
        if args.mixture and args.member is not None:
            raise ValueError("give --member (one member) or --mixture (all of them), not both")
        if args.mixture:
            model = load_mixture(args.checkpoint, resolve_device(args.device))
        else:
            model = molgan.load(args.checkpoint, resolve_device(args.device), args.member)
        batches = iter_samples(
            model,
            args.n,
            args.seed,
            strict=True,
            batch_size=args.chunk,
            heavy_atoms=args.heavy_atoms,
            elements=args.elements,
            temperature=parse_temperature(args.temperature),
        )
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    writer = None
    valid, lenient, drawable, matched = 0, 0, [], 0
    wanted = _class_test(args.heavy_atoms, args.elements)
    try:
        writer = Writer(out) if out is not None else None
        with _progress(args.n) as update:
            for samples in batches:
                if writer is not None:
                    writer.write(samples)
                valid += sum(s is not None for s in samples)
                if wanted is not None:
                    matched += sum(wanted(s) for s in samples if s is not None)
                lenient += sum(s is not None for s in samples.lenient)
                if len(drawable) < GRID_SIZE:
                    drawable += [s for s in samples if s is not None][: GRID_SIZE - len(drawable)]
                update(len(samples))
        if writer is not None:
            writer.close()
    except OSError as err:  # disk full, file-size limit, …: one line, no partial file left
        if writer is not None:
            writer.abort()
        print(f"error: {write_error(out, err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C: no partial file, one line, the shell's code
        if writer is not None:
            writer.abort()
        print(f"interrupted after {valid:,} valid molecules; nothing written", file=sys.stderr)
        return 130
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    if wanted is not None:  # G follows a class request for most graphs, not all: say how many
        what = _class_text(args)
        lead = "warning: none" if matched == 0 and valid else f"{matched:,}"
        print(f"{lead} of {valid:,} valid molecules have {what}", file=sys.stderr)
    where = f" -> {out}" if out is not None else ""
    # fraction first, then percent: the rounding of molgan.metrics (9685/10000 -> 96.9, not 96.8)
    print(
        f"{args.n} sampled, {valid} valid ({100 * (valid / args.n):.1f}%; "
        f"{100 * (lenient / args.n):.1f}% allowing fragments){where}"
    )
    if grid is not None:
        try:
            drawn = chem.draw_grid(drawable, str(grid), max_mols=GRID_SIZE)
        except ValueError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        print(f"{drawn} strictly valid molecules drawn -> {grid}")
    return 0


def _class_test(heavy_atoms: int | None, elements: str | None):
    """A test of a SMILES for the class asked of a conditional model, or ``None``."""
    if heavy_atoms is None and not elements:
        return None
    symbols = {e.strip() for e in elements.split(",")} if elements else None

    def wanted(smiles: str) -> bool:
        atoms = chem.heavy_atoms(smiles, sanitize=False)
        count_ok = heavy_atoms is None or len(atoms) == heavy_atoms
        return count_ok and (symbols is None or set(atoms) == symbols)

    return wanted


def _class_text(args) -> str:
    parts = [f"{args.heavy_atoms} heavy atoms"] if args.heavy_atoms is not None else []
    parts += [f"exactly the elements {args.elements}"] if args.elements else []
    return " and ".join(parts)


def _progress(n: int):
    from molgan.pool import progress_bar

    return progress_bar(n, f"sampling {n:,} molecules")


if __name__ == "__main__":
    sys.exit(main())
