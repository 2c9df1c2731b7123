"""Recipe ``grm``: a generalist reward model by Self-Principled Critique Tuning (DeepSeek-GRM, 2025).

The critic judges ``listwise`` records (a question, N >= 1 responses, the best one's index): it
writes principles, a critique per response and one score per response (``templates.grm_template``).
A judgment is right when its scores single out the labelled best (``tasks.listwise_correct``: a
strict, unique argmax; for N = 1 the score's side of the threshold). Two stages, each in its folder:

1. ``rft/``, rejective fine-tuning: ``rft.sampler.samples`` judgments per training record from the
   model itself (``kind: self``) or a teacher (``transformers`` checkpoint, or ``openai`` endpoint);
   right ones are kept (at most ``keep_per_record``), records that every sample gets right are
   dropped as "too easy" (they teach nothing), and with ``hint`` a record none got right is asked
   again with its label as a hint in the prompt (the trained prompt has no hint). SFT on what is
   kept. ``rft/rejections.json`` and ``rft/REJECTIONS.md`` say what was rejected and why.
2. ``grpo/``, rule-based online RL (``critic_rl``'s machinery): ``ListwiseReward`` (+1 right, -1
   otherwise) plus ``format`` (weights ``[1, rl.format_weight]``).

Every judgment sampled (RFT's, and ``meta_samples`` per record from the final model) is saved with
its label and whether it was right in ``judgments.jsonl`` for the ``meta_rm`` recipe. The
checkpoints carry ``critic_spec.json`` with tasks ``["listwise"]``.
"""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from critics.judging.chat import LocalChatModel, make_chat_model
from critics.judging.generation import load_model
from critics.judging.judge import fitted_prompt
from critics.judging.tasks import read_verdict, verdict_correct
from critics.models import ModelConfig, lora_config, precision_args
from critics.recipes import critic_rl, distributed
from critics.recipes.common import (
    AtomicCheckpoints,
    BudgetLog,
    DataSettings,
    EvalSettings,
    RunSettings,
    TemplateSettings,
    critic_spec,
    load_data,
    set_threads_for_cpu,
    train_and_finish,
)
from critics.recipes.staged import next_stage_model, stage_metrics, stage_plan, stage_run, write_recipe_config
from critics.rewards.verdict import FormatReward, ListwiseReward
from data_pipelines.files import writing

JUDGMENTS = "judgments.jsonl"


@dataclass
class JudgmentSampler:
    """Who writes RFT's judgments: ``self`` (the model being trained), a ``transformers`` checkpoint or an
    ``openai`` endpoint (``model`` is the served name at ``base_url``); ``samples`` per record."""

    kind: Literal["self", "transformers", "openai"] = "self"
    model: str = ""
    base_url: str = ""
    api_key: str = ""
    samples: int = 8
    temperature: float = 1.0
    max_new_tokens: int | None = None  # None: grpo.max_completion_length
    batch_size: int = 64

    def __post_init__(self) -> None:
        if self.samples < 1:
            raise ValueError(f"rft.sampler.samples must be at least 1, got {self.samples}")
        if self.samples > 1 and self.temperature <= 0:
            raise ValueError("rft.sampler.temperature must be above 0 to draw several samples")
        if self.kind != "self" and not self.model:
            raise ValueError(f"rft.sampler.kind {self.kind!r} needs rft.sampler.model")
        if self.kind == "openai" and not self.base_url:
            raise ValueError("rft.sampler.kind 'openai' needs rft.sampler.base_url")


@dataclass
class RFTSettings:
    """Rejective fine-tuning (stage 1)."""

    enabled: bool = True
    sampler: JudgmentSampler = field(default_factory=JudgmentSampler)
    keep_per_record: int = 1
    drop_too_easy: bool = True
    hint: bool = False
    max_steps: int = 200
    max_length: int = 2048


@dataclass
class RLSettings:
    """Rule-based GRPO (stage 2): ``max_steps``, and the format reward's weight beside the listwise one."""

    enabled: bool = True
    max_steps: int = 100
    learning_rate: float | None = None  # None: run.learning_rate
    batch_size: int | None = None  # completions per step (prompts x grpo.num_generations); None: run's
    format_weight: float = 0.1


@dataclass
class GRMConfig:
    """The ``grm`` recipe (``configs/recipes/grm.yaml``)."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataSettings = field(default_factory=lambda: DataSettings(task="listwise"))
    run: RunSettings = field(default_factory=lambda: RunSettings(output_dir="outputs/grm", learning_rate=1e-5))
    rft: RFTSettings = field(default_factory=RFTSettings)
    rl: RLSettings = field(default_factory=RLSettings)
    grpo: critic_rl.GRPOSettings = field(default_factory=lambda: critic_rl.GRPOSettings(max_completion_length=512))
    template: TemplateSettings = field(default_factory=TemplateSettings)
    eval: EvalSettings = field(default_factory=EvalSettings)
    meta_samples: int = 8

    def __post_init__(self) -> None:
        if self.data.task != "listwise":
            raise ValueError(f"data.task must be 'listwise' for the grm recipe, got {self.data.task!r}")
        if not (self.rft.enabled or self.rl.enabled):
            raise ValueError("both stages are switched off: enable rft or rl")
        if self.meta_samples < 0:
            raise ValueError(f"meta_samples must be >= 0, got {self.meta_samples}")
        batch = self.rl.batch_size
        if batch is not None and (batch < 1 or batch % self.grpo.num_generations):
            raise ValueError(f"rl.batch_size must be a positive multiple of grpo.num_generations, got {batch}")


def hint_text(row: dict[str, Any]) -> str:
    """The label as a hint (RFT's re-ask of a record no sample got right).

    >>> hint_text({"responses": ["a", "b", "c"], "label": 2, "best": None})
    'Hint: the best response is Response 3.'
    >>> hint_text({"responses": ["a"], "label": -1})
    'Hint: the response is bad.'
    """
    if len(row["responses"]) == 1:
        return f"Hint: the response is {'good' if row['label'] == 0 else 'bad'}."
    best = row.get("best") or [row["label"]]
    return "Hint: the best response is " + " or ".join(f"Response {i + 1}" for i in best) + "."


def with_hint(messages: list[dict[str, Any]], row: dict[str, Any]) -> list[dict[str, Any]]:
    """The prompt with the hint appended to its last user message."""
    *head, last = messages
    return [*head, {**last, "content": f"{last['content']}\n{hint_text(row)}"}]


def sample_judgments(chat, prompts: list[list[dict] | None], sampler: JudgmentSampler, max_new_tokens: int):
    """``sampler.samples`` judgments per prompt (``[]`` for a prompt refused as too long), one batch."""
    live = [i for i, p in enumerate(prompts) if p is not None]
    k = sampler.samples
    texts = chat.generate(
        [prompts[i] for i in live], max_new_tokens=max_new_tokens, temperature=sampler.temperature, n=k
    )
    out: list[list[str]] = [[] for _ in prompts]
    for j, i in enumerate(live):
        out[i] = texts[j * k : (j + 1) * k]
    return out


def judge_samples(row: dict[str, Any], texts: list[str]) -> list[tuple[bool, str]]:
    """``(right, reason)`` per judgment: ``ok`` when right, ``wrong pick`` for a valid score list that
    does not single out the best, else the parser's reason (``no verdict``, ``wrong score count``...)."""
    out = []
    for text in texts:
        verdict = read_verdict(text, row)
        right = verdict_correct(verdict, row)
        out.append((right, "ok" if right else ("wrong pick" if verdict.ok else verdict.reason)))
    return out


def rft_filter(
    rows: list[dict[str, Any]],
    prompts: list[list[dict] | None],
    judgments: list[list[str]],
    hinted: list[list[str]] | None = None,
    keep_per_record: int = 1,
    drop_too_easy: bool = True,
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """SFT rows from RFT's samples, and the counts of what happened (per judgment and per record).

    Judgments: ``kept``, ``extra match`` (right beyond ``keep_per_record``), ``wrong pick`` or the
    parser's reason. Records: ``records: too easy`` (every sample right; dropped when
    ``drop_too_easy``), ``records: too long`` (prompt over budget), ``records: kept``, ``records: none
    right`` (nothing kept), ``records: kept with hint``. A hinted judgment is trained on the unhinted prompt.

    >>> row = {"task": "listwise", "question": "q", "responses": ["1+1=2", "1+1=3"], "label": 0}
    >>> prompt = [{"role": "user", "content": "p"}]
    >>> kept, stats = rft_filter([row, row], [prompt, prompt], [[r"\\boxed{9, 1}", r"\\boxed{1, 9}"],
    ...                          [r"\\boxed{9, 1}", r"\\boxed{9, 2}"]])
    >>> len(kept), stats["kept"], stats["wrong pick"], stats["records: too easy"], stats["too easy"]
    (1, 1, 1, 1, 2)
    """
    kept, stats = [], Counter()
    for index, (row, prompt, texts) in enumerate(zip(rows, prompts, judgments)):
        if prompt is None:
            stats["records: too long"] += 1
            continue
        results = judge_samples(row, texts)
        if drop_too_easy and texts and all(right for right, _ in results):
            stats["records: too easy"] += 1
            stats["too easy"] += len(texts)
            continue
        source, extra = texts, hinted[index] if hinted is not None else []
        if not any(right for right, _ in results) and extra:
            for _, reason in results:
                stats[reason] += 1
            source, results, stats["records: hinted"] = extra, judge_samples(row, extra), stats["records: hinted"] + 1
        taken = 0
        for text, (right, reason) in zip(source, results):
            if right and taken < keep_per_record:
                kept.append({"prompt": prompt, "completion": [{"role": "assistant", "content": text}]})
                taken += 1
                stats["kept"] += 1
            else:
                stats["extra match" if right else reason] += 1
        stats["records: kept" if taken else "records: none right"] += 1
        stats["records: kept with hint"] += bool(taken and source is extra)
    return kept, {k: v for k, v in stats.items() if v}


def judgment_rows(rows: list[dict[str, Any]], judgments: list[list[str]], stage: str) -> list[dict[str, Any]]:
    """What ``judgments.jsonl`` holds for the meta RM: each sampled judgment with its item, label and
    whether it was right (``listwise_correct``: the meta RM's label)."""
    out = []
    for row, texts in zip(rows, judgments):
        for k, (text, (right, reason)) in enumerate(zip(texts, judge_samples(row, texts))):
            out.append(
                {
                    "id": row.get("id"),
                    "question": row["question"],
                    "responses": list(row["responses"]),
                    "label": row["label"],
                    "best": row.get("best"),
                    "judgment": text,
                    "right": right,
                    "reason": reason,
                    "stage": stage,
                    "sample": k,
                }
            )
    return out


def append_judgments(output_dir: str | Path, rows: list[dict[str, Any]]) -> Path:
    """Add sampled judgments to ``output_dir/judgments.jsonl``."""
    path = Path(output_dir) / JUDGMENTS
    with writing(output_dir, "run.output_dir"), path.open("a", encoding="utf-8") as f:
        f.writelines(json.dumps(r) + "\n" for r in rows)
    return path


def rejection_card(stats: dict[str, int], sampler: JudgmentSampler, records: int) -> str:
    """The RFT data card: who sampled, how many, and every rejection reason with its count."""
    lines = [
        "# Rejective fine-tuning: what was kept and why the rest was not",
        "",
        f"{records} training records, {sampler.samples} judgments each from `{sampler.kind}`"
        f"{' ' + sampler.model if sampler.model else ''} at temperature {sampler.temperature}.",
        "A judgment is right when its scores single out the labelled best response (a strict, unique argmax).",
        "",
        "| what | count |",
        "|---|---|",
        *[f"| {k} | {v} |" for k, v in sorted(stats.items())],
    ]
    return "\n".join(lines) + "\n"


def _sampler_chat(sampler: JudgmentSampler, lm, device: str):
    if sampler.kind == "self":
        return LocalChatModel(lm, batch_size=sampler.batch_size)
    if sampler.kind == "openai":
        return make_chat_model("openai", sampler.model, base_url=sampler.base_url, api_key=sampler.api_key or None)
    return make_chat_model("transformers", sampler.model, device=device, batch_size=sampler.batch_size)


def build_rft(config: GRMConfig, out: Path, teacher: Any = None):
    """Sample, filter and save RFT's judgments; a ready ``SFTTrainer`` on what was kept, the data and the
    counts. ``teacher`` (a ``ChatModel``, from Python) samples instead of ``rft.sampler``'s model."""
    import datasets
    from trl import SFTConfig, SFTTrainer

    class GRMSFTTrainer(AtomicCheckpoints, SFTTrainer):
        """SFTTrainer whose checkpoints are written atomically."""

    data = load_data(config.data, config.run.seed)
    lm = load_model(config.model)
    spec = critic_spec(config.template, ["listwise"], config.grpo.max_completion_length, lm)
    chat = LocalChatModel(lm)
    rows = list(data.train)
    prompts = [fitted_prompt(chat, row, spec)[0] for row in rows]
    sampler = config.rft.sampler
    given, teacher = teacher is not None, teacher or _sampler_chat(sampler, lm, config.model.device)
    length = sampler.max_new_tokens or config.grpo.max_completion_length
    try:
        judgments = sample_judgments(teacher, prompts, sampler, length)
        hinted = None
        if config.rft.hint:
            missed = [
                p if p is not None and not any(r for r, _ in judge_samples(row, texts)) else None
                for row, p, texts in zip(rows, prompts, judgments)
            ]
            hinted = sample_judgments(
                teacher, [None if p is None else with_hint(p, row) for row, p in zip(rows, missed)], sampler, length
            )
    finally:
        if not given and teacher is not chat:
            teacher.close()
    kept, stats = rft_filter(rows, prompts, judgments, hinted, config.rft.keep_per_record, config.rft.drop_too_easy)
    append_judgments(out, judgment_rows(rows, judgments, "rft"))
    with writing(out, "run.output_dir"):
        (out / "rft").mkdir(parents=True, exist_ok=True)
        (out / "rft" / "rejections.json").write_text(json.dumps(stats, indent=2) + "\n")
        (out / "rft" / "REJECTIONS.md").write_text(rejection_card(stats, sampler, len(rows)))
    if not kept:
        raise ValueError(f"rejective fine-tuning kept no judgment ({stats}): nothing to train on")
    args = SFTConfig(
        **stage_run(config.run, out / "rft", config.rft.max_steps).trainer_args(),
        **precision_args(config.model),
        max_length=config.rft.max_length,
        completion_only_loss=True,
    )
    trainer = GRMSFTTrainer(
        model=lm.model,
        args=args,
        train_dataset=datasets.Dataset.from_list(kept),
        processing_class=lm.processing_class,
        peft_config=lora_config(config.model),
    )
    trainer.critic_spec, trainer.critic_loaded = spec, lm
    trainer.add_callback(BudgetLog({"too long": stats.get("records: too long", 0)}))
    return trainer, data, stats


def rl_config(config: GRMConfig, model_path: str, out: Path) -> critic_rl.CriticRLConfig:
    """The ``critic_rl`` config of the GRPO stage: the listwise reward and the format reward."""
    run = stage_run(config.run, out / "grpo", config.rl.max_steps)
    if config.rl.learning_rate is not None:
        run = dataclasses.replace(run, learning_rate=config.rl.learning_rate)
    if config.rl.batch_size is not None:
        run = dataclasses.replace(run, per_device_train_batch_size=config.rl.batch_size)
    return critic_rl.CriticRLConfig(
        model=ModelConfig(**{**vars(config.model), "name_or_path": model_path}),
        data=config.data,
        run=run,
        grpo=config.grpo,
        rewards=[ListwiseReward(), FormatReward(task="listwise")],
        reward_weights=[1.0, config.rl.format_weight],
        template=config.template,
        eval=config.eval,
    )


def final_judgments(config: GRMConfig, final: str, rows: list[dict[str, Any]], out: Path) -> int:
    """``meta_samples`` judgments per training record from the trained GRM, saved for the meta RM."""
    if not config.meta_samples:
        return 0
    lm = load_model(ModelConfig(**{**vars(config.model), "name_or_path": final}))
    chat = LocalChatModel(lm)
    spec = critic_spec(config.template, ["listwise"], config.grpo.max_completion_length, lm)
    prompts = [fitted_prompt(chat, row, spec)[0] for row in rows]
    sampler = dataclasses.replace(config.rft.sampler, kind="self", samples=config.meta_samples)
    judgments = sample_judgments(chat, prompts, sampler, config.grpo.max_completion_length)
    found = judgment_rows(rows, judgments, "final")
    path = out / JUDGMENTS
    if path.is_file():  # a resumed run samples the final model's judgments once
        earlier = [line for line in path.read_text(encoding="utf-8").splitlines() if '"stage": "final"' not in line]
        with writing(out, "run.output_dir"):
            path.write_text("".join(line + "\n" for line in earlier), encoding="utf-8")
    append_judgments(out, found)
    return len(found)


def run(config: GRMConfig, resume: bool = False, progress: bool = True, teacher: Any = None) -> dict[str, Any]:
    """RFT then GRPO (each enabled stage resumable); then the final model's judgments for the meta RM.
    ``teacher``: a ``ChatModel`` that writes RFT's judgments (Python callers; YAML sets ``rft.sampler``)."""
    distributed.start(precision_args(config.model)["use_cpu"], config.run.ddp_timeout)
    set_threads_for_cpu(precision_args(config.model)["use_cpu"])
    out = Path(config.run.output_dir)
    metrics: dict[str, Any] = {}
    start, result, data = config.model.name_or_path, None, None
    if config.rft.enabled:
        done, checkpoint = stage_plan(out / "rft", resume)
        if not done:
            if checkpoint is None:
                (out / JUDGMENTS).unlink(missing_ok=True)  # a fresh run samples afresh
            trainer, data, stats = build_rft(config, out, teacher)
            stage_config = dataclasses.replace(config, run=stage_run(config.run, out / "rft", config.rft.max_steps))
            result = train_and_finish(
                stage_config,
                trainer,
                data,
                checkpoint,
                recipe="grm",
                stage="RFT",
                stages="rejective fine-tuning (DeepSeek-GRM)",
                rewards=[],
                metrics={"rejections": stats},
                progress=progress,
                extra_limitations=f"- Rejective fine-tuning: {stats}.",
            )
            metrics = result["metrics"]
            write_recipe_config(Path(result["final"]), "grm", config)
            del trainer
        start = next_stage_model(out / "rft", config.model.lora.r > 0)
        metrics = metrics or stage_metrics(out / "rft" / "final")
        result = result or {"final": str(out / "rft" / "final"), "metrics": metrics}
    if config.rl.enabled:
        done, checkpoint = stage_plan(out / "grpo", resume)
        if done:
            result = {"final": str(out / "grpo" / "final"), "metrics": metrics}
        else:
            stage = rl_config(config, start, out)
            trainer, data = critic_rl.build(stage)
            result = train_and_finish(
                stage,
                trainer,
                data,
                checkpoint,
                recipe="grm",
                stage="GRPO",
                stages="rejective fine-tuning, then rule-based GRPO (+1 / -1 and format; DeepSeek-GRM)",
                rewards=["ListwiseReward", "FormatReward"],
                metrics=metrics,
                progress=progress,
                evaluate_before=not config.rft.enabled,
            )
            write_recipe_config(Path(result["final"]), "grm", config)
            del trainer
    data = data or load_data(config.data, config.run.seed)
    result["metrics"]["meta_judgments"] = final_judgments(config, result["final"], list(data.train), out)
    result["judgments"] = str(out / JUDGMENTS)
    return result
