"""``critics train CONFIG --nproc N``: start N processes of the same training run, with a stock launcher.

On CUDA the launcher is ``accelerate launch`` with an accelerate config (``configs/accelerate/ddp.yaml``
by default; ``zero2.yaml``/``zero3.yaml`` for DeepSpeed). On a CPU it is ``torchrun --standalone``
with the gloo backend: accelerate's own CPU multi-process path expects an MPI launcher and otherwise
starts a single process (``../shared/STACK.md``). A DeepSpeed accelerate config is handed to the CPU
ranks the way ``accelerate launch`` hands it over, as ``ACCELERATE_DEEPSPEED_*`` variables that
``transformers.TrainingArguments`` reads. The exact line is printed before it runs. Nothing here
re-implements a launcher: multi-node runs are an accelerate config (hosts, ports, hostfile).
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

DEFAULT_CONFIG = Path(__file__).resolve().parents[2] / "configs" / "accelerate" / "ddp.yaml"
# accelerate config keys of a DeepSpeed section -> the variables ``accelerate launch`` sets from them
DEEPSPEED_ENV = {
    "zero_stage": "ACCELERATE_DEEPSPEED_ZERO_STAGE",
    "offload_optimizer_device": "ACCELERATE_DEEPSPEED_OFFLOAD_OPTIMIZER_DEVICE",
    "offload_param_device": "ACCELERATE_DEEPSPEED_OFFLOAD_PARAM_DEVICE",
    "zero3_init_flag": "ACCELERATE_DEEPSPEED_ZERO3_INIT",
    "zero3_save_16bit_model": "ACCELERATE_DEEPSPEED_ZERO3_SAVE_16BIT_MODEL",
    "deepspeed_config_file": "ACCELERATE_DEEPSPEED_CONFIG_FILE",
}
CPU_TYPES = ("NO", "MULTI_CPU", "MULTI_GPU", "DEEPSPEED")


def inside_launcher() -> bool:
    """Whether this process is already one rank of a launched run (torchrun/accelerate set LOCAL_RANK)."""
    return "LOCAL_RANK" in os.environ


def launch_line(
    train_args: list[str], nproc: int, accelerate_config: str | None = None, cuda: bool | None = None
) -> tuple[list[str], dict[str, str]]:
    """``(command, extra environment)`` that starts ``critics train *train_args`` on ``nproc`` processes.

    >>> command, env = launch_line(["run.yaml", "--resume"], 2, cuda=False)
    >>> shlex.join(command[1:]), env
    ('-m torch.distributed.run --standalone --nproc_per_node 2 -m critics.cli train run.yaml --resume', {})
    """
    if nproc < 1:
        raise ValueError(f"--nproc must be at least 1, got {nproc}")
    if cuda is None:
        import torch

        cuda = torch.cuda.is_available()
    program = ["-m", "critics.cli", "train", *train_args]
    if cuda:
        config = accelerate_config or (str(DEFAULT_CONFIG) if DEFAULT_CONFIG.is_file() else None)
        head = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", str(nproc)]
        head += ["--config_file", config] if config else ["--multi_gpu"]
        return head + program, {}
    env = cpu_environment(accelerate_config) if accelerate_config else {}
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        str(nproc),
        *program,
    ], env


def cpu_environment(accelerate_config: str) -> dict[str, str]:
    """The variables that carry an accelerate config's DeepSpeed section to CPU ranks started by torchrun
    (none for plain data parallelism, which is what torchrun does anyway)."""
    import yaml

    path = Path(accelerate_config)
    if not path.is_file():
        raise FileNotFoundError(f"--accelerate-config: no file {path}")
    settings = yaml.safe_load(path.read_text()) or {}
    kind = str(settings.get("distributed_type", "NO"))
    if kind not in CPU_TYPES:
        raise ValueError(
            f"--accelerate-config {path}: distributed_type {kind} needs GPUs; on a CPU use "
            f"{', '.join(CPU_TYPES[1:])} (or no --accelerate-config)"
        )
    if kind != "DEEPSPEED":
        return {}
    env = {"ACCELERATE_USE_DEEPSPEED": "true", "ACCELERATE_MIXED_PRECISION": "no"}  # bf16 is the GPU's
    for key, value in (settings.get("deepspeed_config") or {}).items():
        if key in DEEPSPEED_ENV and value is not None:
            env[DEEPSPEED_ENV[key]] = str(value).lower() if isinstance(value, bool) else str(value)
    return env


def launch(train_args: list[str], nproc: int, accelerate_config: str | None = None) -> int:
    """Print the launch line, run it (stdout and stderr pass through), return its exit status.

    If one rank dies the launcher stops the others and exits non-zero (torchrun's agent does; so
    does ``accelerate launch``, which runs it), so a crashed rank never leaves the run hanging.
    """
    command, env = launch_line(train_args, nproc, accelerate_config)
    shown = [*(f"{k}={v}" for k, v in env.items()), *command]
    print(f"critics train: {shlex.join(shown)}", file=sys.stderr, flush=True)
    return subprocess.call(command, env={**os.environ, **env})
