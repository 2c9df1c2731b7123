r"""Rewards for critics that teach (Critique-RL, RefCritic): discrimination and refinement.

A critique is judged twice: by its verdict against the label (discrimination), and by what a
frozen actor makes of it (refinement: the actor revises the solution given the critique, and a
verifier checks the revision against the gold answer). The scoring rules are plain functions;
the reward classes wire them to an actor with TRL's reward signature. (They join the YAML
registry with the ``critique_rl`` and ``refcritic`` recipes, which set their actor.)

An actor is any object with ``refine(questions, solutions, critiques, n) -> list[list[str]]``
(``n`` revisions per item), e.g. the actors of ``critics.actors``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from critics.rewards.base import completion_text, reward_rows
from critics.templates import quoted_texts
from critics.verdicts import parse_verdict

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


def stage_two_score(verdict_right: bool | None, before: bool, after: bool, mode: RefineMode = "refine",
                    s: float = 0.2) -> float:
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
        verdicts = [parse_verdict(completion_text(c), "pointwise", quoted=quoted_texts({**r, "task": "pointwise"}))
                    for c, r in zip(completions, rows)]
        return [discrimination_score(v.ok and v.value == r["label"], self.s) for v, r in zip(verdicts, rows)]


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

    def judge(self, completions: list[Any], rows: list[dict[str, Any]]) -> tuple[list[bool | None], list[list[bool]]]:
        """Per item: whether the verdict is right (None when missing or invalid), and the
        correctness of each refined answer (empty when the verdict is missing)."""
        from data_pipelines.verifiers import VERIFIERS

        if self.actor is None:
            raise ValueError(f"{type(self).__name__} needs an actor (critics.actors) to refine with")
        texts = [completion_text(c) for c in completions]
        verdicts = [parse_verdict(t, "pointwise", quoted=quoted_texts({**r, "task": "pointwise"}))
                    for t, r in zip(texts, rows)]
        right = [v.value == r["label"] if v.ok else None for v, r in zip(verdicts, rows)]
        asked = [i for i, ok in enumerate(right) if ok is not None]
        revisions = self.actor.refine([rows[i]["question"] for i in asked], [rows[i]["response"] for i in asked],
                                      [texts[i] for i in asked], self.samples) if asked else []
        check = VERIFIERS.get(self.verifier)
        refined: list[list[bool]] = [[] for _ in rows]
        for i, revised in zip(asked, revisions):
            refined[i] = [check(r, str(rows[i]["gold_answer"]), **self.verifier_options).correct is True for r in revised]
        return right, refined


@dataclass(kw_only=True)
class CritiqueRLStageTwoReward(_RefinementReward):
    """Critique-RL stage II: ``stage_two_score`` averaged over the actor's revisions."""

    mode: RefineMode = "refine"
    discrimination_weight: float = 0.2

    __name__: ClassVar[str] = "critique_rl_stage_two_reward"

    def __call__(self, prompts, completions, **kwargs) -> list[float]:
        rows = reward_rows(len(completions), kwargs)
        right, refined = self.judge(completions, rows)
        out = []
        for ok, row, revisions in zip(right, rows, refined):
            before = row["label"] == "correct"
            scores = [stage_two_score(ok, before, after, self.mode, self.discrimination_weight)
                      for after in revisions] or [-1.0]
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
        right, refined = self.judge(completions, rows)
        return [refcritic_score(ok, revisions, self.lam) for ok, revisions in zip(right, refined)]
