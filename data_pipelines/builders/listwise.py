"""Listwise critique records: a question, N responses in a seeded order, the index of the best.

Three source shapes become one record kind (``data_pipelines.schema.ListwiseRecord``):

| rows | N | label | ``scores`` | ``best`` |
|---|---|---|---|---|
| preference pairs (``preference``) | 2 | the chosen's position | the pair's ratings, if the source has both | None |
| rated sets (``responses`` with ``scores``, UltraFeedback) | 2..16 | the unique top-rated position | the ratings | None (or the tied top, ``top_ties: best``) |
| RewardBench 2 (``responses`` with ``num_correct``) | 2..16 | a correct one's position (the first) | None | every correct position when there are several (Ties) |

A critic that learns "the best is usually first" learns nothing, so each record's responses are
put in an order drawn from the seed and the record id (the same in every process and rebuild);
``metadata.order`` keeps, per position, the response's index in the source row. The data card
reports how often the best sits at each position.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from data_pipelines.builders.base import BUILDERS, Builder, metadata, seeded_unit
from data_pipelines.schema import MAX_RESPONSES, ListwiseRecord, Record
from data_pipelines.sources.base import RowError


@BUILDERS.register("listwise")
@dataclass
class ListwiseBuilder(Builder):
    """Preference pairs, rated sets and best-of-N sets -> listwise records in a seeded order.

    Args:
        top_ties: a rated set whose top rating is shared: ``quarantine`` the row (its best is not
            unique), or keep it with every tied position in ``best`` (``label`` the first of them).
        shuffle: draw each record's order from the seed (false: the source's order, chosen first).
        max_responses: rows with more responses are quarantined (at most the schema's 16).

    >>> b = ListwiseBuilder()
    >>> pair = {"question": "2+2?", "chosen": "4", "rejected": "5", "subset": None,
    ...         "extra": {"score_chosen": 9.0, "score_rejected": 2.0}}
    >>> r = b.build("p0", pair, seed=0)
    >>> r.responses[r.label], r.scores[r.label], r.best
    ('4', 9.0, None)
    >>> rated = {"question": "q", "responses": ["a", "b", "c", "d"], "scores": [3.0, 9.0, 9.0, 1.0],
    ...          "num_correct": None, "subset": None}
    >>> b.build("u0", rated, seed=0)
    Traceback (most recent call last):
    ...
    data_pipelines.sources.base.RowError: top rating 9.0 is shared by responses 1 and 2: no unique best (top_ties: best keeps it)
    >>> r = ListwiseBuilder(top_ties="best").build("u0", rated, seed=0)
    >>> sorted(r.responses[i] for i in r.best), r.label == min(r.best)
    (['b', 'c'], True)
    >>> ties = {"question": "Name a primary colour", "responses": ["red", "blue", "green", "pink"],
    ...         "scores": None, "num_correct": 2, "subset": "Ties", "source_name": "rewardbench2"}
    >>> r = b.build("t0", ties, seed=1)
    >>> sorted(r.responses[i] for i in r.best), len(r.responses), r.source
    (['blue', 'red'], 4, 'rewardbench2/Ties')
    """

    top_ties: Literal["quarantine", "best"] = "quarantine"
    shuffle: bool = True
    max_responses: int = MAX_RESPONSES

    task = "listwise"
    shapes = ("preference", "responses")

    def __post_init__(self) -> None:
        if not 2 <= self.max_responses <= MAX_RESPONSES:
            raise ValueError(f"max_responses must lie in [2, {MAX_RESPONSES}], got {self.max_responses}")

    def build(self, row_id: str, data: dict[str, Any], seed: int) -> Record:
        responses, scores, correct = self._read(data)
        if len(responses) > self.max_responses:
            raise RowError(f"{len(responses)} responses (max_responses is {self.max_responses})")
        order = self._order(row_id, len(responses), seed)
        position = {source_index: pos for pos, source_index in enumerate(order)}
        best = sorted(position[i] for i in correct)
        source = data.get("source_name", "")
        if data.get("subset"):
            source = f"{source}/{data['subset']}"
        return ListwiseRecord(
            id=row_id,
            source=source,
            question=data["question"],
            responses=[responses[i] for i in order],
            label=best[0],
            scores=None if scores is None else [scores[i] for i in order],
            best=best if len(best) > 1 else None,
            gold_answer=None,
            verifier="source",
            metadata=metadata(data, subset=data.get("subset"), order=order),
        )

    def _read(self, data: dict[str, Any]) -> tuple[list[str], list[float] | None, list[int]]:
        """``(responses, scores, correct)`` in the source's order; ``correct``: the right picks."""
        if "chosen" in data:  # a preference pair
            if data["chosen"].strip() == data["rejected"].strip():
                raise RowError("chosen and rejected are identical")
            extra = data.get("extra") or {}
            pair = [extra.get("score_chosen"), extra.get("score_rejected")]
            scores = [float(s) for s in pair] if all(_number(s) for s in pair) else None
            if scores is not None and scores[0] < scores[1]:
                raise RowError(f"score_chosen {scores[0]} is below score_rejected {scores[1]}")
            correct = [0, 1] if scores is not None and scores[0] == scores[1] else [0]
            if len(correct) > 1 and self.top_ties == "quarantine":
                raise RowError(f"chosen and rejected share the rating {scores[0]}: no unique best")
            return [data["chosen"], data["rejected"]], scores, correct
        responses, scores, num_correct = data["responses"], data["scores"], data["num_correct"]
        if len(responses) < 2:
            raise RowError(f"{len(responses)} response(s): a listwise record here needs at least 2")
        if num_correct is not None:
            if not 1 <= num_correct < len(responses):
                raise RowError(f"num_correct {num_correct} leaves no correct or no incorrect response")
            return responses, _scores(scores, len(responses)), list(range(num_correct))
        if scores is None:
            raise RowError("the row has neither scores nor num_correct: nothing says which response is best")
        scores = _scores(scores, len(responses))
        top = max(scores)
        correct = [i for i, s in enumerate(scores) if s == top]
        if len(correct) > 1 and self.top_ties == "quarantine":
            tied = ", ".join(map(str, correct[:-1])) + f" and {correct[-1]}"
            raise RowError(f"top rating {top} is shared by responses {tied}: no unique best (top_ties: best keeps it)")
        return responses, scores, correct

    def _order(self, row_id: str, n: int, seed: int) -> list[int]:
        """Per position, the source index of the response shown there."""
        if not self.shuffle:
            return list(range(n))
        return sorted(range(n), key=lambda i: seeded_unit(seed, f"{row_id}#{i}"))

    def summary(self, records: Sequence[Record]) -> tuple[dict[str, Any], str]:
        """How often the best response sits at each position, per N."""
        by_n: dict[int, Counter] = {}
        for r in records:
            by_n.setdefault(len(r.responses), Counter())[r.label] += 1
        stats = {
            "label_position": {
                n: {pos: count / sum(c.values()) for pos, count in sorted(c.items())} for n, c in sorted(by_n.items())
            },
            "several_best": sum(r.best is not None for r in records),
            "rated": sum(r.scores is not None for r in records),
        }
        lines = ["## Position of the best response", "", "| N | records | share at each position |", "|---|---:|---|"]
        for n, shares in stats["label_position"].items():
            cells = ", ".join(f"{pos}: {share:.1%}" for pos, share in shares.items())
            lines.append(f"| {n} | {sum(by_n[n].values()):,} | {cells} |")
        lines += [
            "",
            f"Records with several correct responses (``best``): {stats['several_best']:,}; "
            f"with ratings (``scores``): {stats['rated']:,}.",
        ]
        return stats, "\n".join(lines)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value


def _scores(scores: list[Any] | None, n: int) -> list[float] | None:
    """The ratings as floats, checked against the number of responses (None stays None)."""
    if scores is None:
        return None
    if len(scores) != n:
        raise RowError(f"{len(scores)} scores for {n} responses")
    for i, value in enumerate(scores):
        if not _number(value):
            raise RowError(f"score {i} is not a number: {json.dumps(value, default=str)}")
    return [float(s) for s in scores]
