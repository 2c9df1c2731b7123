"""What every benchmark metric shares: id alignment, majority voting (``critics.judging.votes``), input checks and means.

``None`` stands for an invalid or missing output; inputs of different lengths and unknown values
raise ``ValueError``; an empty group's mean is ``nan``, not a made-up 0.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Hashable, Mapping, Sequence
from typing import Any, TypeVar

from critics.judging.votes import majority_vote  # noqa: F401 - voting's one home, re-exported for the metrics

T = TypeVar("T")


NAN = float("nan")


ALL = "all"  # the group name when a function is given no groups


def align_by_id(predictions: Mapping[Hashable, T], ids: Sequence[Hashable]) -> list[T | None]:
    """Order id-keyed predictions as the dataset is ordered, with ``None`` for each missing id.

    A missing prediction then counts as an invalid output. A prediction whose id is not in the
    dataset raises an error, because it means the predictions belong to another dataset.

    >>> align_by_id({"b": 1, "a": -1}, ["a", "b", "c"])
    [-1, 1, None]
    """
    known = set(ids)
    if len(known) != len(ids):
        raise ValueError("ids must be unique to align predictions by id")
    unknown = [key for key in predictions if key not in known]
    if unknown:
        raise ValueError(f"{len(unknown)} predictions have ids not in the dataset, e.g. {unknown[:3]!r}")
    return [predictions.get(key) for key in ids]


def check_lengths(**columns: Sequence[Any] | None) -> int:
    """The common length of the given (not None) columns; raise if they differ."""
    given = {name: len(column) for name, column in columns.items() if column is not None}
    if len(set(given.values())) > 1:
        sizes = ", ".join(f"{name}={size}" for name, size in given.items())
        raise ValueError(
            f"inputs differ in length ({sizes}); give one entry per item, "
            "None for a missing or invalid output (align_by_id builds such a list)"
        )
    return next(iter(given.values()))


def group_names(groups: Sequence[str] | None, n: int) -> list[str]:
    return [ALL] * n if groups is None else [str(name) for name in groups]


def check_step(value: Any, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < -1:
        raise ValueError(f"{name}: a step index is an int >= -1 (-1: no wrong step), got {value!r}")


def check_member(value: Any, allowed: Sequence[Any], name: str) -> None:
    if value not in allowed:
        raise ValueError(f"{name}: expected one of {list(allowed)}, got {value!r}")


def check_outcome(value: Any, name: str) -> bool:
    if value not in (True, False) or isinstance(value, float):
        raise ValueError(f"{name}: expected True, False or None, got {value!r}")
    return bool(value)


def group_rows(groups: Sequence[str]) -> dict[str, list[int]]:
    rows: dict[str, list[int]] = {}
    for i, name in enumerate(groups):
        rows.setdefault(name, []).append(i)
    return rows


def mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else NAN  # a nan among the values stays nan


def harmonic_mean(a: float, b: float, both_zero: float = 0.0) -> float:
    """``2ab / (a + b)``; ``both_zero`` when a and b are both 0 (0/0), ``nan`` when either is ``nan``.

    >>> harmonic_mean(0.5, 1.0), harmonic_mean(0.0, 0.0), harmonic_mean(0.0, 0.0, both_zero=NAN)
    (0.6666666666666666, 0.0, nan)
    """
    if math.isnan(a) or math.isnan(b):
        return NAN
    return both_zero if a + b == 0 else 2 * a * b / (a + b)
