"""Rows/s of the GSM8K pointwise build with math verification: cold, parallel and cached.

The peer is what a user would write without the suite: one loop that reads the file and calls
math-verify's ``parse``/``verify`` on each solution against the gold answer, then saves a
``datasets.Dataset``. Our build does more (validation, quarantine, data card, atomic save), so
the cold ratio says what that costs and the cached ratio what the cache saves.

    python benchmarks/build_throughput.py [--data ../shared/data] [--num-proc 2]
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

from data_pipelines import BuildConfig, build
from data_pipelines.builders.pointwise import PointwiseBuilder
from data_pipelines.sources.math import GSM8KSolutions

MODELS = ("6b_finetuning", "6b_verification", "175b_finetuning", "175b_verification")


def peer(path: Path, out: Path) -> int:
    """The hand-written loop: math-verify on every solution, then save."""
    import datasets
    from math_verify import parse, verify

    rows = []
    for line in path.open(encoding="utf-8"):
        raw = json.loads(line)
        gold = parse(raw["ground_truth"].rsplit("A:", 1)[1].strip())
        for model in MODELS:
            solution = raw[model]["solution"]
            answer = parse(solution.rsplit("A:", 1)[-1].strip())
            rows.append(
                {
                    "question": raw["question"],
                    "response": solution,
                    "label": "correct" if verify(gold, answer) else "incorrect",
                }
            )
    datasets.Dataset.from_list(rows).save_to_disk(str(out))
    return len(rows)


def timed(fn, *args) -> tuple[float, object]:
    start = time.perf_counter()
    value = fn(*args)
    return time.perf_counter() - start, value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    parser.add_argument("--num-proc", type=int, default=2)
    args = parser.parse_args()
    path = Path(args.data) / "gsm8k" / "example_model_solutions.jsonl"
    work = Path(tempfile.mkdtemp(prefix="build-bench-"))
    try:
        peer_s, n = timed(peer, path, work / "peer")

        def ours(num_proc: int, name: str):
            config = BuildConfig(
                sources=[GSM8KSolutions(path=str(path))],
                builder=PointwiseBuilder(label_from="verifier", verifier="math"),
                output_dir=str(work / name),
                num_proc=num_proc,
            )
            return build(config, progress=False)

        cold1_s, result = timed(ours, 1, "one")
        cold_s, _ = timed(ours, args.num_proc, "many")
        cached_s, cached = timed(ours, args.num_proc, "many")
        assert cached.cached and result.stats["rows_out"] == n
        print(f"GSM8K pointwise build with math verification, {n:,} rows")
        for name, seconds in [
            ("peer: plain math-verify loop, 1 process", peer_s),
            ("critics build, cold, 1 process", cold1_s),
            (f"critics build, cold, {args.num_proc} processes", cold_s),
            ("critics build, cached", cached_s),
        ]:
            print(f"  {name:<45} {seconds:8.2f} s  {n / seconds:12,.0f} rows/s  {peer_s / seconds:8.2f}x vs peer")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
