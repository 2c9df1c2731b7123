"""Recipes end to end on a tiny model: checkpoints, cards, curves, atomic saves, crash and resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from critics.cli import load_recipe_config
from critics.recipes import critic_rl, sft
from critics.recipes.common import AtomicCheckpoints, latest_checkpoint
from critics.tiny import save_tiny_checkpoint

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return save_tiny_checkpoint(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture(scope="module")
def records(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("data") / "records.jsonl"
    rows = []
    for i in range(40):
        a, b = i % 7, i % 5
        claimed = a + b + (i % 2)
        verdict = "Correct" if i % 2 == 0 else "Incorrect"
        rows.append(
            {
                "id": f"r{i}",
                "source": "t",
                "task": "pointwise",
                "question": f"q{i}",
                "response": f"{a}+{b}={claimed}",
                "label": verdict.lower(),
                "gold_answer": str(a + b),
                "verifier": "source",
                "metadata": "{}",
                "critique": f"{a + b} \\boxed{{{verdict}}}",
            }
        )
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def write_yaml(path: Path, text: str) -> str:
    path.write_text(textwrap.dedent(text))
    return str(path)


def rl_yaml(
    tmp_path: Path,
    tiny: Path,
    records: Path,
    out: Path,
    max_steps: int,
    save_steps: int,
    reward: str = "{name: pointwise_verdict}",
) -> str:
    return write_yaml(
        tmp_path / "rl.yaml",
        f"""
        recipe: critic_rl
        model: {{name_or_path: {tiny}, device: cpu}}
        data: {{train: {records}, eval_size: 8, task: pointwise}}
        run: {{output_dir: {out}, max_steps: {max_steps}, save_steps: {save_steps}, learning_rate: 1.0e-3,
               per_device_train_batch_size: 8, logging_steps: 1, save_total_limit: 10}}
        grpo: {{num_generations: 4, max_completion_length: 16, beta: 0.0}}
        rewards: [{reward}]
        template: {{style: compact, think: false}}
        eval: {{max_new_tokens: 16}}
        """,
    )


def test_sft_then_critic_rl_write_checkpoints_cards_and_curves(tmp_path, tiny, records):
    config, module = load_recipe_config(
        write_yaml(
            tmp_path / "sft.yaml",
            f"""
        recipe: sft
        model: {{name_or_path: {tiny}, device: cpu}}
        data: {{train: {records}, eval_size: 8, task: pointwise}}
        run: {{output_dir: {tmp_path / "sft"}, max_steps: 4, save_steps: 2, learning_rate: 1.0e-3,
               per_device_train_batch_size: 8}}
        template: {{style: compact}}
        eval: {{max_new_tokens: 16}}
        """,
        ),
        [],
    )
    assert module is sft
    result = sft.run(config, progress=False)
    final = Path(result["final"])
    assert result["metrics"]["critique_filter"]["kept"] == 32  # every synthetic critique matches its label
    assert {"README.md", "metrics.json", "critics_config.yaml", "model.safetensors"} <= {
        p.name for p in final.iterdir()
    }
    assert latest_checkpoint(tmp_path / "sft").name == "checkpoint-4"
    assert not (tmp_path / "sft" / ".staging").exists()
    assert sorted(p.name for p in (tmp_path / "sft").iterdir() if p.name.startswith(".")) == []  # no swap leftovers
    assert result["metrics"]["held_out_overlap"] == {"held_out": 8, "question_in_train": 0, "examples": []}
    card = (final / "README.md").read_text()
    assert "None of the 8 held-out records asks a question that a training record also asks." in card
    assert "https://github.com/)" not in card and "$" not in card

    rl_config, _ = load_recipe_config(rl_yaml(tmp_path, final, records, tmp_path / "rl", 3, 3), [])
    rl = critic_rl.run(rl_config, progress=False)
    card = (Path(rl["final"]) / "README.md").read_text()
    assert "critic_rl" in card and str(final) in card and "PointwiseVerdictReward" in card
    assert "| before |" in card and "| after GRPO |" in card
    assert (Path(rl["final"]) / "training_curves.png").stat().st_size > 1000


def test_training_over_a_previous_run_needs_resume(tmp_path, tiny, records):
    out = tmp_path / "rl"
    (out / "checkpoint-2").mkdir(parents=True)
    (out / "checkpoint-2" / "trainer_state.json").write_text("{}")
    config, _ = load_recipe_config(rl_yaml(tmp_path, tiny, records, out, 3, 3), [])
    with pytest.raises(FileExistsError, match="pass --resume"):
        critic_rl.run(config, progress=False)


def test_an_unfinished_checkpoint_is_never_resumed_from(tmp_path):
    for name in ("checkpoint-2", "checkpoint-4"):
        (tmp_path / name).mkdir()
    (tmp_path / "checkpoint-2" / "trainer_state.json").write_text("{}")
    (tmp_path / ".staging" / "checkpoint-6").mkdir(parents=True)
    assert latest_checkpoint(tmp_path).name == "checkpoint-2"


def test_trainer_hooks_exist():
    """AtomicCheckpoints overrides these transformers.Trainer methods; fail loudly if they go."""
    from transformers import Trainer
    from trl import GRPOTrainer, SFTTrainer

    for cls in (Trainer, GRPOTrainer, SFTTrainer):
        assert callable(cls._save_checkpoint) and callable(cls._get_output_dir)
    assert {"_save_checkpoint", "_get_output_dir"} <= set(vars(AtomicCheckpoints))


RUNNER = """
import json, sys
from dataclasses import dataclass
from critics.rewards import REWARDS
from critics.rewards.verdict import PointwiseVerdictReward

@REWARDS.register("recording")
@dataclass(frozen=True)
class Recording:
    path: str
    __name__ = "recording"
    def __call__(self, prompts, completions, trainer_state=None, **kwargs):
        with open(self.path, "a") as f:
            f.write(json.dumps({"step": trainer_state.global_step, "prompts": [p[-1]["content"] for p in prompts]}) + "\\n")
        return PointwiseVerdictReward()(prompts, completions, **kwargs)

from critics.cli import main
sys.exit(main(sys.argv[1:]))
"""


def train_process(config: str, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-c", RUNNER, "train", config, "--no-progress", *extra],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def steps_seen(path: Path) -> dict[int, list[str]]:
    seen: dict[int, list[str]] = {}
    for line in path.read_text().splitlines():
        entry = json.loads(line)
        seen[entry["step"]] = entry["prompts"]  # a step replayed after the crash overwrites its partial record
    return seen


def test_a_killed_run_resumes_to_max_steps_with_the_same_data_order(tmp_path, tiny, records):
    reference_log, crashed_log = tmp_path / "reference.jsonl", tmp_path / "crashed.jsonl"
    reference = rl_yaml(
        tmp_path, tiny, records, tmp_path / "ref", 8, 3, reward=f"{{name: recording, path: {reference_log}}}"
    )
    (tmp_path / "ref.yaml").write_text(Path(reference).read_text())
    done = train_process(str(tmp_path / "ref.yaml"))
    assert done.wait(timeout=300) == 0, done.stderr.read()

    config = rl_yaml(
        tmp_path, tiny, records, tmp_path / "run", 8, 3, reward=f"{{name: recording, path: {crashed_log}}}"
    )
    victim = train_process(config)
    deadline = time.time() + 240
    while latest_checkpoint(tmp_path / "run") is None and victim.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert latest_checkpoint(tmp_path / "run") is not None, "the run died before its first checkpoint"
    assert max(steps_seen(crashed_log)) < 8, "the run finished before it could be killed"

    resumed = train_process(config, "--resume")
    assert resumed.wait(timeout=300) == 0, resumed.stderr.read()
    state = json.loads((tmp_path / "run" / "final" / "trainer_state.json").read_text())
    assert state["global_step"] == 8
    assert [e["step"] for e in state["log_history"] if "loss" in e] == list(range(1, 9))
    assert steps_seen(crashed_log) == steps_seen(reference_log)


def test_sft_can_sample_its_critiques_from_a_teacher(tmp_path, tiny, records):
    config, _ = load_recipe_config(
        write_yaml(
            tmp_path / "teacher.yaml",
            f"""
        recipe: sft
        model: {{name_or_path: {tiny}, device: cpu}}
        data: {{train: {records}, eval_size: 8}}
        critiques: {{teacher: {tiny}, samples_per_row: 3, max_new_tokens: 8, temperature: 1.0}}
        template: {{style: compact}}
        """,
        ),
        [],
    )
    import datasets

    rows = datasets.Dataset.from_json(str(records)).select(range(5))
    critiques = sft.collect_critiques(config, rows)
    assert len(critiques) == 5 and all(len(c) == 3 and all(isinstance(t, str) for t in c) for c in critiques)
    # a random teacher writes no verdicts: the filter keeps nothing and says why
    kept, stats = sft.filter_critiques(list(rows), critiques, config.template)
    assert kept == [] and sum(stats.values()) == 15 and "kept" not in stats
