"""critique_rl and refcritic end to end on tiny models: stages, rewards, the KL reference, resume, configs."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
import torch

from critics.cli import load_recipe_config
from critics.config import ConfigError
from critics.recipes import critique_rl, refcritic
from critics.rewards.refinement import CritiqueRLStageTwoReward, RefCriticReward
from critics.tiny import save_tiny_checkpoint


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return save_tiny_checkpoint(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture(scope="module")
def records(tmp_path_factory) -> Path:
    """Pointwise sums with gold answers; every other solution is wrong; a critique column for SFT."""
    path = tmp_path_factory.mktemp("data") / "records.jsonl"
    rows = []
    for i in range(40):
        a, b = i % 7, i % 5
        wrong = i % 2
        label = "incorrect" if wrong else "correct"
        rows.append(
            {
                "id": f"r{i}",
                "source": "t",
                "task": "pointwise",
                "question": f"{a}+{b}",
                "response": f"{a}+{b} = \\boxed{{{a + b + wrong}}}",
                "label": label,
                "gold_answer": str(a + b),
                "verifier": "math",
                "metadata": "{}",
                "critique": f"<think>{a}+{b}={a + b}</think> fix:{a + b} \\boxed{{{label.capitalize()}}}",
            }
        )
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture(scope="module")
def warm_critic(tmp_path_factory, tiny, records) -> Path:
    """A tiny critic that writes verdicts: a short SFT on the records' critiques."""
    from critics.models import ModelConfig
    from critics.recipes import sft
    from critics.recipes.common import DataSettings, EvalSettings, RunSettings, TemplateSettings

    out = tmp_path_factory.mktemp("warm")
    result = sft.run(
        sft.SFTRecipeConfig(
            model=ModelConfig(name_or_path=str(tiny), device="cpu"),
            data=DataSettings(train=str(records), eval_size=8, task="pointwise"),
            template=TemplateSettings(style="compact"),
            run=RunSettings(
                output_dir=str(out), max_steps=60, learning_rate=3e-3, per_device_train_batch_size=8, save_steps=60
            ),
            eval=EvalSettings(enabled=False),
            max_length=256,
        ),
        progress=False,
    )
    return Path(result["final"])


def write_yaml(path: Path, text: str) -> str:
    path.write_text(textwrap.dedent(text))
    return str(path)


def critique_rl_yaml(tmp_path: Path, tiny: Path, records: Path, out: Path, actor: str, steps=(2, 2)) -> str:
    return write_yaml(
        tmp_path / "critique_rl.yaml",
        f"""
        recipe: critique_rl
        model: {{name_or_path: {tiny}, device: cpu}}
        actor: {actor}
        data: {{train: {records}, eval_size: 8, task: pointwise}}
        run: {{output_dir: {out}, save_steps: 1, learning_rate: 1.0e-3, per_device_train_batch_size: 8,
               logging_steps: 1}}
        grpo: {{max_completion_length: 48}}
        stage_one: {{max_steps: {steps[0]}}}
        stage_two: {{max_steps: {steps[1]}, mode: refine, verifier: math}}
        template: {{style: compact}}
        eval: {{max_new_tokens: 48, batch_size: 16}}
        """,
    )


def spy_on(monkeypatch, reward_class) -> list[float]:
    """Every reward value the class hands the trainer, in order."""
    seen: list[float] = []
    original = reward_class.__call__

    def spy(self, prompts, completions, **kwargs):
        out = original(self, prompts, completions, **kwargs)
        seen.extend(out)
        return out

    monkeypatch.setattr(reward_class, "__call__", spy)
    return seen


def state(path) -> dict[str, torch.Tensor]:
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(str(path)).state_dict()


def test_critique_rl_runs_stage_one_then_stage_two_with_rewards_in_the_three_values(
    tmp_path, tiny, warm_critic, records, monkeypatch
):
    seen = spy_on(monkeypatch, CritiqueRLStageTwoReward)
    out = tmp_path / "run"
    config, module = load_recipe_config(
        critique_rl_yaml(
            tmp_path,
            warm_critic,
            records,
            out,
            f"{{kind: transformers, model: {tiny}, style: compact, max_new_tokens: 8}}",
        ),
        [],
    )
    assert module is critique_rl and config.grpo.num_generations == 4 and config.grpo.beta == 0.01
    result = critique_rl.run(config, progress=False)

    assert len(seen) == 2 * 8 and set(seen) <= {-1.0, 0.2, 1.2}  # two steps of 8 completions, samples=1
    assert set(seen) & {0.2, 1.2}  # the warm critic gives right verdicts too, not only -1
    final = Path(result["final"])
    assert final == out / "stage2" / "final" and (out / "stage1" / "final" / "README.md").is_file()
    assert set(result["metrics"]) == {"before", "after stage I", "after stage II", "held_out_overlap"}
    assert result["metrics"]["held_out_overlap"]["held_out"] == 8
    for stage in (result["metrics"][k] for k in ("before", "after stage I", "after stage II")):
        assert {"accuracy", "refine_accuracy", "accuracy_before", "c->c", "c->i", "i->c", "i->i", "change_rate"} <= set(
            stage
        )
    logged = {k for entry in json.loads((final / "log_history.json").read_text()) for k in entry}
    assert {"refine/refine_accuracy", "refine/c->i", "refine/change_rate", "refine/discrimination_accuracy"} <= logged
    stage_one_log = {
        k for entry in json.loads((out / "stage1" / "final" / "log_history.json").read_text()) for k in entry
    }
    assert "discrimination/accuracy" in stage_one_log
    assert "recipe: critique_rl" in (final / "critics_config.yaml").read_text()

    # resuming a finished run trains nothing again (no step, no file rewritten), and keeps both stages' figures
    assert_resume_trains_nothing(monkeypatch, critique_rl, config, final, {"after stage I", "after stage II"})


def assert_resume_trains_nothing(monkeypatch, module, config, final: Path, stages: set[str]) -> None:
    """Resume a finished run with the optimizer's step spied on: no step runs and ``final/`` is untouched."""
    steps = []
    real_step = torch.optim.AdamW.step
    monkeypatch.setattr(torch.optim.AdamW, "step", lambda self, *a, **k: steps.append(1) or real_step(self, *a, **k))
    written = {p.name: p.stat().st_mtime_ns for p in final.iterdir()}
    again = module.run(config, resume=True, progress=False)
    assert steps == [] and again["final"] == str(final)
    assert {p.name: p.stat().st_mtime_ns for p in final.iterdir()} == written
    assert set(again["metrics"]) >= stages


def test_stage_two_kl_reference_is_the_stage_one_checkpoint(tmp_path, tiny, records):
    out = tmp_path / "run"
    config, _ = load_recipe_config(
        critique_rl_yaml(tmp_path, tiny, records, out, "{kind: self, style: compact}", steps=(2, 1)), []
    )
    from transformers import AutoModelForCausalLM, AutoTokenizer

    stage_one = AutoModelForCausalLM.from_pretrained(str(tiny))  # a stage-I critic: the base, moved
    with torch.no_grad():
        for p in stage_one.parameters():
            p.add_(0.01 * torch.randn_like(p))
    stage_one.save_pretrained(str(out / "stage1" / "final"))
    AutoTokenizer.from_pretrained(str(tiny)).save_pretrained(str(out / "stage1" / "final"))
    trainer, _ = critique_rl.build_stage_two(config, str(out / "stage1" / "final"))

    expected, base = state(out / "stage1" / "final"), state(tiny)
    reference = trainer.ref_model.state_dict()
    assert set(reference) == set(expected)
    assert all(torch.equal(reference[k], expected[k]) for k in expected)
    assert not any(torch.equal(expected[k], base[k]) for k in expected)  # not the base model's weights
    assert (
        trainer.reward_funcs[0].actor.chat_model.lm.model is trainer.model
    )  # kind: self refines with the critic itself


def test_refcritic_cold_start_then_grpo_with_the_dual_reward(tmp_path, tiny, records, monkeypatch):
    seen = spy_on(monkeypatch, RefCriticReward)
    out = tmp_path / "run"
    config, module = load_recipe_config(
        write_yaml(
            tmp_path / "refcritic.yaml",
            f"""
        recipe: refcritic
        model: {{name_or_path: {tiny}, device: cpu}}
        actor: {{kind: transformers, model: {tiny}, style: compact, max_new_tokens: 8, refine_temperature: 1.0}}
        data: {{train: {records}, eval_size: 8, task: pointwise}}
        run: {{output_dir: {out}, save_steps: 2, per_device_train_batch_size: 8, logging_steps: 1}}
        cold_start: {{max_steps: 2, learning_rate: 1.0e-3, max_length: 256}}
        grpo_steps: 1
        grpo: {{num_generations: 4, max_completion_length: 16}}
        reward: {{k: 3, lam: 0.5}}
        template: {{style: compact}}
        eval: {{max_new_tokens: 16}}
        """,
        ),
        [],
    )
    assert module is refcritic
    assert refcritic.RefCriticConfig(actor=config.actor).template.style == "long_cot"  # the default, too long here
    result = refcritic.run(config, progress=False)

    assert result["metrics"]["critique_filter"]["kept"] == 32
    # r = 1[verdict right] + 0.5 x share of 3 refinements: multiples of 1/6 in [0, 1.5]
    assert len(seen) == 8 and all(0.0 <= r <= 1.5 and abs(r * 6 - round(r * 6)) < 1e-9 for r in seen)
    assert {"after SFT", "after GRPO"} <= set(result["metrics"])
    assert "refine_accuracy" in result["metrics"]["after GRPO"]
    assert (out / "cold_start" / "final" / "README.md").is_file()
    assert_resume_trains_nothing(monkeypatch, refcritic, config, Path(result["final"]), {"after SFT", "after GRPO"})


@pytest.mark.parametrize(
    "override, message",
    [
        ("run.max_steps=10", "stage_one.max_steps and stage_two.max_steps"),
        ("stage_two.mode=better", "stage_two.mode"),
        ("actor.kind=openai", "actor.base_url"),
    ],
)
def test_critique_rl_config_errors_name_the_key(tmp_path, tiny, records, override, message):
    path = critique_rl_yaml(tmp_path, tiny, records, tmp_path / "run", "{kind: self}")
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        load_recipe_config(path, [override])


def test_critique_rl_needs_an_actor(tmp_path, tiny, records):
    text = Path(critique_rl_yaml(tmp_path, tiny, records, tmp_path / "run", "{kind: self}")).read_text()
    path = write_yaml(tmp_path / "no_actor.yaml", text.replace("actor: {kind: self}\n", ""))
    with pytest.raises(ConfigError, match="missing required key 'actor'"):
        load_recipe_config(path, [])


def test_records_without_gold_answers_are_refused(tmp_path, tiny):
    path = tmp_path / "no_gold.jsonl"
    path.write_text(
        "".join(
            json.dumps({"task": "pointwise", "question": "q", "response": "r", "label": "correct", "critique": "c"})
            + "\n"
            for _ in range(20)
        )
    )
    config, _ = load_recipe_config(critique_rl_yaml(tmp_path, tiny, path, tmp_path / "run", "{kind: self}"), [])
    with pytest.raises(ValueError, match="missing gold_answer"):
        critique_rl.run(config, progress=False)
