"""RLAC's driver on tiny models: alternating rounds, fresh prompts, one optimizer and schedule per
side across rounds, audit and accounting in the log, flat memory, and config errors."""

from __future__ import annotations

import pytest

from critics.models import ModelConfig
from critics.recipes import rlac
from critics.recipes.critic_rl import GRPOSettings
from critics.tiny import save_tiny_checkpoint


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return save_tiny_checkpoint(tmp_path_factory.mktemp("rlac") / "model")


def side(tiny, lr: float) -> rlac.RLACSide:
    return rlac.RLACSide(
        model=ModelConfig(name_or_path=str(tiny), device="cpu"),
        learning_rate=lr,
        per_device_train_batch_size=4,
        grpo=GRPOSettings(num_generations=4, temperature=1.0, beta=0.0, max_completion_length=12),
    )


def test_three_rounds_alternate_with_fresh_prompts_one_schedule_and_flat_memory(tmp_path, tiny):
    config = rlac.RLACConfig(
        generator=side(tiny, 1e-3),
        critic=side(tiny, 2e-3),
        rounds=3,
        steps_per_round=2,
        data=rlac.RLACData(synthetic_items=2, synthetic_size=200),
        audit_size=8,
        lr_scheduler_type="linear",
        output_dir=str(tmp_path / "run"),
    )
    result = rlac.run(config, progress=False)
    rounds = result["rounds"]
    assert [r["round"] for r in rounds] == [0, 1, 2]
    assert len({tuple(r["prompts"]) for r in rounds}) == 3  # each round draws new prompts
    for r in rounds:
        assert len(r["generator_log"]) == 2 and len(r["critic_log"]) == 2
        assert set(r["audit"]) == {"validator_pass_rate", "true_correctness", "divergence"}
        assert r["accounting"]["validator_calls"] > 0 and r["accounting"]["exhaustive_calls"] > 0
    # one linear schedule over 3 x 2 steps: after round r the rate is lr x (1 - 2(r + 1) / 6)
    assert [round(r["generator_lr"], 8) for r in rounds] == [round(1e-3 * (1 - 2 * (i + 1) / 6), 8) for i in range(3)]
    assert [round(r["critic_lr"], 8) for r in rounds] == [round(2e-3 * (1 - 2 * (i + 1) / 6), 8) for i in range(3)]
    # Adam's state carried over: 6 optimizer steps in all, not 2
    optimizer = result["generator"].optimizer
    while hasattr(optimizer, "optimizer"):
        optimizer = optimizer.optimizer
    assert {int(s["step"]) for s in optimizer.state.values()} == {6}
    assert rounds[2]["max_rss_mb"] - rounds[0]["max_rss_mb"] < 150  # no growth round over round
    assert (tmp_path / "run" / "rounds.json").is_file()


def test_steps_per_round_must_not_split_a_generation(tiny):
    generator = side(tiny, 1e-3)
    generator.grpo = GRPOSettings(num_generations=4, beta=0.0, generation_batch_size=8)  # 2 steps per generation
    with pytest.raises(ValueError, match="multiple of steps_per_generation"):
        rlac.RLACConfig(generator=generator, critic=side(tiny, 1e-3), steps_per_round=3)


def test_a_run_that_crashes_resumes_after_its_last_complete_round(tmp_path, tiny, monkeypatch):
    config = rlac.RLACConfig(
        generator=side(tiny, 1e-3),
        critic=side(tiny, 1e-3),
        rounds=3,
        steps_per_round=2,
        data=rlac.RLACData(synthetic_items=2, synthetic_size=200),
        audit_size=4,
        lr_scheduler_type="linear",
        output_dir=str(tmp_path / "run"),
    )
    original, calls = rlac.generator_dataset, []

    def crash_in_round_two(rows):
        calls.append(1)
        if len(calls) == 4:  # the trainer's first dataset, then rounds 0, 1 and 2
            raise RuntimeError("killed")
        return original(rows)

    monkeypatch.setattr(rlac, "generator_dataset", crash_in_round_two)
    with pytest.raises(RuntimeError, match="killed"):
        rlac.run(config, progress=False)
    monkeypatch.setattr(rlac, "generator_dataset", original)
    assert rlac.latest_round(tmp_path / "run") == 1
    with pytest.raises(FileExistsError, match="--resume"):
        rlac.run(config, progress=False)
    resumed = rlac.run(config, resume=True, progress=False)
    assert [r["round"] for r in resumed["rounds"]] == [0, 1, 2] and rlac.latest_round(tmp_path / "run") == 2
    optimizer = resumed["generator"].optimizer
    while hasattr(optimizer, "optimizer"):
        optimizer = optimizer.optimizer
    assert {int(s["step"]) for s in optimizer.state.values()} == {6}  # Adam's steps carried through the restart
    assert round(resumed["rounds"][2]["generator_lr"], 8) == 0.0  # the one linear schedule reached its end


@pytest.mark.parametrize("explore", [0.0, 1.0])
def test_explore_scores_that_share_of_generator_outputs_with_a_random_check(tmp_path, tiny, explore):
    config = rlac.RLACConfig(
        generator=side(tiny, 1e-3),
        critic=side(tiny, 1e-3),
        rounds=1,
        steps_per_round=2,
        data=rlac.RLACData(synthetic_items=2, synthetic_size=200),
        audit_size=2,
        explore=explore,
        output_dir=str(tmp_path / "run"),
    )
    accounting = rlac.run(config, progress=False)["rounds"][0]["accounting"]
    outputs = 2 * 4  # steps x completions per step
    assert accounting["explored_checks"] == explore * outputs
    with pytest.raises(ValueError, match="explore must lie in"):
        rlac.RLACConfig(generator=side(tiny, 1e-3), critic=side(tiny, 1e-3), explore=1.5)


def test_fewer_critic_steps_per_round_spend_fewer_validator_calls_on_the_critic(tmp_path, tiny):
    config = rlac.RLACConfig(
        generator=side(tiny, 1e-3),
        critic=side(tiny, 1e-3),
        rounds=2,
        steps_per_round=2,
        critic_steps_per_round=1,
        data=rlac.RLACData(synthetic_items=2, synthetic_size=200),
        audit_size=2,
        lr_scheduler_type="linear",
        output_dir=str(tmp_path / "run"),
    )
    rounds = rlac.run(config, progress=False)["rounds"]
    for r in rounds:
        assert len(r["generator_log"]) == 2 and len(r["critic_log"]) == 1
        # one critic step: 4 critiques, one validator call each (a missing check scores without a call)
        assert r["accounting"]["critic_calls"] <= 4
    # each side's one schedule spans its own steps: 2 x 2 for the generator, 2 x 1 for the critic
    assert [round(r["critic_lr"], 8) for r in rounds] == [round(1e-3 * (1 - (i + 1) / 2), 8) for i in range(2)]
    assert [round(r["generator_lr"], 8) for r in rounds] == [round(1e-3 * (1 - 2 * (i + 1) / 4), 8) for i in range(2)]
