"""Pairwise critique records: which of two responses is better, in a seeded random order."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from data_pipelines.builders.base import BUILDERS, Builder, metadata, seeded_unit
from data_pipelines.schema import PairwiseRecord, Record
from data_pipelines.sources.base import RowError


@BUILDERS.register("pairwise")
@dataclass
class PairwiseBuilder(Builder):
    """Preference pairs -> pairwise records with the preferred response at A or B.

    A critic that learns "the answer is usually A" learns nothing, so the order is drawn from
    the seed. With ``balance`` (the default) exactly half the records (rounded down) are
    swapped, chosen by a seeded permutation; without it each record flips its own seeded coin.
    Either way the draw depends only on the seed and the record id, so it is the same in every
    process and on every rebuild.

    >>> b = PairwiseBuilder()
    >>> rows = [(f"r{i}", {"question": "q", "chosen": "good", "rejected": "bad", "subset": None})
    ...         for i in range(4)]
    >>> recs = b.finalize([b.build(i, d, seed=0) for i, d in rows], seed=0)
    >>> sorted(r.label for r in recs)
    ['A', 'A', 'B', 'B']
    >>> all((r.response_b if r.swapped else r.response_a) == "good" for r in recs)
    True
    """

    balance: bool = True

    task = "pairwise"
    shapes = ("preference", "image_preference")

    def build(self, row_id: str, data: dict[str, Any], seed: int) -> Record:
        if data["chosen"] == data["rejected"]:
            raise RowError("chosen and rejected are identical")
        source = data.get("source_name", "")
        if data.get("subset"):
            source = f"{source}/{data['subset']}"
        record = PairwiseRecord(
            id=row_id,
            source=source,
            question=data["question"],
            response_a=data["chosen"],
            response_b=data["rejected"],
            label="A",
            swapped=False,
            images=list(data.get("images") or []),
            gold_answer=None,
            verifier="source",
            metadata=metadata(data, subset=data.get("subset")),
        )
        if not self.balance and seeded_unit(seed, row_id) < 0.5:
            record = swap(record)
        return record

    def finalize(self, records: list[Record], seed: int) -> list[Record]:
        if not self.balance:
            return records
        order = sorted(range(len(records)), key=lambda i: seeded_unit(seed, records[i].id))
        to_swap = set(order[: len(records) // 2])
        return [swap(r) if i in to_swap else r for i, r in enumerate(records)]

    def summary(self, records: Sequence[Record]) -> tuple[dict[str, Any], str]:
        n = len(records)
        share_a = sum(r.label == "A" for r in records) / n if n else float("nan")
        return (
            {"position_balance": {"A": share_a, "B": 1 - share_a if n else float("nan")}},
            f"## Position balance\n\nPreferred response at A: {share_a:.1%}, at B: {1 - share_a:.1%}.",
        )


def swap(record: PairwiseRecord) -> PairwiseRecord:
    """The same pair with A and B exchanged (and the label and ``swapped`` flag flipped)."""
    return dataclasses.replace(
        record,
        response_a=record.response_b,
        response_b=record.response_a,
        label="B" if record.label == "A" else "A",
        swapped=not record.swapped,
    )
