"""Recipe ``sft``: the cold start of a critic, on critiques whose verdict matches the label.

The critiques come from any model: a column of the training records (written by whatever model
you like, offline) or samples drawn here from a ``teacher`` checkpoint. Either way they pass one
rejection-sampling filter: a critique is kept only if ``critics.judging`` parses a valid verdict
from it and that verdict equals the record's label. SFT then trains on the kept (prompt,
critique) pairs, the loss on the critique only.

A vision-language checkpoint trains on records with ``images`` (paths) the way ``critic_rl`` does:
one image part per image before the prompt text, rendered by the checkpoint's processor (TRL's
vision-language collator), so the warm start of a multimodal critic sees what it will judge.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Literal

from critics.judging.chat import LocalChatModel, make_chat_model
from critics.judging.generation import load_model
from critics.judging.judge import conversation, fitted_prompt
from critics.judging.spec import CriticSpec
from critics.judging.tasks import read_verdict, render, verdict_correct
from critics.models import ModelConfig, lora_config, precision_args
from critics.recipes import distributed
from critics.recipes.common import (
    AtomicCheckpoints,
    BudgetLog,
    DataSettings,
    EvalSettings,
    RunSettings,
    TemplateSettings,
    critic_spec,
    load_data,
    record_tasks,
    resume_point,
    set_threads_for_cpu,
    train_and_finish,
)


@dataclass
class CritiqueSettings:
    """Where the critiques come from and how many to keep.

    Args:
        column: the records' column holding one critique (a string) or several (a list).
        teacher: sample critiques from this model instead: a checkpoint or hub name (``transformers``,
            ``vllm``), or the served model's name (``openai``).
        backend: what runs the teacher: ``transformers`` (in process), ``vllm`` or ``openai``
            (any OpenAI-compatible endpoint at ``base_url``).
        base_url, api_key: the ``openai`` backend's endpoint.
        samples_per_row: teacher samples per record.
        temperature: teacher sampling temperature.
        max_new_tokens: teacher critique length limit.
        keep_per_row: at most this many matching critiques per record.
    """

    column: str = "critique"
    teacher: str = ""
    backend: Literal["transformers", "vllm", "openai"] = "transformers"
    base_url: str = ""
    api_key: str = ""
    samples_per_row: int = 4
    temperature: float = 0.7
    max_new_tokens: int = 1024
    keep_per_row: int = 1

    def __post_init__(self) -> None:
        if self.backend == "openai" and not (self.teacher and self.base_url):
            raise ValueError(
                "critiques.backend 'openai' needs critiques.teacher (the served name) and critiques.base_url"
            )


@dataclass
class SFTRecipeConfig:
    """The ``sft`` recipe (``configs/recipes/sft.yaml``).

    ``max_new_tokens`` is the judgment length written into the critic's spec (what serving and
    evaluation give it); None: the longest kept critique's tokens plus a quarter, to a multiple of 16.
    """

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataSettings = field(default_factory=DataSettings)
    run: RunSettings = field(
        default_factory=lambda: RunSettings(
            output_dir="outputs/sft", max_steps=500, learning_rate=1e-5, lr_scheduler_type="cosine", warmup_steps=0.03
        )
    )
    critiques: CritiqueSettings = field(default_factory=CritiqueSettings)
    template: TemplateSettings = field(default_factory=TemplateSettings)
    eval: EvalSettings = field(default_factory=EvalSettings)
    max_length: int = 2048
    max_new_tokens: int | None = None

    def __post_init__(self) -> None:
        if self.max_new_tokens is not None and self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be a positive int or null, got {self.max_new_tokens}")


def filter_critiques(
    rows: list[dict[str, Any]],
    critiques: list[list[str]],
    template: TemplateSettings,
    keep_per_row: int = 1,
    images: bool = False,
    prompt: Any = None,
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Keep critiques whose verdict matches the label; return SFT rows and what happened to the rest.

    With ``images`` the prompts are vision-language prompts and each kept row carries its
    record's ``images`` (paths; an empty list for a text-only record). ``prompt(row) -> (messages
    or None, status)`` renders a row within the critic's token budget (``fitted_prompt``); a row
    refused as too long keeps no critique (``too long`` in the stats), one cut counts ``prompt cut``.

    >>> row = {"task": "pointwise", "question": "1+1", "response": "1+1=3", "label": "incorrect"}
    >>> kept, stats = filter_critiques([row], [["1+1=2, not 3. \\\\boxed{Incorrect}", "\\\\boxed{Correct}"]],
    ...                                TemplateSettings(style="compact"))
    >>> len(kept), stats["kept"], stats["wrong verdict"]
    (1, 1, 1)
    """
    kept, stats = [], Counter()
    for row, texts in zip(rows, critiques):
        taken = 0
        paths = list(row.get("images") or []) if images else []
        if prompt is None:
            messages, status = (
                render(row, style=template.style, think=template.think, images=len(paths) if images else None),
                "ok",
            )
        else:
            messages, status = prompt(row)
        if messages is None:
            stats["too long"] += len(texts)
            continue
        stats["prompt cut"] += status == "truncated"
        for text in texts:
            verdict = read_verdict(text, row)
            reason = "wrong verdict" if verdict.ok and not verdict_correct(verdict, row) else verdict.reason
            if reason == "ok" and taken < keep_per_row:
                kept.append(
                    {
                        "prompt": messages,
                        "completion": [{"role": "assistant", "content": text}],
                        **({"images": paths} if images else {}),
                    }
                )
                taken += 1
                stats["kept"] += 1
            else:
                stats["extra match" if reason == "ok" else reason] += 1
    return kept, {k: v for k, v in stats.items() if v}


def collect_critiques(config: SFTRecipeConfig, dataset) -> list[list[str]]:
    """Critiques per record: from the configured column, or sampled from the teacher (a
    vision-language teacher in process sees the records' images)."""
    settings = config.critiques
    if settings.teacher:
        return _teacher_critiques(config, dataset)
    column = config.critiques.column
    if column not in dataset.column_names:
        raise ValueError(
            f"critiques.column '{column}' is not a column of the training records "
            f"({', '.join(dataset.column_names)}); set it, or set critiques.teacher"
        )
    return [[c] if isinstance(c, str) else list(c or []) for c in dataset[column]]


def _teacher_critiques(config: SFTRecipeConfig, dataset) -> list[list[str]]:
    """``samples_per_row`` critiques per record from the configured teacher. Records with images and a
    teacher that cannot see them are an error, not critiques of the text alone."""
    from critics.vlm import has_images

    settings = config.critiques
    options: dict[str, Any] = {"device": config.model.device}
    if settings.backend == "openai":
        options = {"base_url": settings.base_url, "api_key": settings.api_key or None}
    elif settings.backend == "vllm":
        options = {}
    teacher = make_chat_model(settings.backend, settings.teacher, **options)
    try:
        if has_images(dataset) and not teacher.supports_images:
            raise ValueError(
                f"the records carry images, but critiques.teacher {settings.teacher!r} "
                f"({settings.backend}) cannot see them: use a vision-language teacher with "
                "backend 'transformers', or give the critiques in a column (critiques.column)"
            )
        spec = CriticSpec(tasks=record_tasks(dataset), style=config.template.style, think=config.template.think)
        conversations = [conversation(r, spec, teacher.supports_images) for r in dataset]
        texts = teacher.generate(
            conversations,
            max_new_tokens=settings.max_new_tokens,
            temperature=settings.temperature,
            n=settings.samples_per_row,
        )
    finally:
        teacher.close()
    k = settings.samples_per_row
    return [texts[i : i + k] for i in range(0, len(texts), k)]


def judgment_length(tokenizer, rows: list[dict[str, Any]]) -> int:
    """The longest kept critique's tokens plus a quarter, to a multiple of 16 (the spec's ``max_new_tokens``)."""
    longest = max(len(tokenizer(r["completion"][0]["content"], add_special_tokens=False)["input_ids"]) for r in rows)
    return -(-(longest * 5 // 4 + 1) // 16) * 16


def build(config: SFTRecipeConfig):
    """A ready ``trl.SFTTrainer`` (with atomic checkpoints) plus the data it was built from."""
    import datasets
    from trl import SFTConfig, SFTTrainer

    from critics.vlm import has_images, load_images, vision_tower, vlm_lora_config

    class CriticSFTTrainer(AtomicCheckpoints, SFTTrainer):
        """SFTTrainer whose checkpoints are written atomically."""

    set_threads_for_cpu(precision_args(config.model)["use_cpu"])
    data = load_data(config.data, config.run.seed)
    lm = load_model(config.model, freeze_vision=config.model.freeze_vision)
    if not lm.vision and has_images(data.train):
        raise ValueError(
            f"{config.model.name_or_path} is a text-only model, but the records carry images: "
            "give a vision-language checkpoint"
        )
    tasks = record_tasks(data.train, config.data.task)
    spec = critic_spec(config.template, tasks, config.max_new_tokens or 512, lm)
    chat = LocalChatModel(lm)
    # once, on the main process (a teacher samples there only), the kept rows then sent to every rank
    rows, stats = distributed.from_main(
        lambda: filter_critiques(
            list(data.train),
            collect_critiques(config, data.train),
            config.template,
            config.critiques.keep_per_row,
            images=lm.vision,
            prompt=lambda row: fitted_prompt(chat, row, spec, lm.vision),
        )
    )
    if not rows:
        raise ValueError(f"no critique matched its label ({stats}): nothing to train on")
    if config.max_new_tokens is None:
        spec = critic_spec(config.template, tasks, judgment_length(lm.tokenizer, rows), lm)
    train = datasets.Dataset.from_list(rows)
    if lm.vision:
        train = load_images(train) if has_images(train) else train.remove_columns("images")
        peft_config = vlm_lora_config(config.model, vision_tower(lm.model)[0])
    else:
        peft_config = lora_config(config.model)
    args = SFTConfig(
        **config.run.trainer_args(),
        **precision_args(config.model),
        max_length=config.max_length,
        completion_only_loss=True,
    )
    trainer = CriticSFTTrainer(
        model=lm.model, args=args, train_dataset=train, processing_class=lm.processing_class, peft_config=peft_config
    )
    trainer.critic_spec, trainer.critic_loaded = spec, lm
    trainer.add_callback(BudgetLog({"cut": stats.get("prompt cut", 0), "too long": stats.get("too long", 0)}))
    return trainer, data, stats


def run(config: SFTRecipeConfig, resume: bool = False, progress: bool = True) -> dict[str, Any]:
    """Filter, train, evaluate before and after, and write the final checkpoint with its card."""
    distributed.start(precision_args(config.model)["use_cpu"], config.run.ddp_timeout)
    checkpoint = resume_point(config.run.output_dir, resume)
    trainer, data, stats = build(config)
    return train_and_finish(
        config,
        trainer,
        data,
        checkpoint,
        recipe="sft",
        stage="SFT",
        stages="SFT on critiques filtered for a verdict that matches the label",
        rewards=[],
        metrics={"critique_filter": stats},
        progress=progress,
        extra_limitations=f"- Critique filter: {stats}.",
    )
