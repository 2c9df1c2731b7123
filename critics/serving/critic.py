r"""``Critic``: a critic checkpoint behind one interface, whatever runs it.

Backends: ``transformers`` (in process, with dynamic batching), ``vllm`` (where installed) and
``openai`` (any OpenAI-compatible endpoint: ``vllm serve``, ``critics serve``, a hosted judge).
A checkpoint whose architecture is a sequence classifier (a scalar reward model) is served
through the same interface by the ``transformers`` backend: its score is the model's logit.

``critique(items)`` returns, per item, the critic's text, its parsed verdict and a score;
``score(items)`` returns the scores alone. Items are record-like dicts with the fields of their
task (DESIGN.md, "Records"): ``question`` and ``response`` (pointwise); ``question``,
``response_a`` and ``response_b`` (pairwise); ``question`` and ``steps`` (step). Scores:

| task | score |
|---|---|
| pointwise | 1.0 for ``\boxed{Correct}``, 0.0 for ``\boxed{Incorrect}``; with ``soft``, P(Correct) |
| pairwise | preference for A: 1.0 for ``\boxed{A}``, 0.0 for ``\boxed{B}``; with ``soft``, P(A) |
| step | share of steps before the first wrong one: 1.0 for ``\boxed{-1}``, k / len(steps) for ``\boxed{k}`` |
| scalar checkpoint | the model's logit |
| reference (a POLAR checkpoint) | the logit at the reward token: the candidate ``response`` against ``reference`` |

An output without a valid verdict scores ``None``: callers decide what that means, it never
silently becomes a zero. ``soft`` reads the verdict's probability from the model (the two
candidate verdicts scored after the critic's own ``\boxed{``), so it needs the weights: the
``transformers`` backend has it, the ``openai`` and ``vllm`` backends refuse it.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from critics.serving.backends import BACKENDS, Backend, make_backend
from critics.serving.batcher import DynamicBatcher
from critics.templates import quoted_texts, render
from critics.verdicts import VERDICT_TASKS, Verdict, parse_verdict

Task = Literal["pointwise", "pairwise", "step", "reference"]
REFERENCE_FIELDS = ("question", "reference", "response")
CHOICES = {"pointwise": ("Correct", "Incorrect"), "pairwise": ("A", "B")}
SCALAR = Verdict(value=None, ok=True, reason="scalar score")


@dataclass(frozen=True)
class Critique:
    """One judgment: the critic's ``text``, its parsed ``verdict`` and the ``score`` (or None)."""

    text: str
    verdict: Verdict
    score: float | None


class Critic:
    """A critic model and the settings it judges with.

    Args:
        backend: a ``Backend`` (see ``Critic.from_pretrained`` to build one by name).
        task: the default task of items that carry no ``task`` field.
        style, think: the prompt template (``critics.templates.render``), as the critic was trained.
        max_new_tokens, temperature: generation settings of a critique (greedy at 0).
        soft: score pointwise and pairwise items by the verdict's probability instead of 1/0.
        max_batch_size, max_wait_ms, max_queue: the dynamic batcher's limits.
    """

    def __init__(self, backend: Backend, *, task: Task | None = None, style: str = "default", think: bool = False,
                 max_new_tokens: int = 512, temperature: float = 0.0, soft: bool = False,
                 max_batch_size: int = 32, max_wait_ms: float = 5.0, max_queue: int = 4096):
        task = task or ("reference" if backend.polar is not None else "pointwise")
        if task not in self.tasks_of(backend):
            raise ValueError(f"task must be one of {', '.join(self.tasks_of(backend))}, got {task!r}")
        if soft and not backend.supports_soft:
            raise ValueError(f"soft scores need the verdict's probability, which the {backend.name} backend "
                             "does not expose: use the transformers backend or soft=False")
        self.backend, self.task, self.style, self.think = backend, task, style, think
        self.max_new_tokens, self.temperature, self.soft = max_new_tokens, temperature, soft
        self.batcher = DynamicBatcher(self._run_batch, max_batch_size=max_batch_size,
                                      max_wait_s=max_wait_ms / 1000, max_queue=max_queue, name="critic-batcher")

    @classmethod
    def from_pretrained(cls, path_or_name: str, backend: str = "transformers", *, backend_options: dict | None = None,
                        **settings) -> Critic:
        """Load a critic: a local checkpoint folder, a hub name, or (``openai``) the endpoint's model name.

        ``backend_options`` go to the backend (``device``, ``dtype`` for transformers;
        ``base_url``, ``api_key``, ``timeout`` for openai; ``LLM`` arguments for vllm); the other
        keyword arguments are ``Critic``'s settings.

        >>> Critic.from_pretrained("x", backend="transformer")
        Traceback (most recent call last):
        ...
        KeyError: "unknown backend 'transformer' (did you mean 'transformers'?)"
        """
        return cls(make_backend(backend, path_or_name, **(backend_options or {})), **settings)

    @staticmethod
    def tasks_of(backend: Backend) -> tuple[str, ...]:
        """The tasks a backend's model judges: ``reference`` alone for POLAR, the verdict tasks otherwise."""
        return ("reference",) if backend.polar is not None else VERDICT_TASKS

    @property
    def tasks(self) -> tuple[str, ...]:
        return self.tasks_of(self.backend)

    @property
    def is_scalar(self) -> bool:
        """True for a sequence-classification checkpoint (scores, no critiques)."""
        return self.backend.is_scalar

    # -- judging -----------------------------------------------------------------------------

    def critique(self, items: Sequence[dict[str, Any]], timeout: float | None = None) -> list[Critique]:
        """Judge ``items`` (blocking); raises ``QueueFull`` when the batcher is saturated."""
        futures = self.batcher.submit_many([self._row(i) for i in items], key=("critique",))
        return [f.result(timeout) for f in futures]

    async def acritique(self, items: Sequence[dict[str, Any]]) -> list[Critique]:
        """``critique`` for asyncio callers: awaits the batcher without blocking the event loop."""
        futures = self.batcher.submit_many([self._row(i) for i in items], key=("critique",))
        return list(await asyncio.gather(*(asyncio.wrap_future(f) for f in futures)))

    def score(self, items: Sequence[dict[str, Any]], timeout: float | None = None) -> list[float | None]:
        """The score of each item (``None`` where the critic gave no valid verdict)."""
        return [c.score for c in self.critique(items, timeout)]

    def chat(self, conversations: Sequence[list[dict]], *, max_new_tokens: int, temperature: float = 0.0,
             timeout: float | None = None) -> list[str]:
        """Plain generation for chat messages (the OpenAI endpoint), through the same batcher."""
        futures = self.batcher.submit_many(list(conversations), key=("chat", max_new_tokens, temperature))
        return [f.result(timeout) for f in futures]

    async def achat(self, conversations: Sequence[list[dict]], *, max_new_tokens: int,
                    temperature: float = 0.0) -> list[str]:
        """``chat`` for asyncio callers."""
        futures = self.batcher.submit_many(list(conversations), key=("chat", max_new_tokens, temperature))
        return list(await asyncio.gather(*(asyncio.wrap_future(f) for f in futures)))

    def close(self) -> None:
        """Finish queued work and stop the batcher."""
        self.batcher.close(drain=True)
        self.backend.close()

    def __enter__(self) -> Critic:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- internals ---------------------------------------------------------------------------

    def _row(self, item: dict[str, Any]) -> dict[str, Any]:
        """The item as a record row with its task; a missing field fails here, in the caller."""
        if not isinstance(item, dict):
            raise TypeError(f"an item is a dict of record fields, got {type(item).__name__}")
        row = {"task": self.task, **item}
        if row["task"] not in self.tasks:
            raise ValueError(f"task must be one of {', '.join(self.tasks)}, got {row['task']!r}")
        self.check_row(row)
        return row

    def check_row(self, row: dict[str, Any]) -> None:
        """Raise ``KeyError`` naming a field the row's task needs and lacks."""
        if row.get("images") and not self.backend.supports_images:
            raise KeyError("this critic reads text only: the item has images, which it would ignore")
        if row["task"] == "reference":
            missing = [f for f in REFERENCE_FIELDS if not isinstance(row.get(f), str)]
            if missing:
                raise KeyError(f"a reference item needs the text field(s) {', '.join(missing)}")
        else:
            render(row, style=self.style, think=self.think)

    def _run_batch(self, key: tuple, items: list[Any]) -> list[Any]:
        if key[0] == "chat":
            return self.backend.generate(items, max_new_tokens=key[1], temperature=key[2])
        if self.backend.polar is not None:
            return [Critique("", SCALAR, s) for s in self.backend.polar_scores(items)]
        conversations = [self._conversation(row) for row in items]
        if self.is_scalar:
            return [Critique("", SCALAR, s) for s in self.backend.scalar_scores(conversations)]
        texts = self.backend.generate(conversations, max_new_tokens=self.max_new_tokens, temperature=self.temperature)
        verdicts = [parse_verdict(t, row["task"], quoted=quoted_texts(row)) for t, row in zip(texts, items)]
        scores = [hard_score(v, row) for v, row in zip(verdicts, items)]
        if self.soft:
            scores = self._soft_scores(conversations, texts, verdicts, items, scores)
        return [Critique(t, v, s) for t, v, s in zip(texts, verdicts, scores)]

    def _conversation(self, row: dict[str, Any]) -> list[dict]:
        """The critic's prompt for a row; a vision-language critic gets the row's images in it."""
        if not self.backend.supports_images:
            return render(row, style=self.style, think=self.think)
        from critics.vlm import attach_images

        images = list(row.get("images") or [])
        return attach_images(render(row, style=self.style, think=self.think, images=len(images)), images)

    def _soft_scores(self, conversations, texts, verdicts, items, scores) -> list[float | None]:
        """P(first choice) at the critic's own last ``\\boxed{``, for valid pointwise/pairwise verdicts."""
        picked = [i for i, (v, row) in enumerate(zip(verdicts, items)) if v.ok and row["task"] in CHOICES]
        if not picked:
            return scores
        prefixes = [texts[i][:texts[i].rindex("\\boxed") + len("\\boxed")] for i in picked]
        prefixes = [p + texts[i][len(p):].split("{", 1)[0] + "{" for p, i in zip(prefixes, picked)]
        choices = [CHOICES[items[i]["task"]] for i in picked]
        logprobs = self.backend.choice_logprobs([conversations[i] for i in picked], prefixes, choices)
        out = list(scores)
        for i, (first, second) in zip(picked, logprobs):
            out[i] = 1.0 / (1.0 + math.exp(second - first))
        return out


def hard_score(verdict: Verdict, row: dict[str, Any]) -> float | None:
    """The score of a parsed verdict for its row (table in the module docstring).

    >>> hard_score(Verdict("correct", True, "ok"), {"task": "pointwise"})
    1.0
    >>> hard_score(Verdict(2, True, "ok"), {"task": "step", "steps": ["a", "b", "c", "d"]})
    0.5
    >>> hard_score(Verdict(None, False, "no verdict"), {"task": "pairwise"}) is None
    True
    """
    if not verdict.ok:
        return None
    task = row["task"]
    if task == "pointwise":
        return 1.0 if verdict.value == "correct" else 0.0
    if task == "pairwise":
        return 1.0 if verdict.value == "A" else 0.0
    n = len(row.get("steps") or [])
    if verdict.value == -1:
        return 1.0
    return verdict.value / n if n and 0 <= verdict.value < n else None


__all__ = ["BACKENDS", "Critic", "Critique", "hard_score"]
