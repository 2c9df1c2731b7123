"""Critics as rewards: the TRL reward callable (sync, async, in process, over HTTP), verl's and
OpenRLHF's entry points, and the ``policy_grpo`` recipe."""

from __future__ import annotations

import asyncio
import json
import pickle

import pytest

from critics.serving import Critic
from critics.serving.adapters import compute_score, reward_function
from tests.critics.serving.test_critic_engine import RuleBackend


def rule_critic(**settings) -> Critic:
    return Critic(RuleBackend(), style="compact", **settings)


def test_reward_function_scores_completions_and_logs_critiques():
    logged, metrics = {}, {}
    with rule_critic() as critic:
        reward = reward_function(critic)
        scores = reward(
            prompts=[[{"role": "user", "content": "What is 2+2?"}]] * 3,
            completions=[
                [{"role": "assistant", "content": "2+2=4"}],
                [{"role": "assistant", "content": "2+2=5"}],
                [{"role": "assistant", "content": "four"}],
            ],
            log_extra=lambda k, v: logged.setdefault(k, v),
            log_metric=lambda k, v: metrics.setdefault(k, v),
        )
    assert scores == [1.0, 0.0, None]
    assert reward.invalid == 1 and reward.failed == 0
    assert metrics == {"critic/failed_items": 0.0, "critic/invalid_verdicts": 1.0, "critic/too_long": 0.0}
    assert "2+2 is 4" in logged["critique"][0]


def test_the_async_variant_gives_the_same_scores():
    with rule_critic() as critic:
        reward = reward_function(critic, asynchronous=True)
        assert asyncio.iscoroutinefunction(type(reward).__call__)
        scores = asyncio.run(reward(prompts=["q", "q"], completions=["1+1=2", "1+1=3"]))
    assert scores == [1.0, 0.0]


def test_an_unreachable_server_gives_none_within_the_timeout_and_is_counted():
    reward = reward_function("http://127.0.0.1:9", timeout=1.0)
    assert reward(prompts=["q"] * 4, completions=["1+1=2"] * 4) == [None] * 4
    assert reward.failed == 4
    assert asyncio.run(
        reward_function("127.0.0.1:9", asynchronous=True, timeout=1.0)(prompts=["q"], completions=["x"])
    ) == [None]
    assert pickle.loads(pickle.dumps(reward)).critic.url == "http://127.0.0.1:9"  # URL rewards pickle


def test_pairwise_rewards_compare_with_the_reference_column_in_both_orders():
    with rule_critic() as critic:  # the rule critic always answers A: pure position bias
        reward = reward_function(critic, task="pairwise")
        assert reward(prompts=["q"], completions=["mine"], reference=["theirs"]) == [0.5]  # the bias cancels
        one_order = reward_function(critic, task="pairwise", both_orders=False)
        assert one_order(prompts=["q"], completions=["mine"], reference=["theirs"]) == [1.0]
        with pytest.raises(ValueError, match="reference"):
            reward(prompts=["q"], completions=["mine"])


def test_verl_compute_score_needs_a_url_and_reports_an_unreachable_critic():
    with pytest.raises(ValueError, match="CRITICS_URL"):
        compute_score("gsm8k", "4", "4", {"question": "2+2?"})
    assert compute_score("gsm8k", "4", "4", {"question": "2+2?"}, critic_url="http://127.0.0.1:9", timeout=1.0) == {
        "score": 0.0,
        "critic_valid": 0.0,
    }


def test_grpo_trainer_runs_with_a_critic_reward(tmp_path):
    import datasets
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    from critics.tiny import save_tiny_checkpoint

    path = save_tiny_checkpoint(tmp_path / "policy")
    model, tokenizer = AutoModelForCausalLM.from_pretrained(path), AutoTokenizer.from_pretrained(path)
    before = [p.detach().clone() for p in model.parameters()]
    data = datasets.Dataset.from_list([{"prompt": [{"role": "user", "content": f"{i}+1="}]} for i in range(16)])
    with rule_critic() as critic:
        reward = reward_function(critic, asynchronous=True)
        # a tiny random policy writes no claims: pair the critic with a length rule so groups differ
        args = GRPOConfig(
            output_dir=str(tmp_path / "out"),
            max_steps=2,
            per_device_train_batch_size=8,
            num_generations=4,
            max_completion_length=8,
            learning_rate=1e-2,
            use_cpu=True,
            bf16=False,
            report_to=[],
            save_strategy="no",
            logging_steps=1,
        )
        trainer = GRPOTrainer(
            model=model,
            reward_funcs=[reward, lambda completions, **kw: [len(c[0]["content"]) / 8.0 for c in completions]],
            args=args,
            train_dataset=data,
            processing_class=tokenizer,
        )
        trainer.train()
    assert all(torch.isfinite(torch.tensor(e["loss"])) for e in trainer.state.log_history if "loss" in e)
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert reward.invalid == 16  # every random completion was judged, none had a verdict, none became 0


def test_policy_grpo_recipe_trains_against_an_in_process_critic(tmp_path):
    from critics.models import ModelConfig
    from critics.recipes import policy_grpo
    from critics.recipes.audit import AuditSettings
    from critics.recipes.common import RunSettings
    from critics.recipes.critic_rl import GRPOSettings
    from critics.rewards.answer import AnswerReward
    from critics.tiny import save_tiny_checkpoint

    policy, judge = save_tiny_checkpoint(tmp_path / "policy"), save_tiny_checkpoint(tmp_path / "critic", seed=1)
    rows = [{"question": f"{i}+1=?", "answer": str(i + 1)} for i in range(24)]
    (tmp_path / "prompts.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    config = policy_grpo.PolicyGRPOConfig(
        model=ModelConfig(name_or_path=str(policy), device="cpu"),
        data=policy_grpo.PolicyDataSettings(train=str(tmp_path / "prompts.jsonl"), eval_size=8),
        run=RunSettings(output_dir=str(tmp_path / "out"), max_steps=2, per_device_train_batch_size=8, save_steps=2),
        grpo=GRPOSettings(num_generations=4, max_completion_length=8),
        critic=policy_grpo.CriticRewardSettings(checkpoint=str(judge), style="compact", max_new_tokens=8),
        rewards=[AnswerReward(verifier="exact")],
        eval=policy_grpo.PolicyEvalSettings(max_new_tokens=8, verifier="exact"),
        audit=AuditSettings(enabled=False),  # its probes would call the critic too
    )
    result = policy_grpo.run(config, progress=False)
    metrics = result["metrics"]
    assert metrics["before"]["n"] == 8 and "after GRPO" in metrics
    # 2 steps x 8 completions, each judged once by the (untrained) critic
    assert metrics["critic"]["invalid_verdicts"] + metrics["critic"]["failed_items"] == 16
    assert (tmp_path / "out" / "final" / "README.md").is_file()


def test_policy_grpo_config_needs_a_reward():
    from critics.recipes import policy_grpo

    with pytest.raises(ValueError, match="critic.url"):
        policy_grpo.PolicyGRPOConfig(critic=None)


def test_response_format_shows_the_critic_dataset_columns_around_the_completion():
    with rule_critic() as critic:
        reward = reward_function(critic, response_format="{left}={completion}")
        assert reward(prompts=["q", "q"], completions=["4", "5"], left=["2+2", "2+2"]) == [1.0, 0.0]
