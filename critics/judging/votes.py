r"""Test-time scaling: k sampled judgments of one item combined into one (DeepSeek-GRM, J1).

A critic spec with ``samples: k`` has ``judge`` draw k judgments of each item in one generation
call and vote (``spec.vote``; None: the item's task's default, its row in ``critics.judging.tasks``):

| vote | combines | for | the voted verdict | the voted score |
|---|---|---|---|---|
| ``sum`` | per-response score lists, added | listwise (default) | the summed list; best = its unique argmax | mean of the voters' scores |
| ``mean`` | per-response score lists (or scalar scores), averaged | listwise, scalar | the mean list | mean of the voters' scores |
| ``majority`` | verdicts, the most common | every boxed task (default but listwise) | the most common verdict | the first voter with it |
| ``meta`` | the ``keep`` samples a meta RM trusts most, then the task's default | listwise | as that vote | as that vote |

Invalid samples (no valid verdict) never vote; with none valid the item has no verdict (the most
common reason among the samples) and no score. A tie in ``majority`` goes to the verdict sampled
first (as ``Counter.most_common``, and ProcessBench's ``--use_voting``); a tie in ``meta``'s ranking
keeps the earlier sample. ``keep`` defaults to half the samples, at least one. The voted
``Critique`` carries its samples (``Critique.samples``) and the text of its first voter.

>>> combine([(7, 3), None, (6, 5), (9, 1)], "sum")
(22, 9)
>>> combine(["B", None, "A", "A", "B"], "majority")
'B'
>>> combine([[7, 3], [6, 5]], "mean")  # lists read back from JSON count as score lists
(6.5, 4.0)
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Sequence
from numbers import Real
from typing import Any

from critics.judging.tasks import task
from critics.judging.verdicts import Verdict, fail
from data_pipelines.registry import did_you_mean

VOTES = ("sum", "majority", "mean", "meta")
SCORE_VOTES = ("sum", "mean", "meta")  # what combines per-response scores, not verdict labels
UNSCORED = float("-inf")  # the meta score of a sample nobody scored: never kept first


def check_vote(method: Any, task_name: str | None = None) -> None:
    """``ValueError`` for a vote that is not one of ``VOTES``, or (given a task) that cannot combine
    that task's verdicts: ``sum``, ``mean`` and ``meta`` add scores, which verdict labels are not.

    >>> check_vote("summ")
    Traceback (most recent call last):
    ...
    ValueError: unknown vote 'summ' (did you mean 'sum'?)
    >>> check_vote("sum", "pairwise")
    Traceback (most recent call last):
    ...
    ValueError: vote 'sum' combines per-response scores (listwise items, scalar scores); pairwise verdicts vote by majority
    """
    if method not in VOTES:
        raise ValueError(f"unknown vote '{method}'{did_you_mean(str(method), VOTES)}")
    if task_name is not None and method in SCORE_VOTES and task(task_name).vote not in SCORE_VOTES:
        raise ValueError(
            f"vote '{method}' combines per-response scores (listwise items, scalar scores); "
            f"{task_name} verdicts vote by {task(task_name).vote}"
        )
    if task_name is not None and method == "meta" and task(task_name).normalize is None:
        raise ValueError(f"vote 'meta' ranks sampled judgments; a {task_name} item is scored, not judged in text")


def vote_method(method: str | None, task_name: str) -> str:
    """The vote an item of ``task_name`` gets: ``method``, else its task's default (checked)."""
    chosen = method or task(task_name).vote
    check_vote(chosen, task_name)
    return chosen


def majority_vote(verdicts: Sequence[Any]) -> Any:
    """The most common valid verdict (None: invalid); a tie goes to the verdict seen first.

    >>> majority_vote([None, "A", "B", "B", "A"]), majority_vote([None, None])
    ('A', None)
    """
    counts = Counter(_hashable(v) for v in verdicts if v is not None)
    return max(counts, key=counts.__getitem__) if counts else None  # max keeps the first of equals


def combine(values: Sequence[Any], method: str) -> Any:
    """One value from k samples' verdict values (None: an invalid sample, which does not vote):
    ``majority`` the most common; ``sum``/``mean`` the elementwise sum/mean of score lists, or of
    scalar scores; None when no sample is valid. ``meta`` is ``vote``'s and ``combine_meta``'s.
    ``ValueError`` for score lists of different lengths (samples of different items)."""
    check_vote(method)
    if method == "meta":
        raise ValueError("vote 'meta' needs the samples' meta RM scores: use vote() or combine_meta()")
    if method == "majority":
        return majority_vote(values)
    valid = [_hashable(v) for v in values if v is not None]
    if not valid:
        return None
    if all(isinstance(v, Real) and not isinstance(v, bool) for v in valid):
        total = sum(valid)
        return total if method == "sum" else total / len(valid)
    if not all(isinstance(v, tuple) for v in valid) or len({len(v) for v in valid}) != 1:
        raise ValueError(f"vote '{method}' adds score lists of one length, got {valid!r}")
    sums = tuple(sum(column) for column in zip(*valid))
    return sums if method == "sum" else tuple(s / len(valid) for s in sums)


def combine_meta(
    values: Sequence[Any], meta_scores: Sequence[float | None], task_name: str, keep: int | None = None
) -> Any:
    """``meta`` on saved verdict values (what ``critics eval`` keeps per sample): the ``keep`` valid
    values (not None) with the highest meta RM scores (None: unscored, never trusted first), then the
    task's default vote (``combine``). ``keep`` defaults to half of ``values``, at least 1.

    >>> combine_meta([(9, 2), (2, 9), None, (8, 3)], [0.9, 0.1, 5.0, 0.7], "listwise", keep=2)
    (17, 5)
    """
    trust = [UNSCORED if s is None else s for s in meta_scores]
    kept = _trusted([i for i, v in enumerate(values) if v is not None], trust, keep, len(values))
    return combine([values[i] for i in kept], task(task_name).vote)


def vote(
    samples: Sequence[Any],
    row: dict[str, Any],
    method: str | None = None,
    meta_scores: Sequence[float] | None = None,
    keep: int | None = None,
) -> Any:
    """Combine k sampled ``Critique``s of one item (``row``) into one (the module docstring's rules).

    Args:
        samples: the k judgments of the item (``critics.judging.judge.Critique``), in sampling order;
            the voted one is the same type (``dataclasses.replace`` of the voter whose text it shows).
        row: the item (its ``task`` picks the default vote and scores the voted verdict).
        method: one of ``VOTES``; None: the task's default.
        meta_scores: ``meta``: the meta RM's score of each sample (higher: more trusted).
        keep: ``meta``: how many valid samples vote (default: half of ``samples``, at least 1).
    """
    samples = list(samples)
    if not samples:
        raise ValueError("vote needs at least one sample")
    name = row.get("task")
    method = vote_method(method, name)
    voters = [i for i, c in enumerate(samples) if c.verdict.ok and c.score is not None]
    inner = method
    if method == "meta":
        voters, inner = _trusted(voters, meta_scores, keep, len(samples)), task(name).vote
    if not voters:
        reasons = Counter(c.verdict.reason for c in samples)
        return dataclasses.replace(
            samples[0], verdict=fail(reasons.most_common(1)[0][0]), score=None, samples=tuple(samples)
        )
    scalar = task(name).normalize is None
    values = [samples[i].score if scalar else samples[i].verdict.value for i in voters]
    value = combine(values, inner)
    scores = [samples[i].score for i in voters]
    if inner == "majority":
        first = next(i for i in voters if _hashable(samples[i].verdict.value) == value)
        score = samples[first].score
    else:
        first, score = voters[0], sum(scores) / len(scores)
    verdict = samples[voters[0]].verdict if scalar else Verdict(value, True, "ok")
    # the voter whose text is shown: what else it wrote (J1's per-response scores) comes with it
    return dataclasses.replace(samples[first], verdict=verdict, score=score, samples=tuple(samples))


def _trusted(voters: list[int], meta_scores: Sequence[float] | None, keep: int | None, k: int) -> list[int]:
    """The ``keep`` valid samples with the highest meta RM scores (ties: the earlier), in sampling order."""
    if meta_scores is None or len(meta_scores) != k:
        raise ValueError(f"vote 'meta' needs one meta RM score per sample ({k}); give the critic a meta RM")
    keep = max(1, k // 2) if keep is None else keep
    if not 1 <= keep <= k:
        raise ValueError(f"keep must be between 1 and the number of samples ({k}), got {keep}")
    ranked = sorted(voters, key=lambda i: -meta_scores[i])  # stable: equal scores keep sampling order
    return sorted(ranked[:keep])


def _hashable(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value
