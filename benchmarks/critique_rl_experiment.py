r"""Critique-RL on a synthetic task where a tiny actor can use what a critique says: does stage II
(refinement reward) make the critic more helpful than the stage-I critic, without losing discrimination?

The task: add two two-digit numbers in columns ("07+45" -> "7+5=12 0+4+1=5 \boxed{052}").

- The actor, a tiny Llama trained here and then frozen, solves with a habitual slip (in 60% of the
  sums whose units reach ten it writes the units sum one too high), and refines: given a critique
  that ends in "fix:052" it answers \boxed{052}; given any other critique it keeps its answer.
- On-policy data (``critics.onpolicy``): 4 solutions per question sampled from the actor at
  temperature 1.0, labelled by the math verifier, balanced to 50/50.
- The critic, another tiny Llama, is warm-started by SFT on a teacher's critiques: it re-adds the
  columns, compares with the solution's answer and gives the verdict; on wrong solutions it adds the
  correct sum as "fix:052" only 30% of the time. A verdict reward cannot tell the two kinds of
  critique apart; a refinement reward can.
- ``critique_rl`` then runs stage I (discrimination) and stage II (refinement + 0.2 x
  discrimination, the frozen actor refining), and the held-out evaluation reports, for the critic
  after each stage, discrimination accuracy and the actor's accuracy after refining from the
  critic's greedy critiques, on fresh questions.

    python benchmarks/critique_rl_experiment.py [--output-dir DIR] [--seed 0]

Prints the table quoted in the issue notes (17 minutes on 2 CPU cores, 11 of them training the
actor, which a second run in the same folder reuses). Seed 0, measured 2026-11-27:

| critic | discrimination acc | refine acc | c->c | c->i | i->c | i->i | change rate |
|---|---:|---:|---:|---:|---:|---:|---:|
| before (SFT) | 0.895 ± 0.013 | 0.501 ± 0.021 | 0.499 | 0.000 | 0.002 | 0.499 | 0.002 |
| after stage I | 0.894 ± 0.013 | 0.495 ± 0.021 | 0.494 | 0.005 | 0.002 | 0.499 | 0.011 |
| after stage II | 0.895 ± 0.013 | 0.877 ± 0.014 | 0.405 | 0.094 | 0.472 | 0.029 | 0.584 |

The c->i share after stage II is the critic's own arithmetic slips: it now attaches a fix to every
"Incorrect", including its wrong ones on correct solutions (units sums of ten or more written one
low), which the actor then copies.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from critics.demo_policy import column_sum

WORK = re.compile(r"^(\d)\+(\d)=(\d+) (\d)\+(\d)\+(\d)=(\d+) \\boxed\{(\d{3})\}$")


@dataclass
class Budget:
    questions: int = 3000
    held_out: int = 1000
    samples: int = 4
    actor_steps: int = 1200
    critic_steps: int = 800
    stage_one_steps: int = 30
    stage_two_steps: int = 60
    hint_rate: float = 0.3
    slip_rate: float = 0.6


def teacher_critique(response: str, hint: bool) -> str | None:
    r"""The critic teacher: re-add the columns, compare with the answer, give the verdict, and on a
    wrong answer (if ``hint``) the correct sum after it. None for a response it cannot read.

    >>> teacher_critique(r"7+5=13 0+4+1=5 \boxed{053}", hint=True)
    '7+5=12 0+4+1=5 052 053 \\boxed{Incorrect} fix:052'
    >>> teacher_critique(r"7+5=12 0+4+1=5 \boxed{052}", hint=True)
    '7+5=12 0+4+1=5 052 052 \\boxed{Correct}'
    """
    match = WORK.match(response.strip())
    if not match:
        return None
    u1, u2, _, t1, t2, _, _, claimed = match.groups()
    units = int(u1) + int(u2)
    tens = int(t1) + int(t2) + units // 10
    total = f"{tens * 10 + units % 10:03d}"
    head = f"{u1}+{u2}={units} {t1}+{t2}+{units // 10}={tens} {total} {claimed}"
    if total == claimed:
        return head + r" \boxed{Correct}"
    return head + r" \boxed{Incorrect}" + (f" fix:{total}" if hint else "")


def actor_refinement(solution: str, critique: str) -> str:
    """What the actor is taught to do with a critique: take the fix if there is one, else keep its answer."""
    fix = re.search(r"fix:(\d{3})", critique)
    kept = re.search(r"\\boxed\{(\d{3})\}", solution)
    return f"\\boxed{{{fix.group(1) if fix else kept.group(1) if kept else '000'}}}"


def questions(n: int, rng: random.Random) -> list[dict]:
    out = []
    for _ in range(n):
        a, b = rng.randint(0, 99), rng.randint(0, 99)
        out.append({"question": f"{a:02d}+{b:02d}", "gold_answer": f"{a + b:03d}", "a": a, "b": b})
    return out


def train_actor(out: Path, budget: Budget, seed: int) -> Path:
    """SFT a tiny actor on solving (with the slip) and on refining from critiques of every kind."""
    import datasets
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    from critics.actors import refine_messages, solve_messages
    from critics.tiny import save_tiny_checkpoint

    rng = random.Random(seed)
    examples = []
    for q in questions(budget.questions * 4, rng):
        solution = column_sum(q["a"], q["b"], rng.random() < budget.slip_rate)
        examples.append(
            {
                "prompt": solve_messages(q["question"], "compact"),
                "completion": [{"role": "assistant", "content": solution}],
            }
        )
        seen = column_sum(q["a"], q["b"], rng.random() < 0.5)
        critique = teacher_critique(seen, hint=rng.random() < 0.5)
        examples.append(
            {
                "prompt": refine_messages(q["question"], seen, critique, "compact"),
                "completion": [{"role": "assistant", "content": actor_refinement(seen, critique)}],
            }
        )
    base = save_tiny_checkpoint(out / "actor-base", seed=seed + 10, num_layers=4, max_positions=256)
    tokenizer, model = AutoTokenizer.from_pretrained(base), AutoModelForCausalLM.from_pretrained(base)
    args = SFTConfig(
        output_dir=str(out / "actor-sft"),
        max_steps=budget.actor_steps,
        per_device_train_batch_size=32,
        learning_rate=3e-3,
        lr_scheduler_type="cosine",
        warmup_steps=0.05,
        use_cpu=True,
        bf16=False,
        report_to=[],
        save_strategy="no",
        logging_steps=100,
        max_length=160,
        seed=seed,
    )
    trainer = SFTTrainer(
        model=model, args=args, train_dataset=datasets.Dataset.from_list(examples), processing_class=tokenizer
    )
    trainer.train()
    final = out / "actor"
    trainer.save_model(str(final))
    tokenizer.save_pretrained(str(final))
    return final


def on_policy_records(actor_path: Path, qs: list[dict], budget: Budget, seed: int, hint: random.Random) -> list[dict]:
    """The actor's sampled solutions, verified and balanced, with a teacher critique column."""
    from critics.actors import ActorSettings, make_actor
    from critics.onpolicy import SampleSettings, sample_records

    actor = make_actor(
        ActorSettings(model=str(actor_path), device="cpu", style="compact", max_new_tokens=40, batch_size=256)
    )
    records, quarantine, report = sample_records(
        actor, qs, SampleSettings(samples=budget.samples, temperature=1.0, seed=seed), progress=True
    )
    print(f"on-policy sample: {json.dumps(report)}")
    rows = []
    for r in records:
        critique = teacher_critique(r.response, hint.random() < budget.hint_rate)
        if critique is not None:  # a solution the teacher cannot read gets no critique and no place
            rows.append({**r.to_row(), "critique": critique})
    return rows


def write_jsonl(path: Path, rows: list[dict]) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return str(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--output-dir", default="outputs/critique_rl_experiment")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    budget = Budget()
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()

    from critics.actors import ActorSettings
    from critics.models import ModelConfig
    from critics.recipes import critique_rl, sft
    from critics.recipes.common import DataSettings, EvalSettings, RunSettings, TemplateSettings, set_threads_for_cpu
    from critics.recipes.critic_rl import GRPOSettings
    from critics.tiny import save_tiny_checkpoint

    set_threads_for_cpu(True)
    actor = out / "actor"
    if (actor / "config.json").is_file():  # the actor is a pure function of the seed and budget: reuse it
        print(f"reusing the actor trained before in {actor}")
    else:
        actor = train_actor(out, budget, args.seed)
    for stale in ("critic-sft", "critique_rl"):  # this script's own earlier outputs
        shutil.rmtree(out / stale, ignore_errors=True)
    rng, hint = random.Random(args.seed + 1), random.Random(args.seed + 2)
    train = write_jsonl(
        out / "train.jsonl", on_policy_records(actor, questions(budget.questions, rng), budget, args.seed, hint)
    )
    held_out = write_jsonl(
        out / "held_out.jsonl",
        on_policy_records(
            actor,
            questions(budget.held_out, random.Random(args.seed + 3)),
            Budget(**{**vars(budget), "samples": 1}),
            args.seed,
            hint,
        ),
    )
    data = DataSettings(train=train, eval=held_out, task="pointwise")
    template = TemplateSettings(style="compact")
    evaluation = EvalSettings(max_new_tokens=64, batch_size=256)  # the longest critique is 48 characters
    critic_base = save_tiny_checkpoint(out / "critic-base", seed=args.seed + 20, max_positions=256)
    warm = sft.run(
        sft.SFTRecipeConfig(
            model=ModelConfig(name_or_path=str(critic_base), device="cpu"),
            data=data,
            template=template,
            eval=EvalSettings(enabled=False),
            run=RunSettings(
                output_dir=str(out / "critic-sft"),
                max_steps=budget.critic_steps,
                learning_rate=3e-3,
                lr_scheduler_type="cosine",
                warmup_steps=0.05,
                per_device_train_batch_size=32,
                save_steps=budget.critic_steps,
                logging_steps=50,
                seed=args.seed,
            ),
            max_length=128,
        )
    )
    config = critique_rl.CritiqueRLConfig(
        model=ModelConfig(name_or_path=warm["final"], device="cpu"),
        data=data,
        template=template,
        eval=evaluation,
        actor=ActorSettings(
            kind="transformers", model=str(actor), style="compact", max_new_tokens=16, batch_size=256, device="cpu"
        ),
        run=critique_rl.StagedRunSettings(
            output_dir=str(out / "critique_rl"),
            learning_rate=2e-5,
            per_device_train_batch_size=64,
            save_steps=1000,
            logging_steps=5,
            seed=args.seed,
        ),
        grpo=GRPOSettings(num_generations=8, temperature=1.0, beta=0.01, max_completion_length=64),
        stage_one=critique_rl.StageOneSettings(max_steps=budget.stage_one_steps),
        stage_two=critique_rl.StageTwoSettings(max_steps=budget.stage_two_steps, mode="refine"),
    )
    result = critique_rl.run(config)
    report(result["metrics"], time.monotonic() - started)


def report(metrics: dict, seconds: float) -> None:
    """The table: discrimination and post-refinement accuracy after each stage, with 2 SE of the differences."""
    print("\n| critic | discrimination acc | refine acc | c->c | c->i | i->c | i->i | change rate |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for stage in ("before", "after stage I", "after stage II"):
        m = metrics.get(stage)
        if m:
            print(
                f"| {stage} | {m['accuracy']:.3f} ± {m['stderr']:.3f} | {m['refine_accuracy']:.3f} ± "
                f"{m['refine_stderr']:.3f} | {m['c->c']:.3f} | {m['c->i']:.3f} | {m['i->c']:.3f} | "
                f"{m['i->i']:.3f} | {m['change_rate']:.3f} |"
            )
    one, two = metrics["after stage I"], metrics["after stage II"]
    n = one["n"]
    for name, key, se in (("refine", "refine_accuracy", "refine_stderr"), ("discrimination", "accuracy", "stderr")):
        gain = two[key] - one[key]
        print(
            f"stage II vs stage I, {name} accuracy: {one[key]:.3f} -> {two[key]:.3f} ({gain:+.3f}; "
            f"2 SE of the difference {2 * math.hypot(one[se], two[se]):.3f}; n={n})"
        )
    print(
        f"solutions' own accuracy on the held-out set: {one['accuracy_before']:.3f}; whole run {seconds / 60:.1f} min"
    )


if __name__ == "__main__":
    main()
