"""Recipe ``polar``: pre-train a policy discriminator, then fine-tune it on preferences (POLAR, 2025).

Both stages train a scalar reward model (a causal LM with a one-label sequence-classification
head, reading ``critics.judging.polar``'s layout) with the Bradley-Terry loss of TRL's ``RewardTrainer``
on pre-tokenized pairs:

- ``pretrain``: -log sigmoid(r(x, ref_A, pos_A) - r(x, ref_A, neg_B)) on ``polar_triple`` records
  (``data_pipelines`` builder ``polar_triples``): a candidate from the reference's own policy
  should score above one from another policy. Into ``output_dir/pretrain/``.
- ``finetune``: -log sigmoid(r(x, ref, chosen) - r(x, ref, rejected)) on ``polar_preference``
  records, from the pre-trained checkpoint. Into ``output_dir/finetune/``.

Defaults are the released ones: one epoch, lr 2e-5, 3% warmup then cosine (POLAR's xtuner
configs; the 1.8B config uses 1e-5). Held-out accuracy before and after each stage: policy
discrimination (positive above negative) and preference accuracy with references (chosen above
rejected). Each stage resumes with ``--resume``; either may be switched off.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from critics.judging.polar import PolarBudgets, PolarEncoder, add_polar_tokens, polar_scores
from critics.judging.records import load_records
from critics.judging.spec import SPEC_FILE, CriticSpec
from critics.models import ModelConfig, lora_config, precision_args
from critics.recipes import distributed
from critics.recipes.common import (
    AtomicCheckpoints,
    RunSettings,
    config_hash,
    held_out_overlap,
    save_final,
    set_threads_for_cpu,
    show_progress,
    write_run_files,
)
from critics.recipes.staged import next_stage_model, stage_metrics, stage_plan, stage_run, write_recipe_config
from data_pipelines.files import writing

PAIRS = {"pretrain": ("positive", "negative"), "finetune": ("chosen", "rejected")}


@dataclass
class PolarData:
    """Records of each stage: a built dataset, a data config or JSON(L); ``*_eval`` empty holds out ``eval_size``."""

    pretrain: str = ""
    pretrain_eval: str = ""
    finetune: str = ""
    finetune_eval: str = ""
    eval_size: int = 200
    limit: int = 0


@dataclass
class PolarStage:
    """One stage: ``enabled``, and ``max_steps`` (0: one epoch, POLAR's default)."""

    enabled: bool = True
    max_steps: int = 0


@dataclass
class PolarRunSettings(RunSettings):
    """``RunSettings`` with POLAR's released schedule; steps are set per stage."""

    output_dir: str = "outputs/polar"
    max_steps: int = 0
    learning_rate: float = 2e-5
    lr_scheduler_type: str = "cosine"
    warmup_steps: float = 0.03

    def __post_init__(self) -> None:
        if self.max_steps:
            raise ValueError("max_steps is set per stage: use pretrain.max_steps and finetune.max_steps")


@dataclass
class PolarConfig:
    """The ``polar`` recipe (``configs/recipes/polar.yaml``)."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: PolarData = field(default_factory=PolarData)
    run: PolarRunSettings = field(default_factory=PolarRunSettings)
    pretrain: PolarStage = field(default_factory=PolarStage)
    finetune: PolarStage = field(default_factory=PolarStage)
    budgets: PolarBudgets = field(default_factory=PolarBudgets)
    eval_batch_size: int = 32

    def __post_init__(self) -> None:
        if not (self.pretrain.enabled or self.finetune.enabled):
            raise ValueError("both stages are switched off: enable pretrain or finetune")
        for stage in ("pretrain", "finetune"):
            if getattr(self, stage).enabled and not getattr(self.data, stage):
                raise ValueError(f"data.{stage} is empty: give the {stage} records (or set {stage}.enabled: false)")


def stage_data(config: PolarConfig, stage: str, seed: int):
    """``(train rows, held-out rows, data cards)`` of a stage, with the columns its pairs need."""
    cards: dict[str, str] = {}
    train = load_records(getattr(config.data, stage), cards)
    good, bad = PAIRS[stage]
    missing = [c for c in ("question", "reference", good, bad) if c not in train.column_names]
    if missing:
        raise ValueError(
            f"data.{stage}: the records lack {', '.join(missing)} (a {stage} stage needs question, "
            f"reference, {good}, {bad}: the polar_{'triples' if stage == 'pretrain' else 'preference'} "
            "builder writes them)"
        )
    held_path = getattr(config.data, f"{stage}_eval")
    if held_path:
        held = load_records(held_path, cards)
    else:
        if config.data.eval_size >= len(train):
            raise ValueError(f"data.eval_size ({config.data.eval_size}) must be below the {len(train)} {stage} rows")
        split = train.train_test_split(test_size=config.data.eval_size, seed=seed)
        train, held = split["train"], split["test"]
    if config.data.limit:
        train = train.select(range(min(config.data.limit, len(train))))
    return train, held, cards


def pair_accuracy(model, tokenizer, rows, stage: str, budgets: PolarBudgets, batch_size: int) -> dict[str, float]:
    """Share of held-out rows whose good candidate scores strictly above the bad one, with its standard error."""
    rows = list(rows)
    good, bad = PAIRS[stage]
    items = [
        {"question": r["question"], "reference": r["reference"], "response": r[k]} for r in rows for k in (good, bad)
    ]
    scores = polar_scores(model, tokenizer, items, budgets, batch_size=batch_size)
    wins = [scores[2 * i] > scores[2 * i + 1] for i in range(len(rows))]
    n = len(wins)
    accuracy = sum(wins) / n if n else float("nan")
    return {
        "accuracy": accuracy,
        "stderr": math.sqrt(accuracy * (1 - accuracy) / n) if n else float("nan"),
        "n": n,
        "margin": sum(scores[2 * i] - scores[2 * i + 1] for i in range(n)) / n if n else float("nan"),
    }


def build_stage(config: PolarConfig, stage: str, model_path: str, train_rows):
    """A ``RewardTrainer`` (atomic checkpoints) on pre-tokenized pairs in POLAR's layout, and its tokenizer."""
    import datasets
    from trl import RewardConfig, RewardTrainer

    from critics.models import load_sequence_classifier

    class PolarRewardTrainer(AtomicCheckpoints, RewardTrainer):
        """RewardTrainer whose checkpoints are written atomically."""

    model_config = dataclasses.replace(
        config.model, name_or_path=model_path, lora=dataclasses.replace(config.model.lora, r=0)
    )
    model, tokenizer = load_sequence_classifier(model_config, num_labels=1)
    add_polar_tokens(tokenizer, model)
    tokenizer.padding_side = "right"
    encode = PolarEncoder(tokenizer, config.budgets)
    good, bad = PAIRS[stage]
    pairs = datasets.Dataset.from_list(
        [
            {
                "chosen_ids": encode(r["question"], r["reference"], r[good]),
                "rejected_ids": encode(r["question"], r["reference"], r[bad]),
            }
            for r in train_rows
        ]
    )
    steps = getattr(config, stage).max_steps
    run = stage_run(config.run, Path(config.run.output_dir) / stage, steps or -1)
    args = RewardConfig(
        **run.trainer_args(),
        **precision_args(config.model),
        num_train_epochs=1,
        max_length=None,
        center_rewards_coefficient=None,
    )
    trainer = PolarRewardTrainer(
        model=model,
        args=args,
        train_dataset=pairs,
        processing_class=tokenizer,
        peft_config=lora_config(config.model, "SEQ_CLS"),
    )
    trainer.critic_spec = CriticSpec(
        tasks=["reference"],
        layout="polar",
        max_new_tokens=0,
        budgets=config.budgets,
        context_tokens=config.budgets.total,
    )
    return trainer


def run_stage(
    config: PolarConfig, stage: str, model_path: str, checkpoint: str | None, metrics: dict[str, Any], progress: bool
) -> Path:
    """Train one stage (evaluating before and after) and write its ``final/`` with card and run files."""
    from critics.cards import write_model_card

    set_threads_for_cpu(precision_args(config.model)["use_cpu"])
    with distributed.main_first():  # the main process builds the data and fills the caches first
        train, held, cards = stage_data(config, stage, config.run.seed)
    trainer = build_stage(config, stage, model_path, train)

    def held_out():  # once, on the main process
        if not len(held):
            return None
        return distributed.on_main(
            trainer,
            lambda: pair_accuracy(
                trainer.model, trainer.processing_class, held, stage, config.budgets, config.eval_batch_size
            ),
        )

    label = "policy discrimination" if stage == "pretrain" else "preference with references"
    if checkpoint is None:
        metrics[f"{label}: before {stage}"] = held_out()
    show_progress(trainer, progress)
    trainer.train(resume_from_checkpoint=checkpoint)
    metrics[f"{label}: after {stage}"] = held_out()
    overlap = held_out_overlap(train, held)  # reported in the card
    final = save_final(trainer, Path(config.run.output_dir) / stage)
    if not trainer.args.should_save:  # the main process writes the run files and the card
        return final
    with writing(final.parent, "run.output_dir"):
        write_run_files(final, config, metrics, trainer.state.log_history)
        write_recipe_config(final, "polar", config)  # over the stage's config: what ``critics train`` reads
        write_model_card(
            final,
            base_model=config.model.name_or_path,
            recipe="polar",
            task="policy discriminator",
            stages="POLAR pre-training (policy discrimination)"
            if stage == "pretrain"
            else "POLAR fine-tuning (preferences with references)",
            config_hash=config_hash(config),
            rewards=["Bradley-Terry"],
            steps=trainer.state.global_step,
            template="prompt + reference + <|reward_sep|> + prompt + candidate + <|reward|>",
            verdict_format="a scalar score at <|reward|>",
            spec=trainer.critic_spec,
            metrics={k: v for k, v in metrics.items() if isinstance(v, dict) and "accuracy" in v},
            sources=[getattr(config.data, stage)],
            cards=cards,
            overlap=overlap,
        )
    return final


def run(config: PolarConfig, resume: bool = False, progress: bool = True) -> dict[str, Any]:
    """Pre-train then fine-tune (each enabled stage, each resumable); returns the final checkpoint and metrics."""
    distributed.start(precision_args(config.model)["use_cpu"], config.run.ddp_timeout)
    out = Path(config.run.output_dir)
    start, metrics, final = config.model.name_or_path, {}, None
    stages = [s for s in ("pretrain", "finetune") if getattr(config, s).enabled]
    for i, stage in enumerate(stages):
        earlier_done = i == 0 or (out / stages[i - 1] / "final" / SPEC_FILE).is_file()
        done, checkpoint = stage_plan(out / stage, resume and earlier_done)
        if done:
            metrics = stage_metrics(out / stage / "final")
        else:
            final = run_stage(config, stage, start, checkpoint, metrics, progress)
        final = out / stage / "final"
        start = next_stage_model(out / stage, config.model.lora.r > 0, "SEQ_CLS")
    return {"final": str(final), "metrics": metrics}
