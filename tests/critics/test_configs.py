"""Every YAML under configs/ loads into its dataclass; a misspelled key names the nearest valid one."""

from __future__ import annotations

from pathlib import Path

import pytest

from critics.cli import load_recipe_config
from critics.config import ConfigError, load_config
from data_pipelines import BuildConfig

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def load_any(path: Path, overrides: list[str] = ()):
    if path.parent.name == "data":
        return load_config(BuildConfig, path, list(overrides))
    if path.parent.name == "sample":
        from critics.onpolicy import SampleConfig

        return load_config(SampleConfig, path, list(overrides))
    return load_recipe_config(str(path), list(overrides))[0]


@pytest.mark.parametrize("path", sorted(CONFIGS.rglob("*.yaml")), ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_every_config_loads(path, monkeypatch):
    monkeypatch.chdir(CONFIGS.parent)
    if path.parent.name == "accelerate":  # accelerate's own format, read by `accelerate launch`
        from accelerate.commands.config.config_args import load_config_from_file

        assert load_config_from_file(str(path)).distributed_type in ("MULTI_GPU", "DEEPSPEED")
        return
    assert load_any(path) is not None


@pytest.mark.parametrize(
    "path, override, message",
    [
        (
            "data/llmbar_pairwise.yaml",
            "builder.balanse=false",
            "unknown key 'builder.balanse' (did you mean 'balance'?)",
        ),
        ("data/gsm8k_pointwise.yaml", "num_procs=2", "unknown key 'num_procs' (did you mean 'num_proc'?)"),
        (
            "recipes/critic_rl_pairwise.yaml",
            "grpo.num_generation=4",
            "unknown key 'grpo.num_generation' (did you mean 'num_generations'?)",
        ),
        (
            "recipes/critic_rl_pairwise.yaml",
            "rewards=[{name: pairwize}]",
            "unknown reward 'pairwize' (did you mean 'pairwise'?)",
        ),
        ("recipes/sft.yaml", "run.learning_rat=1", "unknown key 'run.learning_rat' (did you mean 'learning_rate'?)"),
        ("recipes/critic_rl_step.yaml", "recipe=critic_lr", "did you mean 'critic_rl'?"),
        ("recipes/critique_rl.yaml", "stage_two.mod=delta", "unknown key 'stage_two.mod' (did you mean 'mode'?)"),
        ("recipes/refcritic.yaml", "reward.lamda=0.5", "unknown key 'reward.lamda' (did you mean 'lam'?)"),
        ("sample/gsm8k_onpolicy.yaml", "sampling.sample=4", "unknown key 'sampling.sample' (did you mean 'samples'?)"),
    ],
)
def test_a_misspelled_key_names_the_nearest_valid_one(path, override, message, monkeypatch):
    monkeypatch.chdir(CONFIGS.parent)
    with pytest.raises(ConfigError) as info:
        load_any(CONFIGS / path, [override])
    assert message in str(info.value)
