"""A run's outputs: an unwritable output_dir fails before anything loads, a full disk is one clear
error, an interrupted checkpoint swap is recovered, a finished staged run trains nothing on resume,
and a held-out question also asked in training is reported."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pytest

from critics.actors import ActorSettings
from critics.models import ModelConfig
from critics.recipes import critic_rl, critique_rl, polar, policy_grpo, refcritic, rlac, sft
from critics.recipes.common import DataSettings, EvalSettings, RunSettings, latest_checkpoint, load_data, resume_point
from data_pipelines import files
from data_pipelines.files import OutputError, aside_path


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    from critics.tiny import save_tiny_checkpoint

    return save_tiny_checkpoint(tmp_path_factory.mktemp("tiny") / "model")


def write_records(path: Path, n: int = 24, per_question: int = 1) -> Path:
    rows = []
    for i in range(n):
        q = i // per_question
        label = "correct" if i % 2 == 0 else "incorrect"
        rows.append(
            {
                "id": f"r{i}",
                "source": "t",
                "task": "pointwise",
                "question": f"{q % 7}+{q % 5}",
                "response": f"{q % 7}+{q % 5}={q % 7 + q % 5 + i % 2}",
                "label": label,
                "gold_answer": str(q % 7 + q % 5),
                "verifier": "source",
                "metadata": "{}",
                "critique": f"ok \\boxed{{{label.capitalize()}}}",
            }
        )
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def recipe_configs(missing: Path, out: Path) -> dict:
    """Every recipe, pointed at data and a model that do not exist: loading anything would fail otherwise."""
    model = ModelConfig(name_or_path=str(missing / "model"), device="cpu")
    data = DataSettings(train=str(missing / "records.jsonl"))
    run = RunSettings(output_dir=str(out))
    return {
        "sft": (sft, sft.SFTRecipeConfig(model=model, data=data, run=run)),
        "critic_rl": (critic_rl, critic_rl.CriticRLConfig(model=model, data=data, run=run)),
        "critique_rl": (
            critique_rl,
            critique_rl.CritiqueRLConfig(
                actor=ActorSettings(kind="self"),
                model=model,
                data=data,
                run=critique_rl.StagedRunSettings(output_dir=str(out)),
            ),
        ),
        "refcritic": (
            refcritic,
            refcritic.RefCriticConfig(
                actor=ActorSettings(kind="self"),
                model=model,
                data=data,
                run=critique_rl.StagedRunSettings(output_dir=str(out)),
            ),
        ),
        "polar": (
            polar,
            polar.PolarConfig(
                model=model,
                data=polar.PolarData(pretrain=str(missing / "a.jsonl"), finetune=str(missing / "b.jsonl")),
                run=polar.PolarRunSettings(output_dir=str(out)),
            ),
        ),
        "rlac": (rlac, rlac.RLACConfig(data=rlac.RLACData(train=str(missing / "prompts.jsonl")), output_dir=str(out))),
        "policy_grpo": (
            policy_grpo,
            policy_grpo.PolicyGRPOConfig(
                model=model,
                critic=policy_grpo.CriticRewardSettings(url="http://127.0.0.1:9"),
                data=policy_grpo.PolicyDataSettings(train=str(missing / "prompts.jsonl")),
                run=run,
            ),
        ),
    }


def read_only_below(monkeypatch, root: Path) -> None:
    """Files under ``root`` cannot be created, as on a read-only mount (root ignores chmod 0o555)."""
    real = os.open

    def guarded(path, flags, *args, **kwargs):
        if Path(path).is_relative_to(root) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
        return real(path, flags, *args, **kwargs)

    monkeypatch.setattr(files.os, "open", guarded)


@pytest.mark.parametrize("recipe", ["sft", "critic_rl", "critique_rl", "refcritic", "polar", "rlac", "policy_grpo"])
def test_a_read_only_output_dir_fails_before_anything_loads(tmp_path, monkeypatch, recipe):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    read_only_below(monkeypatch, tmp_path / "mnt")
    module, config = recipe_configs(tmp_path / "missing", tmp_path / "mnt" / "run")[recipe]
    with pytest.raises(OutputError) as caught:  # not FileNotFoundError: the data and model were never read
        module.run(config, progress=False)
    assert str(caught.value).startswith(
        f"cannot write to {'output_dir' if recipe == 'rlac' else 'run.output_dir'} {tmp_path / 'mnt' / 'run'}"
    )
    assert str(caught.value).endswith(": Read-only file system (EROFS)") and "\n" not in str(caught.value)


def test_sampling_on_policy_data_checks_its_output_before_the_actor_loads(tmp_path, monkeypatch):
    from critics import onpolicy

    read_only_below(monkeypatch, tmp_path / "mnt")
    config = onpolicy.SampleConfig(
        actor=ActorSettings(model=str(tmp_path / "missing")),
        questions=str(tmp_path / "missing.jsonl"),
        output_dir=str(tmp_path / "mnt" / "out"),
    )
    with pytest.raises(OutputError, match="Read-only file system"):
        onpolicy.run(config, progress=False)


def test_a_file_where_output_dir_should_be_is_an_error_before_loading(tmp_path):
    (tmp_path / "run").write_text("not a folder")
    module, config = recipe_configs(tmp_path / "missing", tmp_path / "run")["sft"]
    with pytest.raises(OutputError, match=f"^run.output_dir {tmp_path / 'run'} is a file, not a folder$"):
        module.run(config, progress=False)


def full_disk_in_weights(monkeypatch):
    """What safetensors raises when the disk fills while the weights are written."""
    from safetensors import SafetensorError

    def full(*args, **kwargs):
        raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")

    monkeypatch.setattr("transformers.modeling_utils.safe_save_file", full)


def full_disk_in_state(monkeypatch):
    """An OSError(ENOSPC) from the trainer state's JSON write."""

    def full(self, path):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path)

    monkeypatch.setattr("transformers.trainer_callback.TrainerState.save_to_json", full)


@pytest.mark.parametrize("fill", [full_disk_in_weights, full_disk_in_state])
def test_a_full_disk_during_a_checkpoint_is_one_error_naming_output_dir(tmp_path, tiny, monkeypatch, fill):
    records = write_records(tmp_path / "records.jsonl")
    config = sft.SFTRecipeConfig(
        model=ModelConfig(name_or_path=str(tiny), device="cpu"),
        data=DataSettings(train=str(records), eval_size=4),
        run=RunSettings(output_dir=str(tmp_path / "run"), max_steps=2, save_steps=1, per_device_train_batch_size=4),
        eval=EvalSettings(enabled=False),
    )
    fill(monkeypatch)
    with pytest.raises(OutputError) as caught:
        sft.run(config, progress=False)
    assert str(caught.value) == f"cannot write to run.output_dir {tmp_path / 'run'}: No space left on device (ENOSPC)"
    assert latest_checkpoint(tmp_path / "run") is None  # the half-written checkpoint never counts


def checkpoint(path: Path, tag: str) -> Path:
    path.mkdir(parents=True)
    (path / "trainer_state.json").write_text(json.dumps({"tag": tag}))
    (path / "model.safetensors").write_text(tag)
    return path


def test_resume_recovers_a_checkpoint_swap_killed_between_its_renames(tmp_path):
    run = tmp_path / "run"
    checkpoint(run / "checkpoint-2", "two")
    checkpoint(aside_path(run / "checkpoint-4"), "old four")  # moved aside, the new one not yet renamed in
    assert latest_checkpoint(run).name == "checkpoint-2"  # what a resume without recovery would pick
    assert resume_point(run, True) == str(run / "checkpoint-4")
    assert json.loads((run / "checkpoint-4" / "trainer_state.json").read_text()) == {"tag": "old four"}
    assert not aside_path(run / "checkpoint-4").exists()


def test_resume_cleans_a_half_deleted_old_checkpoint(tmp_path):
    run = tmp_path / "run"
    checkpoint(run / "checkpoint-4", "new four")
    half = checkpoint(aside_path(run / "checkpoint-4"), "old four")
    (half / "model.safetensors").unlink()  # killed while deleting the old one
    assert resume_point(run, True) == str(run / "checkpoint-4")
    assert json.loads((run / "checkpoint-4" / "trainer_state.json").read_text()) == {"tag": "new four"}
    assert sorted(p.name for p in run.iterdir()) == ["checkpoint-4"]


def finished_stage(stage_dir: Path, metrics: dict) -> Path:
    final = stage_dir / "final"
    final.mkdir(parents=True)
    (final / "trainer_state.json").write_text("{}")
    (final / "critic_spec.json").write_text("{}")  # every recipe writes the spec into final/
    (final / "metrics.json").write_text(json.dumps(metrics))
    return final


@pytest.mark.parametrize(
    "recipe, stages",
    [("critique_rl", ("stage1", "stage2")), ("refcritic", ("cold_start", "grpo")), ("polar", ("pretrain", "finetune"))],
)
def test_resuming_a_finished_staged_run_trains_nothing(tmp_path, monkeypatch, recipe, stages):
    import transformers

    out = tmp_path / "run"
    finished_stage(out / stages[0], {"after first": {"accuracy": 0.5}})
    last = finished_stage(out / stages[1], {"after last": {"accuracy": 0.75}})
    trained, built = [], []
    monkeypatch.setattr(transformers.Trainer, "train", lambda self, *a, **k: trained.append(self))
    for module, name in ((critic_rl, "build"), (sft, "build"), (polar, "build_stage")):
        monkeypatch.setattr(module, name, lambda *a, _name=name, **k: built.append(_name))
    module, config = recipe_configs(tmp_path / "missing", out)[recipe]
    result = module.run(config, resume=True, progress=False)
    assert trained == [] and built == []
    assert result["final"] == str(last)
    assert result["metrics"]["after last"] == {"accuracy": 0.75}


def test_held_out_records_whose_question_is_in_train_are_counted_with_ids(tmp_path):
    records = write_records(tmp_path / "records.jsonl", n=60, per_question=3)  # three solutions per question
    data = load_data(DataSettings(train=str(records), eval_size=12), seed=0)
    asked = set(data.train["question"])
    expected = [row["id"] for row in data.eval if row["question"] in asked]
    assert 0 < len(expected) <= 12
    assert data.overlap == {"held_out": 12, "question_in_train": len(expected), "examples": expected[:5]}

    unique = write_records(tmp_path / "unique.jsonl", n=7)  # seven distinct questions
    data = load_data(DataSettings(train=str(unique), eval_size=3), seed=0)
    assert data.overlap == {"held_out": 3, "question_in_train": 0, "examples": []}
