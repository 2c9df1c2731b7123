"""Every input is bounded in tokens (issue 16's must-show): items of 200,000 characters against a
model whose context is 512 tokens are cut to the critic's prompt budget (or refused as
``too_long``), counted everywhere, and the process stays far under 2 GB above the model's own
memory; a chat request asking for 10^9 tokens is capped and answered."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx

from critics.judging.spec import CriticSpec
from critics.serving import Critic
from critics.serving.server import serve_in_background

PROBE = Path(__file__).with_name("bounds_probe.py")


def test_items_of_200000_characters_are_cut_counted_and_memory_stays_bounded(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[3])}
    done = subprocess.run(
        [sys.executable, str(PROBE), str(tmp_path)], env=env, capture_output=True, text=True, timeout=600
    )
    line = next((x for x in done.stdout.splitlines() if x.startswith("PROBE ")), None)
    assert line is not None, done.stdout[-3000:] + done.stderr[-3000:]
    out = json.loads(line[len("PROBE ") :])
    assert out["in_process"] == ["truncated"] * 64 and out["texts"] == 64  # cut, then judged
    assert out["score"] == ["truncated"] * 16
    assert len(out["get_reward"]["rewards"]) == 4
    assert out["chat"]["status"] == 200
    assert out["chat"]["body"]["usage"]["completion_tokens"] <= 8  # the spec's max_new_tokens, not 10^9
    assert out["chat"]["body"]["usage"]["prompt_tokens"] <= 512 - 8
    assert 'critics_prompts_cut_total{endpoint="/score",action="truncated"} 16' in out["metrics"]
    assert 'critics_prompts_cut_total{endpoint="/get_reward",action="truncated"} 4' in out["metrics"]
    assert 'critics_prompts_cut_total{endpoint="/v1/chat/completions",action="truncated"} 1' in out["metrics"]
    assert out["eval_too_long"] == 64  # a column of the eval report
    assert out["refused"] == [["too_long", None, ""]] * 4  # truncate: false refuses and never generates
    grown_mb = (out["peak_kib"] - out["baseline_kib"]) / 1024
    print(f"\npeak memory above the loaded model: {grown_mb:.0f} MB")
    assert grown_mb < 2048


def test_a_chat_request_for_a_billion_tokens_is_capped_and_answered(tiny_checkpoint):
    critic = Critic.from_pretrained(
        str(tiny_checkpoint), backend_options={"device": "cpu"}, spec=CriticSpec(style="compact", max_new_tokens=6)
    )
    with serve_in_background(critic) as (url, _):
        reply = httpx.post(
            f"{url}/v1/chat/completions",
            timeout=120,
            json={"messages": [{"role": "user", "content": "Is 2+2=4?"}], "max_tokens": 10**9, "temperature": 1.0},
        )
        capped = httpx.post(
            f"{url}/v1/chat/completions",
            timeout=120,
            json={"messages": [{"role": "user", "content": "Is 2+2=4?"}], "max_completion_tokens": 10**9, "n": 2},
        )
    assert reply.status_code == 200 and capped.status_code == 200
    assert reply.json()["usage"]["completion_tokens"] <= 6
    assert all(c["finish_reason"] in ("stop", "length") for c in capped.json()["choices"])
    assert capped.json()["usage"]["completion_tokens"] <= 2 * 6
