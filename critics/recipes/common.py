"""What every recipe shares: data settings, run settings, atomic checkpoints and resume, the spec.

Checkpoints are atomic: the trainer writes ``checkpoint-N`` into a staging folder and it is
swapped into place only once complete (``data_pipelines.files.replace_folder``, which also
replaces a checkpoint saved again at the same step), so a crash mid-save never leaves a half
checkpoint that ``--resume`` could pick up. Every checkpoint of a critic, ``checkpoint-N/`` and
``final/``, carries the critic's spec (``critic_spec.json``, ``critics.judging.spec``): how it was
prompted and read. ``run.output_dir`` is checked for writing before anything is loaded, and a
full or read-only disk met while writing is one ``OutputError`` naming the folder.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from transformers import TrainerCallback, TrainingArguments

from critics.judging.records import load_records
from critics.judging.spec import CriticSpec
from critics.recipes import distributed
from data_pipelines.files import check_writable, recover_all, replace_folder, staging_path, writing
from data_pipelines.registry import as_plain

STAGING = ".staging"
CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")


@dataclass
class DataSettings:
    """Where training and held-out records come from.

    Args:
        train: a built dataset (the ``output_dir`` of ``critics data build``, or its ``dataset/``),
            a data build config (``configs/data/*.yaml``; built, or reused from its cache), or JSONL.
        eval: the same kinds of path for held-out records; empty: hold out ``eval_size`` train rows.
        eval_size: rows held out from ``train`` when ``eval`` is empty.
        task: keep only records of this task (empty: all).
        limit: use at most this many training rows (0: all).
    """

    train: str = ""
    eval: str = ""
    eval_size: int = 200
    task: str = ""
    limit: int = 0


@dataclass
class RunSettings:
    """Settings every recipe's trainer takes (TRL/transformers names where they exist)."""

    output_dir: str = "outputs/run"
    max_steps: int = 100
    per_device_train_batch_size: int = 8
    gradient_accumulation_steps: int = 1
    learning_rate: float = 1e-6
    lr_scheduler_type: str = "constant"
    warmup_steps: float = 0.0  # a number of steps, or below 1 a fraction of max_steps
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    logging_steps: int = 1
    save_steps: int = 50
    save_total_limit: int | None = 2
    report_to: Literal["none", "tensorboard", "trackio", "wandb"] = "none"
    activation_checkpointing: bool = False
    seed: int = 0
    # several processes: seconds a rank waits in a collective (a barrier, a gradient all-reduce)
    # before it fails and the launcher ends the run (transformers' default, 30 minutes)
    ddp_timeout: int = 1800

    def trainer_args(self) -> dict[str, Any]:
        """These settings as keyword arguments of a TRL config."""
        args = as_plain(self)
        args.update(
            report_to=[] if self.report_to == "none" else [self.report_to],
            save_strategy="steps",
            disable_tqdm=False,
            data_seed=self.seed,
        )
        if not hasattr(TrainingArguments, "activation_checkpointing"):  # transformers < 5.25 names it the old way
            args["gradient_checkpointing"] = args.pop("activation_checkpointing")
        return args


def config_hash(config: Any) -> str:
    """A short stable hash of a recipe config, recorded in the model card."""
    text = json.dumps(as_plain(config), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


class AtomicCheckpoints:
    """Trainer mixin: stage each checkpoint, rename it into place when complete, then rotate.

    Overrides ``_save_checkpoint`` and ``_get_output_dir`` of ``transformers.Trainer``; the test
    ``test_trainer_hooks_exist`` fails if either disappears in a new transformers/TRL release.
    """

    _staging_dir: str | None = None

    def _get_output_dir(self, trial):  # noqa: D401 - transformers' hook
        return self._staging_dir or super()._get_output_dir(trial)

    def _save_checkpoint(self, model, trial):
        run_dir = super()._get_output_dir(trial)
        with writing(run_dir, "run.output_dir"):
            self._save_staged(model, trial, run_dir)

    def _save_staged(self, model, trial, run_dir: str) -> None:
        from transformers.trainer_utils import rotate_checkpoints

        staging = os.path.join(run_dir, STAGING)
        if self.args.should_save:  # only the main process touches the shared folder
            shutil.rmtree(staging, ignore_errors=True)
        self.accelerator.wait_for_everyone()  # every rank may write shards (DeepSpeed) into staging
        self._staging_dir = staging
        try:
            super()._save_checkpoint(model, trial)
        finally:
            self._staging_dir = None
        self.accelerator.wait_for_everyone()
        if not self.args.should_save:
            return
        name = f"checkpoint-{self.state.global_step}"
        if getattr(self, "critic_spec", None) is not None:
            self.critic_spec.save(os.path.join(staging, name))
        # saved again at the same step (e.g. the last step): the swap replaces the old one atomically
        replace_folder(os.path.join(staging, name), os.path.join(run_dir, name))
        shutil.rmtree(staging, ignore_errors=True)
        rotate_checkpoints(
            output_dir=run_dir,
            save_total_limit=self.args.save_total_limit,
            best_model_checkpoint=self.state.best_model_checkpoint,
            use_mtime=False,
        )


def latest_checkpoint(output_dir: str | Path) -> Path | None:
    """The newest complete checkpoint in ``output_dir`` (staged, unfinished ones never count)."""
    root = Path(output_dir)
    if not root.is_dir():
        return None
    found = [
        (int(m.group(1)), p)
        for p in root.iterdir()
        if (m := CHECKPOINT.match(p.name)) and p.is_dir() and (p / "trainer_state.json").is_file()
    ]
    return max(found)[1] if found else None


def open_output_dir(output_dir: str | Path) -> Path:
    """Check that ``output_dir`` can be written (``OutputError`` if not) and finish any folder swap a
    crash interrupted in it; every recipe calls this before it loads anything. With several
    processes the main one does it while the others wait."""
    with distributed.main_first() as main:
        if main:
            recover_all(check_writable(output_dir, "run.output_dir"))
    return Path(output_dir)


def resume_point(output_dir: str | Path, resume: bool) -> str | None:
    """The checkpoint to resume from, or None; refuses to train over a previous run by accident.

    ``output_dir`` is opened first (``open_output_dir``): checked for writing, swaps recovered.
    """
    checkpoint = latest_checkpoint(open_output_dir(output_dir))
    if resume:
        if checkpoint is None:
            raise FileNotFoundError(f"--resume: no complete checkpoint in {output_dir}")
        return str(checkpoint)
    if checkpoint is not None:
        raise FileExistsError(
            f"{output_dir} already holds {checkpoint.name}: pass --resume to continue "
            "that run, or choose another output_dir"
        )
    return None


def set_threads_for_cpu(use_cpu: bool) -> None:
    """One torch thread on CPUs: tiny-model generate() is erratic with more (STACK.md)."""
    if use_cpu and "OMP_NUM_THREADS" not in os.environ:
        import torch

        torch.set_num_threads(1)


@dataclass
class LoadedData:
    """Training and held-out records, the data cards of where they came from, and how many held-out
    records ask a question the training records also ask (``held_out_overlap``)."""

    train: Any
    eval: Any
    cards: dict[str, str] = field(default_factory=dict)
    overlap: dict[str, Any] | None = None


def load_data(settings: DataSettings, seed: int) -> LoadedData:
    """Load (or build) the records, filter by task, and split off the held-out set. With several
    processes the main one builds (and fills the caches) first; the others then read the same rows."""
    if not settings.train:
        raise ValueError("data.train is empty: give a built dataset, a data config or a JSONL file")
    with distributed.main_first():
        return _load_data(settings, seed)


def _load_data(settings: DataSettings, seed: int) -> LoadedData:
    cards: dict[str, str] = {}
    train = _filter(load_records(settings.train, cards), settings.task)
    if settings.eval:
        held_out = _filter(load_records(settings.eval, cards), settings.task)
    else:
        if settings.eval_size >= len(train):
            raise ValueError(f"data.eval_size ({settings.eval_size}) must be below the {len(train)} training rows")
        split = train.train_test_split(test_size=settings.eval_size, seed=seed) if settings.eval_size else None
        train, held_out = (split["train"], split["test"]) if split else (train, train.select([]))
    if settings.limit:
        train = train.select(range(min(settings.limit, len(train))))
    return LoadedData(train, held_out, cards, held_out_overlap(train, held_out))


def held_out_overlap(train, held_out, column: str = "question", shown: int = 5) -> dict[str, Any] | None:
    """How many held-out rows ask a question that a training row also asks, and the first ``shown`` ids.

    The split is by row, so several solutions of one question can land on both sides; the model
    card and ``metrics.json`` report it rather than hide it. None when there is nothing to compare.

    >>> import datasets
    >>> train = datasets.Dataset.from_list([{"id": "a", "question": "1+1"}, {"id": "b", "question": "2+2"}])
    >>> held = datasets.Dataset.from_list([{"id": "c", "question": "1+1"}, {"id": "d", "question": "3+3"}])
    >>> held_out_overlap(train, held)
    {'held_out': 2, 'question_in_train': 1, 'examples': ['c']}
    """
    if (
        held_out is None
        or len(held_out) == 0
        or column not in train.column_names
        or column not in held_out.column_names
    ):
        return None
    asked = set(train[column])
    ids = held_out["id"] if "id" in held_out.column_names else range(len(held_out))
    hits = [str(i) for i, question in zip(ids, held_out[column]) if question in asked]
    return {"held_out": len(held_out), "question_in_train": len(hits), "examples": hits[:shown]}


def _filter(dataset, task: str):
    if not task:
        return dataset
    if "task" not in dataset.column_names:
        raise ValueError("data.task is set but the records have no 'task' column")
    kept = dataset.filter(lambda row: row["task"] == task)
    if len(kept) == 0:
        raise ValueError(f"no records of task '{task}' (found: {sorted(set(dataset['task']))})")
    return kept


@dataclass
class TemplateSettings:
    """How records become critic prompts (``critics.judging.templates``)."""

    style: Literal["default", "compact", "long_cot"] = "default"
    think: bool = False


@dataclass
class EvalSettings:
    """Held-out evaluation before and after training, the critic read as its spec says.

    ``max_new_tokens``: the judgment length (None: the spec's, what the critic was trained to write within).
    """

    enabled: bool = True
    max_new_tokens: int | None = None
    batch_size: int = 64


def critic_spec(
    template: TemplateSettings, tasks: list[str], max_new_tokens: int, lm: Any, **fields: Any
) -> CriticSpec:
    """The spec a recipe writes into its checkpoints: the template it trained with, the tasks of its
    records, the judgment length it was trained to write within, its model's context."""
    return CriticSpec(
        tasks=tasks,
        style=template.style,
        think=template.think,
        max_new_tokens=max_new_tokens,
        context_tokens=lm.context_tokens,
        **fields,
    )


def record_tasks(dataset, task: str = "") -> list[str]:
    """The tasks of a recipe's records, most frequent first (``data.task`` when it is set)."""
    if task:
        return [task]
    from collections import Counter

    found = Counter(dataset["task"]) if "task" in dataset.column_names else Counter({"pointwise": 1})
    return [name for name, _ in found.most_common()]


def evaluate(trainer, dataset, settings: EvalSettings, progress: bool = True) -> dict[str, float] | None:
    """Held-out verdict accuracy of the trainer's critic as its spec reads it, or None when there is
    nothing (or nothing asked) to evaluate. ``settings.max_new_tokens`` overrides the spec's length."""
    if not settings.enabled or dataset is None or len(dataset) == 0:
        return None
    import dataclasses

    from critics.eval.heldout import critique_accuracy

    spec = dataclasses.replace(
        trainer.critic_spec, max_new_tokens=settings.max_new_tokens or trainer.critic_spec.max_new_tokens
    )
    return critique_accuracy(loaded(trainer), dataset, spec, batch_size=settings.batch_size, progress=progress)


def loaded(trainer) -> Any:
    """The trainer's critic as a ``LoadedModel`` (its current, possibly wrapped, model)."""
    return trainer.critic_loaded.with_model(trainer.model)


class BudgetLog(TrainerCallback):
    """Logs ``critic/too_long``: training prompts over the spec's budget (cut in the middle, or
    dropped), in every log line and so in the model card's metrics and the training curves."""

    def __init__(self, counts: dict[str, int]):
        self.count = float(sum(counts.values()))

    def on_log(self, args, state, control, logs=None, **kwargs) -> None:
        if logs is not None:
            logs["critic/too_long"] = self.count


def show_progress(trainer, progress: bool) -> None:
    """Drop the trainer's progress bar when the caller asked for none (logs still go to report_to)."""
    if not progress:
        from transformers.trainer_callback import PrinterCallback, ProgressCallback

        trainer.remove_callback(ProgressCallback)
        trainer.remove_callback(PrinterCallback)


def save_final(trainer, output_dir: str | Path) -> Path:
    """Save the trained model and tokenizer to ``output_dir/final`` atomically (staged, then swapped in)."""
    final = Path(output_dir) / "final"
    staging = staging_path(final)
    main = trainer.args.should_save
    with writing(output_dir, "run.output_dir"):
        if main:
            shutil.rmtree(staging, ignore_errors=True)
        trainer.accelerator.wait_for_everyone()
        trainer.save_model(str(staging))  # every rank: DeepSpeed gathers the weights
        if main:
            trainer.processing_class.save_pretrained(str(staging))
            trainer.state.save_to_json(str(staging / "trainer_state.json"))
            if getattr(trainer, "critic_spec", None) is not None:
                trainer.critic_spec.save(staging)
            replace_folder(staging, final)
        trainer.accelerator.wait_for_everyone()
    return final


def write_run_files(final: Path, config: Any, metrics: dict[str, Any], log_history: list[dict]) -> None:
    """The config, metrics, log history and training-curve PNG beside the final model."""
    import yaml

    from critics.plots import plot_training_curves

    (final / "critics_config.yaml").write_text(yaml.safe_dump(as_plain(config), sort_keys=False))
    (final / "metrics.json").write_text(json.dumps(metrics, indent=2, default=str))
    (final / "log_history.json").write_text(json.dumps(log_history, indent=2, default=str))
    plot_training_curves(log_history, final / "training_curves.png", title=final.parent.name)


def train_and_finish(
    config: Any,
    trainer,
    data: LoadedData,
    checkpoint: str | None,
    *,
    recipe: str,
    stage: str,
    stages: str,
    rewards: list[str],
    metrics: dict[str, Any],
    progress: bool,
    extra_limitations: str = "",
    extra_eval: Callable[[Any, Any], dict[str, float]] | None = None,
    evaluate_before: bool = True,
) -> dict[str, Any]:
    """The part every recipe's ``run`` shares: evaluate, train (or resume), evaluate, then write
    ``final/`` with the model, run files and model card. ``metrics`` may hold recipe extras;
    ``extra_eval(trainer)`` adds its figures to each held-out evaluation; a later stage of
    a multi-stage recipe skips ``evaluate_before`` (the previous stage's "after" is its "before")."""
    from critics.cards import write_model_card

    def held_out():
        result = evaluate(trainer, data.eval, config.eval, progress)
        if result is not None and extra_eval is not None:
            result.update(extra_eval(trainer))
        return result

    if checkpoint is None and evaluate_before:
        metrics["before"] = distributed.on_main(trainer, held_out)
    show_progress(trainer, progress)
    trainer.train(resume_from_checkpoint=checkpoint)
    metrics[f"after {stage}"] = distributed.on_main(trainer, held_out)
    metrics["held_out_overlap"] = data.overlap
    final = save_final(trainer, config.run.output_dir)
    result = {"final": str(final), "metrics": metrics}
    if not trainer.args.should_save:  # the main process writes the run files and the card
        return result
    accuracy = {k: v for k, v in metrics.items() if isinstance(v, dict) and "accuracy" in v}
    with writing(config.run.output_dir, "run.output_dir"):
        write_run_files(final, config, metrics, trainer.state.log_history)
        write_model_card(
            final,
            base_model=config.model.name_or_path,
            recipe=recipe,
            task=config.data.task or "mixed",
            stages=stages,
            config_hash=config_hash(config),
            rewards=rewards,
            steps=trainer.state.global_step,
            template=f"{config.template.style}{' + think' if config.template.think else ''}",
            verdict_format=trainer.critic_spec.verdict_format,
            spec=trainer.critic_spec,
            metrics=accuracy,
            sources=[config.data.train],
            cards=data.cards,
            extra_limitations=extra_limitations,
            overlap=data.overlap,
        )
    return result
