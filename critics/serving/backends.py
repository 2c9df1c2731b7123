"""What runs a critic's model: ``transformers`` in process, ``vllm`` where installed, or any
OpenAI-compatible endpoint. Each backend turns chat conversations into completions; the
``transformers`` backend also scores candidate continuations (soft verdicts) and serves scalar
sequence-classification checkpoints.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from data_pipelines.registry import Registry

BACKENDS: Registry[type] = Registry("backend")
Conversation = list[dict[str, Any]]


class Backend:
    """The interface a ``Critic`` drives. Subclasses implement ``generate`` at least."""

    name = "backend"
    supports_soft = False
    supports_images = False
    is_scalar = False
    polar = None  # a POLAR checkpoint's token budgets (``critics.polar``): it scores candidates against references

    def generate(self, conversations: Sequence[Conversation], *, max_new_tokens: int,
                 temperature: float) -> list[str]:
        raise NotImplementedError

    def choice_logprobs(self, conversations: Sequence[Conversation], prefixes: Sequence[str],
                        choices: Sequence[tuple[str, str]]) -> list[tuple[float, float]]:
        """Log-probabilities of each of two continuations after ``prompt + prefix``."""
        raise NotImplementedError(f"the {self.name} backend cannot score continuations")

    def scalar_scores(self, conversations: Sequence[Conversation]) -> list[float]:
        raise NotImplementedError(f"the {self.name} backend serves no scalar model")

    def polar_scores(self, rows: Sequence[dict[str, Any]]) -> list[float]:
        """POLAR rewards of ``{"question", "reference", "response"}`` rows."""
        raise NotImplementedError(f"the {self.name} backend serves no POLAR model")

    def close(self) -> None:
        """Release what the backend holds (threads, clients)."""


def make_backend(name: str, path_or_name: str, **options) -> Backend:
    """Build the backend registered as ``name`` for a checkpoint or model name."""
    return BACKENDS.get(name)(path_or_name, **options)


@BACKENDS.register("transformers")
class TransformersBackend(Backend):
    """A checkpoint loaded in this process: a causal LM, or a sequence classifier (scalar scores)."""

    name = "transformers"
    supports_soft = True

    def __init__(self, path_or_name: str, *, device: str = "auto", dtype: str = "auto", model=None, tokenizer=None,
                 trust_remote_code: bool = False):
        import torch

        from critics.models import ModelConfig, load_causal_lm, load_sequence_classifier

        config = ModelConfig(name_or_path=path_or_name, device=device, dtype=dtype, trust_remote_code=trust_remote_code)
        self.processor = None
        if model is None and _is_vision_language(path_or_name, trust_remote_code):
            from critics.vlm import load_vlm

            model, self.processor = load_vlm(config, apply_lora=False)
            tokenizer, self.supports_images, self.supports_soft = self.processor.tokenizer, True, False
        if model is None:
            self.is_scalar = _is_classifier(path_or_name, trust_remote_code)
            load = load_sequence_classifier if self.is_scalar else load_causal_lm
            model, tokenizer = load(config) if self.is_scalar else load(config, apply_lora=False)
        else:
            self.is_scalar = model.config.architectures is not None and any(
                a.endswith("ForSequenceClassification") for a in model.config.architectures)
        self.model, self.tokenizer = model.eval(), tokenizer
        self.torch = torch
        from critics.polar import load_polar_config

        self.polar = load_polar_config(path_or_name) if self.is_scalar else None

    def _encode(self, texts: Sequence[str], padding_side: str = "left"):
        self.tokenizer.padding_side = padding_side
        return self.tokenizer(list(texts), return_tensors="pt", padding=True,
                              add_special_tokens=False).to(self.model.device)

    def _prompt_texts(self, conversations: Sequence[Conversation]) -> list[str]:
        return [self.tokenizer.apply_chat_template(c, add_generation_prompt=True, tokenize=False)
                for c in conversations]

    def generate(self, conversations, *, max_new_tokens, temperature):
        if self.processor is not None:
            from critics.vlm import vlm_generate

            return vlm_generate(self.model, self.processor, list(conversations), max_new_tokens=max_new_tokens,
                                temperature=temperature)
        encoded = self._encode(self._prompt_texts(conversations))
        sampling = {"do_sample": True, "temperature": temperature} if temperature > 0 else {"do_sample": False}
        with self.torch.inference_mode():
            out = self.model.generate(**encoded, max_new_tokens=max_new_tokens, **sampling)
        return self.tokenizer.batch_decode(out[:, encoded["input_ids"].shape[1]:], skip_special_tokens=True)

    def choice_logprobs(self, conversations, prefixes, choices):
        prompts = [p + prefix for p, prefix in zip(self._prompt_texts(conversations), prefixes)]
        texts, spans = [], []
        for prompt, pair in zip(prompts, choices):
            base = self.tokenizer(prompt, add_special_tokens=False)["input_ids"]
            for choice in pair:
                ids = self.tokenizer(prompt + choice + "}", add_special_tokens=False)["input_ids"]
                shared = next((k for k, (a, b) in enumerate(zip(base, ids)) if a != b), min(len(base), len(ids)))
                texts.append(ids)
                spans.append(max(shared, 1))
        width = max(len(ids) for ids in texts)
        pad = self.tokenizer.pad_token_id
        input_ids = self.torch.tensor([ids + [pad] * (width - len(ids)) for ids in texts], device=self.model.device)
        mask = self.torch.tensor([[1] * len(ids) + [0] * (width - len(ids)) for ids in texts], device=self.model.device)
        with self.torch.inference_mode():
            logits = self.model(input_ids=input_ids, attention_mask=mask).logits.float()
        logprobs = logits.log_softmax(-1)
        sums = []
        for row, (ids, start) in enumerate(zip(texts, spans)):
            positions = self.torch.arange(start, len(ids), device=logits.device)
            targets = input_ids[row, start:len(ids)]
            sums.append(float(logprobs[row, positions - 1, targets].sum()))
        return [(sums[2 * i], sums[2 * i + 1]) for i in range(len(prompts))]

    def scalar_scores(self, conversations):
        texts = [self.tokenizer.apply_chat_template(c, tokenize=False) for c in conversations]
        encoded = self._encode(texts)
        with self.torch.inference_mode():
            logits = self.model(**encoded).logits
        return [float(x) for x in logits[:, 0].float()]


    def polar_scores(self, rows):
        from critics.polar import polar_scores

        return polar_scores(self.model, self.tokenizer, rows, self.polar, batch_size=max(len(rows), 1))


def _is_vision_language(path_or_name: str, trust_remote_code: bool) -> bool:
    from transformers import AutoConfig

    return getattr(AutoConfig.from_pretrained(path_or_name, trust_remote_code=trust_remote_code),
                   "vision_config", None) is not None


def _is_classifier(path_or_name: str, trust_remote_code: bool) -> bool:
    from transformers import AutoConfig

    architectures = AutoConfig.from_pretrained(path_or_name, trust_remote_code=trust_remote_code).architectures or []
    return any(a.endswith("ForSequenceClassification") for a in architectures)


@BACKENDS.register("openai")
class OpenAIBackend(Backend):
    """Any OpenAI-compatible chat endpoint; requests of a batch go out concurrently."""

    name = "openai"

    def __init__(self, model: str, *, base_url: str, api_key: str | None = None, timeout: float = 60.0,
                 max_retries: int = 2, concurrency: int = 32):
        from openai import OpenAI

        self.model = model
        self.client = OpenAI(base_url=base_url, api_key=api_key or "EMPTY", timeout=timeout, max_retries=max_retries)
        self.pool = ThreadPoolExecutor(concurrency, thread_name_prefix="openai-critic")

    def _one(self, conversation: Conversation, max_new_tokens: int, temperature: float) -> str:
        response = self.client.chat.completions.create(model=self.model, messages=conversation,
                                                       max_tokens=max_new_tokens, temperature=temperature)
        return response.choices[0].message.content or ""

    def generate(self, conversations, *, max_new_tokens, temperature):
        return list(self.pool.map(lambda c: self._one(c, max_new_tokens, temperature), conversations))

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.client.close()


@BACKENDS.register("vllm")
class VLLMBackend(Backend):
    """vLLM's offline engine (``pip install critic-suite[gpu]``); chat prompts batched by vLLM itself."""

    name = "vllm"

    def __init__(self, path_or_name: str, **llm_options):
        try:
            from vllm import LLM, SamplingParams
        except ImportError as error:
            raise ImportError("the vllm backend needs vLLM: pip install 'critic-suite[gpu]' (CUDA only)") from error
        self.llm, self.sampling = LLM(model=path_or_name, **llm_options), SamplingParams

    def generate(self, conversations, *, max_new_tokens, temperature):
        params = self.sampling(max_tokens=max_new_tokens, temperature=temperature)
        return [out.outputs[0].text for out in self.llm.chat(list(conversations), params, use_tqdm=False)]
