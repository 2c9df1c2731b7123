"""OpenRLHF's custom reward file: ``--reward.remote_url /path/to/critics/serving/openrlhf_reward.py``
(OpenRLHF 0.10 and 0.11; older releases spell the flag ``--remote_rm_url``).

OpenRLHF loads ``reward_func(queries, prompts, labels, **kwargs)`` from this file and calls it with
chat-templated prompt + response strings, one query per call, from a thread. This one forwards them
to a running ``critics serve`` (env ``CRITICS_URL``, default ``http://127.0.0.1:8000``;
``CRITICS_API_KEY`` if the server wants one, which OpenRLHF's own HTTP client cannot send) in
OpenRLHF's ``/get_reward`` shape, labels as the dataset holds them (numbers included), and returns
tensors as OpenRLHF expects. Items the server judged without a valid verdict get the server's
``invalid_reward`` and ``critic_valid`` 0 in ``extra_logs``, so their share shows in OpenRLHF's logs.

A failed request never becomes a reward: what may pass (no connection, a timeout, 502/503/504 while
the critic restarts or is busy) is retried, after the server's ``Retry-After``, until
``CRITICS_TIMEOUT`` seconds (default 120) have gone by; anything else (a 4xx naming what is wrong
with the request, a 500, an answer of the wrong shape), and the deadline, raise
``RewardServerError``, which OpenRLHF reports instead of training on made-up zeros.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

import httpx

logger = logging.getLogger(__name__)
PASSING = (502, 503, 504)  # a critic restarting, busy or draining: worth another try
RETRY_S = 1.0  # the wait before retrying when the server gave no Retry-After


class RewardServerError(RuntimeError):
    """The critic server gave no rewards for a request, and retrying would not (or did not) help."""


def reward_func(queries: list[str], prompts: list[str], labels: list[Any] | None = None, **kwargs) -> dict:
    """OpenRLHF's reward function signature; returns ``rewards``, ``scores`` and ``extra_logs``.

    Raises:
        RewardServerError: the server refused the request, answered nonsense, or gave no answer
            within ``CRITICS_TIMEOUT`` seconds.
    """
    import torch

    url = os.environ.get("CRITICS_URL", "http://127.0.0.1:8000").rstrip("/") + "/get_reward"
    key = os.environ.get("CRITICS_API_KEY")
    timeout = float(os.environ.get("CRITICS_TIMEOUT", "120"))
    body = {
        "query": list(queries),
        "prompts": list(prompts),
        "labels": list(labels) if labels is not None else [""] * len(queries),
    }
    with httpx.Client(headers={"Authorization": f"Bearer {key}"} if key else {}) as client:
        rewards, valid = request_rewards(client, url, body, time.monotonic() + timeout)
    tensor = torch.tensor(rewards, dtype=torch.float32)
    return {"rewards": tensor, "scores": tensor.clone(), "extra_logs": {"critic_valid": torch.tensor(valid)}}


def request_rewards(client: httpx.Client, url: str, body: dict, deadline: float) -> tuple[list[float], list[float]]:
    """``(rewards, critic_valid)`` for ``body`` from ``url``, retrying what may pass until ``deadline``
    (``time.monotonic()``); raises ``RewardServerError`` otherwise."""
    while True:
        try:
            response = client.post(url, json=body, timeout=max(deadline - time.monotonic(), 0.1))
        except httpx.TransportError as error:  # refused, reset, timed out: the critic may be restarting
            problem, wait = f"{type(error).__name__}: {error}", RETRY_S
        else:
            if response.status_code not in PASSING:
                return _rewards(response, url, len(body["query"]))
            problem, wait = f"HTTP {response.status_code}: {_message(response)}", _retry_after(response)
        if time.monotonic() + wait >= deadline:
            raise RewardServerError(f"{url} gave no rewards in time (CRITICS_TIMEOUT); last: {problem}")
        logger.warning("%s: %s; retrying in %.1f s", url, problem, wait)
        time.sleep(wait)


def _rewards(response: httpx.Response, url: str, n: int) -> tuple[list[float], list[float]]:
    """The rewards and validity flags of a final answer, or ``RewardServerError`` saying what is wrong."""
    if response.status_code != 200:
        raise RewardServerError(f"{url} answered HTTP {response.status_code}: {_message(response)}")
    try:
        result = response.json()
        rewards = [float(r) for r in result["rewards"]]
        valid = [float(v) for v in result["extra_logs"]["critic_valid"]]
    except (ValueError, KeyError, TypeError) as error:
        raise RewardServerError(f"{url} answered without rewards and critic_valid: {error!r}") from None
    if len(rewards) != n or len(valid) != n:
        raise RewardServerError(f"{url} answered {len(rewards)} rewards and {len(valid)} critic_valid for {n} queries")
    return rewards, valid


def _message(response: httpx.Response) -> str:
    """The server's error message (``{"error": {"message"}}``), else the start of the body."""
    try:
        return str(response.json()["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return response.text[:300]


def _retry_after(response: httpx.Response) -> float:
    value = response.headers.get("retry-after", "")
    return float(value) if value.replace(".", "", 1).isdigit() else RETRY_S
