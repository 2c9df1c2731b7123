r"""``Critic``: a critic checkpoint and its spec behind one interface, whatever runs it.

A ``Critic`` holds a chat model (``critics.judging.chat``: ``transformers`` in process, ``vllm``
where installed, ``openai`` for any OpenAI-compatible endpoint) and the critic's spec
(``critics.judging.spec``): how it must be prompted and read, as it was trained.
``Critic.from_pretrained(path)`` reads the spec from the checkpoint; keyword arguments override
single fields of it (``style``, ``max_new_tokens``, ...), each override logged once.
``RemoteCritic`` (``critics.serving.remote``) is the same interface for a ``critics serve`` URL.

``critique(items)`` returns, per item, a ``Critique``: the critic's text, its parsed verdict, a
score and what the prompt budget did (``ok``, ``truncated``, ``too_long``); ``score(items)`` the
scores alone. Items are record-like dicts with the fields of their task
(``critics.judging.tasks``); an item without ``task`` has the spec's first task. Scores, by task:
pointwise 1.0 for ``\boxed{Correct}``, 0.0 for ``\boxed{Incorrect}``; pairwise the preference
for A; step the share of steps before the first wrong one; a scalar model its output. With
``soft`` the pointwise and pairwise scores are the verdict's probability (the two candidate
verdicts scored after the critic's own ``\boxed{``), which needs the weights: the
``transformers`` backend has it. An output without a valid verdict scores ``None``: callers
decide what that means, it never silently becomes a zero.

With the spec's ``samples`` k > 1 each item is judged k times in the same generation call and the
judgments are voted (``spec.vote``; ``critics.judging.votes``); ``critique(items, samples=, vote=)``
overrides both per call, and ``vote="meta"`` needs a meta RM (``meta_rm=PATH``,
``critics.judging.meta``). Items with the same settings share batches, so an item's k samples are one
batch's sequences, never k calls.

Requests from many callers are coalesced by a dynamic batcher; the model runs in its one worker
thread (tokenizers included: a fast tokenizer used from two threads at once fails).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from critics.config import ConfigError
from critics.judging.budget import fit_messages
from critics.judging.chat import ChatModel, make_chat_model
from critics.judging.judge import CriticBase, Critique, judge
from critics.judging.spec import CriticSpec, find_spec, load_spec
from critics.judging.tasks import check_row
from critics.judging.votes import check_vote
from critics.serving.batcher import DynamicBatcher

logger = logging.getLogger(__name__)
SPEC_FIELDS = {f.name for f in dataclasses.fields(CriticSpec)}


@dataclass(frozen=True)
class ChatResult:
    """A chat request's completions (None when the prompt was refused), and its token counts."""

    texts: list[str] | None
    prompt: str
    prompt_tokens: int
    completion_tokens: list[int]


class Critic(CriticBase):
    """A critic model and the spec it judges by.

    Args:
        chat_model: what runs the model (``Critic.from_pretrained`` builds one by name).
        spec: how the critic is prompted and read; its context is filled from the model's.
        soft: score pointwise and pairwise items by the verdict's probability instead of 1/0.
        max_batch_size, max_wait_ms, max_queue: the dynamic batcher's limits (items; an item with
            ``samples`` k is k sequences of its batch).
        meta: the meta RM of ``vote: meta`` (``critics.judging.meta.MetaRM``, or anything with its
            ``scores(rows, critiques)``); closed with the critic.
        fields: spec fields (``task`` for the default task): the spec's own when ``spec`` is None,
            else overrides of it (each logged once).
    """

    def __init__(
        self,
        chat_model: ChatModel,
        spec: CriticSpec | None = None,
        *,
        soft: bool = False,
        max_batch_size: int = 64,
        max_wait_ms: float = 5.0,
        max_queue: int = 4096,
        meta: Any = None,
        **fields: Any,
    ):
        if spec is None:
            base = CriticSpec(layout="reward") if chat_model.kind == "scalar" else CriticSpec()
            spec = apply_overrides(base, fields, quiet=True)
        elif fields:
            spec = apply_overrides(spec, fields)
        if spec.context_tokens is None and chat_model.context_tokens is not None:
            spec = dataclasses.replace(spec, context_tokens=chat_model.context_tokens)
        if (chat_model.kind == "scalar") != spec.scalar:
            raise ValueError(
                f"the spec's layout {spec.layout!r} does not fit a {chat_model.kind} model: a scalar "
                "model needs a scalar layout (reward, polar, internlm_polar), a generative one 'chat'"
            )
        if soft and not chat_model.supports_soft:
            raise ValueError(
                f"soft scores need the verdict's probability, which the {chat_model.name} backend "
                "does not expose: use the transformers backend or soft=False"
            )
        if spec.vote == "meta" and meta is None:
            raise ValueError(
                "spec.vote is 'meta': give the critic a meta RM (meta_rm=PATH; critics serve --meta-rm PATH)"
            )
        self.backend, self.spec, self.soft, self.meta = chat_model, spec, soft, meta
        self.batcher = DynamicBatcher(
            self._run_batch,
            max_batch_size=max_batch_size,
            max_wait_s=max_wait_ms / 1000,
            max_queue=max_queue,
            name="critic-batcher",
        )

    @classmethod
    def from_pretrained(
        cls,
        path_or_name: str,
        backend: str = "transformers",
        *,
        spec: Any = None,
        backend_options: dict | None = None,
        soft: bool = False,
        max_batch_size: int = 64,
        max_wait_ms: float = 5.0,
        max_queue: int = 4096,
        meta_rm: Any = None,
        **overrides,
    ) -> Critic:
        """Load a critic: a local checkpoint folder, a hub name, or (``openai``) the endpoint's model name.

        Args:
            path_or_name: the checkpoint.
            backend: ``transformers``, ``vllm`` or ``openai``.
            spec: a ``CriticSpec``, a spec file or a built-in name (default: the checkpoint's own).
            backend_options: ``device``, ``dtype``, ``batch_size`` for transformers; ``base_url``,
                ``api_key``, ``timeout`` for openai; ``LLM`` arguments for vllm.
            soft, max_batch_size, max_wait_ms, max_queue: ``Critic``'s own settings.
            meta_rm: a meta RM folder (loaded on the backend's device) or a loaded one, for ``vote: meta``.
            overrides: spec fields to change (``task`` sets the default task), each logged once.

        >>> Critic.from_pretrained("x", backend="transformer")
        Traceback (most recent call last):
        ...
        KeyError: "unknown backend 'transformer' (did you mean 'transformers'?)"
        """
        options = dict(backend_options or {})
        found = find_spec(spec, path_or_name if backend == "transformers" else None)
        if backend == "transformers" and found is not None and found.trust_remote_code:
            options.setdefault("trust_remote_code", True)
        chat_model = make_chat_model(backend, path_or_name, **options)
        resolved = found or load_spec(None, path_or_name, kind=chat_model.kind)
        if isinstance(meta_rm, (str, Path)):
            from critics.judging.meta import MetaRM

            meta_rm = MetaRM.from_pretrained(meta_rm, device=options.get("device", "auto"))
        return cls(
            chat_model,
            apply_overrides(resolved, overrides, where=str(path_or_name)),
            soft=soft,
            max_batch_size=max_batch_size,
            max_wait_ms=max_wait_ms,
            max_queue=max_queue,
            meta=meta_rm,
        )

    # -- judging -----------------------------------------------------------------------------

    def critique(
        self,
        items: Sequence[dict[str, Any]],
        timeout: float | None = None,
        *,
        samples: int | None = None,
        vote: str | None = None,
    ) -> list[Critique]:
        """Judge ``items`` (blocking); ``samples``/``vote`` override the spec's for this call
        (``ValueError`` for settings it refuses); raises ``QueueFull`` when the batcher is saturated."""
        rows = [self.row(i) for i in items]
        self.spec_for(samples, vote, rows)
        futures = self.batcher.submit_many(rows, key=("critique", samples, vote))
        return [f.result(timeout) for f in futures]

    async def acritique(
        self, items: Sequence[dict[str, Any]], *, samples: int | None = None, vote: str | None = None
    ) -> list[Critique]:
        """``critique`` for asyncio callers: awaits the batcher without blocking the event loop.
        Cancelling the awaiting task drops the items not yet being judged."""
        rows = [self.row(i) for i in items]
        self.spec_for(samples, vote, rows)
        futures = self.batcher.submit_many(rows, key=("critique", samples, vote))
        return await _answers(futures)

    def spec_for(
        self, samples: int | None = None, vote: str | None = None, rows: Sequence[dict[str, Any]] = ()
    ) -> CriticSpec:
        """The spec judged by with per-call ``samples``/``vote`` (None: the spec's); ``ValueError``
        naming what is refused (a vote that cannot combine one of ``rows``' tasks, ``meta`` without
        a meta RM, samples at temperature 0)."""
        if samples is None and vote is None:
            return self.spec
        try:
            spec = dataclasses.replace(self.spec, samples=self.spec.samples if samples is None else samples, vote=None)
            for task_name in {row["task"] for row in rows} if vote is not None else ():
                check_vote(vote, task_name)
        except (ConfigError, ValueError) as error:
            raise ValueError(str(error)) from None
        spec.vote = self.spec.vote if vote is None else vote  # checked against these rows' tasks above
        if spec.vote == "meta" and self.meta is None:
            raise ValueError("vote 'meta' needs a meta RM: serve the critic with --meta-rm PATH")
        return spec

    async def achat(self, messages: list[dict], *, max_new_tokens: int, temperature: float, n: int = 1) -> ChatResult:
        """Plain generation for one chat conversation (the OpenAI endpoint), through the same batcher;
        the prompt is fitted to the spec's budget in the worker (cut, or refused: ``texts`` None).
        Cancelling the awaiting task drops the conversation if it is still queued."""
        future = self.batcher.submit(messages, key=("chat", max_new_tokens, temperature, n))
        return (await _answers([future]))[0]

    def close(self, timeout: float | None = None) -> None:
        """Finish queued work (for up to ``timeout`` seconds; then its callers get ``BatcherClosed``),
        stop the batcher, and release the backend once nothing runs on it any more."""
        self.batcher.close(drain=True, timeout=timeout)
        if self.batcher.stopped:
            self.backend.close()
            if self.meta is not None and hasattr(self.meta, "close"):
                self.meta.close()
        else:  # a batch still runs in the worker thread: closing its backend under it could crash or hang
            logger.warning("the critic's worker is still running a batch; its backend is left to the process exit")

    def __enter__(self) -> Critic:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- internals ---------------------------------------------------------------------------

    def row(self, item: dict[str, Any]) -> dict[str, Any]:
        """The item as a record row with its task; a missing or mistyped field fails here, in the caller."""
        if not isinstance(item, dict):
            raise TypeError(f"an item is a dict of record fields, got {type(item).__name__}")
        row = {"task": self.task, **item}
        if row["task"] not in self.tasks:
            raise ValueError(f"task must be one of {', '.join(self.tasks)}, got {row['task']!r}")
        if row.get("images") and not self.backend.supports_images:
            raise KeyError("this critic reads text only: the item has images, which it would ignore")
        check_row(row, "default" if self.spec.layout == "reward" else self.spec.style)
        return row

    def _run_batch(self, key: tuple, items: list[Any]) -> list[Any]:
        if key[0] == "chat":
            return [self._chat(messages, *key[1:]) for messages in items]
        return judge(self.backend, items, self.spec_for(key[1], key[2], items), soft=self.soft, meta=self.meta)

    def _chat(self, messages: list[dict], max_new_tokens: int, temperature: float, n: int) -> ChatResult:
        spec = dataclasses.replace(self.spec, max_new_tokens=max_new_tokens)
        budget = spec.prompt_budget
        fitted = (
            fit_messages(messages, self.backend.measure, budget, self.backend.counter(), spec.truncate)
            if budget is not None
            else None
        )
        if fitted is not None and fitted.row is None:
            return ChatResult(None, "too_long", fitted.prompt_tokens, [])
        shown = fitted.row if fitted is not None else messages
        texts = self.backend.generate([shown], max_new_tokens=max_new_tokens, temperature=temperature, n=n)
        counter = self.backend.counter()
        return ChatResult(
            texts, fitted.status if fitted else "ok", self.backend.measure(shown), [counter.count(t) for t in texts]
        )


async def _answers(futures: list[Future]) -> list[Any]:
    """The batcher's answers to ``futures``; when the awaiting task is cancelled (its caller is gone),
    the futures are cancelled too, so the batcher drops the jobs not yet running."""
    try:
        return list(await asyncio.gather(*(asyncio.wrap_future(f) for f in futures)))
    except asyncio.CancelledError:
        for future in futures:  # at once, not through asyncio's callbacks a loop iteration later
            future.cancel()
        raise


def apply_overrides(spec: CriticSpec, overrides: dict[str, Any], where: str = "", quiet: bool = False) -> CriticSpec:
    """``spec`` with the given fields changed (``task``: the default task, moved to the front); each
    change is logged unless ``quiet`` (the caller is building a spec, not overriding one)."""
    overrides = {k: v for k, v in overrides.items() if v is not None}
    unknown = sorted(set(overrides) - SPEC_FIELDS - {"task"})
    if unknown:
        raise TypeError(
            f"unknown critic setting(s) {', '.join(unknown)} (spec fields: {', '.join(sorted(SPEC_FIELDS))})"
        )
    if "task" in overrides:
        first = overrides.pop("task")
        overrides["tasks"] = [first, *[t for t in spec.tasks if t != first]]
    return dataclasses.replace(spec, **overrides) if quiet else spec.overridden(where, **overrides)


__all__ = ["ChatResult", "Critic", "Critique", "apply_overrides"]
