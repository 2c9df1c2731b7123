"""``critic_rl`` on a vision-language critic: images reach the vision tower during GRPO."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image

from critics.judging.generation import LoadedModel
from critics.judging.tasks import add_prompts
from critics.models import ModelConfig
from critics.recipes import critic_rl
from critics.recipes.common import DataSettings, RunSettings
from critics.rewards.verdict import PairwiseReward
from critics.tiny import save_tiny_checkpoint
from critics.vlm import vision_tower

COLOURS = {"red": (255, 0, 0), "blue": (0, 0, 255), "green": (0, 160, 0)}


@pytest.fixture(scope="module")
def records(tmp_path_factory) -> Path:
    """Pairwise records about solid-colour squares; one row shows two images, one shows none."""
    folder = tmp_path_factory.mktemp("images")
    paths = {}
    for name, rgb in COLOURS.items():
        paths[name] = folder / f"{name}.png"
        Image.new("RGB", (24, 24), rgb).save(paths[name])
    rows = []
    for i, name in enumerate(["red", "blue", "green", "red", "blue", "green", "red", "blue"]):
        wrong = "blue" if name != "blue" else "red"
        swapped = i % 2 == 1
        a, b = (f"It is {wrong}.", f"It is {name}.") if swapped else (f"It is {name}.", f"It is {wrong}.")
        images = [str(paths[name])] * (2 if i == 2 else 0 if i == 5 else 1)
        rows.append(
            {
                "id": f"v{i}",
                "source": "t",
                "task": "pairwise",
                "question": "What colour is the square?",
                "response_a": a,
                "response_b": b,
                "label": "B" if swapped else "A",
                "swapped": swapped,
                "images": images,
            }
        )
    path = folder / "records.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def completion_length(completions, **kwargs) -> list[float]:
    """A reward that differs within each group, so every step has a gradient (a random critic rarely boxes)."""
    return [len(c[0]["content"]) / 8 for c in completions]


def rl_config(model: Path, records: Path, out: Path, freeze_vision: bool = False) -> critic_rl.CriticRLConfig:
    return critic_rl.CriticRLConfig(
        model=ModelConfig(name_or_path=str(model), device="cpu", freeze_vision=freeze_vision),
        data=DataSettings(train=str(records), eval_size=0),
        run=RunSettings(
            output_dir=str(out), max_steps=2, per_device_train_batch_size=4, learning_rate=1e-3, save_steps=100
        ),
        grpo=critic_rl.GRPOSettings(num_generations=2, max_completion_length=8),
        rewards=[PairwiseReward(), completion_length],
        reward_weights=[1.0, 1.0],
    )


def test_prompts_get_one_image_placeholder_per_image(records):
    import datasets

    dataset = add_prompts(datasets.Dataset.from_json(str(records)), think=True, images=True)
    for row in dataset:
        system, user = row["prompt"]
        parts = [part["type"] for part in user["content"]]
        assert parts == ["image"] * len(row["images"]) + ["text"]
        assert "<think>" in user["content"][-1]["text"] and system["content"][0]["type"] == "text"
    text_only = add_prompts(datasets.Dataset.from_json(str(records)), style="compact")
    assert isinstance(text_only[0]["prompt"][0]["content"], str)  # text-only critics are unchanged


def train_and_watch_the_tower(config: critic_rl.CriticRLConfig):
    trainer, _ = critic_rl.build(config)
    _, tower = vision_tower(trainer.model)
    before = {name: p.detach().clone() for name, p in tower.named_parameters()}
    pixels = []  # (patches seen, whether autograd was on: the loss forward, not only generation)
    tower.register_forward_hook(lambda module, args, out: pixels.append((args[0].detach(), torch.is_grad_enabled())))
    trainer.train()
    changed = [name for name, p in tower.named_parameters() if not torch.equal(p.detach(), before[name])]
    return trainer, pixels, changed


def test_critic_rl_trains_the_vision_tower_on_the_records_images(tiny_vlm, records, tmp_path):
    trainer, pixels, changed = train_and_watch_the_tower(rl_config(tiny_vlm, records, tmp_path / "rl"))
    assert trainer.state.global_step == 2
    assert type(trainer.processing_class).__name__ == "ImageOnlyQwen2_5_VLProcessor"
    # patches of 3 channels x 2 frames x 14 x 14 pixels, from the PNGs: solid colours, so varied values
    assert pixels and all(x.ndim == 2 and x.shape[-1] == 3 * 2 * 14 * 14 for x, _ in pixels)
    assert any(x.std() > 0.1 for x, _ in pixels) and any(grad for _, grad in pixels)
    assert changed


def test_freeze_vision_keeps_the_tower_fixed_while_images_still_reach_it(tiny_vlm, records, tmp_path):
    trainer, pixels, changed = train_and_watch_the_tower(rl_config(tiny_vlm, records, tmp_path / "rl", True))
    assert trainer.state.global_step == 2 and any(grad for _, grad in pixels)
    assert changed == []
    assert not any(p.requires_grad for p in vision_tower(trainer.model)[1].parameters())


def test_images_for_a_text_only_model_are_an_error(tmp_path, records):
    tiny = save_tiny_checkpoint(tmp_path / "tiny")
    with pytest.raises(ValueError, match="text-only model"):
        critic_rl.build(rl_config(tiny, records, tmp_path / "rl"))


def test_the_critic_is_evaluated_as_a_policy_before_and_after_critic_training(tiny_vlm, records, tmp_path):
    from critics.eval.policy import policy_accuracy

    folder = Path(json.loads(records.read_text().splitlines()[0])["images"][0]).parent
    questions = [
        {"question": "What colour is the square?", "answer": name, "images": [str(folder / f"{name}.png")]}
        for name in COLOURS
    ]
    trainer, _ = critic_rl.build(rl_config(tiny_vlm, records, tmp_path / "rl"))
    before = policy_accuracy(trainer.critic_loaded, questions, max_new_tokens=4, instruction=" One word.")
    seen = []
    _, tower = vision_tower(trainer.model)
    tower.register_forward_hook(lambda module, args, out: seen.append(1))
    trainer.train()
    after = policy_accuracy(trainer.critic_loaded.with_model(trainer.model), questions, max_new_tokens=4)
    assert before["n"] == after["n"] == len(COLOURS) and 0.0 <= after["accuracy"] <= 1.0
    assert seen  # the policy evaluation and training both looked at the images
    with pytest.raises(ValueError, match="text-only model cannot answer questions with images"):
        policy_accuracy(LoadedModel(trainer.model, trainer.processing_class.tokenizer), questions)


def test_a_llava_checkpoint_loads_with_its_stock_processor_and_trains_on_the_images(tiny_llava, records, tmp_path):
    from critics.judging.generation import generate, load_model

    lm = load_model(ModelConfig(name_or_path=str(tiny_llava), device="cpu", freeze_vision=True))
    model, processor = lm.model, lm.processor
    assert lm.kind == "vision"  # decided once, from the checkpoint's config
    assert type(processor).__name__ == "LlavaProcessor" and vision_tower(model)[0] == "model.vision_tower"
    assert not any(p.requires_grad for p in vision_tower(model)[1].parameters())
    image = Image.new("RGB", (30, 30), COLOURS["red"])
    conversation = [{"role": "user", "content": [{"type": "image", "image": image}, {"type": "text", "text": "?"}]}]
    assert len(generate(lm, [conversation], max_new_tokens=3)) == 1

    trainer, pixels, changed = train_and_watch_the_tower(rl_config(tiny_llava, records, tmp_path / "rl"))
    assert trainer.state.global_step == 2 and type(trainer.processing_class).__name__ == "LlavaProcessor"
    assert any(grad for _, grad in pixels) and changed  # the CLIP tower saw the images and learned
