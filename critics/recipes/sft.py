"""Recipe ``sft``: the cold start of a critic, on critiques whose verdict matches the label.

The critiques come from any model: a column of the training records (written by whatever model
you like, offline) or samples drawn here from a ``teacher`` checkpoint. Either way they pass one
rejection-sampling filter: a critique is kept only if ``critics.verdicts`` parses a valid verdict
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

from critics.models import ModelConfig, load_causal_lm, lora_config, precision_args
from critics.recipes.common import (AtomicCheckpoints, DataSettings, EvalSettings, RunSettings,
                                    TemplateSettings, load_data, resume_point, set_threads_for_cpu,
                                    train_and_finish)


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
            raise ValueError("critiques.backend 'openai' needs critiques.teacher (the served name) and critiques.base_url")


@dataclass
class SFTRecipeConfig:
    """The ``sft`` recipe (``configs/recipes/sft.yaml``)."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataSettings = field(default_factory=DataSettings)
    run: RunSettings = field(default_factory=lambda: RunSettings(
        output_dir="outputs/sft", max_steps=500, learning_rate=1e-5, lr_scheduler_type="cosine",
        warmup_steps=0.03))
    critiques: CritiqueSettings = field(default_factory=CritiqueSettings)
    template: TemplateSettings = field(default_factory=TemplateSettings)
    eval: EvalSettings = field(default_factory=EvalSettings)
    max_length: int = 2048


def filter_critiques(rows: list[dict[str, Any]], critiques: list[list[str]], template: TemplateSettings,
                     keep_per_row: int = 1, images: bool = False) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Keep critiques whose verdict matches the label; return SFT rows and what happened to the rest.

    With ``images`` the prompts are vision-language prompts and each kept row carries its
    record's ``images`` (paths; an empty list for a text-only record).

    >>> row = {"task": "pointwise", "question": "1+1", "response": "1+1=3", "label": "incorrect"}
    >>> kept, stats = filter_critiques([row], [["1+1=2, not 3. \\\\boxed{Incorrect}", "\\\\boxed{Correct}"]],
    ...                                TemplateSettings(style="compact"))
    >>> len(kept), stats["kept"], stats["wrong verdict"]
    (1, 1, 1)
    """
    from critics.eval.heldout import expected_verdict
    from critics.templates import quoted_texts, render
    from critics.verdicts import parse_verdict

    kept, stats = [], Counter()
    for row, texts in zip(rows, critiques):
        taken = 0
        for text in texts:
            verdict = parse_verdict(text, row["task"], quoted=quoted_texts(row))
            reason = ("wrong verdict" if verdict.ok and verdict.value != expected_verdict(row)
                      else verdict.reason)
            if reason == "ok" and taken < keep_per_row:
                paths = list(row.get("images") or []) if images else []
                prompt = render(row, style=template.style, think=template.think,
                                images=len(paths) if images else None)
                kept.append({"prompt": prompt, "completion": [{"role": "assistant", "content": text}],
                             **({"images": paths} if images else {})})
                taken += 1
                stats["kept"] += 1
            else:
                stats["extra match" if reason == "ok" else reason] += 1
    return kept, dict(stats)


def collect_critiques(config: SFTRecipeConfig, dataset) -> list[list[str]]:
    """Critiques per record: from the configured column, or sampled from the teacher (a
    vision-language teacher in process sees the records' images)."""
    settings = config.critiques
    if settings.teacher:
        from critics.eval.heldout import prompt

        processor = _teacher_processor(config, dataset)
        conversations = [prompt(r, processor, config.template.style, config.template.think)
                         for r in dataset for _ in range(settings.samples_per_row)]
        texts = _teacher_generate(config, conversations)
        k = settings.samples_per_row
        return [texts[i:i + k] for i in range(0, len(texts), k)]
    column = config.critiques.column
    if column not in dataset.column_names:
        raise ValueError(f"critiques.column '{column}' is not a column of the training records "
                         f"({', '.join(dataset.column_names)}); set it, or set critiques.teacher")
    return [[c] if isinstance(c, str) else list(c or []) for c in dataset[column]]


def _teacher_config(config: SFTRecipeConfig) -> ModelConfig:
    return ModelConfig(name_or_path=config.critiques.teacher, device=config.model.device)


def _teacher_processor(config: SFTRecipeConfig, dataset):
    """The teacher's processor when it must see images (a vision-language teacher in process), else None.
    Records with images and a teacher that cannot see them are an error, not critiques of the text alone."""
    from critics.vlm import has_images, is_vision_language, load_processor

    if not has_images(dataset):
        return None
    if config.critiques.backend != "transformers" or not is_vision_language(_teacher_config(config)):
        raise ValueError(f"the records carry images, but critiques.teacher {config.critiques.teacher!r} "
                         f"({config.critiques.backend}) cannot see them: use a vision-language teacher with "
                         "backend 'transformers', or give the critiques in a column (critiques.column)")
    return load_processor(_teacher_config(config))


def _teacher_generate(config: SFTRecipeConfig, conversations: list[list[dict]]) -> list[str]:
    """One sampled critique per conversation from the configured teacher backend."""
    settings = config.critiques
    if settings.backend == "transformers":  # batched with a progress bar, on the recipe's device
        from critics.eval.heldout import generate
        from critics.vlm import is_vision_language, load_vlm

        teacher_config = _teacher_config(config)
        if is_vision_language(teacher_config):
            teacher, tokenizer = load_vlm(teacher_config, apply_lora=False)
        else:
            teacher, tokenizer = load_causal_lm(teacher_config, apply_lora=False)
        return generate(teacher, tokenizer, conversations, max_new_tokens=settings.max_new_tokens,
                        temperature=settings.temperature)
    from critics.serving.backends import make_backend

    options = {"base_url": settings.base_url, "api_key": settings.api_key or None} if settings.backend == "openai" else {}
    backend = make_backend(settings.backend, settings.teacher, **options)
    try:
        return backend.generate(conversations, max_new_tokens=settings.max_new_tokens, temperature=settings.temperature)
    finally:
        backend.close()


def build(config: SFTRecipeConfig):
    """A ready ``trl.SFTTrainer`` (with atomic checkpoints) plus the data it was built from."""
    import datasets
    from trl import SFTConfig, SFTTrainer

    class CriticSFTTrainer(AtomicCheckpoints, SFTTrainer):
        """SFTTrainer whose checkpoints are written atomically."""

    from critics.vlm import has_images, is_vision_language, load_images, load_vlm, vision_tower, vlm_lora_config

    set_threads_for_cpu(precision_args(config.model)["use_cpu"])
    data = load_data(config.data, config.run.seed)
    vision = is_vision_language(config.model)
    if not vision and (has_images(data.train) or config.model.freeze_vision):
        raise ValueError(f"{config.model.name_or_path} is a text-only model, but the records carry images "
                         "or model.freeze_vision is set: give a vision-language checkpoint")
    rows, stats = filter_critiques(list(data.train), collect_critiques(config, data.train), config.template,
                                   config.critiques.keep_per_row, images=vision)
    if not rows:
        raise ValueError(f"no critique matched its label ({stats}): nothing to train on")
    train = datasets.Dataset.from_list(rows)
    if vision:
        model, processing_class = load_vlm(config.model, freeze_vision=config.model.freeze_vision, apply_lora=False)
        train = load_images(train) if has_images(train) else train.remove_columns("images")
        peft_config = vlm_lora_config(config.model, vision_tower(model)[0])
    else:
        model, processing_class = load_causal_lm(config.model, apply_lora=False)
        peft_config = lora_config(config.model)
    args = SFTConfig(**config.run.trainer_args(), **precision_args(config.model), max_length=config.max_length,
                     completion_only_loss=True)
    trainer = CriticSFTTrainer(model=model, args=args, train_dataset=train, processing_class=processing_class,
                               peft_config=peft_config)
    return trainer, data, stats


def run(config: SFTRecipeConfig, resume: bool = False, progress: bool = True) -> dict[str, Any]:
    """Filter, train, evaluate before and after, and write the final checkpoint with its card."""
    checkpoint = resume_point(config.run.output_dir, resume)
    trainer, data, stats = build(config)
    return train_and_finish(config, trainer, data, checkpoint, recipe="sft", stage="SFT",
                            stages="SFT on critiques filtered for a verdict that matches the label",
                            rewards=[], metrics={"critique_filter": stats}, progress=progress,
                            extra_limitations=f"- Critique filter: {stats}.")
