"""The judgments ``critics eval`` saves per benchmark, what a later run may reuse, and judging the rest.

Each benchmark's folder holds ``predictions.jsonl`` (one line per judged request sample, appended
batch by batch, keyed ``ITEM_KEY|REQUEST|SAMPLE``), ``settings.json`` (what the judgments depend
on) and ``sample.json`` (the keys of the items this folder has judged). A run reuses them only for
the same question: the same critic, benchmark, sampling, spec overrides and seed, and a sample that
contains every item judged before: the same one, or a larger one (a larger ``--limit``, or 0 for
all). A smaller or different sample is refused, never mixed in.

With a meta RM (``vote: meta``, ``critics.judging.meta``) each valid sample of an item it can rank
is scored as it is judged, from the whole judgment (the saved critique is cut at 4,000 characters),
and the score is saved on the sample's line (``"meta"``), so a resumed run votes without it.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from tqdm.auto import tqdm

from critics.eval.benchmark_base import Item
from critics.judging.votes import check_vote


def request_key(item: Item, request: int, sample: int) -> str:
    """The key one request sample of an item is saved under.

    >>> request_key(Item("q7", "all", [], key="3:llmbar:Natural/3"), 0, 1)
    '3:llmbar:Natural/3|0|1'
    """
    return f"{item.key}|{request}|{sample}"


def check_resume(folder: Path, settings: dict[str, Any], limit: int, items: list[Item]) -> None:
    """Refuse saved judgments in ``folder`` made with other ``settings`` or for items outside this
    run's sample (``ValueError``, saying why); then record this run's settings and sample."""
    path, sample_path = folder / "settings.json", folder / "sample.json"
    keys = [item.key for item in items]
    if path.is_file():
        before = json.loads(path.read_text())
        changed = {k: (before.get(k), v) for k, v in settings.items() if before.get(k) != v}
        if changed:
            raise ValueError(
                f"{folder} holds predictions made with other settings ({changed}): use another "
                "--output-dir, or delete that folder to start over"
            )
        judged = json.loads(sample_path.read_text()) if sample_path.is_file() else []
        outside = set(judged) - set(keys)
        if outside:
            saved = before.get("limit") or 0
            why = (
                f"--limit {limit} is smaller than the saved run's {saved or 'all'}"
                if limit and (not saved or limit < saved)
                else "the benchmark's files changed since"
            )
            raise ValueError(
                f"{folder} holds predictions of {len(judged)} items, {len(outside)} of them not in this "
                f"run's sample ({why}): a resumed run may only add items; use another --output-dir, "
                "or delete that folder to start over"
            )
    path.write_text(json.dumps({**settings, "limit": limit}, indent=2))
    sample_path.write_text(json.dumps(keys))


def judge_missing(
    items: list[Item],
    judge: Any,
    samples: int,
    batch_size: int,
    path: Path,
    desc: str,
    progress: bool = True,
    meta: Any = None,
) -> tuple[dict[str, Any], dict[str, str], int, dict[str, float | None]]:
    """Judge every request sample not in ``path`` yet, appending each batch as it finishes.

    ``meta`` (``MetaRM``, or anything with its ``scores(rows, critiques)``) scores each new valid
    sample of a request whose task it can rank (``meta_scores``), once per batch.

    Returns:
        The verdicts (or a scalar critic's scores), the critiques and the meta RM scores (None:
        not scored) by ``request_key``, and how many prompts were over the critic's token budget. A
        failed request (``judge`` answered None) is not saved, so the next run retries it.
    """
    saved, texts, cut, trust = read_predictions(path)
    todo = [
        (request_key(item, r, s), request.payload)
        for item in items
        for r, request in enumerate(item.requests)
        for s in range(samples)
    ]
    # longest first, so each batch pads its prompts to similar lengths (and the first batch shows the peak memory)
    todo = sorted(((k, p) for k, p in todo if k not in saved), key=lambda kp: -len(json.dumps(kp[1])))
    with (
        path.open("a", encoding="utf-8") as handle,
        tqdm(total=len(todo), desc=f"judging {desc}", unit=" request", disable=not progress) as bar,
    ):
        for start in range(0, len(todo), batch_size):
            batch = todo[start : start + batch_size]
            answers = judge([p for _, p in batch])
            scored = meta_scores(meta, batch, answers, judge.scalar)
            for (k, _), answer in zip(batch, answers):
                if answer is None:
                    continue
                verdict, score, text, prompt = answer
                value = score if judge.scalar else verdict
                saved[k], texts[k], cut[k], trust[k] = value, text or "", prompt != "ok", scored.get(k)
                line = {"key": k, "value": value, "critique": (text or "")[:4000], "prompt": prompt}
                if meta is not None:
                    line["meta"] = _finite(trust[k])
                handle.write(json.dumps(line) + "\n")
            handle.flush()
            bar.update(len(batch))
    return saved, texts, sum(cut.values()), trust


def meta_scores(
    meta: Any, batch: list[tuple[str, dict[str, Any]]], answers: list[Any], scalar: bool
) -> dict[str, float]:
    """The meta RM's score of each valid sample in ``batch`` whose task it can rank, by key (one call)."""
    if meta is None or scalar:
        return {}
    ranked = [
        (k, payload, answer[2] or "")
        for (k, payload), answer in zip(batch, answers)
        if answer is not None and answer[0] is not None and _rankable(payload.get("task"))
    ]
    if not ranked:
        return {}
    scores = meta.scores([p for _, p, _ in ranked], [SimpleNamespace(text=t) for _, _, t in ranked])
    return {k: float(s) for (k, _, _), s in zip(ranked, scores, strict=True)}


def read_predictions(path: Path) -> tuple[dict[str, Any], dict[str, str], dict[str, bool], dict[str, float | None]]:
    """The saved verdicts, critiques, over-budget flags and meta RM scores of ``predictions.jsonl``, by key."""
    saved: dict[str, Any] = {}
    texts: dict[str, str] = {}
    cut: dict[str, bool] = {}
    trust: dict[str, float | None] = {}
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                row = json.loads(line)
                saved[row["key"]], texts[row["key"]] = row["value"], row.get("critique", "")
                cut[row["key"]] = row.get("prompt", "ok") != "ok"
                trust[row["key"]] = row.get("meta")
    return saved, texts, cut, trust


def _rankable(task_name: Any) -> bool:
    """Whether a meta RM ranks samples of this task (``vote: meta`` can combine its verdicts)."""
    try:
        check_vote("meta", task_name)
    except (ValueError, KeyError):
        return False
    return True


def _finite(score: float | None) -> float | None:
    """A meta score as strict JSON: one the meta RM could not give (its input did not fit) is None."""
    return score if score is not None and math.isfinite(score) else None
