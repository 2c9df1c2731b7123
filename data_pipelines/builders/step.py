"""Step-level critique records: the index of the first wrong step, -1 if every step is right."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from data_pipelines.builders.base import BUILDERS, Builder, metadata
from data_pipelines.schema import Record, StepRecord
from data_pipelines.sources.base import RowError


@BUILDERS.register("step")
@dataclass
class StepBuilder(Builder):
    """Step-labelled solutions (ProcessBench, PRM800K) -> step records, labels kept as given.

    Args:
        max_steps: rows with more steps are quarantined (long solutions blow up prompts).

    >>> row = {"question": "1+1+1?", "steps": ["1+1=3", "3+1=4"], "label": 0,
    ...        "final_answer_correct": False, "gold_answer": "3"}
    >>> StepBuilder().build("r0", row, seed=0).label
    0
    """

    max_steps: int = 100

    task = "step"
    shapes = ("steps",)

    def build(self, row_id: str, data: dict[str, Any], seed: int) -> Record:
        steps = data["steps"]
        if not all(isinstance(s, str) for s in steps):
            raise RowError("steps must all be strings")
        if len(steps) > self.max_steps:
            raise RowError(f"{len(steps)} steps (max_steps is {self.max_steps})")
        source = data.get("source_name", "")
        subset = (data.get("extra") or {}).get("subset")
        return StepRecord(
            id=row_id,
            source=f"{source}/{subset}" if subset else source,
            question=data["question"],
            steps=list(steps),
            label=data["label"],
            gold_answer=data.get("gold_answer"),
            verifier="source",
            metadata=metadata(data, final_answer_correct=data.get("final_answer_correct")),
        )

    def summary(self, records: Sequence[Record]) -> tuple[dict[str, Any], str]:
        n = len(records)
        erroneous = sum(r.label >= 0 for r in records)
        mean_steps = sum(len(r.steps) for r in records) / n if n else 0.0
        return (
            {"erroneous": erroneous, "correct": n - erroneous, "mean_steps": mean_steps},
            f"## Steps\n\n{erroneous:,} solutions with an error, {n - erroneous:,} without; "
            f"{mean_steps:.1f} steps on average.",
        )
