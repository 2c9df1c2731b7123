"""Vision-language critics: the tiny Qwen2.5-VL, its image-only processor, and ``load_vlm``."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

from critics.models import LoraSettings, ModelConfig
from critics.vlm import load_vlm, vision_tower

REPO = Path(__file__).resolve().parents[2]


def _inputs(processor, color=(255, 0, 0)):
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Which is better?"}]}]
    text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    return processor(text=[text], images=[Image.new("RGB", (16, 16), color)], return_tensors="pt")


def test_forward_on_image_and_text_reaches_the_vision_tower(tiny_vlm):
    model, processor = load_vlm(ModelConfig(name_or_path=str(tiny_vlm), device="cpu"))
    inputs = _inputs(processor)
    image_token = model.config.image_token_id
    assert (inputs["input_ids"] == image_token).sum() == 4  # 16x16 -> 56x56 -> 2x2 merged patches
    calls = []
    _, tower = vision_tower(model)
    tower.register_forward_hook(lambda module, args, out: calls.append(args[0].shape))
    logits = model(**inputs).logits
    assert calls and calls[0][0] == inputs["pixel_values"].shape[0]
    assert logits.shape[:2] == inputs["input_ids"].shape
    other = model(**_inputs(processor, (0, 0, 255))).logits
    assert not torch.allclose(logits, other)  # the image changes the output


def test_freeze_vision_and_lora_leave_the_tower_alone(tiny_vlm):
    config = ModelConfig(
        name_or_path=str(tiny_vlm),
        device="cpu",
        lora=LoraSettings(r=4, target_modules=["q_proj", "v_proj", "gate_proj"]),
    )
    model, _ = load_vlm(config, freeze_vision=True)
    lora_names = [n for n, _ in model.named_parameters() if "lora_" in n]
    assert lora_names and not any(".visual." in n for n in lora_names)
    assert any("mlp.gate_proj" in n for n in lora_names)  # the language model's own MLP is targeted
    tower_name, tower = vision_tower(model)
    assert tower_name.endswith("visual")
    assert not any(p.requires_grad for p in tower.parameters())

    full, _ = load_vlm(ModelConfig(name_or_path=str(tiny_vlm), device="cpu"), freeze_vision=True)
    assert not any(p.requires_grad for p in vision_tower(full)[1].parameters())
    assert all(p.requires_grad for n, p in full.named_parameters() if ".visual." not in n)
    unfrozen, _ = load_vlm(ModelConfig(name_or_path=str(tiny_vlm), device="cpu"))
    assert all(p.requires_grad for p in vision_tower(unfrozen)[1].parameters())


def test_processor_loads_in_a_fresh_process(tiny_vlm):
    code = (
        "import sys; from transformers import AutoProcessor\n"
        f"path = {str(tiny_vlm)!r}\n"
        "bare = AutoProcessor.from_pretrained(path)\n"  # unregistered: the silent fallback
        "print(type(bare).__name__)\n"
        "from critics.vlm import load_processor; from critics.models import ModelConfig\n"
        "p = load_processor(ModelConfig(name_or_path=path))\n"
        "print(type(p).__name__, type(p.image_processor).__name__)\n"
        "print(type(AutoProcessor.from_pretrained(path)).__name__)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        env={"OMP_NUM_THREADS": "1", "PATH": "", "HOME": str(tiny_vlm.parent)},
    )
    assert out.returncode == 0, out.stderr
    bare, loaded, auto = out.stdout.split("\n")[:3]
    assert bare == "TokenizersBackend"
    assert loaded == "ImageOnlyQwen2_5_VLProcessor Qwen2VLImageProcessorPil"
    assert auto == "ImageOnlyQwen2_5_VLProcessor"


def _copy_with_processor_class(src: Path, dst: Path, name: str) -> Path:
    shutil.copytree(src, dst)
    for file in ("processor_config.json", "tokenizer_config.json"):
        data = json.loads((dst / file).read_text())
        data["processor_class"] = name
        (dst / file).write_text(json.dumps(data))
    return dst


def test_unregistered_processor_is_a_clear_error(tiny_vlm, tmp_path):
    folder = _copy_with_processor_class(tiny_vlm, tmp_path / "m", "MyUnregisteredProcessor")
    with pytest.raises(ValueError, match="no image processor.*not registered.*AutoProcessor.register"):
        load_vlm(ModelConfig(name_or_path=str(folder), device="cpu"))


def test_stock_qwen_processor_without_torchvision_is_a_clear_error(tiny_vlm, tmp_path):
    try:
        import torchvision  # noqa: F401

        pytest.skip("torchvision is installed: the stock processor works")
    except ImportError:
        pass
    folder = _copy_with_processor_class(tiny_vlm, tmp_path / "m", "Qwen2_5_VLProcessor")
    with pytest.raises(ValueError, match="torchvision.*ImageOnlyQwen2_5_VLProcessor"):
        load_vlm(ModelConfig(name_or_path=str(folder), device="cpu"))
