"""The one local generation engine, and the loaded-model object it runs.

``LoadedModel`` is a model with its tokenizer (and, for a vision-language model, its processor) and
its kind, decided once, when it is loaded (``load_model``): ``causal`` (a chat LM), ``vision`` (an
image-text-to-text model) or ``scalar`` (a sequence classifier or a remote-code reward model).
``generate`` completes chat conversations with it, for the serving backends, the actors, held-out
evaluation and every recipe:

- batched, longest prompts first, so a batch pads to similar lengths (results come back in order);
- vision-aware: image parts of a conversation (``{"type": "image", "image": PIL}``) go through the
  processor with the text;
- greedy at temperature 0 (one generation serves all ``n`` samples), sampled otherwise
  (``num_return_sequences``: the prompt is encoded once for its ``n`` samples);
- on CUDA, a static KV cache (``cache="auto"``): 5,942 -> 22,285 sampled tokens/s at batch 128 for a
  360M model on an H200 (``../shared/STACK.md``); prompts are left-padded to a multiple of 64
  tokens there so that few shapes are compiled. On a CPU the default dynamic cache is kept.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from critics.models import ModelConfig, load_causal_lm, load_sequence_classifier

Kind = Literal["causal", "vision", "scalar"]
Conversation = list[dict[str, Any]]
PAD_MULTIPLE = 64  # prompt lengths are padded to a multiple of this under a static cache (fewer compiled shapes)


@dataclass
class LoadedModel:
    """A model and what it needs to run: its tokenizer, its processor (vision), its kind, its name."""

    model: Any
    tokenizer: Any
    kind: Kind = "causal"
    processor: Any = None
    name: str = ""

    @property
    def vision(self) -> bool:
        return self.kind == "vision"

    @property
    def processing_class(self) -> Any:
        """What TRL's trainers take as ``processing_class``: the processor of a vision model, else the tokenizer."""
        return self.processor if self.processor is not None else self.tokenizer

    @property
    def context_tokens(self) -> int | None:
        """The model's context length (``max_position_embeddings`` of its text model), if it says."""
        config = getattr(self.model, "config", None)
        text = getattr(config, "text_config", None) or config
        value = getattr(text, "max_position_embeddings", None)
        return int(value) if isinstance(value, int) and value > 0 else None

    def with_model(self, model: Any) -> LoadedModel:
        """The same loaded model with other weights (a trainer's wrapped or updated model)."""
        return dataclasses.replace(self, model=model)

    def prompt_text(self, conversation: Conversation) -> str:
        """The conversation through the chat template, ready for the assistant's turn."""
        template = self.processor if self.vision else self.tokenizer
        return template.apply_chat_template(conversation, add_generation_prompt=True, tokenize=False)

    def count_tokens(self, text: str) -> int:
        """Tokens of ``text`` (no special tokens added)."""
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])


def model_kind(path: str, trust_remote_code: bool = False) -> Kind:
    """What a checkpoint is, from its config: ``vision`` (a ``vision_config``), ``scalar`` (a
    ``*ForSequenceClassification`` or ``*RewardModel`` architecture) or ``causal``."""
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code)
    if getattr(config, "vision_config", None) is not None:
        return "vision"
    architectures = config.architectures or []
    if any(a.endswith(("ForSequenceClassification", "RewardModel")) for a in architectures):
        return "scalar"
    return "causal"


def load_model(
    config: ModelConfig,
    *,
    kind: Kind | None = None,
    apply_lora: bool = False,
    freeze_vision: bool = False,
    num_labels: int = 1,
) -> LoadedModel:
    """Load a checkpoint once, as what it is (``model_kind``) unless ``kind`` says.

    Args:
        config: which checkpoint, dtype, device, LoRA.
        kind: force ``causal``, ``vision`` or ``scalar`` (e.g. a base LM to be trained as a scalar model).
        apply_lora: wrap with peft when ``lora.r > 0`` (trainers that wrap it themselves pass False).
        freeze_vision: keep a vision tower's weights fixed.
        num_labels: labels of a scalar head.
    """
    if not config.name_or_path:
        raise ValueError("model.name_or_path is empty: give a local checkpoint folder or a hub name")
    kind = kind or model_kind(config.name_or_path, config.trust_remote_code)
    if kind != "vision" and (freeze_vision or config.freeze_vision):
        raise ValueError(f"model.freeze_vision applies to vision-language models; {config.name_or_path} is {kind}")
    name = config.name_or_path
    if kind == "vision":
        from critics.vlm import load_vlm

        model, processor = load_vlm(config, freeze_vision=freeze_vision or config.freeze_vision, apply_lora=apply_lora)
        return LoadedModel(model, processor.tokenizer, "vision", processor, name)
    if kind == "scalar":
        model, tokenizer = load_sequence_classifier(config, num_labels=num_labels, apply_lora=apply_lora)
        return LoadedModel(model.eval(), tokenizer, "scalar", None, name)
    model, tokenizer = load_causal_lm(config, apply_lora=apply_lora)
    return LoadedModel(model, tokenizer, "causal", None, name)


def generate(
    lm: LoadedModel,
    conversations: Sequence[Conversation],
    *,
    max_new_tokens: int,
    temperature: float = 0.0,
    n: int = 1,
    batch_size: int = 64,
    progress: bool = False,
    cache: Literal["auto", "dynamic", "static"] = "auto",
) -> list[str]:
    """Complete chat conversations; returns ``n`` texts per conversation, in order (a conversation's
    samples side by side). The model's training mode is restored afterwards.

    Args:
        lm: the loaded model (``causal`` or ``vision``).
        conversations: chat messages; a vision model's may hold image parts.
        max_new_tokens: the length limit of each completion.
        temperature: 0 is greedy (one generation, copied ``n`` times); above 0 samples.
        n: completions per conversation.
        batch_size: conversations per ``generate`` call (their samples ride along).
        progress: show a progress bar over the batches.
        cache: ``static`` KV cache, ``dynamic``, or ``auto`` (static on CUDA).
    """
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    if lm.kind == "scalar":
        raise ValueError(f"{lm.name or 'this model'} is a scalar model: it scores, it does not generate")
    from tqdm.auto import tqdm

    texts = [lm.prompt_text(c) for c in conversations]
    order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))  # longest first: similar lengths per batch
    samples = n if temperature > 0 else 1
    out: list[list[str]] = [[] for _ in texts]
    was_training = lm.model.training
    lm.model.eval()
    try:
        batches = range(0, len(order), batch_size)
        for start in tqdm(batches, desc="generate", disable=not progress, unit=" batch"):
            chunk = order[start : start + batch_size]
            results = _generate_batch(
                lm,
                [conversations[i] for i in chunk],
                [texts[i] for i in chunk],
                max_new_tokens,
                temperature,
                samples,
                cache,
            )
            for k, i in enumerate(chunk):
                found = results[k * samples : (k + 1) * samples]
                out[i] = found if samples == n else found * n
    finally:
        lm.model.train(was_training)
    return [text for texts_of_one in out for text in texts_of_one]


def _generate_batch(
    lm: LoadedModel, conversations, texts: list[str], max_new_tokens: int, temperature: float, samples: int, cache: str
) -> list[str]:
    import torch

    static = cache == "static" or (cache == "auto" and lm.model.device.type == "cuda")
    inputs = _encode(lm, conversations, texts, static).to(lm.model.device)
    options: dict[str, Any] = {"max_new_tokens": max_new_tokens, "num_return_sequences": samples}
    options.update({"do_sample": True, "temperature": temperature} if temperature > 0 else {"do_sample": False})
    if static:
        options["cache_implementation"] = "static"
    with torch.inference_mode():
        generated = lm.model.generate(**inputs, **options)
    return lm.tokenizer.batch_decode(generated[:, inputs["input_ids"].shape[1] :], skip_special_tokens=True)


def _encode(lm: LoadedModel, conversations, texts: list[str], static: bool):
    lm.tokenizer.padding_side = "left"
    pad_to = PAD_MULTIPLE if static else None
    if lm.vision:
        from critics.vlm import conversation_images

        images = [image for c in conversations for image in conversation_images(c)]
        return lm.processor(
            text=texts, images=images or None, return_tensors="pt", padding=True, pad_to_multiple_of=pad_to
        )
    return lm.tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False, pad_to_multiple_of=pad_to)
