"""RLAC on real code problems (marker ``shared_data``): a few rounds on MBPP with tiny models, the
critic's proposed inputs run in the sandbox against the generated program and the reference."""

from __future__ import annotations

import json

import pytest

from critics.models import ModelConfig
from critics.recipes import rlac
from critics.recipes.critic_rl import GRPOSettings
from critics.tiny import save_tiny_checkpoint

PROBLEMS = 4


def warm_critic(base, rows: list[dict], out):
    """A tiny critic that boxes the first literal input of each problem's tests (a short SFT), so its
    checks parse and the reference accepts them."""
    import datasets
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    from data_pipelines.verifiers.validators import VALIDATORS

    validator = VALIDATORS.get("code")()
    examples = [
        {
            "prompt": rlac.critic_prompt(row["prompt"], output, "code"),
            "completion": [
                {"role": "assistant", "content": f"\\boxed{{{validator.all_checks(output, row['spec'])[0]}}}"}
            ],
        }
        for row in rows
        for output in ("", "def f(x):\n    return x", row["prompt"][:40])
    ]
    args = SFTConfig(
        output_dir=str(out),
        max_steps=150,
        per_device_train_batch_size=4,
        learning_rate=3e-3,
        use_cpu=True,
        bf16=False,
        report_to=[],
        save_strategy="no",
        max_length=1024,
        disable_tqdm=True,
        logging_steps=50,
    )
    trainer = SFTTrainer(
        model=AutoModelForCausalLM.from_pretrained(base),
        args=args,
        train_dataset=datasets.Dataset.from_list(examples),
        processing_class=AutoTokenizer.from_pretrained(base),
    )
    trainer.train()
    trainer.save_model(str(out / "final"))
    trainer.processing_class.save_pretrained(str(out / "final"))
    return out / "final"


@pytest.mark.shared_data
def test_rlac_rounds_on_mbpp_run_the_critics_inputs_in_the_sandbox(tmp_path, shared_data, monkeypatch):
    from data_pipelines import BuildConfig, build
    from data_pipelines.builders.adversarial import AdversarialBuilder
    from data_pipelines.sandbox import Sandbox
    from data_pipelines.sources.code import MBPP
    from data_pipelines.verifiers.validators import VALIDATORS

    result = build(
        BuildConfig(
            sources=[MBPP(path=str(shared_data / "code" / "mbpp.jsonl"), limit=PROBLEMS)],
            builder=AdversarialBuilder(),
            output_dir=str(tmp_path / "mbpp"),
        ),
        progress=False,
    )
    config = rlac.RLACConfig(
        validator="code",
        data=rlac.RLACData(train=str(result.output_dir)),
        rounds=2,
        steps_per_round=1,
        audit_size=2,
        output_dir=str(tmp_path / "rlac"),
        seed=0,
    )
    prompts = rlac.load_prompts(config)
    assert len(prompts) == PROBLEMS and all(VALIDATORS.get("code")().all_checks("", p["spec"]) for p in prompts)

    base = save_tiny_checkpoint(tmp_path / "base")
    critic = warm_critic(base, prompts, tmp_path / "critic-sft")
    grpo = GRPOSettings(num_generations=2, temperature=1.0, beta=0.0, max_completion_length=48)
    config.generator = rlac.RLACSide(
        model=ModelConfig(name_or_path=str(base), device="cpu"),
        learning_rate=1e-4,
        per_device_train_batch_size=4,
        grpo=grpo,
    )
    config.critic = rlac.RLACSide(
        model=ModelConfig(name_or_path=str(critic), device="cpu"),
        learning_rate=1e-5,
        per_device_train_batch_size=4,
        grpo=grpo,
    )

    import critics.recipes.rlac_rewards

    chosen, sandboxed = [], []
    resolve = critics.recipes.rlac_rewards.resolve_check
    run_many = Sandbox.run_many

    def spy_resolve(parsed, *args, **kwargs):
        check, extra, how = resolve(parsed, *args, **kwargs)
        chosen.append((check, how))
        return check, extra, how

    def spy_run_many(self, *args, **kwargs):
        sandboxed.append(repr(args))
        return run_many(self, *args, **kwargs)

    monkeypatch.setattr(critics.recipes.rlac_rewards, "resolve_check", spy_resolve)
    monkeypatch.setattr(Sandbox, "run_many", spy_run_many)
    out = rlac.run(config, progress=False)

    assert [e["round"] for e in out["rounds"]] == [0, 1]
    calls = sum(e["accounting"]["validator_calls"] for e in out["rounds"])
    assert calls > 0 and all(e["accounting"]["exhaustive_calls"] > 0 for e in out["rounds"])
    from_critic = [check for check, how in chosen if how == "critic"]
    assert from_critic, f"no check came from the critic: {chosen}"
    # the critic's inputs went into the sandbox (the reference's and the program's runs)
    assert all(any(check in call for call in sandboxed) for check in set(from_critic))
    log = json.loads((tmp_path / "rlac" / "rounds.json").read_text())
    assert len(log) == 2 and (tmp_path / "rlac" / "round-1" / "state.json").is_file()
