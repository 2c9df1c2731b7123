"""POLAR: the input layout, the two-stage recipe, serving (same scores over HTTP as in process), the
TRL reward callable in GRPO, and (slow) learning on a synthetic pool of three policies."""

from __future__ import annotations

import json
import math
import random
import textwrap
from pathlib import Path

import pytest

from critics.cli import load_recipe_config
from critics.config import ConfigError
from critics.judging.polar import PolarBudgets, PolarEncoder, add_polar_tokens, polar_scores
from critics.judging.spec import load_spec
from critics.recipes import polar
from critics.tiny import build_tokenizer, save_tiny_checkpoint

WORDS = "apple river stone cloud green tiger paper light music ocean".split()


def styled(policy: int, words: list[str]) -> str:
    """Three policies with distinct styles: SHOUTING!, ...trailing..., and reversed-with-dashes?"""
    if policy == 0:
        return " ".join(w.upper() for w in words) + "!"
    if policy == 1:
        return "..." + " ".join(words) + "..."
    return "-".join(reversed(words)) + "?"


def triples(n: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        a = rng.randrange(3)
        b = rng.choice([p for p in range(3) if p != a])
        says = [styled(p, rng.sample(WORDS, rng.randint(2, 4))) for p in (a, a, b)]
        rows.append(
            {
                "question": " ".join(rng.sample(WORDS, 2)),
                "reference": says[0],
                "positive": says[1],
                "negative": says[2],
                "reference_model": f"p{a}",
                "negative_model": f"p{b}",
            }
        )
    return rows


def preferences(n: int, seed: int) -> list[dict]:
    """The right sum (in another policy's style) over a wrong one in the reference's own style: a
    policy discriminator alone prefers the wrong one; preference fine-tuning has to teach the sum."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        x, y = rng.randint(10, 49), rng.randint(10, 49)
        a = rng.randrange(3)
        b = rng.choice([p for p in range(3) if p != a])
        wrong = x + y + rng.choice([-10, -1, 1, 10])
        rows.append(
            {
                "question": f"{x}+{y}",
                "reference": styled(a, ["sum", str(x + y)]),
                "chosen": styled(b, ["sum", str(x + y)]),
                "rejected": styled(a, ["sum", str(wrong)]),
            }
        )
    return rows


def write(path: Path, rows: list[dict]) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


@pytest.fixture(scope="module")
def pool(tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("pool")
    return {
        "pretrain": write(root / "triples.jsonl", triples(64, 0)),
        "finetune": write(root / "prefs.jsonl", preferences(64, 1)),
    }


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    return save_tiny_checkpoint(tmp_path_factory.mktemp("base") / "model", classifier=True, max_positions=512)


def polar_yaml(tmp_path: Path, base: Path, pool: dict, out: Path, steps: int = 2) -> str:
    path = tmp_path / "polar.yaml"
    path.write_text(
        textwrap.dedent(f"""
        recipe: polar
        model: {{name_or_path: {base}, device: cpu}}
        data: {{pretrain: {pool["pretrain"]}, finetune: {pool["finetune"]}, eval_size: 16}}
        run: {{output_dir: {out}, per_device_train_batch_size: 8, learning_rate: 1.0e-3, save_steps: 1}}
        pretrain: {{max_steps: {steps}}}
        finetune: {{max_steps: {steps}}}
        budgets: {{prompt: 32, reference: 48, candidate: 48}}
        """)
    )
    return str(path)


def test_the_layout_keeps_the_end_of_each_part_and_ends_with_the_reward_token():
    tokenizer = build_tokenizer()
    add_polar_tokens(tokenizer)
    ids = PolarEncoder(tokenizer, PolarBudgets(prompt=4, reference=3, candidate=5))(
        "a long prompt", "reference", "the candidate"
    )
    assert tokenizer.decode(ids) == "omptnce<|reward_sep|>omptidate<|reward|>"
    with pytest.raises(ValueError, match="add_polar_tokens first"):
        PolarEncoder(build_tokenizer())


def test_pretrain_then_finetune_write_polar_checkpoints_and_resume(tmp_path, base, pool):
    out = tmp_path / "run"
    config, module = load_recipe_config(polar_yaml(tmp_path, base, pool, out), [])
    assert module is polar and config.run.lr_scheduler_type == "cosine" and config.run.learning_rate == 1e-3
    result = polar.run(config, progress=False)
    final = Path(result["final"])
    spec = load_spec(None, final)  # the checkpoint carries its layout and budgets
    assert final == out / "finetune" / "final" and spec.layout == "polar" and spec.budgets == PolarBudgets(32, 48, 48)
    assert load_spec(None, out / "pretrain" / "final").tasks == ["reference"]
    assert set(result["metrics"]) == {
        f"{label}: {when} {stage}"
        for label, stage in (("policy discrimination", "pretrain"), ("preference with references", "finetune"))
        for when in ("before", "after")
    }
    assert "recipe: polar" in (final / "critics_config.yaml").read_text() and (final / "README.md").is_file()
    logged = json.loads((out / "pretrain" / "final" / "log_history.json").read_text())
    assert any("loss" in entry for entry in logged)
    again = polar.run(config, resume=True, progress=False)  # both stages done: nothing trains again
    assert again["final"] == str(final)


@pytest.mark.parametrize(
    "override, message",
    [
        ("run.max_steps=5", "pretrain.max_steps and finetune.max_steps"),
        ("data.finetune=''", "data.finetune is empty"),
        ("budgets.prompt=0", "budgets.prompt must be a positive int"),
    ],
)
def test_config_errors_name_the_key(tmp_path, base, pool, override, message):
    with pytest.raises(ConfigError, match=message):
        load_recipe_config(polar_yaml(tmp_path, base, pool, tmp_path / "run"), [override])


def test_records_without_the_stage_columns_are_refused(tmp_path, base, pool):
    config, _ = load_recipe_config(
        polar_yaml(tmp_path, base, {**pool, "pretrain": pool["finetune"]}, tmp_path / "r"), []
    )
    with pytest.raises(ValueError, match="lack positive, negative"):
        polar.run(config, progress=False)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, base, pool) -> Path:
    tmp = tmp_path_factory.mktemp("trained")
    config, _ = load_recipe_config(polar_yaml(tmp, base, pool, tmp / "run", steps=1), [])
    return Path(polar.run(config, progress=False)["final"])


def test_a_served_polar_model_gives_the_same_scores_as_in_process(trained):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from critics.serving import Critic
    from critics.serving.adapters import RemoteCritic
    from critics.serving.server import serve_in_background

    rows = [
        {"question": "q1", "reference": "SUM 5!", "response": "SUM 5!"},
        {"question": "q2", "reference": "...a b...", "response": "b-a?"},
    ]
    model = AutoModelForSequenceClassification.from_pretrained(str(trained))
    local = polar_scores(model, AutoTokenizer.from_pretrained(str(trained)), rows, load_spec(None, trained).budgets)
    critic = Critic.from_pretrained(str(trained), backend_options={"device": "cpu"})
    assert critic.task == "reference" and critic.tasks == ("reference",)
    with serve_in_background(critic) as (url, _):
        remote = RemoteCritic(url).score(rows)
        assert RemoteCritic(url).spec.layout == "polar"  # published by the server
        import httpx

        refused = httpx.post(f"{url}/score", json={"task": "pointwise", "items": [{"question": "q", "response": "r"}]})
        missing = httpx.post(f"{url}/score", json={"items": [{"question": "q", "response": "r"}]})
        openrlhf = httpx.post(f"{url}/get_reward", json={"query": ["q r"]})
    assert remote == pytest.approx(local, abs=1e-5)
    assert refused.status_code == 422 and "reference" in refused.json()["error"]["message"]
    assert missing.status_code == 422 and "reference" in missing.json()["error"]["message"]
    assert openrlhf.status_code == 422 and "labels" in openrlhf.json()["error"]["message"]


def test_a_polar_reward_runs_two_grpo_steps(tmp_path, trained):
    import datasets
    from trl import GRPOConfig, GRPOTrainer

    from critics.serving import Critic, reward_function

    policy = save_tiny_checkpoint(tmp_path / "policy")
    critic = Critic.from_pretrained(str(trained), backend_options={"device": "cpu"})
    reward = reward_function(critic, task="reference", reference_column="reference")
    data = datasets.Dataset.from_list(
        [{"prompt": [{"role": "user", "content": f"{i}+1"}], "reference": f"SUM {i + 1}!"} for i in range(8)]
    )
    args = GRPOConfig(
        output_dir=str(tmp_path / "grpo"),
        max_steps=2,
        per_device_train_batch_size=4,
        num_generations=4,
        max_completion_length=8,
        use_cpu=True,
        bf16=False,
        report_to=[],
        logging_steps=1,
        beta=0.0,
        save_strategy="no",
    )
    trainer = GRPOTrainer(model=str(policy), reward_funcs=[reward], args=args, train_dataset=data)
    trainer.train()
    rewards = [e["reward"] for e in trainer.state.log_history if "reward" in e]
    assert len(rewards) == 2 and all(math.isfinite(r) for r in rewards) and reward.failed == 0
    critic.close()


def two_se(a: dict, b: dict) -> float:
    return 2 * math.sqrt(a["stderr"] ** 2 + b["stderr"] ** 2)


@pytest.mark.slow
def test_pretraining_discriminates_policies_and_finetuning_learns_preferences(tmp_path, base, capsys):
    data = {
        name: write(tmp_path / f"{name}.jsonl", rows)
        for name, rows in (
            ("pretrain", triples(4000, 10)),
            ("pretrain_eval", triples(400, 11)),
            ("finetune", preferences(2000, 12)),
            ("finetune_eval", preferences(400, 13)),
        )
    }
    config = polar.PolarConfig(
        model=polar.ModelConfig(name_or_path=str(base), device="cpu"),
        data=polar.PolarData(**data),
        run=polar.PolarRunSettings(
            output_dir=str(tmp_path / "run"),
            learning_rate=1e-3,
            per_device_train_batch_size=32,
            save_steps=100000,
            logging_steps=25,
        ),
        budgets=PolarBudgets(64, 64, 64),
    )
    metrics = polar.run(config, progress=False)["metrics"]
    pre = metrics["policy discrimination: after pretrain"]
    before, after = (metrics[f"preference with references: {w} finetune"] for w in ("before", "after"))
    with capsys.disabled():
        print(
            f"\nPOLAR policy discrimination (held-out prompts): {metrics['policy discrimination: before pretrain']['accuracy']:.3f}"
            f" -> {pre['accuracy']:.3f} (n={pre['n']}); preference accuracy with references: before fine-tuning "
            f"{before['accuracy']:.3f} ± {before['stderr']:.3f}, after {after['accuracy']:.3f} ± {after['stderr']:.3f} "
            f"(n={after['n']}; gain {after['accuracy'] - before['accuracy']:+.3f}, 2 SE = {two_se(before, after):.3f})"
        )
    assert pre["accuracy"] >= 0.90
    assert after["accuracy"] - before["accuracy"] >= two_se(before, after)


@pytest.mark.shared_data
def test_pretraining_on_the_real_codet_pool_and_finetuning_on_llmbar_run_a_few_steps(
    tmp_path, base, shared_data, monkeypatch
):
    from critics.config import load_config
    from data_pipelines import BuildConfig, build
    from data_pipelines.builders.polar import PolarPreferenceBuilder
    from data_pipelines.sources.preference import LLMBar

    root = Path(__file__).resolve().parents[2]
    monkeypatch.chdir(root)
    triples_out = build(
        load_config(
            BuildConfig, root / "configs/data/codet_polar_triples.yaml", [f"output_dir={tmp_path / 'triples'}"]
        ),
        progress=False,
    ).output_dir
    prefs_out = build(
        BuildConfig(
            sources=[LLMBar(path=str(shared_data / "llmbar"))],
            builder=PolarPreferenceBuilder(),
            output_dir=str(tmp_path / "prefs"),
        ),
        progress=False,
    ).output_dir
    config = polar.PolarConfig(
        model=polar.ModelConfig(name_or_path=str(base), device="cpu"),
        data=polar.PolarData(pretrain=str(triples_out), finetune=str(prefs_out), eval_size=32),
        run=polar.PolarRunSettings(output_dir=str(tmp_path / "run"), per_device_train_batch_size=4, save_steps=3),
        pretrain=polar.PolarStage(max_steps=3),
        finetune=polar.PolarStage(max_steps=3),
        budgets=PolarBudgets(prompt=64, reference=160, candidate=160),
    )
    result = polar.run(config, progress=False)
    for stage in ("pretrain", "finetune"):
        state = json.loads((tmp_path / "run" / stage / "final" / "trainer_state.json").read_text())
        assert state["global_step"] == 3
    assert result["metrics"]["policy discrimination: after pretrain"]["n"] == 32
