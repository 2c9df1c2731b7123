r"""Verdict rewards: did the critic's verdict match the label? TRL's reward signature throughout.

Every reward here reads completions with :func:`critics.judging.tasks.read_verdict` (so the
anti-hacking rules hold for all of them, with the row's judged texts and question as ``quoted``), and takes:

- ``max_completion_tokens``: a completion whose ``completion_ids`` are at least this long was cut
  off by the generation limit and gets 0.0 (``None``: no check).
- ``require_critique``: a bare ``\boxed{...}`` without critique text gets 0.0.
- ``require_think``: a completion without a ``<think>...</think>`` block gets 0.0.
- ``max_chars``: a longer completion gets 0.0.

A step index past the row's last step (when the ``steps`` column is present) is not a valid verdict.

A row whose ``label`` is None, or whose ``task`` the reward does not judge, gets ``None`` ("not
applicable"); a malformed label in the data raises. Inside a trainer each reward also logs the share
of completions with a valid verdict as ``<reward name>/valid_verdict``.

>>> completions = [[{"role": "assistant", "content": r"Step 1 is wrong. \boxed{Incorrect}"}],
...                [{"role": "assistant", "content": r"\boxed{Correct} or \boxed{Incorrect}"}]]
>>> verdict_reward(None, completions, label=["incorrect", "correct"], task=["pointwise"] * 2)
[1.0, 0.0]
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from critics.judging.tasks import VERDICT_TASKS, read_verdict, task
from critics.judging.verdicts import Verdict
from critics.rewards.base import REWARDS, completion_text, reward_rows


@dataclass(frozen=True, kw_only=True)
class _VerdictReward:
    """Shared options and the TRL entry point; subclasses score one parsed verdict."""

    max_completion_tokens: int | None = None
    require_critique: bool = False
    require_think: bool = False
    max_chars: int | None = None

    TASK: ClassVar[str | None] = None  # the one task judged; None: every verdict task
    NEEDS_LABEL: ClassVar[bool] = True
    __name__: ClassVar[str] = "verdict_reward"

    def __post_init__(self) -> None:
        for name in ("max_completion_tokens", "max_chars"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
                raise ValueError(f"{name} must be a positive int or None, got {value!r}")

    def __call__(
        self,
        prompts: Any,
        completions: list[Any],
        *,
        label: list[Any] | None = None,
        completion_ids: list[list[int]] | None = None,
        **kwargs: Any,
    ) -> list[float | None]:
        n = len(completions)
        rows = reward_rows(n, {**kwargs, "label": label if label is not None else [None] * n})
        ids = completion_ids if completion_ids is not None and len(completion_ids) == n else [None] * n
        scored = [self.score(completion_text(c), row, i) for c, row, i in zip(completions, rows, ids)]
        _log_valid_share(kwargs.get("log_metric"), self.__name__, [ok for _, ok in scored])
        return [reward for reward, _ in scored]

    def score(self, text: str, row: dict[str, Any], ids: list[int] | None = None) -> tuple[float | None, bool | None]:
        """``(reward, verdict is valid)`` for one completion; ``(None, None)`` if not applicable."""
        name = self.row_task(row)
        if name is None or (self.NEEDS_LABEL and row.get("label") is None):
            return None, None
        if self.max_completion_tokens is not None and ids is not None and len(ids) >= self.max_completion_tokens:
            return 0.0, False
        verdict = read_verdict(
            text,
            {**row, "task": name},
            max_chars=self.max_chars,
            require_critique=self.require_critique,
            require_think=self.require_think,
        )
        return self.reward(verdict, row, name), verdict.ok

    def row_task(self, row: dict[str, Any]) -> str | None:
        """The row's task if this reward judges it, else None."""
        name = row.get("task", self.TASK)
        if name is None:
            raise ValueError(f"{self.__name__} needs a 'task' column to know how to read verdicts")
        if name not in VERDICT_TASKS or (self.TASK is not None and name != self.TASK):
            return None
        return name

    def reward(self, verdict: Verdict, row: dict[str, Any], task_name: str) -> float:
        """The reward for one parsed verdict of a row this reward judges."""
        raise NotImplementedError


def _log_valid_share(log_metric: Callable[[str, float], None] | None, name: str, oks: list[bool | None]) -> None:
    judged = [ok for ok in oks if ok is not None]
    if callable(log_metric) and judged:
        log_metric(f"{name}/valid_verdict", sum(judged) / len(judged))


@REWARDS.register("format")
@dataclass(frozen=True, kw_only=True)
class FormatReward(_VerdictReward):
    r"""1.0 if the completion holds one valid verdict for its task (the same verdict may repeat) and
    any think block is well formed, else 0.0. Needs no label; ``task`` fixes the task for datasets
    without a ``task`` column.

    >>> FormatReward(require_think=True)(None, [r"<think>B cites a source.</think>\boxed{B}", r"\boxed{B}"],
    ...                                  task=["pairwise", "pairwise"])
    [1.0, 0.0]
    """

    task: str | None = None

    NEEDS_LABEL: ClassVar[bool] = False
    __name__: ClassVar[str] = "format_reward"

    def row_task(self, row: dict[str, Any]) -> str | None:
        name = row.get("task", self.task)
        if name is None:
            raise ValueError("format_reward needs a 'task' column or FormatReward(task=...)")
        return name if name in VERDICT_TASKS else None

    def reward(self, verdict: Verdict, row: dict[str, Any], task_name: str) -> float:
        return float(verdict.ok)


@REWARDS.register("pointwise_verdict")
@dataclass(frozen=True, kw_only=True)
class PointwiseVerdictReward(_VerdictReward):
    r"""1.0 if the verdict matches ``label`` (``correct``/``incorrect``), else 0.0.

    >>> PointwiseVerdictReward(require_critique=True)(None, [r"\boxed{Correct}", r"All steps check out. \boxed{Correct}"],
    ...                                                label=["correct", "correct"])
    [0.0, 1.0]
    """

    TASK: ClassVar[str | None] = "pointwise"
    __name__: ClassVar[str] = "pointwise_verdict_reward"

    def reward(self, verdict: Verdict, row: dict[str, Any], task_name: str) -> float:
        return float(verdict.ok and verdict.value == task(task_name).label(row["label"]))


@REWARDS.register("pairwise")
@dataclass(frozen=True, kw_only=True)
class PairwiseReward(_VerdictReward):
    r"""LLaVA-Critic-R1's pairwise reward: ``accuracy_weight * accuracy + format_weight * format``.

    >>> PairwiseReward()(None, [r"A is vague. \boxed{B}", r"\boxed{A}", "B, I think"], label=["B", "B", "B"])
    [1.0, 0.1, 0.0]

    With ``position_consistency`` (J1) accuracy is paid only when the verdict is right in both
    orders: the batch holds each pair in both orders (columns ``pair_id`` and ``order``, 0 or 1:
    ``critic_rl``'s ``both_orders``), and the k-th completion of one order is paired with the k-th
    of the other (``order_partners``). A critic that always answers A is right in exactly one order
    of every pair, so it earns the format reward only:

    >>> consistent = PairwiseReward(position_consistency=True)
    >>> consistent(None, [r"\boxed{A}", r"\boxed{A}", r"\boxed{A}", r"\boxed{B}"], label=["A", "B", "A", "B"],
    ...            pair_id=["p", "p", "p", "p"], order=[0, 1, 0, 1])
    [0.1, 0.1, 1.0, 1.0]
    """

    accuracy_weight: float = 0.9
    format_weight: float = 0.1
    position_consistency: bool = False

    TASK: ClassVar[str | None] = "pairwise"
    __name__: ClassVar[str] = "pairwise_reward"

    def __call__(self, prompts: Any, completions: list[Any], **kwargs: Any) -> list[float | None]:
        if not self.position_consistency:
            return super().__call__(prompts, completions, **kwargs)
        plain = dataclasses.replace(self, accuracy_weight=1.0, format_weight=0.0, position_consistency=False)
        right = plain(prompts, completions, **kwargs)
        quiet = {k: v for k, v in kwargs.items() if k != "log_metric"}
        valid = dataclasses.replace(plain, format_weight=1.0, accuracy_weight=0.0)(prompts, completions, **quiet)
        partners = order_partners(kwargs.get("pair_id"), kwargs.get("order"), len(completions))
        return [
            None
            if r is None
            else self.accuracy_weight * float(r == 1.0 and right[j] == 1.0) + self.format_weight * float(v)
            for r, v, j in zip(right, valid, partners)
        ]

    def reward(self, verdict: Verdict, row: dict[str, Any], task_name: str) -> float:
        accuracy = verdict.ok and verdict.value == task(task_name).label(row["label"])
        return self.accuracy_weight * accuracy + self.format_weight * verdict.ok


def order_partners(pair_ids: list[Any] | None, orders: list[Any] | None, n: int) -> list[int]:
    """For each completion, the index of its partner: the completion of the same pair in the other
    order with the same rank among that order's completions. ``ValueError`` when the columns are
    missing or a pair's two orders do not have equally many completions in the batch.

    >>> order_partners(["x", "y", "x", "y", "x", "x"], [0, 0, 1, 1, 0, 1], 6)
    [2, 3, 0, 1, 5, 4]
    """
    if pair_ids is None or orders is None or len(pair_ids) != n or len(orders) != n:
        raise ValueError(
            "position_consistency needs the columns pair_id and order in the batch: train with critic_rl's "
            "both_orders: true, which puts each pair in both orders into one generation batch"
        )
    ranks: dict[tuple[Any, int], list[int]] = {}
    for i, (pair, order) in enumerate(zip(pair_ids, orders)):
        if order not in (0, 1):
            raise ValueError(f"order must be 0 or 1, got {order!r}")
        ranks.setdefault((pair, int(order)), []).append(i)
    out = [0] * n
    for (pair, order), indices in ranks.items():
        other = ranks.get((pair, 1 - order), [])
        if len(other) != len(indices):
            raise ValueError(
                f"pair {pair!r} has {len(indices)} completions in order {order} and {len(other)} in the other "
                "order in this batch: both orders of a pair must be generated together (critic_rl's both_orders, "
                "one process, an even number of prompts per generation batch)"
            )
        for i, j in zip(indices, other):
            out[i] = j
    return out


@REWARDS.register("step_index")
@dataclass(frozen=True, kw_only=True)
class StepIndexReward(_VerdictReward):
    r"""1.0 for the labelled first wrong step (``-1``: none), else 0.0, or with ``distance_shaping``
    ``s`` in [0, 1) partial credit ``s ** |predicted - label|`` when both the prediction and the label
    name a step (never across ``-1``: "no error" and "error at step k" earn nothing for each other).

    >>> StepIndexReward(distance_shaping=0.5)(None, [r"\boxed{2}", r"\boxed{3}", r"\boxed{-1}", r"\boxed{9}"],
    ...                                       label=[2, 2, 2, 2], steps=[["s"] * 4] * 4)
    [1.0, 0.5, 0.0, 0.0]
    """

    distance_shaping: float = 0.0

    TASK: ClassVar[str | None] = "step"
    __name__: ClassVar[str] = "step_index_reward"

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0.0 <= self.distance_shaping < 1.0:
            raise ValueError(f"distance_shaping must be in [0, 1), got {self.distance_shaping!r}")

    def reward(self, verdict: Verdict, row: dict[str, Any], task_name: str) -> float:
        label = task(task_name).label(row["label"])
        if not verdict.ok:
            return 0.0
        if verdict.value == label:
            return 1.0
        if verdict.value == -1 or label == -1:
            return 0.0
        return self.distance_shaping ** abs(verdict.value - label)


@REWARDS.register("listwise")
@dataclass(frozen=True, kw_only=True)
class ListwiseReward(_VerdictReward):
    r"""DeepSeek-GRM's rule-based reward (SPCT's online RL): ``right`` (+1) when the scores single out
    the labelled best response (``critics.judging.tasks.listwise_correct``: a strict, unique argmax;
    for one response, its side of the threshold), ``wrong`` (-1) otherwise: a wrong pick, a tie, no
    valid score list, or a judgment cut off by the generation limit (it must not beat a wrong one).
    Add ``format`` beside it for the format reward.

    >>> rows = {"task": ["listwise"] * 4, "responses": [["3+4=7", "3+4=8"]] * 4, "label": [0] * 4}
    >>> ListwiseReward()(None, [r"\boxed{9, 2}", r"\boxed{2, 9}", r"\boxed{5, 5}", r"\boxed{9}"], **rows)
    [1.0, -1.0, -1.0, -1.0]
    """

    right: float = 1.0
    wrong: float = -1.0

    TASK: ClassVar[str | None] = "listwise"
    __name__: ClassVar[str] = "listwise_reward"

    def score(self, text: str, row: dict[str, Any], ids: list[int] | None = None) -> tuple[float | None, bool | None]:
        reward, ok = super().score(text, row, ids)
        return (self.wrong, ok) if ok is False else (reward, ok)  # a cut-off judgment included

    def reward(self, verdict: Verdict, row: dict[str, Any], task_name: str) -> float:
        return self.right if task(task_name).correct(verdict, row) else self.wrong


@REWARDS.register("verdict")
@dataclass(frozen=True, kw_only=True)
class VerdictReward(_VerdictReward):
    r"""One reward for a mixed dataset: each row is scored by its ``task``'s verdict reward
    (pointwise, pairwise with its weights, step with its shaping); other tasks get None.

    >>> VerdictReward()(None, [r"\boxed{Correct}", r"\boxed{A}", r"\boxed{-1}", "ok"],
    ...                 label=["correct", "B", "-1", "x"], task=["pointwise", "pairwise", "step", "reference"])
    [1.0, 0.1, 1.0, None]
    """

    accuracy_weight: float = 0.9
    format_weight: float = 0.1
    distance_shaping: float = 0.0
    _by_task: dict[str, _VerdictReward] = field(init=False, repr=False, compare=False)

    __name__: ClassVar[str] = "verdict_reward"

    def __post_init__(self) -> None:
        super().__post_init__()
        common = {
            "max_completion_tokens": self.max_completion_tokens,
            "require_critique": self.require_critique,
            "require_think": self.require_think,
            "max_chars": self.max_chars,
        }
        object.__setattr__(
            self,
            "_by_task",
            {
                "pointwise": PointwiseVerdictReward(**common),
                "pairwise": PairwiseReward(
                    accuracy_weight=self.accuracy_weight, format_weight=self.format_weight, **common
                ),
                "step": StepIndexReward(distance_shaping=self.distance_shaping, **common),
            },
        )

    def reward(self, verdict: Verdict, row: dict[str, Any], task_name: str) -> float:
        return self._by_task[task_name].reward(verdict, row, task_name)


format_reward = FormatReward()
pointwise_verdict_reward = PointwiseVerdictReward()
pairwise_reward = PairwiseReward()
step_index_reward = StepIndexReward()
verdict_reward = VerdictReward()
