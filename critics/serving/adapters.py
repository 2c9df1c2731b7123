r"""Critics as rewards for policy trainers: TRL reward callables and verl ``compute_score`` functions.

A critic is either a ``Critic`` in this process or the URL of ``critics serve``. Items the critic
could not score — no valid verdict, a server that is down, a timeout — come back as ``None``,
never as 0: TRL then leaves them out of the reward sum (it reads ``None`` as NaN), and the
adapter counts them (``failed`` for transport failures, ``invalid`` for missing verdicts) and
logs both through TRL's ``log_metric`` each step, with the critiques in ``log_extra``.

>>> reward = reward_function("http://127.0.0.1:9", timeout=0.5)
>>> reward(prompts=["Is 2+2=4?"], completions=["yes"])
[None]
>>> reward.failed
1
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from typing import Any

from critics.verdicts import parse_verdict

Item = dict[str, Any]


class RemoteCritic:
    """A client of ``critics serve``'s ``POST /score`` (sync and async), chunked by ``max_items``."""

    def __init__(self, url: str, *, api_key: str | None = None, timeout: float = 60.0, max_items: int = 64):
        self.url = url if "://" in url else f"http://{url}"
        self.url = self.url.rstrip("/")
        self.api_key, self.timeout, self.max_items = api_key or os.environ.get("CRITICS_API_KEY"), timeout, max_items

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}

    def _chunks(self, items: Sequence[Item]) -> list[list[Item]]:
        return [list(items[i:i + self.max_items]) for i in range(0, len(items), self.max_items)]

    def score(self, items: Sequence[Item]) -> list[dict | None]:
        """``/score`` results per item; ``None`` for every item of a chunk whose request failed."""
        import httpx

        out: list[dict | None] = []
        with httpx.Client(timeout=self.timeout, headers=self._headers()) as client:
            for chunk in self._chunks(items):
                try:
                    response = client.post(f"{self.url}/score", json={"items": chunk})
                    response.raise_for_status()
                    out += response.json()["results"]
                except (httpx.HTTPError, KeyError, ValueError):
                    out += [None] * len(chunk)
        return out

    async def ascore(self, items: Sequence[Item]) -> list[dict | None]:
        """``score`` for asyncio callers; chunks go out concurrently."""
        import httpx

        async with httpx.AsyncClient(timeout=self.timeout, headers=self._headers()) as client:
            async def one(chunk):
                try:
                    response = await client.post(f"{self.url}/score", json={"items": chunk})
                    response.raise_for_status()
                    return response.json()["results"]
                except (httpx.HTTPError, KeyError, ValueError):
                    return [None] * len(chunk)

            results = await asyncio.gather(*(one(c) for c in self._chunks(items)))
        return [r for chunk in results for r in chunk]


class CriticReward:
    """A TRL reward function backed by a critic (see ``reward_function``)."""

    __name__ = "critic_reward"

    def __init__(self, critic_or_url: Any, *, task: str = "pointwise", reference_column: str = "reference",
                 response_format: str = "{completion}", api_key: str | None = None, timeout: float = 60.0,
                 max_items_per_request: int = 64):
        if task not in ("pointwise", "pairwise", "step", "reference"):
            raise ValueError(f"task must be pointwise, pairwise, step or reference, got {task!r}")
        self.task, self.reference_column, self.timeout = task, reference_column, timeout
        self.response_format = response_format
        if isinstance(critic_or_url, str):
            self.critic, self.remote = None, RemoteCritic(critic_or_url, api_key=api_key, timeout=timeout,
                                                          max_items=max_items_per_request)
        else:
            self.critic, self.remote = critic_or_url, None
        self.failed = 0  # items lost to transport failures (server down, timeout, 5xx)
        self.invalid = 0  # items the critic judged without a valid verdict

    def items(self, prompts: Sequence[Any], completions: Sequence[Any], kwargs: dict[str, Any]) -> list[Item]:
        """The critic's items for a batch: the prompt's last user message judged with the completion."""
        references = kwargs.get(self.reference_column)
        columns = {k: v for k, v in kwargs.items() if isinstance(v, list) and len(v) == len(completions)}
        items = []
        for i, (prompt, completion) in enumerate(zip(prompts, completions)):
            question = message_text(prompt, "user")
            response = self.response_format.format_map({**{k: v[i] for k, v in columns.items()},
                                                        "question": question,
                                                        "completion": message_text(completion, "assistant")})
            if self.task == "pointwise":
                items.append({"task": "pointwise", "question": question, "response": response})
            elif self.task in ("pairwise", "reference"):
                if references is None:
                    raise ValueError(f"a {self.task} critic reward compares each completion with the "
                                     f"'{self.reference_column}' column, which the dataset lacks")
                reference = message_text(references[i], "assistant")
                items.append({"task": "pairwise", "question": question, "response_a": response, "response_b": reference}
                             if self.task == "pairwise" else
                             {"task": "reference", "question": question, "reference": reference, "response": response})
            else:
                items.append({"task": "step", "question": question, "steps": split_steps(response)})
        return items

    def __call__(self, prompts, completions, **kwargs) -> list[float | None]:
        items = self.items(prompts, completions, kwargs)
        return self._finish(self._judge(items), kwargs)

    def _judge(self, items: list[Item]) -> list[dict | None]:
        if self.remote is not None:
            return self.remote.score(items)
        try:
            critiques = self.critic.critique(items, timeout=self.timeout)
        except Exception:  # noqa: BLE001 - a full queue or a timeout loses this batch, not the run
            return [None] * len(items)
        return [_as_result(c) for c in critiques]

    def _finish(self, results: list[dict | None], kwargs: dict[str, Any]) -> list[float | None]:
        failed = sum(r is None for r in results)
        invalid = sum(r is not None and r.get("score") is None for r in results)
        self.failed += failed
        self.invalid += invalid
        if log_metric := kwargs.get("log_metric"):
            log_metric("critic/failed_items", float(failed))
            log_metric("critic/invalid_verdicts", float(invalid))
        if log_extra := kwargs.get("log_extra"):
            log_extra("critique", [r.get("critique", "") if r else "<critic unreachable>" for r in results])
        return [r.get("score") if r else None for r in results]

    def __getstate__(self) -> dict[str, Any]:
        if self.critic is not None:
            raise TypeError("a reward over an in-process Critic cannot be pickled; serve the critic and pass its URL")
        return self.__dict__


class AsyncCriticReward(CriticReward):
    """The same reward as a coroutine: TRL runs async reward functions concurrently with the others."""

    async def __call__(self, prompts, completions, **kwargs) -> list[float | None]:
        items = self.items(prompts, completions, kwargs)
        if self.remote is not None:
            results = await self.remote.ascore(items)
        else:
            results = await asyncio.to_thread(self._judge, items)
        return self._finish(results, kwargs)


def reward_function(critic_or_url: Any, *, task: str = "pointwise", asynchronous: bool = False,
                    **options) -> CriticReward:
    """A TRL reward callable that scores completions with a critic.

    Args:
        critic_or_url: a ``Critic``, or the URL of ``critics serve`` (``http://host:port``).
        task: how the critic judges a completion: ``pointwise`` (correct?), ``pairwise``
            (better than the dataset's ``reference_column``?), ``step`` (lines as steps) or
            ``reference`` (a POLAR model's score of the completion against ``reference_column``).
        asynchronous: return a coroutine function (TRL awaits it alongside other rewards).
        options: ``reference_column``; ``response_format``, what the critic is shown as the
            response: a format string over ``completion``, ``question`` and the dataset's columns
            (default ``"{completion}"``; e.g. ``"{question}\n{completion}"`` for a critic that must
            see what was asked); ``api_key`` (or env ``CRITICS_API_KEY``); ``timeout`` in seconds;
            ``max_items_per_request``.
    """
    return (AsyncCriticReward if asynchronous else CriticReward)(critic_or_url, task=task, **options)


def message_text(value: Any, role: str) -> str:
    """Text of a plain string, or of the last message with ``role`` in a conversational value.

    >>> message_text([{"role": "system", "content": "s"}, {"role": "user", "content": "q"}], "user")
    'q'
    >>> message_text("plain", "user")
    'plain'
    """
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        return str(value.get("content", ""))
    messages = [m for m in value or [] if isinstance(m, dict)]
    picked = [m for m in messages if m.get("role") == role] or messages
    return str(picked[-1].get("content", "")) if picked else ""


def split_steps(text: str) -> list[str]:
    """A response's non-empty lines as the steps a step critic judges (the whole text if none).

    >>> split_steps("2+2=4\\n\\nso 4")
    ['2+2=4', 'so 4']
    """
    return [line for line in text.splitlines() if line.strip()] or [text]


def _as_result(critique) -> dict[str, Any]:
    return {"score": critique.score, "critique": critique.text, "valid": critique.verdict.ok}


# -- verl ----------------------------------------------------------------------------------------

def compute_score(data_source: str, solution_str: str, ground_truth: Any, extra_info: dict | None = None, *,
                  critic_url: str | None = None, task: str = "pointwise", timeout: float = 60.0,
                  invalid_score: float = 0.0, **kwargs) -> dict[str, float]:
    """verl's ``custom_reward_function``: score one response with ``critics serve``.

    Point verl at it with ``custom_reward_function.path=<critics>/serving/adapters.py``,
    ``custom_reward_function.name=compute_score`` and ``reward_kwargs.critic_url=http://host:port``
    (or env ``CRITICS_URL``). The question comes from ``extra_info["question"]`` (verl's GSM8K
    preprocessing writes it), else ``extra_info["prompt"]``. verl needs a number: an item the
    critic could not score gets ``invalid_score`` and ``critic_valid`` 0, which verl logs.
    """
    url = critic_url or os.environ.get("CRITICS_URL")
    if not url:
        raise ValueError("compute_score needs critic_url (reward_kwargs) or the CRITICS_URL environment variable")
    result = RemoteCritic(url, timeout=timeout).score([_verl_item(task, solution_str, ground_truth, extra_info)])[0]
    return _verl_result(result and result.get("score"), invalid_score)


async def compute_score_async(data_source: str, solution_str: str, ground_truth: Any, extra_info: dict | None = None,
                              reward_router_address: str | None = None, reward_model_tokenizer: Any = None, *,
                              task: str = "pointwise", style: str = "default", think: bool = False,
                              max_tokens: int = 1024, timeout: float = 120.0, invalid_score: float = 0.0,
                              **kwargs) -> dict[str, float]:
    """verl's async reward-loop function for a generative critic behind ``reward_router_address``.

    verl's reward loop serves the critic itself (``reward_model.enable``) and passes the router's
    address; this renders our critic prompt, calls ``/v1/chat/completions`` there, and parses the
    verdict with ``critics.verdicts``, so a critic trained here is read exactly as in training.
    """
    import httpx

    from critics.serving.critic import hard_score
    from critics.templates import quoted_texts, render

    row = _verl_item(task, solution_str, ground_truth, extra_info)
    address = reward_router_address or kwargs.get("critic_url") or os.environ.get("CRITICS_URL", "")
    url = (address if "://" in address else f"http://{address}").rstrip("/") + "/v1/chat/completions"
    request = {"messages": render(row, style=style, think=think), "max_tokens": max_tokens, "temperature": 0.0}
    try:
        async with httpx.AsyncClient(timeout=timeout) as client:
            response = await client.post(url, json=request)
            response.raise_for_status()
            text = response.json()["choices"][0]["message"]["content"] or ""
    except (httpx.HTTPError, KeyError, ValueError, IndexError):
        return _verl_result(None, invalid_score)
    return _verl_result(hard_score(parse_verdict(text, task, quoted=quoted_texts(row)), row), invalid_score)


def _verl_item(task: str, solution: str, ground_truth: Any, extra_info: dict | None) -> Item:
    info = extra_info or {}
    question = str(info.get("question") or info.get("prompt") or "")
    item = {"task": task, "question": question, "gold_answer": None if ground_truth is None else str(ground_truth)}
    if task == "pointwise":
        item["response"] = solution
    elif task == "step":
        item["steps"] = split_steps(solution)
    else:
        raise ValueError("verl's compute_score judges one response: use task 'pointwise' or 'step'")
    return item


def _verl_result(score: float | None, invalid_score: float) -> dict[str, float]:
    return {"score": invalid_score if score is None else float(score), "critic_valid": float(score is not None)}
