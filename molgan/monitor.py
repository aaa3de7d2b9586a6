"""Watching a run as it trains: per-member statistics, NaN/inf checks, why a run stops, and the
progress line. Torch only for turning statistics into floats; no training state lives here."""

from __future__ import annotations

import math
from pathlib import Path

import torch

from molgan.config import Config


class TrainingError(RuntimeError):
    """Training stopped on a non-finite loss; the last good checkpoint is kept."""


def per_member(stats: dict, K: int) -> list[dict[str, float]]:
    """Statistics of shape (K,) (or scalars) -> one dict of floats per member (one sync)."""
    if not stats:
        return [{} for _ in range(K)]
    names = list(stats)
    table = torch.stack([torch.as_tensor(stats[n]).detach().float().cpu().expand(K) for n in names])
    rows = table.t().tolist()  # (K, S)
    return [dict(zip(names, row, strict=True)) for row in rows]


def nonfinite(values: dict) -> str:
    return "non-finite " + ", ".join(k for k, v in values.items() if not math.isfinite(v))


def diverged(values: list[dict], stopped: dict) -> list[int]:
    """Members with a NaN/inf statistic that are not stopped yet."""
    return [
        k
        for k, row in enumerate(values)
        if k not in stopped and not all(math.isfinite(v) for v in row.values())
    ]


def check_finite(stats: dict, K: int, done: int, saved_step, ckpt_path: Path, stopped) -> None:
    """Before an unscheduled checkpoint: a single run stops on a NaN/inf (``TrainingError``);
    a population's diverged members are frozen at the next log step."""
    if K == 1:
        finite(per_member(stats, 1)[0], done, saved_step, ckpt_path)


def values_text(values) -> str:
    distinct = sorted(set(values))
    return str(distinct[0]) if len(distinct) == 1 else "/".join(f"{v:g}" for v in values)


def finite(values: dict, done: int, saved_step: int | None, ckpt_path: Path) -> dict[str, float]:
    """``values`` (floats) unchanged; raises ``TrainingError`` naming any NaN/inf entry."""
    bad = [k for k, v in values.items() if not math.isfinite(v)]
    if bad:
        kept = (
            f"last good checkpoint (step {saved_step}) kept at {ckpt_path}"
            if saved_step is not None
            else "no checkpoint was written"
        )
        raise TrainingError(f"non-finite {', '.join(bad)} at step {done}; {kept}")
    return values


def stop_reason(
    cfg: Config, values: dict, metrics: dict, timed_out, done: int, rl_from: int
) -> str:
    """Why training stops after this log step ("" = it goes on). The uniqueness stop watches
    for the collapse RL causes, so it acts only after the warm-up (``rl_from``): a WGAN-only
    generator starts below 2% unique and climbs (it stopped runs at epoch 1 otherwise)."""
    unique = metrics.get("score/unique")
    watching = cfg.early_stop_unique and done > rl_from and "score/valid" in values
    if watching and "score/unique" in metrics:
        if unique is None or not math.isfinite(unique):
            unique = 0.0  # no valid molecule: nothing unique either
        if unique < cfg.early_stop_unique:
            return f"early stop: uniqueness {unique:.3f} < {cfg.early_stop_unique}"
    if timed_out:
        return f"time limit of {cfg.time_limit} min reached at step {done}"
    return ""


def progress_line(rows: list[dict], K: int) -> str:
    """One progress line: a single run's losses and scores; a population's means over its
    running members, with the range of the scores. ``g`` is G's adversarial loss and ``rl`` its
    RL term (shown while RL is on), not their α-rescaled mix ``loss/g``: with λ 0.5 that mix is
    exactly 0 whenever the two have opposite signs (α = |L_WGAN| / |L_RL|)."""
    if not rows:
        return "every member stopped"
    names = {
        "loss/d": "d",
        "loss/wgan": "g",
        "loss/rl": "rl",
        "loss/v": "v",
        "loss/gp": "gp",
        "score/valid": "valid",
        "score/unique": "unique",
        "score/novel": "novel",
        "score/qed": "qed",
    }
    first = rows[0]
    parts = [f"step {first['step']}"] + ([f"{len(rows)}/{K} members"] if K > 1 else [])
    for key, short in names.items():
        values = [r[key] for r in rows if isinstance(r.get(key), float)]
        values = [v for v in values if math.isfinite(v)]
        if not values or (key == "loss/rl" and not any(values)):  # RL off: no rl column
            continue
        text = f"{short} {sum(values) / len(values):.3f}"
        if len(values) > 1 and key.startswith("score/"):
            text += f" ({min(values):.2f}-{max(values):.2f})"
        parts.append(text)
    speed = first["time/it_per_s"]
    rate = f"{speed:.0f} it/s" + (f" ({speed * len(rows):.0f} member-it/s)" if K > 1 else "")
    parts.append(f"{rate} | eta {first['time/eta_s'] / 60:.0f} min")
    return " | ".join(parts)
