r"""Critic prompt templates, one per task: a record row -> chat messages for TRL's ``prompt`` column.

Records are template-free (DESIGN.md, "Records"); a recipe renders prompts when it trains:

>>> row = {"task": "step", "question": "2*3+1?", "steps": ["2*3 = 5", "5+1 = 6"], "label": 0}
>>> print(render(row, style="compact")[-1]["content"])
Step 0: 2*3 = 5
Step 1: 5+1 = 6
First wrong step, or -1?

Three styles: ``default`` (a system message and full instructions, for real LLMs), ``compact``
(one short user message, for tiny character-level models trained from scratch: the judged texts
and a one-line question, without the question for ``pointwise`` and ``step``) and ``long_cot``
(``default`` plus RefCritic's long chain of thought: step-by-step checking inside
``<think>``, then a critique with suggestions the author can revise from; it asks for the think
block itself, so ``think`` adds nothing to it). ``think=True``
asks for the reasoning inside ``<think> </think>`` first, in LLaVA-Critic-R1's words for
``default`` (the instruction EasyR1's format prompt appends) and in a short form for ``compact``.
Steps are numbered from 0, like the ``step`` task's labels.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from data_pipelines.registry import Registry, did_you_mean

STYLES = ("default", "compact", "long_cot")
SYSTEM_PROMPT = ("You are a meticulous critic. You check solutions and responses carefully, explain "
                 "what is right or wrong in them, and end with a verdict in \\boxed{}.")
THINK_SUFFIX = ("You FIRST think about the reasoning process as an internal monologue and then provide the "
                "final answer. The reasoning process MUST BE enclosed within <think> </think> tags. The "
                "final answer MUST BE put in \\boxed{}.")
COMPACT_THINK_SUFFIX = "Think in <think> </think> first."
LONG_COT_INSTRUCTIONS = (
    "Before you answer, think it through at length inside <think> </think>: go through the solution "
    "step by step, restate what each step claims, recompute every calculation and check every "
    "inference, and find the first error if there is one. After </think>, write your critique for "
    "the author of the solution: summarise what is wrong (or confirm that nothing is), and give "
    "concrete suggestions for how to correct it, so that the author can revise the solution from "
    "your critique alone. Then give the verdict in \\boxed{} as asked above.")

Template = Callable[[dict[str, Any], str], str]  # (row, style) -> user message text
TEMPLATES: Registry[Template] = Registry("template")


def _field(row: dict[str, Any], name: str) -> Any:
    """A column the template needs; a missing or None one is an error naming it, never "None" in a prompt."""
    value = row.get(name)
    if value is None:
        raise KeyError(f"a {row.get('task')} prompt needs the column '{name}' (the row has: {', '.join(sorted(row))})")
    return value


@TEMPLATES.register("pointwise")
def pointwise_template(row: dict[str, Any], style: str = "default") -> str:
    """Question + one solution -> a critique ending in ``\\boxed{Correct}`` or ``\\boxed{Incorrect}``.

    >>> pointwise_template({"question": "1+1?", "response": "1+1 = 3"}, "compact")
    '1+1 = 3\\nCorrect or Incorrect?'
    """
    if style == "compact":
        return f"{_field(row, 'response')}\nCorrect or Incorrect?"
    return ("Review the solution to the question below. Check every step, point out the first error "
            "you find and explain it, then give your verdict.\n\n"
            f"## Question\n{_field(row, 'question')}\n\n## Solution\n{_field(row, 'response')}\n\n"
            "End your critique with the verdict on its own line: \\boxed{Correct} if the solution is "
            "correct, or \\boxed{Incorrect} if it is not.")


@TEMPLATES.register("pairwise")
def pairwise_template(row: dict[str, Any], style: str = "default") -> str:
    """Question + responses A and B -> a comparison ending in ``\\boxed{A}`` or ``\\boxed{B}``.

    >>> pairwise_template({"question": "Hi", "response_a": "Hello", "response_b": "Go away"}, "compact")
    'A: Hello\\nB: Go away\\nBetter: A or B?'
    """
    if style == "compact":
        return f"A: {_field(row, 'response_a')}\nB: {_field(row, 'response_b')}\nBetter: A or B?"
    return ("Compare the two responses to the question below and decide which one is better: more "
            "correct, more helpful, and more faithful to the question's instructions. Do not let the "
            "order or the length of the responses sway your judgement.\n\n"
            f"## Question\n{_field(row, 'question')}\n\n## Response A\n{_field(row, 'response_a')}\n\n"
            f"## Response B\n{_field(row, 'response_b')}\n\n"
            "Explain your comparison, then give your verdict on its own line: \\boxed{A} if Response A "
            "is better, or \\boxed{B} if Response B is better.")


@TEMPLATES.register("step")
def step_template(row: dict[str, Any], style: str = "default") -> str:
    """Question + steps numbered from 0 -> the first wrong step in ``\\boxed{k}``, ``-1`` if none."""
    steps = "\n".join(f"Step {i}: {step}" for i, step in enumerate(_field(row, "steps")))
    if style == "compact":
        return f"{steps}\nFirst wrong step, or -1?"
    return ("The solution to the question below is split into steps numbered from 0. Review the steps "
            "in order and find the earliest step that contains an error (a wrong calculation, a "
            "logical flaw, or a misreading of the question).\n\n"
            f"## Question\n{_field(row, 'question')}\n\n## Solution\n{steps}\n\n"
            "Explain your review, then give the index of the earliest wrong step in \\boxed{} on its "
            "own line, or -1 in \\boxed{} if every step is correct.")


def render(row: dict[str, Any], *, style: str = "default", think: bool = False,
           images: int | None = None) -> list[dict[str, Any]]:
    """Chat messages for one record row, chosen by its ``task`` column.

    ``images`` (a count, 0 included) asks for a vision-language prompt: every content is a list of
    parts, the user's opening with one ``{"type": "image"}`` placeholder per image, which TRL fills
    from the row's ``images`` column. Every row of a dataset then has the same shape, so Arrow can
    store rows with and without images side by side.

    >>> [m["role"] for m in render({"task": "pointwise", "question": "q", "response": "r"})]
    ['system', 'user']
    >>> render({"task": "pointwise", "question": "q", "response": "r"}, style="compact", think=True)
    [{'role': 'user', 'content': 'r\\nCorrect or Incorrect?\\nThink in <think> </think> first.'}]
    >>> render({"task": "pointwise", "question": "q", "response": "r"}, style="compact", images=1)
    [{'role': 'user', 'content': [{'type': 'image'}, {'type': 'text', 'text': 'r\\nCorrect or Incorrect?'}]}]
    """
    if style not in STYLES:
        raise ValueError(f"unknown template style '{style}'{did_you_mean(style, STYLES)}")
    text = TEMPLATES.get(row.get("task", ""))(row, "default" if style == "long_cot" else style)
    if style == "long_cot":
        text += "\n\n" + LONG_COT_INSTRUCTIONS
    elif think:
        text += "\n" + (COMPACT_THINK_SUFFIX if style == "compact" else THINK_SUFFIX)
    if images is None:
        user, system = {"role": "user", "content": text}, {"role": "system", "content": SYSTEM_PROMPT}
    else:
        user = {"role": "user", "content": [*[{"type": "image"}] * images, {"type": "text", "text": text}]}
        system = {"role": "system", "content": [{"type": "text", "text": SYSTEM_PROMPT}]}
    return [user] if style == "compact" else [system, user]


def add_prompts(dataset, *, style: str = "default", think: bool = False, images: bool = False):
    """Return ``dataset`` (a ``datasets.Dataset``) with a ``prompt`` column of chat messages for TRL.

    Each row is rendered with its own task's template, so a dataset may mix tasks. ``images=True``
    renders vision-language prompts with one image placeholder per entry of the row's ``images``.
    """
    if style not in STYLES:  # fail before ``map`` wraps the error in a traceback per worker
        raise ValueError(f"unknown template style '{style}'{did_you_mean(style, STYLES)}")

    def prompt(row: dict[str, Any]) -> dict[str, Any]:
        count = len(row.get("images") or []) if images else None
        return {"prompt": render(row, style=style, think=think, images=count)}

    return dataset.map(prompt, desc=f"rendering {style} critic prompts")


def quoted_texts(row: dict[str, Any]) -> list[str]:
    """The texts the critic was shown, for the verdict parser's ``quoted``: the ones being judged
    (``response``; ``response_a`` and ``response_b``; each step and all steps joined) and the
    question, which may carry boxes too (a multiple-choice question showing ``\\boxed{A}``).

    >>> quoted_texts({"task": "pairwise", "question": "q", "response_a": "a", "response_b": "b"})
    ['q', 'a', 'b']
    >>> quoted_texts({"task": "step", "question": "q", "steps": ["s0", "s1"]})
    ['q', 's0', 's1', 's0\\ns1']
    """
    task = row.get("task")
    if task == "pointwise":
        judged = [row.get("response")]
    elif task == "pairwise":
        judged = [row.get("response_a"), row.get("response_b")]
    elif task == "step":
        steps = [s for s in row.get("steps") or [] if isinstance(s, str)]
        judged = [*steps, "\n".join(steps)]
    else:
        judged = []
    return [text for text in [row.get("question"), *judged] if isinstance(text, str) and text]
