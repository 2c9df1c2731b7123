r"""Critic prompt templates, one per task: a record row -> the text of the critic's user message.

Records are template-free (DESIGN.md, "Records"); each task's row in ``critics.judging.tasks`` names
its template here, and ``tasks.render`` wraps the text into chat messages (``compose``):

>>> row = {"task": "step", "question": "2*3+1?", "steps": ["2*3 = 5", "5+1 = 6"], "label": 0}
>>> print(step_template(row, "compact"))
Step 0: 2*3 = 5
Step 1: 5+1 = 6
First wrong step, or -1?

Three styles: ``default`` (a system message and full instructions, for real LLMs), ``compact``
(one short user message, for tiny character-level models trained from scratch: the judged texts
and a one-line instruction; ``pairwise`` also gives the question in short form, after the answers,
since which answer is better depends on what was asked; ``pointwise`` and ``step`` leave it out)
and ``long_cot`` (``default`` plus RefCritic's long chain of thought: step-by-step checking inside
``<think>``, then a critique with suggestions the author can revise from; it asks for the think
block itself, so ``think`` adds nothing to it). ``think=True``
asks for the reasoning inside ``<think> </think>`` first, in LLaVA-Critic-R1's words for
``default`` (the instruction EasyR1's format prompt appends) and in a short form for ``compact``.
Steps are numbered from 0, like the ``step`` task's labels.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from data_pipelines.registry import did_you_mean

STYLES = ("default", "compact", "long_cot")
SYSTEM_PROMPT = (
    "You are a meticulous critic. You check solutions and responses carefully, explain "
    "what is right or wrong in them, and end with a verdict in \\boxed{}."
)
THINK_SUFFIX = (
    "You FIRST think about the reasoning process as an internal monologue and then provide the "
    "final answer. The reasoning process MUST BE enclosed within <think> </think> tags. The "
    "final answer MUST BE put in \\boxed{}."
)
COMPACT_THINK_SUFFIX = "Think in <think> </think> first."
COMPACT_QUESTION_CHARS = 200  # the question's share of a compact pairwise prompt, in characters
LONG_COT_INSTRUCTIONS = (
    "Before you answer, think it through at length inside <think> </think>: go through the solution "
    "step by step, restate what each step claims, recompute every calculation and check every "
    "inference, and find the first error if there is one. After </think>, write your critique for "
    "the author of the solution: summarise what is wrong (or confirm that nothing is), and give "
    "concrete suggestions for how to correct it, so that the author can revise the solution from "
    "your critique alone. Then give the verdict in \\boxed{} as asked above."
)

Template = Callable[[dict[str, Any], str], str]  # (row, style) -> user message text


def _field(row: dict[str, Any], name: str) -> Any:
    """A column the template needs; a missing or None one is an error naming it, never "None" in a prompt."""
    value = row.get(name)
    if value is None:
        raise KeyError(f"a {row.get('task')} prompt needs the column '{name}' (the row has: {', '.join(sorted(row))})")
    return value


def pointwise_template(row: dict[str, Any], style: str = "default") -> str:
    """Question + one solution -> a critique ending in ``\\boxed{Correct}`` or ``\\boxed{Incorrect}``.

    >>> pointwise_template({"question": "1+1?", "response": "1+1 = 3"}, "compact")
    '1+1 = 3\\nCorrect or Incorrect?'
    """
    if style == "compact":
        return f"{_field(row, 'response')}\nCorrect or Incorrect?"
    return (
        "Review the solution to the question below. Check every step, point out the first error "
        "you find and explain it, then give your verdict.\n\n"
        f"## Question\n{_field(row, 'question')}\n\n## Solution\n{_field(row, 'response')}\n\n"
        "End your critique with the verdict on its own line: \\boxed{Correct} if the solution is "
        "correct, or \\boxed{Incorrect} if it is not."
    )


def short_question(text: str, limit: int = COMPACT_QUESTION_CHARS) -> str:
    """A question in one line of at most ``limit`` characters: its whitespace collapsed, and its
    start followed by "..." when longer.

    >>> short_question("Which is\\n  larger?")
    'Which is larger?'
    >>> short_question("Name every prime below one hundred.", limit=16)
    'Name every p...'
    """
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def pairwise_template(row: dict[str, Any], style: str = "default") -> str:
    """Question + responses A and B -> a comparison ending in ``\\boxed{A}`` or ``\\boxed{B}``.

    >>> pairwise_template({"question": "Hi", "response_a": "Hello", "response_b": "Go away"}, "compact")
    'A: Hello\\nB: Go away\\nQ: Hi\\nBetter: A or B?'
    """
    if style == "compact":
        # The question comes after the answers: the VLM demo's tiny critic learns from this layout as fast
        # as with no question (0.94 held-out after SFT), and only 0.79 with the question first.
        return (
            f"A: {_field(row, 'response_a')}\nB: {_field(row, 'response_b')}\n"
            f"Q: {short_question(_field(row, 'question'))}\nBetter: A or B?"
        )
    return (
        "Compare the two responses to the question below and decide which one is better: more "
        "correct, more helpful, and more faithful to the question's instructions. Do not let the "
        "order or the length of the responses sway your judgement.\n\n"
        f"## Question\n{_field(row, 'question')}\n\n## Response A\n{_field(row, 'response_a')}\n\n"
        f"## Response B\n{_field(row, 'response_b')}\n\n"
        "Explain your comparison, then give your verdict on its own line: \\boxed{A} if Response A "
        "is better, or \\boxed{B} if Response B is better."
    )


def step_template(row: dict[str, Any], style: str = "default") -> str:
    """Question + steps numbered from 0 -> the first wrong step in ``\\boxed{k}``, ``-1`` if none."""
    steps = "\n".join(f"Step {i}: {step}" for i, step in enumerate(_field(row, "steps")))
    if style == "compact":
        return f"{steps}\nFirst wrong step, or -1?"
    return (
        "The solution to the question below is split into steps numbered from 0. Review the steps "
        "in order and find the earliest step that contains an error (a wrong calculation, a "
        "logical flaw, or a misreading of the question).\n\n"
        f"## Question\n{_field(row, 'question')}\n\n## Solution\n{steps}\n\n"
        "Explain your review, then give the index of the earliest wrong step in \\boxed{} on its "
        "own line, or -1 in \\boxed{} if every step is correct."
    )


MAX_RESPONSES = 16  # one listwise prompt's responses (``data_pipelines.schema.MAX_RESPONSES``)
GRM_INSTRUCTIONS = (
    "You are judging {n} to the question below. First write the principles that matter for judging "
    "them, each with a weight (the weights sum to 100%). Then critique each response against those "
    "principles, in order. Finally give every response an integer score from 1 (fails the "
    "principles entirely) to 10 (meets them perfectly), in the order of the responses, "
    "comma-separated in one box on the last line."
)
GRM_FORMAT = (
    "Use this format:\n"
    "Principles:\n1. <principle> (Weight: <w>%): <what it asks>\n...\n"
    "Critiques:\nResponse 1: <critique>\n...\n"
    "Scores: \\boxed{{{example}}}"
)


def _responses(row: dict[str, Any]) -> list[str]:
    responses = _field(row, "responses")
    if not isinstance(responses, list) or not 1 <= len(responses) <= MAX_RESPONSES:
        count = len(responses) if isinstance(responses, list) else type(responses).__name__
        raise ValueError(f"a listwise item needs 1 to {MAX_RESPONSES} responses in a list, got {count}")
    return responses


def grm_template(row: dict[str, Any], style: str = "default") -> str:
    """DeepSeek-GRM's pointwise generative judgment of N >= 1 responses: principles with weights, a
    critique of each response, then ``Scores: \\boxed{s1, s2, ...}``, one integer in 1..10 per
    response. ``compact`` lists the numbered responses, then the short question (as ``pairwise``).

    >>> print(grm_template({"question": "2+3?", "responses": ["2+3=5", "2+3=6"]}, "compact"))
    1: 2+3=5
    2: 2+3=6
    Q: 2+3?
    Scores 1-10?
    """
    responses = _responses(row)
    if style == "compact":
        listed = "\n".join(f"{i}: {r}" for i, r in enumerate(responses, 1))
        return f"{listed}\nQ: {short_question(_field(row, 'question'))}\nScores 1-10?"
    listed = "\n\n".join(f"[Response {i}]\n{r}\n[End of Response {i}]" for i, r in enumerate(responses, 1))
    n = "one response" if len(responses) == 1 else f"{len(responses)} responses"
    example = ", ".join(f"s{i}" for i in range(1, len(responses) + 1))
    return (
        f"{GRM_INSTRUCTIONS.format(n=n)}\n\n## Question\n{_field(row, 'question')}\n\n## Responses\n{listed}\n\n"
        + GRM_FORMAT.format(example=example)
    )


CHECK_KINDS = {
    "code": "one test input (the call's arguments) on which the program most likely fails",
    "factual": "the one claim of the answer most likely to be false",
}


def adversarial_template(row: dict[str, Any], style: str = "default") -> str:
    """RLAC's critic: the task and the generator's output -> one check in ``\\boxed{}`` (``critics.judging.checks``).

    The row's ``validator`` names the check kind; ``synthetic_sums`` asks for an item index.

    >>> adversarial_template({"question": "Add.", "output": "1+2=3", "validator": "synthetic_sums"})
    'Add.\\n1+2=3\\nWrong item?'
    """
    question, output, kind = _field(row, "question"), _field(row, "output"), _field(row, "validator")
    if kind == "synthetic_sums":
        return f"{question}\n{output}\nWrong item?"
    wanted = CHECK_KINDS.get(kind, "one check most likely to fail")
    return (
        f"## Task\n{question}\n\n## Answer\n{output}\n\nPropose {wanted}. Think first, then put exactly "
        "one check in \\boxed{} at the end."
    )


def check_style(style: str) -> None:
    """Raise ``ValueError`` for a style that is not one of ``STYLES``."""
    if style not in STYLES:
        raise ValueError(f"unknown template style '{style}'{did_you_mean(style, STYLES)}")


def compose(
    text: str, *, style: str = "default", think: bool = False, images: int | None = None, system: bool = True
) -> list[dict[str, Any]]:
    """Chat messages around a template's text: the think or long-CoT instructions appended, a system
    message for ``default`` and ``long_cot`` (unless ``system`` is False), and with ``images`` (a
    count, 0 included) every content a list of parts, the user's opening with one
    ``{"type": "image"}`` placeholder per image, which TRL fills from the row's ``images`` column.
    Every row of a dataset then has the same shape, so Arrow can store rows with and without images.

    >>> compose("r\\nCorrect or Incorrect?", style="compact", think=True)
    [{'role': 'user', 'content': 'r\\nCorrect or Incorrect?\\nThink in <think> </think> first.'}]
    >>> compose("r", style="compact", images=1)
    [{'role': 'user', 'content': [{'type': 'image'}, {'type': 'text', 'text': 'r'}]}]
    """
    check_style(style)
    if style == "long_cot":
        text += "\n\n" + LONG_COT_INSTRUCTIONS
    elif think:
        text += "\n" + (COMPACT_THINK_SUFFIX if style == "compact" else THINK_SUFFIX)
    if images is None:
        user, first = {"role": "user", "content": text}, {"role": "system", "content": SYSTEM_PROMPT}
    else:
        user = {"role": "user", "content": [*[{"type": "image"}] * images, {"type": "text", "text": text}]}
        first = {"role": "system", "content": [{"type": "text", "text": SYSTEM_PROMPT}]}
    return [user] if style == "compact" or not system else [first, user]
