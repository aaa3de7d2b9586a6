"""What a training run keeps around its loop: where it resumes, when it saves, its best
checkpoints, stopped members, signals and the progress line. ``molgan.train`` runs the steps;
a ``RunState`` decides, after each step, whether to log, evaluate, save or stop.

A single run is a population of one: every record is per member, and a single run's checkpoint
holds the one member's records where earlier versions put them (``best`` a dict, ``metrics``
the member's scores), so that both kinds of file read back the same way.
"""

from __future__ import annotations

import math
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import torch

from molgan import checkpoint, metrics, monitor, rundir
from molgan.config import Config
from molgan.population import Freezer, Population

# After each evaluation, per running member k: callback(step, metrics, member=k) -> a reason to
# stop (str or True), or None.
Callback = Callable[..., "str | bool | None"]


class Interrupted(RuntimeError):
    """SIGINT/SIGTERM during training: a checkpoint of the current step was written."""

    def __init__(self, message: str, step: int, signal_name: str = "SIGINT"):
        super().__init__(message)
        self.step, self.signal_name = step, signal_name

    @property
    def exit_code(self) -> int:
        """The shell's code for a process ended by this signal: 128 + its number."""
        return 128 + int(getattr(signal, self.signal_name, signal.SIGINT))


class Signals:
    """Turns the first SIGINT/SIGTERM into a flag the loop checks after each step (a second
    one acts at once, as usual). Only in the main thread, where Python delivers signals."""

    def __init__(self) -> None:
        self.received: str | None = None
        self._old: dict = {}

    def __enter__(self) -> Signals:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                if signal.getsignal(sig) is signal.SIG_IGN:
                    continue  # e.g. SIGINT of a background job: it stays ignored
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        self.received = signal.Signals(signum).name
        for sig, old in self._old.items():
            signal.signal(sig, old)

    def __exit__(self, *exc) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)


class RunState:
    """The bookkeeping of one training run (``K`` members) between its steps.

    Args:
        cfg: the run's settings.
        run_dir: its folder (``ckpt.pt``, ``best*.pt``, ``log.jsonl``).
        population: the members being trained.
        opts: their optimisers (saved in checkpoints; restored here on resume).
        blob: the checkpoint resumed from, or ``None`` for a new run.
        schedule: ``(total steps, steps per epoch, steps between evaluations, RL's first step)``.
        evaluate: ``evaluate(k, model) -> metrics`` of member ``k`` as a single model.
        callback: see ``molgan.train.train``.
        extra: more plain data each checkpoint stores (e.g. ``rl_from``).
    """

    def __init__(
        self,
        cfg: Config,
        run_dir: Path,
        population: Population,
        opts: dict,
        blob: dict | None,
        schedule: tuple[int, int, int, int],
        evaluate: Callable[[int, object], dict],
        callback: Callback | None = None,
        extra: dict | None = None,
    ) -> None:
        self.cfg, self.run_dir, self.population, self.opts = cfg, run_dir, population, opts
        self.total, self.steps_per_epoch, self.eval_every, self.rl_from = schedule
        self.evaluate, self.callback, self.extra = evaluate, callback, dict(extra or {})
        self.K, self.ckpt = population.members, run_dir / rundir.CKPT
        self.device = population.device
        self.start, self.latest = 0, {}  # latest: the newest (K,) statistic of each name
        self.scores: list[dict] = [{} for _ in range(self.K)]  # each member's last evaluation
        self.stopped: dict[int, str] = {}  # member -> why it stopped
        self.best: list[dict] = [{} for _ in range(self.K)]  # best.pt records
        if blob is not None:
            self._restore(blob)
        self.freezer = Freezer(population)
        for k in self.stopped:
            self.freezer.freeze(k)
        self.saved_step = self.start if blob is not None else None
        self.saved_time = self.t0 = self.t_last = time.monotonic()
        self.last_done = self.start
        self.signals, self.log, self.bar = Signals(), None, None

    def _restore(self, blob: dict) -> None:
        """Optimiser, RNG and bookkeeping of a training checkpoint (weights: already loaded)."""
        self.start, stored = checkpoint.restore(blob, self.opts, self.device)
        scores = stored.get("members", [stored]) if self.K > 1 else [stored]
        self.scores = [{k: v for k, v in m.items() if k.startswith("score/")} for m in scores]
        self.latest = {k: torch.tensor(v) for k, v in blob.get("stats", {}).items()}
        best = blob.get("best", {})
        single = self.K == 1
        self.best = [dict(best)] if single else [dict(b) for b in best] or self.best
        self.stopped = {int(k): v for k, v in blob.get("stopped", {}).items()}

    # --- the run's life ---

    def __enter__(self) -> RunState:
        self.signals.__enter__()
        self.log = open(self.run_dir / rundir.LOG, "a")
        if self.cfg.progress and sys.stderr.isatty():
            from tqdm.auto import tqdm

            self.bar = tqdm(
                total=self.total,
                initial=self.start,
                desc=self.cfg.run_name,
                dynamic_ncols=True,
                file=sys.stderr,
            )
        return self

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.close()
        self.log.close()
        self.signals.__exit__(*exc)

    def emit(self, line: str) -> None:
        """A line on stderr (above the progress bar when there is one)."""
        if self.bar is not None:
            self.bar.write(line)
        else:
            print(line, file=sys.stderr, flush=True)

    def mark_resume(self, changes: list[str]) -> None:
        """A resume leaves its mark (and what it changed) in the log."""
        mark = {"step": self.start, "event": "resume"} | ({"changes": changes} if changes else {})
        rundir.write_row(self.log, mark)

    # --- after each step ---

    def needs_host(self, done: int, now: float) -> bool:
        """Whether the statistics must be complete after step ``done`` at time ``now`` (a
        report, a signal or a timed checkpoint comes next): a pending V step is then taken."""
        reports = self._reports(done)
        return reports or bool(self.signals.received) or self._checkpoint_due(now)

    def _reports(self, done: int) -> bool:
        every = done % self.cfg.log_every == 0 or done % self.eval_every == 0
        return every or done == self.total

    def _checkpoint_due(self, now: float) -> bool:
        minutes = self.cfg.ckpt_minutes
        return bool(minutes) and now - self.saved_time >= 60 * minutes

    def after_step(self, done: int, now: float) -> str:
        """Log, evaluate, save and stop as step ``done`` at time ``now`` asks (the clock reading
        ``needs_host`` saw: one for every decision of a step). Returns why the run stops ("" =
        it goes on). Raises ``Interrupted`` after a signal (with a checkpoint of this step) and
        ``TrainingError`` when a single run's statistics are no longer finite."""
        if self.bar is not None:
            self.bar.update(1)
        reason = ""
        if self._reports(done):
            reason = self._report(done, now)
        elif self._checkpoint_due(now):
            self._check_finite(done)
            self.save(done)
        if reason:
            rundir.write_row(self.log, {"step": done, "event": "stop", "reason": reason})
            self.emit(reason)
            return reason
        if self.signals.received:
            self._check_finite(done)
            if self.saved_step != done:
                self.save(done)
            raise Interrupted(
                f"{self.signals.received} at step {done}/{self.total}: checkpoint written to "
                f"{self.ckpt}; continue with --name {self.cfg.run_name} --resume",
                done,
                self.signals.received,
            )
        return ""

    def _check_finite(self, done: int) -> None:
        monitor.check_finite(self.latest, self.K, done, self.saved_step, self.ckpt, self.stopped)

    def _report(self, done: int, now: float) -> str:
        """A log step: rows of every running member, an evaluation when due, best.pt, the
        callback, the checkpoint, the progress line and the reasons to stop."""
        cfg, K = self.cfg, self.K
        values = monitor.per_member(self.latest, K)
        for k in monitor.diverged(values, self.stopped):
            if K == 1:
                monitor.finite(values[0], done, self.saved_step, self.ckpt)  # raises
            self.stop_member(k, f"stopped: {monitor.nonfinite(values[k])} at step {done}", done)
        if len(self.stopped) == K and all("non-finite" in r for r in self.stopped.values()):
            monitor.finite(values[0], done, self.saved_step, self.ckpt)  # every member diverged
        common = {
            "step": done,
            "epoch": done / self.steps_per_epoch,
            "time/it_per_s": (done - self.last_done) / max(now - self.t_last, 1e-9),
            "time/elapsed_s": now - self.t0,
            "time/eta_s": (now - self.t0) / max(done - self.start, 1) * (self.total - done),
        }
        self.t_last, self.last_done = now, done
        timed_out = cfg.time_limit and (now - self.t0) / 60 >= cfg.time_limit
        evaluated = done % self.eval_every == 0 or done == self.total or timed_out
        rows = []
        for k in range(K):
            if k in self.stopped:
                continue
            row = values[k] | common | {"member": k}  # one row shape for K ≥ 1
            if evaluated:
                self.scores[k] = self.evaluate(k, self.population.member(k))
                row |= self.scores[k]
            rows.append(row)
            rundir.write_row(self.log, row)  # before the checkpoint: a kill between loses nothing
        reason = self._after_evaluation(done) if evaluated else ""
        line = monitor.progress_line(rows, K)
        if self.bar is not None:
            self.bar.set_postfix_str(line.split(" | ", 1)[1][:80])
        if done % cfg.log_every == 0 or evaluated:
            self.emit(line)
        for row in rows:
            k = row.get("member", 0)
            why = monitor.stop_reason(cfg, row, self.scores[k], False, done, self.rl_from)
            if why and K > 1 and k not in self.stopped:
                self.stop_member(k, why, done)
            elif why:
                reason = reason or why
        if K > 1 and len(self.stopped) == K:
            reason = reason or "every member stopped"
        if timed_out:
            reason = reason or f"time limit of {cfg.time_limit} min reached at step {done}"
        return reason

    def _after_evaluation(self, done: int) -> str:
        """best.pt, the callback and the checkpoint after an evaluation. A population asks the
        callback about each running member before the checkpoint (a true answer stops that
        member); a single run asks once the checkpoint is written (a true answer stops it)."""
        for k in range(self.K):
            if k not in self.stopped:
                self.keep_best(k, done)
        for k in range(self.K) if self.callback is not None and self.K > 1 else ():
            asked = k not in self.stopped and self.callback(done, dict(self.scores[k]), member=k)
            if asked:
                why = asked if isinstance(asked, str) else "stopped by callback"
                self.stop_member(k, why, done)
        self.save(done)
        if self.callback is not None and self.K == 1:
            asked = self.callback(done, dict(self.scores[0]), member=0)
            if asked:
                return asked if isinstance(asked, str) else "stopped by callback"
        return ""

    # --- records and checkpoints ---

    def save(self, step: int) -> None:
        """The training checkpoint (``ckpt.pt``) of this step."""
        single = self.K == 1
        extra = {
            "rng": checkpoint.rng_state(self.device),
            "stats": {k: _tolist(v) for k, v in self.latest.items()},
            **self.extra,
            "best": self.best[0] if single else self.best,
            "stopped": {str(k): v for k, v in self.stopped.items()},
        }
        scores = self.scores[0] if single else {"members": self.scores}
        checkpoint.save(self.ckpt, self.population, self.opts, step, scores, extra)
        self.saved_step, self.saved_time = step, time.monotonic()

    def keep_best(self, k: int, step: int) -> None:
        """best.pt (member k of a population: best-member<k>.pt, a single model) = the
        checkpoint of the best evaluation by ``best_metric`` (written before ckpt.pt, so a kill
        between the two redoes the same comparison on resume)."""
        metric = self.cfg.best_metric
        if not metric:
            return
        best = self.best[k]
        sign = -1.0 if metric.startswith("-") else 1.0
        value = sign * metrics.metric_value(metric.lstrip("-"), self.scores[k])
        if math.isfinite(value) and (not best or value > best["value"]):
            best.update(metric=metric, value=value, step=step)
            if self.K == 1:
                path, blob = self.run_dir / "best.pt", {"best": best}
                checkpoint.save(path, self.population, self.opts, step, self.scores[0], blob)
            else:
                path = self.run_dir / f"best-member{k}.pt"
                model = self.population.member(k)
                checkpoint.save(path, model, None, step, self.scores[k], {"best": best})

    def stop_member(self, k: int, reason: str, step: int) -> None:
        """Member ``k`` stops (frozen where it is) while the others train on."""
        self.stopped[k] = reason
        self.freezer.freeze(k)
        rundir.write_row(self.log, {"step": step, "event": "stop", "reason": reason, "member": k})
        self.emit(f"member {k}: {reason}")


def _tolist(value) -> float | list[float]:
    """A statistic for the checkpoint: a float for one member, else one per member."""
    values = torch.as_tensor(value).detach().float().cpu().flatten().tolist()
    return values[0] if len(values) == 1 else values
