r"""What each task means to a critic: one row per task, the one home of every task rule.

A row says which record fields the critic reads, which of them are judged (quoted against copied
verdicts, and cut first when a prompt is over its token budget), its template, how its verdict is
read and what a perfect critic answers, how a verdict becomes a score, and whether and how the
item can be judged in the other order. Adding a task is one row here plus its template in
``critics.judging.templates``; nothing else in the project branches on a task's name.

| task | the critic reads | verdict | score |
|---|---|---|---|
| ``pointwise`` | question, response | ``\boxed{Correct}`` / ``\boxed{Incorrect}`` | 1.0 / 0.0 |
| ``pairwise`` | question, response_a, response_b | ``\boxed{A}`` / ``\boxed{B}`` | preference for A: 1.0 / 0.0 |
| ``step`` | question, steps (from 0) | ``\boxed{k}``, ``\boxed{-1}`` if none | share of steps before the first wrong one |
| ``listwise`` | question, N >= 1 responses | ``\boxed{s1, ..., sN}``, integers 1..10 (DeepSeek-GRM) | first response's (s - 1) / 9 |
| ``reference`` | question, reference, response | none: a scalar (POLAR) | the model's score |
| ``adversarial`` | question, output, validator | one check in ``\boxed{}`` (``critics.judging.checks``) | none (a validator decides) |

A pairwise critic may also write a score per response beside its verdict, in J1's tags
(``<score_A>7</score_A> <score_B>3</score_B>``, integers 0..10): ``read_scores`` reads them when
present (``Critique.scores``), never requires them, and gives them only when they agree with the
verdict (its response strictly higher); nothing pays them otherwise.

>>> parse_verdict(r"The arithmetic in step 2 is wrong. \boxed{Incorrect}", "pointwise")
Verdict(value='incorrect', ok=True, reason='ok')
>>> parse_verdict("\\boxed{\u0421orrect}", "pointwise").reason
'invalid verdict'
>>> print(render({"task": "pairwise", "question": "Hi", "response_a": "Hello", "response_b": "Go away"},
...              style="compact")[-1]["content"])
A: Hello
B: Go away
Q: Hi
Better: A or B?
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from critics.judging import templates
from critics.judging.checks import parse_check
from critics.judging.verdicts import (
    Choices,
    Index,
    Normalizer,
    PointScores,
    ScoreList,
    TaggedScores,
    Verdict,
    fail,
    parse_boxed,
)
from data_pipelines.registry import did_you_mean

Row = dict[str, Any]


@dataclass(frozen=True)
class Task:
    """One task's rules (the module docstring's table).

    Args:
        name: the record's ``task`` value.
        fields: the string fields the critic reads.
        judged: the fields holding what is judged (strings, or lists of strings such as ``steps``).
        template: ``(row, style) -> user text``; None for a task read by a scalar layout.
        normalize: a box's content -> the verdict's value; None when the task has no boxed verdict.
        labels: the label values, as the parser returns them (None: any).
        label_column: the column holding the label.
        choices: the two verdict spellings whose probability a soft score compares (first = 1.0).
        lists: the judged fields that hold lists of strings (``steps``).
        swapped: for a task judged in both orders, the field pairs that trade places.
        system: whether the default styles open with the critic's system message.
        check: the verdict is an RLAC check (``critics.judging.checks``), of the row's ``validator`` kind.
        verdict_format: what the critic writes, in words (model cards, ``GET /spec``).
        alone: how ``reward_item`` makes one response the first judged field (None: the text itself).
        correct_rule: ``(verdict, row) -> bool``, whether a valid verdict is right for a labelled row
            (None: it equals the label).
        vote: how k sampled judgments of one item are combined by default (``critics.judging.votes``).
        scores: the per-response scores the critic may write beside its verdict (J1; ``read_scores``),
            one name per judged field, named as the verdicts that pick them.
    """

    name: str
    fields: tuple[str, ...]
    judged: tuple[str, ...]
    template: templates.Template | None = None
    normalize: Normalizer | None = None
    labels: tuple[Any, ...] | None = None
    label_column: str = "label"
    choices: tuple[str, str] | None = None
    lists: tuple[str, ...] = ()
    swapped: tuple[tuple[str, str], ...] = ()
    system: bool = True
    check: bool = False
    verdict_format: str = "a scalar score"
    alone: Callable[[str], Any] | None = None
    correct_rule: Callable[[Verdict, Row], bool] | None = None
    vote: str = "majority"
    scores: TaggedScores | None = None

    @property
    def generative(self) -> bool:
        """Whether a critic writes text for this task (else a scalar model scores it)."""
        return self.template is not None

    @property
    def both_orders(self) -> bool:
        """Whether the task's item can be judged again with its responses swapped."""
        return bool(self.swapped)

    def label(self, value: Any) -> Any:
        """The label as the parser returns verdicts (a step label stored as a string becomes an int);
        ``ValueError`` for a label this task never has."""
        index = isinstance(self.normalize, (Index, ScoreList))
        if index and isinstance(value, str) and value.strip().lstrip("-").isdigit():
            value = int(value)  # a mixed-task dataset stores step labels as strings (one Arrow type per column)
        if self.labels is not None and value not in self.labels:
            raise ValueError(f"{self.name} label must be one of {', '.join(map(str, self.labels))}, got {value!r}")
        if index and (not isinstance(value, int) or isinstance(value, bool) or value < -1):
            raise ValueError(f"{self.name} label must be an int >= -1, got {value!r}")
        return value

    def score(self, verdict: Verdict, row: Row) -> float | None:
        """The score of a parsed verdict (the module docstring's table); None without a valid one."""
        if not verdict.ok or self.normalize is None:
            return None
        if self.choices is not None:
            return 1.0 if verdict.value == self.normalize(self.choices[0]) else 0.0
        if isinstance(self.normalize, ScoreList):  # the first response's score, in [0, 1]
            low, high = self.normalize.low, self.normalize.high
            return (verdict.value[0] - low) / (high - low)
        n = len(row.get("steps") or [])
        if verdict.value == -1:
            return 1.0
        return verdict.value / n if n and 0 <= verdict.value < n else None

    def normalizer(self, row: Row) -> Normalizer | None:
        """The normaliser for one row's verdicts (a score list knows how many responses it scores)."""
        for_row = getattr(self.normalize, "for_row", None)
        return for_row(row) if for_row is not None else self.normalize

    def correct(self, verdict: Verdict, row: Row) -> bool:
        """Whether a verdict is right for a labelled row (``correct_rule``, else equal to the label)."""
        if not verdict.ok:
            return False
        if self.correct_rule is not None:
            return self.correct_rule(verdict, row)
        return verdict.value == self.label(row[self.label_column])

    def swap(self, row: Row) -> Row:
        """The same item with its responses in the other order (a task judged in both orders); the
        label, if any, is left as it was: the caller knows what the other order means for it."""
        if not self.swapped:
            raise ValueError(f"a {self.name} item has one order")
        out = dict(row)
        for a, b in self.swapped:
            out[a], out[b] = row.get(b), row.get(a)
        return out


def _step_in_range(verdict: Verdict, row: Row) -> Verdict:
    steps = row.get("steps")
    if verdict.ok and isinstance(steps, list) and verdict.value >= len(steps):
        return fail("step index out of range")
    return verdict


def split_steps(text: str) -> list[str]:
    """A response's non-empty lines as the steps a step critic judges (the whole text if none).

    >>> split_steps("2+2=4\\n\\nso 4")
    ['2+2=4', 'so 4']
    """
    return [line for line in text.splitlines() if line.strip()] or [text]


def _alone(text: str) -> list[str]:
    return [text]


def best_index(scores: Iterable[float]) -> int | None:
    """The index of the strictly highest score; None on a tie for the top (or no scores).

    >>> best_index([3, 9, 4]), best_index([9, 9, 4]), best_index([])
    (1, None, None)
    """
    scores = list(scores)
    if not scores:
        return None
    top = max(scores)
    return scores.index(top) if scores.count(top) == 1 else None


def listwise_correct(scores: Iterable[float], row: Row, threshold: float = 5.5) -> bool:
    """Whether a listwise judgment's scores single out the labelled best: THE rule of the GRPO
    reward, rejective fine-tuning and the meta RM's labels. N >= 2: the strict, unique argmax is
    ``label`` (or one of ``best`` when the row has it); N = 1: the score is above ``threshold``
    exactly when ``label`` is 0 (good; -1: bad). A tie for the top is never right.

    >>> row = {"task": "listwise", "responses": ["a", "b", "c"], "label": 1}
    >>> listwise_correct((2, 8, 5), row), listwise_correct((8, 8, 5), row), listwise_correct((9, 8, 5), row)
    (True, False, False)
    >>> listwise_correct((2, 8, 9), {**row, "best": [1, 2]})
    True
    >>> listwise_correct((7,), {"responses": ["a"], "label": 0}), listwise_correct((7,), {"responses": ["a"], "label": -1})
    (True, False)
    """
    scores = list(scores)
    label = TASKS["listwise"].label(row.get("label"))
    if len(scores) == 1:
        return (scores[0] > threshold) == (label == 0)
    best = row.get("best")
    right = set(best) if isinstance(best, list) and best else {label}
    return best_index(scores) in right


def _listwise_right(verdict: Verdict, row: Row) -> bool:
    responses = row.get("responses")
    return isinstance(responses, list) and len(verdict.value) == len(responses) and listwise_correct(verdict.value, row)


TASKS: dict[str, Task] = {
    t.name: t
    for t in (
        Task(
            "pointwise",
            fields=("question", "response"),
            judged=("response",),
            template=templates.pointwise_template,
            normalize=Choices({"correct": "correct", "incorrect": "incorrect"}),
            labels=("correct", "incorrect"),
            choices=("Correct", "Incorrect"),
            verdict_format="\\boxed{Correct} or \\boxed{Incorrect}",
        ),
        Task(
            "pairwise",
            fields=("question", "response_a", "response_b"),
            judged=("response_a", "response_b"),
            template=templates.pairwise_template,
            normalize=Choices({"a": "A", "b": "B"}),
            labels=("A", "B"),
            choices=("A", "B"),
            swapped=(("response_a", "response_b"),),
            verdict_format="\\boxed{A} or \\boxed{B}",
            scores=TaggedScores(("A", "B"), low=0, high=10),
        ),
        Task(
            "step",
            fields=("question",),
            judged=("steps",),
            template=templates.step_template,
            normalize=Index(),
            lists=("steps",),
            verdict_format="\\boxed{k}: the first wrong step from 0, -1 if none",
            alone=split_steps,
        ),
        Task(
            "listwise",
            fields=("question",),
            judged=("responses",),
            template=templates.grm_template,
            normalize=ScoreList(),
            lists=("responses",),
            verdict_format="\\boxed{s1, ..., sN}: one integer score from 1 to 10 per response, in order",
            alone=_alone,
            correct_rule=_listwise_right,
            vote="sum",
        ),
        Task(
            "reference",
            fields=("question", "reference", "response"),
            judged=("response", "reference"),
            label_column="same_policy",
            vote="mean",
        ),
        Task(
            "adversarial",
            fields=("question", "output", "validator"),
            judged=("output",),
            template=templates.adversarial_template,
            system=False,
            check=True,
            label_column="spec",
            verdict_format="one check in \\boxed{}",
        ),
    )
}
VERDICT_TASKS = tuple(name for name, t in TASKS.items() if t.normalize is not None)
GENERATIVE_TASKS = tuple(name for name, t in TASKS.items() if t.generative)


def task(name: Any) -> Task:
    """The row of task ``name``; ``KeyError`` naming the nearest task otherwise.

    >>> task("pairwise").both_orders
    True
    >>> task("pointwize")
    Traceback (most recent call last):
    ...
    KeyError: "unknown task 'pointwize' (did you mean 'pointwise'?); tasks: pointwise, pairwise, step, listwise, reference, adversarial"
    """
    if name not in TASKS:
        raise KeyError(f"unknown task '{name}'{did_you_mean(str(name), TASKS)}; tasks: {', '.join(TASKS)}")
    return TASKS[name]


def render(row: Row, *, style: str = "default", think: bool = False, images: int | None = None) -> list[dict]:
    """Chat messages for one record row, by its ``task`` (``templates.compose``; ``images``: a count).

    >>> [m["role"] for m in render({"task": "pointwise", "question": "q", "response": "r"})]
    ['system', 'user']
    """
    spec = task(row.get("task"))
    if spec.template is None:
        raise ValueError(f"a {spec.name} item is scored by a scalar model, not prompted")
    templates.check_style(style)
    text = spec.template(row, "default" if style == "long_cot" else style)
    return templates.compose(text, style=style, think=think, images=images, system=spec.system)


def judged_texts(row: Row) -> list[str]:
    """The judged texts of a row (each step, and all steps joined), in field order.

    >>> judged_texts({"task": "step", "question": "q", "steps": ["s0", "s1"]})
    ['s0', 's1', 's0\\ns1']
    """
    out: list[str] = []
    for name in task(row.get("task")).judged:
        value = row.get(name)
        if isinstance(value, str):
            out.append(value)
        elif isinstance(value, list):
            parts = [s for s in value if isinstance(s, str)]
            out += [*parts, "\n".join(parts)]
    return [t for t in out if t]


def quoted_texts(row: Row) -> list[str]:
    """The texts the critic was shown, for the verdict parser's ``quoted``: the question (which may
    carry boxes too: a multiple-choice question showing ``\\boxed{A}``) and the judged texts.

    >>> quoted_texts({"task": "pairwise", "question": "q", "response_a": "a", "response_b": "b"})
    ['q', 'a', 'b']
    """
    question = row.get("question")
    return [t for t in [question if isinstance(question, str) else None, *judged_texts(row)] if t]


def parse_verdict(
    text: str,
    task_name: str,
    *,
    quoted: Iterable[str] = (),
    max_chars: int | None = None,
    require_critique: bool = False,
    require_think: bool = False,
) -> Verdict:
    """Parse a critic's output into its verdict for a task with boxed verdicts (never raises on the text).

    Rules and reasons: ``critics.judging.verdicts``.

    >>> parse_verdict(r"\\boxed{ correct }", "pointwise").value
    'correct'
    """
    spec = task(task_name)
    if spec.normalize is None:
        raise ValueError(f"no verdicts for task {task_name!r} (valid: {', '.join(VERDICT_TASKS)})")
    return parse_boxed(
        text,
        spec.normalize,
        quoted=quoted,
        max_chars=max_chars,
        require_critique=require_critique,
        require_think=require_think,
    )


def read_verdict(text: str, row: Row, **rules: Any) -> Verdict:
    """The verdict of a critic's output for one row: quoted texts from the row, a step index past
    the row's last step refused, an adversarial row's check read by ``parse_check``. ``rules`` are
    ``parse_verdict``'s (``max_chars``, ``require_critique``, ``require_think``).

    >>> read_verdict(r"\\boxed{5}", {"task": "step", "question": "q", "steps": ["a", "b"]}).reason
    'step index out of range'
    """
    spec = task(row.get("task"))
    if spec.check:
        parsed = parse_check(text, row.get("validator", ""), quoted=judged_texts(row), max_chars=rules.get("max_chars"))
        return Verdict(parsed.check, parsed.check is not None, parsed.reason)
    verdict = parse_boxed(text, spec.normalizer(row), quoted=quoted_texts(row), **rules)
    return _step_in_range(verdict, row) if isinstance(spec.normalize, Index) else verdict


def read_scores(text: str, row: Row, verdict: Verdict) -> PointScores | None:
    r"""The per-response scores a critic wrote beside its ``verdict`` of ``row`` (J1), or None: its task
    has none, the verdict is not valid, or the output holds no score tag. Read by the task's
    ``scores`` (``verdicts.TaggedScores``: its reasons, copies from the shown texts included); valid
    scores that do not put the verdict's response strictly first are ``"scores contradict the verdict"``.

    >>> row = {"task": "pairwise", "question": "2+3?", "response_a": "5", "response_b": "6"}
    >>> read_scores("A adds up. <score_A>9</score_A> <score_B>2</score_B> \boxed{A}", row, Verdict("A", True, "ok"))
    PointScores(values=(9, 2), ok=True, reason='ok')
    >>> read_scores("<score_A>9</score_A> <score_B>2</score_B> \boxed{B}", row, Verdict("B", True, "ok")).reason
    'scores contradict the verdict'
    """
    spec = task(row.get("task"))
    if spec.scores is None or not verdict.ok:
        return None
    scores = spec.scores.read(text, quoted_texts(row))
    if scores is None or not scores.ok:
        return scores
    picked = spec.scores.names.index(verdict.value) if verdict.value in spec.scores.names else None
    values = scores.values
    if picked is None or any(v >= values[picked] for i, v in enumerate(values) if i != picked):
        return PointScores(None, False, "scores contradict the verdict")
    return scores


def normalize_verdict(content: str, task_name: str) -> str | int | None:
    r"""The canonical verdict for a box's content, or None if it is not one.

    >>> [normalize_verdict(c, "pairwise") for c in [" B ", r"\text{(b)}", "B.", "A/B", "Ｂ", ""]]
    ['B', 'B', 'B', None, None, None]
    """
    return task(task_name).normalize(content)


def expected_verdict(row: Row) -> Any:
    """The verdict a perfect critic gives for a labelled record (its label, as the parser returns it)."""
    spec = task(row.get("task"))
    return spec.label(row[spec.label_column])


def verdict_correct(verdict: Verdict, row: Row) -> bool:
    """``Task.correct`` for the row's task: whether a verdict is right for a labelled record.

    >>> verdict_correct(Verdict((3, 9), True, "ok"), {"task": "listwise", "responses": ["a", "b"], "label": 1})
    True
    """
    return task(row.get("task")).correct(verdict, row)


def verdict_score(verdict: Verdict, row: Row) -> float | None:
    """``Task.score`` for the row's task.

    >>> verdict_score(Verdict(2, True, "ok"), {"task": "step", "steps": ["a", "b", "c", "d"]})
    0.5
    """
    return task(row.get("task")).score(verdict, row)


def check_row(row: Row, style: str = "default") -> None:
    """Raise ``KeyError`` naming a field the row's task needs (in ``style``'s prompt) and lacks,
    ``TypeError`` naming one of the wrong type: what a record must hold before a critic sees it."""
    spec = task(row.get("task"))
    for name in spec.fields:
        if name in row and row[name] is not None and not isinstance(row[name], str):
            raise TypeError(f"{name} must be a string, got {type(row[name]).__name__}")
    for name in spec.lists:
        value = row.get(name)
        if value is not None and not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
            raise TypeError(f"{name} must be a list of strings")
    if spec.template is not None:
        spec.template(row, "default" if style == "long_cot" else style)  # names the first field it lacks
        return
    missing = [f for f in spec.fields if row.get(f) is None]
    if missing:
        raise KeyError(f"a {spec.name} item needs the field(s) {', '.join(missing)}")


def reward_item(task_name: str, question: str, response: str, reference: str | None = None) -> Row:
    """The record a critic judges when it rewards one response: the response alone (pointwise, its
    lines as steps, or a list of one for listwise), against ``reference`` as response B (pairwise), or scored against it
    (reference). ``ValueError`` when the task needs a reference and none is given.

    >>> reward_item("pairwise", "q", "mine", "theirs")
    {'task': 'pairwise', 'question': 'q', 'response_a': 'mine', 'response_b': 'theirs'}
    """
    spec = task(task_name)
    if spec.check:
        raise ValueError("an adversarial critic proposes checks; it does not reward a response")
    first = spec.judged[0]
    item = {"task": spec.name, "question": question, first: spec.alone(response) if spec.alone else response}
    if len(spec.judged) > 1:  # the second judged text is what the response is compared with
        if reference is None:
            raise ValueError(f"a {spec.name} critic compares each response with a reference: give one")
        item[spec.judged[1]] = reference
    return item


def add_prompts(dataset, *, style: str = "default", think: bool = False, images: bool = False):
    """Return ``dataset`` (a ``datasets.Dataset``) with a ``prompt`` column of chat messages for TRL,
    each row rendered with its own task's template (a dataset may mix tasks). No token budget: for
    records the caller knows are short; recipes fit prompts to the model (``judge.prompt_dataset``).
    ``images=True`` renders vision-language prompts with one placeholder per entry of ``images``.
    """
    templates.check_style(style)  # fail before ``map`` wraps the error in a traceback per worker

    def prompt(row: Row) -> Row:
        count = len(row.get("images") or []) if images else None
        return {"prompt": render(row, style=style, think=think, images=count)}

    return dataset.map(prompt, desc=f"rendering {style} critic prompts")
