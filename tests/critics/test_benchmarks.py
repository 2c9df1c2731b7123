"""The GPU benchmark's code paths run (with tiny shapes on a CPU), so it works when a GPU is there."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_gpu_grpo_smoke_run_prints_both_sides_and_the_ratio():
    env = {**os.environ, "TQDM_DISABLE": "1"}
    done = subprocess.run(
        [sys.executable, "benchmarks/gpu_grpo.py", "--smoke", "--steps", "2", "--rounds", "1"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "plain trl.GRPOTrainer" in done.stdout and "critics critic_rl" in done.stdout
    assert "completion tok/s" in done.stdout and "ratio (ours / plain)" in done.stdout
