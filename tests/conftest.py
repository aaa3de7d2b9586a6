"""Shared fixtures: the debug config (sizes that all differ), the tiny QM9 fixture, devices."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from molgan.presets import make_config

TINY = Path(__file__).parent / "data" / "qm9_tiny.smi"


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def tiny_config(tmp_path):
    """The ``debug`` preset on the tiny fixture, writing into a temporary folder."""
    return make_config(
        "debug",
        data=str(TINY),
        atoms="qm9",  # a QM9 subset: QM9's vocabulary (one's own data would take its own)
        out_dir=str(tmp_path / "runs"),
        max_steps=6,
        eval_every=3,
        log_every=3,
        eval_samples=16,
    )


@pytest.fixture
def tiny_path() -> Path:
    return TINY


@pytest.fixture(params=["cpu"] + (["cuda"] if torch.cuda.is_available() else []))
def device(request) -> str:
    return request.param


def one_member(model, cfg):
    """``model`` as a population of one, its step nets and per-member weights (steps take a
    leading member axis; real batches need ``[None]``)."""
    from molgan import steps
    from molgan.population import Population

    population = Population([model])
    return population, steps.step_nets(population), steps.member_weights(cfg, 1, "cpu")


def script_module(name: str, folder: str = "scripts"):
    """``<folder>/<name>.py`` imported as a module, to call its ``main`` in this process (faster
    than a subprocess)."""
    import importlib.util

    path = Path(__file__).resolve().parents[1] / folder / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
