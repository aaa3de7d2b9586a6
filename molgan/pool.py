"""Long RDKit work (dataset encoding, scoring): process pools whose workers never outlive us,
and progress output for it.

A ``ProcessPoolExecutor`` worker whose parent is killed (kill -9, OOM) keeps running its task
and then blocks; on Linux each worker asks the kernel for SIGKILL when its parent dies
(``PR_SET_PDEATHSIG``), so no process of ours survives a kill. Workers use one torch thread.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor

_PR_SET_PDEATHSIG = 1


def _die_with_parent(parent: int) -> None:
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):  # no prctl: fall back to the parent check below
            pass
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    os.environ["OMP_NUM_THREADS"] = "1"


def pool_map(
    fn: Callable, jobs: Iterable, workers: int, progress: Callable[[int], None] | None = None
) -> Iterator:
    """``map(fn, jobs)`` in ``workers`` processes that die with this one, in order.

    Args:
        fn: a picklable function of one job.
        jobs: the jobs.
        workers: process count.
        progress: called with 1 after each finished job (e.g. a progress bar's ``update``).
    """
    ex = ProcessPoolExecutor(workers, initializer=_die_with_parent, initargs=(os.getpid(),))
    try:
        for result in ex.map(fn, jobs):
            if progress is not None:
                progress(1)
            yield result
    except BaseException:  # Ctrl-C, or the consumer stopped: no job runs on, queued or not
        stop_now(ex)
        raise
    ex.shutdown(wait=True)


def stop_now(ex: ProcessPoolExecutor) -> None:
    """Drop an executor's queued jobs and end its running ones at once (a worker would
    otherwise finish its job first: minutes for a chunk of MOSES)."""
    processes = list((getattr(ex, "_processes", None) or {}).values())
    ex.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        with contextlib.suppress(Exception):
            process.terminate()
    for process in processes:
        with contextlib.suppress(Exception):
            process.join(timeout=5)


@contextlib.contextmanager
def progress_bar(total: int, what: str) -> Iterator[Callable[[int], None]]:
    """Progress of ``total`` units of work on stderr: a bar on a terminal, else a start and an
    end line (no carriage returns in redirected logs). Yields the ``update(k)`` callable."""
    if sys.stderr.isatty():
        from tqdm.auto import tqdm

        with tqdm(total=total, desc=what, file=sys.stderr, leave=False) as bar:
            yield bar.update
        print(f"{what}: done", file=sys.stderr)
        return
    start = time.monotonic()
    print(f"{what}...", file=sys.stderr, flush=True)
    yield lambda k: None
    print(f"{what}: done in {time.monotonic() - start:.0f} s", file=sys.stderr, flush=True)
