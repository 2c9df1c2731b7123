"""``critics demo``: the data journey on a laptop, from data the project generates itself.

It writes a few hundred arithmetic word problems with solutions from three made-up "policies"
(one careful, two that slip in known ways), plus a handful of malformed rows, then builds a
pointwise critique dataset whose labels come from the math verifier alone, and prints its data
card. Nothing is downloaded.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from data_pipelines import BuildConfig, BuildResult, build
from data_pipelines.builders.pointwise import PointwiseBuilder
from data_pipelines.sources.generic import SolutionsSource

POLICIES = ("careful", "hasty", "off_by_one")


def make_problem(rng: random.Random) -> dict[str, object]:
    """One word problem with its numbers."""
    a, b, c = rng.randint(2, 40), rng.randint(2, 9), rng.randint(2, 12)
    name, item = rng.choice(["Ana", "Ben", "Chen", "Dara"]), rng.choice(["apples", "pens", "cards"])
    question = (f"{name} has {a} {item} and buys {b} boxes with {c} {item} in each box. "
                f"How many {item} does {name} have now?")
    return {"question": question, "a": a, "b": b, "c": c, "item": item}


def solve(problem: dict, policy: str, rng: random.Random) -> str:
    """A solution in GSM8K's style; ``hasty`` and ``off_by_one`` slip some of the time."""
    a, b, c, item = problem["a"], problem["b"], problem["c"], problem["item"]
    if policy == "hasty" and rng.random() < 0.6:  # adds the boxes instead of their contents
        return f"{problem['item'].capitalize()}: {a} + {b} = {a + b}.\n#### {a + b}"
    total = a + b * c
    if policy == "off_by_one" and rng.random() < 0.4:
        total += rng.choice([-1, 1])
    return f"The boxes hold {b} * {c} = {b * c} {item}.\nIn all {a} + {b * c} = {total}.\n#### {total}"


def write_solutions(path: Path, n_problems: int = 200, seed: int = 0) -> int:
    """Write solutions from the three policies (and a few malformed rows); return rows written."""
    rng = random.Random(seed)
    rows = []
    for i in range(n_problems):
        problem = make_problem(rng)
        gold = str(problem["a"] + problem["b"] * problem["c"])
        rows += [{"question": problem["question"], "solution": solve(problem, policy, rng),
                  "gold_answer": gold, "model": policy, "group": f"demo-{i}"} for policy in POLICIES]
    rows += [{"question": "How many?", "gold_answer": "3"},                    # no solution
             {"question": "", "solution": "#### 4", "gold_answer": "4"},        # empty question
             {"question": "2+2?", "solution": "#### 4", "is_correct": "yes"}]   # wrong type
    with path.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row) + "\n")
        handle.write("{not json\n")
    return len(rows) + 1


def run(output_dir: str = "outputs/demo", seed: int = 0, progress: bool = True) -> BuildResult:
    """Generate the demo data, build the pointwise dataset and return the build result."""
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    source_file = out / "demo_solutions.jsonl"
    write_solutions(source_file, seed=seed)
    config = BuildConfig(sources=[SolutionsSource(path=str(source_file))],
                         builder=PointwiseBuilder(label_from="verifier", verifier="math"),
                         name="demo-pointwise", output_dir=str(out / "pointwise"), seed=seed)
    return build(config, progress=progress)
