"""What every benchmark of ``critics eval`` shares: the item and request it yields, loading with a
quarantine, the seeded stratified sample behind ``--limit``, and the row readers.

A benchmark item becomes one or more ``Request``s: the record a critic judges (``payload``, the
fields of a pointwise, pairwise or step record) and the verdict a perfect critic gives
(``expected``, never sent; the oracle tests read it). Each item carries a ``key`` unique within its
benchmark (the row's position and id in the files), under which its judgments are saved, so a
resumed run finds them whatever sample it draws.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from data_pipelines.registry import Registry
from data_pipelines.sources import SOURCES
from data_pipelines.sources.base import RowError, is_local, read_hub, read_local

BENCHMARKS: Registry[type] = Registry("benchmark")


@dataclass
class Request:
    """One critic call: the record it judges, and the verdict a perfect critic gives."""

    payload: dict[str, Any]
    expected: Any = None


@dataclass
class Item:
    """One benchmark item: its id, subset, requests, what scoring needs (``info``), and the key its
    judgments are saved under (set by ``Benchmark.load``)."""

    id: str
    subset: str
    requests: list[Request]
    info: dict[str, Any] = field(default_factory=dict)
    key: str = ""


class Benchmark:
    """Base: ``load`` reads items (and quarantines bad rows), ``score`` turns verdicts into metrics.

    Args:
        path: a local file or folder (None: the hub copy).
        limit: items to evaluate, a seeded sample stratified by subset (None: all).
        scalar: the critic is a scalar reward model (pointwise requests, scores compared).
        seed: the seed of the ``limit`` sample.
    """

    name: ClassVar[str] = ""
    scalar_ok: ClassVar[bool] = True  # a scalar reward model can be evaluated on it
    needs_actor: ClassVar[bool] = False  # scoring asks an actor to refine (``critiques`` and ``actor`` set first)

    def __init__(self, path: str | None = None, limit: int | None = None, scalar: bool = False, seed: int = 0):
        if scalar and not self.scalar_ok:
            raise ValueError(f"{self.name} needs a generative critic (verdicts), not a scalar reward model")
        self.path, self.limit, self.scalar, self.seed = path, limit, scalar, seed
        self.critiques: list[list[str]] = []  # per item, per request: the critique text (``needs_actor``)
        self.actor: Any = None

    def load(self) -> tuple[list[Item], list[dict[str, Any]]]:
        """``(items, quarantine)``: every row becomes an item or a quarantine entry with its reason;
        with ``limit``, the items are ``stratified_sample``'s (in file order)."""
        items, quarantine = [], []
        for position, (rid, data, error) in enumerate(self.rows()):
            if error is None:
                try:
                    item = self.item(rid, data, len(items))
                except RowError as exc:
                    error = str(exc)
                else:
                    item.key = f"{position}:{rid}"
                    items.append(item)
                    continue
            quarantine.append({"id": rid, "reason": error})
        return stratified_sample(items, self.limit, self.seed), quarantine

    def rows(self) -> Iterator[tuple[str, dict[str, Any] | None, str | None]]:
        """``(id, row, error)`` from the benchmark's source."""
        raise NotImplementedError

    def item(self, rid: str, row: dict[str, Any], index: int) -> Item:
        """One row as an item (``index``: its place among the usable rows); ``RowError`` if unusable."""
        raise NotImplementedError

    def score(self, items: list[Item], verdicts: list[list[Any]]) -> dict[str, Any]:
        """Metrics from one (voted) verdict or score per request of each item."""
        raise NotImplementedError

    def breakdown(self, items: list[Item], verdicts: list[list[Any]]) -> dict[str, Any]:
        """What the plots show: a confusion table, and accuracy by the better answer's position."""
        return {}


def stratified_order(subsets: Sequence[str], seed: int) -> list[int]:
    """Indices in a seeded order in which every prefix holds each subset in proportion to its size.

    Each subset is shuffled with the seed, and its k-th member ranked at ``(k + 0.5) / size``
    (Sainte-Laguë's divisors); ties between subsets go to a seeded draw. So the first N indices
    are a stratified sample for every N, and a larger N only adds items: a resumed run with a
    larger ``--limit`` keeps every item it judged.

    >>> order = stratified_order(["a"] * 6 + ["b"] * 2, seed=0)
    >>> sorted("ab"[i >= 6] for i in order[:4])
    ['a', 'a', 'a', 'b']
    >>> order == stratified_order(["a"] * 6 + ["b"] * 2, seed=0) != stratified_order(["a"] * 6 + ["b"] * 2, seed=1)
    True
    """
    rng = random.Random(seed)
    groups: dict[str, list[int]] = {}
    for index, name in enumerate(subsets):
        groups.setdefault(name, []).append(index)
    ranked = []
    for name in sorted(groups):
        members = groups[name]
        rng.shuffle(members)
        tie = rng.random()
        ranked += [((k + 0.5) / len(members), tie, index) for k, index in enumerate(members)]
    return [index for *_, index in sorted(ranked)]


def stratified_sample(items: list[Item], limit: int | None, seed: int) -> list[Item]:
    """The first ``limit`` items of ``stratified_order`` by subset, in their file order (all of them
    when ``limit`` is None or not smaller)."""
    if limit is None or limit >= len(items):
        return items
    chosen = set(stratified_order([item.subset for item in items], seed)[:limit])
    return [item for n, item in enumerate(items) if n in chosen]


def source_rows(name: str, path: str | None, **options) -> Iterator[tuple[str, dict | None, str | None]]:
    """``(id, row, error)`` of a ``data_pipelines`` source (its canonical shape)."""
    source = SOURCES.get(name)(path=path or "", **options)
    for row in source.rows():
        yield row.id, row.data, row.error


def raw_rows(path: str | None, hub: str, split: str) -> Iterator[tuple[str, dict | None, str | None]]:
    """``(id, row, error)`` of a local file or folder as it is written (ids ``file-stem/index``), or
    of the hub copy (ids ``split/index``)."""
    location = path or hub
    records = read_local(Path(location)) if is_local(location) else read_hub(location, None, split)
    for rid, raw, error, _ in records:
        yield rid, raw, error


def require(row: dict[str, Any], name: str, kind: type | tuple = str) -> Any:
    """``row[name]`` if it is a ``kind`` (a non-blank one for a string); ``RowError`` naming it if not."""
    value = row.get(name)
    if not isinstance(value, kind) or (isinstance(value, str) and not value.strip()):
        raise RowError(f"field '{name}' is missing or not {getattr(kind, '__name__', kind)}")
    return value
