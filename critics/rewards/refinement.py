r"""Rewards for critics that teach (Critique-RL, RefCritic): discrimination and refinement.

A critique is judged twice: by its verdict against the label (discrimination), and by what a
frozen actor makes of it (refinement: the actor revises the solution given the critique, and a
verifier checks the revision against the gold answer). The scoring rules are plain functions;
the reward classes wire them to an actor with TRL's reward signature; the ``critique_rl`` and
``refcritic`` recipes configure them and set their actor. Inside a trainer they log the
discrimination accuracy, the post-refinement accuracy, the four transitions (c->c, c->i, i->c,
i->i) and the change rate of each batch (``refinement_stats``).

An actor is any object with ``refine(questions, solutions, critiques, n) -> list[list[str]]``
(``n`` revisions per item), e.g. the actors of ``critics.actors``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from critics.judging.tasks import read_verdict
from critics.rewards.base import completion_text, reward_rows
from data_pipelines.verifiers.math import extract_final_answer

RefineMode = Literal["refine", "delta", "correct"]
TRANSITIONS = {  # (solution correct before, refined answer correct) -> reward
    "delta": {(True, True): 0.0, (True, False): -1.0, (False, True): 1.0, (False, False): 0.0},
    "correct": {(True, True): 0.2, (True, False): 0.0, (False, True): 1.0, (False, False): 0.0},
}


def discrimination_score(verdict_right: bool | None, s: float = 1.0) -> float:
    """``+s`` when the verdict matches the label, -1 when it is wrong or missing (``None``).

    >>> discrimination_score(True), discrimination_score(True, s=0.2), discrimination_score(False), discrimination_score(None)
    (1.0, 0.2, -1.0, -1.0)
    """
    return s if verdict_right else -1.0


def refinement_score(before: bool, after: bool, mode: RefineMode = "refine") -> float:
    """The refinement reward of one revision: ``refine`` 1 if the refined answer is correct;
    ``delta`` c->c 0, c->i -1, i->c +1, i->i 0; ``correct`` c->c 0.2, c->i 0, i->c 1, i->i 0.

    >>> [refinement_score(b, a, "delta") for b, a in [(True, True), (True, False), (False, True), (False, False)]]
    [0.0, -1.0, 1.0, 0.0]
    >>> refinement_score(False, True, "refine"), refinement_score(True, False, "refine")
    (1.0, 0.0)
    """
    if mode == "refine":
        return float(after)
    if mode not in TRANSITIONS:
        raise ValueError(f"refinement mode must be refine, delta or correct, got {mode!r}")
    return TRANSITIONS[mode][(bool(before), bool(after))]


def stage_two_score(
    verdict_right: bool | None, before: bool, after: bool, mode: RefineMode = "refine", s: float = 0.2
) -> float:
    """Critique-RL stage II: refinement + discrimination(``s``) when the verdict is right, else -1.

    With mode ``refine`` the values are -1, 0.2 and 1.2:

    >>> stage_two_score(True, False, True), stage_two_score(True, False, False), stage_two_score(False, True, True)
    (1.2, 0.2, -1.0)
    >>> stage_two_score(None, False, True)
    -1.0
    """
    if not verdict_right:
        return -1.0
    return refinement_score(before, after, mode) + discrimination_score(True, s)


def refcritic_score(verdict_right: bool | None, refined_correct: list[bool], lam: float = 1.0) -> float:
    """RefCritic: r_judge (1 if the verdict is right, else 0) + ``lam`` x the share of the K
    refinements whose answer is correct.

    >>> refcritic_score(True, [True, False, True, True], lam=0.5)
    1.375
    >>> refcritic_score(None, [False, False])
    0.0
    """
    share = sum(refined_correct) / len(refined_correct) if refined_correct else 0.0
    return float(bool(verdict_right)) + lam * share


@dataclass(frozen=True, kw_only=True)
class DiscriminationReward:
    r"""Critique-RL's discrimination reward: ``+s`` for the verdict that matches ``label``, -1 for a
    wrong, missing or double verdict (``s`` = 1.0 in stage I).

    >>> DiscriminationReward()(None, [r"\boxed{Correct}", r"\boxed{Incorrect}", "no verdict",
    ...                                r"\boxed{Correct} \boxed{Incorrect}"], label=["correct"] * 4)
    [1.0, -1.0, -1.0, -1.0]
    """

    s: float = 1.0

    __name__: ClassVar[str] = "discrimination_reward"

    def __call__(self, prompts, completions, **kwargs) -> list[float]:
        rows = reward_rows(len(completions), kwargs)
        verdicts = [read_verdict(completion_text(c), {**r, "task": "pointwise"}) for c, r in zip(completions, rows)]
        right = [v.ok and v.value == r["label"] for v, r in zip(verdicts, rows)]
        _log(
            kwargs.get("log_metric"),
            "discrimination",
            {
                "accuracy": sum(right) / max(len(right), 1),
                "valid_verdict": sum(v.ok for v in verdicts) / max(len(right), 1),
            },
        )
        return [discrimination_score(ok, self.s) for ok in right]


@dataclass(kw_only=True)
class _RefinementReward:
    """What the refinement rewards share: parse the verdict, ask the actor, verify the revisions.

    Columns: ``question``, ``response`` (the judged solution), ``label`` (``correct`` /
    ``incorrect``) and ``gold_answer``. ``actor`` is not part of the YAML config: a recipe sets it.
    """

    actor: Any = None
    verifier: str = "math"
    samples: int = 1
    verifier_options: dict[str, Any] = field(default_factory=dict)

    def judge(self, completions: list[Any], rows: list[dict[str, Any]]) -> list[Judged]:
        """Per item: whether the verdict is right (None when missing or invalid), and the actor's
        revisions given the critique (none when the verdict is missing), each verified."""
        if self.actor is None:
            raise ValueError(f"{type(self).__name__} needs an actor (critics.actors) to refine with")
        texts = [completion_text(c) for c in completions]
        verdicts = [read_verdict(t, {**r, "task": "pointwise"}) for t, r in zip(texts, rows)]
        judged = [
            Judged(v.value == r["label"] if v.ok else None, r["label"] == "correct") for v, r in zip(verdicts, rows)
        ]
        asked = [i for i, j in enumerate(judged) if j.verdict_right is not None]
        outcomes = refine_and_verify(
            self.actor,
            [rows[i] for i in asked],
            [texts[i] for i in asked],
            self.samples,
            self.verifier,
            self.verifier_options,
        )
        for i, (after, changed) in zip(asked, outcomes):
            judged[i].after, judged[i].changed = after, changed
        return judged


def refine_and_verify(
    actor: Any,
    rows: list[dict[str, Any]],
    critiques: list[str],
    samples: int = 1,
    verifier: str = "math",
    verifier_options: dict[str, Any] | None = None,
) -> list[tuple[list[bool], list[bool]]]:
    """Ask ``actor`` for ``samples`` revisions of each row's ``response`` given its critique; per row,
    whether each revision's answer is correct (against ``gold_answer``) and whether it changed the
    solution's final answer."""
    from data_pipelines.verifiers import VERIFIERS

    if not rows:
        return []
    check = VERIFIERS.get(verifier)
    revisions = actor.refine([r["question"] for r in rows], [r["response"] for r in rows], list(critiques), samples)
    out = []
    for row, revised in zip(rows, revisions):
        gold, original = str(row["gold_answer"]), extract_final_answer(row["response"])
        out.append(
            (
                [check(r, gold, **(verifier_options or {})).correct is True for r in revised],
                [extract_final_answer(r) != original for r in revised],
            )
        )
    return out


@dataclass
class Judged:
    """One critique's fate: its verdict against the label, and the actor's revisions given it."""

    verdict_right: bool | None
    before: bool  # the judged solution was correct
    after: list[bool] = field(default_factory=list)  # each revision's answer is correct
    changed: list[bool] = field(default_factory=list)  # each revision's final answer differs from the solution's


def refinement_stats(judged: list[Judged]) -> dict[str, float]:
    """Discrimination accuracy, post-refinement accuracy, the four transitions and the change rate,
    as shares (over items for discrimination, over revisions for the rest; missing verdicts count
    as wrong and their item as unrefined: i->i or c->c).

    >>> stats = refinement_stats([Judged(True, False, [True], [True]), Judged(None, True)])
    >>> stats["discrimination_accuracy"], stats["refine_accuracy"], stats["i->c"], stats["c->c"], stats["change_rate"]
    (0.5, 1.0, 0.5, 0.5, 0.5)
    """
    counts = Counter()
    for j in judged:
        afters = j.after or [j.before]  # unrefined: the solution stands
        changes = j.changed or [False]
        for after, changed in zip(afters, changes):
            weight = 1 / len(afters)
            counts[f"{'c' if j.before else 'i'}->{'c' if after else 'i'}"] += weight
            counts["correct after"] += weight * after
            counts["changed"] += weight * changed
    n = max(len(judged), 1)
    return {
        "discrimination_accuracy": sum(bool(j.verdict_right) for j in judged) / n,
        "refine_accuracy": counts["correct after"] / n,
        **{t: counts[t] / n for t in ("c->c", "c->i", "i->c", "i->i")},
        "change_rate": counts["changed"] / n,
    }


def _log(log_metric: Any, prefix: str, stats: dict[str, float]) -> None:
    if callable(log_metric):
        for name, value in stats.items():
            log_metric(f"{prefix}/{name}", value)


@dataclass(kw_only=True)
class CritiqueRLStageTwoReward(_RefinementReward):
    """Critique-RL stage II: ``stage_two_score`` averaged over the actor's revisions."""

    mode: RefineMode = "refine"
    discrimination_weight: float = 0.2

    __name__: ClassVar[str] = "critique_rl_stage_two_reward"

    def __call__(self, prompts, completions, **kwargs) -> list[float]:
        rows = reward_rows(len(completions), kwargs)
        judged = self.judge(completions, rows)
        _log(kwargs.get("log_metric"), "refine", refinement_stats(judged))
        out = []
        for j in judged:
            scores = [
                stage_two_score(j.verdict_right, j.before, after, self.mode, self.discrimination_weight)
                for after in j.after
            ] or [-1.0]
            out.append(sum(scores) / len(scores))
        return out


@dataclass(kw_only=True)
class RefCriticReward(_RefinementReward):
    """RefCritic's dual reward: ``refcritic_score`` with K = ``samples`` refinements."""

    lam: float = 1.0
    samples: int = 4

    __name__: ClassVar[str] = "refcritic_reward"

    def __call__(self, prompts, completions, **kwargs) -> list[float]:
        rows = reward_rows(len(completions), kwargs)
        judged = self.judge(completions, rows)
        _log(kwargs.get("log_metric"), "refine", refinement_stats(judged))
        return [refcritic_score(j.verdict_right, j.after, self.lam) for j in judged]
