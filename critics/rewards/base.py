"""What every reward family shares: the ``REWARDS`` registry and reading TRL's reward arguments.

TRL calls a reward as ``f(prompts=..., completions=..., completion_ids=..., **columns)``: each
completion is a string, or with chat prompts a list of messages
(``[{"role": "assistant", "content": ...}]``); every other dataset column arrives as a list with
one entry per completion, beside non-column extras (``trainer_state``, ``log_extra``, ``log_metric``).
"""

from __future__ import annotations

from typing import Any

from data_pipelines.registry import Registry

REWARDS: Registry[Any] = Registry("reward")  # critic rewards: they read the critic's verdict
POLICY_REWARDS: Registry[Any] = Registry("policy reward")  # rule rewards for policies (``policy_grpo``)


def completion_text(completion: Any) -> str:
    """The text of one completion as TRL passes it; ``""`` for anything unreadable (never raises).

    Assistant messages are joined with newlines; a content list keeps its text parts.

    >>> completion_text("plain")
    'plain'
    >>> completion_text([{"role": "assistant", "content": [{"type": "text", "text": "hi"}]}])
    'hi'
    >>> completion_text([{"role": "assistant", "content": "a"}, {"role": "tool", "content": "x"},
    ...                  {"role": "assistant", "content": "b"}])
    'a\\nb'
    >>> completion_text(None)
    ''
    """
    if isinstance(completion, str):
        return completion
    if isinstance(completion, dict):
        completion = [completion]
    if not isinstance(completion, list):
        return ""
    texts = [
        _content_text(m.get("content"))
        for m in completion
        if isinstance(m, dict) and m.get("role", "assistant") == "assistant"
    ]
    return "\n".join(texts)


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            part.get("text", "") for part in content if isinstance(part, dict) and isinstance(part.get("text", ""), str)
        )
    return ""


def reward_rows(n: int, columns: dict[str, Any]) -> list[dict[str, Any]]:
    """Per-completion rows from TRL's column lists; values that are not such a list are dropped.

    >>> reward_rows(2, {"label": ["A", "B"], "task": ["pairwise"] * 2, "trainer_state": object()})
    [{'label': 'A', 'task': 'pairwise'}, {'label': 'B', 'task': 'pairwise'}]
    """
    lists = {k: v for k, v in columns.items() if isinstance(v, (list, tuple)) and len(v) == n}
    return [{k: v[i] for k, v in lists.items()} for i in range(n)]
