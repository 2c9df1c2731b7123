"""Splitting OpenRLHF reward queries (special tokens included) into question and response."""

from __future__ import annotations

import pytest

from critics.serving.queries import split_query

QWEN_PROMPT = (
    "<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\nWhat is 6*7?<|im_end|>\n<|im_start|>assistant\n"
)
LLAMA3_PROMPT = (
    "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
    "<|start_header_id|>user<|end_header_id|>\n\nWhat is 6*7?<|eot_id|>"
    "<|start_header_id|>assistant<|end_header_id|>\n\n"
)


@pytest.mark.parametrize(
    ("query", "prompt"),
    [
        (QWEN_PROMPT + "6*7 = 42.<|im_end|>", None),
        (QWEN_PROMPT + "6*7 = 42.<|im_end|>", QWEN_PROMPT),
        ("<|endoftext|><|endoftext|>" + QWEN_PROMPT + "6*7 = 42.<|im_end|><|endoftext|><|endoftext|>", QWEN_PROMPT),
        (LLAMA3_PROMPT + "6*7 = 42.<|eot_id|><|finetune_right_pad_id|>", None),
        (LLAMA3_PROMPT + "6*7 = 42.<|eot_id|>", LLAMA3_PROMPT),
        (QWEN_PROMPT + "6*7 = 42.<|im_end|>", "a prompt the query does not start with"),
    ],
)
def test_chat_formats_with_or_without_the_prompt_give_the_user_turn_and_the_response(query, prompt):
    assert split_query(query, prompt) == ("What is 6*7?", "6*7 = 42.")


def test_multi_turn_prompts_take_the_last_user_turn_and_the_last_assistant_turn():
    history = (
        "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello!<|im_end|>\n"
        "<|im_start|>user\nNow add 2 and 3.<|im_end|>\n<|im_start|>assistant\n"
    )
    assert split_query(history + "5<|im_end|>") == ("Now add 2 and 3.", "5")


def test_a_response_that_mentions_a_header_is_split_at_the_prompt_when_the_prompt_is_given():
    response = "Write <|im_start|>assistant to open a turn.<|im_end|>"
    expected = ("What is 6*7?", "Write <|im_start|>assistant to open a turn.")
    assert split_query(QWEN_PROMPT + response, QWEN_PROMPT) == expected


def test_raw_text_without_a_chat_format_uses_the_prompt_as_the_question():
    assert split_query("Question: 6*7? Answer: 42</s>", "Question: 6*7? Answer:") == ("Question: 6*7? Answer:", "42")
    assert split_query("42</s>", "What is 6*7?") == ("What is 6*7?", "42")
    assert split_query("<pad><pad>42<|end_of_text|>") == ("", "42")
