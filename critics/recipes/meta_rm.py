"""Recipe ``meta_rm``: a meta reward model that learns which sampled judgments to trust (DeepSeek-GRM).

It reads the ``grm`` recipe's ``judgments.jsonl`` (each sampled judgment with its listwise item and
whether it was right: its scores single out the labelled best, ``tasks.listwise_correct``) and
trains a scalar sequence classifier (a causal LM with a one-label head, as ``polar`` trains) with
binary cross-entropy: its logit is the log-odds that a judgment is right. The input is exactly
what ``critics.judging.meta.MetaRM`` scores at inference (``meta_conversation`` fitted to
``layout.max_tokens``, through the chat template), and ``final/`` carries ``meta_rm.json``, so
``critics serve CKPT --meta-rm PATH`` and ``vote: meta`` use it without flags.

Held-out items (split by item, so no item's judgments are on both sides) report accuracy (logit
above 0 against the label), the share of right judgments (the base rate), AUC, and
``top_right``: how often the judgment it trusts most is right, against ``base_rate``.
"""

from __future__ import annotations

import json
import math
import random
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from critics.judging.chat import LocalChatModel
from critics.judging.generation import load_model
from critics.judging.meta import MetaLayout, MetaRM
from critics.models import ModelConfig, lora_config, precision_args
from critics.recipes import distributed
from critics.recipes.common import (
    AtomicCheckpoints,
    RunSettings,
    resume_point,
    save_final,
    set_threads_for_cpu,
    show_progress,
    write_run_files,
)
from data_pipelines.files import writing

RECORD_KEYS = ("question", "responses", "label", "judgment", "right")


@dataclass
class MetaRMData:
    """Where the judgments come from: ``judgments`` (the ``grm`` run's folder or its ``judgments.jsonl``),
    ``stage`` (``final``, ``rft`` or empty: all), ``eval_items`` (held-out items), ``limit`` (0: all)."""

    judgments: str = ""
    stage: str = "final"
    eval_items: int = 100
    limit: int = 0


@dataclass
class MetaRMConfig:
    """The ``meta_rm`` recipe (``configs/recipes/meta_rm.yaml``)."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: MetaRMData = field(default_factory=MetaRMData)
    run: RunSettings = field(
        default_factory=lambda: RunSettings(output_dir="outputs/meta_rm", learning_rate=2e-5, max_steps=500)
    )
    layout: MetaLayout = field(default_factory=MetaLayout)
    eval_batch_size: int = 32

    def __post_init__(self) -> None:
        if not self.data.judgments:
            raise ValueError("data.judgments is empty: give the grm run's folder or its judgments.jsonl")
        if self.data.stage not in ("", "final", "rft"):
            raise ValueError(f"data.stage must be 'final', 'rft' or empty, got {self.data.stage!r}")


def load_judgments(settings: MetaRMData) -> list[dict[str, Any]]:
    """The judgments of ``settings.stage``; ``ValueError`` naming the first malformed line."""
    path = Path(settings.judgments)
    path = path / "judgments.jsonl" if path.is_dir() else path
    if not path.is_file():
        raise FileNotFoundError(f"no judgments at {settings.judgments} (the grm recipe writes judgments.jsonl)")
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        row = json.loads(line)
        missing = [k for k in RECORD_KEYS if k not in row]
        if missing or not isinstance(row["right"], bool):
            raise ValueError(f"{path}:{number}: a judgment needs {', '.join(RECORD_KEYS)} (right: bool)")
        if not settings.stage or row.get("stage") == settings.stage:
            rows.append({**row, "task": "listwise"})
    if not rows:
        raise ValueError(f"{path} holds no judgments of stage {settings.stage!r}")
    return rows[: settings.limit] if settings.limit else rows


def split_by_item(rows: list[dict[str, Any]], eval_items: int, seed: int):
    """``(train, held out)``: whole items (question and responses) on one side, ``eval_items`` held out.

    >>> rows = [{"question": q, "responses": ["a"], "n": n} for q in "xyz" for n in range(2)]
    >>> train, held = split_by_item(rows, 1, 0)
    >>> len(train), len(held), len({r["question"] for r in held})
    (4, 2, 1)
    """
    keys = sorted({_item(r) for r in rows})
    if eval_items >= len(keys):
        raise ValueError(f"data.eval_items ({eval_items}) must be below the {len(keys)} items")
    held = set(random.Random(seed).sample(keys, eval_items))
    return [r for r in rows if _item(r) not in held], [r for r in rows if _item(r) in held]


def _item(row: dict[str, Any]) -> str:
    return json.dumps([row["question"], row["responses"]])


def encode(meta: MetaRM, rows: list[dict[str, Any]]) -> list[list[int] | None]:
    """Token ids of each judgment's input, exactly as ``MetaRM.scores`` reads it (None: cannot be fitted)."""
    tokenizer = meta.model.tokenizer
    conversations = meta.conversations(rows, [SimpleNamespace(text=r["judgment"]) for r in rows])
    return [
        None
        if c is None
        else tokenizer(tokenizer.apply_chat_template(c, tokenize=False), add_special_tokens=False)["input_ids"]
        for c in conversations
    ]


def held_out_metrics(meta: MetaRM, rows: list[dict[str, Any]]) -> dict[str, float]:
    """Accuracy, base rate, AUC and ``top_right`` (the most trusted judgment per item is right)."""
    if not rows:
        return {}
    scores = meta.scores(rows, [SimpleNamespace(text=r["judgment"]) for r in rows])
    labels = [r["right"] for r in rows]
    n = len(rows)
    accuracy = sum((s > 0) == y for s, y in zip(scores, labels)) / n
    pos, neg = [s for s, y in zip(scores, labels) if y], [s for s, y in zip(scores, labels) if not y]
    auc = sum((p > q) + 0.5 * (p == q) for p in pos for q in neg) / (len(pos) * len(neg)) if pos and neg else math.nan
    items: dict[str, list[tuple[float, bool]]] = {}
    for row, s, y in zip(rows, scores, labels):
        items.setdefault(_item(row), []).append((s, y))
    top = [max(v, key=lambda t: t[0])[1] for v in items.values()]
    return {
        "accuracy": accuracy,
        "stderr": math.sqrt(accuracy * (1 - accuracy) / n),
        "base_rate": sum(labels) / n,
        "auc": auc,
        "top_right": sum(top) / len(top),
        "n": n,
    }


def build(config: MetaRMConfig):
    """A ``transformers.Trainer`` (atomic checkpoints, BCE on the one-label head), its MetaRM and the rows."""
    import datasets
    from transformers import DataCollatorWithPadding, Trainer, TrainingArguments

    class MetaRMTrainer(AtomicCheckpoints, Trainer):
        """Trainer whose checkpoints are written atomically."""

    rows = load_judgments(config.data)
    train_rows, held = split_by_item(rows, config.data.eval_items, config.run.seed)
    lm = load_model(config.model, kind="scalar", apply_lora=False)
    lm.model.config.problem_type = "multi_label_classification"  # BCE with logits on a 0/1 label
    meta = MetaRM(LocalChatModel(lm, batch_size=config.eval_batch_size), config.layout)
    encoded = encode(meta, train_rows)
    train = datasets.Dataset.from_list(
        [{"input_ids": ids, "labels": [float(r["right"])]} for ids, r in zip(encoded, train_rows) if ids is not None]
    )
    args = TrainingArguments(**config.run.trainer_args(), **precision_args(config.model), remove_unused_columns=False)
    peft = lora_config(config.model, "SEQ_CLS")
    model = lm.model
    if peft is not None:
        from peft import get_peft_model

        model = get_peft_model(model, peft)
    trainer = MetaRMTrainer(
        model=model,
        args=args,
        train_dataset=train,
        data_collator=DataCollatorWithPadding(lm.tokenizer),
        processing_class=lm.tokenizer,
    )
    trainer.critic_spec = None
    return trainer, meta, train_rows, held


def run(config: MetaRMConfig, resume: bool = False, progress: bool = True) -> dict[str, Any]:
    """Train the meta RM, evaluate it before and after on held-out items, write ``final/`` with ``meta_rm.json``."""
    distributed.start(precision_args(config.model)["use_cpu"], config.run.ddp_timeout)
    set_threads_for_cpu(precision_args(config.model)["use_cpu"])
    checkpoint = resume_point(config.run.output_dir, resume)
    trainer, meta, train_rows, held = build(config)
    metrics: dict[str, Any] = {"train_judgments": len(train_rows), "right_share": _share(train_rows)}
    if checkpoint is None:
        metrics["before"] = held_out_metrics(meta, held)
    show_progress(trainer, progress)
    trainer.train(resume_from_checkpoint=checkpoint)
    meta.model.lm = meta.model.lm.with_model(trainer.model)
    metrics["after"] = held_out_metrics(meta, held)
    final = save_final(trainer, config.run.output_dir)
    with writing(config.run.output_dir, "run.output_dir"):
        config.layout.save(final)
        write_run_files(final, config, metrics, trainer.state.log_history)
    return {"final": str(final), "metrics": metrics}


def _share(rows: list[dict[str, Any]]) -> float:
    return sum(r["right"] for r in rows) / len(rows) if rows else math.nan
