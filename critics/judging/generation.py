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
  tokens there so that few shapes are compiled. On a CPU the default dynamic cache is kept;
- with a thinking budget (``think_budget``, J1's and s1's budget forcing): a ``</think>`` written
  before the budget is replaced by "Wait" and the thinking goes on; at the budget ``</think>`` is
  forced; the answer after it gets ``max_new_tokens - think_budget`` tokens (``think_within_budget``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from critics.models import ModelConfig, load_causal_lm, load_sequence_classifier

Kind = Literal["causal", "vision", "scalar"]
Conversation = list[dict[str, Any]]
PAD_MULTIPLE = 64  # prompt lengths are padded to a multiple of this under a static cache (fewer compiled shapes)
THINK_END = "</think>"
WAIT = "Wait"  # what replaces an early ``</think>`` (s1, J1)
MAX_WAITS = 16  # forced continuations per judgment at most: a model that closes at once cannot loop for ever


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
    think_budget: int | None = None,
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
        think_budget: thinking tokens (the text before ``</think>``): an earlier ``</think>`` becomes
            "Wait" and generation goes on, at the budget ``</think>`` is forced (``think_within_budget``);
            must be below ``max_new_tokens``. None: no budget.
    """
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    if lm.kind == "scalar":
        raise ValueError(f"{lm.name or 'this model'} is a scalar model: it scores, it does not generate")
    if think_budget is not None:
        return _generate_thinking(lm, conversations, max_new_tokens, temperature, n, batch_size, cache, think_budget)
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


Continue = Callable[[list[int], list[str], int, "str | None"], list[str]]


def think_within_budget(
    continue_: Continue,
    count: Callable[[str], int],
    items: int,
    budget: int,
    answer_tokens: int,
    max_waits: int = MAX_WAITS,
) -> list[str]:
    r"""Budget forcing (s1; J1's test-time scaling) over any text-continuation function.

    ``continue_(indices, partials, max_new_tokens, stop)`` continues item ``indices[j]``'s output
    ``partials[j]`` by at most ``max_new_tokens`` tokens, stopping after ``stop`` when given. Each item
    thinks until ``budget`` tokens (``count``): a ``</think>`` written earlier is replaced by "Wait"
    (at most ``max_waits`` times, then accepted) and the thinking continues, as does one that ended
    without closing; at the budget ``</think>`` is forced. Then each answer is generated, at most
    ``answer_tokens`` tokens. Returns each item's whole output.

    A model that closes early is made to go on, then cut at the budget (18 characters here):

    >>> script = iter(["<think>ok</think>", "sure.</think>", "\\boxed{2}"])
    >>> think_within_budget(lambda ids, texts, k, stop: [next(script)[:k]], len, items=1, budget=18, answer_tokens=9)
    ['<think>okWaitsure.</think>\\boxed{2}']
    """
    if budget < 1:
        raise ValueError(f"think_budget must be at least 1, got {budget}")
    partial, waits, thinking = [""] * items, [0] * items, set(range(items))
    while thinking:
        for i in [i for i in thinking if count(partial[i]) >= budget]:
            partial[i] += THINK_END
            thinking.discard(i)
        live = sorted(thinking)
        if not live:
            break
        step = min(budget - count(partial[i]) for i in live)
        for i, text in zip(live, continue_(live, [partial[i] for i in live], step, THINK_END)):
            closed = THINK_END in text
            head = partial[i] + (text[: text.index(THINK_END)] if closed else text)
            stopped = closed or count(text) < step  # closed, or ended (EOS) inside the think block
            if stopped and count(head) < budget and waits[i] < max_waits:
                partial[i], waits[i] = head + WAIT, waits[i] + 1
            elif stopped or count(head) >= budget:
                partial[i] = head + THINK_END
                thinking.discard(i)
            else:
                partial[i] = head
    answers = continue_(list(range(items)), partial, answer_tokens, None) if items else []
    return [p + a for p, a in zip(partial, answers)]


def _generate_thinking(
    lm: LoadedModel, conversations, max_new_tokens: int, temperature: float, n: int, batch_size: int, cache, budget: int
) -> list[str]:
    """``generate`` with a thinking budget: each of the ``n`` samples of a conversation is its own
    item (greedy: one, copied), continued in batches from the prompt plus what it wrote so far."""
    if budget >= max_new_tokens:
        raise ValueError(f"think_budget ({budget}) must be below max_new_tokens ({max_new_tokens})")
    samples = n if temperature > 0 else 1
    convs = [c for c in conversations for _ in range(samples)]
    prompts = [lm.prompt_text(c) for c in convs]

    def continue_(ids: list[int], partials: list[str], limit: int, stop: str | None) -> list[str]:
        out: list[str] = []
        for start in range(0, len(ids), batch_size):
            chunk = ids[start : start + batch_size]
            texts = [prompts[i] + p for i, p in zip(chunk, partials[start : start + batch_size])]
            out += _generate_batch(lm, [convs[i] for i in chunk], texts, limit, temperature, 1, cache, stop)
        return out

    was_training = lm.model.training
    lm.model.eval()
    try:
        found = think_within_budget(continue_, lm.count_tokens, len(convs), budget, max_new_tokens - budget)
    finally:
        lm.model.train(was_training)
    per = [found[i * samples : (i + 1) * samples] for i in range(len(conversations))]
    return [text for texts in per for text in (texts if samples == n else texts * n)]


def _generate_batch(
    lm: LoadedModel,
    conversations,
    texts: list[str],
    max_new_tokens: int,
    temperature: float,
    samples: int,
    cache: str,
    stop: str | None = None,
) -> list[str]:
    import torch

    static = cache == "static" or (cache == "auto" and lm.model.device.type == "cuda")
    inputs = _encode(lm, conversations, texts, static).to(lm.model.device)
    options: dict[str, Any] = {"max_new_tokens": max_new_tokens, "num_return_sequences": samples}
    options.update({"do_sample": True, "temperature": temperature} if temperature > 0 else {"do_sample": False})
    if static:
        options["cache_implementation"] = "static"
    if stop is not None:
        options.update(stop_strings=[stop], tokenizer=lm.tokenizer)
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
