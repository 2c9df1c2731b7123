"""Run by ``test_bounds.py`` in a process of its own, so that its peak memory is its own: a critic
whose model has a 512-token context judges items of 200,000 characters in process, over ``/score``,
``/get_reward`` and the chat endpoint, and in ``critics eval``; prints one JSON object of what came
back, with the resident memory after loading the model and the peak after all of it."""

from __future__ import annotations

import json
import sys
from pathlib import Path

CHARS = 200_000


def rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def main(folder: str) -> None:
    import httpx
    import torch

    from critics.eval.run import EvalConfig, run
    from critics.judging.spec import CriticSpec
    from critics.serving import Critic
    from critics.serving.server import serve_in_background
    from critics.tiny import save_tiny_checkpoint

    torch.set_num_threads(1)
    root = Path(folder)
    model = save_tiny_checkpoint(root / "model", max_positions=512)
    CriticSpec(tasks=["pointwise", "pairwise", "step"], style="compact", max_new_tokens=8).save(model)
    long = "7" * (CHARS // 2) + " so the answer is 42. " + "9" * (CHARS // 2)
    items = [{"question": f"What is 6*{i}?", "response": long} for i in range(48)]
    items += [{"task": "pairwise", "question": "Which?", "response_a": long, "response_b": "short"}] * 8
    items += [{"task": "step", "question": "Steps?", "steps": ["1", long, "3"]}] * 8
    bench = root / "long.jsonl"
    bench.write_text(
        "".join(json.dumps({"question": f"q{i}", "response": long, "label": "correct"}) + "\n" for i in range(64))
    )
    out: dict = {}
    with Critic.from_pretrained(str(model), backend_options={"device": "cpu"}) as critic:
        baseline = rss_kib("VmRSS")
        try:  # reset the peak to now, so that it measures what judging adds (Linux 4.0+)
            Path("/proc/self/clear_refs").write_text("5")
        except OSError:
            pass
        judged = critic.critique(items)
        out["in_process"] = [c.prompt for c in judged]
        out["texts"] = sum(bool(c.text) for c in judged)
        with serve_in_background(critic) as (url, _):
            scored = httpx.post(f"{url}/score", json={"items": items[:16]}, timeout=300).json()["results"]
            out["score"] = [r["prompt"] for r in scored]
            query = f"<|im_start|>user\nq<|im_end|>\n<|im_start|>assistant\n{long}<|im_end|>"
            out["get_reward"] = httpx.post(f"{url}/get_reward", json={"query": [query] * 4}, timeout=300).json()
            chat = httpx.post(
                f"{url}/v1/chat/completions",
                timeout=300,
                json={"messages": [{"role": "user", "content": long}], "max_tokens": 10**9},
            )
            out["chat"] = {"status": chat.status_code, "body": chat.json()}
            out["metrics"] = [
                line
                for line in httpx.get(f"{url}/metrics").text.splitlines()
                if line.startswith("critics_prompts_cut_total")
            ]
    metrics = run(
        EvalConfig(
            target=str(model),
            benches=[f"pointwise:{bench}"],
            output_dir=str(root / "eval"),
            device="cpu",
            progress=False,
        )
    )
    out["eval_too_long"] = next(iter(metrics.values()))["too_long"]
    refused = Critic.from_pretrained(str(model), backend_options={"device": "cpu"}, truncate=False)
    with refused:
        out["refused"] = [(c.prompt, c.score, c.text) for c in refused.critique(items[:4])]
    out["baseline_kib"], out["peak_kib"] = baseline, rss_kib("VmHWM")
    print("PROBE " + json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1])
