"""Many-run studies on Optuna (the study) and submitit (the workers): grids and searches of
``Config`` settings, laptop by default, Slurm with the same command.

Each trial is an ordinary molgan run in ``<root>/runs/<hash of its resolved settings>``: the same
settings are never trained twice, and a killed trial resumes from its checkpoint. Optuna and
submitit are imported lazily (``pip install -e ".[sweep]"``); nothing else in molgan imports
this package. Modules: ``spec`` (study files), ``runner`` (one trial = one run), ``study``
(Optuna: samplers, pruners, shared trial states), ``worker`` (the worker loop),
``packing`` (trials as populations), ``launcher`` (starting, following, dry runs), ``results``
(tables and plots).
"""

from molgan.sweep.launcher import dry_run, launch
from molgan.sweep.results import markdown_table, results_frame, results_paths, write_results
from molgan.sweep.runner import is_free, run_trial, summarize
from molgan.sweep.spec import StudySpec, load_spec, objective_value, resolve
from molgan.sweep.study import (
    StudyFailed,
    default_storage,
    drain,
    open_study,
    reap_orphans,
    status,
    trials_left,
)
from molgan.sweep.worker import Worker, work

__all__ = [
    "StudyFailed",
    "StudySpec",
    "Worker",
    "dry_run",
    "default_storage",
    "drain",
    "is_free",
    "launch",
    "load_spec",
    "markdown_table",
    "objective_value",
    "open_study",
    "reap_orphans",
    "resolve",
    "results_frame",
    "results_paths",
    "run_trial",
    "status",
    "summarize",
    "trials_left",
    "work",
    "write_results",
]
