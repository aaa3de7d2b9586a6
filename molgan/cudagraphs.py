"""CUDA graphs for the training steps: each step function is recorded once and replayed, so a
step costs a few launches instead of ~1,000 (a MolGAN step is launch-bound on a GPU).

``Graphed(fn)`` calls ``fn(*tensors)`` eagerly for its first ``warmup`` calls (on a side stream,
as CUDA graph capture asks), then records it into a graph whose inputs are static copies of the
tensors, and from then on copies each call's tensors into them and replays. The step functions
are graph-safe: no host synchronisation, shapes fixed, Adam ``capturable``, randomness from
torch's default CUDA generator (which graphs advance as eager calls do). Torch only.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

import torch


class Graphed:
    """``fn(*tensors) -> outputs`` on CUDA, recorded once and replayed.

    Args:
        fn: a graph-safe function of CUDA tensors; its outputs (any nesting of tuples, lists
            and dicts of tensors) are the graph's static outputs, overwritten by each replay.
        name: for the message when recording fails (then ``fn`` runs eagerly from then on).
        warmup: eager calls before recording.
    """

    def __init__(self, fn: Callable, name: str = "step", warmup: int = 3) -> None:
        self.fn, self.name, self.warmup = fn, name, warmup
        self.calls = 0
        self.graph: torch.cuda.CUDAGraph | None = None
        self.inputs: list[torch.Tensor] = []
        self.outputs = None
        self.failed = False

    def __call__(self, *tensors: torch.Tensor):
        if self.failed:
            return self.fn(*tensors)
        if self.graph is None and self.calls < self.warmup:
            self.calls += 1
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                out = self.fn(*tensors)
            torch.cuda.current_stream().wait_stream(side)
            return out
        if self.graph is None:
            try:
                self._record(tensors)
            except RuntimeError as err:  # fall back to eager steps, saying why once
                first = (str(err).strip().splitlines() or ["?"])[0][:160]
                print(f"note: CUDA graph of the {self.name} not used ({first})", file=sys.stderr)
                self.failed, self.graph = True, None
                torch.cuda.synchronize()
                return self.fn(*tensors)
        for static, value in zip(self.inputs, tensors, strict=True):
            if static is not value:
                static.copy_(value)
        self.graph.replay()
        return self.outputs

    def _record(self, tensors) -> None:
        self.inputs = [t.clone() for t in tensors]
        graph = torch.cuda.CUDAGraph()
        torch.cuda.synchronize()
        with torch.cuda.graph(graph):
            self.outputs = self.fn(*self.inputs)
        self.graph = graph
