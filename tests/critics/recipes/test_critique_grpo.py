"""Critique-GRPO (``critics.recipes.feedback``, ``critique_grpo``) and the reward-hacking audit."""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import pytest
import torch

from critics.recipes.audit import diverging, trend
from critics.recipes.feedback import (
    FeedbackHooks,
    FeedbackSettings,
    make_critiques,
    mixed_group_advantages,
    select_refinements,
    shaping_weight,
)


def test_shaping_weight_values_and_gradient():
    p = torch.tensor([0.01, 0.1, 0.5, 1.0], requires_grad=True)
    f = shaping_weight(p, 0.1)
    assert torch.allclose(f, torch.tensor([0.01 / 0.11, 0.5, 0.5 / 0.6, 1 / 1.1]))
    f.sum().backward()
    assert torch.allclose(p.grad, 0.1 / (p.detach() + 0.1) ** 2)  # d/dp p/(p+g) = g/(p+g)^2
    assert p.grad[0] > p.grad[-1]  # unlikely tokens move most


def test_mixed_group_advantages_use_the_whole_group():
    # group 0: three wrong on-policy samples and one right refinement; group 1: all right
    rewards = torch.tensor([0.0, 0.0, 0.0, 1.0, 1.0, 1.0, float("nan")])
    groups = torch.tensor([0, 0, 0, 0, 1, 1, 1])
    adv = mixed_group_advantages(rewards, groups, "none")
    assert torch.allclose(adv, torch.tensor([-0.25, -0.25, -0.25, 0.75, 0.0, 0.0, 0.0]))
    scaled = mixed_group_advantages(rewards, groups, "group")
    assert torch.allclose(scaled[:4], adv[:4] / (torch.tensor([0.0, 0.0, 0.0, 1.0]).std() + 1e-4))


def test_keep_rules_and_rule_critiques():
    assert select_refinements([0, 0, 1], [0.0, 0.0, 1.0], [False, False, True], "best") == [0, 2]
    assert select_refinements([0, 0, 1], [0.0, 0.0, 1.0], [False, False, True], "all") == [0, 1, 2]
    gold = FeedbackSettings(source="with_gold", gold_text="no. fix:{gold}")
    items = [{"question": "q", "response": "r", "correct": False, "gold": "052"}]
    assert make_critiques(gold, items) == ["no. fix:052"]
    with pytest.raises(ValueError, match="feedback.critic"):
        FeedbackSettings(source="critic")
    with pytest.raises(ValueError, match="gold"):
        FeedbackSettings(source="with_gold", gold_text="wrong")


def test_feedback_hooks_exist():
    """FeedbackHooks overrides and calls these GRPOTrainer methods; fail loudly if TRL renames them."""
    from trl import GRPOTrainer

    expected = {
        "_calculate_rewards": ["self", "inputs", "prompts", "completions", "completion_ids_list"],
        "_generate_and_score_completions": ["self", "inputs"],
        "_compute_loss": ["self", "model", "inputs"],
        "_generate": ["self", "prompts"],
        "_get_per_token_logps_and_entropies": ["self", "model", "input_ids", "attention_mask", "logits_to_keep"],
    }
    for name, params in expected.items():
        assert list(inspect.signature(getattr(GRPOTrainer, name)).parameters)[: len(params)] == params, name
    assert {"_calculate_rewards", "_generate_and_score_completions", "_compute_loss"} <= set(vars(FeedbackHooks))
    assert "return self._compute_loss(model, inputs)" in inspect.getsource(GRPOTrainer.compute_loss)


def test_refinements_join_as_answers_to_the_original_prompt(tmp_path):
    """A tiny policy, one step: refinements are appended with the original prompt's tokens, never the
    critique's, with mixed-group advantages, and the shaped loss trains them."""
    from critics.models import ModelConfig
    from critics.recipes import critique_grpo
    from critics.recipes.audit import AuditSettings
    from critics.recipes.common import RunSettings
    from critics.recipes.critic_rl import GRPOSettings
    from critics.recipes.policy_grpo import PolicyDataSettings, PolicyEvalSettings
    from critics.rewards.answer import AnswerReward
    from critics.tiny import save_tiny_checkpoint

    torch.manual_seed(0)
    rows = [{"question": f"{i}+1=?", "answer": str(i + 1)} for i in range(12)]
    (tmp_path / "p.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    config = critique_grpo.CritiqueGRPOConfig(
        model=ModelConfig(name_or_path=str(save_tiny_checkpoint(tmp_path / "policy")), device="cpu"),
        data=PolicyDataSettings(train=str(tmp_path / "p.jsonl"), eval_size=0),
        run=RunSettings(
            output_dir=str(tmp_path / "out"), max_steps=1, per_device_train_batch_size=8, learning_rate=1e-3
        ),
        grpo=GRPOSettings(
            num_generations=4, max_completion_length=6, beta=0.0, loss_type="dr_grpo", scale_rewards="none"
        ),
        rewards=[AnswerReward(verifier="exact")],
        feedback=FeedbackSettings(
            source="with_gold",
            critique="all",
            refinements=2,
            keep="all",
            style="compact",
            verifier="exact",
            gold_text="CRITIQUE-MARK {gold}",
        ),
        eval=PolicyEvalSettings(enabled=False),
        audit=AuditSettings(enabled=False),
    )
    trainer, _, _ = critique_grpo.build(config)
    trainer.model.train()
    generation = trainer._prepare_inputs(next(iter(trainer.get_train_dataloader())))
    batch = dict(generation)
    flags = batch["refinement"]
    on, n = int((~flags).sum()), 8
    assert on == n and int(flags.sum()) == n * 2  # every response critiqued, 2 refinements each
    tokenizer = trainer.processing_class
    prompts = [tokenizer.decode(ids[mask.bool()]) for ids, mask in zip(batch["prompt_ids"], batch["prompt_mask"])]
    assert set(prompts[on:]) <= set(prompts[:on])  # a refinement's prompt is an original prompt
    assert not any("CRITIQUE-MARK" in p or "Feedback" in p for p in prompts)
    assert torch.allclose(batch["advantages"], torch.zeros_like(batch["advantages"]))  # all wrong: no signal
    batch["advantages"] = torch.where(flags, 1.0, -0.5)  # now give the refinements a positive advantage
    trainer.current_gradient_accumulation_steps = 1  # set by train(); this test calls the loss alone
    loss = trainer.compute_loss(trainer.model, batch)
    loss.backward()
    assert torch.isfinite(loss) and any(
        p.grad is not None and p.grad.abs().sum() > 0 for p in trainer.model.parameters()
    )
    shaped = trainer._shaped_loss(trainer.model, batch, flags)
    assert shaped < 0  # -A f(p) with A > 0


def test_divergence_detector():
    assert trend([0.1, 0.2, 0.3]) == pytest.approx(0.2)
    assert diverging([0.2, 0.4, 0.6], [0.5, 0.45, 0.3])
    assert not diverging([0.2, 0.4, 0.6], [0.5, 0.52, 0.55])  # both rise: the reward tracks the task
    assert not diverging([0.6, 0.4, 0.2], [0.5, 0.45, 0.3])  # both fall: a worse policy, not a hacked reward
    assert not diverging([0.2, 0.21, 0.22], [0.5, 0.49, 0.48])  # within tolerance


class LengthCritic:
    """A gameable critic: it rewards long answers, whatever they say."""

    __name__ = "length_critic"

    def __call__(self, prompts, completions, **kwargs):
        from critics.rewards.base import completion_text

        return [min(len(completion_text(c)) / 12, 1.0) for c in completions]


@pytest.mark.slow
def test_a_length_rewarding_critic_trips_the_audit(tmp_path):
    """policy_grpo against a critic that rewards length: the policy learns to ramble, the answers stop
    being right, and the audit flags the divergence (logged, plotted, in the card)."""
    from critics.models import ModelConfig
    from critics.recipes import policy_grpo
    from critics.recipes.audit import AuditSettings
    from critics.recipes.common import RunSettings
    from critics.recipes.critic_rl import GRPOSettings

    torch.manual_seed(0)
    policy = warm_policy(tmp_path)
    rows = [{"question": f"{i % 10}", "answer": "7"} for i in range(200)]
    (tmp_path / "p.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    config = policy_grpo.PolicyGRPOConfig(
        model=ModelConfig(name_or_path=str(policy), device="cpu"),
        data=policy_grpo.PolicyDataSettings(train=str(tmp_path / "p.jsonl"), eval_size=10),
        run=RunSettings(
            output_dir=str(tmp_path / "out"), max_steps=24, per_device_train_batch_size=16, learning_rate=2e-3
        ),
        grpo=GRPOSettings(num_generations=8, max_completion_length=12, beta=0.0, loss_type="dapo"),
        critic=None,
        rewards=[LengthCritic()],
        eval=policy_grpo.PolicyEvalSettings(enabled=False, verifier="exact"),
        audit=AuditSettings(every=6, probes=10, window=3, tolerance=0.05, max_new_tokens=12),
    )
    result = policy_grpo.run(config, progress=False)
    audit = result["metrics"]["audit"]
    assert audit["divergence"], audit["history"]
    final = Path(result["final"])
    assert "divergence flagged" in (final / "README.md").read_text()
    assert any("audit/divergence" in e for e in json.loads((final / "log_history.json").read_text()))


def warm_policy(tmp_path: Path) -> Path:
    """A tiny policy that answers 7 to any digit (right: the verifier accepts it)."""
    import datasets
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    from critics.tiny import save_tiny_checkpoint

    base = save_tiny_checkpoint(tmp_path / "base")
    examples = [
        {"prompt": [{"role": "user", "content": str(d)}], "completion": [{"role": "assistant", "content": "7"}]}
        for d in range(10)
    ] * 20
    tokenizer, model = AutoTokenizer.from_pretrained(base), AutoModelForCausalLM.from_pretrained(base)
    args = SFTConfig(
        output_dir=str(tmp_path / "sft"),
        max_steps=30,
        per_device_train_batch_size=20,
        learning_rate=3e-3,
        use_cpu=True,
        bf16=False,
        report_to=[],
        save_strategy="no",
        max_length=32,
    )
    SFTTrainer(
        model=model, args=args, train_dataset=datasets.Dataset.from_list(examples), processing_class=tokenizer
    ).train()
    model.save_pretrained(tmp_path / "policy")
    tokenizer.save_pretrained(tmp_path / "policy")
    return tmp_path / "policy"


def test_data_sample_writes_the_critiques_and_refinements(tmp_path, monkeypatch):
    """``critics data sample`` with ``feedback``: one feedback.jsonl row per refinement, labelled."""
    from critics import onpolicy
    from critics.actors import ActorSettings

    class Scripted:  # answers 5 to every question; refines by taking the fix in the critique
        def solve(self, questions, n, temperature=None):
            return [["\\boxed{5}"] * n for _ in questions]

        def refine(self, questions, solutions, critiques, n=1):
            return [[f"\\boxed{{{c.rsplit(' ', 1)[-1]}}}"] * n for c in critiques]

        def close(self):
            pass

    (tmp_path / "q.jsonl").write_text(
        '{"question": "2+2", "gold_answer": "4"}\n{"question": "2+3", "gold_answer": "5"}\n'
    )
    config = onpolicy.SampleConfig(
        actor=ActorSettings(model="unused"),
        questions=str(tmp_path / "q.jsonl"),
        output_dir=str(tmp_path / "out"),
        sampling=onpolicy.SampleSettings(samples=2, balance="none", verifier="exact"),
        feedback=FeedbackSettings(
            source="with_gold", critique="failed", refinements=2, verifier="exact", gold_text="use {gold}"
        ),
    )
    monkeypatch.setattr("critics.actors.make_actor", lambda settings: Scripted())
    report = onpolicy.run(config, progress=False)
    rows = [json.loads(line) for line in (tmp_path / "out" / "feedback.jsonl").read_text().splitlines()]
    assert len(rows) == 4 and {r["question"] for r in rows} == {"2+2"}  # 2 failed samples x 2 refinements
    assert all(r["critique"] == "use 4" and r["refinement_label"] == "correct" for r in rows)
    assert report["feedback"]["i->c"] == 1.0
