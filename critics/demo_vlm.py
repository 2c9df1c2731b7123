"""``critics demo --vlm``: a vision-language critic learns to judge images, on a laptop CPU in minutes.

1. Data: the project draws coloured circles and squares (56x56 PNGs) and writes, for each, two
   answers to "What colour is the shape?" (the right colour and a wrong one) as a JSONL index;
   ``data_pipelines.build`` (source ``image_preference``, builder ``pairwise``) checks every image
   and turns the rows into pairwise records with the right answer at A or B, half and half.
2. SFT: a tiny random Qwen2.5-VL (``critics.tiny.save_tiny_vlm``) learns, with the images, to
   name the colour it sees, compare it with each answer, and give its verdict ("It is orange.
   A: red, no. B: orange, yes. \\boxed{B}"). The teacher has a habit: 90% of the time it calls
   orange "red", purple "blue" and yellow "green". When neither answer then matches it guesses
   A. The SFT recipe keeps only critiques whose verdict matches the label, which drops the slips
   that flip the verdict but keeps those that happen not to (a lucky guess, or a wrong answer of
   another colour), so the critic learns the habit.
3. GRPO (``critic_rl``, the pairwise verdict reward): sampling its own critiques, the critic is
   rewarded for seeing orange where the answers are orange and red, so it unlearns the habit.

Held-out accuracy (with the images) is measured before and after each stage. The default run
takes about four minutes on two CPU cores.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

COLOURS = {
    "red": (220, 40, 40),
    "orange": (245, 140, 20),
    "yellow": (235, 215, 30),
    "green": (40, 170, 60),
    "blue": (40, 70, 220),
    "purple": (140, 50, 180),
}
SHAPES = ("circle", "square")
SLIPS = {"orange": "red", "purple": "blue", "yellow": "green"}  # the teacher's habit
QUESTION = "What colour is the shape?"


@dataclass
class VLMDemoSettings:
    """Sizes and budgets of the multimodal demo (the defaults take about two minutes on 2 CPU cores)."""

    output_dir: str = "outputs/demo_vlm"
    seed: int = 0
    n_images: int = 4000
    eval_size: int = 1000
    sft_steps: int = 600
    grpo_steps: int = 150
    grpo_batch_size: int = 64  # completions per step: 8 images x 8 critiques
    grpo_learning_rate: float = 1e-4
    slip_rate: float = 0.9
    confusable_share: float = 0.5  # of the images the teacher misreads, the share whose wrong answer is that misreading


def draw(colour: str, shape: str, rng: random.Random, size: int = 56):
    """A filled circle or square of ``colour`` (each channel jittered by up to 20) on white, at a
    random place and size."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (size, size), (255, 255, 255))
    radius = rng.randint(10, 20)
    cx, cy = rng.randint(radius, size - radius), rng.randint(radius, size - radius)
    fill = tuple(max(0, min(255, c + rng.randint(-20, 20))) for c in COLOURS[colour])
    paint = ImageDraw.Draw(image).ellipse if shape == "circle" else ImageDraw.Draw(image).rectangle
    paint((cx - radius, cy - radius, cx + radius, cy + radius), fill=fill)
    return image


def write_images(folder: Path, n: int, seed: int, confusable_share: float = 0.5) -> Path:
    """Draw ``n`` shapes under ``folder/images`` and write ``folder/index.jsonl`` (the
    ``image_preference`` source's rows: image, question, chosen, rejected, subset = the colour).

    The wrong answer is another colour at random, except that for a colour the teacher misreads it
    is the misreading (``SLIPS``) with probability ``confusable_share``: the pairs where seeing
    right matters."""
    rng = random.Random(seed)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        colour, shape = rng.choice(list(COLOURS)), rng.choice(SHAPES)
        draw(colour, shape, rng).save(folder / "images" / f"{i:05d}.png")
        wrong = (
            SLIPS[colour]
            if colour in SLIPS and rng.random() < confusable_share
            else rng.choice([c for c in COLOURS if c != colour])
        )
        rows.append(
            {
                "image": f"images/{i:05d}.png",
                "question": QUESTION,
                "chosen": f"It is {colour}.",
                "rejected": f"It is {wrong}.",
                "subset": colour,
            }
        )
    index = folder / "index.jsonl"
    index.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return index


def colour_of(answer: str) -> str:
    """The colour an answer names ("It is orange." -> "orange")."""
    return answer.rstrip(".").split()[-1]


def critique(row: dict[str, Any], seen: str) -> str:
    """The critique the demo teaches, given the colour the teacher saw: each answer's colour
    against it, then the verdict (A when neither matches).

    >>> critique({"response_a": "It is red.", "response_b": "It is orange."}, "orange")
    'It is orange. A: red, no. B: orange, yes. \\\\boxed{B}'
    >>> critique({"response_a": "It is blue.", "response_b": "It is orange."}, "red")
    'It is red. A: blue, no. B: orange, no. \\\\boxed{A}'
    """
    a, b = colour_of(row["response_a"]), colour_of(row["response_b"])
    verdict = "B" if b == seen and a != seen else "A"
    return (
        f"It is {seen}. A: {a}, {'yes' if a == seen else 'no'}. B: {b}, {'yes' if b == seen else 'no'}. "
        f"\\boxed{{{verdict}}}"
    )


def build_dataset(settings: VLMDemoSettings, progress: bool):
    """Step 1: draw the images, build the pairwise dataset, and add the teacher's critiques."""
    from data_pipelines import BuildConfig, build
    from data_pipelines.builders.pairwise import PairwiseBuilder
    from data_pipelines.sources.multimodal import ImagePreferenceFolder

    out = Path(settings.output_dir)
    index = write_images(out / "shapes", settings.n_images, settings.seed, settings.confusable_share)
    result = build(
        BuildConfig(
            sources=[ImagePreferenceFolder(path=str(index))],
            builder=PairwiseBuilder(),
            name="demo-coloured-shapes",
            output_dir=str(out / "data"),
            seed=settings.seed,
        ),
        progress=progress,
    )
    rng = random.Random(settings.seed + 1)

    def teach(row: dict[str, Any]) -> dict[str, str]:
        right = colour_of(row["response_b"] if row["swapped"] else row["response_a"])
        slipped = right in SLIPS and rng.random() < settings.slip_rate
        return {"critique": critique(row, SLIPS[right] if slipped else right)}

    result.load().map(teach).save_to_disk(str(out / "data_with_critiques"))
    return result


def run(settings: VLMDemoSettings, progress: bool = True) -> dict[str, Any]:
    """Run the three steps (no GRPO with ``grpo_steps=0``); return paths and held-out accuracies."""
    from critics.demo import quiet, sft_then_grpo
    from critics.rewards.verdict import PairwiseReward
    from critics.tiny import save_tiny_vlm

    if not progress:
        quiet()
    out = Path(settings.output_dir)
    data_result = build_dataset(settings, progress)
    base = save_tiny_vlm(out / "tiny-vlm-base", seed=settings.seed)
    sft_result, rl_result = sft_then_grpo(
        out,
        base,
        "pairwise",
        PairwiseReward(),
        sft_steps=settings.sft_steps,
        grpo_steps=settings.grpo_steps,
        grpo_learning_rate=settings.grpo_learning_rate,
        grpo_batch_size=settings.grpo_batch_size,
        eval_size=settings.eval_size,
        eval_batch_size=64,
        max_length=256,
        seed=settings.seed,
        progress=progress,
    )
    return {"data": data_result, "sft": sft_result, "grpo": rl_result}
