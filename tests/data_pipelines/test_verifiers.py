"""Verifiers: answer conventions, undecidable answers, deadlines in every thread, real GSM8K labels."""

from __future__ import annotations

import json
import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from data_pipelines.verifiers import (
    VERIFIERS,
    Verdict,
    choice_verifier,
    exact_verifier,
    extract_final_answer,
    math_verifier,
)
from data_pipelines.verifiers import math as math_module

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
needs_shared_data = pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="needs ../shared/data")

# Inputs that make sympy run for minutes or more if nothing stops it.
PATHOLOGICAL = [
    r"\boxed{10^{10^{10}}}",
    r"\boxed{(10^{7})!}",
    "\\boxed{" + "(" * 400 + "1" + ")" * 400 + "}",
    "\\boxed{" + "\\frac{1}{" * 60 + "2" + "}" * 60 + "}",
]
GSM8K_GOLD = (
    "Janet sells 16 - 3 - 4 = <<16-3-4=9>>9 duck eggs a day.\n"
    "She makes 9 * 2 = $<<9*2=18>>18 every day at the farmer's market.\n#### 18"
)


def test_registered_by_name():
    assert VERIFIERS.get("math") is math_verifier
    assert VERIFIERS.get("exact") is exact_verifier
    assert VERIFIERS.get("choice") is choice_verifier
    with pytest.raises(KeyError, match="did you mean 'math'"):
        VERIFIERS.get("maths")


# ------------------------------------------------------------------------------ extraction


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("9 * 2 = 18\n#### 18", "18"),
        ("She makes 9 * 2 = $<<9*2=18>>18\nA: 18", "18"),
        ("So she makes $18 a day. The answer is 18.", "18"),
        (r"Thus $x = \boxed{\frac{\sqrt{3}}{2}}$.", r"\frac{\sqrt{3}}{2}"),
        (r"The final answer is $\boxed{(3, \frac{\pi}{2})}$", r"(3, \frac{\pi}{2})"),
        ("**Final Answer:** 42", "42"),
        ("The answer is $1,000.", "$1,000"),
        ("The answer is 5, because 2 + 3 = 5 and 7 - 2 = 4", "5"),
        ("she has 16 - 3 - 4 = 9 eggs left and earns 18", "18"),
        # a calculator annotation is not an answer, even when it is the last thing written
        ("so she has 16 - 3 - 4 = <<16-3-4=9>>", "4"),
        # the last strong anchor wins; a later "check our answer:" phrase does not replace it
        (r"So $n \equiv \boxed{44}$. We may check our answer: $17\cdot 44 = 748$.", "44"),
        ("\\boxed{18} ... more thinking ... \nA: 19", "19"),
        ("nothing to see", None),
        ("\\boxed{" * 1000, None),
    ],
)
def test_extract_final_answer(text, expected):
    assert extract_final_answer(text) == expected


def test_extract_final_answer_without_last_number_fallback():
    assert extract_final_answer("16 - 3 - 4 = 9", last_number=False) is None
    assert extract_final_answer("A: 9", last_number=False) == "9"


# ------------------------------------------------------------------------------- math verdicts


@pytest.mark.parametrize(
    ("response", "gold", "correct"),
    [
        ("She makes 9 * 2 = $<<9*2=18>>18\nA: 18", "18", True),
        ("She makes 9 * 2 = $<<9*2=18>>18\nA: 18", GSM8K_GOLD, True),
        ("She makes 9 * 2 = $<<9*2=18>>18\nA: 18", "A: 18", True),
        ("#### 18", "18", True),
        ("The answer is $18.", "18", True),
        ("The answer is 18.00 dollars.", "18", True),
        ("A: 1,000", "1000", True),
        ("A: 1000", "1,000", True),
        ("A: 18%", "18", True),
        ("A: 18%", "0.18", True),
        ("A: -5", "-5", True),
        ("A: $-5", "-5", True),
        ("A: 17", "18", False),
        ("A: 180", "18", False),
        ("A: 1.8", "18", False),
        ("She earns 18 dollars a day", "18", True),
        # calculator annotations must not be read: the model wrote 26, its annotation says 18
        ("She makes 13 * 2 = $<<9*2=18>>26\nA: 26", "18", False),
        (r"so the answer is $\boxed{\dfrac{2}{4}}$", r"\frac{1}{2}", True),
        (r"\boxed{0.5}", r"\frac{1}{2}", True),
        (r"\boxed{\frac{36}{2}}", "18", True),
        (r"\boxed{(3, \frac{\pi}{2})}", r"\left( 3, \frac{\pi}{2} \right)", True),
        (r"\boxed{(3, \frac{\pi}{3})}", r"\left( 3, \frac{\pi}{2} \right)", False),
        (r"\boxed{\text{(C)}}", r"\text{(C)}", True),
        (r"\boxed{\text{Navin}}", r"\text{Navin}", True),
        (r"\boxed{2x}", "2", False),
    ],
)
def test_math_verifier_conventions(response, gold, correct):
    verdict = math_verifier(response, gold)
    assert isinstance(verdict, Verdict)
    assert verdict.correct is correct, verdict


@pytest.mark.parametrize(
    ("response", "gold", "reason"),
    [
        ("I don't know.", "18", "no final answer found"),
        ("", "18", "no final answer found"),
        (None, "18", "no final answer found"),
        (r"\boxed{@@@}", "18", "could not parse the answer"),
        (r"\boxed{18}", r"\frac{}{}", "could not parse the gold answer"),
        (r"\boxed{18}", "   ", "empty gold answer"),
        ("A: " + "x+" * 1000 + "1", "18", "answer longer than 1000 characters"),
    ],
)
def test_math_verifier_undecidable_is_none(response, gold, reason):
    verdict = math_verifier(response, gold)
    assert verdict.correct is None
    assert verdict.reason == reason


def test_math_verifier_rejects_non_positive_timeout():
    with pytest.raises(ValueError, match="timeout"):
        math_verifier("A: 1", "1", timeout=0)


# ---------------------------------------------------------------------------------- deadlines


@pytest.mark.parametrize("response", PATHOLOGICAL)
def test_pathological_input_times_out_in_main_thread(response):
    start = time.monotonic()
    verdict = math_verifier(response, "18", timeout=0.5)
    assert verdict.correct is None and verdict.reason == "timed out after 0.5s", verdict
    assert time.monotonic() - start < 10  # bound on a hang, not a performance figure


@pytest.mark.parametrize(
    "response",
    [
        "A: 1" + " \t" * 100_000 + "2",  # whitespace runs that would make regexes backtrack
        "The answer is 1" + " " * 100_000 + "%x",
        "word " * 200_000 + "\nA: 18",
        "\\boxed{" * 100_000,
        "<<" * 100_000,
    ],
)
def test_huge_responses_do_not_hang(response):
    start = time.monotonic()
    math_verifier(response, "18", timeout=0.5)
    choice_verifier(response, "A")
    exact_verifier(response, "18")
    assert time.monotonic() - start < 10  # bound on a hang, not a performance figure


def test_alarm_restores_an_outer_timer_and_handler():
    fired = []
    previous = signal.signal(signal.SIGALRM, lambda *_: fired.append(True))
    try:
        signal.setitimer(signal.ITIMER_REAL, 30)
        assert math_verifier(r"\boxed{\frac{36}{2}}", "18").correct is True
        assert math_verifier(PATHOLOGICAL[0], "18", timeout=0.2).correct is None
        remaining, _ = signal.getitimer(signal.ITIMER_REAL)
        assert 0 < remaining <= 30
        assert not fired
        signal.setitimer(signal.ITIMER_REAL, 0.05)
        time.sleep(0.3)
        assert fired  # the outer handler is back in place
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def test_worker_threads_get_verdicts_and_deadlines():
    cases = [
        (r"\boxed{\frac{36}{2}}", True),
        ("A: 18", True),
        (r"\boxed{\sqrt{325}}", False),
        (PATHOLOGICAL[0], None),
        (PATHOLOGICAL[1], None),
    ]
    with ThreadPoolExecutor(max_workers=2) as pool:
        verdicts = list(pool.map(lambda case: math_verifier(case[0], "18", timeout=1.0), cases * 2))
    assert [v.correct for v in verdicts] == [correct for _, correct in cases] * 2
    assert all(v.reason == "timed out after 1s" for v in verdicts if v.correct is None)


def test_stuck_helper_process_is_killed_and_replaced():
    """A helper stuck where its own alarm cannot reach (here: stopped) is killed after the deadline."""

    def scenario():
        assert math_verifier(r"\boxed{\frac{36}{2}}", "18").correct is True  # starts the helper
        helper = math_module._thread_state.helper
        os.kill(helper.process.pid, signal.SIGSTOP)
        stuck = math_verifier(r"\boxed{\frac{36}{2}}", "18", timeout=0.5)
        killed = not helper.process.is_alive()
        after = math_verifier(r"\boxed{\frac{36}{2}}", "18")
        return stuck, killed, after

    with ThreadPoolExecutor(max_workers=1) as pool:
        stuck, killed, after = pool.submit(scenario).result(timeout=120)
    assert stuck.correct is None and stuck.reason == "timed out after 0.5s"
    assert killed
    assert after.correct is True


# ------------------------------------------------------------------------------ exact / choice


@pytest.mark.parametrize(
    ("response", "gold", "correct"),
    [
        ("Paris", "paris", True),
        ("  Paris.  ", "Paris", True),
        ("The  Eiffel-Tower!", "the eiffel tower", True),
        ("Thinking...\nAnswer: New York", "New York", True),
        (r"so \boxed{\text{Lyon}}", "lyon", True),
        ("3.5", "35", False),
        ("Paris, France", "Paris", False),
        ("Lyon", "Paris", False),
    ],
)
def test_exact_verifier(response, gold, correct):
    assert exact_verifier(response, gold).correct is correct


def test_exact_verifier_without_normalization_is_strict():
    assert exact_verifier("Paris", "Paris").correct is True
    assert exact_verifier("Paris.", "Paris", normalize=False).correct is False
    assert exact_verifier(" Paris ", "Paris", normalize=False).correct is True


@pytest.mark.parametrize(
    ("response", "gold", "correct"),
    [
        (r"so \boxed{B}", "B", True),
        (r"\boxed{\text{(B)}}", "B", True),
        ("Answer: (B)", "B", True),
        ("The correct answer is C.", "C", True),
        ("The answer is option D", "D", True),
        ("Paris is the capital.\nB. Paris", "b", True),
        ("(A) London", "(A)", True),
        ("B", "B", True),
        ("Answer: (C)", "B", False),
        # the latest anchor wins
        ("At first I thought the answer is A, but no.\nAnswer: B", "B", True),
    ],
)
def test_choice_verifier(response, gold, correct):
    assert choice_verifier(response, gold).correct is correct


@pytest.mark.parametrize(
    "response",
    ["I am not sure", "The answer is a bit unclear", "A. foo\nB. bar\nwhich one?", ""],
)
def test_choice_verifier_without_a_choice_is_none(response):
    assert choice_verifier(response, "A").correct is None


def test_choice_verifier_custom_choices_and_bad_gold():
    assert choice_verifier("Answer: E", "E", choices="ABCDE").correct is True
    assert choice_verifier("Answer: E", "E").correct is None  # E is no choice by default
    verdict = choice_verifier("Answer: A", "Z")
    assert verdict.correct is None and "not one of" in verdict.reason


# ---------------------------------------------------------------------------------- real data


@pytest.mark.shared_data
@needs_shared_data
def test_gsm8k_model_solutions_agree_with_their_labels():
    path = SHARED_DATA / "gsm8k" / "example_model_solutions.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    models = ("6b_finetuning", "6b_verification", "175b_finetuning", "175b_verification")
    pairs = [(row[m]["solution"], row["ground_truth"], row[m]["is_correct"]) for row in rows for m in models]
    assert len(pairs) == 5276 and sum(label for *_, label in pairs) == 2001

    start = time.perf_counter()
    verdicts = [math_verifier(solution, gold) for solution, gold, _ in pairs]
    seconds = time.perf_counter() - start
    agreement = sum(v.correct is label for v, (*_, label) in zip(verdicts, pairs)) / len(pairs)
    print(
        f"\nGSM8K model solutions: agreement {agreement:.4f} on {len(pairs)} solutions, "
        f"labelled in {seconds:.2f}s (single process)"
    )
    assert agreement >= 0.97


@pytest.mark.shared_data
@needs_shared_data
def test_gsm8k_and_math500_references_verify_against_their_gold():
    gsm8k = [json.loads(line) for line in (SHARED_DATA / "gsm8k" / "test.jsonl").read_text().splitlines()]
    assert all(math_verifier(row["answer"], row["answer"].split("####")[-1]).correct for row in gsm8k)
    math500 = [json.loads(line) for line in (SHARED_DATA / "math500" / "test.jsonl").read_text().splitlines()]
    verdicts = [math_verifier(row["solution"], row["answer"]) for row in math500]
    wrong = [(row["answer"], v) for row, v in zip(math500, verdicts) if v.correct is not True]
    assert len(wrong) <= 5, wrong[:5]
