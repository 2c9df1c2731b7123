"""Code verifier: run a program against its tests in the sandbox and say pass or fail.

Tests are plain asserts, or a HumanEval-style ``check(candidate)`` function plus the name of the
entry point (``check(<entry_point>)`` is then appended). The tests run in their own sandboxed
process, which the program cannot reach: they call the program's functions across a pipe and get
back plain builtin values, so they compare real ints, strs and lists, never an object the program
made. A program passes only when that process reports that the test code ran to its end; exit
codes and output are never trusted, so ``sys.exit(0)`` / ``os._exit(0)`` before the asserts,
printing "passed", patching builtins, reading the interpreter's memory or returning an object
that equals everything all fail. See ``data_pipelines.sandbox_calls`` for the design.

Reasons: "passed", "assertion failed", "syntax error", "runtime error", "exited early",
"timeout", "memory limit", "output limit", "killed", and "sandbox error" (the only undecided one:
``correct=None``, the worker itself failed).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from functools import lru_cache

from data_pipelines.sandbox import Sandbox, SandboxLimits, SandboxResult

from .base import VERIFIERS, Verdict

__all__ = ["CodeVerifier", "code_verifier", "build_test_code", "verdict_from_result"]

DEFAULT_LIMITS = SandboxLimits(cpu_seconds=5, wall_seconds=5, memory_mb=1024, max_processes=32)
_STATUS_REASONS = {
    "timeout": "timeout",
    "memory": "memory limit",
    "output_limit": "output limit",
    "killed": "killed",
    "sandbox_error": "sandbox error",
}
_SYNTAX_ERRORS = ("SyntaxError", "IndentationError", "TabError")


def build_test_code(tests: str, entry_point: str | None = None) -> str:
    """The test code to run: ``tests``, plus ``check(entry_point)`` for HumanEval-style tests
    that define ``check`` but do not call it yet.

    >>> build_test_code("def check(f):\\n    assert f(1) == 2\\n", "inc").splitlines()[-1]
    'check(inc)'
    >>> build_test_code("assert inc(1) == 2\\n", "inc")
    'assert inc(1) == 2\\n'
    """
    if not entry_point:
        return tests
    if not entry_point.isidentifier():
        raise ValueError(f"entry_point must be a Python identifier, got {entry_point!r}")
    if "def check(" not in tests or f"check({entry_point})" in tests:
        return tests
    return f"{tests}\n\ncheck({entry_point})\n"


def verdict_from_result(result: SandboxResult) -> Verdict:
    """Map a sandbox run of program + tests to a pass/fail ``Verdict`` with its reason.

    >>> verdict_from_result(SandboxResult("ok", 0, "", "", 0.01, tests_passed=True))
    Verdict(correct=True, reason='passed', extracted=None)
    >>> verdict_from_result(SandboxResult("ok", 0, "passed\\n", "", 0.01, exception="SystemExit: 0",
    ...                                   phase="program")).reason
    'exited early'
    """
    if result.tests_passed and result.status == "ok":
        return Verdict(True, "passed")
    if result.status in _STATUS_REASONS:
        return Verdict(None if result.status == "sandbox_error" else False, _STATUS_REASONS[result.status])
    exception = result.exception or ""
    name = exception.split(":", 1)[0]
    if name in _SYNTAX_ERRORS:
        return Verdict(False, "syntax error")
    if name == "SystemExit" or not exception:  # sys.exit / os._exit / signal before the tests ended
        return Verdict(False, "exited early")
    if name == "AssertionError" and result.phase == "tests":
        return Verdict(False, "assertion failed")
    return Verdict(False, "runtime error")


class CodeVerifier:
    """Verifies programs against tests in a pool of sandbox workers.

    Args:
        limits: per-program sandbox limits (default: 5 s CPU and wall, 1 GiB, 32 processes).
        workers: sandbox workers, i.e. programs run at once by ``verify_many``.
        isolation: passed to ``Sandbox``; "none" opts out of isolation explicitly.

    >>> with CodeVerifier() as verifier:
    ...     verifier.verify("def add(a, b):\\n    return a + b\\n", "assert add(2, 2) == 4\\n")
    Verdict(correct=True, reason='passed', extracted=None)
    >>> with CodeVerifier() as verifier:
    ...     verifier.verify("import sys\\ndef add(a, b):\\n    return 0\\nsys.exit(0)\\n",
    ...                     "assert add(2, 2) == 4\\n").reason
    'exited early'
    """

    def __init__(self, limits: SandboxLimits = DEFAULT_LIMITS, workers: int = 1, isolation: str = "auto"):
        self.sandbox = Sandbox(limits, isolation=isolation, workers=workers)

    def verify(self, program: str, tests: str, entry_point: str | None = None) -> Verdict:
        """Run ``program`` then ``tests`` (plus ``check(entry_point)`` if given) and judge them."""
        return verdict_from_result(
            self.sandbox.run(
                program, tests=build_test_code(tests, entry_point), expose=[entry_point] if entry_point else []
            )
        )

    def verify_many(
        self, programs: Sequence[str], tests: Sequence[str], entry_points: Sequence[str | None] | None = None
    ) -> Iterator[Verdict]:
        """Verify many programs on all workers; yields verdicts in input order.

        Args:
            programs: full program sources.
            tests: one test code per program.
            entry_points: one entry point (or None) per program: the function under test, which
                the tests see even if it shadows a builtin (MBPP's ``sum``), and which a
                HumanEval-style ``check`` is called on.
        """
        entry_points = [None] * len(programs) if entry_points is None else entry_points
        if not len(programs) == len(tests) == len(entry_points):
            raise ValueError(f"got {len(programs)} programs, {len(tests)} tests, {len(entry_points)} entry points")
        full_tests = [build_test_code(t, e) for t, e in zip(tests, entry_points)]
        expose = [[e] if e else [] for e in entry_points]
        return (verdict_from_result(r) for r in self.sandbox.run_many(programs, full_tests, expose))

    def close(self) -> None:
        """Stop the sandbox workers."""
        self.sandbox.close()

    def __enter__(self) -> CodeVerifier:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@lru_cache(maxsize=4)
def _shared_verifier(limits: SandboxLimits, isolation: str) -> CodeVerifier:
    return CodeVerifier(limits, workers=1, isolation=isolation)


@VERIFIERS.register("code")
def code_verifier(
    response: str,
    gold: str,
    *,
    entry_point: str | None = None,
    limits: SandboxLimits = DEFAULT_LIMITS,
    isolation: str = "auto",
) -> Verdict:
    """The verifier-registry form: ``response`` is the program, ``gold`` its tests.

    Reuses one sandbox worker per (limits, isolation) for the whole process; use
    ``CodeVerifier.verify_many`` to check many programs in parallel.

    >>> code_verifier("def sq(x):\\n    return x * x\\n", "def check(f):\\n    assert f(3) == 9\\n",
    ...               entry_point="sq")
    Verdict(correct=True, reason='passed', extracted=None)
    """
    return _shared_verifier(limits, isolation).verify(response, gold, entry_point)
