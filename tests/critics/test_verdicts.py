r"""The verdict parser: leniency a human reader would allow, strictness a reward hacker would probe."""

from __future__ import annotations

import random

import pytest

from critics.judging.tasks import normalize_verdict, parse_verdict
from critics.judging.verdicts import QUOTE_CONTEXT_CHARS, Verdict, split_think


@pytest.mark.parametrize(
    "text, task, value",
    [
        (r"\boxed{Correct}", "pointwise", "correct"),
        (r"\boxed{ Correct }", "pointwise", "correct"),
        (r"\boxed{correct}", "pointwise", "correct"),
        (r"\boxed{CORRECT}", "pointwise", "correct"),
        (r"\boxed{\text{Incorrect}}", "pointwise", "incorrect"),
        (r"\boxed{\text{ Incorrect }}", "pointwise", "incorrect"),
        (r"\boxed{Correct.}", "pointwise", "correct"),
        ("\\boxed{Correct}.  \n", "pointwise", "correct"),
        ("\\boxed{\u00a0Correct\u00a0}", "pointwise", "correct"),  # a no-break space is still whitespace
        (r"\boxed {Correct}", "pointwise", "correct"),
        (r"Verdict: $\boxed{Incorrect}$ because 3 + 4 is 7.", "pointwise", "incorrect"),
        (r"\boxed{B}", "pairwise", "B"),
        (r"\boxed{\textbf{B}}", "pairwise", "B"),
        (r"\boxed{(B)}", "pairwise", "B"),
        (r"\boxed{\text{(a)}}", "pairwise", "A"),
        (r"\boxed{b}", "pairwise", "B"),
        (r"\boxed{0}", "step", 0),
        (r"\boxed{12}", "step", 12),
        (r"\boxed{ -1 }", "step", -1),
        (r"\boxed{\mathbf{3}}", "step", 3),
    ],
)
def test_lenient_spellings_count(text: str, task: str, value: str | int) -> None:
    assert parse_verdict(text, task) == Verdict(value, True, "ok")


@pytest.mark.parametrize(
    "text, task, reason",
    [
        ("The solution is right.", "pointwise", "no verdict"),
        (r"\boxed{}", "pointwise", "invalid verdict"),
        (r"\boxed{Correct or Incorrect}", "pointwise", "invalid verdict"),
        (r"\boxed{Correct/Incorrect}", "pointwise", "invalid verdict"),
        ("\\boxed{\u0421orrect}", "pointwise", "invalid verdict"),  # Cyrillic capital Es
        ("\\boxed{Corr\u0435ct}", "pointwise", "invalid verdict"),  # Cyrillic small ie
        ("\\boxed{\uff23orrect}", "pointwise", "invalid verdict"),  # fullwidth C
        ("\\boxed{Cor\u200brect}", "pointwise", "invalid verdict"),  # zero-width space
        ("\\boxed{Correct\u200d}", "pointwise", "invalid verdict"),  # zero-width joiner at the end
        ("\\boxed{Correct\u0301}", "pointwise", "invalid verdict"),  # combining accent
        ("\\bo\u200bxed{Correct}", "pointwise", "no verdict"),
        (r"\boxed{{Correct}}", "pointwise", "invalid verdict"),
        (r"\boxed{\text{Correct}\text{Incorrect}}", "pointwise", "invalid verdict"),
        (r"\boxed{Correct", "pointwise", "malformed box"),
        (r"\boxed{\boxed{Correct}}", "pointwise", "malformed box"),
        (r"\boxed{Correct} \boxed{Incorrect}", "pointwise", "conflicting verdicts"),
        (r"\boxed{Correct} \boxed{maybe}", "pointwise", "invalid verdict"),
        (r"\boxed{A/B}", "pairwise", "invalid verdict"),
        (r"\boxed{AB}", "pairwise", "invalid verdict"),
        (r"\boxed{C}", "pairwise", "invalid verdict"),
        ("\\boxed{\u0412}", "pairwise", "invalid verdict"),  # Cyrillic Ve looks like B
        (r"\boxed{A} then \boxed{B}", "pairwise", "conflicting verdicts"),
        ("\\boxed{\uff11}", "step", "invalid verdict"),  # fullwidth 1 (int() would accept it)
        ("\\boxed{\u0661}", "step", "invalid verdict"),  # Arabic-Indic 1
        (r"\boxed{1_0}", "step", "invalid verdict"),
        (r"\boxed{+1}", "step", "invalid verdict"),
        (r"\boxed{-2}", "step", "invalid verdict"),
        (r"\boxed{1.5}", "step", "invalid verdict"),
        (r"\boxed{0} \boxed{1}", "step", "conflicting verdicts"),
    ],
)
def test_hacks_get_no_verdict(text: str, task: str, reason: str) -> None:
    assert parse_verdict(text, task) == Verdict(None, False, reason)


def test_repeating_the_same_verdict_is_allowed() -> None:
    assert parse_verdict(r"\boxed{B} ... so again \boxed{\text{B}}", "pairwise").value == "B"


def test_earlier_non_verdict_boxes_are_ignored() -> None:
    text = r"The right total is \boxed{42}, not 41. \boxed{Incorrect}"
    assert parse_verdict(text, "pointwise").value == "incorrect"
    assert parse_verdict(r"The answer is \boxed{42}. \boxed{1}", "step").reason == "conflicting verdicts"


@pytest.mark.parametrize(
    "text, reason, value",
    [
        (r"<think>\boxed{A}</think>\boxed{B}", "ok", "B"),
        ("  \n<think>B is better.</think>\n\\boxed{B}", "ok", "B"),
        (r"<think>It is \boxed{B}</think> I cannot decide.", "no verdict", None),
        (r"<think>\boxed{A} or \boxed{B}?</think> \boxed{A}", "ok", "A"),
        (r"<think>a</think><think>b</think>\boxed{A}", "malformed think block", None),
        (r"<think>unclosed \boxed{A}", "malformed think block", None),
        (r"reasoning</think>\boxed{A}", "malformed think block", None),
        (r"</think>x<think>\boxed{A}", "malformed think block", None),
        (r"Sure. <think>x</think>\boxed{A}", "malformed think block", None),
        (r"<think>x</think>\boxed{A}<think>", "malformed think block", None),
    ],
)
def test_think_block(text: str, reason: str, value: str | None) -> None:
    verdict = parse_verdict(text, "pairwise")
    assert (verdict.reason, verdict.value) == (reason, value)


def test_split_think() -> None:
    assert split_think("no block") == (None, "no block")
    assert split_think("<think>t</think>v") == ("t", "v")
    assert split_think("<think>t") is None


def test_require_think() -> None:
    assert parse_verdict(r"\boxed{A}", "pairwise", require_think=True).reason == "no think block"
    assert parse_verdict(r"<think>x</think>\boxed{A}", "pairwise", require_think=True).ok


SOLUTION = r"Each box holds 3 pens, so 4 boxes hold 12 pens. The answer is \boxed{B}"


@pytest.mark.parametrize(
    "text, reason, value",
    [
        # a pasted solution votes for nothing
        (
            r"The solution says: 'so 4 boxes hold 12 pens. The answer is \boxed{B}'",
            "verdict inside the quoted solution",
            None,
        ),
        (r"4 boxes hold 12 pens. The answer is \boxed{B}", "verdict inside the quoted solution", None),
        # a copied box with little matching context beside it (copy length < QUOTE_CONTEXT_CHARS)
        (r"Pens: 12. Verdict: \boxed{B}", "ok", "B"),
        # quoting the solution and then giving an own verdict
        (r"It says 'The answer is \boxed{B}', which is right. Verdict: \boxed{B}", "ok", "B"),
        (r"It says 'The answer is \boxed{B}', which is wrong. Verdict: \boxed{A}", "ok", "A"),
        # a copied box never conflicts with an own verdict; a bare box equal to the solution's counts
        (r"\boxed{B}", "ok", "B"),
    ],
)
def test_boxes_copied_from_the_quoted_solution_do_not_count(text: str, reason: str, value: str | None) -> None:
    verdict = parse_verdict(text, "pairwise", quoted=[SOLUTION])
    assert (verdict.reason, verdict.value) == (reason, value)
    if reason != "ok":
        assert parse_verdict(text, "pairwise").ok  # without the quoted text the same output would count


def test_copy_context_threshold() -> None:
    box = r"\boxed{A}"
    for n in (QUOTE_CONTEXT_CHARS - 1, QUOTE_CONTEXT_CHARS):
        context = "x" * n
        quoted_ok = parse_verdict(context + box, "pairwise", quoted=["zz" + context + box]).ok
        assert quoted_ok is (n < QUOTE_CONTEXT_CHARS)


def test_copy_context_counts_both_sides() -> None:
    source = r"before " + r"\boxed{A}" + " after"  # 7 matching characters on the left, 6 on the right
    assert not parse_verdict(r"so: before \boxed{A} after it", "pairwise", quoted=[source]).ok
    assert parse_verdict(r"so: before \boxed{A}", "pairwise", quoted=[source]).ok


def test_require_critique() -> None:
    assert parse_verdict(r"\boxed{A}", "pairwise", require_critique=True).reason == "no critique"
    assert parse_verdict(r"Both fine. \boxed{A}", "pairwise", require_critique=True).reason == "no critique"
    assert parse_verdict(r"A cites the source. \boxed{A}", "pairwise", require_critique=True).ok
    assert parse_verdict(r"<think>A cites the source.</think>\boxed{A}", "pairwise", require_critique=True).ok
    assert (
        parse_verdict(r"\boxed{\text{A cites the source}} \boxed{A}", "pairwise", require_critique=True).reason
        == "no critique"
    )  # text inside boxes is not critique


def test_max_chars() -> None:
    text = "The reasoning holds. " + r"\boxed{Correct}"
    assert parse_verdict(text, "pointwise", max_chars=len(text)).ok
    assert parse_verdict(text, "pointwise", max_chars=len(text) - 1).reason == "too long"


def test_unknown_task_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="no verdicts for task 'reference'"):
        parse_verdict(r"\boxed{A}", "reference")


def test_normalize_verdict_is_strict_about_ascii() -> None:
    assert normalize_verdict("\u212a", "pairwise") is None  # the Kelvin sign lower-cases to ASCII "k"
    assert normalize_verdict("\u0130ncorrect", "pointwise") is None  # dotted capital I


@pytest.mark.parametrize("text", [None, 42, b"\\boxed{A}", ["\\boxed{A}"]])
def test_non_text_gets_no_verdict(text: object) -> None:
    assert parse_verdict(text, "pairwise") == Verdict(None, False, "no verdict")  # type: ignore[arg-type]


def test_random_and_hostile_outputs_never_raise() -> None:
    pieces = [
        "\\boxed{",
        "\\boxed",
        "{",
        "}",
        "<think>",
        "</think>",
        "Correct",
        "Incorrect",
        "A",
        "B",
        "-1",
        "3",
        " ",
        "\n",
        "\\text{",
        "(",
        ")",
        ".",
        "\u200b",
        "\u0421",
        "\uff11",
        "\\",
        "$",
    ]
    rng = random.Random(0)
    for _ in range(2000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 30)))
        for task in ("pointwise", "pairwise", "step"):
            verdict = parse_verdict(text, task, quoted=[text[: len(text) // 2]], require_critique=True)
            assert verdict.ok == (verdict.reason == "ok") == (verdict.value is not None)


def test_huge_hostile_outputs_never_raise() -> None:
    hostile = [
        "\\boxed{" * 50_000,
        "{" * 100_000 + "\\boxed{A}",
        "\\boxed{A}" * 20_000,
        "\\boxed{\\text{" * 10_000 + "}" * 20_000,
    ]
    reasons = [parse_verdict(text, "pairwise", quoted=[text[:50_000]]).reason for text in hostile]
    assert reasons == ["malformed box", "ok", "verdict inside the quoted solution", "malformed box"]
