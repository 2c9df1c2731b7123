"""What every builder shares.

A builder turns rows of one source shape into records of one task. ``build`` handles one row
and raises ``RowError`` with a reason for a row it cannot use (the build quarantines it); the
optional ``prepare`` sees every row first (for builders that pair rows up) and ``finalize`` sees
every record last (for dataset-level balancing). Builders are small picklable dataclasses so a
process pool can run them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from data_pipelines.registry import Registry
from data_pipelines.schema import Record
from data_pipelines.sources.base import RowError

BUILDERS: Registry[type[Builder]] = Registry("builder")

Item = tuple[str, dict[str, Any]]  # (row id, row data in the source's shape)


@dataclass
class Builder:
    """Base class; subclasses set ``task`` and ``shapes`` and implement ``build``."""

    task: ClassVar[str] = ""
    shapes: ClassVar[tuple[str, ...]] = ()  # source shapes this builder reads
    in_process: ClassVar[bool] = False  # True: the builder parallelises itself (e.g. sandbox pools)

    def prepare(self, items: Sequence[Item], seed: int) -> None:
        """See every usable row before building (default: nothing)."""

    def build(self, row_id: str, data: dict[str, Any], seed: int) -> Record:
        raise NotImplementedError

    def build_many(self, items: Sequence[Item], seed: int, workers: int = 1) -> list[Record | RowError]:
        """Build a chunk; each result is a record or the ``RowError`` that rejected its row."""
        out: list[Record | RowError] = []
        for row_id, data in items:
            try:
                out.append(self.build(row_id, data, seed))
            except RowError as exc:
                out.append(exc)
        return out

    def finalize(self, records: list[Record], seed: int) -> list[Record]:
        """See every record after building (default: unchanged)."""
        return records

    def summary(self, records: Sequence[Record]) -> tuple[dict[str, Any], str]:
        """Task-specific statistics and a markdown section for the data card (default: none)."""
        return {}, ""


def metadata(data: dict[str, Any], **more: Any) -> str:
    """The record's ``metadata`` JSON: the source's ``extra`` fields plus ``more``."""
    merged = {**(data.get("extra") or {}), **more}
    return json.dumps(merged, ensure_ascii=False, sort_keys=True, default=str)


def seeded_unit(seed: int, key: str) -> float:
    """A deterministic number in [0, 1) from a seed and a key, the same in every process.

    >>> seeded_unit(0, "a") == seeded_unit(0, "a") != seeded_unit(1, "a")
    True
    """
    digest = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64
