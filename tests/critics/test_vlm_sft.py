"""A vision-language critic's SFT warm start and held-out evaluation see the records' images."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image

from critics.eval.heldout import critique_accuracy
from critics.judging.generation import LoadedModel
from critics.judging.judge import conversation
from critics.judging.spec import CriticSpec
from critics.models import ModelConfig
from critics.recipes import critic_rl, sft
from critics.recipes.common import DataSettings, EvalSettings, RunSettings, TemplateSettings
from critics.tiny import save_tiny_checkpoint
from critics.vlm import load_vlm, vision_tower

COLOURS = {"red": (255, 0, 0), "blue": (0, 0, 255), "green": (0, 160, 0), "yellow": (230, 220, 0)}
COMPACT = TemplateSettings(style="compact", think=False)


@pytest.fixture(scope="module")
def records(tmp_path_factory) -> Path:
    """Pairwise records about solid-colour squares, each with a right critique; one row has no image."""
    folder = tmp_path_factory.mktemp("images")
    for name, rgb in COLOURS.items():
        Image.new("RGB", (28, 28), rgb).save(folder / f"{name}.png")
    rows = []
    for i in range(12):
        name = list(COLOURS)[i % 4]
        wrong = list(COLOURS)[(i + 1) % 4]
        swapped = i % 2 == 1
        a, b = (wrong, name) if swapped else (name, wrong)
        label = "B" if swapped else "A"
        rows.append(
            {
                "id": f"v{i}",
                "source": "t",
                "task": "pairwise",
                "question": "What colour is it?",
                "response_a": f"It is {a}.",
                "response_b": f"It is {b}.",
                "label": label,
                "swapped": swapped,
                "images": [] if i == 5 else [str(folder / f"{name}.png")],
                "critique": f"It is {name}. \\boxed{{{label}}}",
            }
        )
    path = folder / "records.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def sft_config(model: Path, records: Path, out: Path, **critiques) -> sft.SFTRecipeConfig:
    """Three steps of 4: one epoch, so one batch mixes records with and without an image."""
    return sft.SFTRecipeConfig(
        model=ModelConfig(name_or_path=str(model), device="cpu"),
        template=COMPACT,
        data=DataSettings(train=str(records), eval_size=0),
        run=RunSettings(
            output_dir=str(out), max_steps=3, per_device_train_batch_size=4, learning_rate=1e-3, save_steps=100
        ),
        critiques=sft.CritiqueSettings(**critiques),
        max_length=256,
    )


def watch_the_tower(model) -> list[tuple[torch.Tensor, bool]]:
    """Patches the vision tower receives, with whether autograd was on."""
    seen: list[tuple[torch.Tensor, bool]] = []
    vision_tower(model)[1].register_forward_hook(
        lambda module, args, out: seen.append((args[0].detach(), torch.is_grad_enabled()))
    )
    return seen


def test_sft_warm_start_trains_on_the_records_images(tiny_vlm, records, tmp_path):
    trainer, _, stats = sft.build(sft_config(tiny_vlm, records, tmp_path / "sft"))
    assert stats == {"kept": 12}
    assert type(trainer.processing_class).__name__ == "ImageOnlyQwen2_5_VLProcessor"
    row = trainer.train_dataset[0]
    assert [p["type"] for p in row["prompt"][0]["content"]] == ["image", "text"] and len(row["images"]) == 1
    _, tower = vision_tower(trainer.model)
    before = {name: p.detach().clone() for name, p in tower.named_parameters()}
    seen = watch_the_tower(trainer.model)
    trainer.train()
    assert trainer.state.global_step == 3
    # patches of 3 channels x 2 frames x 14 x 14 pixels from the PNGs, in the loss forward (autograd on)
    assert seen and all(x.shape[-1] == 3 * 2 * 14 * 14 for x, _ in seen) and all(grad for _, grad in seen)
    assert any(x.std() > 0.1 for x, _ in seen)
    assert any(not torch.equal(p.detach(), before[name]) for name, p in tower.named_parameters())


def test_sft_on_images_with_a_text_only_model_is_an_error(tmp_path, records):
    tiny = save_tiny_checkpoint(tmp_path / "tiny")
    with pytest.raises(ValueError, match="text-only model"):
        sft.build(sft_config(tiny, records, tmp_path / "sft"))


def test_a_teacher_that_cannot_see_the_images_is_refused(tmp_path, tiny_vlm, records):
    tiny = save_tiny_checkpoint(tmp_path / "tiny")
    with pytest.raises(ValueError, match="cannot see them"):
        sft.build(sft_config(tiny_vlm, records, tmp_path / "sft", teacher=str(tiny), samples_per_row=1))


def test_a_vision_language_teacher_writes_critiques_with_the_images(tmp_path, tiny_vlm, records):
    import datasets

    config = sft_config(tiny_vlm, records, tmp_path / "sft", teacher=str(tiny_vlm), samples_per_row=2, max_new_tokens=4)
    critiques = sft.collect_critiques(config, datasets.Dataset.from_json(str(records)))
    assert len(critiques) == 12 and all(
        len(texts) == 2 and all(isinstance(t, str) for t in texts) for texts in critiques
    )


def test_held_out_accuracy_judges_each_record_with_its_images(tiny_vlm, records):
    import datasets

    model, processor = load_vlm(ModelConfig(name_or_path=str(tiny_vlm), device="cpu"), apply_lora=False)
    seen = watch_the_tower(model)
    rows = datasets.Dataset.from_json(str(records))
    spec = CriticSpec(tasks=["pairwise"], style="compact", max_new_tokens=4, context_tokens=1024)
    result = critique_accuracy(
        LoadedModel(model, processor.tokenizer, "vision", processor), rows, spec, batch_size=5, progress=False
    )
    assert result["n"] == 12 and 0.0 <= result["accuracy"] <= 1.0
    # each image is resized to the processor's 56x56 minimum: 16 patches of 14x14 for every record with an
    # image (11 of 12), once per generation (the prefill), with autograd off
    assert sum(x.shape[0] for x, _ in seen) == 11 * 16 and not any(grad for _, grad in seen)
    with pytest.raises(ValueError, match="reads text only"):
        conversation(rows[0], spec, images=False)


def test_critic_rl_reports_held_out_accuracy_with_images(tiny_vlm, records, tmp_path):
    """Also a GRPO batch that mixes a record without an image with one that has one (TRL 1.16 alone fails)."""
    config = critic_rl.CriticRLConfig(
        model=ModelConfig(name_or_path=str(tiny_vlm), device="cpu"),
        template=COMPACT,
        data=DataSettings(train=str(records), eval_size=4),
        eval=EvalSettings(max_new_tokens=4, batch_size=4),
        run=RunSettings(
            output_dir=str(tmp_path / "rl"),
            max_steps=1,
            per_device_train_batch_size=4,
            learning_rate=1e-3,
            save_steps=100,
        ),
        grpo=critic_rl.GRPOSettings(num_generations=2, max_completion_length=8),
    )
    result = critic_rl.run(config, progress=False)
    metrics = result["metrics"]
    assert metrics["before"]["n"] == metrics["after GRPO"]["n"] == 4
