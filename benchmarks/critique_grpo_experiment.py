r"""Critique-GRPO on the column-addition task: does learning from critiques beat plain GRPO?

The task and its teacher come from ``benchmarks/critique_rl_experiment.py`` ("07+45" ->
"7+5=12 0+4+1=5 \boxed{052}", 25-27 tokens). Built once per output folder and slip rate, reused:

- the policy, a tiny Llama fine-tuned (600 steps) half on solving from a slipping teacher (in 90%
  of the sums whose units reach ten it writes the units sum one too high: a habit it seldom breaks
  on its own, the persistent failure critiques are meant to fix; greedy it gets only the sums
  without a carry, about 0.55) and half on refining in the compact layout: from a critique with
  "fix:052" (the critic's, which re-adds the columns, or ``with_gold``'s bare answer) it writes the
  corrected work ending in \boxed{052}; from a bare "\boxed{Incorrect}" (``indicative``) it makes a
  fresh attempt, as likely to slip; from "\boxed{Correct}" it keeps its solution;
- the critic, a tiny Llama trained with the ``sft`` recipe (600 steps) on the teacher's critiques
  of solutions like the policy's (the columns re-added, the verdict, on a wrong one the right sum),
  served in process. What it writes is checked on 200 fresh solutions and printed first.

Then per seed, from the same policy, 4 runs of the same number of GRPO steps (16 questions a step,
learning rate 2e-5) with the ``answer`` verifier as the reward: plain GRPO (``policy_grpo``; its
group enlarged to 6 so its policy tokens per step are at least the others'), and ``critique_grpo``
with the critic, ``indicative`` and ``with_gold`` critiques of the failed responses (4 samples + 1
refinement each, the paper's keep rule), each followed by greedy held-out accuracy on 400 fresh
sums. Prints mean +- SE over seeds, steps and policy-generated tokens per step. The step budget
and learning rate were set on plain GRPO alone (seed 50, not one of the reported seeds) so that it
is about half way from the SFT policy to 1.0; at 60 steps it reaches 0.99.

    python benchmarks/critique_grpo_experiment.py [--seeds 5] [--steps 15] [--lr 2e-5] [--slip 0.9] [--smoke]

Measured 2026-12-04 on 2 CPU cores (3.1 min with the policy and critic already built; building
them takes 7.4 min): the critic's verdicts 0.975 accurate, the right sum in its critique of every
wrong solution.

| method | held-out accuracy (mean ± SE over 5 seeds) | steps | policy tokens / step | i->c |
|---|---:|---:|---:|---:|
| plain GRPO | 0.765 ± 0.012 | 15 | 2585 | |
| critic | 0.789 ± 0.011 | 15 | 2342 | 0.511 |
| indicative | 0.757 ± 0.004 | 15 | 2356 | 0.126 |
| with_gold | 0.797 ± 0.010 | 15 | 2339 | 0.516 |
| before (the SFT policy) | 0.556 | 0 | | |

The critic's run is +0.024 over plain GRPO with 9% fewer policy tokens, but the SE of the
difference is 0.016: 1.5 SE, short of the 2 SE asked for. Why not more: the policy uses a correct
critique only about half the time (i->c 0.51), ``keep: best`` adds one refinement per question, and
the shaped term weighs a refinement token's log-probability gradient by gamma p / (p + gamma)^2,
at most 1/4 (at p = gamma) of an on-policy sample's; meanwhile plain GRPO's own signal is strong
(about half of its groups of 6 on a carrying sum hold a correct sample).
"""

from __future__ import annotations

import argparse
import json
import math
import random
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from critique_rl_experiment import questions, teacher_critique  # noqa: E402

from critics.demo_policy import column_sum  # noqa: E402

WRONG, RIGHT, GOLD = r"\boxed{Incorrect}", r"\boxed{Correct}", r"\boxed{Incorrect} fix:{gold}"
METHODS = ("plain GRPO", "critic", "indicative", "with_gold")
# the longest solution, "9+9=18 9+9+1=19 \boxed{198}", is 27 characters (tokens) plus the end token
MAX_LENGTH = 32
SLIP, STEPS, LEARNING_RATE, PROMPTS = 0.9, 15, 2e-5, 16  # PROMPTS: questions per GRPO step


def refinement_target(seen: str, critique: str, retry: str) -> str:
    r"""What the policy is taught to write from a critique of its solution ``seen``: with a fix (the
    critic's re-added columns, or ``with_gold``'s bare answer), the corrected work ending in the
    fix; from a bare "Incorrect" (``indicative``) a fresh attempt ``retry``; from "Correct", ``seen``.

    >>> refinement_target(r"7+5=13 0+4+1=5 \boxed{053}", r"7+5=12 0+4+1=5 052 053 \boxed{Incorrect} fix:052", "")
    '7+5=12 0+4+1=5 \\boxed{052}'
    >>> refinement_target(r"7+5=13 0+4+1=5 \boxed{053}", r"\boxed{Incorrect} fix:052", "")
    '7+5=12 0+4+1=5 \\boxed{052}'
    """
    if "fix:" in critique:
        fix = critique.rsplit("fix:", 1)[1].strip()
        if "=" in critique:  # the critic's: copy its re-added columns
            head = " ".join(critique.split()[:2])
        else:  # with_gold: rewrite the units column so that it ends in the answer's last digit
            units, tens = seen.split()[:2]
            left, written = units.split("=")
            value = int(written) - int(written) % 10 + int(fix[-1])
            head = f"{left}={value} {tens}"
        return f"{head} \\boxed{{{fix}}}"
    if "Incorrect" in critique:
        return retry
    return seen


def sft(base: Path, examples: list[dict], out: Path, steps: int, seed: int) -> Path:
    import datasets
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    tokenizer, model = AutoTokenizer.from_pretrained(base), AutoModelForCausalLM.from_pretrained(base)
    args = SFTConfig(
        output_dir=str(out / "sft"),
        max_steps=steps,
        per_device_train_batch_size=32,
        learning_rate=3e-3,
        lr_scheduler_type="cosine",
        warmup_steps=0.05,
        use_cpu=True,
        bf16=False,
        report_to=[],
        save_strategy="no",
        logging_steps=100,
        max_length=128,
        seed=seed,
    )
    trainer = SFTTrainer(
        model=model, args=args, train_dataset=datasets.Dataset.from_list(examples), processing_class=tokenizer
    )
    trainer.train()
    trainer.save_model(str(out))
    tokenizer.save_pretrained(str(out))
    return out


def train_policy(out: Path, steps: int, n: int, slip: float) -> Path:
    """SFT the policy on solving (with the slip) and, half its examples, on refining from every
    kind of critique in this run (the critic's, ``indicative``'s, ``with_gold``'s)."""
    from critics.actors import refine_messages
    from critics.tiny import save_tiny_checkpoint

    if (out / "policy" / "config.json").is_file():
        return out / "policy"
    rng, examples = random.Random(0), []
    for q in questions(n, rng):
        a, b = q["a"], q["b"]
        solve = column_sum(a, b, rng.random() < slip)
        examples.append(
            {
                "prompt": [{"role": "user", "content": q["question"]}],
                "completion": [{"role": "assistant", "content": solve}],
            }
        )
        seen = column_sum(a, b, rng.random() < 0.5)
        right = seen.endswith(f"{{{q['gold_answer']}}}")
        critique = rng.choice(
            [
                teacher_critique(seen, hint=True),
                RIGHT if right else WRONG,
                RIGHT if right else GOLD.replace("{gold}", q["gold_answer"]),
            ]
        )
        retry = column_sum(a, b, rng.random() < slip)  # a fresh attempt, as likely to slip as the first
        messages = refine_messages(q["question"], seen, critique, "compact")
        target = refinement_target(seen, critique, retry)
        examples.append({"prompt": messages, "completion": [{"role": "assistant", "content": target}]})
    base = save_tiny_checkpoint(out / "policy-base", seed=10, max_positions=256)
    return sft(base, examples, out / "policy", steps, 0)


def train_critic(out: Path, steps: int, n: int, slip: float) -> Path:
    """SFT the critic (the ``sft`` recipe) on the teacher's critiques of solutions like the policy's."""
    from critics.models import ModelConfig
    from critics.recipes import sft as sft_recipe
    from critics.recipes.common import DataSettings, EvalSettings, RunSettings, TemplateSettings
    from critics.tiny import save_tiny_checkpoint

    if (out / "critic" / "final" / "critic_spec.json").is_file():
        return out / "critic" / "final"
    rng, rows = random.Random(1), []
    for k, q in enumerate(questions(n, rng)):
        response = column_sum(q["a"], q["b"], rng.random() < slip)
        label = "correct" if response.endswith(f"{{{q['gold_answer']}}}") else "incorrect"
        rows.append(
            {
                "id": str(k),
                "source": "synthetic",
                "task": "pointwise",
                "question": q["question"],
                "response": response,
                "label": label,
                "gold_answer": q["gold_answer"],
                "critique": teacher_critique(response, hint=True),
            }
        )
    (out / "critic.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    base = save_tiny_checkpoint(out / "critic-base", seed=20, max_positions=512)
    result = sft_recipe.run(
        sft_recipe.SFTRecipeConfig(
            model=ModelConfig(name_or_path=str(base), device="cpu"),
            data=DataSettings(train=str(out / "critic.jsonl"), eval_size=0, task="pointwise"),
            template=TemplateSettings(style="compact"),
            eval=EvalSettings(enabled=False),
            run=RunSettings(
                output_dir=str(out / "critic"),
                max_steps=steps,
                learning_rate=3e-3,
                lr_scheduler_type="cosine",
                warmup_steps=0.05,
                per_device_train_batch_size=32,
                save_steps=steps,
                logging_steps=100,
            ),
            max_length=128,
            max_new_tokens=64,
        ),
        progress=False,
    )
    return Path(result["final"])


def critic_quality(critic: Path, n: int, slip: float) -> dict[str, float]:
    """What the critic writes, on fresh solutions like the policy's (greedy, as in training):
    verdict accuracy, and on the wrong ones the share whose critique carries the right sum."""
    import re

    from critics.serving import open_critic

    rng = random.Random(5)
    rows = [(q, column_sum(q["a"], q["b"], rng.random() < slip)) for q in questions(n, rng)]
    judged = open_critic(str(critic)).critique(
        [{"task": "pointwise", "question": q["question"], "response": r} for q, r in rows]
    )
    right = [r.endswith(f"{{{q['gold_answer']}}}") for q, r in rows]
    fixes = [re.search(r"fix:(\d{3})", c.text or "") for c in judged]
    wrong = [i for i, ok in enumerate(right) if not ok]
    return {
        "verdict_accuracy": _mean([("Incorrect" in (c.text or "")) != ok for c, ok in zip(judged, right)]),
        "right_fix_on_wrong": _mean([bool(fixes[i]) and fixes[i].group(1) == rows[i][0]["gold_answer"] for i in wrong]),
        "example": f"{rows[wrong[0]][1]} -> {judged[wrong[0]].text}" if wrong else "",
    }


def one_run(method: str, policy: Path, critic: Path, data: dict, out: Path, seed: int, steps: int, lr: float) -> dict:
    from critics.models import ModelConfig
    from critics.recipes import critique_grpo, policy_grpo
    from critics.recipes.audit import AuditSettings
    from critics.recipes.common import RunSettings
    from critics.recipes.critic_rl import GRPOSettings
    from critics.recipes.feedback import FeedbackSettings
    from critics.rewards.answer import AnswerReward

    common = dict(
        model=ModelConfig(name_or_path=str(policy), device="cpu"),
        data=policy_grpo.PolicyDataSettings(train=data["train"], eval=data["eval"], answer_column="gold_answer"),
        run=RunSettings(
            output_dir=str(out),
            max_steps=steps,
            per_device_train_batch_size=4 * PROMPTS,
            learning_rate=lr,
            save_steps=10_000,
            logging_steps=1,
            seed=seed,
        ),
        rewards=[AnswerReward(verifier="math", answer_column="gold_answer")],
        eval=policy_grpo.PolicyEvalSettings(max_new_tokens=MAX_LENGTH, batch_size=256, verifier="math"),
        audit=AuditSettings(enabled=False),
        critic=None,
    )
    grpo = dict(temperature=1.0, beta=0.0, loss_type="dr_grpo", scale_rewards="none", max_completion_length=MAX_LENGTH)
    if method == "plain GRPO":
        config = policy_grpo.PolicyGRPOConfig(**common, grpo=GRPOSettings(num_generations=6, **grpo))
        config.run.per_device_train_batch_size = 6 * PROMPTS
        result = policy_grpo.run(config, progress=False)
    else:
        source = {"critic": "critic"}.get(method, method)
        feedback = FeedbackSettings(
            source=source,
            critic=str(critic) if source == "critic" else "",
            critique="failed",
            refinements=1,
            keep="best",
            style="compact",
            verifier="math",
            wrong_text=WRONG,
            right_text=RIGHT,
            gold_text=GOLD,
        )
        config = critique_grpo.CritiqueGRPOConfig(
            **common, grpo=GRPOSettings(num_generations=4, **grpo), feedback=feedback
        )
        result = critique_grpo.run(config, progress=False)
    logs = [e for e in json.loads((Path(result["final"]) / "log_history.json").read_text()) if "loss" in e]
    batch = config.run.per_device_train_batch_size
    tokens = [  # on-policy samples, plus one refinement per critiqued response that got a critique
        batch
        * (
            e.get("completions/mean_length", 0)
            + e.get("feedback/refinement_length", 0)
            * e.get("feedback/critiqued", 0)
            * (1 - e.get("feedback/critique_missing", 0))
        )
        for e in logs
    ]
    after = result["metrics"]["after GRPO"]
    return {
        "before": result["metrics"]["before"]["accuracy"],
        "after": after["accuracy"],
        "tokens_per_step": _mean(tokens),
        "i->c": _mean([e["feedback/i->c"] for e in logs if "feedback/i->c" in e]),
        "train_reward": (_mean([e["reward"] for e in logs[:5]]), _mean([e["reward"] for e in logs[-5:]])),
    }


def _mean(values):
    return sum(values) / len(values) if values else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--output-dir", default="outputs/critique_grpo_experiment")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--first-seed", type=int, default=0, help="seeds first-seed .. first-seed + seeds - 1")
    parser.add_argument("--steps", type=int, default=STEPS)
    parser.add_argument("--lr", type=float, default=LEARNING_RATE)
    parser.add_argument("--slip", type=float, default=SLIP, help="the policy's slip rate on sums that carry")
    parser.add_argument("--methods", default=",".join(METHODS), help=f"a comma-separated subset of {METHODS}")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: checks the pipeline in about a minute")
    args = parser.parse_args()
    methods = [m.strip() for m in args.methods.split(",")]
    unknown = sorted(set(methods) - set(METHODS))
    if unknown:
        parser.error(f"--methods: unknown {', '.join(unknown)} (known: {', '.join(METHODS)})")
    from critics.recipes.common import set_threads_for_cpu

    set_threads_for_cpu(True)
    started, out = time.monotonic(), Path(args.output_dir)
    size = (
        dict(policy_steps=20, critic_steps=20, n=200, held=32, steps=2, seeds=1, probe=16)
        if args.smoke
        else dict(policy_steps=600, critic_steps=600, n=4000, held=400, steps=args.steps, seeds=args.seeds, probe=200)
    )
    # the policy and critic are built once per output folder and slip rate, and reused
    out = (out / "smoke" if args.smoke else out) / f"slip-{args.slip}"
    out.mkdir(parents=True, exist_ok=True)
    policy = train_policy(out, size["policy_steps"], size["n"], args.slip)
    critic = train_critic(out, size["critic_steps"], size["n"], args.slip)
    print(f"policy and critic ready after {(time.monotonic() - started) / 60:.1f} min")
    if "critic" in methods:
        print(f"what the critic writes: {critic_quality(critic, size['probe'], args.slip)}")
    results: dict[str, list[dict]] = {m: [] for m in methods}
    for seed in range(args.first_seed, args.first_seed + size["seeds"]):
        rng = random.Random(100 + seed)
        data = {}
        for split, n in (("train", 2000), ("eval", size["held"])):
            path = out / f"{split}-{seed}.jsonl"
            rows = [{"question": q["question"], "gold_answer": q["gold_answer"]} for q in questions(n, rng)]
            path.write_text("".join(json.dumps(r) + "\n" for r in rows))
            data[split] = str(path)
        for method in methods:
            run_dir = out / "runs" / f"{method.replace(' ', '_')}-{seed}"
            shutil.rmtree(run_dir, ignore_errors=True)
            results[method].append(one_run(method, policy, critic, data, run_dir, seed, size["steps"], args.lr))
            print(f"seed {seed} {method}: {results[method][-1]}  ({(time.monotonic() - started) / 60:.1f} min)")
    report(results, size["steps"], time.monotonic() - started)


def report(results: dict[str, list[dict]], steps: int, seconds: float) -> None:
    print("\n| method | held-out accuracy (mean ± SE over seeds) | steps | policy tokens / step | i->c |")
    print("|---|---:|---:|---:|---:|")
    stats = {}
    for method, runs in results.items():
        accs = [r["after"] for r in runs]
        mean = _mean(accs)
        se = (
            math.sqrt(sum((a - mean) ** 2 for a in accs) / (len(accs) - 1) / len(accs))
            if len(accs) > 1
            else float("nan")
        )
        stats[method] = (mean, se)
        print(
            f"| {method} | {mean:.3f} ± {se:.3f} | {steps} | {_mean([r['tokens_per_step'] for r in runs]):.0f} | "
            f"{_mean([r['i->c'] for r in runs]):.3f} |"
        )
    print(f"| before (the SFT policy) | {_mean([r['before'] for r in next(iter(results.values()))]):.3f} | 0 | | |")
    if "plain GRPO" not in stats or "critic" not in stats:
        print(f"\nWhole run {seconds / 60:.1f} min")
        return
    (plain, plain_se), (critic, critic_se) = stats["plain GRPO"], stats["critic"]
    gap, se = critic - plain, math.hypot(plain_se, critic_se)
    verdict = "beats" if gap >= 2 * se else "does NOT beat"
    print(
        f"\nCritique-GRPO with the critic vs plain GRPO: {gap:+.3f} (SE of the difference {se:.3f}): it {verdict} "
        f"plain GRPO by 2 SE. Ratio of accuracies critic/plain: {critic / max(plain, 1e-9):.3f}. Whole run {seconds / 60:.1f} min"
    )


if __name__ == "__main__":
    main()
