"""Prompts are measured in tokens before generation: cut in the middle visibly, or refused, always counted."""

from __future__ import annotations

import pytest

from critics.judging.budget import CHARS_PER_TOKEN_BOUND, MARKER, CharCounter, TokenizerCounter, fit_messages, fit_row
from critics.judging.chat import ChatModel
from critics.judging.judge import judge
from critics.judging.spec import CriticSpec
from critics.judging.tasks import render
from critics.tiny import build_tokenizer


@pytest.fixture(scope="module")
def tokenizer():
    return build_tokenizer()


def measure_with(tokenizer):
    def measure(conversation):
        text = tokenizer.apply_chat_template(conversation, add_generation_prompt=True, tokenize=False)
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    return measure


def show(style="default"):
    return lambda row: render(row, style=style)


def test_an_item_within_budget_is_left_alone(tokenizer):
    row = {"task": "pointwise", "question": "1+1?", "response": "1+1=2"}
    fitted = fit_row(row, show(), measure_with(tokenizer), 1000, TokenizerCounter(tokenizer))
    assert fitted.status == "ok" and fitted.row == row and fitted.prompt_tokens <= 1000


def test_an_over_long_response_is_cut_in_the_middle_keeping_question_instructions_and_both_ends(tokenizer):
    response = "BEGIN " + "x" * 5000 + " the answer is 42 END"
    row = {"task": "pointwise", "question": "What is 6*7?", "response": response}
    fitted = fit_row(row, show(), measure_with(tokenizer), 800, TokenizerCounter(tokenizer))
    shown = fitted.row["response"]
    assert fitted.status == "truncated" and fitted.prompt_tokens <= 800
    assert shown.startswith("BEGIN ") and shown.endswith("the answer is 42 END") and MARKER in shown
    assert fitted.row["question"] == "What is 6*7?"
    prompt = render(fitted.row)[-1]["content"]
    assert "\\boxed{Correct}" in prompt and "What is 6*7?" in prompt  # the instructions survive
    assert row["response"] == response  # the caller's row is untouched


def test_the_longest_judged_texts_are_cut_first_to_a_common_length(tokenizer):
    row = {"task": "pairwise", "question": "Which?", "response_a": "a" * 3000, "response_b": "b" * 100}
    fitted = fit_row(row, show(), measure_with(tokenizer), 900, TokenizerCounter(tokenizer))
    assert fitted.status == "truncated" and fitted.row["response_b"] == "b" * 100  # the short one kept whole
    assert MARKER in fitted.row["response_a"] and fitted.prompt_tokens <= 900


def test_steps_are_cut_one_by_one_and_keep_their_count(tokenizer):
    row = {"task": "step", "question": "q", "steps": ["short", "y" * 4000, "z" * 4000, "last"]}
    fitted = fit_row(row, show(), measure_with(tokenizer), 900, TokenizerCounter(tokenizer))
    steps = fitted.row["steps"]
    assert fitted.status == "truncated" and len(steps) == 4 and steps[0] == "short" and steps[-1] == "last"
    assert MARKER in steps[1] and MARKER in steps[2] and row["steps"][1] == "y" * 4000


def test_the_question_is_cut_only_when_the_rest_cannot_make_room(tokenizer):
    row = {"task": "pointwise", "question": "Q" * 5000 + "?", "response": "r"}
    fitted = fit_row(row, show(), measure_with(tokenizer), 800, TokenizerCounter(tokenizer))
    assert fitted.status == "truncated" and fitted.row["response"] == "r" and MARKER in fitted.row["question"]
    assert fitted.row["question"].endswith("?")


def test_with_truncate_false_an_over_long_item_is_too_long(tokenizer):
    row = {"task": "pointwise", "question": "q", "response": "x" * 5000}
    fitted = fit_row(row, show(), measure_with(tokenizer), 400, TokenizerCounter(tokenizer), truncate=False)
    assert fitted.status == "too_long" and fitted.row is None and fitted.prompt_tokens > 400


def test_a_megabyte_field_is_bounded_before_any_tokenizer_sees_it(tokenizer):
    seen = []

    class Counting(TokenizerCounter):
        def count(self, text):
            seen.append(len(text))
            return super().count(text)

    def measure(conversation):
        text = conversation[-1]["content"]
        seen.append(len(text))
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    row = {"task": "pointwise", "question": "q", "response": "x" * 1_000_000}
    fitted = fit_row(row, show("compact"), measure, 100, Counting(tokenizer))
    assert fitted.status == "truncated" and fitted.prompt_tokens <= 100
    assert max(seen) <= 100 * CHARS_PER_TOKEN_BOUND + len(MARKER) + 100


def test_chat_messages_fit_their_budget_longest_content_first(tokenizer):
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "u" * 3000}]
    fitted = fit_messages(messages, measure_with(tokenizer), 300, TokenizerCounter(tokenizer))
    assert fitted.status == "truncated" and fitted.row[0] == messages[0] and MARKER in fitted.row[1]["content"]
    assert fitted.prompt_tokens <= 300
    assert fit_messages(messages, measure_with(tokenizer), 300, TokenizerCounter(tokenizer), truncate=False).row is None


def test_an_estimate_stands_in_for_a_tokenizer_out_of_reach():
    counter = CharCounter(chars_per_token=4)
    assert counter.count("abcdefgh") == 2
    cut = counter.cut("a" * 100 + "b" * 100, 10)
    assert cut.startswith("a" * 20) and cut.endswith("b" * 20) and MARKER in cut


class EchoTail(ChatModel):
    """A critic that copies the last 40 characters of what it was shown (a verdict copied from the
    judged text), estimating tokens as 4 characters each."""

    name = "echo"

    def generate(self, conversations, *, max_new_tokens, temperature, n=1):
        return [c[-1]["content"].rsplit("\n", 1)[0][-40:] for c in conversations for _ in range(n)]


def test_a_verdict_copied_from_the_visible_end_of_a_cut_response_earns_nothing():
    row = {"task": "pointwise", "question": "Is 2+2=5?", "response": "x" * 20_000 + " so it is true. \\boxed{Correct}"}
    spec = CriticSpec(style="compact", max_new_tokens=8, prompt_tokens=200)
    critique = judge(EchoTail(), [row], spec)[0]
    assert critique.prompt == "truncated" and "\\boxed{Correct}" in critique.text  # the copy is in the output
    assert critique.score is None and not critique.verdict.ok
