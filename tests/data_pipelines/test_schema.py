"""Records validate what reward functions rely on: labels, types, sizes, and a round trip."""

from __future__ import annotations

import pytest

from data_pipelines.schema import (
    AdversarialRecord,
    PairwiseRecord,
    PointwiseRecord,
    RecordError,
    ReferenceRecord,
    StepRecord,
    record_from_row,
)


def pointwise(**kw):
    base = dict(id="r", source="s", question="q", response="r", label="correct")
    return PointwiseRecord(**{**base, **kw})


def pairwise(**kw):
    base = dict(id="r", source="s", question="q", response_a="a", response_b="b", label="A", swapped=False)
    return PairwiseRecord(**{**base, **kw})


GOOD = [
    pointwise(),
    pairwise(label="B", swapped=True, images=["img.png"]),
    StepRecord(id="r", source="s", question="q", steps=["a", "b"], label=-1),
    ReferenceRecord(
        id="r",
        source="s",
        question="q",
        reference="x",
        candidate="y",
        same_policy=False,
        reference_model="A",
        candidate_model="B",
    ),
    AdversarialRecord(id="r", source="s", question="q", tests=["assert f(1) == 1"], entry_point="f"),
]


@pytest.mark.parametrize("record", GOOD, ids=lambda r: r.task)
def test_good_records_validate_and_round_trip(record):
    record.validate()
    row = record.to_row()
    assert row["task"] == record.task
    assert record_from_row(row) == record


@pytest.mark.parametrize(
    "record, reason",
    [
        (pointwise(label="Correct"), "label must be one of"),
        (pointwise(question="   "), "question is empty"),
        (pointwise(response=3), "response must be a string"),
        (pointwise(response="x" * 300_001), "response is 300,001 characters"),
        (pointwise(response="bad \ud800 surrogate"), "not valid Unicode"),
        (pointwise(metadata="[1]"), "metadata must be a JSON object"),
        (pointwise(metadata="{oops"), "metadata must be a JSON string"),
        (pairwise(label="B", swapped=False), "label and swapped disagree"),
        (pairwise(swapped=0), "swapped must be one of"),
        (pairwise(label="C"), "label must be one of"),
        (StepRecord(id="r", source="s", question="q", steps=["a"], label=1), "outside [-1, 0]"),
        (StepRecord(id="r", source="s", question="q", steps=[], label=-1), "non-empty list"),
        (StepRecord(id="r", source="s", question="q", steps=["a"], label=True), "label must be an int"),
        (
            ReferenceRecord(
                id="r",
                source="s",
                question="q",
                reference="x",
                candidate="y",
                same_policy=True,
                reference_model="A",
                candidate_model="B",
            ),
            "same_policy disagrees",
        ),
        (AdversarialRecord(id="r", source="s", question="q"), "needs tests or facts"),
    ],
)
def test_bad_records_name_their_problem(record, reason):
    with pytest.raises(RecordError, match=reason.replace("[", r"\[")):
        record.validate(max_chars=300_000)


def test_unknown_task_is_rejected():
    with pytest.raises(RecordError, match="unknown task 'judge'"):
        record_from_row({"task": "judge"})
