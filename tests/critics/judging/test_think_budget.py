"""J1's thinking budget: an early ``</think>`` becomes "Wait" and thinking goes on until the budget;
at the budget ``</think>`` is forced; the answer follows within what ``max_new_tokens`` leaves."""

from __future__ import annotations

import pytest
import torch

from critics.config import ConfigError
from critics.judging.chat import LocalChatModel
from critics.judging.generation import THINK_END, WAIT, LoadedModel, generate, think_within_budget
from critics.judging.judge import judge
from critics.judging.spec import CriticSpec
from critics.tiny import build_model, build_tokenizer

ANSWER = "\\boxed{Correct}"


def scripted(thought: str):
    """A continuation function: thinks ``thought`` then closes, again after every "Wait"; answers ``ANSWER``."""
    calls = []

    def continue_(ids, partials, limit, stop):
        calls.append((list(ids), limit, stop))
        if stop is None:
            return [ANSWER[:limit] for _ in ids]
        opened = [p if p else "<think>" for p in partials]
        return [("<think>" if not p else "") + (thought + THINK_END)[: limit - (0 if p else 7)] for p in opened]

    return continue_, calls


def thinking(text: str) -> str:
    return text[: text.index(THINK_END)]


def test_an_early_close_becomes_wait_and_thinking_goes_on_to_the_budget():
    continue_, calls = scripted("ok")
    [out] = think_within_budget(continue_, len, items=1, budget=30, answer_tokens=20)
    assert out.count(THINK_END) == 1 and out.endswith(THINK_END + ANSWER)
    assert len(thinking(out)) == 30  # extended to the budget exactly, then cut
    assert thinking(out).count(WAIT) >= 3  # each early close was replaced
    assert calls[-1][2] is None and calls[-1][1] == 20  # the answer gets answer_tokens


def test_a_long_thought_is_cut_at_the_budget():
    continue_, _ = scripted("x" * 100)
    outs = think_within_budget(continue_, len, items=2, budget=12, answer_tokens=20)
    assert all(len(thinking(o)) == 12 and WAIT not in o and o.endswith(THINK_END + ANSWER) for o in outs)


def test_waits_are_bounded():
    continue_, calls = scripted("")
    [out] = think_within_budget(continue_, len, items=1, budget=1000, answer_tokens=5, max_waits=3)
    assert thinking(out).count(WAIT) == 3 and len(calls) == 5  # 4 thinking rounds, one answer


class ScriptedLM(torch.nn.Module):
    """A causal LM (behind ``LlamaForCausalLM.generate``) that writes, after the assistant turn opens:
    ``<think>``, then ``hm</think>`` after it and after every "Wait", then the answer and EOS."""

    def __init__(self, tokenizer):
        super().__init__()
        self.inner = build_model(tokenizer, hidden_size=32, num_layers=1)
        self.inner.generation_config.use_cache = False  # every step sees the whole text
        self.tokenizer = tokenizer
        self.inner.forward = self.forward_scripted

    def next_text(self, written: str) -> str | None:
        if THINK_END in written:
            done = written.split(THINK_END)[-1]
            return ANSWER[len(done)] if len(done) < len(ANSWER) else None
        if len(written) < len("<think>"):
            return "<think>"[len(written)]
        marker = max(written.rfind(WAIT) + len(WAIT) if WAIT in written else 0, len("<think>"))
        seg = written[marker:]
        return ("hm" + THINK_END)[len(seg)] if len(seg) < len("hm" + THINK_END) else None

    def forward_scripted(self, input_ids=None, attention_mask=None, **kwargs):
        from transformers.modeling_outputs import CausalLMOutputWithPast

        logits = torch.full((*input_ids.shape, len(self.tokenizer)), -1e4)
        for row, ids in enumerate(input_ids.tolist()):
            text = self.tokenizer.decode(ids, skip_special_tokens=False)
            written = text.split("<|im_start|>assistant\n")[-1]
            char = self.next_text(written)
            token = self.tokenizer.eos_token_id if char is None else self.tokenizer.convert_tokens_to_ids(char)
            logits[row, -1, token] = 1e4
        return CausalLMOutputWithPast(logits=logits)


@pytest.fixture(scope="module")
def scripted_lm():
    tokenizer = build_tokenizer()
    wrapper = ScriptedLM(tokenizer)
    return LoadedModel(wrapper.inner, tokenizer, "causal", None, "scripted")


def test_generate_extends_an_early_close_through_the_model(scripted_lm):
    conversation = [{"role": "user", "content": "1+1=2?"}]
    [out] = generate(scripted_lm, [conversation], max_new_tokens=60, think_budget=30)
    assert out.count(THINK_END) == 1 and out.endswith(THINK_END + ANSWER)
    assert scripted_lm.count_tokens(thinking(out)) == 30 and thinking(out).count(WAIT) >= 3
    [plain] = generate(scripted_lm, [conversation], max_new_tokens=60)  # no budget: the model's own close
    assert plain == "<think>hm" + THINK_END + ANSWER


def test_generate_caps_thinking_at_the_budget_with_a_real_tiny_model():
    tokenizer = build_tokenizer()
    lm = LoadedModel(build_model(tokenizer, hidden_size=32, num_layers=1), tokenizer, "causal", None, "tiny")
    outs = generate(
        lm, [[{"role": "user", "content": "hi"}]] * 2, max_new_tokens=24, temperature=1.0, n=3, think_budget=8
    )
    assert len(outs) == 6
    for out in outs:
        assert THINK_END in out and lm.count_tokens(thinking(out)) <= 8 + len(WAIT)
    with pytest.raises(ValueError, match="below max_new_tokens"):
        generate(lm, [[{"role": "user", "content": "hi"}]], max_new_tokens=8, think_budget=8)


def test_judge_passes_the_spec_budget_and_refuses_a_backend_without_it(scripted_lm):
    row = {"task": "pointwise", "question": "1+1?", "response": "2", "label": "correct"}
    spec = CriticSpec(tasks=["pointwise"], style="compact", think=True, max_new_tokens=60, think_budget=20)
    [critique] = judge(LocalChatModel(scripted_lm), [row], spec)
    assert WAIT in critique.text and critique.verdict.value == "correct" and critique.score == 1.0

    class Remote(LocalChatModel):
        supports_think_budget = False

    with pytest.raises(ValueError, match="spec.think_budget"):
        judge(Remote(scripted_lm), [row], spec)


@pytest.mark.parametrize("budget", [0, 60, 100])
def test_a_budget_outside_the_judgment_is_a_config_error(budget):
    with pytest.raises(ConfigError, match="spec.think_budget"):
        CriticSpec(max_new_tokens=60, think_budget=budget)
