"""critics eval on VL-RewardBench's format with a tiny vision-language critic: in process and over
HTTP (images sent inline) give the same numbers; an oracle scores 1.0; the macro average is reported."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from critics.eval.benchmarks import BENCHMARKS
from critics.eval.run import EvalConfig, run
from critics.judging.spec import CriticSpec
from critics.tiny import save_tiny_vlm


@pytest.fixture(scope="module")
def bench(tmp_path_factory) -> str:
    root = tmp_path_factory.mktemp("vl")
    (root / "img").mkdir()
    colours = ["red", "blue", "green", "yellow"]
    for colour in colours:
        Image.new("RGB", (16, 16), colour).save(root / "img" / f"{colour}.png")
    rows = [
        {
            "id": f"v{i}",
            "query": "What colour is the square?",
            "image_path": f"img/{colour}.png",
            "response": [colour, colours[(i + 1) % 4]],
            "human_ranking": [0, 1] if i % 2 else [1, 0],
            "query_source": ["wildvision", "povid"][i % 2],
        }
        for i, colour in enumerate(colours * 2)
    ]
    rows[-1]["response"] = ["red", "blue", "green"]  # malformed: three responses
    (root / "vl.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(root / "vl.jsonl")


def test_vl_rewardbench_in_process_and_over_http_agree(tmp_path, bench):
    from critics.serving import Critic
    from critics.serving.server import serve_in_background

    model = save_tiny_vlm(tmp_path / "vlm")
    spec = f"vl_rewardbench:{bench}"
    CriticSpec(tasks=["pairwise"], style="compact", max_new_tokens=6).save(model)  # read by both sides
    common = dict(benches=[spec], progress=False)
    local = run(EvalConfig(target=str(model), output_dir=str(tmp_path / "local"), device="cpu", **common))[spec]
    critic = Critic.from_pretrained(str(model), backend_options={"device": "cpu"})
    with serve_in_background(critic) as (url, _):
        remote = run(EvalConfig(target=url, output_dir=str(tmp_path / "remote"), **common))[spec]
    assert local["items"] == 7 and local["quarantined"] == 1 and remote["failed_requests"] == 0
    for name in ("accuracy", "macro_accuracy", "subsets", "breakdown"):
        assert local[name] == remote[name], name
    assert set(local["subsets"]) == {"wildvision", "povid"}


class Oracle:
    scalar = False

    def __init__(self, spec):
        name, _, path = spec.partition(":")
        items = BENCHMARKS.get(name)(path, None, False).load()[0]
        self.answers = {json.dumps(r.payload, sort_keys=True): r.expected for i in items for r in i.requests}

    def __call__(self, payloads):
        return [(self.answers[json.dumps(p, sort_keys=True)], None, "", "ok") for p in payloads]

    def close(self):
        pass


def test_an_oracle_scores_full_marks_with_images_attached(tmp_path, bench):
    spec = f"vl_rewardbench:{bench}"
    result = run(
        EvalConfig(target="x", benches=[spec], output_dir=str(tmp_path / "o"), progress=False), judge=Oracle(spec)
    )[spec]
    assert result["accuracy"] == result["macro_accuracy"] == 1.0
    items = BENCHMARKS.get("vl_rewardbench")(bench, None, False).load()[0]
    assert all(Path(p).is_file() for i in items for p in i.requests[0].payload["images"])
