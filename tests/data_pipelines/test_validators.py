"""RLAC validators (pass / fail / invalid per task), the strict check parser, and the fallback accounting."""

from __future__ import annotations

import json
import random

import pytest

from critics.judging.checks import ParsedCheck, parse_check, resolve_check
from data_pipelines import sandbox as sandbox_module
from data_pipelines.builders.adversarial import AdversarialBuilder
from data_pipelines.sandbox import SandboxLimits
from data_pipelines.sources.code import HumanEval
from data_pipelines.verifiers.validators import (
    VALIDATORS,
    CodeValidator,
    FactualValidator,
    SyntheticSumsValidator,
    Validation,
    synthetic_factual_task,
)

needs_sandbox = pytest.mark.skipif(sandbox_module.available_backends() == ["none"], reason="no sandbox backend here")
LIMITS = SandboxLimits(cpu_seconds=2, wall_seconds=2, memory_mb=512)


def test_registry_names_the_three_validators():
    assert VALIDATORS.names() == ["code", "factual", "synthetic_sums"]
    assert VALIDATORS.get("factual") is FactualValidator
    with pytest.raises(KeyError, match="did you mean 'factual'"):
        VALIDATORS.get("factural")


def test_validation_rejects_an_unknown_outcome():
    with pytest.raises(ValueError, match="outcome"):
        Validation("maybe", "?")


# ---------------------------------------------------------------------------- synthetic sums
SUMS = {"items": [[1, 2], [3, 4], [10, -3]]}


@pytest.mark.parametrize(
    "output, check, outcome, reason",
    [
        ("1+2=3\n3+4=7\n10+-3=7", "1", "pass", "correct"),
        ("1+2=3\n\n  3 + 4 = 7  \n", "1", "pass", "correct"),
        ("1+2=3\n3+4=8\n10+-3=7", "1", "fail", "wrong sum: 3+4=7"),
        ("1+2=3\n4+3=7\n10+-3=7", "1", "fail", "line 1 is about 4+3, not 3+4"),
        ("1+2=3\nseven\n10+-3=7", "1", "fail", "line 1 is not 'a+b=c'"),
        ("1+2=3\n3+4=\u0667", "1", "fail", "line 1 is not 'a+b=c'"),  # an Arabic-Indic 7 is not ASCII
        ("1+2=3", "2", "fail", "line 2 is missing"),
        (None, "0", "fail", "line 0 is missing"),
        ("1+2=3", "3", "invalid", "index 3 is out of range (3 items)"),
        ("1+2=3", "-1", "invalid", "the check is not an item index"),
        ("1+2=3", "01", "invalid", "the check is not an item index"),
        ("1+2=3", "zero", "invalid", "the check is not an item index"),
        ("1+2=3", None, "invalid", "the check is not an item index"),
    ],
)
def test_synthetic_sums_table(output, check, outcome, reason):
    result = SyntheticSumsValidator().validate(output, check, SUMS)
    assert (result.outcome, result.reason) == (outcome, reason)
    assert result.calls == (0 if outcome == "invalid" else 1)  # a malformed check costs no call


def test_synthetic_sums_all_checks_and_spec_errors():
    assert SyntheticSumsValidator().all_checks("anything", SUMS) == ["0", "1", "2"]
    with pytest.raises(ValueError, match="integer pairs"):
        SyntheticSumsValidator().validate("1+2=3", "0", {"items": [[1, "2"]]})


# ----------------------------------------------------------------------------------- factual
FACTS = {
    "facts": ["Zorvan | color | red", "Zorvan | home | Lake Ulm", "Zorvan | pet | a goat", "Zorvan | pet | a crow"]
}
CLAIMS = (
    "Zorvan | color | red\n- zorvan | Home | Mount Kel.\nZorvan | food | figs\nZorvan likes figs\nZorvan | pet | a crow"
)


@pytest.mark.parametrize(
    "check, outcome, reason",
    [
        ("Zorvan | color | red", "pass", "supported"),
        ("ZORVAN | Color | Red.", "pass", "supported"),  # normalised like the output's lines
        ("Zorvan | pet | a crow", "pass", "supported"),  # one of two values of a relation
        ("zorvan | Home | Mount Kel.", "fail", "contradicted: the facts say lake ulm"),
        ("Zorvan likes figs", "fail", "not a 'subject | relation | value' claim"),
        ("Zorvan | food | figs", "invalid", "no fact covers this subject and relation"),
        ("Zorvan | color | blue", "invalid", "not one of the output's claims"),  # true or not, it is not in the output
        ("Zorvan | home | Lake Ulm", "invalid", "not one of the output's claims"),
        ("Zorvan | color | red\nZorvan | pet | a crow", "invalid", "the check is not one claim line"),
        ("", "invalid", "the check is not one claim line"),
    ],
)
def test_factual_table(check, outcome, reason):
    result = FactualValidator().validate(CLAIMS, check, FACTS)
    assert (result.outcome, result.reason) == (outcome, reason)


def test_factual_all_checks_are_the_distinct_lines_and_bad_facts_raise():
    assert FactualValidator().all_checks(CLAIMS + "\n\nzorvan | color | RED", FACTS) == [
        "Zorvan | color | red",
        "- zorvan | Home | Mount Kel.",
        "Zorvan | food | figs",
        "Zorvan likes figs",
        "Zorvan | pet | a crow",
    ]
    assert FactualValidator().all_checks(None, FACTS) == []
    with pytest.raises(ValueError, match="not 'subject | relation | value'"):
        FactualValidator().validate("a | b | c", "a | b | c", {"facts": ["a | b"]})


def test_synthetic_factual_task_is_deterministic_and_checkable():
    records = synthetic_factual_task(20, seed=3, claims=2)
    assert [r.to_row() for r in records] == [r.to_row() for r in synthetic_factual_task(20, seed=3, claims=2)]
    assert [r.facts for r in records] != [r.facts for r in synthetic_factual_task(20, seed=4, claims=2)]
    assert len({json.loads(r.metadata)["subject"] for r in records}) == 20
    validator = FactualValidator()
    for record in records:
        record.validate()
        assert "Write 2 facts about" in record.question
        spec = record.to_row()
        honest = "\n".join(record.facts[:2])
        assert [validator.validate(honest, c, spec).outcome for c in validator.all_checks(honest, spec)] == ["pass"] * 2
        subject, relation, value = record.facts[0].split(" | ")
        lie = f"{subject} | {relation} | {'blue' if value != 'blue' else 'red'}"
        assert validator.validate(lie, lie, spec).outcome == "fail"
    with pytest.raises(ValueError, match="claims"):
        synthetic_factual_task(1, seed=0, claims=9)


# -------------------------------------------------------------------------------------- code
REFERENCE = (
    "def f(xs, k=1):\n    if k < 0:\n        raise ValueError('negative k')\n    if k == 99:\n"
    "        while True:\n            pass\n    return {str(x * k) for x in xs}\n"
)
CODE = {
    "reference_solution": REFERENCE,
    "entry_point": "f",
    "tests": [
        "def check(candidate):\n    assert candidate([1, 2]) == {'1', '2'}\n"
        "    assert candidate([], k=3) == set()\n    assert candidate(list(range(5))) == 5\n"
        "    assert candidate([1, 2]) == {'1', '2'}\n\ncheck(f)\n"
    ],
}
RIGHT = "def f(xs, k=1):\n    out = set()\n    for x in xs:\n        out.add(str(k * x))\n    return out\n"


@pytest.fixture(scope="module")
def code_validator():
    with CodeValidator(LIMITS, workers=2) as validator:
        yield validator


@needs_sandbox
@pytest.mark.parametrize(
    "program, check, outcome, reason",
    [
        (RIGHT, "[1, 2], 3", "pass", "same output"),
        (RIGHT, "xs=['a'], k=2", "pass", "same output"),
        ("Here it is:\n```python\n" + RIGHT + "```\nDone.", "[1, 2], 3", "pass", "same output"),
        ("def f(xs, k=1):\n    return {str(x) for x in xs}\n", "[1, 2], 3", "fail", "wrong output"),
        ("def f(xs, k=1):\n    return sorted(str(x * k) for x in xs)\n", "[1, 2]", "fail", "wrong output"),
        (
            "def f(xs, k=1):\n    return {str(x * k) for x in xs[1:]} | {str(xs[0] * k)}\n",
            "[]",
            "fail",
            "crashed (IndexError)",
        ),
        ("def f(xs, k=1):\n    while True:\n        pass\n", "[1]", "fail", "timeout"),
        ("def f(xs, k=1)\n    return set()\n", "[1]", "fail", "syntax error"),
        ("import sys\ndef f(xs, k=1):\n    return set()\nsys.exit(0)\n", "[1]", "fail", "exited early"),
        ("def g(xs):\n    return set()\n", "[1]", "fail", "crashed (NameError)"),
        (RIGHT, "[1], -1", "invalid", "the reference rejects this input (ValueError)"),
        (RIGHT, "[1], 99", "invalid", "the reference rejects this input (TimeoutError)"),
        (RIGHT, "3", "invalid", "the reference rejects this input (TypeError)"),
        (RIGHT, "list(range(3))", "invalid", "the check is not a literal argument list"),
        (RIGHT, "[1]); import os; (0", "invalid", "the check is not a literal argument list"),
        (RIGHT, "", "invalid", "the check is not a literal argument list"),
    ],
)
def test_code_table(code_validator, program, check, outcome, reason):
    assert code_validator.validate(program, check, CODE) == Validation(outcome, reason, 0 if "literal" in reason else 1)


@needs_sandbox
def test_code_batch_keeps_order_and_survives_a_reference_that_loops(code_validator):
    wrong = "def f(xs, k=1):\n    return {str(x + k) for x in xs}\n"
    checks = ["[1, 2], 2", "[5], 99", "['ab', 'cd'], 2", "[0], 1", "[7], -1", "[3, 3], 2"]
    results = code_validator.validate_many([(p, c, CODE) for p in (RIGHT, wrong) for c in checks])
    assert [r.outcome for r in results] == [
        "pass",
        "invalid",
        "pass",
        "pass",
        "invalid",
        "pass",
        "fail",
        "invalid",
        "fail",
        "fail",
        "invalid",
        "fail",
    ]
    assert results[8].reason == "crashed (TypeError)"  # 'ab' + 2
    assert results[9].reason == "wrong output" and results[10].reason.endswith("(ValueError)")


@needs_sandbox
def test_code_sets_of_strings_compare_across_workers_with_different_hash_seeds(code_validator):
    words = [f"'{chr(97 + i)}{j}'" for i in range(26) for j in range(3)]
    checks = [f"[{', '.join(words[i : i + 20])}]" for i in range(0, len(words) - 20, 3)]
    assert {r.outcome for r in code_validator.validate_many([(RIGHT, c, CODE) for c in checks])} == {"pass"}


@needs_sandbox
def test_code_all_checks_come_from_the_literal_inputs_of_the_tests(code_validator):
    # list(range(5)) is computed, so it is not a check; the repeated input counts once
    assert code_validator.all_checks("", CODE) == ["[1, 2]", "[], k=3"]
    mbpp = {
        "reference_solution": "def inc(x):\n    return x + 1\n",
        "entry_point": "inc",
        "tests": ["assert inc(1) == 2\nassert inc(-5)==-4\nfor i in range(3):\n    assert inc(i) == i + 1\n"],
    }
    assert code_validator.all_checks("", mbpp) == ["1", "-5"]
    assert code_validator.all_checks("", {**mbpp, "entry_point": None}) == []
    no_reference = code_validator.validate(RIGHT, "[1]", {**CODE, "reference_solution": None})
    assert no_reference == Validation("invalid", "the spec has no reference solution and entry point", 0)
    with pytest.raises(ValueError, match="identifier"):
        code_validator.validate(RIGHT, "[1]", {**CODE, "entry_point": "f(); import os"})


# ------------------------------------------------------------------------------------ parser
@pytest.mark.parametrize(
    "text, kind, check, reason",
    [
        (r"The 2nd line is wrong. \boxed{1}", "synthetic_sums", "1", "ok"),
        (r"\boxed{1} ... so \boxed{ 1 }.", "synthetic_sums", "1", "ok"),  # the same check twice
        (r"<think>maybe \boxed{0}</think> no: \boxed{2}", "synthetic_sums", "2", "ok"),  # think boxes never count
        ("The sum on line 2 is wrong.", "synthetic_sums", None, "no check"),
        (r"\boxed{1} or \boxed{2}", "synthetic_sums", None, "conflicting checks"),
        (r"step \boxed{5} is key; check \boxed{1}", "synthetic_sums", None, "conflicting checks"),
        (r"\boxed{1", "synthetic_sums", None, "malformed box"),
        (r"\boxed{\boxed{1}}", "synthetic_sums", None, "malformed box"),
        (r"</think>\boxed{1}", "synthetic_sums", None, "malformed think block"),
        (r"\boxed{1} and then more words", "synthetic_sums", None, "text after the check"),
        (r"\boxed{one}", "synthetic_sums", None, "invalid check"),
        (r"\boxed{}", "synthetic_sums", None, "invalid check"),
        ("\\boxed{\uff11}", "synthetic_sums", None, "invalid check"),  # fullwidth 1
        (r"\boxed{[1,2],  {'a': [3]}}", "code", "[1, 2], {'a': [3]}", "ok"),
        (r"\boxed{(3, [1, 2])}", "code", "(3, [1, 2])", "ok"),  # one tuple argument, not unwrapped
        (r"\boxed{[1, 2]} then \boxed{[1,2]}", "code", "[1, 2]", "ok"),  # the same check written twice
        (r"\boxed{[1, 2]} then \boxed{[2, 1]}", "code", None, "conflicting checks"),
        (r"\boxed{__import__('os').system('x')}", "code", None, "invalid check"),
        (r"\boxed{'}'}", "code", None, "text after the check"),  # an unbalanced brace in a string ends the box
        (r"\boxed{Zorvan | home | Lake Ulm}", "factual", "Zorvan | home | Lake Ulm", "ok"),
        (
            r"\boxed{zorvan | home | lake ulm} i.e. \boxed{\text{Zorvan | Home | Lake Ulm.}}",
            "factual",
            "Zorvan | Home | Lake Ulm",
            "ok",
        ),
        (r"\boxed{Zorvan | home | Lake Ulm} \boxed{Zorvan | color | red}", "factual", None, "conflicting checks"),
    ],
)
def test_parser_table(text, kind, check, reason):
    assert parse_check(text, kind) == ParsedCheck(check, reason)


def test_parser_ignores_boxes_copied_from_the_judged_output():
    output = "1+2=3\nso the check is \\boxed{1} obviously\n"
    copied = "The output says: so the check is \\boxed{1} obviously"
    assert parse_check(copied, "synthetic_sums", quoted=[output]).reason == "check inside the quoted output"
    own = copied + "\nMy check: \\boxed{0}"
    assert parse_check(own, "synthetic_sums", quoted=[output]) == ParsedCheck("0", "ok")
    # the critic's own box, quoted afterwards from the output, is no longer at the end
    assert parse_check("\\boxed{0}\n" + copied, "synthetic_sums", quoted=[output]).reason == "text after the check"
    assert parse_check("x" * 50 + "\\boxed{0}", "synthetic_sums", max_chars=40).reason == "too long"
    with pytest.raises(ValueError, match="valid: code, factual, synthetic_sums"):
        parse_check("\\boxed{0}", "pointwise")


# ------------------------------------------------------------------------ fallback accounting
class CountingValidator(SyntheticSumsValidator):
    def __init__(self):
        self.validate_calls, self.all_checks_calls = 0, 0

    def validate(self, output, check, spec):
        self.validate_calls += 1
        return super().validate(output, check, spec)

    def all_checks(self, output, spec):
        self.all_checks_calls += 1
        return super().all_checks(output, spec)


OUTPUT = "1+2=3\n3+4=8\n10+-3=7"


@pytest.mark.parametrize(
    "parsed, fallback, check, extra, how",
    [
        (ParsedCheck("1", "ok"), "random", "1", 0, "critic"),
        (ParsedCheck("1", "ok"), "none", "1", 0, "critic"),
        (ParsedCheck(None, "no check"), "none", None, 0, "none (no check)"),
        (ParsedCheck(None, "conflicting checks"), "random", "DRAWN", 1, "random (conflicting checks)"),
        (ParsedCheck("9", "ok"), "none", None, 0, "none (invalid check: index 9 is out of range (3 items))"),
        (ParsedCheck("9", "ok"), "random", "DRAWN", 1, "random (invalid check: index 9 is out of range (3 items))"),
    ],
)
def test_fallback_accounting(parsed, fallback, check, extra, how):
    validator, rng = CountingValidator(), random.Random(0)
    got = resolve_check(parsed, OUTPUT, SUMS, validator, rng, fallback)
    expected_draw = random.Random(0).choice(["0", "1", "2"])
    assert got == (expected_draw if check == "DRAWN" else check, extra, how)
    assert validator.all_checks_calls == extra  # the pool is read only for a random draw
    assert validator.validate_calls == (parsed.check is not None)


def test_an_invalid_or_missing_check_never_scores_a_pass():
    validator, rng = SyntheticSumsValidator(), random.Random(1)
    for parsed in (ParsedCheck(None, "no check"), ParsedCheck("7", "ok")):
        check, extra, _ = resolve_check(parsed, OUTPUT, SUMS, validator, rng, "none")
        assert (check, extra) == (None, 0)
        # random draws follow the pool: over many draws the wrong line 1 is found, and a check
        # is always a real index of the pool, never the invalid "7"
        draws = {resolve_check(parsed, OUTPUT, SUMS, validator, rng, "random")[0] for _ in range(50)}
        assert draws == {"0", "1", "2"}
    # with nothing to draw from, a random fallback still gives None, not a pass
    factual = FactualValidator()
    assert resolve_check(ParsedCheck(None, "no check"), "", FACTS, factual, rng, "random") == (
        None,
        0,
        "none (no check; no checks to draw from)",
    )
    with pytest.raises(ValueError, match="fallback"):
        resolve_check(ParsedCheck("1", "ok"), OUTPUT, SUMS, validator, rng, "first")


def test_a_validation_passed_in_is_not_recomputed():
    validator = CountingValidator()
    given = Validation("fail", "wrong sum: 3+4=7")
    assert resolve_check(
        ParsedCheck("1", "ok"), OUTPUT, SUMS, validator, random.Random(0), "random", validation=given
    ) == ("1", 0, "critic")
    invalid = Validation("invalid", "index 9 is out of range (3 items)", 0)
    check, extra, how = resolve_check(
        ParsedCheck("9", "ok"), OUTPUT, SUMS, validator, random.Random(0), "random", validation=invalid
    )
    assert (extra, how.startswith("random (invalid check")) == (1, True)
    assert validator.validate_calls == 0


# --------------------------------------------------------------------------- real HumanEval
@needs_sandbox
@pytest.mark.shared_data
def test_humaneval_canonical_solutions_pass_every_check_and_a_wrong_program_fails_them(shared_data):
    source = HumanEval(path=str(shared_data / "code" / "humaneval_for_code_generation.jsonl"))
    rows = [row for row in source.rows() if row.data is not None][:6]
    specs = [AdversarialBuilder().build(row.id, row.data, seed=0).to_row() for row in rows]
    items_right, items_wrong = [], []
    with CodeValidator(SandboxLimits(cpu_seconds=5, wall_seconds=5), workers=2) as validator:
        for spec in specs:
            checks = validator.all_checks("", spec)
            assert len(checks) >= 3, spec["id"]
            entry = spec["entry_point"]
            # deliberately wrong: the canonical answer, wrapped in a one-element list
            wrong = (
                spec["reference_solution"]
                + f"\n_right = {entry}\ndef {entry}(*a, **k):\n    return [_right(*a, **k)]\n"
            )
            items_right += [(spec["reference_solution"], c, spec) for c in checks]
            items_wrong += [(wrong, c, spec) for c in checks]
        right, wrong = validator.validate_many(items_right), validator.validate_many(items_wrong)
    assert {(r.outcome, r.reason) for r in right} == {("pass", "same output")}
    assert {r.outcome for r in wrong} == {"fail"}
