"""The record types: the contract between the data side and the model side.

Records are template-free: they carry the raw fields (question, responses, steps, ...) and the
label columns that reward functions read by name. A recipe renders its own prompt at train time,
so one dataset serves every recipe. One task per record kind (see DESIGN.md):

| task | label column(s) |
|---|---|
| pointwise | ``label`` in {correct, incorrect} |
| pairwise | ``label`` in {A, B}, ``swapped`` |
| step | ``label`` = index of the first wrong step, -1 if none |
| listwise | ``label`` = index of the best response (one response: 0 good, -1 bad); ``scores``, ``best`` |
| reference | ``same_policy`` |
| adversarial | validator spec: ``tests``, ``reference_solution``, ``facts`` |
| polar_triple | none: ``positive`` shares the ``reference``'s policy, ``negative`` does not |
| polar_preference | none: ``chosen`` over ``rejected``, given the ``reference`` |

``source`` says where a row came from; ``verifier`` says how its label was computed.

>>> rec = PointwiseRecord(id="gsm8k:0", source="gsm8k_solutions", question="1+1?",
...                       response="2. A: 2", label="correct", gold_answer="2", verifier="source")
>>> rec.validate()
>>> rec.to_row()["task"]
'pointwise'
>>> PointwiseRecord(id="x", source="s", question="q", response="r", label="right").validate()
Traceback (most recent call last):
...
data_pipelines.schema.RecordError: label must be one of ['correct', 'incorrect'], got 'right'
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any, ClassVar

DEFAULT_MAX_CHARS = 200_000  # longer fields are almost always scraping accidents, not data


class RecordError(ValueError):
    """A record that breaks the schema; the message is the reason it was quarantined."""


@dataclass
class Record:
    """Columns every task shares."""

    id: str
    source: str
    question: str
    gold_answer: str | None = field(default=None, kw_only=True)
    verifier: str = field(default="source", kw_only=True)
    metadata: str = field(default="{}", kw_only=True)

    task: ClassVar[str] = ""
    text_fields: ClassVar[tuple[str, ...]] = ("id", "source", "question")
    list_fields: ClassVar[tuple[str, ...]] = ()  # fields holding lists of texts (``steps``, ``responses``)

    def validate(self, max_chars: int = DEFAULT_MAX_CHARS) -> None:
        """Raise ``RecordError`` naming the first problem; return None if the record is sound."""
        for name in self.text_fields:
            _check_text(name, getattr(self, name), max_chars)
        if self.gold_answer is not None:
            _check_text("gold_answer", self.gold_answer, max_chars, empty_ok=True)
        _check_text("verifier", self.verifier, 100)
        try:
            if not isinstance(json.loads(self.metadata), dict):
                raise RecordError("metadata must be a JSON object")
        except (TypeError, json.JSONDecodeError):
            raise RecordError("metadata must be a JSON string") from None
        self.check_label()

    def check_label(self) -> None:
        """Task-specific label checks."""

    def to_row(self) -> dict[str, Any]:
        """The record as a dataset row, with its ``task`` column."""
        return {"task": self.task, **dataclasses.asdict(self)}


def _check_text(name: str, value: Any, max_chars: int, empty_ok: bool = False) -> None:
    if not isinstance(value, str):
        raise RecordError(f"{name} must be a string, got {type(value).__name__}")
    if not empty_ok and not value.strip():
        raise RecordError(f"{name} is empty")
    if len(value) > max_chars:
        raise RecordError(f"{name} is {len(value):,} characters (limit {max_chars:,})")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise RecordError(f"{name} is not valid Unicode (lone surrogate)") from None


def _check_choice(name: str, value: Any, choices: list[Any]) -> None:
    if value not in choices or isinstance(value, bool) != any(isinstance(c, bool) for c in choices):
        raise RecordError(f"{name} must be one of {choices}, got {value!r}")


@dataclass
class PointwiseRecord(Record):
    """A question and one response, judged correct or incorrect."""

    response: str
    label: str

    task: ClassVar[str] = "pointwise"
    text_fields: ClassVar[tuple[str, ...]] = ("id", "source", "question", "response")
    LABELS: ClassVar[list[str]] = ["correct", "incorrect"]

    def check_label(self) -> None:
        _check_choice("label", self.label, self.LABELS)


@dataclass
class PairwiseRecord(Record):
    """A question and two responses; ``label`` names the better one after the order was drawn.

    ``swapped`` is True when the preferred response was moved to position B. ``images`` holds
    paths (or URLs) of images the question refers to, for multimodal critics.
    """

    response_a: str
    response_b: str
    label: str
    swapped: bool
    images: list[str] = field(default_factory=list, kw_only=True)

    task: ClassVar[str] = "pairwise"
    text_fields: ClassVar[tuple[str, ...]] = ("id", "source", "question", "response_a", "response_b")

    def check_label(self) -> None:
        _check_choice("label", self.label, ["A", "B"])
        _check_choice("swapped", self.swapped, [True, False])
        if (self.label == "B") != self.swapped:
            raise RecordError("label and swapped disagree: the preferred response is B iff swapped")
        if not isinstance(self.images, list) or not all(isinstance(p, str) for p in self.images):
            raise RecordError("images must be a list of strings")


@dataclass
class StepRecord(Record):
    """A question and a numbered solution; ``label`` is the first wrong step (0-based), -1 if none."""

    steps: list[str]
    label: int

    task: ClassVar[str] = "step"
    list_fields: ClassVar[tuple[str, ...]] = ("steps",)

    def check_label(self) -> None:
        if not isinstance(self.steps, list) or not self.steps:
            raise RecordError("steps must be a non-empty list of strings")
        for i, step in enumerate(self.steps):
            _check_text(f"steps[{i}]", step, DEFAULT_MAX_CHARS, empty_ok=True)
        if not isinstance(self.label, int) or isinstance(self.label, bool):
            raise RecordError(f"label must be an int, got {type(self.label).__name__}")
        if not -1 <= self.label < len(self.steps):
            raise RecordError(f"label {self.label} is outside [-1, {len(self.steps) - 1}]")


@dataclass
class ReferenceRecord(Record):
    """POLAR: a candidate judged against a reference; ``same_policy`` if one policy wrote both."""

    reference: str
    candidate: str
    same_policy: bool
    reference_model: str
    candidate_model: str

    task: ClassVar[str] = "reference"
    text_fields: ClassVar[tuple[str, ...]] = (
        "id",
        "source",
        "question",
        "reference",
        "candidate",
        "reference_model",
        "candidate_model",
    )

    def check_label(self) -> None:
        _check_choice("same_policy", self.same_policy, [True, False])
        if self.same_policy != (self.reference_model == self.candidate_model):
            raise RecordError("same_policy disagrees with reference_model/candidate_model")


@dataclass
class AdversarialRecord(Record):
    """RLAC: a prompt plus the validator spec that checks what a generator writes for it."""

    tests: list[str] = field(default_factory=list)
    reference_solution: str | None = None
    entry_point: str | None = None
    facts: list[str] = field(default_factory=list)

    task: ClassVar[str] = "adversarial"

    def check_label(self) -> None:
        if not self.tests and not self.facts:
            raise RecordError("an adversarial record needs tests or facts to validate against")
        for name in ("tests", "facts"):
            values = getattr(self, name)
            if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
                raise RecordError(f"{name} must be a list of strings")


RECORD_TYPES: dict[str, type[Record]] = {
    cls.task: cls for cls in (PointwiseRecord, PairwiseRecord, StepRecord, ReferenceRecord, AdversarialRecord)
}
TASKS = list(RECORD_TYPES)


def record_from_row(row: dict[str, Any]) -> Record:
    """Rebuild a typed record from a dataset row (the inverse of ``Record.to_row``)."""
    task = row.get("task")
    if task not in RECORD_TYPES:
        raise RecordError(f"unknown task {task!r} (valid: {', '.join(TASKS)})")
    cls = RECORD_TYPES[task]
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in row.items() if k in names})


@dataclass
class PolarTripleRecord(Record):
    """POLAR pre-training: a reference, a positive from the reference's own policy, a negative
    from another policy, for one prompt. The positive shares ``reference_model``.

    >>> PolarTripleRecord(id="x", source="s", question="q", reference="r", positive="p",
    ...                   negative="n", reference_model="A", negative_model="A").validate()
    Traceback (most recent call last):
    ...
    data_pipelines.schema.RecordError: negative_model must differ from reference_model (both 'A')
    """

    reference: str
    positive: str
    negative: str
    reference_model: str
    negative_model: str

    task: ClassVar[str] = "polar_triple"
    text_fields: ClassVar[tuple[str, ...]] = (
        "id",
        "source",
        "question",
        "reference",
        "positive",
        "negative",
        "reference_model",
        "negative_model",
    )

    def check_label(self) -> None:
        if self.reference_model == self.negative_model:
            raise RecordError(f"negative_model must differ from reference_model (both {self.reference_model!r})")


@dataclass
class PolarPreferenceRecord(Record):
    """POLAR fine-tuning: a reference (a human-preferred answer), then ``chosen`` over ``rejected``.

    >>> PolarPreferenceRecord(id="x", source="s", question="q", reference="r", chosen="c",
    ...                       rejected="r").validate()
    Traceback (most recent call last):
    ...
    data_pipelines.schema.RecordError: reference equals rejected: the label would contradict the reference
    """

    reference: str
    chosen: str
    rejected: str

    task: ClassVar[str] = "polar_preference"
    text_fields: ClassVar[tuple[str, ...]] = ("id", "source", "question", "reference", "chosen", "rejected")

    def check_label(self) -> None:
        if self.chosen.strip() == self.rejected.strip():
            raise RecordError("chosen and rejected are identical")
        if self.reference.strip() == self.rejected.strip():
            raise RecordError("reference equals rejected: the label would contradict the reference")


MAX_RESPONSES = 16  # a listwise item's responses: one prompt, one score each


@dataclass
class ListwiseRecord(Record):
    """A question and N >= 1 responses (DeepSeek-GRM, RewardBench 2); ``label`` is the best one's index.

    With one response, ``label`` 0 says it is good and -1 that it is bad. ``scores`` are per-response
    ratings where the data has them (UltraFeedback), ``best`` every index that counts as a right pick
    when several do (RewardBench 2's Ties); None: only ``label``.

    >>> rec = ListwiseRecord(id="x", source="s", question="2+2?", responses=["4", "5"], label=0)
    >>> rec.validate()
    >>> ListwiseRecord(id="x", source="s", question="q", responses=["a", "b"], label=-1).validate()
    Traceback (most recent call last):
    ...
    data_pipelines.schema.RecordError: label -1 (bad) is for one response; with 2 responses label must be in [0, 1]
    """

    responses: list[str]
    label: int
    scores: list[float] | None = None
    best: list[int] | None = None

    task: ClassVar[str] = "listwise"
    list_fields: ClassVar[tuple[str, ...]] = ("responses",)

    def validate(self, max_chars: int = DEFAULT_MAX_CHARS) -> None:
        if not isinstance(self.responses, list) or not self.responses:
            raise RecordError("responses must be a non-empty list of strings")
        if len(self.responses) > MAX_RESPONSES:
            raise RecordError(f"{len(self.responses)} responses (limit {MAX_RESPONSES})")
        for i, response in enumerate(self.responses):
            _check_text(f"responses[{i}]", response, max_chars)
        super().validate(max_chars)

    def check_label(self) -> None:
        n = len(self.responses)
        if not _is_int(self.label):
            raise RecordError(f"label must be an int, got {type(self.label).__name__}")
        if n == 1 and self.label not in (0, -1):
            raise RecordError(f"label must be 0 (good) or -1 (bad) for one response, got {self.label}")
        if n > 1 and not 0 <= self.label < n:
            detail = " (bad) is for one response;" if self.label == -1 else " is out of range:"
            raise RecordError(f"label {self.label}{detail} with {n} responses label must be in [0, {n - 1}]")
        if self.scores is not None:
            if not isinstance(self.scores, list) or len(self.scores) != n:
                raise RecordError(f"scores must be a list of {n} numbers (one per response) or null")
            for i, value in enumerate(self.scores):
                if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
                    raise RecordError(f"scores[{i}] must be a number, got {value!r}")
        if self.best is not None:
            if not isinstance(self.best, list) or not self.best:
                raise RecordError("best must be a non-empty list of response indices or null")
            for value in self.best:
                if not _is_int(value) or not 0 <= value < n:
                    raise RecordError(f"best holds {value!r}, not a response index in [0, {n - 1}]")
            if self.label not in self.best:
                raise RecordError(f"label {self.label} is not among best {self.best}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# the POLAR tasks join the table here, after the original five, whose order is unchanged
RECORD_TYPES.update({cls.task: cls for cls in (PolarTripleRecord, PolarPreferenceRecord, ListwiseRecord)})
TASKS[:] = list(RECORD_TYPES)
