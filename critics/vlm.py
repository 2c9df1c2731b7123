"""Load vision-language critics (Qwen2.5-VL, Qwen2-VL; LLaVA, Gemma3, Idefics3) with optional LoRA.

Without torchvision (it does not install beside torch 2.13 from PyPI) the stock Qwen2-VL and
Qwen2.5-VL processors cannot be built: they insist on a video processor, and every video
processor needs torchvision. ``ImageOnlyQwen2_5_VLProcessor`` / ``ImageOnlyQwen2VLProcessor``
take only an image processor and a tokenizer; ``load_vlm`` registers them with ``AutoProcessor``
before loading, so a folder whose ``processor_class`` names one of them loads in any process.

A processor that comes back without an image processor is an error, never a silent text-only
critic: ``AutoProcessor`` falls back to the bare tokenizer when it cannot resolve the class.
"""

from __future__ import annotations

from transformers.models.qwen2_5_vl.processing_qwen2_5_vl import Qwen2_5_VLProcessor
from transformers.models.qwen2_vl.processing_qwen2_vl import Qwen2VLProcessor

from critics.models import ModelConfig, _model_kwargs, _place, lora_config

VISION_TOWER_NAMES = ("visual", "vision_tower", "vision_model")


class ImageOnlyQwen2_5_VLProcessor(Qwen2_5_VLProcessor):
    """Qwen2.5-VL's processor without a video processor (images and text only)."""

    def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
        super().__init__(image_processor, tokenizer, None, chat_template=chat_template, **kwargs)


class ImageOnlyQwen2VLProcessor(Qwen2VLProcessor):
    """Qwen2-VL's processor without a video processor (images and text only)."""

    def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
        super().__init__(image_processor, tokenizer, None, chat_template=chat_template, **kwargs)


def register_image_only_processors() -> None:
    """Make ``AutoProcessor`` resolve the image-only processors by name (idempotent).

    Registration maps the config class to the processor, so a Qwen2(.5)-VL folder that names no
    processor class also gets the image-only one; a folder naming the stock class is unaffected.
    """
    from transformers import AutoProcessor, Qwen2_5_VLConfig, Qwen2VLConfig

    AutoProcessor.register(Qwen2_5_VLConfig, ImageOnlyQwen2_5_VLProcessor, exist_ok=True)
    AutoProcessor.register(Qwen2VLConfig, ImageOnlyQwen2VLProcessor, exist_ok=True)


def load_processor(config: ModelConfig):
    """The checkpoint's multimodal processor; ``ValueError`` if it cannot process images."""
    from transformers import AutoProcessor

    register_image_only_processors()
    path = config.name_or_path
    try:
        processor = AutoProcessor.from_pretrained(path, trust_remote_code=config.trust_remote_code)
    except OSError as exc:
        if "video processor" not in str(exc):
            raise
        raise ValueError(
            f"{path}: the stock processor needs a video processor, and video processors need "
            "torchvision, which is not installed. Fix: install torchvision, or set "
            '"processor_class": "ImageOnlyQwen2_5_VLProcessor" (or "ImageOnlyQwen2VLProcessor") '
            "in the folder's processor_config.json to use critics' image-only processor."
        ) from exc
    check_processor(processor, path)
    tokenizer = processor.tokenizer
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    return processor


def check_processor(processor, path: str) -> None:
    """Raise ``ValueError`` unless ``processor`` carries an image processor and a tokenizer."""
    if getattr(processor, "image_processor", None) is None or getattr(processor, "tokenizer", None) is None:
        raise ValueError(
            f"{path}: AutoProcessor returned a {type(processor).__name__} with no image processor, "
            "so images would be dropped without a word. Cause: the folder's processor class is not "
            "registered with AutoProcessor (AutoProcessor then falls back to the bare tokenizer). "
            "Fix: call AutoProcessor.register(<config class>, <processor class>) before loading, or "
            'for Qwen2(.5)-VL set "processor_class" to "ImageOnlyQwen2_5_VLProcessor" / '
            '"ImageOnlyQwen2VLProcessor" in processor_config.json.'
        )


def vision_tower(model) -> tuple[str, object]:
    """``(qualified name, module)`` of the model's vision encoder: the shallowest module named
    ``visual``, ``vision_tower`` or ``vision_model`` (``model.visual``, ``model.model.visual``, ...).
    """
    found = [(name, module) for name, module in model.named_modules() if name.rsplit(".", 1)[-1] in VISION_TOWER_NAMES]
    if not found:
        raise ValueError(f"{type(model).__name__} has no module named one of {VISION_TOWER_NAMES}")
    return min(found, key=lambda item: item[0].count("."))


def load_vlm(config: ModelConfig, freeze_vision: bool = False, apply_lora: bool = True):
    """``(model, processor)`` for an image-text-to-text model on the configured device.

    Args:
        config: which checkpoint, dtype, device and LoRA settings.
        freeze_vision: stop gradients through the vision tower (``requires_grad=False``).
        apply_lora: wrap with peft when ``lora.r > 0``; LoRA targets the language model's
            projections only (the vision tower's ``gate_proj``/``up_proj``/... are left alone).
    """
    from transformers import AutoModelForImageTextToText

    if not config.name_or_path:
        raise ValueError("model.name_or_path is empty: give a local checkpoint folder or a hub name")
    processor = load_processor(config)
    model = AutoModelForImageTextToText.from_pretrained(config.name_or_path, **_model_kwargs(config))
    if model.generation_config.pad_token_id is None:
        model.generation_config.pad_token_id = processor.tokenizer.pad_token_id
    tower_name, tower = vision_tower(model)
    if freeze_vision:
        tower.requires_grad_(False)
    if apply_lora:
        model = _with_language_lora(model, config, tower_name)
    return _place(model, config), processor


def vlm_lora_config(config: ModelConfig, tower_name: str):
    """``lora_config(config)`` restricted to modules outside the vision tower (None when r is 0)."""
    import re

    peft_config = lora_config(config, "CAUSAL_LM")
    if peft_config is None:
        return None
    names = "|".join(re.escape(m) for m in config.lora.target_modules)
    # peft full-matches a string against every module name; the lookahead skips the tower
    peft_config.target_modules = rf"^(?!{re.escape(tower_name)}\.).*\.({names})$"
    return peft_config


def _with_language_lora(model, config: ModelConfig, tower_name: str):
    peft_config = vlm_lora_config(config, tower_name)
    if peft_config is None:
        return model
    from peft import get_peft_model

    return get_peft_model(model, peft_config)


def has_images(dataset) -> bool:
    """Whether any row of ``dataset`` carries a non-empty ``images`` list."""
    return "images" in dataset.column_names and any(dataset["images"])


def load_images(dataset):
    """``dataset`` with its ``images`` column of paths decoded to PIL images on access (TRL's
    GRPOTrainer reads a list of images per row from ``images``); a missing file fails on first read."""
    import datasets

    return dataset.cast_column("images", datasets.List(datasets.Image()))


def decode_data_url(url: str):
    """A base64 ``data:image/...`` URL as an RGB ``PIL.Image``; ``ValueError`` for anything else.

    The server accepts images only inline: it never fetches a URL or reads a path a client names.

    >>> decode_data_url("https://example.com/cat.png")
    Traceback (most recent call last):
    ...
    ValueError: images must be base64 data URLs (data:image/png;base64,...); the server fetches no URL and reads no path
    """
    import base64
    import binascii
    import io

    from PIL import Image, UnidentifiedImageError

    header, sep, payload = url.partition(",") if isinstance(url, str) else ("", "", "")
    if not (sep and header.startswith("data:image/") and header.endswith(";base64")):
        raise ValueError(
            "images must be base64 data URLs (data:image/png;base64,...); the server fetches no URL and reads no path"
        )
    try:
        image = Image.open(io.BytesIO(base64.b64decode(payload, validate=True)))
        image.load()
    except (binascii.Error, UnidentifiedImageError, OSError) as exc:
        raise ValueError(f"not a readable image: {exc}") from None
    return image.convert("RGB")


def attach_images(messages: list[dict], images: list) -> list[dict]:
    """Fill the ``{"type": "image"}`` placeholders of rendered messages with ``images`` (PIL images, or
    local paths, opened here: in-process callers only), in order."""
    from PIL import Image

    pending = iter(Image.open(i).convert("RGB") if isinstance(i, str) else i for i in images)
    out = []
    for message in messages:
        content = message["content"]
        if isinstance(content, list):
            content = [
                {"type": "image", "image": next(pending)} if part.get("type") == "image" else part for part in content
            ]
        out.append({**message, "content": content})
    return out


def conversation_images(conversation: list[dict]) -> list:
    """The images of a conversation's messages, in order."""
    return [
        part["image"]
        for message in conversation
        if isinstance(message.get("content"), list)
        for part in message["content"]
        if part.get("type") == "image"
    ]
