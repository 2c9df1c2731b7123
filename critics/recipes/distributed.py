"""Several processes, one run: who writes, who waits, and how long a rank waits for the others.

A recipe started by ``torchrun`` or ``accelerate launch`` (``critics train CONFIG --nproc N``) runs
the same code on every rank. TRL shards the training data and averages the gradients; the rest is
here, on top of accelerate's ``PartialState``:

- ``start`` joins the process group before anything else touches it, with the collective timeout
  ``run.ddp_timeout`` (a rank that waits longer on a collective fails, and the launcher ends the
  run) and the gloo backend on a CPU.
- the main process alone builds data, writes checkpoints' final renames, ``final/``, cards,
  reports and plots; the others wait on a barrier (``main_first``, ``on_main``), then read.
- held-out evaluation runs once, on the main process, and every rank gets its result
  (``on_main``); under DeepSpeed ZeRO-3, where a forward pass is a collective, every rank runs it
  in step with the full weights gathered and the main process's result is kept.

One process (no launcher) is the same code with every barrier a no-op.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any, TypeVar

T = TypeVar("T")


def start(use_cpu: bool, timeout_s: float) -> Any:
    """Join the launcher's process group (gloo on a CPU) with ``timeout_s`` as the collective timeout.

    Call it first in a recipe's ``run``: the first ``PartialState`` made in a process sets up the
    group, and ``transformers.TrainingArguments`` later reuses it (on a CPU it would pass no timeout
    of its own). Without a launcher this is a one-process state.
    """
    from accelerate import PartialState

    if PartialState._shared_state:  # already joined (a staged recipe's second stage)
        return PartialState()
    return PartialState(cpu=use_cpu, timeout=timedelta(seconds=timeout_s))


def state() -> Any:
    """The process state; joins the launcher's group (``start``, default timeout) if nothing has yet."""
    from accelerate import PartialState

    if not PartialState._shared_state:
        import torch

        return start(use_cpu=not torch.cuda.is_available(), timeout_s=1800)
    return PartialState()


def is_main_process() -> bool:
    """Whether this is the process that writes (always true without a launcher)."""
    return state().is_main_process


def wait_for_everyone() -> None:
    """A barrier across ranks (a no-op in one process)."""
    state().wait_for_everyone()


@contextlib.contextmanager
def main_first() -> Iterator[bool]:
    """The main process runs the block first (builds data, fills caches), the others after it; yields
    whether this is the main process."""
    current = state()
    with current.main_process_first():
        yield current.is_main_process


def from_main(compute: Callable[[], T]) -> T:
    """``compute()`` on the main process only, its (picklable) result sent to every rank.

    For work that must happen once and agree everywhere: sampling a teacher's critiques, say.
    """
    current = state()
    if current.num_processes == 1:
        return compute()
    from accelerate.utils import broadcast_object_list

    box = [compute() if current.is_main_process else None]
    broadcast_object_list(box, from_process=0)
    return box[0]


def on_main(trainer: Any, compute: Callable[[], T]) -> T:
    """``compute()`` (held-out evaluation of ``trainer``'s model) once, on the main process; every
    rank returns its result. The others wait at a barrier meanwhile, so evaluation is never
    duplicated. Under DeepSpeed ZeRO-3 the model cannot run on one rank alone (every forward and
    ``generate`` step is a collective), so there every rank computes in step with the full weights
    gathered (as TRL generates) and the main process's result is the one returned."""
    current = state()
    if current.num_processes == 1:
        return compute()
    from transformers.integrations import is_deepspeed_zero3_enabled

    if not is_deepspeed_zero3_enabled():
        return from_main(compute)
    with _full_weights(trainer):
        result = compute()
    return from_main(lambda: result)


@contextlib.contextmanager
def _full_weights(trainer: Any) -> Iterator[None]:
    """ZeRO-3: every rank gathers the full weights and takes the engine's per-module hooks off while
    the model runs (TRL's ``unwrap_model_for_generation``), then puts them back."""
    import deepspeed
    from trl.models.utils import add_hooks, remove_hooks

    engine = trainer.model_wrapped  # the DeepSpeed engine once training started; before, the model
    with deepspeed.zero.GatheredParameters(list(trainer.model.parameters()), modifier_rank=None):
        remove_hooks(engine)  # a no-op before the engine exists
        try:
            yield
        finally:
            add_hooks(engine)
