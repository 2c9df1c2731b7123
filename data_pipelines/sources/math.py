"""Math sources: GSM8K, its labelled model solutions, MATH-500, ProcessBench and PRM800K.

GSM8K, its model solutions and MATH-500 yield the "solution" shape; ProcessBench and PRM800K
yield the "steps" shape (the index of the first wrong step, -1 if none).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from data_pipelines.sources.base import SOURCES, RowError, Source, require

GSM8K_MODELS = ("6b_finetuning", "6b_verification", "175b_finetuning", "175b_verification")


def question_id(question: str, prefix: str = "gsm8k") -> str:
    """A stable id for a question: its text's hash, so the same question gets the same id anywhere.

    >>> question_id("What is 1+1?")
    'gsm8k/f8b32592940189e5'
    """
    return f"{prefix}/{hashlib.sha1(question.encode('utf-8')).hexdigest()[:16]}"


def final_answer(text: str, marker: str, field: str) -> str:
    """The stripped text after the last ``marker`` in ``text``; ``RowError`` if absent or empty.

    >>> final_answer("2 + 2 = 4\\n#### 1,000", "####", "answer")
    '1,000'
    """
    head, found, answer = text.rpartition(marker)
    if not found or not answer.strip():
        raise RowError(f"field '{field}' has no final answer after '{marker}'")
    return answer.strip()


@SOURCES.register("gsm8k")
@dataclass
class GSM8K(Source):
    """GSM8K problems with their human solutions (`question`, `answer` ending in ``#### N``).

    The gold answer is the text after ``####``, stripped, commas kept ("1,000"); the solution is
    the whole human answer text, calculator annotations (``<<2*3=6>>``) included.

    >>> GSM8K().convert({"question": "What is 2*3?", "answer": "2*3=<<2*3=6>>6\\n#### 6"})["gold_answer"]
    '6'
    """

    subset: str | None = "main"

    shape = "solution"
    default_path = "openai/gsm8k"

    def convert(self, raw: dict[str, Any]) -> dict[str, Any]:
        question, answer = require(raw, "question"), require(raw, "answer")
        return {
            "question": question,
            "solution": answer,
            "is_correct": True,
            "gold_answer": final_answer(answer, "####", "answer"),
            "model": "human",
            "group": question_id(question),
            "extra": {},
        }


@SOURCES.register("gsm8k_solutions")
@dataclass
class GSM8KSolutions(Source):
    """GSM8K's labelled model solutions (``example_model_solutions.jsonl``), one row per model.

    A line holds ``question``, ``ground_truth`` (ending in ``A: N``) and, for each of the four
    models, ``{"is_correct": bool, "solution": str}``. A malformed model entry makes only that
    model's row an error. ``group`` is the question's hash, equal to the group of the same
    question in ``gsm8k``. Not on the hub: ``path`` must name the local file.

    >>> line = {"question": "1+1?", "ground_truth": "1+1=2\\nA: 2"}
    >>> line.update({m: {"is_correct": m.startswith("175"), "solution": "A: 2"} for m in GSM8K_MODELS})
    >>> rows = GSM8KSolutions().convert(line)
    >>> [(r["model"], r["is_correct"], r["gold_answer"]) for r in rows][:2]
    [('6b_finetuning', False, '2'), ('6b_verification', False, '2')]
    >>> line["175b_verification"] = {"is_correct": "yes", "solution": "A: 2"}
    >>> GSM8KSolutions().convert(line)[3]
    RowError("175b_verification: field 'is_correct' should be bool, got str")
    """

    shape = "solution"

    def convert(self, raw: dict[str, Any]) -> list[dict[str, Any] | RowError]:
        question, truth = require(raw, "question"), require(raw, "ground_truth")
        gold = final_answer(truth.strip().splitlines()[-1], "A:", "ground_truth")
        rows: list[dict[str, Any] | RowError] = []
        for model in GSM8K_MODELS:
            try:
                entry = require(raw, model, dict)
                rows.append(
                    {
                        "question": question,
                        "solution": require(entry, "solution"),
                        "is_correct": require(entry, "is_correct", bool),
                        "gold_answer": gold,
                        "model": model,
                        "group": question_id(question),
                        "extra": {"reference_solution": truth},
                    }
                )
            except RowError as exc:
                rows.append(RowError(f"{model}: {exc}"))
        return rows


@SOURCES.register("math500")
@dataclass
class Math500(Source):
    """MATH-500 problems with their reference solutions (``HuggingFaceH4/MATH-500``).

    >>> Math500().convert({"problem": "1+1?", "solution": "$\\\\boxed{2}$", "answer": "2",
    ...     "subject": "Algebra", "level": 1, "unique_id": "test/algebra/1.json"})["group"]
    'test/algebra/1.json'
    """

    shape = "solution"
    default_path = "HuggingFaceH4/MATH-500"

    def convert(self, raw: dict[str, Any]) -> dict[str, Any]:
        return {
            "question": require(raw, "problem"),
            "solution": require(raw, "solution"),
            "is_correct": True,
            "gold_answer": require(raw, "answer"),
            "model": "human",
            "group": require(raw, "unique_id"),
            "extra": {"subject": raw.get("subject"), "level": raw.get("level")},
        }


@SOURCES.register("processbench")
@dataclass
class ProcessBench(Source):
    """ProcessBench (``Qwen/ProcessBench``): step-by-step solutions with the first wrong step.

    ``path`` is one JSON file or the folder holding ``gsm8k.json`` and ``math.json``; on the hub
    the subsets are splits (gsm8k, math, olympiadbench, omnimath). The subset (file stem or
    split) and the generator go to ``extra``. ``label`` must be an int in [-1, len(steps) - 1].

    >>> raw = {"id": "gsm8k-0", "generator": "m", "problem": "1+1?", "steps": ["1+1=3", "So 3."],
    ...        "final_answer_correct": False, "label": 0, "subset": "gsm8k"}
    >>> row = ProcessBench().convert(raw)
    >>> row["label"], row["extra"]["subset"]
    (0, 'gsm8k')
    >>> ProcessBench().convert({**raw, "label": 2})
    Traceback (most recent call last):
    ...
    data_pipelines.sources.base.RowError: label 2 is outside [-1, 1]
    """

    split: str = "gsm8k"

    shape = "steps"
    default_path = "Qwen/ProcessBench"

    def raw_records(self) -> Iterator[tuple[str, dict[str, Any] | None, str | None, str | None]]:
        """Records with their subset (the file stem locally, the split on the hub) added."""
        for rid, raw, error, text in super().raw_records():
            yield rid, ({"subset": rid.split("/")[0], **raw} if isinstance(raw, dict) else raw), error, text

    def convert(self, raw: dict[str, Any]) -> dict[str, Any]:
        steps = require(raw, "steps", list)
        if not all(isinstance(s, str) and s.strip() for s in steps):
            raise RowError("field 'steps' should be a list of non-empty strings")
        label = require(raw, "label", int)
        if not -1 <= label < len(steps):
            raise RowError(f"label {label} is outside [-1, {len(steps) - 1}]")
        return {
            "question": require(raw, "problem"),
            "steps": steps,
            "label": label,
            "final_answer_correct": require(raw, "final_answer_correct", bool),
            "gold_answer": None,
            "extra": {"subset": raw.get("subset"), "generator": raw.get("generator"), "source_id": raw.get("id")},
        }


@SOURCES.register("prm800k")
@dataclass
class PRM800K(Source):
    """PRM800K's human step labels (github openai/prm800k ``data/*.jsonl``), one row per line.

    The steps are the labelled trajectory: per step the chosen completion, or the human
    completion when a labeller wrote one; at the step where labelling stopped (no choice) the
    first completion rated -1. ``label`` is the index of the first step rated -1 (-1 if none);
    rating 0 (neutral) is not an error. When an error was found and the labelled steps are a
    prefix of ``pre_generated_steps`` (phase 2), ``steps`` is the whole pre-generated solution,
    as ProcessBench shows whole solutions; ``extra["labeled_steps"]`` says how many were labelled.
    ``finish_reason`` "solution" sets ``final_answer_correct`` True, "found_error" leaves it None
    and needs a step rated -1; "give_up" and "bad_problem" rows are errors.

    >>> step = lambda text, rating: {"completions": [{"text": text, "rating": rating, "flagged": None}],
    ...                              "human_completion": None, "chosen_completion": 0}
    >>> raw = {"question": {"problem": "1+1?", "ground_truth_answer": "2"},
    ...        "label": {"steps": [step("1+1=3", -1)], "finish_reason": "found_error"}}
    >>> raw["label"]["steps"][0]["chosen_completion"] = None
    >>> row = PRM800K().convert(raw)
    >>> row["steps"], row["label"], row["gold_answer"]
    (['1+1=3'], 0, '2')
    """

    shape = "steps"
    default_path = "tasksource/PRM800K"  # the raw JSONL files, mirrored on the hub

    def convert(self, raw: dict[str, Any]) -> dict[str, Any]:
        question, label = require(raw, "question", dict), require(raw, "label", dict)
        finish = label.get("finish_reason")
        if finish in ("give_up", "bad_problem"):
            raise RowError(f"labeller did not finish the solution (finish_reason '{finish}')")
        if finish not in ("solution", "found_error"):
            raise RowError(f"unknown finish_reason {finish!r}")
        steps, ratings = trajectory(require(label, "steps", list))
        first_wrong = ratings.index(-1) if -1 in ratings else -1
        if finish == "found_error" and first_wrong < 0:
            raise RowError("finish_reason is 'found_error' but no step is rated -1")
        labeled = len(steps)
        pre = question.get("pre_generated_steps")
        if first_wrong >= 0 and isinstance(pre, list) and pre[:labeled] == steps:
            steps = list(pre)
        gold = question.get("ground_truth_answer")
        if gold is not None and not isinstance(gold, str):
            raise RowError(f"field 'ground_truth_answer' should be str, got {type(gold).__name__}")
        return {
            "question": require(question, "problem"),
            "steps": steps,
            "label": first_wrong,
            "final_answer_correct": True if finish == "solution" else None,
            "gold_answer": gold or None,
            "extra": {
                "finish_reason": finish,
                "ratings": ratings,
                "labeled_steps": labeled,
                **{
                    k: raw.get(k)
                    for k in (
                        "labeler",
                        "timestamp",
                        "generation",
                        "is_quality_control_question",
                        "is_initial_screening_question",
                    )
                },
            },
        }


def trajectory(steps: list[Any]) -> tuple[list[str], list[int | None]]:
    """The texts and ratings of the steps of a PRM800K labelled trajectory.

    A human completion (phase 1; an object with ``text``, or a plain string) has rating None.

    >>> trajectory([{"completions": [{"text": "a", "rating": 0}], "chosen_completion": 0},
    ...             {"completions": [{"text": "b", "rating": 1}, {"text": "c", "rating": -1}],
    ...              "chosen_completion": None, "human_completion": None}])
    (['a', 'c'], [0, -1])
    """
    texts: list[str] = []
    ratings: list[int | None] = []
    for i, step in enumerate(steps):
        text, rating = _step(i, step)
        texts.append(text)
        ratings.append(rating)
    if not texts:
        raise RowError("the solution has no steps")
    return texts, ratings


def _step(i: int, step: Any) -> tuple[str, int | None]:
    """The text and rating of step ``i`` of a PRM800K trajectory (see ``trajectory``)."""
    if not isinstance(step, dict):
        raise RowError(f"step {i} is a {type(step).__name__}, not an object")
    completions = step.get("completions") or []
    if not isinstance(completions, list) or not all(isinstance(c, dict) for c in completions):
        raise RowError(f"step {i}: 'completions' should be a list of objects")
    chosen, human = step.get("chosen_completion"), step.get("human_completion")
    if chosen is not None:
        if not isinstance(chosen, int) or isinstance(chosen, bool) or not 0 <= chosen < len(completions):
            raise RowError(f"step {i}: chosen_completion {chosen!r} is not an index of its completions")
        text, rating = completions[chosen].get("text"), completions[chosen].get("rating")
        if rating not in (-1, 0, 1) or isinstance(rating, bool):
            raise RowError(f"step {i}: rating {rating!r} is not -1, 0 or 1")
    elif human is not None:  # a labeller's own step, written after every completion was rated -1
        text, rating = (human.get("text") if isinstance(human, dict) else human), None
    else:  # labelling stopped here: the step under review is the one rated -1
        wrong = [c for c in completions if c.get("rating") == -1]
        if not wrong:
            raise RowError(f"step {i} has no chosen completion and none rated -1")
        text, rating = wrong[0].get("text"), -1
    if not isinstance(text, str) or not text.strip():
        raise RowError(f"step {i}: the step text is missing or empty")
    return text, rating
