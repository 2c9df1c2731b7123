"""The GPU generation knobs of every GRPO recipe: a compiled static cache and padded prompt shapes."""

from __future__ import annotations

import json

import pytest

from critics.models import ModelConfig
from critics.recipes import critic_rl
from critics.recipes.common import DataSettings, EvalSettings, RunSettings, TemplateSettings
from critics.rewards.verdict import PointwiseVerdictReward
from critics.tiny import save_tiny_checkpoint


def test_padding_reaches_trl_and_compiling_is_ours():
    from trl import GRPOConfig

    settings = critic_rl.GRPOSettings(cache_implementation="static", compile_generation=True, pad_to_multiple_of=32)
    args = settings.trl_args()
    assert "compile_generation" not in args
    assert GRPOConfig(output_dir="x", use_cpu=True, bf16=False, **args).pad_to_multiple_of == 32


def test_compiling_without_a_static_cache_names_the_key():
    with pytest.raises(ValueError, match="grpo.cache_implementation: static"):
        critic_rl.GRPOSettings(compile_generation=True)


@pytest.mark.parametrize("compile_generation", [False, True])
def test_the_built_trainer_compiles_generation_only_when_asked(tmp_path, compile_generation):
    model = save_tiny_checkpoint(tmp_path / "tiny", hidden_size=32, num_layers=1)
    rows = [{"task": "pointwise", "question": f"{i}+1?", "response": str(i + 1), "label": "correct"} for i in range(8)]
    (tmp_path / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    config = critic_rl.CriticRLConfig(
        model=ModelConfig(name_or_path=str(model), device="cpu"),
        data=DataSettings(train=str(tmp_path / "records.jsonl"), eval_size=0),
        run=RunSettings(output_dir=str(tmp_path / "rl"), max_steps=1, per_device_train_batch_size=4),
        grpo=critic_rl.GRPOSettings(
            num_generations=2,
            max_completion_length=8,
            cache_implementation="static",
            compile_generation=compile_generation,
            pad_to_multiple_of=16,
        ),
        rewards=[PointwiseVerdictReward()],
        template=TemplateSettings(style="compact"),
        eval=EvalSettings(enabled=False),
    )
    trainer, _ = critic_rl.build(config)
    # TRL 1.16 builds its generation config with compiling off; the recipe turns it on when asked
    assert trainer.generation_config.disable_compile is (not compile_generation)
    assert trainer.generation_config.cache_implementation == "static"
    assert trainer.pad_to_multiple_of == 16
