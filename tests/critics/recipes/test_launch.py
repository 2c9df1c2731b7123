"""``critics train --nproc N``: the launch line on CUDA and on a CPU (what runs is tested in test_distributed)."""

from __future__ import annotations

import pytest

from critics.recipes.launch import DEFAULT_CONFIG, launch_line

ZERO2 = str(DEFAULT_CONFIG.parent / "zero2.yaml")


def test_cuda_uses_accelerate_launch_with_the_ddp_config_by_default():
    command, env = launch_line(["run.yaml", "run.max_steps=5"], 8, cuda=True)
    assert command[1:] == [
        "-m",
        "accelerate.commands.launch",
        "--num_processes",
        "8",
        "--config_file",
        str(DEFAULT_CONFIG),
        "-m",
        "critics.cli",
        "train",
        "run.yaml",
        "run.max_steps=5",
    ]
    assert env == {}
    assert launch_line(["run.yaml"], 2, ZERO2, cuda=True)[0][6] == ZERO2


def test_a_cpu_uses_torchrun_and_hands_deepspeed_over_as_accelerate_does():
    command, env = launch_line(["run.yaml"], 2, ZERO2, cuda=False)
    assert command[1:6] == ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    assert env["ACCELERATE_USE_DEEPSPEED"] == "true" and env["ACCELERATE_DEEPSPEED_ZERO_STAGE"] == "2"
    assert env["ACCELERATE_MIXED_PRECISION"] == "no"
    assert launch_line(["run.yaml"], 2, str(DEFAULT_CONFIG), cuda=False)[1] == {}  # DDP is torchrun's own


def test_a_gpu_only_config_on_a_cpu_and_a_bad_count_are_errors(tmp_path):
    fsdp = tmp_path / "fsdp.yaml"
    fsdp.write_text("distributed_type: FSDP\nnum_processes: 2\n")
    with pytest.raises(ValueError, match="distributed_type FSDP needs GPUs"):
        launch_line(["run.yaml"], 2, str(fsdp), cuda=False)
    with pytest.raises(FileNotFoundError, match="--accelerate-config: no file"):
        launch_line(["run.yaml"], 2, str(tmp_path / "missing.yaml"), cuda=False)
    with pytest.raises(ValueError, match="--nproc must be at least 1"):
        launch_line(["run.yaml"], 0, cuda=False)
