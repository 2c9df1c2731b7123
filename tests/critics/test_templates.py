"""Critic prompt templates: every task renders, steps count from 0, think instructions, mixed datasets."""

from __future__ import annotations

import pytest
from datasets import Dataset

from critics.judging.tasks import (
    GENERATIVE_TASKS,
    TASKS,
    VERDICT_TASKS,
    add_prompts,
    parse_verdict,
    quoted_texts,
    render,
)
from critics.judging.templates import COMPACT_QUESTION_CHARS, COMPACT_THINK_SUFFIX, SYSTEM_PROMPT, THINK_SUFFIX
from data_pipelines.schema import PairwiseRecord, PointwiseRecord, StepRecord

RECORDS = [
    PointwiseRecord(
        id="p0",
        source="demo",
        question="Ana has 3 pens and buys 2 boxes of 4. How many?",
        response="2 * 4 = 8 pens in boxes.\n3 + 8 = 12.\n#### 12",
        label="incorrect",
        gold_answer="11",
    ),
    PairwiseRecord(
        id="q0",
        source="demo",
        question="Name a prime.",
        response_a="9 is prime.",
        response_b="7 is prime.",
        label="B",
        swapped=True,
    ),
    StepRecord(id="s0", source="demo", question="What is 2*3+1?", steps=["2*3 = 6", "6+1 = 8", "So 8."], label=1),
]
ROWS = [record.to_row() for record in RECORDS]


def _mixed_dataset() -> Dataset:
    """Rows of three tasks in one dataset: every column present, labels as strings (one Arrow type)."""
    columns = sorted({name for row in ROWS for name in row})
    rows = [{name: row.get(name) for name in columns} for row in ROWS]
    for row in rows:
        row["label"] = str(row["label"])
    return Dataset.from_list(rows)


def test_every_verdict_task_has_a_template() -> None:
    assert set(VERDICT_TASKS) == {"pairwise", "pointwise", "step", "listwise"}
    assert set(VERDICT_TASKS) <= set(GENERATIVE_TASKS)
    assert [t for t in TASKS if TASKS[t].template is None] == ["reference"]  # scored by a scalar layout


@pytest.mark.parametrize("row", ROWS, ids=lambda row: row["task"])
@pytest.mark.parametrize("style", ["default", "compact"])
def test_each_task_renders_its_fields(row: dict, style: str) -> None:
    messages = render(row, style=style)
    assert messages[-1]["role"] == "user"
    assert [m["role"] for m in messages[:-1]] == ([] if style == "compact" else ["system"])
    content = messages[-1]["content"]
    for text in quoted_texts(row):
        if style == "default" or text != row["question"] or row["task"] == "pairwise":
            assert text in content or text == "\n".join(row.get("steps") or [])
    assert "<think>" not in content


def test_default_prompts_name_the_verdict_format() -> None:
    pointwise, pairwise, step = (render(row)[-1]["content"] for row in ROWS)
    assert r"\boxed{Correct}" in pointwise and r"\boxed{Incorrect}" in pointwise
    assert r"\boxed{A}" in pairwise and r"\boxed{B}" in pairwise
    assert "-1 in \\boxed{}" in step and "numbered from 0" in step
    assert render(ROWS[0])[0] == {"role": "system", "content": SYSTEM_PROMPT}


@pytest.mark.parametrize("style", ["default", "compact"])
def test_steps_are_numbered_from_zero_like_the_labels(style: str) -> None:
    content = render(ROWS[2], style=style)[-1]["content"]
    assert "Step 0: 2*3 = 6\nStep 1: 6+1 = 8\nStep 2: So 8." in content
    assert "Step 3" not in content
    assert content.index("Step 0") < content.index("Step 1") < content.index("Step 2")


@pytest.mark.parametrize("style, suffix", [("default", THINK_SUFFIX), ("compact", COMPACT_THINK_SUFFIX)])
def test_think_adds_the_instruction_at_the_end(style: str, suffix: str) -> None:
    for row in ROWS:
        plain = render(row, style=style)[-1]["content"]
        thinking = render(row, style=style, think=True)[-1]["content"]
        assert thinking == plain + "\n" + suffix
    assert "<think> </think>" in THINK_SUFFIX and "MUST BE put in \\boxed{}" in THINK_SUFFIX


def test_compact_prompts_are_short() -> None:
    for row in ROWS:
        compact = render(row, style="compact")[-1]["content"]
        judged = sum(len(text) for text in quoted_texts(row)[1:])  # without the question
        asked = len(row["question"]) if row["task"] == "pairwise" else 0  # only pairwise shows it
        assert len(compact) < judged + asked + 60, compact  # tiny char-level models read every character
        assert (row["question"] in compact) == (row["task"] == "pairwise")


def test_compact_pairwise_shows_the_question_in_short_form() -> None:
    pair = {**ROWS[1], "question": "Which of these\n\n   is prime? " + "Explain why. " * 40}
    compact = render(pair, style="compact")[-1]["content"]
    a, b, asked, last = compact.split("\n")
    assert asked.startswith("Q: Which of these is prime? Explain why.") and asked.endswith("...")
    assert len(asked) == len("Q: ") + COMPACT_QUESTION_CHARS  # cut to its share, in one line
    assert [a, b, last] == ["A: 9 is prime.", "B: 7 is prime.", "Better: A or B?"]
    # the same pair asked two ways gets two prompts: the question decides which answer is better
    other = render({**ROWS[1], "question": "Name a number that is not prime."}, style="compact")[-1]["content"]
    assert other != render(ROWS[1], style="compact")[-1]["content"]


def test_unknown_style_and_task_name_the_nearest() -> None:
    with pytest.raises(ValueError, match="did you mean 'compact'"):
        render(ROWS[0], style="compat")
    with pytest.raises(KeyError, match="did you mean 'pairwise'"):
        render({**ROWS[0], "task": "pairwse"})
    with pytest.raises(ValueError, match="did you mean 'default'"):
        add_prompts(_mixed_dataset(), style="defualt")


def test_missing_column_is_named() -> None:
    with pytest.raises(KeyError, match="needs the column 'response_b'"):
        render({**ROWS[1], "response_b": None})


def test_add_prompts_on_a_mixed_dataset() -> None:
    dataset = add_prompts(_mixed_dataset(), style="compact", think=True)
    assert len(dataset) == 3 and "prompt" in dataset.column_names
    for row, original in zip(dataset, ROWS):
        assert row["prompt"] == render(original, style="compact", think=True)
        assert row["label"] == str(original["label"])  # label columns stay for the rewards
    default = add_prompts(_mixed_dataset())
    assert [len(row["prompt"]) for row in default] == [2, 2, 2]


def test_quoted_texts_name_what_is_judged() -> None:
    pointwise, pairwise, step = (quoted_texts(row) for row in ROWS)
    assert pointwise == [ROWS[0]["question"], ROWS[0]["response"]]
    assert pairwise == [ROWS[1]["question"], "9 is prime.", "7 is prime."]
    assert step == [ROWS[2]["question"], "2*3 = 6", "6+1 = 8", "So 8.", "2*3 = 6\n6+1 = 8\nSo 8."]
    assert quoted_texts({"task": "reference", "question": "q"}) == ["q"]


def test_the_prompt_itself_does_not_hand_out_a_verdict() -> None:
    # A critic that parrots its default prompt names both verdicts: that must never count.
    for row in ROWS:
        for think in (False, True):
            content = render(row, think=think)[-1]["content"]
            assert not parse_verdict(content, row["task"], quoted=quoted_texts(row)).ok
