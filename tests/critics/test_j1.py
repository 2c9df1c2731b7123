"""J1 in critic_rl: both orders of each pair in one GRPO batch, the position-consistency reward (paid
only when right in both orders; a constant answer earns nothing), and the position bias report."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import datasets
import pytest

from critics.models import ModelConfig
from critics.recipes import critic_rl
from critics.recipes.common import DataSettings, EvalSettings, RunSettings, TemplateSettings
from critics.rewards.verdict import PairwiseReward, order_partners
from critics.tiny import save_tiny_checkpoint

BOX = {"A": "A is right. \\boxed{A}", "B": "B is right. \\boxed{B}"}


def batch(verdicts0: list[str], verdicts1: list[str], label0: str = "A"):
    """One pair's group of completions in each order (order 1's label is flipped)."""
    label1 = "B" if label0 == "A" else "A"
    completions = [BOX[v] for v in verdicts0 + verdicts1]
    n0, n1 = len(verdicts0), len(verdicts1)
    return completions, {
        "label": [label0] * n0 + [label1] * n1,
        "task": ["pairwise"] * (n0 + n1),
        "pair_id": ["p"] * (n0 + n1),
        "order": [0] * n0 + [1] * n1,
    }


def test_only_pairs_right_in_both_orders_are_paid():
    completions, columns = batch(["A", "A", "B", "A"], ["B", "A", "B", "A"])
    rewards = PairwiseReward(position_consistency=True)(None, completions, **columns)
    # pairs by rank: (A,B) right-right, (A,A) right-wrong, (B,B) wrong-right, (A,A) right-wrong
    assert rewards == pytest.approx([1.0, 0.1, 0.1, 0.1, 1.0, 0.1, 0.1, 0.1])
    plain = PairwiseReward()(None, completions, **columns)
    assert plain == pytest.approx([1.0, 1.0, 0.1, 1.0, 1.0, 0.1, 1.0, 0.1])  # each order alone pays more


@pytest.mark.parametrize("constant", ["A", "B"])
def test_a_constant_answer_earns_no_accuracy_under_position_consistency(constant):
    completions, columns = batch([constant] * 4, [constant] * 4)
    consistent = PairwiseReward(position_consistency=True, format_weight=0.0)(None, completions, **columns)
    assert consistent == [0.0] * 8
    assert sum(PairwiseReward(format_weight=0.0)(None, completions, **columns)) == pytest.approx(0.9 * 4)


def test_a_batch_without_both_orders_is_an_error():
    completions, columns = batch(["A", "A"], ["B"])
    with pytest.raises(ValueError, match="both orders of a pair"):
        PairwiseReward(position_consistency=True)(None, completions, **columns)
    with pytest.raises(ValueError, match="pair_id and order"):
        PairwiseReward(position_consistency=True)(None, completions[:1], label=["A"], task=["pairwise"])
    assert order_partners([1, 1], [1, 0], 2) == [1, 0]


def test_position_consistency_needs_both_orders_in_the_recipe():
    with pytest.raises(ValueError, match="both_orders"):
        critic_rl.CriticRLConfig(rewards=[PairwiseReward(position_consistency=True)])


def pairwise_rows(n: int) -> list[dict]:
    rows = []
    for i in range(n):
        good, bad = f"{i % 5}+1={i % 5 + 1}", f"{i % 5}+1={i % 5 + 2}"
        first_good = i % 2 == 0
        rows.append(
            {
                "id": f"r{i}",
                "task": "pairwise",
                "question": "sum?",
                "response_a": good if first_good else bad,
                "response_b": bad if first_good else good,
                "label": "A" if first_good else "B",
            }
        )
    return rows


def test_each_record_is_added_in_the_other_order_with_its_label_flipped():
    doubled = critic_rl.with_both_orders(datasets.Dataset.from_list(pairwise_rows(3)))
    rows = list(doubled)
    assert len(rows) == 6 and [r["order"] for r in rows] == [0, 1] * 3
    first, second = rows[0], rows[1]
    assert first["pair_id"] == second["pair_id"] and first["label"] == "A" and second["label"] == "B"
    assert (second["response_a"], second["response_b"]) == (first["response_b"], first["response_a"])
    pointwise = datasets.Dataset.from_list([{"task": "pointwise", "question": "q", "response": "r"}])
    with pytest.raises(ValueError, match="two-choice task"):
        critic_rl.with_both_orders(pointwise)


def test_the_paired_sampler_keeps_both_orders_in_every_generation_batch():
    from trl.trainer.utils import RepeatSampler

    pair_ids = [str(i // 2) for i in range(20)] + ["lonely"]  # a pair cut by the budget leaves one order
    base = RepeatSampler(list(range(21)), mini_repeat_count=3, batch_size=4, repeat_count=2, seed=1)
    indices = list(critic_rl.paired_sampler(base, pair_ids))
    assert 20 not in indices
    per_batch = 4 * 3 * 2  # prompts x generations x repeats
    assert len(indices) == 5 * per_batch
    for start in range(0, len(indices), per_batch):
        chunk = set(indices[start : start + per_batch])
        assert all(i ^ 1 in chunk for i in chunk)  # rows 2j and 2j+1 are the two orders of pair j
    with pytest.raises(ValueError, match="make it even"):
        critic_rl.paired_sampler(RepeatSampler(list(range(6)), mini_repeat_count=2, batch_size=3), pair_ids)


def test_grpo_trainer_keeps_the_sampler_hook():
    from trl import GRPOTrainer
    from trl.trainer.utils import RepeatSampler

    assert callable(GRPOTrainer._get_train_sampler)
    sampler = RepeatSampler([0, 1], mini_repeat_count=2, batch_size=2, repeat_count=1, seed=0)
    assert {"data_source", "mini_repeat_count", "batch_size", "repeat_count", "shuffle", "seed"} <= set(vars(sampler))


@dataclass(frozen=True)
class PairChecking:  # not registered: REWARDS is global, and other tests call every reward it holds
    """Records every batch the trainer scores; fails the run if a pair's orders were split."""

    path: str

    def __call__(self, prompts, completions, pair_id, order, **kwargs):
        order_partners(pair_id, order, len(completions))  # raises when a pair lacks its other order
        with open(self.path, "a") as f:
            f.write(json.dumps({"pairs": sorted(set(pair_id)), "orders": list(order)}) + "\n")
        return [0.0] * len(completions)


def test_grpo_with_both_orders_scores_whole_pairs_and_reports_position_bias(tmp_path):
    tiny = save_tiny_checkpoint(tmp_path / "tiny", hidden_size=32, num_layers=1)
    records = tmp_path / "pairs.jsonl"
    records.write_text("".join(json.dumps(r) + "\n" for r in pairwise_rows(24)))
    log = tmp_path / "batches.jsonl"
    config = critic_rl.CriticRLConfig(
        model=ModelConfig(name_or_path=str(tiny), device="cpu"),
        data=DataSettings(train=str(records), eval_size=6, task="pairwise"),
        run=RunSettings(output_dir=str(tmp_path / "rl"), max_steps=2, per_device_train_batch_size=8, save_steps=2),
        grpo=critic_rl.GRPOSettings(num_generations=2, max_completion_length=8, beta=0.0),
        rewards=[PairwiseReward(position_consistency=True), PairChecking(str(log))],
        template=TemplateSettings(style="compact"),
        eval=EvalSettings(max_new_tokens=8),
        both_orders=True,
    )
    result = critic_rl.run(config, progress=False)
    batches = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(batches) == 2 and all(b["orders"].count(0) == b["orders"].count(1) == 4 for b in batches)
    after = result["metrics"]["after GRPO"]
    assert {"position_bias", "consistent_accuracy", "order_agreement"} <= set(after)
    assert after["consistent_accuracy"] <= after["accuracy"] + 1e-9  # a random critic writes few verdicts
    assert Path(result["final"], "critic_spec.json").is_file()


@pytest.mark.parametrize(
    ("answers", "bias", "consistent", "agree"), [("AA", 1.0, 0.0, 0.0), ("AB", 0.5, 1.0, 1.0), ("BA", 0.5, 0.0, 1.0)]
)
def test_position_bias_is_the_share_of_first_position_verdicts(monkeypatch, answers, bias, consistent, agree):
    from critics.judging.judge import Critique
    from critics.judging.verdicts import Verdict

    def fake_judge(chat, rows, spec):  # first order answers[0], swapped order answers[1]
        half = len(rows) // 2
        return [Critique("", Verdict(answers[k >= half], True, "ok"), None) for k in range(len(rows))]

    monkeypatch.setattr(critic_rl, "judge", fake_judge)
    monkeypatch.setattr(critic_rl, "LocalChatModel", lambda lm, batch_size: None)
    rows = [r for r in pairwise_rows(4) if r["label"] == "A"] + [{"task": "pointwise", "label": "correct"}]
    assert critic_rl.position_bias(None, rows, None) == {
        "position_bias": bias,
        "consistent_accuracy": consistent,
        "order_agreement": agree,
    }
