"""Reference records (POLAR): a candidate next to a reference from the same or another policy."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from data_pipelines.builders.base import BUILDERS, Builder, Item, metadata, seeded_unit
from data_pipelines.schema import Record, ReferenceRecord
from data_pipelines.sources.base import RowError


@BUILDERS.register("reference")
@dataclass
class ReferenceBuilder(Builder):
    """Responses to the same prompt by named policies -> (prompt, reference, candidate, same_policy).

    Every row becomes the candidate of one record. Its reference is another response to the same
    prompt: from the candidate's own policy with probability ``same_policy_rate`` (when that
    policy answered twice), otherwise from a different policy, falling back to whichever kind
    exists. A row with no other response to its prompt is quarantined.

    >>> rows = [("a1", {"question": "q", "solution": "x", "model": "A", "group": "g"}),
    ...         ("a2", {"question": "q", "solution": "y", "model": "A", "group": "g"}),
    ...         ("b1", {"question": "q", "solution": "z", "model": "B", "group": "g"})]
    >>> b = ReferenceBuilder()
    >>> b.prepare(rows, seed=0)
    >>> rec = b.build("b1", rows[2][1], seed=0)
    >>> rec.same_policy, rec.reference_model
    (False, 'A')
    """

    same_policy_rate: float = 0.5
    _groups: dict[str, list[tuple[str, str, str]]] = field(default_factory=dict, init=False, repr=False)

    task = "reference"
    shapes = ("solution", "program")

    def __post_init__(self) -> None:
        if not 0.0 <= self.same_policy_rate <= 1.0:
            raise ValueError(f"same_policy_rate must be in [0, 1], got {self.same_policy_rate}")

    def prepare(self, items: Sequence[Item], seed: int) -> None:
        groups: dict[str, list[tuple[str, str, str]]] = defaultdict(list)
        for row_id, data in items:
            if data.get("model"):
                groups[data["group"]].append((row_id, data["model"], _text(data)))
        self._groups = dict(groups)

    def build(self, row_id: str, data: dict[str, Any], seed: int) -> Record:
        model = data.get("model")
        if not model:
            raise RowError("row has no model name, so its policy is unknown")
        others = [r for r in self._groups.get(data["group"], []) if r[0] != row_id]
        same = [r for r in others if r[1] == model]
        different = [r for r in others if r[1] != model]
        want_same = seeded_unit(seed, row_id) < self.same_policy_rate
        pool = (same if want_same else different) or same or different
        if not pool:
            raise RowError("no other response to this prompt to serve as the reference")
        ref_id, ref_model, ref_text = pool[int(seeded_unit(seed + 1, row_id) * len(pool))]
        return ReferenceRecord(
            id=row_id,
            source=data.get("source_name", ""),
            question=data["question"],
            reference=ref_text,
            candidate=_text(data),
            same_policy=ref_model == model,
            reference_model=ref_model,
            candidate_model=model,
            gold_answer=data.get("gold_answer"),
            verifier="source",
            metadata=metadata(data, reference_id=ref_id),
        )

    def summary(self, records: Sequence[Record]) -> tuple[dict[str, Any], str]:
        same = sum(r.same_policy for r in records)
        models = sorted({r.candidate_model for r in records})
        return (
            {"same_policy": same, "different_policy": len(records) - same, "policies": models},
            f"## Policies\n\n{same:,} same-policy and {len(records) - same:,} different-policy "
            f"pairs over {len(models)} policies: {', '.join(models)}.",
        )


def _text(data: dict[str, Any]) -> str:
    return data["solution"] if "solution" in data else data["program"]
