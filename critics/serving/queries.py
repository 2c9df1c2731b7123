r"""Split an OpenRLHF reward query into the question and the response a critic judges.

OpenRLHF's remote reward protocol sends each ``query`` as the policy's whole sequence decoded
with its special tokens: the chat-templated prompt, the response, an end token and perhaps
padding. ``split_query`` recovers the two texts a critic prompt needs:

- the response: what follows the matching ``prompt`` when the query starts with it, else what
  follows the last assistant header (ChatML or Llama-3), else the whole query (raw text);
- the question: the content of the last user turn of the prompt part (ChatML or Llama-3),
  else the prompt text as it is.

Trailing end tokens and padding are dropped, and leading padding (left-padded prompts).

>>> split_query("<|im_start|>user\n2+2?<|im_end|>\n<|im_start|>assistant\n4<|im_end|><|endoftext|>")
('2+2?', '4')
>>> split_query("<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n2+2?<|eot_id|>"
...             "<|start_header_id|>assistant<|end_header_id|>\n\n4<|eot_id|>")
('2+2?', '4')
>>> split_query("Q: 2+2? A: 4</s>", prompt="Q: 2+2? A:")
('Q: 2+2? A:', '4')
>>> split_query("just some text")
('', 'just some text')
"""

from __future__ import annotations

END_TOKENS = ("<|im_end|>", "<|endoftext|>", "<|eot_id|>", "</s>", "<|end_of_text|>")
PAD_TOKENS = ("<|pad|>", "<pad>", "[PAD]", "<|finetune_right_pad_id|>", "<|endoftext|>")
START_TOKENS = ("<|begin_of_text|>", "<s>")

# (opening of a user turn, opening of an assistant turn, end of a turn), per chat format
CHATML = ("<|im_start|>user", "<|im_start|>assistant", "<|im_end|>")
LLAMA3 = ("<|start_header_id|>user<|end_header_id|>", "<|start_header_id|>assistant<|end_header_id|>", "<|eot_id|>")
FORMATS = (CHATML, LLAMA3)


def split_query(query: str, prompt: str | None = None) -> tuple[str, str]:
    r"""``(question, response)`` of one reward query (rules in the module docstring).

    Args:
        query: the prompt and the response as the policy's tokenizer decoded them, special tokens included.
        prompt: the prompt alone (OpenRLHF's ``prompts``), when the caller sends it.

    >>> split_query("<|pad|><|pad|><|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello!<|im_end|>\n")
    ('Hi', 'Hello!')
    >>> split_query("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nYo",
    ...             prompt="<|im_start|>user\nHi<|im_end|>\n")
    ('Hi', 'Yo')
    """
    query = _strip_leading(query)
    prompt = _strip_leading(prompt) if prompt else None
    if prompt and query.startswith(prompt):
        prompt_part, response = prompt, _drop_assistant_header(query[len(prompt) :])
    else:
        prompt_part, response = _split_at_assistant(query)
        if prompt_part is None:
            prompt_part = prompt or ""
    return _last_user_turn(prompt_part), strip_end_tokens(response)


def strip_end_tokens(text: str) -> str:
    r"""``text`` without trailing end and pad tokens, and without surrounding whitespace.

    >>> strip_end_tokens("The answer is 4.<|im_end|>\n<|endoftext|><|endoftext|>")
    'The answer is 4.'
    """
    text = text.strip()
    while True:
        token = next((t for t in END_TOKENS + PAD_TOKENS if text.endswith(t)), None)
        if token is None:
            return text
        text = text[: -len(token)].rstrip()


def _strip_leading(text: str) -> str:
    """``text`` without leading pad and start-of-text tokens (left padding of a batch)."""
    while True:
        token = next((t for t in PAD_TOKENS + START_TOKENS if text.startswith(t)), None)
        if token is None:
            return text
        text = text[len(token) :]


def _split_at_assistant(query: str) -> tuple[str | None, str]:
    """``(prompt part, response)`` at the last assistant header, or ``(None, query)`` without one."""
    found = [(query.rfind(assistant), assistant) for _, assistant, _ in FORMATS]
    position, header = max(found)
    if position < 0:
        return None, query
    return query[:position], query[position + len(header) :]


def _drop_assistant_header(response: str) -> str:
    """``response`` without an assistant header it starts with (a prompt sent without one)."""
    stripped = response.lstrip()
    header = next((a for _, a, _ in FORMATS if stripped.startswith(a)), None)
    return stripped[len(header) :] if header else response


def _last_user_turn(prompt_part: str) -> str:
    r"""The last user turn's content, or the whole prompt text when no chat format is found.

    >>> _last_user_turn("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nName a prime.<|im_end|>\n")
    'Name a prime.'
    >>> _last_user_turn("Name a prime.")
    'Name a prime.'
    """
    found = [(prompt_part.rfind(user), user, end) for user, _, end in FORMATS]
    position, header, end = max(found)
    if position < 0:
        return strip_end_tokens(prompt_part)
    content = prompt_part[position + len(header) :]
    return content.split(end, 1)[0].strip()
