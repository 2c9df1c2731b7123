"""The OpenAI chat-completions shapes ``critics serve`` speaks: the request fields it honours and
the ``chat.completion`` object it answers with (as the ``openai`` client and verl read them).

>>> request = ChatRequest.model_validate({"messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]})
>>> conversation(request)
[{'role': 'user', 'content': 'hi'}]
>>> completion_body(None, conversation(request), ["hello"], 16, "critic")["choices"]
[{'index': 0, 'message': {'role': 'assistant', 'content': 'hello'}, 'logprobs': None, 'finish_reason': 'stop'}]
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from pydantic import BaseModel, Field


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


def conversation(request: ChatRequest) -> list[dict[str, str]]:
    """The messages as plain ``{"role", "content"}`` dicts; raises ``ValueError`` for non-text content parts."""
    return [{"role": m.role, "content": _text(i, m)} for i, m in enumerate(request.messages)]


def completion_body(tokenizer, messages: list[dict], texts: list[str], max_tokens: int, model: str) -> dict:
    """A ``chat.completion`` object; token counts need the backend's tokenizer (else 0), and with it a
    choice that used all ``max_tokens`` ends with ``finish_reason`` ``"length"``."""
    counts = [count_tokens(tokenizer, t) for t in texts]
    prompt_tokens = 0
    if tokenizer is not None:
        prompt_tokens = count_tokens(tokenizer, tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, tokenize=False))
    choices = [{"index": i, "message": {"role": "assistant", "content": text}, "logprobs": None,
                "finish_reason": "length" if tokenizer is not None and n >= max_tokens else "stop"}
               for i, (text, n) in enumerate(zip(texts, counts))]
    return {"id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion", "created": int(time.time()),
            "model": model, "choices": choices,
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": sum(counts),
                      "total_tokens": prompt_tokens + sum(counts)}}


def count_tokens(tokenizer, text: str) -> int:
    """Tokens of ``text`` (no special tokens added); 0 without a tokenizer."""
    return 0 if tokenizer is None else len(tokenizer(text, add_special_tokens=False)["input_ids"])


def _text(index: int, message: ChatMessage) -> str:
    if message.content is None or isinstance(message.content, str):
        return message.content or ""
    texts = []
    for j, part in enumerate(message.content):
        if part.get("type") != "text" or not isinstance(part.get("text"), str):
            raise ValueError(f"messages[{index}].content[{j}]: only text parts are supported, "
                             f"got type {part.get('type')!r}")
        texts.append(part["text"])
    return "".join(texts)
