r"""Critics as rewards for policy trainers: TRL reward callables and verl ``compute_score`` functions.

A critic is a ``Critic`` or ``RemoteCritic``, or a checkpoint path or URL that opens one
(``open_critic``); its spec says how it judges (the task, the template, the length), so the
reward needs no such arguments. A pairwise critic compares each completion with the dataset's
``reference_column`` in both orders and averages (``spec.both_orders``; ``both_orders=False`` for
one order). Items the critic could not score (no valid verdict, a server that is down, a timeout,
a prompt refused as too long) come back as ``None``, never as 0: TRL then leaves them out of the
reward sum (it reads ``None`` as NaN), and the reward counts them (``failed`` for transport
failures, ``invalid`` for missing verdicts, ``too_long`` for prompts over the critic's budget) and
logs them through TRL's ``log_metric`` each step, with the critiques in ``log_extra``.

>>> reward = reward_function("http://127.0.0.1:9", timeout=0.5)
>>> reward(prompts=["Is 2+2=4?"], completions=["yes"])
[None]
>>> reward.failed
1
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
from collections.abc import Sequence
from typing import Any

from critics.judging.judge import Critique, in_both_orders, mean_of_orders
from critics.judging.tasks import reward_item, task
from critics.serving.remote import UNREACHABLE, RemoteCritic, is_url, open_critic, vote_fields

logger = logging.getLogger("critics.rewards")
Item = dict[str, Any]


class CriticReward:
    """A TRL reward function backed by a critic (see ``reward_function``)."""

    __name__ = "critic_reward"

    def __init__(
        self,
        critic_or_url: Any,
        *,
        task: str | None = None,
        both_orders: bool | None = None,
        reference_column: str = "reference",
        response_format: str = "{completion}",
        api_key: str | None = None,
        timeout: float = 60.0,
        max_items_per_request: int = 64,
        samples: int | None = None,
        vote: str | None = None,
    ):
        self.votes = vote_fields(samples, vote)  # a bad one fails here, not batch after batch
        self.critic = (
            open_critic(critic_or_url, api_key=api_key, timeout=timeout, max_items=max_items_per_request)
            if is_url(critic_or_url)
            else open_critic(critic_or_url)
        )
        self._task, self._both_orders = task, both_orders
        self.reference_column, self.timeout, self.response_format = reference_column, timeout, response_format
        self.failed = 0  # items lost to transport failures (server down, timeout, 5xx)
        self.invalid = 0  # items the critic judged without a valid verdict
        self.too_long = 0  # items whose prompt was over the critic's budget (cut, or refused)

    @property
    def task(self) -> str:
        """The task the critic judges a completion as: the one given, else the spec's first."""
        return self._task or self.critic.task

    @property
    def both_orders(self) -> bool:
        return (self._both_orders if self._both_orders is not None else self.critic.spec.both_orders) and task(
            self.task
        ).both_orders

    def items(self, prompts: Sequence[Any], completions: Sequence[Any], kwargs: dict[str, Any]) -> list[Item]:
        """The critic's items for a batch: the prompt's last user message judged with the completion."""
        references = kwargs.get(self.reference_column)
        if len(task(self.task).judged) > 1 and references is None:
            raise ValueError(
                f"a {self.task} critic reward compares each completion with the "
                f"'{self.reference_column}' column, which the dataset lacks"
            )
        columns = {k: v for k, v in kwargs.items() if isinstance(v, list) and len(v) == len(completions)}
        items = []
        for i, (prompt, completion) in enumerate(zip(prompts, completions)):
            question = message_text(prompt, "user")
            response = self.response_format.format_map(
                {
                    **{k: v[i] for k, v in columns.items()},
                    "question": question,
                    "completion": message_text(completion, "assistant"),
                }
            )
            reference = message_text(references[i], "assistant") if references is not None else None
            items.append(reward_item(self.task, question, response, reference))
        return items

    def __call__(self, prompts, completions, **kwargs) -> list[float | None]:
        try:
            items = self.items(prompts, completions, kwargs)
        except ConnectionError:  # the server cannot say what it judges: this batch is lost, not the run
            return self._finish([], [_lost()] * len(completions), kwargs)
        return self._finish(items, self._judge(self._expand(items)), kwargs)

    def _expand(self, items: list[Item]) -> list[Item]:
        return in_both_orders(items) if self.both_orders else items

    def _judge(self, items: list[Item]) -> list[Critique]:
        try:
            return self.critic.critique(items, timeout=self.timeout, **self.votes)
        except Exception:  # noqa: BLE001 - a full queue or a timeout loses this batch, not the run
            logger.exception("the critic failed on a batch of %d items", len(items))
            return [_lost() for _ in items]

    def _finish(self, items: list[Item], critiques: list[Critique], kwargs: dict[str, Any]) -> list[float | None]:
        failed = sum(c.verdict.reason == UNREACHABLE for c in critiques)
        invalid = sum(c.score is None and c.verdict.reason != UNREACHABLE for c in critiques)
        too_long = sum(c.prompt != "ok" for c in critiques)
        self.failed, self.invalid, self.too_long = (
            self.failed + failed,
            self.invalid + invalid,
            self.too_long + too_long,
        )
        if log_metric := kwargs.get("log_metric"):
            log_metric("critic/failed_items", float(failed))
            log_metric("critic/invalid_verdicts", float(invalid))
            log_metric("critic/too_long", float(too_long))
        if log_extra := kwargs.get("log_extra"):
            first = critiques[: len(items)] if items else critiques  # one per completion: the first order's
            log_extra(
                "critique", [c.text if c.verdict.reason != UNREACHABLE else "<critic unreachable>" for c in first]
            )
        scores = [c.score for c in critiques]
        if not items:
            return scores
        return mean_of_orders(items, scores) if self.both_orders else scores

    def __getstate__(self) -> dict[str, Any]:
        if not isinstance(self.critic, RemoteCritic):
            raise TypeError("a reward over an in-process Critic cannot be pickled; serve the critic and pass its URL")
        return self.__dict__


class AsyncCriticReward(CriticReward):
    """The same reward as a coroutine: TRL runs async reward functions concurrently with the others."""

    async def __call__(self, prompts, completions, **kwargs) -> list[float | None]:
        try:
            items = await asyncio.to_thread(self.items, prompts, completions, kwargs)
        except ConnectionError:
            return self._finish([], [_lost()] * len(completions), kwargs)
        expanded = self._expand(items)
        if isinstance(self.critic, RemoteCritic):
            critiques = await self.critic.acritique(expanded, **self.votes)
        else:
            critiques = await asyncio.to_thread(self._judge, expanded)
        return self._finish(items, critiques, kwargs)


def reward_function(
    critic_or_url: Any, *, task: str | None = None, asynchronous: bool = False, **options
) -> CriticReward:
    """A TRL reward callable that scores completions with a critic.

    Args:
        critic_or_url: a ``Critic`` or ``RemoteCritic``, a checkpoint path, or the URL of
            ``critics serve`` (``http://host:port``).
        task: how the critic judges a completion (default: its spec's first task): ``pointwise``
            (correct?), ``pairwise`` (better than the dataset's ``reference_column``?), ``step``
            (lines as steps) or ``reference`` (a POLAR model's score against ``reference_column``).
        asynchronous: return a coroutine function (TRL awaits it alongside other rewards).
        options: ``both_orders`` (pairwise: judge both orders and average; default the spec's),
            ``reference_column``; ``response_format``, what the critic is shown as the response: a
            format string over ``completion``, ``question`` and the dataset's columns (default
            ``"{completion}"``); ``api_key`` (or env ``CRITICS_API_KEY``); ``timeout`` in seconds;
            ``max_items_per_request``; ``samples`` and ``vote``, overriding the critic spec's
            test-time scaling (k judgments per completion, voted; a ``listwise`` critic rewards a
            completion by the mean of its k scores).
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


def _lost() -> Critique:
    from critics.serving.remote import unreachable

    return unreachable()


# -- verl ----------------------------------------------------------------------------------------

_REMOTES: dict[str, RemoteCritic] = {}  # one client (and one spec fetch) per server, across verl's calls


def compute_score(
    data_source: str,
    solution_str: str,
    ground_truth: Any,
    extra_info: dict | None = None,
    *,
    critic_url: str | None = None,
    task: str | None = None,
    timeout: float = 60.0,
    invalid_score: float = 0.0,
    samples: int | None = None,
    vote: str | None = None,
    **kwargs,
) -> dict[str, float]:
    """verl's ``custom_reward_function``: score one response with ``critics serve``.

    Point verl at it with ``custom_reward_function.path=<critics>/serving/adapters.py``,
    ``custom_reward_function.name=compute_score`` and ``reward_kwargs.critic_url=http://host:port``
    (or env ``CRITICS_URL``). The critic's spec (read from the server) says how it judges; ``task``
    overrides its default task. The question comes from ``extra_info["question"]`` (verl's GSM8K
    preprocessing writes it), else ``extra_info["prompt"]``. verl needs a number: an item the
    critic could not score gets ``invalid_score`` and ``critic_valid`` 0, which verl logs.
    ``samples``/``vote`` override the served spec's test-time scaling (the server samples and votes).
    """
    votes = vote_fields(samples, vote)
    url = critic_url or os.environ.get("CRITICS_URL")
    if not url:
        raise ValueError("compute_score needs critic_url (reward_kwargs) or the CRITICS_URL environment variable")
    remote = _REMOTES.setdefault(url, RemoteCritic(url, timeout=timeout))
    try:
        item = _verl_item(task or remote.task, solution_str, ground_truth, extra_info)
    except ConnectionError:
        return _verl_result(None, invalid_score)
    return _verl_result(remote.critique([item], **votes)[0].score, invalid_score)


async def compute_score_async(
    data_source: str,
    solution_str: str,
    ground_truth: Any,
    extra_info: dict | None = None,
    reward_router_address: str | None = None,
    reward_model_tokenizer: Any = None,
    *,
    task: str | None = None,
    spec: Any = None,
    timeout: float = 120.0,
    invalid_score: float = 0.0,
    samples: int | None = None,
    vote: str | None = None,
    **kwargs,
) -> dict[str, float]:
    """verl's async reward-loop function for a generative critic behind ``reward_router_address``.

    verl's reward loop serves the critic (``reward_model.enable``) and passes the router's address;
    this renders the critic's prompt, fitted to its budget, calls ``/v1/chat/completions`` there, and
    reads the verdict with ``critics.judging``, so a critic trained here is read as in training. The
    spec is ``spec`` (a file or a built-in name) if given, else the server's own (``GET /spec``: a
    ``critics serve``), else the documented defaults, with a warning. Token counts use
    ``reward_model_tokenizer`` when verl passes it. With ``samples`` k > 1 (the argument, else the
    spec's) it asks for k choices in one request (``n``) and votes them (``vote``, else the spec's,
    else the task's: ``critics.judging.votes``); a greedy spec cannot sample (``ConfigError``).
    """
    import httpx

    from critics.judging.tasks import read_verdict, verdict_score  # ``task`` is an argument here
    from critics.judging.votes import vote as voted

    address = reward_router_address or kwargs.get("critic_url") or os.environ.get("CRITICS_URL", "")
    base = (address if "://" in address else f"http://{address}").rstrip("/")
    try:
        critic_spec = await _async_spec(base, spec, timeout)
    except (httpx.HTTPError, ValueError) as error:
        logger.warning("compute_score_async: %s", error)
        return _verl_result(None, invalid_score)
    changes = {k: v for k, v in {"samples": samples, "vote": vote}.items() if v is not None}
    # the caller's own arguments, checked by the spec (a bad one raises, naming the key)
    critic_spec = dataclasses.replace(critic_spec, **changes) if changes else critic_spec
    if critic_spec.samples > 1 and critic_spec.vote == "meta":
        raise ValueError(
            "compute_score_async votes the chat choices itself and has no meta RM: serve the critic with "
            "--samples K --vote meta --meta-rm PATH and use compute_score, which calls its /score"
        )
    try:
        row = _verl_item(task or critic_spec.task, solution_str, ground_truth, extra_info)
        messages = _fitted_prompt(row, critic_spec, reward_model_tokenizer)
    except (httpx.HTTPError, ValueError) as error:
        logger.warning("compute_score_async: %s", error)
        return _verl_result(None, invalid_score)
    if messages is None:
        return _verl_result(None, invalid_score)
    k = critic_spec.samples
    request = {
        "messages": messages,
        "max_tokens": critic_spec.max_new_tokens,
        "temperature": critic_spec.temperature,
        "n": k,
    }
    try:
        async with httpx.AsyncClient(timeout=timeout) as client:
            response = await client.post(base + "/v1/chat/completions", json=request)
            response.raise_for_status()
            texts = [c["message"]["content"] or "" for c in response.json()["choices"]][:k]
    except (httpx.HTTPError, KeyError, ValueError, IndexError, TypeError):
        return _verl_result(None, invalid_score)
    if not texts:
        return _verl_result(None, invalid_score)
    judged = []
    for text in texts:
        verdict = read_verdict(text, row)
        judged.append(Critique(text, verdict, verdict_score(verdict, row)))
    if k == 1:
        return _verl_result(judged[0].score, invalid_score)
    return _verl_result(voted(judged, row, critic_spec.vote).score, invalid_score)


_SPECS: dict[str, Any] = {}


async def _async_spec(base: str, given: Any, timeout: float):
    """The spec ``compute_score_async`` judges by (its docstring's order), cached per address."""
    from critics.judging.spec import find_spec, load_spec, spec_from_dict

    if given is not None:
        return find_spec(given)
    if base not in _SPECS:
        import httpx

        try:
            async with httpx.AsyncClient(timeout=timeout) as client:
                response = await client.get(base + "/spec")
            _SPECS[base] = spec_from_dict(response.json()) if response.status_code == 200 else load_spec(None, base)
        except httpx.HTTPError:
            return load_spec(None, base)  # not cached: the server may come up
    return _SPECS[base]


def _fitted_prompt(row: Item, spec: Any, tokenizer: Any) -> list[dict] | None:
    """The critic's prompt for ``row`` within the spec's budget (None: refused as too long)."""
    from critics.judging.budget import CharCounter, TokenizerCounter, fit_row
    from critics.judging.judge import conversation

    budget = spec.prompt_budget
    if budget is None:
        return conversation(row, spec, images=False)
    counter = TokenizerCounter(tokenizer) if tokenizer is not None else CharCounter()

    def measure(messages: list[dict]) -> int:
        if tokenizer is not None:
            return counter.count(tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False))
        return CharCounter().count("\n".join(m["content"] for m in messages)) + 4 * len(messages)

    fitted = fit_row(row, lambda r: conversation(r, spec, images=False), measure, budget, counter, spec.truncate)
    return None if fitted.row is None else conversation(fitted.row, spec, images=False)


def _verl_item(task_name: str, solution: str, ground_truth: Any, extra_info: dict | None) -> Item:
    info = extra_info or {}
    question = str(info.get("question") or info.get("prompt") or "")
    if len(task(task_name).judged) > 1 or task(task_name).check:
        raise ValueError(f"verl's compute_score judges one response; a {task_name} critic needs more")
    item = reward_item(task_name, question, solution)
    item["gold_answer"] = None if ground_truth is None else str(ground_truth)
    return item


def _verl_result(score: float | None, invalid_score: float) -> dict[str, float]:
    return {"score": invalid_score if score is None else float(score), "critic_valid": float(score is not None)}
