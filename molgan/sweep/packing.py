"""Packing trials into populations (``sweep.py run --members K``).

Trials whose settings differ only in their seed and per-member settings (``lam``,
``mode_seeking``, ``valence``, ``gp_weight``, ``energy``) train as the
members of one population: one process, one step for all of them (``molgan.population``). The
population lives in ``<root>/packs/<hash of its trials>`` and resumes from its checkpoint; when
it ends, each trial gets its own run folder as an unpacked trial does: ``config.json`` (its own
settings, and the pack it trained in), ``log.jsonl`` (its member's rows), ``model.pt`` (its
member, for sampling), ``best.pt``, ``result.json``.

A packed trial is the run of its settings with the population's shared noise stream: it
differs from the same settings trained alone as another random stream would (statistically
alike, not bit for bit). Either way its folder is the one of its settings, so a trial is
never trained twice.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import shutil
from pathlib import Path

from molgan import checkpoint, rundir
from molgan.config import MEMBER_SEED, MEMBER_SETTINGS, Config
from molgan.sweep.runner import (
    _clear,
    _final_evaluation,
    _write_result,
    locked,
    output_to,
    summarize,
)
from molgan.sweep.spec import NOT_HASHED, StudySpec

PACKABLE = (MEMBER_SEED, *MEMBER_SETTINGS)


def pack_key(cfg: Config) -> str:
    """Equal for two runs that can be members of one population."""
    settings = dataclasses.asdict(cfg)
    shared = {k: v for k, v in settings.items() if k not in PACKABLE and k not in NOT_HASHED}
    return json.dumps(shared, sort_keys=True, default=str)


def pack_config(cfgs: list[Config], packs: Path) -> Config:
    """The population of ``cfgs`` (compatible runs): member k has ``cfgs[k]``'s seed and
    per-member settings; named by the hash of its members' run names, in order."""
    if len({pack_key(c) for c in cfgs}) != 1:
        raise ValueError("only runs that differ in seed and per-member settings share a pack")
    base = cfgs[0]
    own = {MEMBER_SEED: tuple(c.seed for c in cfgs)}
    for name in MEMBER_SETTINGS:
        values = tuple(getattr(c, name) for c in cfgs)
        if len(set(values)) > 1:
            own[name] = values
    return dataclasses.replace(
        base,
        members=len(cfgs),
        member_settings=own,
        out_dir=str(packs),
        name=pack_name(cfgs),
        resume=False,
    )


def pack_name(cfgs: list[Config]) -> str:
    """The folder name of the population of ``cfgs``: the hash of its members' run names."""
    digest = hashlib.sha256(" ".join(c.name for c in cfgs).encode()).hexdigest()[:12]
    return f"pack-{digest}"


def _finished(pack_dir: Path) -> bool:
    """The pack's checkpoint is at a step where training stopped (every member done)."""
    ckpt = pack_dir / rundir.CKPT
    if not ckpt.is_file():
        return False
    step = checkpoint.read(ckpt)["step"]
    rows = rundir.read_log(pack_dir)
    return any(r.get("event") == "stop" and "member" not in r and r["step"] == step for r in rows)


def _member_rows(rows: list[dict], k: int) -> list[dict]:
    """Member k's log rows as a single run's (no ``member`` field); events of the whole pack
    (resumes, the final stop) included."""
    out = []
    for row in rows:
        if row.get("member", k) != k:
            continue
        out.append({key: v for key, v in row.items() if key != "member"})
    return out


def _split(pack: Config, cfgs: list[Config], spec: StudySpec, diverged: str = "") -> list[dict]:
    """Each member's run folder and result, from the finished pack (``diverged``: why every
    member's loss became non-finite, if it did)."""
    pack_dir = Path(pack.out_dir) / pack.name
    rows = rundir.read_log(pack_dir)
    results = []
    for k, cfg in enumerate(cfgs):
        run_dir = Path(cfg.out_dir) / cfg.name
        run_dir.mkdir(parents=True, exist_ok=True)
        settings = dataclasses.asdict(cfg) | {"packed_in": str(pack_dir), "member": k}
        rundir.write_config(run_dir, settings)
        tmp = run_dir / (rundir.LOG + ".tmp")
        tmp.write_text("".join(json.dumps(r) + "\n" for r in _member_rows(rows, k)))
        os.replace(tmp, run_dir / rundir.LOG)
        if (pack_dir / rundir.CKPT).is_file():  # (a pack that diverged at once has none)
            checkpoint.export(pack_dir / rundir.CKPT, run_dir / "model.pt", member=k)
        if (pack_dir / f"best-member{k}.pt").is_file():
            shutil.copyfile(pack_dir / f"best-member{k}.pt", run_dir / "best.pt")
        result = summarize(run_dir, spec, None)
        own = [r for r in rows if r.get("event") == "stop" and r.get("member") == k]
        result["stop"] = own[-1]["reason"] if own else result["stop"]
        result["packed_in"], result["member"] = str(pack_dir), k
        if diverged or "non-finite" in (result["stop"] or ""):
            result["stop"], result["final"] = f"diverged: {diverged or result['stop']}", {}
        elif spec.evaluate and not (result["stop"] or "").startswith("pruned"):
            model = checkpoint.load(pack_dir / rundir.CKPT, member=k)
            result["final"] = _final_evaluation(model, cfg, spec)
        _write_result(run_dir, result)
        results.append(result)
    return results


def run_pack(cfgs: list[Config], spec: StudySpec, root: Path, reports=None) -> list[dict]:
    """Train (or resume, or reuse) the population of ``cfgs`` and give each its run folder and
    result, as ``run_trial`` does for one. ``reports[k](step, metrics) -> reason or None``:
    after each evaluation of member k (e.g. Optuna's pruner; a reason stops that member)."""
    from molgan.train import TrainingError, train

    pack = pack_config(cfgs, root / "packs")
    pack_dir = Path(pack.out_dir) / pack.name
    with contextlib.ExitStack() as held:
        held.enter_context(locked(Path(pack.out_dir) / f"{pack.name}.lock"))
        for cfg in sorted(cfgs, key=lambda c: c.name):  # one trainer per configuration
            held.enter_context(locked(Path(cfg.out_dir) / f"{cfg.name}.lock"))
        done = [Path(c.out_dir) / c.name / "result.json" for c in cfgs]
        if all(p.is_file() for p in done):
            return [json.loads(p.read_text()) for p in done]
        ckpt = pack_dir / rundir.CKPT
        diverged = ""
        with output_to(pack_dir / rundir.OUTPUT):
            if not _finished(pack_dir):
                if pack_dir.exists() and not ckpt.is_file():
                    _clear(pack_dir)  # killed before its first checkpoint: start afresh
                run = dataclasses.replace(pack, resume=ckpt.is_file())

                def callback(step, scores, member):
                    return reports[member](step, scores) if reports else None

                try:
                    train(run, explicit=("threads",), callback=callback)
                except TrainingError as err:  # every member diverged
                    diverged = str(err)
            return _split(pack, cfgs, spec, diverged)
