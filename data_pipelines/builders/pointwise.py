"""Pointwise critique records: a question and one solution, judged correct or incorrect."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from data_pipelines.builders.base import BUILDERS, Builder, metadata
from data_pipelines.schema import PointwiseRecord, Record
from data_pipelines.sources.base import RowError
from data_pipelines.verifiers import VERIFIERS

DISAGREEMENT_SAMPLE = 10


@BUILDERS.register("pointwise")
@dataclass
class PointwiseBuilder(Builder):
    """Labelled solutions -> pointwise records; or unlabelled ones labelled by a verifier.

    Args:
        label_from: ``source`` keeps the dataset's own ``is_correct``; ``verifier`` computes the
            label from the gold answer (the record's ``verifier`` column then names it).
        verifier: registry key of the verifier (``math``, ``exact``, ``choice``).
        cross_check: with ``label_from: source``, also run the verifier and keep its verdict in
            metadata; the data card reports the agreement and a sample of disagreements.

    >>> row = {"question": "2+2?", "solution": "2+2=4\\nA: 4", "is_correct": None,
    ...        "gold_answer": "4", "model": "m", "group": "q0"}
    >>> PointwiseBuilder(label_from="verifier").build("r0", row, seed=0).label
    'correct'
    """

    label_from: Literal["source", "verifier"] = "source"
    verifier: str = "math"
    cross_check: bool = False

    task = "pointwise"
    shapes = ("solution",)

    def __post_init__(self) -> None:
        VERIFIERS.get(self.verifier)  # an unknown verifier fails at config time, not mid-build

    def build(self, row_id: str, data: dict[str, Any], seed: int) -> Record:
        extra: dict[str, Any] = {"model": data.get("model"), "group": data.get("group")}
        if self.label_from == "verifier" or self.cross_check:
            verdict = self._verify(data)
            extra.update(
                verifier_label=_label(verdict.correct),
                verifier_reason=verdict.reason,
                extracted_answer=verdict.extracted,
            )
        if self.label_from == "source":
            if data["is_correct"] is None:
                raise RowError("row has no is_correct label (use label_from: verifier)")
            label, verifier = _label(data["is_correct"]), "source"
        else:
            if verdict.correct is None:
                raise RowError(f"{self.verifier} verifier could not decide: {verdict.reason}")
            label, verifier = _label(verdict.correct), self.verifier
        return PointwiseRecord(
            id=row_id,
            source=data.get("source_name", ""),
            question=data["question"],
            response=data["solution"],
            label=label,
            gold_answer=data["gold_answer"],
            verifier=verifier,
            metadata=metadata(data, **extra),
        )

    def _verify(self, data: dict[str, Any]):
        if not data.get("gold_answer"):
            raise RowError(f"row has no gold_answer for the {self.verifier} verifier")
        return VERIFIERS.get(self.verifier)(data["solution"], data["gold_answer"])

    def summary(self, records: Sequence[Record]) -> tuple[dict[str, Any], str]:
        """With ``cross_check``: agreement between the source labels and the verifier's."""
        if not (self.cross_check and self.label_from == "source"):
            return {}, ""
        metas = [(r, json.loads(r.metadata)) for r in records]
        decided = [(r, m) for r, m in metas if m.get("verifier_label") is not None]
        disagree = [(r, m) for r, m in decided if m["verifier_label"] != r.label]
        rate = 1 - len(disagree) / len(decided) if decided else float("nan")
        stats = {
            "cross_check": {
                "verifier": self.verifier,
                "decided": len(decided),
                "undecided": len(metas) - len(decided),
                "disagreements": len(disagree),
                "agreement": rate,
            }
        }
        lines = [
            f"## Cross-check: source labels vs the `{self.verifier}` verifier",
            "",
            f"Agreement {rate:.2%} on {len(decided):,} rows the verifier decided "
            f"({len(metas) - len(decided):,} undecided, {len(disagree):,} disagreements).",
            "",
        ]
        if disagree:
            lines += ["| id | source label | verifier | gold | extracted |", "|---|---|---|---|---|"]
            for r, m in disagree[:DISAGREEMENT_SAMPLE]:
                lines.append(
                    f"| {r.id} | {r.label} | {m['verifier_label']} | {_cell(r.gold_answer)} "
                    f"| {_cell(m.get('extracted_answer'))} |"
                )
        return stats, "\n".join(lines)


def _label(correct: bool | None) -> str | None:
    return None if correct is None else ("correct" if correct else "incorrect")


def _cell(value: Any) -> str:
    text = "" if value is None else str(value).replace("|", "\\|").replace("\n", " ")
    return text[:60]
