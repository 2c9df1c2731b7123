"""Sources with several responses per question: UltraFeedback (rated) and RewardBench 2 (best of 4).

Each yields the "responses" shape: a question, its responses, and either a rating per response
(``scores``) or the number of leading responses that are correct (``num_correct``). A row whose
responses are missing, empty, duplicated or whose counts disagree with its lists is an error row
with the reason; the builder decides the label.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from data_pipelines.sources.base import SOURCES, RowError, Source, require


def check_responses(responses: list[Any], field: str) -> list[str]:
    """``responses`` if every item is a non-blank string and no two are the same text.

    >>> check_responses(["a", "b"], "chosen")
    ['a', 'b']
    >>> check_responses(["a", " a "], "completions")
    Traceback (most recent call last):
    ...
    data_pipelines.sources.base.RowError: completions 0 and 1 are the same text
    """
    seen: dict[str, int] = {}
    for i, text in enumerate(responses):
        if not isinstance(text, str):
            raise RowError(f"{field} {i} should be a string, got {type(text).__name__}")
        if not text.strip():
            raise RowError(f"{field} {i} is empty")
        if text.strip() in seen:
            raise RowError(f"{field} {seen[text.strip()]} and {i} are the same text")
        seen[text.strip()] = i
    return list(responses)


def check_count(raw: dict[str, Any], key: str, expected: int, what: str) -> None:
    """``RowError`` when ``raw[key]`` (if present) is not the int ``expected`` (``what`` says why)."""
    value = raw.get(key)
    if value is None:
        return
    if not isinstance(value, int) or isinstance(value, bool):
        raise RowError(f"field '{key}' should be int, got {type(value).__name__}")
    if value != expected:
        raise RowError(f"{key} is {value} but {what} is {expected}")


@SOURCES.register("ultrafeedback_raw")
@dataclass
class UltraFeedbackRaw(Source):
    """UltraFeedback before binarizing (``openbmb/UltraFeedback``, split ``train``): ``instruction``
    and ``completions`` (usually 4), each with ``model``, ``response``, ``overall_score`` and
    ``fine-grained_score``.

    ``rating`` picks the score each response is rated by: ``overall_score`` (what
    ``HuggingFaceH4/ultrafeedback_binarized`` ranks by) or ``fine-grained_score`` (the mean of the
    four aspect ratings). A completion without a numeric rating, or fewer than two completions,
    makes the row an error.

    >>> c = lambda r, s: {"model": "m", "response": r, "overall_score": s, "fine-grained_score": s / 2}
    >>> row = UltraFeedbackRaw().convert({"instruction": "q", "source": "evol",
    ...                                   "completions": [c("a", 8.0), c("b", 6.5)]})
    >>> row["responses"], row["scores"], row["num_correct"]
    (['a', 'b'], [8.0, 6.5], None)
    """

    split: str = "train"
    rating: Literal["overall_score", "fine-grained_score"] = "overall_score"

    shape = "responses"
    default_path = "openbmb/UltraFeedback"

    def convert(self, raw: dict[str, Any]) -> dict[str, Any]:
        completions = require(raw, "completions", list)
        if len(completions) < 2:
            raise RowError(f"{len(completions)} completion(s): a listwise item needs at least 2")
        responses, scores, models = [], [], []
        for i, completion in enumerate(completions):
            if not isinstance(completion, dict):
                raise RowError(f"completion {i} is a {type(completion).__name__}, not an object")
            responses.append(completion.get("response"))
            score = completion.get(self.rating)
            if not isinstance(score, (int, float)) or isinstance(score, bool) or score != score:
                raise RowError(f"completion {i} has no numeric {self.rating} (got {score!r})")
            scores.append(float(score))
            models.append(completion.get("model"))
        return {
            "question": require(raw, "instruction"),
            "responses": check_responses(responses, "completion"),
            "scores": scores,
            "num_correct": None,
            "subset": raw.get("source") if isinstance(raw.get("source"), str) else None,
            "extra": {"models": models, "rating": self.rating},
        }


@SOURCES.register("rewardbench2")
@dataclass
class RewardBench2(Source):
    """RewardBench 2 (``allenai/reward-bench-2``, split ``test``): ``id``, ``prompt``, ``chosen`` and
    ``rejected`` (lists), ``num_correct``, ``num_incorrect``, ``total_completions``, ``models``,
    ``subset``.

    The responses are ``chosen + rejected`` (the official script's order: the first
    ``num_correct`` are correct), so most subsets give 1 correct and 3 incorrect, and Ties several
    correct. The counts must agree with the lists (``num_rejected`` is read where a copy names
    ``num_incorrect`` so).

    >>> row = RewardBench2().convert({"id": "7", "prompt": "q", "chosen": ["a"], "rejected": ["b", "c", "d"],
    ...     "num_correct": 1, "num_incorrect": 3, "total_completions": 4, "models": [], "subset": "Math"})
    >>> row["responses"], row["num_correct"], row["subset"]
    (['a', 'b', 'c', 'd'], 1, 'Math')
    """

    split: str = "test"

    shape = "responses"
    default_path = "allenai/reward-bench-2"

    def convert(self, raw: dict[str, Any]) -> dict[str, Any]:
        chosen = check_responses(require(raw, "chosen", list), "chosen")
        rejected = check_responses(require(raw, "rejected", list), "rejected")
        responses = check_responses(chosen + rejected, "response")
        check_count(raw, "num_correct", len(chosen), "the length of chosen")
        check_count(raw, "num_incorrect", len(rejected), "the length of rejected")
        check_count(raw, "num_rejected", len(rejected), "the length of rejected")
        check_count(raw, "total_completions", len(responses), "the number of chosen and rejected")
        models = raw.get("models")
        return {
            "question": require(raw, "prompt"),
            "responses": responses,
            "scores": None,
            "num_correct": len(chosen),
            "subset": require(raw, "subset"),
            "extra": {"id": raw.get("id"), "models": models if isinstance(models, list) else None},
        }
