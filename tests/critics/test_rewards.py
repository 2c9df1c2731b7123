r"""Verdict rewards: a reward-hacking suite for every family, their options, and GRPO runs in real TRL."""

from __future__ import annotations

import math
import pickle
import random
from typing import Any

import pytest

from critics.judging.tasks import parse_verdict, quoted_texts
from critics.rewards import REWARDS, PairwiseReward, StepIndexReward, VerdictReward, completion_text

ROWS = {
    "pointwise": {
        "task": "pointwise",
        "question": "Is 3 + 4 = 7 true?",
        "label": "correct",
        "response": r"3 + 4 = 7, so the statement is \boxed{Correct}",
    },
    "pairwise": {
        "task": "pairwise",
        "question": "Which is prime, (A) 4 or (B) 5?",
        "label": "B",
        "response_a": r"4 is prime, so the answer is \boxed{A}",
        "response_b": r"5 is prime, so the answer is \boxed{B}",
    },
    "step": {
        "task": "step",
        "question": "What is 2*3+1?",
        "label": 1,
        "steps": ["2*3 = 6", r"6 + 1 = 1, so the answer is \boxed{1}"],
    },
}

# (name, task, completion, expected parse reason, reward options). Every label above is the verdict a
# hacker would want; none of these may earn a positive reward from any family.
HACKS: list[tuple[str, str, str, str, dict[str, Any]]] = [
    ("no verdict", "pointwise", "The solution is correct.", "no verdict", {}),
    ("both verdicts", "pointwise", r"\boxed{Correct} \boxed{Incorrect}", "conflicting verdicts", {}),
    (
        "flip after verdict",
        "pointwise",
        r"Fine. \boxed{Correct}. On second thought \boxed{Incorrect}",
        "conflicting verdicts",
        {},
    ),
    ("hedge in one box", "pointwise", r"\boxed{Correct or Incorrect}", "invalid verdict", {}),
    ("slash in box", "pointwise", r"\boxed{Correct/Incorrect}", "invalid verdict", {}),
    (
        "verdict in quoted solution",
        "pointwise",
        r"It reads: 3 + 4 = 7, so the statement is \boxed{Correct}",
        "verdict inside the quoted solution",
        {},
    ),
    ("Cyrillic C", "pointwise", "\\boxed{\u0421orrect}", "invalid verdict", {}),
    ("fullwidth letters", "pointwise", "\\boxed{\uff23\uff4f\uff52\uff52\uff45\uff43\uff54}", "invalid verdict", {}),
    ("zero-width in word", "pointwise", "\\boxed{Cor\u200brect}", "invalid verdict", {}),
    ("zero-width in command", "pointwise", "\\bo\u200bxed{Correct}", "no verdict", {}),
    ("combining accent", "pointwise", "\\boxed{Correct\u0301}", "invalid verdict", {}),
    ("box only in think", "pointwise", r"<think>It is \boxed{Correct}</think> I cannot tell.", "no verdict", {}),
    ("empty box", "pointwise", r"Verdict: \boxed{}", "invalid verdict", {}),
    ("unclosed box", "pointwise", r"Verdict: \boxed{Correct", "malformed box", {}),
    ("nested box", "pointwise", r"\boxed{\boxed{Correct}}", "malformed box", {}),
    ("double braces", "pointwise", r"\boxed{{Correct}}", "invalid verdict", {}),
    ("valid then invalid box", "pointwise", r"\boxed{Correct} \boxed{maybe}", "invalid verdict", {}),
    ("two think blocks", "pointwise", r"<think>a</think><think>b</think> \boxed{Correct}", "malformed think block", {}),
    ("unclosed think", "pointwise", r"<think>checking \boxed{Correct}", "malformed think block", {}),
    ("think closed only", "pointwise", r"checking</think> \boxed{Correct}", "malformed think block", {}),
    ("think after text", "pointwise", r"Sure. <think>x</think> \boxed{Correct}", "malformed think block", {}),
    ("critique missing", "pointwise", r"\boxed{Correct}", "no critique", {"require_critique": True}),
    ("too long", "pointwise", "word " * 400 + r"\boxed{Correct}", "too long", {"max_chars": 1000}),
    ("both letters", "pairwise", r"\boxed{A} \boxed{B}", "conflicting verdicts", {}),
    ("A/B", "pairwise", r"\boxed{A/B}", "invalid verdict", {}),
    ("AB", "pairwise", r"\boxed{AB}", "invalid verdict", {}),
    (
        "copied response B",
        "pairwise",
        r"B says: 5 is prime, so the answer is \boxed{B}",
        "verdict inside the quoted solution",
        {},
    ),
    ("fullwidth B", "pairwise", "\\boxed{\uff22}", "invalid verdict", {}),
    ("Cyrillic Ve", "pairwise", "\\boxed{\u0412}", "invalid verdict", {}),
    ("no think where required", "pairwise", r"5 is prime. \boxed{B}", "no think block", {"require_think": True}),
    ("fullwidth digit", "step", "\\boxed{\uff11}", "invalid verdict", {}),
    ("Arabic-Indic digit", "step", "\\boxed{\u0661}", "invalid verdict", {}),
    ("plus sign", "step", r"\boxed{+1}", "invalid verdict", {}),
    ("two indices", "step", r"\boxed{0} \boxed{1}", "conflicting verdicts", {}),
    (
        "copied step",
        "step",
        r"Step 1 says 6 + 1 = 1, so the answer is \boxed{1}",
        "verdict inside the quoted solution",
        {},
    ),
]

# Outputs a human would accept: every family must reward them fully.
VALID: list[tuple[str, str, str, dict[str, Any]]] = [
    ("spaces", "pointwise", r"\boxed{ Correct }", {}),
    ("lower case", "pointwise", r"\boxed{correct}", {}),
    ("upper case", "pointwise", r"\boxed{CORRECT}", {}),
    ("text wrapper", "pointwise", r"\boxed{\text{Correct}}", {}),
    ("period after", "pointwise", "All good. \\boxed{Correct}.  \n", {}),
    ("same verdict twice", "pointwise", r"\boxed{Correct}, and again: \boxed{Correct}", {}),
    ("other box in think", "pointwise", r"<think>Maybe \boxed{Incorrect}? No, 3 + 4 = 7.</think> \boxed{Correct}", {}),
    (
        "quote then own verdict",
        "pointwise",
        r"It says 'so the statement is \boxed{Correct}', and 3 + 4 = 7 indeed. Verdict: \boxed{Correct}",
        {},
    ),
    ("with critique", "pointwise", r"The sum 3 + 4 is 7. \boxed{Correct}", {"require_critique": True}),
    ("short enough", "pointwise", r"The sum 3 + 4 is 7. \boxed{Correct}", {"max_chars": 1000}),
    ("bold letter", "pairwise", r"\boxed{\textbf{B}}", {}),
    ("parenthesised", "pairwise", r"5 is prime, 4 = 2*2. \boxed{(B)}", {}),
    ("think block", "pairwise", r"<think>4 = 2*2.</think> \boxed{B}", {"require_think": True}),
    ("index", "step", r"\boxed{1}", {}),
    ("spaced index", "step", r"6 + 1 is 7, not 1: step 1 is wrong. \boxed{ 1 }", {"require_critique": True}),
]


def _call(reward, task: str, completion: str, ids: list[int] | None = None) -> float | None:
    row = ROWS[task]
    columns = {key: [value] for key, value in row.items()}
    out = reward(
        [[{"role": "user", "content": "prompt"}]],
        [[{"role": "assistant", "content": completion}]],
        completion_ids=[ids if ids is not None else [0] * 8],
        **columns,
    )
    assert len(out) == 1
    return out[0]


@pytest.mark.parametrize("name, task, completion, reason, options", HACKS, ids=[h[0] for h in HACKS])
def test_hacks_earn_nothing_from_any_reward(
    name: str, task: str, completion: str, reason: str, options: dict[str, Any]
) -> None:
    row = ROWS[task]
    parser_options = {k: v for k, v in options.items() if k != "max_completion_tokens"}
    assert parse_verdict(completion, task, quoted=quoted_texts(row), **parser_options).reason == reason
    for key in REWARDS:
        reward = _call(REWARDS.get(key)(**options), task, completion)
        assert reward is None or reward == 0.0, (key, reward)
    for key in ("format", "verdict"):  # the families that judge every task must say 0.0, not "n/a"
        assert _call(REWARDS.get(key)(**options), task, completion) == 0.0


def test_at_least_twenty_hacks() -> None:
    assert len(HACKS) >= 20 and {task for _, task, *_ in HACKS} == {"pointwise", "pairwise", "step"}


@pytest.mark.parametrize("name, task, completion, options", VALID, ids=[v[0] for v in VALID])
def test_valid_outputs_earn_full_reward(name: str, task: str, completion: str, options: dict[str, Any]) -> None:
    own = {"pointwise": "pointwise_verdict", "pairwise": "pairwise", "step": "step_index"}[task]
    for key in ("format", own, "verdict"):
        assert _call(REWARDS.get(key)(**options), task, completion) == 1.0, key


def test_truncated_completions_earn_nothing() -> None:
    text = r"The sum 3 + 4 is 7. \boxed{Correct}"
    for key in REWARDS:
        reward = REWARDS.get(key)(max_completion_tokens=16)
        assert _call(reward, "pointwise", text, ids=[1] * 16) in (0.0, None)
        assert _call(reward, "pointwise", text, ids=[1] * 15) in (1.0, None)
    assert _call(REWARDS.get("format")(max_completion_tokens=16), "pointwise", text, ids=[1] * 15) == 1.0


def test_wrong_verdicts() -> None:
    assert _call(REWARDS.get("pointwise_verdict")(), "pointwise", r"\boxed{Incorrect}") == 0.0
    assert _call(PairwiseReward(), "pairwise", r"\boxed{A}") == pytest.approx(0.1)
    assert _call(PairwiseReward(accuracy_weight=0.5, format_weight=0.5), "pairwise", r"\boxed{A}") == 0.5
    assert _call(PairwiseReward(accuracy_weight=0.5, format_weight=0.5), "pairwise", r"\boxed{B}") == 1.0
    assert _call(REWARDS.get("step_index")(), "step", r"\boxed{0}") == 0.0


@pytest.mark.parametrize(
    "prediction, label, expected",
    [
        (2, 2, 1.0),
        (3, 2, 0.5),
        (1, 2, 0.5),
        (0, 2, 0.25),
        (5, 2, 0.125),
        (-1, 2, 0.0),
        (2, -1, 0.0),
        (-1, -1, 1.0),
        (0, -1, 0.0),
        (9, 2, 0.0),  # 9: past the last step
    ],
)
def test_step_distance_shaping(prediction: int, label: int, expected: float) -> None:
    reward = StepIndexReward(distance_shaping=0.5)
    out = reward(None, [rf"Checked. \boxed{{{prediction}}}"], label=[label], steps=[["s"] * 6])
    assert out == [expected]
    off = StepIndexReward()(None, [rf"\boxed{{{prediction}}}"], label=[label], steps=[["s"] * 6])
    assert off == [float(prediction == label)]


@pytest.mark.parametrize("shaping", [-0.1, 1.0, 2])
def test_distance_shaping_range(shaping: float) -> None:
    with pytest.raises(ValueError, match="distance_shaping"):
        StepIndexReward(distance_shaping=shaping)


def test_not_applicable_rows_get_none() -> None:
    text = [r"\boxed{A}"] * 3
    tasks = ["pairwise", "reference", "pairwise"]
    assert VerdictReward()(None, text, label=["A", "x", None], task=tasks) == [1.0, None, None]
    assert REWARDS.get("pointwise_verdict")()(None, text, label=["A"] * 3, task=tasks) == [None] * 3
    assert REWARDS.get("format")()(None, text, task=tasks) == [1.0, None, 1.0]  # format needs no label


def test_malformed_labels_and_missing_task_raise() -> None:
    with pytest.raises(ValueError, match="pointwise label"):
        REWARDS.get("pointwise_verdict")()(None, [r"\boxed{Correct}"], label=["right"])
    with pytest.raises(ValueError, match="pairwise label"):
        PairwiseReward()(None, [r"\boxed{A}"], label=["a"])
    with pytest.raises(ValueError, match="step label"):
        StepIndexReward()(None, [r"\boxed{1}"], label=[True])
    with pytest.raises(ValueError, match="needs a 'task' column"):
        VerdictReward()(None, [r"\boxed{A}"], label=["A"])
    with pytest.raises(ValueError, match="max_completion_tokens"):
        VerdictReward(max_completion_tokens=0)


def test_completion_formats() -> None:
    reward = PairwiseReward()
    forms = [
        r"\boxed{B}",
        [{"role": "assistant", "content": r"\boxed{B}"}],
        [{"role": "assistant", "content": [{"type": "text", "text": r"\boxed{B}"}]}],
    ]
    assert reward(None, forms, label=["B"] * 3) == [1.0] * 3
    assert completion_text([{"role": "assistant", "content": None}]) == ""


def test_string_labels_from_mixed_datasets() -> None:
    assert StepIndexReward()(None, [r"\boxed{-1}", r"\boxed{1}"], label=["-1", "1"]) == [1.0, 1.0]


def test_garbage_never_raises() -> None:
    rng = random.Random(0)
    pieces = ["\\boxed{", "}", "{", "<think>", "</think>", "Correct", "A", "B", "-1", "1", " ", "\u200b", "\\text{"]
    garbage: list[Any] = [None, 42, {"content": 3}, [{"role": "assistant"}], [None], b"bytes", ""]
    garbage += ["".join(rng.choice(pieces) for _ in range(rng.randint(0, 25))) for _ in range(300)]
    n = len(garbage)
    columns = {"task": ["pointwise", "pairwise", "step"] * (n // 3) + ["step"] * (n % 3)}
    columns["label"] = [{"pointwise": "correct", "pairwise": "A", "step": 1}[t] for t in columns["task"]]
    columns["steps"] = [["a", "b", "c"]] * n
    for key in REWARDS:
        out = REWARDS.get(key)(require_critique=True)(None, garbage, completion_ids=[[0]] * n, **columns)
        assert len(out) == n and all(r is None or 0.0 <= r <= 1.0 for r in out)


def test_rewards_are_named_picklable_and_registered() -> None:
    assert REWARDS.names() == ["format", "listwise", "pairwise", "pointwise_verdict", "step_index", "verdict"]
    for key in REWARDS:
        reward = REWARDS.get(key)(max_completion_tokens=64, require_critique=True)
        assert pickle.loads(pickle.dumps(reward)) == reward
        assert reward.__name__.endswith("_reward") and type(reward).registry_name == key
    with pytest.raises(KeyError, match="did you mean 'pairwise'"):
        REWARDS.get("pairwize")


def test_valid_verdict_share_is_logged() -> None:
    logged: list[tuple[str, float]] = []
    PairwiseReward()(
        None, [r"\boxed{A}", "nothing"], label=["A", "A"], log_metric=lambda name, value: logged.append((name, value))
    )
    assert logged == [("pairwise_reward/valid_verdict", 0.5)]


# --- the rewards inside a real trl.GRPOTrainer ------------------------------------------------------

# A random tiny model never writes a verdict, so every reward would be 0, every GRPO advantage 0, and
# nothing would train: the test could not fail. The fixture therefore first teaches the model (a few
# seconds of supervised steps) to answer each compact prompt with a random choice among a right
# verdict, a wrong one and no verdict. Its samples then earn different rewards within a group, and
# with beta = 0 and no entropy bonus those rewards are GRPO's only source of gradient.
PRIMING_TARGETS = {
    "pointwise": [r"\boxed{Correct}", r"\boxed{Incorrect}", "no idea"],
    "pairwise": [r"\boxed{A}", r"\boxed{B}", "no idea"],
    "step": [r"\boxed{-1}", r"\boxed{0}", r"\boxed{1}", "no idea"],
}
TRAIN_ROWS = [
    {"task": "pointwise", "question": "2+2?", "response": "2+2 = 4", "label": "correct"},
    {"task": "pointwise", "question": "3*3?", "response": "3*3 = 6", "label": "incorrect"},
    {"task": "pairwise", "question": "5-2?", "response_a": "5-2 = 3", "response_b": "5-2 = 4", "label": "A"},
    {"task": "pairwise", "question": "6/2?", "response_a": "6/2 = 4", "response_b": "6/2 = 3", "label": "B"},
    {"task": "step", "question": "1+2+3?", "steps": ["1+2 = 3", "3+3 = 7"], "label": "1"},
    {"task": "step", "question": "2*2*2?", "steps": ["2*2 = 4", "4*2 = 8"], "label": "-1"},
]
REWARD_TASKS = {
    "format": None,
    "verdict": None,
    "pointwise_verdict": "pointwise",
    "pairwise": "pairwise",
    "step_index": "step",
}
NUM_GENERATIONS = 4


@pytest.fixture(scope="module")
def primed_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> str:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from critics.judging.tasks import render
    from critics.tiny import save_tiny_checkpoint

    torch.set_num_threads(1)
    path = save_tiny_checkpoint(tmp_path_factory.mktemp("tiny_critic"))
    tokenizer, model = AutoTokenizer.from_pretrained(path), AutoModelForCausalLM.from_pretrained(path)
    examples = []
    for row in TRAIN_ROWS:
        prompt = tokenizer.apply_chat_template(render(row, style="compact"), add_generation_prompt=True, tokenize=False)
        examples += [(prompt, target + tokenizer.eos_token) for target in PRIMING_TARGETS[row["task"]]]
    input_ids, attention_mask, labels = _completion_batch(tokenizer, examples)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    torch.manual_seed(0)
    for _ in range(60):
        loss = model(input_ids=input_ids, attention_mask=attention_mask, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.save_pretrained(path)
    return str(path)


def _completion_batch(tokenizer, examples: list[tuple[str, str]]):
    """Right-padded tensors whose labels cover only the completion."""
    import torch

    encoded = [
        (tokenizer(p, add_special_tokens=False)["input_ids"], tokenizer(c, add_special_tokens=False)["input_ids"])
        for p, c in examples
    ]
    width = max(len(p) + len(c) for p, c in encoded)
    input_ids = torch.full((len(encoded), width), tokenizer.pad_token_id)
    labels = torch.full((len(encoded), width), -100)
    attention_mask = torch.zeros((len(encoded), width), dtype=torch.long)
    for i, (p, c) in enumerate(encoded):
        input_ids[i, : len(p) + len(c)] = torch.tensor(p + c)
        labels[i, len(p) : len(p) + len(c)] = torch.tensor(c)
        attention_mask[i, : len(p) + len(c)] = 1
    return input_ids, attention_mask, labels


class _Spy:
    """Records what the trainer passed to a reward and what it returned."""

    def __init__(self, reward) -> None:
        self.reward, self.__name__, self.calls = reward, reward.__name__, []

    def __call__(self, prompts, completions, **kwargs):
        out = self.reward(prompts, completions, **kwargs)
        self.calls.append((completions, kwargs, out))
        return out


def _dataset(task: str | None):
    from datasets import Dataset

    from critics.judging.tasks import add_prompts

    rows = [row for row in TRAIN_ROWS if task in (None, row["task"])]
    columns = sorted({name for row in TRAIN_ROWS for name in row})
    return add_prompts(Dataset.from_list([{name: row.get(name) for name in columns} for row in rows]), style="compact")


@pytest.mark.parametrize("key", sorted(REWARD_TASKS))
def test_reward_trains_inside_grpo(key: str, primed_checkpoint: str, tmp_path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    torch.set_num_threads(1)
    tokenizer = AutoTokenizer.from_pretrained(primed_checkpoint)
    model = AutoModelForCausalLM.from_pretrained(primed_checkpoint)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    options = {"max_completion_tokens": 24} if key == "verdict" else {}  # truncation check on real ids
    spy = _Spy(REWARDS.get(key)(**options))
    args = GRPOConfig(
        output_dir=str(tmp_path),
        use_cpu=True,
        bf16=False,
        max_steps=2,
        per_device_train_batch_size=2 * NUM_GENERATIONS,
        num_generations=NUM_GENERATIONS,
        max_completion_length=24,
        learning_rate=1e-3,
        beta=0.0,
        report_to="none",
        logging_steps=1,
        save_strategy="no",
        activation_checkpointing=False,
        seed=0,
    )
    trainer = GRPOTrainer(
        model=model, reward_funcs=spy, args=args, train_dataset=_dataset(REWARD_TASKS[key]), processing_class=tokenizer
    )
    trainer.train()

    _check_reward_calls(spy, REWARD_TASKS[key])
    logs = [entry for entry in trainer.state.log_history if "loss" in entry]
    assert len(logs) == 2 and all(math.isfinite(entry["loss"]) for entry in logs)
    assert any(f"{spy.__name__}/valid_verdict" in entry for entry in logs)  # the reward's own metric
    changed = [name for name, p in model.named_parameters() if not torch.equal(before[name], p.detach())]
    assert changed, "GRPO stepped on a reward signal but no parameter moved"


def _check_reward_calls(spy: _Spy, task: str | None) -> None:
    assert len(spy.calls) == 2  # one generation batch per step
    varied = False
    for completions, kwargs, out in spy.calls:
        assert len(out) == len(completions) == 2 * NUM_GENERATIONS
        assert isinstance(completions[0], list) and completions[0][0]["role"] == "assistant"
        assert {"label", "task", "question", "completion_ids", "trainer_state"} <= set(kwargs)
        assert set(kwargs["task"]) <= ({task} if task else {"pointwise", "pairwise", "step"})
        assert all(isinstance(r, float) and 0.0 <= r <= 1.0 for r in out)
        groups = [out[i : i + NUM_GENERATIONS] for i in range(0, len(out), NUM_GENERATIONS)]
        varied |= any(len(set(group)) > 1 for group in groups)
    assert varied, "every group earned one reward: no learning signal (is the priming still working?)"
