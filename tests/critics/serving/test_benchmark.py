"""The serving benchmark runs end to end (tiny sizes), so its numbers can be trusted to come out."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def test_serving_throughput_smoke_run_prints_both_rates_and_the_ratio():
    command = [
        sys.executable,
        "benchmarks/serving_throughput.py",
        "--requests",
        "4",
        "--warmup",
        "2",
        "--concurrency",
        "4",
        "--max-new-tokens",
        "4",
        "--device",
        "cpu",
    ]
    done = subprocess.run(
        command, cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "one at a time (max_batch_size 1)" in done.stdout and "dynamic batching (max_batch_size 32)" in done.stdout
    assert "ratio (batched / one at a time)" in done.stdout and "p99" in done.stdout
    assert "ratio (served / in-process ceiling)" in done.stdout and "server batches (ceiling)" in done.stdout
