"""Held-out verdict accuracy of a generative critic: critiques as its spec says, parsed, compared to labels."""

from __future__ import annotations

import math

from critics.judging.chat import LocalChatModel
from critics.judging.generation import LoadedModel
from critics.judging.judge import judge
from critics.judging.spec import CriticSpec
from critics.judging.tasks import verdict_correct


def critique_accuracy(
    lm: LoadedModel, dataset, spec: CriticSpec, *, batch_size: int = 64, progress: bool = True
) -> dict[str, float]:
    """Accuracy of the critic's verdicts on labelled records, with its standard error.

    Returns ``accuracy``, ``stderr`` (binomial), ``valid`` (share of outputs with a parsable
    verdict), ``too_long`` (prompts over the spec's budget: cut, or refused and counted wrong) and
    ``n``. An output without a valid verdict counts as wrong. Records with ``images`` (paths) are
    judged with their images, which needs a vision-language model.
    """
    rows = list(dataset)
    if not rows:
        return {"accuracy": float("nan"), "stderr": float("nan"), "valid": float("nan"), "too_long": 0, "n": 0}
    from tqdm.auto import tqdm

    chat = LocalChatModel(lm, batch_size=batch_size)
    critiques = []
    step = batch_size * 4  # a progress bar that moves, and sorting by length within each chunk
    for start in tqdm(range(0, len(rows), step), desc="held-out critiques", disable=not progress, unit=" chunk"):
        critiques += judge(chat, rows[start : start + step], spec)
    right = sum(verdict_correct(c.verdict, r) for c, r in zip(critiques, rows))
    n = len(rows)
    accuracy = right / n
    return {
        "accuracy": accuracy,
        "stderr": math.sqrt(accuracy * (1 - accuracy) / n),
        "valid": sum(c.verdict.ok for c in critiques) / n,
        "too_long": sum(c.prompt != "ok" for c in critiques),
        "n": n,
    }
