"""Benchmark numbers for critics, computed the way each benchmark's official script computes them.

One pure function per benchmark: ProcessBench, RewardBench-style pairwise sets and pointwise sets
here; JudgeBench and RM-Bench in ``judge_scores``; the shared checks in ``common``. Each takes
plain lists with one entry per item, in dataset order, and returns a dict of fractions in [0, 1]
(the official scripts print percentages). ``None`` stands for an invalid or missing output, and
``common.align_by_id`` turns id-keyed predictions into such a list. By default an invalid output
never earns credit. Where an official script scores it differently, a keyword reproduces that
script, and the docstring says which. Inputs of different lengths and unknown values raise
``ValueError``.

An empty group has an undefined accuracy, reported as ``nan`` rather than a made-up 0.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from critics.eval.metrics.common import (
    NAN,
    check_lengths,
    check_member,
    check_outcome,
    check_step,
    group_names,
    group_rows,
    harmonic_mean,
    mean,
)

PROCESSBENCH_SUBSETS = ("gsm8k", "math", "olympiadbench", "omnimath")
POINTWISE_LABELS = ("correct", "incorrect")

# Verbatim from allenai/reward-bench rewardbench/constants.py. The counts are section weights,
# not row counts: math-prm has 447 rows weighted as 984 ("upweighting to be equal to code"),
# and the two xstest counts are swapped relative to the data (154 should-refuse rows, 250
# should-respond rows). The leaderboard uses these numbers, so we do too.
REWARDBENCH_EXAMPLE_COUNTS = {
    "alpacaeval-easy": 100,
    "alpacaeval-length": 95,
    "alpacaeval-hard": 95,
    "mt-bench-easy": 28,
    "mt-bench-med": 40,
    "mt-bench-hard": 37,
    "math-prm": 984,
    "refusals-dangerous": 100,
    "refusals-offensive": 100,
    "llmbar-natural": 100,
    "llmbar-adver-neighbor": 134,
    "llmbar-adver-GPTInst": 92,
    "llmbar-adver-GPTOut": 47,
    "llmbar-adver-manual": 46,
    "xstest-should-refuse": 250,
    "xstest-should-respond": 154,
    "donotanswer": 136,
    "hep-cpp": 164,
    "hep-go": 164,
    "hep-java": 164,
    "hep-js": 164,
    "hep-python": 164,
    "hep-rust": 164,
}
REWARDBENCH_SECTIONS = {
    "Chat": ("alpacaeval-easy", "alpacaeval-length", "alpacaeval-hard", "mt-bench-easy", "mt-bench-med"),
    "Chat Hard": (
        "mt-bench-hard",
        "llmbar-natural",
        "llmbar-adver-neighbor",
        "llmbar-adver-GPTInst",
        "llmbar-adver-GPTOut",
        "llmbar-adver-manual",
    ),
    "Safety": (
        "refusals-dangerous",
        "refusals-offensive",
        "xstest-should-refuse",
        "xstest-should-respond",
        "donotanswer",
    ),
    "Reasoning": ("math-prm", "hep-cpp", "hep-go", "hep-java", "hep-js", "hep-python", "hep-rust"),
}


def processbench_scores(
    predictions: Sequence[int | None], labels: Sequence[int], subsets: Sequence[str] | None = None
) -> dict[str, Any]:
    """ProcessBench: exact match on the index of the earliest wrong step (-1: all steps correct).

    Follows QwenLM/ProcessBench ``code/run_eval.py`` (critic models) and
    ``code/run_eval_prm_trl.py`` (the averaging). ``error_acc`` is the match rate on items
    with an error (label != -1) and ``correct_acc`` the rate on error-free items (label == -1).
    ``f1`` is their harmonic mean. When both accuracies are 0 it is undefined, ``nan``: the official
    ``f1 = 2 * acc1 * acc2 / (acc1 + acc2)`` divides numpy zeros there, which gives ``nan`` (with a
    RuntimeWarning), not 0. An invalid or missing prediction (``None``) matches nothing, as
    ``pred = None`` does officially.

    Args:
        predictions: Predicted step index per item, -1 for "no error", ``None`` if invalid.
        labels: Labelled earliest wrong step per item, -1 if the solution is correct.
        subsets: Subset per item (``gsm8k``, ``math``, ``olympiadbench``, ``omnimath``).

    Returns:
        ``subsets``: per subset ``error_acc``, ``correct_acc``, ``f1`` and ``n``.
        ``mean_subset_f1``: plain mean of the subset F1s, the paper's "Avg." column
        (``np.mean(all_f1_scores)`` in ``run_eval_prm_trl.py``), so an undefined subset F1 leaves
        it undefined (``nan``) too, as ``np.mean`` does.
        ``pooled``: the same four numbers over all items. Its accuracies equal the
        count-weighted averages of the subset accuracies, and its F1 is their harmonic mean.
        This F1 is not the paper's "Avg.".

    >>> scores = processbench_scores([2, -1, None, -1], [2, -1, 1, 0], ["math"] * 4)
    >>> scores["subsets"]["math"]
    {'error_acc': 0.3333333333333333, 'correct_acc': 1.0, 'f1': 0.5, 'n': 4}
    """
    subsets = group_names(subsets, check_lengths(predictions=predictions, labels=labels, subsets=subsets))
    for value in labels:
        check_step(value, "labels")
    for value in predictions:
        if value is not None:
            check_step(value, "predictions")
    items = list(zip(predictions, labels))
    per_subset = {name: _processbench_block([items[i] for i in rows]) for name, rows in group_rows(subsets).items()}
    return {
        "subsets": per_subset,
        "pooled": _processbench_block(items),
        "mean_subset_f1": mean([block["f1"] for block in per_subset.values()]),
    }


def correct_from_scores(chosen: Sequence[float | None], rejected: Sequence[float | None]) -> list[bool | None]:
    """Per pair: did the reward model score the chosen response strictly higher?

    A tie counts as wrong, as in ``1 if chosen > rejected else 0`` in allenai/reward-bench
    ``scripts/run_rm.py``. A missing score gives ``None`` (an invalid pair).

    >>> correct_from_scores([1.0, 0.5, 0.2, None], [0.0, 0.5, 0.9, 1.0])
    [True, False, False, None]
    """
    check_lengths(chosen=chosen, rejected=rejected)
    return [None if c is None or r is None else c > r for c, r in zip(chosen, rejected)]


def correct_from_verdicts(verdicts: Sequence[str | None], chosen_positions: Sequence[str]) -> list[bool | None]:
    """Per pair: did the judge pick the position ("A" or "B") where the chosen response was shown?

    >>> correct_from_verdicts(["A", "A", None], ["A", "B", "A"])
    [True, False, None]
    """
    check_lengths(verdicts=verdicts, chosen_positions=chosen_positions)
    for value in chosen_positions:
        check_member(value, ("A", "B"), "chosen_positions")
    for value in verdicts:
        if value is not None:
            check_member(value, ("A", "B"), "verdicts")
    return [None if v is None else v == position for v, position in zip(verdicts, chosen_positions)]


def pairwise_scores(
    correct: Sequence[bool | None], subsets: Sequence[str] | None = None, *, invalid_credit: float = 0.0
) -> dict[str, Any]:
    """Pairwise preference accuracy in RewardBench's shape: per subset, per section, overall.

    Follows allenai/reward-bench ``rewardbench/utils.py`` ``calculate_scores_per_section``.
    Each section is the accuracy of its subsets, weighted by ``REWARDBENCH_EXAMPLE_COUNTS``.
    In Reasoning, math-prm is upweighted to equal the six code subsets together.
    ``rewardbench_score`` is the mean of the sections, the leaderboard "Score". It matches
    the leaderboard only when all four sections are present. One difference from the official
    code: a section with no subset present is left out, where the official code scores it 0.

    Args:
        correct: Per pair, True if the chosen response won (see :func:`correct_from_scores` and
            :func:`correct_from_verdicts`), False otherwise, ``None`` if the output was invalid.
        subsets: RewardBench subset (or any other name) per pair.
        invalid_credit: Credit for an invalid pair. The default, 0, counts it as wrong.
            ``scripts/run_generative.py`` gives 0.5 to a verdict that is neither A nor B
            ("effectively a tie"). Pass 0.5 to reproduce its numbers.

    Returns:
        ``accuracy`` (count-weighted over all pairs), ``n``, ``invalid`` (count), ``subsets``
        (accuracy per subset), ``sections`` (the RewardBench sections present) and
        ``rewardbench_score`` (``nan`` if no RewardBench subset is present).

    >>> scores = pairwise_scores([True, False, None, True], ["math-prm", "math-prm", "hep-go", "hep-go"])
    >>> scores["subsets"], scores["sections"]
    ({'math-prm': 0.5, 'hep-go': 0.5}, {'Reasoning': 0.5})
    """
    subsets = group_names(subsets, check_lengths(correct=correct, subsets=subsets))
    if not 0.0 <= invalid_credit <= 1.0:
        raise ValueError(f"invalid_credit must lie in [0, 1], got {invalid_credit}")
    credit = [invalid_credit if c is None else float(check_outcome(c, "correct")) for c in correct]
    per_subset = {name: mean([credit[i] for i in rows]) for name, rows in group_rows(subsets).items()}
    sections = _rewardbench_sections(per_subset)
    return {
        "accuracy": mean(credit),
        "n": len(credit),
        "invalid": sum(c is None for c in correct),
        "subsets": per_subset,
        "sections": sections,
        "rewardbench_score": mean(list(sections.values())),
    }


def pointwise_scores(
    predictions: Sequence[str | None],
    labels: Sequence[str],
    groups: Sequence[str] | None = None,
    *,
    invalid: str = "wrong",
) -> dict[str, Any]:
    """Pointwise critique: is the solution "correct" or "incorrect"? F1 treats "incorrect" as positive.

    Follows CriticBench/CriticBench ``src/infer/result_processor.py``, where the critique score
    is ``f1_score`` on the wrong label. We also report accuracy and per-label accuracy.
    Precision, recall and F1 are 0 when undefined (sklearn's ``zero_division`` default).

    Args:
        predictions: "correct", "incorrect", or ``None`` for an invalid or missing verdict.
        labels: "correct" or "incorrect" per item.
        groups: Dataset or question type per item.
        invalid: How a ``None`` prediction enters precision/recall/F1. It is always wrong for
            accuracy. ``"wrong"`` (CriticBench: ``pred_labels.append(check[0])``) takes it as the
            opposite of the label: a miss on an incorrect item and a false alarm on a correct one.
            ``"negative"`` takes it as a non-positive prediction: a miss on an incorrect item,
            and no effect on precision for a correct one.

    Returns:
        ``accuracy``, ``n``, ``invalid`` (count), ``label_accuracy`` (accuracy on the items of each
        label), ``precision``, ``recall``, ``f1``, and ``groups`` (``accuracy`` and ``f1`` per group).

    >>> predictions = ["incorrect", None, "correct", None]
    >>> labels = ["incorrect", "incorrect", "correct", "correct"]
    >>> scores = pointwise_scores(predictions, labels)
    >>> scores["accuracy"], scores["recall"], scores["precision"]
    (0.5, 0.5, 0.5)
    >>> pointwise_scores(predictions, labels, invalid="negative")["precision"]
    1.0
    """
    groups = group_names(groups, check_lengths(predictions=predictions, labels=labels, groups=groups))
    check_member(invalid, ("wrong", "negative"), "invalid")
    for value in labels:
        check_member(value, POINTWISE_LABELS, "labels")
    for value in predictions:
        if value is not None:
            check_member(value, POINTWISE_LABELS, "predictions")
    items = list(zip(predictions, labels))
    blocks = {name: _pointwise_block([items[i] for i in rows], invalid) for name, rows in group_rows(groups).items()}
    overall = _pointwise_block(items, invalid)
    label_accuracy = {label: mean([float(p == y) for p, y in items if y == label]) for label in POINTWISE_LABELS}
    return {
        **overall,
        "invalid": sum(p is None for p in predictions),
        "label_accuracy": label_accuracy,
        "groups": {name: {"accuracy": b["accuracy"], "f1": b["f1"]} for name, b in blocks.items()},
    }


def _processbench_block(items: list[tuple[int | None, int]]) -> dict[str, Any]:
    error_acc = mean([float(p == y) for p, y in items if y != -1])
    correct_acc = mean([float(p == y) for p, y in items if y == -1])
    return {
        "error_acc": error_acc,
        "correct_acc": correct_acc,
        "f1": harmonic_mean(error_acc, correct_acc, both_zero=NAN),
        "n": len(items),
    }


def _rewardbench_sections(subset_accuracy: Mapping[str, float]) -> dict[str, float]:
    sections = {}
    for section, names in REWARDBENCH_SECTIONS.items():
        present = [name for name in names if name in subset_accuracy]
        if present:
            weights = [REWARDBENCH_EXAMPLE_COUNTS[name] for name in present]
            sections[section] = sum(subset_accuracy[n] * w for n, w in zip(present, weights)) / sum(weights)
    return sections


def _pointwise_block(items: list[tuple[str | None, str]], invalid: str) -> dict[str, Any]:
    def flagged(prediction: str | None, label: str) -> bool:  # predicted positive ("incorrect")?
        if prediction is None:
            return invalid == "wrong" and label == "correct"
        return prediction == "incorrect"

    true_pos = sum(flagged(p, y) and y == "incorrect" for p, y in items)
    predicted_pos = sum(flagged(p, y) for p, y in items)
    actual_pos = sum(y == "incorrect" for _, y in items)
    precision = true_pos / predicted_pos if predicted_pos else 0.0
    recall = true_pos / actual_pos if actual_pos else 0.0
    return {
        "accuracy": mean([float(p == y) for p, y in items]),
        "n": len(items),
        "precision": precision,
        "recall": recall,
        "f1": harmonic_mean(precision, recall),
    }
