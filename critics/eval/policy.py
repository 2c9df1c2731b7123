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


def policy_accuracy(
    lm,
    rows: Sequence[dict[str, Any]],
    *,
    max_new_tokens: int = 64,
    verifier: str = "exact",
    batch_size: int = 16,
    instruction: str = "",
) -> dict[str, float]:
    """Accuracy of the model's greedy answers to ``rows`` (``question``, ``answer``, optional ``images``).

    ``lm`` is a ``LoadedModel``: a vision-language one takes rows with image paths or PIL images,
    a text-only one refuses rows with images (it would ignore them). ``instruction`` is appended to
    each question (e.g. "Answer in one word."). Returns ``accuracy``, ``stderr``, ``n`` and
    ``answered`` (share with a final answer found).
    """
    from critics.judging.generation import generate
    from critics.vlm import attach_images
    from data_pipelines.verifiers import VERIFIERS

    check = VERIFIERS.get(verifier)
    rows = list(rows)
    if not lm.vision and any(row.get("images") for row in rows):
        raise ValueError("a text-only model cannot answer questions with images (it would ignore them)")
    conversations = []
    for row in rows:
        images = list(row.get("images") or [])
        if lm.vision:
            content = [*[{"type": "image"}] * len(images), {"type": "text", "text": row["question"] + instruction}]
            conversations.append(attach_images([{"role": "user", "content": content}], images))
        else:
            conversations.append([{"role": "user", "content": row["question"] + instruction}])
    texts = generate(lm, conversations, max_new_tokens=max_new_tokens, batch_size=batch_size)
    verdicts = [check(text, str(row["answer"])) for text, row in zip(texts, rows)]
    n = len(rows)
    accuracy = sum(v.correct is True for v in verdicts) / n if n else float("nan")
    return {
        "accuracy": accuracy,
        "stderr": math.sqrt(accuracy * (1 - accuracy) / n) if n else float("nan"),
        "n": n,
        "answered": sum(v.correct is not None for v in verdicts) / n if n else float("nan"),
    }
