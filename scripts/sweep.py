"""Run many-run studies (grids, searches) of molgan settings on Optuna + submitit.

    python scripts/sweep.py run studies/paper_lambda0.toml --workers 2     # this machine
    python scripts/sweep.py run study.toml --dry-run    # the trials it would run; creates nothing
    python scripts/sweep.py run study.toml --slurm partition=gpu time=600 gpus=1 array=8
    python scripts/sweep.py status study.toml                              # progress
    python scripts/sweep.py results study.toml                             # CSV, markdown, PNG
    python scripts/sweep.py drain study.toml        # workers stop after their current trial
    python scripts/sweep.py work study.toml --storage postgresql://...     # one worker, here

Kill any worker or the launcher, then run the same command again: finished trials are kept,
interrupted ones resume from their checkpoints, and no configuration is trained twice.
Study files: see ``studies/`` and ``molgan.sweep.load_spec``. Needs ``pip install -e ".[sweep]"``.
Exit codes: 0 done (or workers started with --no-wait), 1 the study failed (its error is
printed), 2 a bad command or study file, 3 trials are left (run the same command again).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from molgan.cli import HelpFormatter
from molgan.config import MEMBER_SETTINGS

SLURM_KEYS = {  # short names -> submitit's Slurm parameters
    "partition": ("slurm_partition", str),
    "time": ("timeout_min", int),
    "cpus": ("cpus_per_task", int),
    "gpus": ("gpus_per_node", int),
    "mem": ("mem_gb", int),
    "account": ("slurm_account", str),
    "qos": ("slurm_qos", str),
    "constraint": ("slurm_constraint", str),
}


def parse_slurm(items: list[str]) -> tuple[dict, int | None]:
    """``key=value`` words -> (submitit parameters, array size or None)."""
    params, array = {}, None
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--slurm takes key=value words, got {item!r}")
        if key == "array":
            if not value.isdigit() or int(value) < 1:
                raise ValueError(f"--slurm array is a number of workers ≥ 1, got {value!r}")
            array = int(value)
        elif key in SLURM_KEYS:
            name, kind = SLURM_KEYS[key]
            try:
                params[name] = kind(value)
            except ValueError:
                raise ValueError(f"--slurm {key} must be {kind.__name__}, got {value!r}") from None
        else:
            known = ", ".join([*SLURM_KEYS, "array"])
            raise ValueError(f"unknown --slurm key {key!r}; known: {known}")
    return params, array


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=HelpFormatter
    )
    parser.add_argument("command", choices=("run", "work", "status", "results", "drain"))
    parser.add_argument("study", help="study file (.toml or .json)")
    parser.add_argument("--root", help="study folder (default: sweeps/<name>)")
    parser.add_argument(
        "--storage",
        help="Optuna storage URL (default: a journal file in the study folder); e.g. "
        "postgresql://user@host/db or journal:/shared/path/journal.log for several machines",
    )
    parser.add_argument(
        "--workers", type=int, default=1, help="workers to keep running (run); live ones count"
    )
    parser.add_argument(
        "--slurm",
        nargs="+",
        metavar="KEY=VALUE",
        help=f"send the workers to Slurm: {', '.join(SLURM_KEYS)}, array (= workers)",
    )
    parser.add_argument(
        "--executor", choices=("local", "debug"), default="local", help="where workers run"
    )
    parser.add_argument("--no-wait", action="store_true", help="start workers and return (run)")
    parser.add_argument(
        "--members",
        type=int,
        default=1,
        help="train up to this many trials at once as one population when they differ only in "
        f"seed and per-member settings ({', '.join(MEMBER_SETTINGS)}); each keeps its own run "
        "folder, row and resume (run, work)",
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="list the trials run would train; create nothing"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads per worker (run, work); 0 = cores // workers. Keep 1 unless the "
        "cores outnumber the workers: more threads than cores slow every run ~100x",
    )
    args = parser.parse_args(argv)
    try:
        from molgan import sweep
    except ImportError as err:
        print(f"error: {err}; install the extra: pip install -e '.[sweep]'", file=sys.stderr)
        return 2
    try:
        spec = sweep.load_spec(args.study)
        root = Path(args.root or Path("sweeps") / spec.name)
        storage = args.storage or sweep.default_storage(root)
        if args.dry_run:
            if args.command != "run":
                raise ValueError("--dry-run goes with run")
            print(sweep.dry_run(args.study, root, storage))
            return 0
        if args.command == "run":
            executor, slurm, workers = args.executor, None, args.workers
            if args.slurm:
                slurm, array = parse_slurm(args.slurm)
                executor, workers = "slurm", array or workers
            frame = sweep.launch(
                args.study,
                root,
                storage=storage,
                workers=workers,
                executor=executor,
                slurm=slurm,
                wait=not args.no_wait,
                threads=args.threads,
                members=args.members,
            )
            if not frame.empty:
                paths = sweep.results_paths(spec, root)
                print(paths["md"].read_text())
                print(f"results: {', '.join(str(p) for p in paths.values() if p.exists())}")
            if frame.attrs.get("exhausted"):
                print(
                    f"note: study {spec.name} ended before its budget of {spec.budget}: "
                    f"{frame.attrs['exhausted']} (a larger [space] would give new ones)",
                    file=sys.stderr,
                )
            if frame.attrs.get("failed"):
                print(f"error: study {spec.name} failed: {frame.attrs['failed']}", file=sys.stderr)
                return 1
            if frame.attrs.get("left") and not args.no_wait:
                print(
                    f"{frame.attrs['left']} trial(s) left and no worker running: "
                    "run the same command again",
                    file=sys.stderr,
                )
                return 3
        elif args.command == "work":
            try:
                why = sweep.work(
                    args.study, str(root), storage, threads=args.threads, members=args.members
                )
            except sweep.StudyFailed as err:
                print(f"error: study {spec.name} failed: {err}", file=sys.stderr)
                return 1
            print(f"worker stopped: {why}")
        elif args.command == "drain":
            path = sweep.drain(root)
            print(f"{path}: workers finish their current trial and take no other; `run` resumes")
        elif args.command == "status":
            print(sweep.status(sweep.open_study(spec, storage), spec, root))
        else:
            study = sweep.open_study(spec, storage)
            frame = sweep.results_frame(study, spec, root)
            if frame.empty:
                raise ValueError(f"study {spec.name} has no finished trial yet")
            paths = sweep.write_results(frame, spec, root, study)
            print(paths["md"].read_text())
            print(f"results: {', '.join(str(p) for p in paths.values())}")
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # e.g. `status | head`: the reader left; say nothing more
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    return 0


if __name__ == "__main__":
    sys.exit(main())
