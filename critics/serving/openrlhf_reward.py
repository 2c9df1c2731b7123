"""OpenRLHF's custom reward file: ``--remote_rm_url /path/to/critics/serving/openrlhf_reward.py``.

OpenRLHF loads ``reward_func(queries, prompts, labels, **kwargs)`` from this file and calls it with
chat-templated prompt + response strings. This one forwards them to a running ``critics serve``
(env ``CRITICS_URL``, default ``http://127.0.0.1:8000``; ``CRITICS_API_KEY`` if the server wants
one) in OpenRLHF's own ``/get_reward`` shape, and returns tensors as OpenRLHF expects. Items the
server could not score come back with ``CRITICS_INVALID_REWARD`` (default 0.0) and
``critic_valid`` 0 in ``extra_logs``, so the share of unscored items shows up in OpenRLHF's logs.
(Pointing ``--remote_rm_url`` straight at ``http://host:port/get_reward`` works too.)
"""

from __future__ import annotations

import os


def reward_func(queries: list[str], prompts: list[str], labels: list[str] | None = None, **kwargs) -> dict:
    """OpenRLHF's reward function signature; returns ``rewards``, ``scores`` and ``extra_logs``."""
    import httpx
    import torch

    url = os.environ.get("CRITICS_URL", "http://127.0.0.1:8000").rstrip("/")
    key = os.environ.get("CRITICS_API_KEY")
    invalid = float(os.environ.get("CRITICS_INVALID_REWARD", "0.0"))
    body = {"query": list(queries), "prompts": list(prompts), "labels": list(labels or [""] * len(queries))}
    try:
        response = httpx.post(f"{url}/get_reward", json=body, timeout=float(os.environ.get("CRITICS_TIMEOUT", "120")),
                              headers={"Authorization": f"Bearer {key}"} if key else {})
        response.raise_for_status()
        result = response.json()
        rewards, valid = result["rewards"], result.get("extra_logs", {}).get("critic_valid", [1.0] * len(queries))
    except Exception:  # noqa: BLE001 - a down critic costs this batch, not the run; it shows in critic_valid
        rewards, valid = [invalid] * len(queries), [0.0] * len(queries)
    tensor = torch.tensor(rewards, dtype=torch.float32)
    return {"rewards": tensor, "scores": tensor.clone(), "extra_logs": {"critic_valid": torch.tensor(valid)}}
