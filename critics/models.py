"""Load causal LMs and sequence classifiers from a local path or a hub name, with optional LoRA.

Device and precision are chosen once, here, so one config runs on a laptop and on a GPU node:
on CUDA, bf16 where the card supports it; on a CPU, fp32 and TRL's ``use_cpu``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Dtype = Literal["auto", "bfloat16", "float16", "float32"]


@dataclass
class LoraSettings:
    """LoRA through peft; ``r: 0`` (the default) trains every weight instead."""

    r: int = 0
    alpha: int = 32
    dropout: float = 0.05
    target_modules: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])


@dataclass
class ModelConfig:
    """Which model to load and how.

    Args:
        name_or_path: a local checkpoint folder or a Hugging Face hub name.
        dtype: ``auto`` picks bf16 on CUDA (fp16 on cards without bf16) and fp32 on a CPU.
        device: ``auto`` uses CUDA when available.
        lora: LoRA settings; ``lora.r > 0`` turns it on.
        attn_implementation: passed to transformers (e.g. ``sdpa``, ``flash_attention_2``).
        trust_remote_code: allow code shipped with a hub model.
        freeze_vision: vision-language models only: keep the vision tower's weights fixed.
    """

    name_or_path: str = ""
    dtype: Dtype = "auto"
    device: Literal["auto", "cpu", "cuda"] = "auto"
    lora: LoraSettings = field(default_factory=LoraSettings)
    attn_implementation: str | None = None
    trust_remote_code: bool = False
    freeze_vision: bool = False


def use_cuda(config: ModelConfig) -> bool:
    """Whether this config trains and generates on CUDA."""
    import torch

    if config.device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("model.device is 'cuda' but no CUDA device is available")
    return config.device != "cpu" and torch.cuda.is_available()


def torch_dtype(config: ModelConfig):
    """The torch dtype to load weights in."""
    import torch

    if config.dtype != "auto":
        return getattr(torch, config.dtype)
    if use_cuda(config):
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float32


def precision_args(config: ModelConfig) -> dict[str, Any]:
    """TrainingArguments flags matching the device: ``use_cpu`` on a CPU, bf16/fp16 on CUDA."""
    import torch

    if not use_cuda(config):
        return {"use_cpu": True, "bf16": False, "fp16": False}
    dtype = torch_dtype(config)
    return {"use_cpu": False, "bf16": dtype == torch.bfloat16, "fp16": dtype == torch.float16}


def load_tokenizer(config: ModelConfig):
    """The checkpoint's tokenizer, with a pad token and left padding for generation."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(config.name_or_path, trust_remote_code=config.trust_remote_code)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    return tokenizer


def _model_kwargs(config: ModelConfig) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"dtype": torch_dtype(config), "trust_remote_code": config.trust_remote_code}
    if config.attn_implementation:
        kwargs["attn_implementation"] = config.attn_implementation
    return kwargs


def load_causal_lm(config: ModelConfig, apply_lora: bool = True):
    """``(model, tokenizer)`` for a causal LM on the configured device.

    With ``apply_lora`` (and ``lora.r > 0``) the model comes back wrapped by peft; trainers that
    wrap it themselves take ``apply_lora=False`` plus ``lora_config(config)``.
    """
    from transformers import AutoModelForCausalLM

    if not config.name_or_path:
        raise ValueError("model.name_or_path is empty: give a local checkpoint folder or a hub name")
    if config.freeze_vision:
        raise ValueError(
            "model.freeze_vision applies to vision-language models, which this recipe does not load (critic_rl does)"
        )
    tokenizer = load_tokenizer(config)
    model = AutoModelForCausalLM.from_pretrained(config.name_or_path, **_model_kwargs(config))
    if model.generation_config.pad_token_id is None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id
    if apply_lora:
        model = _with_lora(model, config, "CAUSAL_LM")
    return _place(model, config), tokenizer


def load_sequence_classifier(config: ModelConfig, num_labels: int = 1, apply_lora: bool = True):
    """``(model, tokenizer)`` for a scalar (``num_labels=1``) or multi-label sequence classifier.

    A checkpoint whose remote code registers a reward model with ``AutoModel`` only (the released
    InternLM POLAR models: ``InternLM2ForRewardModel``, with ``trust_remote_code``) loads through
    ``AutoModel``; its first output is the score."""
    from transformers import AutoConfig, AutoModel, AutoModelForSequenceClassification

    tokenizer = load_tokenizer(config)
    model_config = AutoConfig.from_pretrained(config.name_or_path, trust_remote_code=config.trust_remote_code)
    auto_map = getattr(model_config, "auto_map", None) or {}
    remote_reward = "AutoModel" in auto_map and "AutoModelForSequenceClassification" not in auto_map
    if remote_reward:
        model = AutoModel.from_pretrained(config.name_or_path, **_model_kwargs(config))
    else:
        model = AutoModelForSequenceClassification.from_pretrained(
            config.name_or_path, num_labels=num_labels, **_model_kwargs(config)
        )
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    return _place(_with_lora(model, config, "SEQ_CLS") if apply_lora else model, config), tokenizer


def lora_config(config: ModelConfig, task_type: str = "CAUSAL_LM"):
    """A ``peft.LoraConfig`` when ``lora.r > 0``, else None (pass it to TRL as ``peft_config``)."""
    if config.lora.r <= 0:
        return None
    from peft import LoraConfig

    return LoraConfig(
        r=config.lora.r,
        lora_alpha=config.lora.alpha,
        lora_dropout=config.lora.dropout,
        target_modules=list(config.lora.target_modules),
        task_type=task_type,
    )


def _with_lora(model, config: ModelConfig, task_type: str):
    peft_config = lora_config(config, task_type)
    if peft_config is None:
        return model
    from peft import get_peft_model

    return get_peft_model(model, peft_config)


def _place(model, config: ModelConfig):
    return model.to("cuda" if use_cuda(config) else "cpu")
