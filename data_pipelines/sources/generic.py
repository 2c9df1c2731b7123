"""Generic local formats, for data a user (or ``critics demo``) wrote in our own row shapes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from data_pipelines.sources.base import SOURCES, RowError, Source, require


@SOURCES.register("solutions")
@dataclass
class SolutionsSource(Source):
    """JSONL/JSON rows with ``question``, ``solution`` and optional ``gold_answer``, ``is_correct``,
    ``model`` and ``group`` (solutions sharing a group answer the same question; default: the
    question text). Other fields are kept as metadata.

    >>> SolutionsSource(path="x.jsonl").convert({"question": "2+2?", "solution": "4", "is_correct": True})["group"]
    '2+2?'
    """

    shape = "solution"

    def convert(self, raw: dict[str, Any]) -> dict[str, Any]:
        question = require(raw, "question")
        is_correct = raw.get("is_correct")
        if is_correct is not None and not isinstance(is_correct, bool):
            raise RowError(f"field 'is_correct' should be bool, got {type(is_correct).__name__}")
        gold, model = raw.get("gold_answer"), raw.get("model")
        for key, value in (("gold_answer", gold), ("model", model)):
            if value is not None and not isinstance(value, str):
                raise RowError(f"field '{key}' should be str, got {type(value).__name__}")
        known = {"question", "solution", "gold_answer", "is_correct", "model", "group"}
        return {
            "question": question,
            "solution": require(raw, "solution"),
            "is_correct": is_correct,
            "gold_answer": gold,
            "model": model,
            "group": str(raw.get("group") or question),
            "extra": {k: v for k, v in raw.items() if k not in known},
        }
