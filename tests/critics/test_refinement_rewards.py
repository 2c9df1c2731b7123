"""Critique-RL and RefCritic rewards: every mode on all four transitions, and missing or double verdicts."""

from __future__ import annotations

import pytest

from critics.rewards.refinement import (
    CritiqueRLStageTwoReward,
    DiscriminationReward,
    RefCriticReward,
    refinement_score,
)

TRANSITIONS = [(True, True), (True, False), (False, True), (False, False)]  # (before, after)


@pytest.mark.parametrize(
    "mode, expected",
    [
        ("refine", [1.0, 0.0, 1.0, 0.0]),
        ("delta", [0.0, -1.0, 1.0, 0.0]),
        ("correct", [0.2, 0.0, 1.0, 0.0]),
    ],
)
def test_each_mode_on_all_four_transitions(mode, expected):
    assert [refinement_score(before, after, mode) for before, after in TRANSITIONS] == expected


def test_an_unknown_mode_is_an_error_naming_the_modes():
    with pytest.raises(ValueError, match="refine, delta or correct"):
        refinement_score(True, True, "better")


class ScriptedActor:
    """Refines to the gold answer when the critique says "fix", else keeps the solution's answer."""

    def __init__(self):
        self.calls = []

    def refine(self, questions, solutions, critiques, n):
        self.calls.append(len(questions))
        return [[r"\boxed{4}" if "fix" in c else s] * n for s, c in zip(solutions, critiques)]


def rows(*labels_and_solutions):
    labels, solutions = zip(*labels_and_solutions)
    n = len(labels)
    return {"question": ["2+2?"] * n, "response": list(solutions), "label": list(labels), "gold_answer": ["4"] * n}


@pytest.mark.parametrize("mode", ["refine", "delta", "correct"])
def test_stage_two_on_all_four_transitions_and_bad_verdicts(mode):
    actor = ScriptedActor()
    reward = CritiqueRLStageTwoReward(actor=actor, verifier="exact", mode=mode)
    columns = rows(
        ("correct", r"\boxed{4}"),
        ("correct", r"\boxed{4}"),
        ("incorrect", r"\boxed{5}"),
        ("incorrect", r"\boxed{5}"),
        ("incorrect", r"\boxed{5}"),
        ("incorrect", r"\boxed{5}"),
    )
    critiques = [
        r"Right. \boxed{Correct}",  # c -> c
        r"Right, but fix it anyway? no: \boxed{Correct}",  # c -> c (the actor rewrites to 4)
        r"Wrong, fix the sum. \boxed{Incorrect}",  # i -> c
        r"Wrong. \boxed{Incorrect}",  # i -> i
        "Wrong, fix it.",  # no verdict
        r"fix \boxed{Incorrect} \boxed{Correct}",
    ]  # two verdicts
    out = reward(None, critiques, **columns)
    right = 0.2  # the discrimination part of a right verdict in stage II
    assert out[:4] == [
        refinement_score(True, True, mode) + right,
        refinement_score(True, True, mode) + right,
        refinement_score(False, True, mode) + right,
        refinement_score(False, False, mode) + right,
    ]
    assert out[4:] == [-1.0, -1.0]
    assert actor.calls == [4]  # no refinement is asked for a critique without a valid verdict
    if mode == "refine":
        assert set(out) <= {-1.0, 0.2, 1.2}


def test_a_wrong_verdict_is_minus_one_whatever_the_refinement():
    reward = CritiqueRLStageTwoReward(actor=ScriptedActor(), verifier="exact")
    assert reward(None, [r"fix \boxed{Correct}"], **rows(("incorrect", r"\boxed{5}"))) == [-1.0]


def test_refcritic_adds_lambda_times_the_share_of_correct_refinements():
    class Alternating:
        def refine(self, questions, solutions, critiques, n):
            return [[r"\boxed{4}" if k % 2 == 0 else r"\boxed{5}" for k in range(n)] for _ in questions]

    reward = RefCriticReward(actor=Alternating(), verifier="exact", samples=4, lam=0.5)
    out = reward(
        None,
        [r"\boxed{Incorrect}", r"\boxed{Correct}", "none"],
        **rows(("incorrect", r"\boxed{5}"), ("incorrect", r"\boxed{5}"), ("incorrect", r"\boxed{5}")),
    )
    assert out == [1.0 + 0.5 * 0.5, 0.0 + 0.5 * 0.5, 0.0]


def test_discrimination_stage_one_and_two_weights():
    out = DiscriminationReward(s=0.2)(None, [r"\boxed{Incorrect}", r"\boxed{Correct}"], label=["incorrect"] * 2)
    assert out == [0.2, -1.0]


def test_refinement_rewards_need_an_actor():
    with pytest.raises(ValueError, match="actor"):
        CritiqueRLStageTwoReward()(None, [r"\boxed{Correct}"], **rows(("correct", "4")))
