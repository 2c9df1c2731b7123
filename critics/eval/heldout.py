"""Held-out verdict accuracy of a generative critic: greedy critiques, parsed, compared to labels."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from tqdm.auto import tqdm

from critics.templates import quoted_texts, render
from critics.verdicts import parse_verdict


def expected_verdict(row: dict[str, Any]) -> str | int:
    """The verdict a perfect critic gives for a record (its label, as the parser returns it)."""
    return int(row["label"]) if row["task"] == "step" else row["label"]


def is_processor(processing_class) -> bool:
    """Whether ``processing_class`` is a multimodal processor (it carries an image processor)."""
    return getattr(processing_class, "image_processor", None) is not None


def generate(model, tokenizer, conversations: Sequence[list[dict]], *, max_new_tokens: int,
             batch_size: int = 64, temperature: float = 0.0, progress: bool = True) -> list[str]:
    """Complete chat prompts in batches (greedy when ``temperature`` is 0); returns the new text.

    ``tokenizer`` may be a vision-language processor; the conversations' image parts then carry
    their images (``critics.vlm.attach_images``)."""
    import torch

    outputs: list[str] = []
    model.eval()
    batches = range(0, len(conversations), batch_size)
    for start in tqdm(batches, desc="generate", disable=not progress, unit=" batch"):
        if is_processor(tokenizer):
            from critics.vlm import vlm_generate

            outputs += vlm_generate(model, tokenizer, list(conversations[start:start + batch_size]),
                                    max_new_tokens=max_new_tokens, temperature=temperature)
            continue
        texts = [tokenizer.apply_chat_template(c, add_generation_prompt=True, tokenize=False)
                 for c in conversations[start:start + batch_size]]
        encoded = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)
        sampling = {"do_sample": True, "temperature": temperature} if temperature > 0 else {"do_sample": False}
        with torch.no_grad():
            generated = model.generate(**encoded, max_new_tokens=max_new_tokens, **sampling)
        new = generated[:, encoded["input_ids"].shape[1]:]
        outputs += tokenizer.batch_decode(new, skip_special_tokens=True)
    return outputs


def critique_accuracy(model, tokenizer, dataset, *, style: str = "default", think: bool = False,
                      max_new_tokens: int = 512, batch_size: int = 64, progress: bool = True) -> dict[str, float]:
    """Accuracy of greedy verdicts on labelled records, with its standard error.

    Returns ``accuracy``, ``stderr`` (binomial), ``valid`` (share of outputs with a parsable
    verdict) and ``n``. An output without a valid verdict counts as wrong. Records with ``images``
    (paths) are judged with their images, which needs a vision-language model and its processor.
    """
    rows = list(dataset)
    if not rows:
        return {"accuracy": float("nan"), "stderr": float("nan"), "valid": float("nan"), "n": 0}
    texts = generate(model, tokenizer, [prompt(r, tokenizer, style, think) for r in rows],
                     max_new_tokens=max_new_tokens, batch_size=batch_size, progress=progress)
    verdicts = [parse_verdict(t, r["task"], quoted=quoted_texts(r)) for t, r in zip(texts, rows)]
    right = sum(v.ok and v.value == expected_verdict(r) for v, r in zip(verdicts, rows))
    n = len(rows)
    accuracy = right / n
    return {"accuracy": accuracy, "stderr": math.sqrt(accuracy * (1 - accuracy) / n),
            "valid": sum(v.ok for v in verdicts) / n, "n": n}


def prompt(row: dict[str, Any], processing_class, style: str, think: bool) -> list[dict]:
    """The critic's conversation for one record: text only, or with the record's images attached when
    ``processing_class`` is a vision-language processor. A record with images and a text-only
    tokenizer is an error: judging it without its images would be a silent, wrong number."""
    images = row.get("images") or []
    if not is_processor(processing_class):
        if images:
            raise ValueError(f"record {row.get('id', '?')} has images, but the critic has a text-only tokenizer: "
                             "evaluate it with a vision-language checkpoint and its processor")
        return render(row, style=style, think=think)
    from critics.vlm import attach_images

    return attach_images(render(row, style=style, think=think, images=len(images)), images)
