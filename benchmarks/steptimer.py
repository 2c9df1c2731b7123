"""Timing helpers shared by the training benchmarks (imported as ``from steptimer import ...``)."""

from __future__ import annotations

import functools
import time

from transformers import TrainerCallback


class StepTimer(TrainerCallback):
    """Wall time of every optimizer step (synchronising CUDA first, when present)."""

    def __init__(self):
        self.times: list[float] = []
        self._start = 0.0

    def on_step_begin(self, args, state, control, **kwargs):
        synchronize()
        self._start = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        synchronize()
        self.times.append(time.perf_counter() - self._start)


class GenerateTimer:
    """Wraps ``model.generate`` in place and records the wall time of every call."""

    def __init__(self, model):
        self.times: list[float] = []
        inner = model.generate

        @functools.wraps(inner)
        def timed(*args, **kwargs):
            synchronize()
            start = time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                synchronize()
                self.times.append(time.perf_counter() - start)

        model.generate = timed


def synchronize() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()
