"""The critic as a policy (LLaVA-Critic-R1's central claim): answer held-out questions directly.

``policy_accuracy`` asks a (vision-)language model each question of a held-out set, with its
images, and checks the answer with a verifier (``exact`` by default: the final answer, normalised,
equals the gold one; ``math`` and ``choice`` also work). Run it on the checkpoint before and after
critic training to see whether judging made the model a better policy.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any


def policy_accuracy(model, processor, rows: Sequence[dict[str, Any]], *, max_new_tokens: int = 64,
                    verifier: str = "exact", batch_size: int = 16, instruction: str = "") -> dict[str, float]:
    """Accuracy of the model's greedy answers to ``rows`` (``question``, ``answer``, optional ``images``).

    ``processor`` is a multimodal processor (rows may carry image paths or PIL images) or a
    tokenizer (text-only rows). ``instruction`` is appended to each question (e.g. "Answer in one
    word."). Returns ``accuracy``, ``stderr``, ``n`` and ``answered`` (share with a final answer found).
    """
    from critics.vlm import attach_images, vlm_generate
    from data_pipelines.verifiers import VERIFIERS

    check = VERIFIERS.get(verifier)
    rows = list(rows)
    texts: list[str] = []
    for start in range(0, len(rows), batch_size):
        batch = rows[start:start + batch_size]
        conversations = []
        for row in batch:
            images = list(row.get("images") or [])
            content = [*[{"type": "image"}] * len(images), {"type": "text", "text": row["question"] + instruction}]
            conversations.append(attach_images([{"role": "user", "content": content}], images))
        if hasattr(processor, "image_processor"):
            texts += vlm_generate(model, processor, conversations, max_new_tokens=max_new_tokens, temperature=0.0)
        else:
            from critics.eval.heldout import generate

            if any(row.get("images") for row in batch):
                raise ValueError("a text-only model cannot answer questions with images (it would ignore them)")
            plain = [[{"role": "user", "content": c[0]["content"][-1]["text"]}] for c in conversations]
            texts += generate(model, processor, plain, max_new_tokens=max_new_tokens, progress=False)
    verdicts = [check(text, str(row["answer"])) for text, row in zip(texts, rows)]
    n = len(rows)
    accuracy = sum(v.correct is True for v in verdicts) / n if n else float("nan")
    return {"accuracy": accuracy, "stderr": math.sqrt(accuracy * (1 - accuracy) / n) if n else float("nan"),
            "n": n, "answered": sum(v.correct is not None for v in verdicts) / n if n else float("nan")}
