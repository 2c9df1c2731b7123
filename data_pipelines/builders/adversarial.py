"""Adversarial records (RLAC): a prompt plus the validator spec a generator's output is checked by."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from data_pipelines.builders.base import BUILDERS, Builder, metadata
from data_pipelines.schema import AdversarialRecord, Record


@BUILDERS.register("adversarial")
@dataclass
class AdversarialBuilder(Builder):
    """Programming problems with tests and a reference solution -> adversarial records.

    Feed it one row per problem (HumanEval, MBPP), not a pool of samples.

    >>> row = {"question": "def f(x):", "program": "def f(x):\\n    return x", "tests": "assert f(1) == 1",
    ...        "entry_point": "f", "task_id": "t0", "model": "human", "reference_solution": None,
    ...        "group": "t0"}
    >>> AdversarialBuilder().build("r0", row, seed=0).reference_solution
    'def f(x):\\n    return x'
    """

    task = "adversarial"
    shapes = ("program",)

    def build(self, row_id: str, data: dict[str, Any], seed: int) -> Record:
        reference = data.get("reference_solution") or data["program"]
        return AdversarialRecord(
            id=row_id,
            source=data.get("source_name", ""),
            question=data["question"],
            tests=[data["tests"]],
            reference_solution=reference,
            entry_point=data.get("entry_point"),
            verifier="code",
            metadata=metadata(data),
        )
