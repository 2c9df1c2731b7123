r"""The second half of ``critics demo`` (``--policy``): a critic served over HTTP trains a policy.

1. The judge: the demo critic of the first half (0.80 held-out) is not fit to train against. Its
   claims sit within 3 of the sum, so their tens digit is nearly always the sum's and it learned
   to copy it: served as a policy's reward, it judged answers ten too high right 90-96% of the
   time, and the policy learned tens errors (task accuracy 0.486 -> 0.386 while the reward rose).
   So this half trains a judge the same way on claims whose thresholds may also sit 9-11 away,
   where copying fails, from a teacher without slips (``critics.demo.run`` with ``far``).
2. The policy's task: add two two-digit numbers ("07+45" -> ``oxed{052}``), working in columns.
   A tiny policy is fine-tuned on the work of a teacher with a habitual slip: in 60% of the sums
   whose units add up to ten or more it writes the units sum one too high ("7+5=13 0+4+1=5
   oxed{053}"), so the policy learns the slip as its most likely move there.
3. The judge is served by ``critics serve``'s app on a local port, and ``policy_grpo`` trains the
   policy with one reward, asked of the judge over HTTP: for an answer s, the claim "a+b>s-1"
   must be judged Correct and "a+b>s" Incorrect, which together hold for s = a+b only. No rule,
   no gold answer: only the critic's verdicts.
Held-out task accuracy (the answer checked against a+b, which the reward never sees) is measured
before and after.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from critics.serving.adapters import message_text
from critics.serving.remote import UNREACHABLE, RemoteCritic


@dataclass
class PolicyDemoSettings:
    """Sizes and budgets of the policy half of the demo."""

    n_prompts: int = 8000
    eval_size: int = 1000
    judge_sft_steps: int = 1500
    judge_far: tuple[int, ...] = (9, 10, 11)
    slip_rate: float = 0.6
    sft_steps: int = 300
    grpo_steps: int = 100
    grpo_learning_rate: float = 5e-5


def column_sum(a: int, b: int, slip: bool = False) -> str:
    """The policy teacher's work for a+b, optionally with its slip: a units sum of ten or more
    written one too high (and the answer's last digit with it).

    >>> column_sum(7, 45)
    '7+5=12 0+4+1=5 \\\\boxed{052}'
    >>> column_sum(7, 45, slip=True)
    '7+5=13 0+4+1=5 \\\\boxed{053}'
    """
    units = a % 10 + b % 10
    written = units + 1 if slip and units >= 10 else units
    tens = a // 10 + b // 10 + units // 10
    return f"{a % 10}+{b % 10}={written} {a // 10}+{b // 10}+{units // 10}={tens} \\boxed{{{tens * 10 + written % 10:03d}}}"


def write_prompts(path: Path, n: int, seed: int) -> list[dict[str, Any]]:
    """Sum prompts with their gold answers (the gold is for evaluation only, never the reward)."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        a, b = rng.randint(0, 99), rng.randint(0, 99)
        rows.append({"question": f"{a:02d}+{b:02d}", "answer": f"{a + b:03d}", "a": a, "b": b})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return rows


class CriticSumCheck:
    """The policy's reward, from the critic alone: "q>{s-1}" judged Correct and "q>{s}" Incorrect.

    Returns 0.0 for an answer that is not three digits, ``None`` when the critic gave no verdict
    or could not be reached (counted in ``failed`` and ``invalid``, like ``reward_function``, and
    prompts over the critic's budget in ``too_long``).
    """

    __name__ = "critic_sum_check"

    def __init__(self, url: str, timeout: float = 60.0):
        self.critic = RemoteCritic(url, timeout=timeout)
        self.failed = self.invalid = self.too_long = 0

    def __call__(self, prompts, completions, **kwargs) -> list[float | None]:
        from data_pipelines.verifiers.exact import _final_answer

        items, asked = [], []
        for i, (prompt, completion) in enumerate(zip(prompts, completions)):
            question, answer = message_text(prompt, "user"), _final_answer(message_text(completion, "assistant"))
            if answer and answer.isdigit() and len(answer) == 3:
                s = int(answer)
                items += [
                    {"question": question, "response": f"{question}>{max(s - 1, 0):03d}"},
                    {"question": question, "response": f"{question}>{s:03d}"},
                ]
                asked.append(i)
        results = self.critic.critique(items) if items else []
        self.too_long += sum(r.prompt != "ok" for r in results)
        out: list[float | None] = [0.0] * len(completions)
        for k, i in enumerate(asked):
            low, high = results[2 * k], results[2 * k + 1]
            if UNREACHABLE in (low.verdict.reason, high.verdict.reason):
                self.failed += 1
                out[i] = None
            elif low.score is None or high.score is None:
                self.invalid += 1
                out[i] = None
            else:
                out[i] = float(low.score == 1.0 and high.score == 0.0)
        return out


def warm_start(
    base: Path, rows: list[dict[str, Any]], settings: PolicyDemoSettings, out: Path, seed: int, progress: bool
) -> Path:
    """Fine-tune the tiny policy on the slipping teacher's work; returns the checkpoint folder."""
    import datasets
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    from critics.recipes.common import set_threads_for_cpu, show_progress

    set_threads_for_cpu(True)
    rng = random.Random(seed)
    examples = [
        {
            "prompt": [{"role": "user", "content": r["question"]}],
            "completion": [
                {"role": "assistant", "content": column_sum(r["a"], r["b"], rng.random() < settings.slip_rate)}
            ],
        }
        for r in rows
    ]
    tokenizer, model = AutoTokenizer.from_pretrained(base), AutoModelForCausalLM.from_pretrained(base)
    args = SFTConfig(
        output_dir=str(out),
        max_steps=settings.sft_steps,
        per_device_train_batch_size=16,
        learning_rate=3e-3,
        lr_scheduler_type="cosine",
        warmup_steps=0.05,
        use_cpu=True,
        bf16=False,
        report_to=[],
        save_strategy="no",
        logging_steps=25,
        max_length=64,
        seed=seed,
    )
    trainer = SFTTrainer(
        model=model, args=args, train_dataset=datasets.Dataset.from_list(examples), processing_class=tokenizer
    )
    show_progress(trainer, progress)
    trainer.train()
    final = out / "final"
    trainer.save_model(str(final))
    tokenizer.save_pretrained(str(final))
    return final


def train_judge(output_dir: Path, seed: int, settings: PolicyDemoSettings, progress: bool) -> dict[str, Any]:
    """The demo critic's recipe on near and far thresholds, a teacher without slips, SFT only."""
    from critics import demo

    return demo.run(
        demo.DemoSettings(
            output_dir=str(output_dir),
            seed=seed,
            sft_steps=settings.judge_sft_steps,
            grpo_steps=0,
            slip_rate=0.0,
            far=settings.judge_far,
            eval_size=1000,
        ),
        progress=progress,
    )


def run(
    output_dir: str,
    seed: int = 0,
    settings: PolicyDemoSettings | None = None,
    progress: bool = True,
    critic_checkpoint: str | None = None,
) -> dict[str, Any]:
    """Train the judge (unless ``critic_checkpoint`` is given), serve it, warm-start the policy and
    train it with ``policy_grpo`` against the served judge."""
    from critics.models import ModelConfig
    from critics.recipes import policy_grpo
    from critics.recipes.common import RunSettings
    from critics.recipes.critic_rl import GRPOSettings
    from critics.serving import Critic
    from critics.serving.server import serve_in_background
    from critics.tiny import save_tiny_checkpoint

    settings = settings or PolicyDemoSettings()
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    judge = None
    if critic_checkpoint is None:
        judge = train_judge(out / "judge", seed, settings, progress)
        critic_checkpoint = judge["sft"]["final"]
    rows = write_prompts(out / "sum_prompts.jsonl", settings.n_prompts, seed + 1)
    start = warm_start(
        save_tiny_checkpoint(out / "policy-base", seed=seed + 2), rows, settings, out / "policy-sft", seed, progress
    )
    critic = Critic.from_pretrained(critic_checkpoint, backend_options={"device": "cpu"}, max_batch_size=256)
    with serve_in_background(critic) as (url, _):
        reward = CriticSumCheck(url)
        config = policy_grpo.PolicyGRPOConfig(
            model=ModelConfig(name_or_path=str(start), device="cpu"),
            data=policy_grpo.PolicyDataSettings(train=str(out / "sum_prompts.jsonl"), eval_size=settings.eval_size),
            run=RunSettings(
                output_dir=str(out / "policy-grpo"),
                max_steps=settings.grpo_steps,
                learning_rate=settings.grpo_learning_rate,
                per_device_train_batch_size=64,
                save_steps=settings.grpo_steps,
                logging_steps=5,
                seed=seed,
            ),
            grpo=GRPOSettings(num_generations=8, temperature=1.0, beta=0.0, max_completion_length=32),
            critic=None,
            rewards=[reward],
            eval=policy_grpo.PolicyEvalSettings(max_new_tokens=32, batch_size=500, verifier="exact"),
        )
        result = policy_grpo.run(config, progress=progress)
    logged = [
        e["reward"] for e in json.loads((Path(result["final"]) / "log_history.json").read_text()) if "reward" in e
    ]
    result["rewards"] = [sum(logged[:4]) / len(logged[:4]), sum(logged[-4:]) / len(logged[-4:])]
    result["url"], result["critic_failed"], result["critic_invalid"] = url, reward.failed, reward.invalid
    result["judge"], result["critic"] = judge, critic_checkpoint
    return result
