"""What the two-stage teaching recipes (``critique_rl``, ``refcritic``) share.

Each runs one stage into ``output_dir/<stage>/`` and starts the next from that stage's ``final/``
checkpoint, so the next stage's model (and TRL's KL reference, which GRPO loads from the model's
own path) is exactly what the previous stage wrote. A LoRA stage is merged into its base first.
``--resume`` picks up where the run stopped: inside a stage from its newest complete checkpoint,
or at the start of the next stage once a stage's ``final/`` exists; a run whose last stage has
its ``final/`` is finished, and resuming it trains nothing (``finished_result``).
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path
from typing import Any

from critics.actors import ActorSettings, make_actor
from critics.judging.spec import SPEC_FILE
from critics.recipes import distributed
from critics.recipes.common import RunSettings, latest_checkpoint, loaded, open_output_dir, resume_point
from data_pipelines.files import staged_folder, writing

REFINE_COLUMNS = ("question", "response", "label", "gold_answer")


def stage_plan(stage_dir: Path, resume: bool) -> tuple[bool, str | None]:
    """``(finished, checkpoint to resume from)`` for one stage of a staged run.

    Without ``resume`` a stage folder holding checkpoints is an error (``resume_point``'s), so a
    run never trains over an earlier one by accident. Either way the stage folder is opened first
    (``open_output_dir``: checked for writing, interrupted swaps recovered), before anything loads.
    """
    open_output_dir(stage_dir)
    if (stage_dir / "final" / "trainer_state.json").is_file() and resume:
        return True, None
    if not resume:
        resume_point(stage_dir, False)
        return False, None
    checkpoint = latest_checkpoint(stage_dir)
    return False, str(checkpoint) if checkpoint else None


def finished_result(stage_dir: Path) -> dict[str, Any]:
    """What ``run`` returns for a run whose last stage (``stage_dir``) is finished: its ``final/``
    and the metrics it wrote, with no model loaded and no step trained."""
    final = stage_dir / "final"
    return {"final": str(final), "metrics": stage_metrics(final)}


def stage_run(run: RunSettings, output_dir: Path, max_steps: int) -> RunSettings:
    """The shared run settings, for one stage (its folder and its number of steps)."""
    values = {f.name: getattr(run, f.name) for f in dataclasses.fields(RunSettings)}
    return RunSettings(**{**values, "output_dir": str(output_dir), "max_steps": max_steps})


def next_stage_model(stage_dir: Path, lora: bool, task_type: str = "CAUSAL_LM") -> str:
    """The checkpoint the next stage starts from: the stage's ``final/``, merged (into
    ``merged/``, beside it) if it is a LoRA adapter; ``task_type`` is ``CAUSAL_LM`` or ``SEQ_CLS``.
    The critic spec the stage wrote beside the weights travels with the merged model."""
    final = stage_dir / "final"
    if not lora:
        return str(final)
    merged = stage_dir / "merged"
    with distributed.main_first():  # the main process merges; the others then find it merged
        if not (merged / "config.json").is_file():
            _merge(final, merged, stage_dir, task_type)
    return str(merged)


def _merge(final: Path, merged: Path, stage_dir: Path, task_type: str) -> None:
    import peft
    from transformers import AutoTokenizer

    auto = {"CAUSAL_LM": peft.AutoPeftModelForCausalLM, "SEQ_CLS": peft.AutoPeftModelForSequenceClassification}
    with writing(stage_dir, "run.output_dir"), staged_folder(merged) as staging:
        auto[task_type].from_pretrained(str(final)).merge_and_unload().save_pretrained(str(staging))
        AutoTokenizer.from_pretrained(str(final)).save_pretrained(str(staging))
        if (final / SPEC_FILE).is_file():
            shutil.copy(final / SPEC_FILE, staging / SPEC_FILE)


def check_refine_columns(dataset: Any, where: str) -> None:
    """Refinement needs pointwise records with the question, the judged solution, its label and the gold answer."""
    if dataset is None or len(dataset) == 0:
        return
    missing = [c for c in REFINE_COLUMNS if c not in dataset.column_names]
    if missing:
        raise ValueError(
            f"{where}: refinement needs the columns {', '.join(REFINE_COLUMNS)}; missing "
            f"{', '.join(missing)} (pointwise records with gold answers, e.g. from `critics data sample`)"
        )
    tasks = set(dataset["task"]) if "task" in dataset.column_names else {"pointwise"}
    if tasks != {"pointwise"}:
        raise ValueError(f"{where}: refinement judges pointwise records only, found tasks {sorted(tasks)}")


def attach_actor(reward: Any, settings: ActorSettings, trainer: Any) -> Any:
    """Give a refinement reward its actor (the critic under training for ``kind: self``); return the actor."""
    actor = make_actor(settings, loaded(trainer), trainer.critic_spec)
    reward.actor = actor
    return actor


def refine_evaluation(rows: Any, actor_settings: ActorSettings, eval_settings: Any, *, samples: int, verifier: str):
    """``extra_eval`` for ``train_and_finish``: critique-then-refine accuracy on the held-out rows.

    The held-out critiques are greedy; the actor refines every one. A frozen actor is loaded once
    and reused; ``kind: self`` refines with the model being evaluated.
    """
    from critics.eval.refine import critic_critiques, critique_then_refine

    frozen = {}

    def evaluate(trainer) -> dict[str, float]:
        if rows is None or len(rows) == 0 or not eval_settings.enabled:
            return {}
        critic = loaded(trainer)
        if actor_settings.kind == "self":
            actor = make_actor(actor_settings, critic, trainer.critic_spec)
        else:
            actor = frozen.setdefault("actor", make_actor(actor_settings))
        spec = dataclasses.replace(
            trainer.critic_spec, max_new_tokens=eval_settings.max_new_tokens or trainer.critic_spec.max_new_tokens
        )
        texts = critic_critiques(critic, list(rows), spec, batch_size=eval_settings.batch_size)
        result = critique_then_refine(list(rows), texts, actor, samples=samples, verifier=verifier)
        return {
            "refine_accuracy": result["refine_accuracy"],
            "refine_stderr": result["stderr"],
            "accuracy_before": result["accuracy_before"],
            "change_rate": result["change_rate"],
            **{t: result[t] for t in ("c->c", "c->i", "i->c", "i->i")},
        }

    return evaluate


def write_recipe_config(final: Path, recipe: str, config: Any) -> None:
    """Replace a stage's ``critics_config.yaml`` with the whole recipe's config (what ``critics train`` reads)."""
    import yaml

    from data_pipelines.registry import as_plain

    if not distributed.is_main_process():
        return
    with writing(final.parent, "run.output_dir"):
        (final / "critics_config.yaml").write_text(
            yaml.safe_dump({"recipe": recipe, **as_plain(config)}, sort_keys=False)
        )


def stage_metrics(final: Path) -> dict[str, Any]:
    """The held-out metrics a finished stage wrote (resuming into the next stage carries them on)."""
    import json

    path = final / "metrics.json"
    return json.loads(path.read_text()) if path.is_file() else {}
