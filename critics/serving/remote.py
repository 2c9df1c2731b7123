"""``RemoteCritic``: a running ``critics serve`` behind ``Critic``'s interface (``critique``, ``score``, ``spec``).

Items go to ``POST /score`` in chunks of ``max_items``; the spec comes from ``GET /spec`` (read once).
``samples`` and ``vote`` (per call) ride along in each body; the server bounds them (its
``max_samples``) and votes, and each voted critique carries its samples back.
A chunk whose request fails (server down, timeout, 5xx) comes back as critiques whose verdict
reason is ``unreachable`` and whose score is None, never as zeros. ``open_critic`` takes a URL or a
checkpoint alike, so eval, ``policy_grpo``, actors and rewards accept either.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from critics.judging.judge import CriticBase, Critique
from critics.judging.spec import CriticSpec, spec_from_dict
from critics.judging.verdicts import PointScores, Verdict, fail
from critics.judging.votes import check_vote

UNREACHABLE = "unreachable"
Item = dict[str, Any]


def is_url(target: Any) -> bool:
    """Whether ``target`` names a server (``http://...``, ``https://...``, or ``host:port`` that is no
    local folder) rather than a checkpoint.

    >>> is_url("http://localhost:8000"), is_url("127.0.0.1:8000"), is_url("outputs/demo/grpo/final")
    (True, True, False)
    """
    if not isinstance(target, str):
        return False
    if target.startswith(("http://", "https://")):
        return True
    return re.fullmatch(r"[\w.-]+:\d{1,5}", target) is not None and not Path(target).exists()


class RemoteCritic(CriticBase):
    """A client of ``critics serve`` (sync and async)."""

    def __init__(self, url: str, *, api_key: str | None = None, timeout: float = 60.0, max_items: int = 64):
        self.url = (url if "://" in url else f"http://{url}").rstrip("/")
        self.api_key, self.timeout, self.max_items = api_key or os.environ.get("CRITICS_API_KEY"), timeout, max_items
        self._spec: CriticSpec | None = None

    @property
    def spec(self) -> CriticSpec:
        """The served critic's spec (``GET /spec``, read once); ``ConnectionError`` if the server cannot say."""
        if self._spec is None:
            import httpx

            try:
                response = httpx.get(f"{self.url}/spec", headers=self._headers(), timeout=self.timeout)
                response.raise_for_status()
                self._spec = spec_from_dict(response.json())
            except (httpx.HTTPError, ValueError) as error:
                raise ConnectionError(f"{self.url}/spec: {error}") from None
        return self._spec

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}

    def _chunks(self, items: Sequence[Item]) -> list[list[Item]]:
        return [list(items[i : i + self.max_items]) for i in range(0, len(items), self.max_items)]

    def critique(
        self,
        items: Sequence[Item],
        timeout: float | None = None,
        *,
        samples: int | None = None,
        vote: str | None = None,
    ) -> list[Critique]:
        """The server's judgment of each item; ``unreachable`` critiques for a chunk that failed."""
        import httpx

        extra = vote_fields(samples, vote)
        out: list[Critique] = []
        with httpx.Client(timeout=timeout or self.timeout, headers=self._headers()) as client:
            for chunk in self._chunks(items):
                try:
                    response = client.post(f"{self.url}/score", json={"items": chunk, **extra})
                    response.raise_for_status()
                    out += [as_critique(r) for r in response.json()["results"]]
                except (httpx.HTTPError, KeyError, ValueError, TypeError):
                    out += [unreachable() for _ in chunk]
        return out

    async def acritique(
        self, items: Sequence[Item], *, samples: int | None = None, vote: str | None = None
    ) -> list[Critique]:
        """``critique`` for asyncio callers; chunks go out concurrently."""
        import httpx

        extra = vote_fields(samples, vote)
        async with httpx.AsyncClient(timeout=self.timeout, headers=self._headers()) as client:

            async def one(chunk):
                try:
                    response = await client.post(f"{self.url}/score", json={"items": chunk, **extra})
                    response.raise_for_status()
                    return [as_critique(r) for r in response.json()["results"]]
                except (httpx.HTTPError, KeyError, ValueError, TypeError):
                    return [unreachable() for _ in chunk]

            results = await asyncio.gather(*(one(c) for c in self._chunks(items)))
        return [r for chunk in results for r in chunk]


def vote_fields(samples: int | None, vote: str | None) -> dict[str, Any]:
    """The per-call test-time scaling fields of a ``/score`` body; ``ValueError`` for ones no server takes."""
    if samples is not None and (not isinstance(samples, int) or isinstance(samples, bool) or samples < 1):
        raise ValueError(f"samples must be a positive int, got {samples!r}")
    if vote is not None:
        check_vote(vote)
    return {k: v for k, v in (("samples", samples), ("vote", vote)) if v is not None}


def as_critique(result: dict[str, Any]) -> Critique:
    """A ``/score`` result as a ``Critique`` (a voted one with its samples; JSON lists of scores as tuples)."""
    value = result.get("verdict")
    value = tuple(value) if isinstance(value, list) else value
    verdict = Verdict(value, bool(result.get("ok", result.get("valid"))), str(result.get("reason", "")))
    samples = tuple(as_critique(s) for s in result.get("samples") or () if isinstance(s, dict))
    scores = result.get("scores")
    if isinstance(scores, dict):
        values = scores.get("values")
        scores = PointScores(
            tuple(values) if isinstance(values, list) else None, bool(scores.get("ok")), str(scores.get("reason", ""))
        )
    return Critique(
        str(result.get("critique") or ""),
        verdict,
        result.get("score"),
        str(result.get("prompt", "ok")),
        samples,
        scores if isinstance(scores, PointScores) else None,
    )


def unreachable() -> Critique:
    """The critique of an item whose request failed."""
    return Critique("", fail(UNREACHABLE), None, "ok")


def open_critic(target: Any, **options) -> Any:
    """A ``Critic`` or ``RemoteCritic`` for a checkpoint path or hub name, a URL, or one already open.

    ``options`` are ``Critic.from_pretrained``'s for a checkpoint (spec overrides included) and
    ``RemoteCritic``'s (``api_key``, ``timeout``) for a URL.
    """
    if not isinstance(target, str):
        return target
    if is_url(target):
        return RemoteCritic(target, **{k: v for k, v in options.items() if k in ("api_key", "timeout", "max_items")})
    from critics.serving.critic import Critic

    return Critic.from_pretrained(target, **options)
