r"""Frozen actors: the models whose solutions a critic judges and who revise them given a critique.

Critique-RL and RefCritic measure a critique by what an actor makes of it. An actor does two
things, batched (lists in, one list of ``n`` texts per item out; a single string in, a list of
``n`` texts out):

- ``solve(questions, n, temperature)``: ``n`` sampled solutions per question;
- ``refine(questions, solutions, critiques, n)``: ``n`` revisions of each solution given its critique.

A ``ChatActor`` drives any chat model of ``critics.judging.chat`` (the one class tree): a checkpoint
in this process (``kind: transformers``), any OpenAI-compatible endpoint (``kind: openai``: vLLM,
SGLang, ``critics serve``) or, for self-refinement, the critic being trained (``kind: self``, built
with ``make_actor(settings, critic=loaded_model, spec=critic_spec)``; its prompts follow the critic's
spec: a ``compact`` critic refines with compact prompts).

Prompts come from ``ActorPrompts``: ``default`` for real chat models (the final answer in
``\boxed{}``), ``compact`` for tiny character-level models:

>>> print(refine_messages("07+45", "7+5=13 \\boxed{053}", "Wrong sum. fix:052", "compact")[-1]["content"])
7+5=13 \boxed{053}
Feedback: Wrong sum. fix:052
Revised:
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from critics.judging.chat import ChatModel, LocalChatModel, OpenAIChatModel, VLLMChatModel
from critics.judging.generation import LoadedModel

ActorStyle = Literal["default", "compact"]
SOLVE_SYSTEM = "Solve the problem step by step. Put the final answer in \\boxed{} at the end."
REFINE_INSTRUCTIONS = (
    "Revise your solution in light of the feedback: fix every error it points out, and keep "
    "what it confirms. If the feedback finds no error, you may keep your answer. Solve step "
    "by step and put the final answer in \\boxed{} at the end."
)


class Actor(Protocol):
    """What the refinement rewards, the on-policy sampler and the refine evaluations drive."""

    def solve(
        self, questions: Sequence[str] | str, n: int = 1, temperature: float | None = None
    ) -> list[list[str]] | list[str]: ...

    def refine(
        self, questions: Sequence[str] | str, solutions: Sequence[str] | str, critiques: Sequence[str] | str, n: int = 1
    ) -> list[list[str]] | list[str]: ...


def solve_messages(question: str, style: ActorStyle = "default") -> list[dict[str, str]]:
    """The chat messages that ask an actor to solve ``question``.

    >>> solve_messages("07+45", "compact")
    [{'role': 'user', 'content': '07+45'}]
    """
    if style == "compact":
        return [{"role": "user", "content": question}]
    return [{"role": "system", "content": SOLVE_SYSTEM}, {"role": "user", "content": question}]


def refine_messages(question: str, solution: str, critique: str, style: ActorStyle = "default") -> list[dict[str, str]]:
    """The chat messages that ask an actor to revise ``solution`` given ``critique``.

    ``default`` replays the conversation (question, the actor's solution, the feedback as the next
    user turn), the way Critique-RL and RefCritic prompt their actors.
    """
    if style == "compact":
        return [{"role": "user", "content": f"{solution}\nFeedback: {critique}\nRevised:"}]
    return [
        {"role": "system", "content": SOLVE_SYSTEM},
        {"role": "user", "content": question},
        {"role": "assistant", "content": solution},
        {"role": "user", "content": f"Feedback on your solution:\n{critique}\n\n{REFINE_INSTRUCTIONS}"},
    ]


class ChatActor:
    """An actor over a chat model.

    Args:
        chat_model: what writes the solutions and revisions.
        style: the prompts (``default`` or ``compact``).
        temperature: the default sampling temperature of ``solve``.
        refine_temperature: the sampling temperature of ``refine`` (0: greedy, the same revision n times).
        max_new_tokens: the length limit of a solution or a revision.
        owns: close the chat model with the actor (False for a critic lent to it).
    """

    def __init__(
        self,
        chat_model: ChatModel,
        *,
        style: ActorStyle = "default",
        temperature: float = 0.7,
        refine_temperature: float = 0.0,
        max_new_tokens: int = 1024,
        owns: bool = True,
    ):
        if style not in ("default", "compact"):
            raise ValueError(f"actor style must be 'default' or 'compact', got {style!r}")
        self.chat_model, self.owns = chat_model, owns
        self.style, self.temperature, self.refine_temperature = style, temperature, refine_temperature
        self.max_new_tokens = max_new_tokens

    def complete(self, conversations: list[list[dict[str, str]]], n: int, temperature: float) -> list[list[str]]:
        """``n`` completions of each conversation."""
        texts = self.chat_model.generate(
            conversations, max_new_tokens=self.max_new_tokens, temperature=temperature, n=n
        )
        return [texts[i : i + n] for i in range(0, len(texts), n)]

    def solve(self, questions, n: int = 1, temperature: float | None = None):
        """``n`` solutions per question (at ``temperature``, default the actor's)."""
        single, (questions,) = _as_lists(questions)
        out = self._run(
            [solve_messages(q, self.style) for q in questions],
            n,
            self.temperature if temperature is None else temperature,
        )
        return out[0] if single else out

    def refine(self, questions, solutions, critiques, n: int = 1):
        """``n`` revisions of each solution given its critique."""
        single, (questions, solutions, critiques) = _as_lists(questions, solutions, critiques)
        out = self._run(
            [refine_messages(q, s, c, self.style) for q, s, c in zip(questions, solutions, critiques)],
            n,
            self.refine_temperature,
        )
        return out[0] if single else out

    def _run(self, conversations, n: int, temperature: float) -> list[list[str]]:
        if n < 1:
            raise ValueError(f"n must be at least 1, got {n}")
        return self.complete(conversations, n, temperature) if conversations else []

    def close(self) -> None:
        """Release what the actor holds."""
        if self.owns:
            self.chat_model.close()


def _as_lists(*values) -> tuple[bool, list[list[str]]]:
    """(whether one item was given as strings, the values as equally long lists)."""
    single = isinstance(values[0], str)
    lists = [[v] if single else list(v) for v in values]
    if any(isinstance(v, str) != single for v in values) or len({len(v) for v in lists}) > 1:
        raise ValueError(
            "give one string per argument, or equally long lists: "
            f"got lengths {[1 if isinstance(v, str) else len(v) for v in values]}"
        )
    return single, lists


@dataclass
class ActorSettings:
    """Which actor a recipe or ``critics data sample`` uses.

    Args:
        kind: ``transformers`` (``model`` is a checkpoint or hub name), ``vllm`` (the same, on vLLM's
            offline engine: the GPU extra), ``openai`` (``model`` is the served name at ``base_url``)
            or ``self`` (the critic itself: self-refinement).
        style: the actor's prompts (``default`` or ``compact``); empty: ``default``, or for ``kind:
            self`` the critic spec's (``compact`` for a compact critic).
        temperature: sampling temperature of solutions.
        refine_temperature: sampling temperature of revisions (0: greedy).
        max_new_tokens: the length limit of a solution or a revision.
        batch_size: ``generate`` batch size of in-process actors.
        device: where an in-process actor runs (``auto``: CUDA when available).
    """

    kind: Literal["transformers", "vllm", "openai", "self"] = "transformers"
    model: str = ""
    base_url: str = ""
    api_key: str = ""
    style: Literal["", "default", "compact"] = ""
    temperature: float = 0.7
    refine_temperature: float = 0.0
    max_new_tokens: int = 1024
    batch_size: int = 64
    device: Literal["auto", "cpu", "cuda"] = "auto"

    def __post_init__(self) -> None:
        if self.kind == "openai" and not (self.model and self.base_url):
            raise ValueError("actor.kind 'openai' needs actor.model (the served name) and actor.base_url")
        if self.kind in ("transformers", "vllm") and not self.model:
            raise ValueError(
                "actor.model is empty: give the actor's checkpoint (or kind: self to refine with the critic)"
            )


def make_actor(settings: ActorSettings, critic: LoadedModel | None = None, spec: Any = None) -> ChatActor:
    """The actor ``settings`` describe; ``kind: self`` needs the critic (its ``LoadedModel``) and,
    for its prompt style, its spec."""
    style = settings.style or (
        "compact" if settings.kind == "self" and getattr(spec, "style", "") == "compact" else "default"
    )
    options = {
        "style": style,
        "temperature": settings.temperature,
        "refine_temperature": settings.refine_temperature,
        "max_new_tokens": settings.max_new_tokens,
    }
    if settings.kind == "openai":
        chat = OpenAIChatModel(settings.model, base_url=settings.base_url, api_key=settings.api_key or None)
        return ChatActor(chat, **options)
    if settings.kind == "self":
        if critic is None:
            raise ValueError("actor.kind 'self' refines with the critic: pass its loaded model")
        return ChatActor(LocalChatModel(critic, batch_size=settings.batch_size), owns=False, **options)
    if settings.kind == "vllm":
        return ChatActor(VLLMChatModel(settings.model), **options)
    chat = LocalChatModel(settings.model, device=settings.device, batch_size=settings.batch_size)
    return ChatActor(chat, **options)
