"""The OpenAI chat-completions shapes ``critics serve`` speaks: the request fields it honours and
the ``chat.completion`` object it answers with (as the ``openai`` client and verl read them).

>>> request = ChatRequest.model_validate({"messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]})
>>> conversation(request)
[{'role': 'user', 'content': 'hi'}]
>>> completion_body(["hello"], 3, [1], 16, "critic")["choices"]
[{'index': 0, 'message': {'role': 'assistant', 'content': 'hello'}, 'logprobs': None, 'finish_reason': 'stop'}]

Roles: ``system``, ``user`` and ``assistant`` are what a critic's chat template was trained on;
``developer`` is OpenAI's newer name for ``system`` (its o1-and-later models take it instead, and
clients written for them send it), so it is read as ``system``, not handed to a chat template that
would drop or mangle it. ``tool`` (and the old ``function``) are refused: this server offers no
tools, so a tool result answers a call that the conversation cannot hold. Anything else is a typo.

>>> conversation(ChatRequest.model_validate({"messages": [{"role": "developer", "content": "Be brief."}]}))
[{'role': 'system', 'content': 'Be brief.'}]
>>> conversation(ChatRequest.model_validate({"messages": [{"role": "robot", "content": "hi"}]}))
Traceback (most recent call last):
...
ValueError: messages[0].role must be one of system, user, assistant, developer; got 'robot'
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from pydantic import BaseModel, Field

ROLES = {"system": "system", "user": "user", "assistant": "assistant", "developer": "system"}  # as sent -> as read
NO_TOOLS = ("tool", "function")


class ChatMessage(BaseModel):
    role: str
    content: str | list[dict[str, Any]] | None = None


class ChatRequest(BaseModel):
    """The chat fields the server honours; sampling options it has no use for (top_p, seed...) are ignored."""

    model: str | None = None
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0.0, le=2.0)
    n: int = Field(1, ge=1)
    stream: bool | None = False


def conversation(request: ChatRequest) -> list[dict[str, Any]]:
    """The messages as ``{"role", "content"}`` dicts: content a string, or, when a message holds
    ``image_url`` parts (base64 data URLs only), a list of text and ``{"type": "image", "image": PIL}``
    parts. Raises ``ValueError`` naming the message's role or part for a role it does not read (the
    module docstring), any other part or an unreadable image."""
    return [{"role": _role(i, m), "content": _content(i, m)} for i, m in enumerate(request.messages)]


def has_images(messages: list[dict[str, Any]]) -> bool:
    """Whether any message holds an image part."""
    return any(isinstance(m["content"], list) and any(p.get("type") == "image" for p in m["content"]) for m in messages)


def completion_body(
    texts: list[str], prompt_tokens: int, completion_tokens: list[int], max_tokens: int, model: str
) -> dict:
    """A ``chat.completion`` object; a choice that used all ``max_tokens`` ends with ``finish_reason`` ``"length"``."""
    choices = [
        {
            "index": i,
            "message": {"role": "assistant", "content": text},
            "logprobs": None,
            "finish_reason": "length" if n >= max_tokens else "stop",
        }
        for i, (text, n) in enumerate(zip(texts, completion_tokens))
    ]
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": choices,
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": sum(completion_tokens),
            "total_tokens": prompt_tokens + sum(completion_tokens),
        },
    }


def _role(index: int, message: ChatMessage) -> str:
    if message.role in NO_TOOLS:
        raise ValueError(
            f"messages[{index}].role {message.role!r} is not supported: this server offers no tools, "
            "so send the conversation without tool calls and their results"
        )
    if message.role not in ROLES:
        raise ValueError(f"messages[{index}].role must be one of {', '.join(ROLES)}; got {message.role!r}")
    return ROLES[message.role]


def _content(index: int, message: ChatMessage) -> str | list[dict[str, Any]]:
    if message.content is None or isinstance(message.content, str):
        return message.content or ""
    parts: list[dict[str, Any]] = []
    for j, part in enumerate(message.content):
        kind = part.get("type")
        if kind == "text" and isinstance(part.get("text"), str):
            parts.append({"type": "text", "text": part["text"]})
        elif kind == "image_url":
            from critics.vlm import decode_data_url

            url = (part.get("image_url") or {}).get("url") if isinstance(part.get("image_url"), dict) else None
            try:
                parts.append({"type": "image", "image": decode_data_url(url)})
            except ValueError as error:
                raise ValueError(f"messages[{index}].content[{j}]: {error}") from None
        else:
            raise ValueError(
                f"messages[{index}].content[{j}]: only text and image_url parts are supported, got type {kind!r}"
            )
    if all(p["type"] == "text" for p in parts):
        return "".join(p["text"] for p in parts)
    return parts
