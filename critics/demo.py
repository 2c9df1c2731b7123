"""``critics demo``: the whole journey on a laptop CPU in a few minutes, nothing downloaded.

1. Data: the project writes claims about zero-padded two-digit sums ("07+45>051"), true or false
   with equal odds, the threshold 1 to 3 below the sum or 0 to 3 above it, plus a few malformed rows; ``data_pipelines.build`` turns them into a
   pointwise dataset (quarantining the bad rows) and writes its data card.
2. SFT: a tiny critic built from scratch (``critics.tiny``) learns to add in columns, compare
   digit by digit, and then give its verdict ("7+5=12 0+4+1=5 052 051 0=0 5=5 2>1
   \\boxed{Correct}") from a teacher's critiques. The teacher has a habit: in 70% of the sums
   with a carry it forgets the carry. The SFT recipe keeps only critiques whose verdict matches
   the label, which removes the slips that flip a verdict but not the ones that happen not to
   (a false claim stays false when the sum drops by 10), so the critic learns the slip too.
   (Claims "a+b=c" let a tiny model copy c instead of adding; a threshold cannot be copied.)
3. GRPO: the critic then trains on the verdict reward alone, sampling its own critiques; a
   dropped carry costs the verdict on true claims, so GRPO unlearns the habit.
Held-out accuracy is measured before and after each stage on 2,000 held-out claims; the
checkpoint gets its model card and a PNG of the training curves. ``critics.demo_policy`` then
serves this critic and trains a policy against it.

Why thresholds this near: then a slip anywhere in the arithmetic flips the verdict, so the
verdict reward also rewards adding correctly. With thresholds up to 30 away most slips left the
verdict unchanged, and GRPO on the verdict alone made the arithmetic worse without raising
held-out accuracy. The price: a near threshold shares the sum's tens digit, and the critic learns
to copy it (see ``critics.demo_policy``).
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from data_pipelines import BuildConfig, BuildResult, build
from data_pipelines.builders.pointwise import PointwiseBuilder
from data_pipelines.sources.generic import SolutionsSource


@dataclass
class DemoSettings:
    """Sizes and budgets of the demo (the defaults fit a 2-core CPU in under 5 minutes)."""

    output_dir: str = "outputs/demo"
    seed: int = 0
    n_claims: int = 20000
    eval_size: int = 2000
    sft_steps: int = 500
    grpo_steps: int = 100
    grpo_learning_rate: float = 2e-5
    slip_rate: float = 0.7
    margin: int = 3
    far: tuple[int, ...] = ()  # further offsets, e.g. (9, 10, 11): see ``make_claim``


def make_claim(rng: random.Random, margin: int = 3, far: tuple[int, ...] = ()) -> tuple[str, bool]:
    """A claim "a+b>t", true or false with equal odds: t is 1 to ``margin`` (or a ``far`` offset)
    below the sum, or 0 to ``margin`` (or a ``far`` offset) above it. A false claim's t may equal
    the sum ("07+45>052" is false): the policy half of the demo asks the critic exactly that.

    With near offsets only, t nearly always shares the sum's tens digit and a critic learns to
    copy it; far offsets (a carry's worth away: 9, 10, 11) make that copy fail.
    """
    a, b = rng.randint(0, 99), rng.randint(0, 99)
    true = rng.random() < 0.5
    if far:
        near = tuple(range(1, margin + 1))
        offset = -rng.choice(near + far) if true else rng.choice((0, *near, *far))
    else:
        offset = -rng.randint(1, margin) if true else rng.randint(0, margin)
    return f"{a:02d}+{b:02d}>{max(0, a + b + offset):03d}", true and a + b > 0


def write_claims(path: Path, n: int, seed: int, margin: int = 3, far: tuple[int, ...] = ()) -> int:
    """Write claims in the ``solutions`` format (plus malformed rows); return lines written."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        claim, true = make_claim(rng, margin, far)
        rows.append(
            {
                "question": f"Is it true that {claim}?",
                "solution": claim,
                "is_correct": true,
                "model": "claims",
                "group": f"claim-{i}",
            }
        )
    rows += [
        {"question": "Is it true that 01+01>001?", "is_correct": True},  # no solution
        {"question": "", "solution": "01+01>001", "is_correct": True},  # empty question
        {"question": "Is it true that 02+02>003?", "solution": "02+02>003", "is_correct": "yes"},
    ]  # wrong type
    with path.open("w", encoding="utf-8") as handle:
        handle.writelines(json.dumps(row) + "\n" for row in rows)
        handle.write("{not json\n")
    return len(rows) + 1


def critique(claim: str, drop_carry: bool = False) -> str:
    """The critique the demo teaches: column addition, a digit-by-digit comparison, the verdict.

    Each step is a copy or a one-digit fact next to what it needs, which a tiny model learns in
    a few hundred steps; asked for the sum or the comparison in one go it does not. With
    ``drop_carry`` the teacher slips as it habitually does: it forgets the carry into the tens,
    and its comparison and verdict follow from the slipped sum.

    >>> critique("07+45>051")
    '7+5=12 0+4+1=5 052 051 0=0 5=5 2>1 \\\\boxed{Correct}'
    >>> critique("07+45>051", drop_carry=True)
    '7+5=12 0+4+0=4 042 051 0=0 4<5 \\\\boxed{Incorrect}'
    """
    left, threshold = claim.split(">")
    a, b = (int(x) for x in left.split("+"))
    units = a % 10 + b % 10
    carry = 0 if drop_carry else units // 10
    tens = a // 10 + b // 10 + carry
    value = tens * 10 + units % 10
    total, limit = f"{value:03d}", f"{int(threshold):03d}"
    comparison = []
    for x, y in zip(total, limit):  # stop at the first digit that differs
        comparison.append(f"{x}{'=' if x == y else '>' if x > y else '<'}{y}")
        if x != y:
            break
    verdict = "Correct" if value > int(threshold) else "Incorrect"
    return (
        f"{a % 10}+{b % 10}={units} {a // 10}+{b // 10}+{carry}={tens} {total} {limit} "
        f"{' '.join(comparison)} \\boxed{{{verdict}}}"
    )


def build_dataset(settings: DemoSettings, progress: bool) -> BuildResult:
    """Step 1: generate the claims and build the pointwise dataset (labels from the generator)."""
    out = Path(settings.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_claims(out / "claims.jsonl", settings.n_claims, settings.seed, settings.margin, settings.far)
    config = BuildConfig(
        sources=[SolutionsSource(path=str(out / "claims.jsonl"))],
        builder=PointwiseBuilder(label_from="source"),
        name="demo-sum-claims",
        output_dir=str(out / "data"),
        seed=settings.seed,
    )
    result = build(config, progress=progress)
    dataset = result.load()
    rng = random.Random(settings.seed)
    # The teacher's critiques, slips and all: the SFT recipe keeps those whose verdict matches the
    # label, which drops a slip that flips the verdict but keeps one that happens not to.
    with_critiques = dataset.map(lambda row: {"critique": critique(row["response"], rng.random() < settings.slip_rate)})
    with_critiques.save_to_disk(str(out / "data_with_critiques"))
    return result


def run(settings: DemoSettings, progress: bool = True) -> dict[str, Any]:
    """Run the three steps (no GRPO with ``grpo_steps=0``); return paths and held-out accuracies."""
    from critics.rewards.verdict import PointwiseVerdictReward
    from critics.tiny import save_tiny_checkpoint

    if not progress:
        quiet()
    out = Path(settings.output_dir)
    data_result = build_dataset(settings, progress)
    base = save_tiny_checkpoint(out / "tiny-base", seed=settings.seed)
    sft_result, rl_result = sft_then_grpo(
        out,
        base,
        "pointwise",
        PointwiseVerdictReward(),
        sft_steps=settings.sft_steps,
        grpo_steps=settings.grpo_steps,
        grpo_learning_rate=settings.grpo_learning_rate,
        grpo_batch_size=64,
        eval_size=settings.eval_size,
        eval_batch_size=128,
        max_length=128,
        seed=settings.seed,
        progress=progress,
    )
    return {"data": data_result, "sft": sft_result, "grpo": rl_result}


def quiet() -> None:
    """``--quiet``: hide the datasets and transformers progress bars too, not only the trainers'."""
    import datasets
    from transformers.utils import logging as hf_logging

    datasets.disable_progress_bars()
    hf_logging.disable_progress_bar()


def sft_then_grpo(
    out: Path,
    base: Path,
    task: str,
    reward,
    *,
    sft_steps: int,
    grpo_steps: int,
    grpo_learning_rate: float,
    grpo_batch_size: int,
    eval_size: int,
    eval_batch_size: int,
    max_length: int,
    seed: int,
    progress: bool,
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Steps 2 and 3 of the demos: SFT of ``base`` on ``out/data_with_critiques``, then GRPO with
    ``reward`` (group 8, temperature 1.0, no KL), the compact template, held-out accuracy before
    and after each stage. No GRPO (None) when ``grpo_steps`` is 0."""
    from critics.models import ModelConfig
    from critics.recipes import critic_rl, sft
    from critics.recipes.common import DataSettings, EvalSettings, RunSettings, TemplateSettings

    data = DataSettings(train=str(out / "data_with_critiques"), eval_size=eval_size, task=task)
    template = TemplateSettings(style="compact", think=False)
    evaluation = EvalSettings(max_new_tokens=64, batch_size=eval_batch_size)
    sft_result = sft.run(
        sft.SFTRecipeConfig(
            model=ModelConfig(name_or_path=str(base), device="cpu"),
            data=data,
            template=template,
            eval=evaluation,
            run=RunSettings(
                output_dir=str(out / "sft"),
                max_steps=sft_steps,
                learning_rate=3e-3,
                lr_scheduler_type="cosine",
                warmup_steps=0.05,
                per_device_train_batch_size=16,
                save_steps=sft_steps,
                logging_steps=10,
                seed=seed,
            ),
            max_length=max_length,
        ),
        progress=progress,
    )
    if not grpo_steps:
        return sft_result, None
    rl_result = critic_rl.run(
        critic_rl.CriticRLConfig(
            model=ModelConfig(name_or_path=sft_result["final"], device="cpu"),
            data=data,
            template=template,
            eval=evaluation,
            rewards=[reward],
            grpo=critic_rl.GRPOSettings(num_generations=8, temperature=1.0, beta=0.0, max_completion_length=64),
            run=RunSettings(
                output_dir=str(out / "grpo"),
                max_steps=grpo_steps,
                learning_rate=grpo_learning_rate,
                per_device_train_batch_size=grpo_batch_size,
                save_steps=grpo_steps,
                logging_steps=5,
                seed=seed,
            ),
        ),
        progress=progress,
    )
    return sft_result, rl_result
