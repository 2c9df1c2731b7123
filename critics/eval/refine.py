r"""Does a critic help? Critique-then-refine accuracy, and majority voting over critic-filtered solutions.

Two measures from the papers, as functions the eval command and the recipes share:

- ``critique_then_refine``: the critic critiques each held-out solution, a frozen actor revises the
  solution given the critique, and a verifier checks the revision (Critique-RL's "refinement
  accuracy"), beside discrimination accuracy, the four transitions and the change rate.
- ``filtered_majority_vote``: majority voting over the first k solutions of each question, against
  voting over only those the critic judged correct (RefCritic's test-time scaling claim); a question
  whose solutions the critic all rejects falls back to voting over all of them.

>>> votes = filtered_majority_vote(
...     [{"gold_answer": "4", "solutions": [r"\boxed{5}", r"\boxed{5}", r"\boxed{4}"],
...       "verdicts": [False, False, True]}], ks=[3], verifier="math")
>>> votes[3]["unfiltered"], votes[3]["filtered"]
(0.0, 1.0)
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from typing import Any

from critics.judging.tasks import read_verdict
from critics.rewards.refinement import Judged, refine_and_verify, refinement_stats
from data_pipelines.verifiers.math import extract_final_answer


def critique_then_refine(
    rows: Sequence[dict[str, Any]],
    critiques: Sequence[str],
    actor: Any,
    *,
    samples: int = 1,
    verifier: str = "math",
    batch_size: int = 256,
    verifier_options: dict[str, Any] | None = None,
) -> dict[str, float]:
    """Post-refinement accuracy of ``actor`` given ``critiques`` of pointwise ``rows``.

    Every solution is refined, whatever the verdict (an actor told "correct" usually keeps its
    answer). Returns ``refine_accuracy`` (with ``stderr``), ``accuracy_before`` (the solutions'
    own accuracy), ``discrimination_accuracy`` (a missing verdict counts as wrong), ``c->c``,
    ``c->i``, ``i->c``, ``i->i``, ``change_rate`` and ``n``.
    """
    rows, critiques = list(rows), list(critiques)
    if len(rows) != len(critiques):
        raise ValueError(f"{len(rows)} rows but {len(critiques)} critiques")
    if not rows:
        return {"refine_accuracy": float("nan"), "n": 0}
    judged = []
    for start in range(0, len(rows), batch_size):
        batch, texts = rows[start : start + batch_size], critiques[start : start + batch_size]
        outcomes = refine_and_verify(actor, batch, texts, samples, verifier, verifier_options)
        for row, text, (after, changed) in zip(batch, texts, outcomes):
            verdict = read_verdict(text, {**row, "task": "pointwise"})
            judged.append(
                Judged(verdict.value == row["label"] if verdict.ok else None, row["label"] == "correct", after, changed)
            )
    stats = refinement_stats(judged)
    n = len(judged)
    accuracy = stats["refine_accuracy"]
    return {
        **stats,
        "stderr": math.sqrt(max(accuracy * (1 - accuracy), 0.0) / n),
        "accuracy_before": sum(j.before for j in judged) / n,
        "n": n,
    }


def critic_critiques(lm, rows: Sequence[dict[str, Any]], spec, *, batch_size: int = 64) -> list[str]:
    """Critiques of pointwise ``rows`` by an in-process critic (a ``LoadedModel``), as its spec says."""
    from critics.judging.chat import LocalChatModel
    from critics.judging.judge import judge

    return [
        c.text
        for c in judge(
            LocalChatModel(lm, batch_size=batch_size), [{**dict(r), "task": "pointwise"} for r in rows], spec
        )
    ]


def filtered_majority_vote(
    questions: Sequence[dict[str, Any]],
    ks: Sequence[int],
    *,
    verifier: str = "math",
    verifier_options: dict[str, Any] | None = None,
) -> dict[int, dict[str, float]]:
    """Majority-vote accuracy over the first k solutions per question, unfiltered and critic-filtered.

    Args:
        questions: one dict per question with ``gold_answer``, ``solutions`` (texts) and ``verdicts``
            (per solution: True if the critic judged it correct; False or None otherwise).
        ks: the numbers of solutions to vote over (questions with fewer solutions use all they have).

    Returns:
        ``{k: {"unfiltered": acc, "filtered": acc, "n": questions, "kept": mean solutions kept}}``.
        Answers vote by their extracted final answer; a tie goes to the answer seen first.
    """
    from data_pipelines.verifiers import VERIFIERS

    check = VERIFIERS.get(verifier)
    out: dict[int, dict[str, float]] = {}
    for k in ks:
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        right = Counter()
        kept_total = 0
        for q in questions:
            solutions, verdicts = list(q["solutions"])[:k], list(q["verdicts"])[:k]
            if len(solutions) != len(verdicts):
                raise ValueError("each question needs one verdict per solution")
            kept = [s for s, v in zip(solutions, verdicts) if v is True] or solutions
            kept_total += len(kept)
            for name, pool in (("unfiltered", solutions), ("filtered", kept)):
                winner = _majority(pool)
                right[name] += (
                    winner is not None
                    and check(winner, str(q["gold_answer"]), **(verifier_options or {})).correct is True
                )
        n = max(len(questions), 1)
        out[k] = {
            "unfiltered": right["unfiltered"] / n,
            "filtered": right["filtered"] / n,
            "n": len(questions),
            "kept": kept_total / n,
        }
    return out


def _majority(solutions: list[str]) -> str | None:
    """The solution whose final answer most solutions share (the first of them); None without answers."""
    answers = [extract_final_answer(s) for s in solutions]
    counts = Counter(a for a in answers if a is not None)
    if not counts:
        return None
    best = max(counts.values())
    winner = next(a for a in answers if a is not None and counts[a] == best)
    return solutions[answers.index(winner)]
