"""The one chat-model class tree: what answers a conversation, in this process or behind an endpoint.

``ChatModel.generate(conversations, max_new_tokens=, temperature=, n=)`` is all a critic, an actor
or a teacher needs; ``LocalChatModel`` also scores (candidate verdicts' probabilities for soft
scores, and scalar models' outputs). Three kinds, registered by the name configs use:

| name | what | token counts |
|---|---|---|
| ``transformers`` | a ``LoadedModel`` in this process (``critics.judging.generation``) | its tokenizer |
| ``openai`` | any OpenAI-compatible endpoint (vLLM, SGLang, ``critics serve``, a hosted judge) | estimated |
| ``vllm`` | vLLM's offline engine (``pip install critic-suite[gpu]``) | its tokenizer |
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from critics.judging.budget import CharCounter, TokenizerCounter
from critics.judging.generation import Conversation, LoadedModel, generate, load_model
from critics.models import ModelConfig
from data_pipelines.registry import Registry

CHAT_MODELS: Registry[type] = Registry("backend")


class ChatModel:
    """The interface. Subclasses implement ``generate`` at least."""

    name = "chat model"
    kind = "causal"  # or "scalar": scores, writes nothing
    supports_images = False
    supports_soft = False
    supports_think_budget = False  # can force a thinking budget mid-generation (``generate(think_budget=)``)
    tokenizer: Any = None
    context_tokens: int | None = None

    def generate(
        self, conversations: Sequence[Conversation], *, max_new_tokens: int, temperature: float, n: int = 1
    ) -> list[str]:
        """``n`` completions per conversation, a conversation's side by side. Backends that can force a
        thinking budget (``transformers``) also take ``think_budget`` (``critics.judging.generation``)."""
        raise NotImplementedError

    def counter(self):
        """What counts and cuts prompt tokens: the tokenizer, or an estimate without one."""
        return TokenizerCounter(self.tokenizer) if self.tokenizer is not None else CharCounter()

    def measure(self, conversation: Conversation, generation_prompt: bool = True) -> int:
        """Prompt tokens of a conversation (estimated without a tokenizer; images not counted)."""
        texts = [
            m["content"]
            if isinstance(m.get("content"), str)
            else "".join(p.get("text", "") for p in m.get("content") or [] if isinstance(p, dict))
            for m in conversation
        ]
        return CharCounter().count("\n".join(texts)) + 4 * len(conversation)

    def choice_logprobs(
        self, conversations: Sequence[Conversation], prefixes: Sequence[str], choices: Sequence[tuple[str, str]]
    ) -> list[tuple[float, float]]:
        """Log-probabilities of each of two continuations after ``prompt + prefix``."""
        raise NotImplementedError(f"the {self.name} backend cannot score continuations")

    def scalar_scores(self, conversations: Sequence[Conversation]) -> list[float]:
        """A scalar reward model's scores of whole conversations."""
        raise NotImplementedError(f"the {self.name} backend serves no scalar model")

    def reference_scores(self, rows: Sequence[dict[str, Any]], layout: str, budgets) -> list[float]:
        """A POLAR model's scores of ``{"question", "reference", "response"}`` rows."""
        raise NotImplementedError(f"the {self.name} backend serves no POLAR model")

    def close(self) -> None:
        """Release what the model holds (threads, clients)."""


def make_chat_model(name: str, path_or_name: Any, **options) -> ChatModel:
    """The chat model registered as ``name`` for a checkpoint, hub name or served model name.

    >>> make_chat_model("transformer", "x")
    Traceback (most recent call last):
    ...
    KeyError: "unknown backend 'transformer' (did you mean 'transformers'?)"
    """
    return CHAT_MODELS.get(name)(path_or_name, **options)


@CHAT_MODELS.register("transformers")
class LocalChatModel(ChatModel):
    """A ``LoadedModel`` in this process (a path or hub name is loaded; ``kind`` forces what it is)."""

    name = "transformers"
    supports_think_budget = True

    def __init__(
        self,
        model: str | LoadedModel,
        *,
        device: str = "auto",
        dtype: str = "auto",
        trust_remote_code: bool = False,
        kind: str | None = None,
        batch_size: int = 64,
    ):
        if not isinstance(model, LoadedModel):
            config = ModelConfig(name_or_path=model, device=device, dtype=dtype, trust_remote_code=trust_remote_code)
            model = load_model(config, kind=kind)
        self.lm, self.batch_size = model, batch_size
        self.kind = "scalar" if model.kind == "scalar" else "causal"
        self.supports_images, self.supports_soft = model.vision, model.kind == "causal"
        self.tokenizer, self.context_tokens = model.tokenizer, model.context_tokens

    def generate(self, conversations, *, max_new_tokens, temperature, n=1, think_budget=None):
        return generate(
            self.lm,
            list(conversations),
            max_new_tokens=max_new_tokens,
            temperature=temperature,
            n=n,
            batch_size=self.batch_size,
            think_budget=think_budget,
        )

    def measure(self, conversation, generation_prompt=True):
        if self.lm.vision:  # image parts count at their most, filled or placeholders
            images = sum(
                1
                for m in conversation
                if isinstance(m.get("content"), list)
                for part in m["content"]
                if part.get("type") == "image"
            )
            return self.lm.count_tokens(self.lm.prompt_text(conversation)) + _image_tokens(self.lm.processor) * images
        text = self.tokenizer.apply_chat_template(conversation, add_generation_prompt=generation_prompt, tokenize=False)
        return self.lm.count_tokens(text)

    def choice_logprobs(self, conversations, prefixes, choices):
        import torch

        tok, model = self.tokenizer, self.lm.model
        prompts = [self.lm.prompt_text(c) + prefix for c, prefix in zip(conversations, prefixes)]
        texts, spans = [], []
        for prompt, pair in zip(prompts, choices):
            base = tok(prompt, add_special_tokens=False)["input_ids"]
            for choice in pair:
                ids = tok(prompt + choice + "}", add_special_tokens=False)["input_ids"]
                shared = next((k for k, (a, b) in enumerate(zip(base, ids)) if a != b), min(len(base), len(ids)))
                texts.append(ids)
                spans.append(max(shared, 1))
        width, pad = max(len(ids) for ids in texts), tok.pad_token_id
        input_ids = torch.tensor([ids + [pad] * (width - len(ids)) for ids in texts], device=model.device)
        mask = torch.tensor([[1] * len(ids) + [0] * (width - len(ids)) for ids in texts], device=model.device)
        with torch.inference_mode():
            logprobs = model(input_ids=input_ids, attention_mask=mask).logits.float().log_softmax(-1)
        sums = []
        for row, (ids, start) in enumerate(zip(texts, spans)):
            positions = torch.arange(start, len(ids), device=logprobs.device)
            sums.append(float(logprobs[row, positions - 1, input_ids[row, start : len(ids)]].sum()))
        return [(sums[2 * i], sums[2 * i + 1]) for i in range(len(prompts))]

    def scalar_scores(self, conversations):
        import torch

        self.tokenizer.padding_side = "left"
        texts = [self.tokenizer.apply_chat_template(c, tokenize=False) for c in conversations]
        encoded = self.tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        with torch.inference_mode():
            out = self.lm.model(**encoded.to(self.lm.model.device))
        values = out[0] if isinstance(out, (tuple, list)) else out.logits
        return [float(x) for x in values.reshape(len(texts), -1)[:, 0].float()]

    def reference_scores(self, rows, layout, budgets):
        from critics.judging.polar import polar_scores

        return polar_scores(
            self.lm.model, self.tokenizer, rows, budgets, batch_size=max(len(rows), 1), layout_name=layout
        )


def _image_tokens(processor) -> int:
    """At most how many tokens one image becomes, where the processor says (Qwen2-VL's pixel bound)."""
    image = getattr(processor, "image_processor", None)
    pixels = getattr(image, "max_pixels", None) or (getattr(image, "size", None) or {}).get("longest_edge")
    patch, merge = getattr(image, "patch_size", None), getattr(image, "merge_size", None)
    if isinstance(pixels, int) and isinstance(patch, int) and isinstance(merge, int):
        return pixels // (patch * merge) ** 2
    return 0


@CHAT_MODELS.register("openai")
class OpenAIChatModel(ChatModel):
    """Any OpenAI-compatible chat endpoint; ``n`` samples per request, requests sent concurrently."""

    name = "openai"

    def __init__(
        self,
        model: str,
        *,
        base_url: str,
        api_key: str | None = None,
        timeout: float = 120.0,
        max_retries: int = 2,
        concurrency: int = 32,
    ):
        from openai import OpenAI

        self.model = model
        self.client = OpenAI(base_url=base_url, api_key=api_key or "EMPTY", timeout=timeout, max_retries=max_retries)
        self.pool = ThreadPoolExecutor(concurrency, thread_name_prefix="openai-chat")

    def _one(self, conversation: Conversation, max_new_tokens: int, temperature: float, n: int) -> list[str]:
        response = self.client.chat.completions.create(
            model=self.model, messages=conversation, n=n, max_tokens=max_new_tokens, temperature=temperature
        )
        texts = [c.message.content or "" for c in sorted(response.choices, key=lambda c: c.index)]
        if len(texts) != n:
            raise RuntimeError(f"{self.model} at {self.client.base_url} returned {len(texts)} choices for n={n}")
        return texts

    def generate(self, conversations, *, max_new_tokens, temperature, n=1):
        answers = self.pool.map(lambda c: self._one(c, max_new_tokens, temperature, n), conversations)
        return [text for texts in answers for text in texts]

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.client.close()


@CHAT_MODELS.register("vllm")
class VLLMChatModel(ChatModel):
    """vLLM's offline engine (``pip install critic-suite[gpu]``); chat prompts batched by vLLM itself."""

    name = "vllm"

    def __init__(self, path_or_name: str, **llm_options):
        try:
            from vllm import LLM, SamplingParams
        except ImportError as error:
            raise ImportError("the vllm backend needs vLLM: pip install 'critic-suite[gpu]' (CUDA only)") from error
        self.llm, self.sampling = LLM(model=path_or_name, **llm_options), SamplingParams
        self.tokenizer = self.llm.get_tokenizer()
        self.context_tokens = getattr(self.llm.llm_engine.model_config, "max_model_len", None)

    def generate(self, conversations, *, max_new_tokens, temperature, n=1):
        params = self.sampling(max_tokens=max_new_tokens, temperature=temperature, n=n)
        outputs = self.llm.chat(list(conversations), params, use_tqdm=False)
        return [choice.text for out in outputs for choice in out.outputs]

    def measure(self, conversation, generation_prompt=True):
        text = self.tokenizer.apply_chat_template(conversation, add_generation_prompt=generation_prompt, tokenize=False)
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])
