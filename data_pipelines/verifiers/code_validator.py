"""RLAC's code validator: the critic's input, run on the generated program and the reference.

The check is the call's arguments as Python literals (``[1, 2], 3`` calls ``f([1, 2], 3)``),
normalised on the host so no critic-written code runs. The reference runs first: an input it
rejects makes the check invalid; then the program runs with test code that compares its result
with the reference's, in the sandbox. See ``data_pipelines.verifiers.validators`` for the table.
"""

from __future__ import annotations

import ast
import json
import re
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import replace
from functools import lru_cache
from typing import Any

from data_pipelines.sandbox import Sandbox, SandboxLimits, SandboxResult

from .code import DEFAULT_LIMITS, verdict_from_result
from .validation import MAX_CHECK_CHARS, VALIDATORS, Validation, Validator, _invalid


def parse_call_args(text: str) -> str | None:
    """The canonical text of a call's arguments if every one is a Python literal, else None.

    The code check is what goes between the parentheses of ``entry_point(...)``: positional
    and keyword arguments, each a literal (numbers, strings, bytes, None, booleans, and
    tuples / lists / dicts / sets of them). So ``(3, [1, 2])`` is ONE tuple argument.

    >>> parse_call_args("[1,2],  3")
    '[1, 2], 3'
    >>> parse_call_args("(3, [1, 2])"), parse_call_args("s='a', k=-1.5")
    ('(3, [1, 2])', "s='a', k=-1.5")
    >>> [parse_call_args(t) for t in ["__import__('os')", "1); print(2", "x=1, x=2", "*[1]", ""]]
    [None, None, None, None, None]
    """
    if not isinstance(text, str) or not text.strip() or len(text) > MAX_CHECK_CHARS:
        return None
    try:
        call = ast.parse(f"f({text}\n)", mode="eval").body  # the newline ends a trailing comment
        if not isinstance(call, ast.Call) or not (call.args or call.keywords):
            return None
        if any(isinstance(a, ast.Starred) for a in call.args) or any(k.arg is None for k in call.keywords):
            return None
        if len({k.arg for k in call.keywords}) != len(call.keywords):
            return None
        for node in [*call.args, *(k.value for k in call.keywords)]:
            ast.literal_eval(node)
        return ast.unparse(call)[2:-1]
    except (SyntaxError, ValueError, TypeError, MemoryError, RecursionError):
        return None


REFERENCE_BATCH_SECONDS = 60.0  # wall and CPU limit of one batch of reference runs
_REFERENCE_MARK = "__rlac_reference__ "
_MISMATCH = "__rlac_mismatch__"
_ADDRESS = re.compile(r"<[^<>]* at 0x[0-9a-fA-F]+>")  # a default repr: differs between runs
_FENCE = re.compile(r"```[\w+-]*[ \t]*\n(.*?)```", re.DOTALL)
# Compares outputs by repr, with set elements sorted: workers differ in string hash seeds.
_CANON = """
def _rlac_canon(x):
    t = type(x)
    if t is list:
        return "[" + ", ".join(map(_rlac_canon, x)) + "]"
    if t is tuple:
        return "(" + ", ".join(map(_rlac_canon, x)) + ("," if len(x) == 1 else "") + ")"
    if t is dict:
        return "{" + ", ".join(_rlac_canon(k) + ": " + _rlac_canon(v) for k, v in x.items()) + "}"
    if t is set or t is frozenset:
        inner = "{" + ", ".join(sorted(map(_rlac_canon, x))) + "}" if x else ""
        return (inner or "set()") if t is set else "frozenset(" + inner + ")"
    return repr(x)
"""
# The reference (trusted) runs as a plain program, each input under its own timer. The batch
# runs in globals of its own: a reference that shadows a builtin the batch uses (MBPP's ``sum``)
# or one of its names must not change it.
_REFERENCE_BATCH = """
_rlac_calls = [{calls}]
exec({batch!r}, {{"__builtins__": __import__("builtins"), "_rlac_calls": _rlac_calls}})
"""
_BATCH = """
import json as _rlac_json, signal as _rlac_signal
def _rlac_alarm(signum, frame):
    raise TimeoutError("reference time limit")
_rlac_signal.signal(_rlac_signal.SIGALRM, _rlac_alarm)
_rlac_out = []
for _rlac_call in _rlac_calls:
    try:
        _rlac_signal.setitimer(_rlac_signal.ITIMER_REAL, {seconds})
        try:
            _rlac_out.append([True, _rlac_canon(_rlac_call())])
        finally:
            _rlac_signal.setitimer(_rlac_signal.ITIMER_REAL, 0)
    except BaseException as _rlac_exc:
        _rlac_out.append([False, type(_rlac_exc).__name__])
print({mark!r} + _rlac_json.dumps(_rlac_out))
"""
_PROGRAM_TEST = """
_rlac_value = {entry}({args})
if _rlac_canon(_rlac_value) != {expected!r}:
    raise AssertionError({mismatch!r})
"""


@VALIDATORS.register("code")
class CodeValidator(Validator):
    """Runs one input (the check: call arguments, see ``parse_call_args``) through the generated
    program and the reference solution in the sandbox, and compares the outputs by repr (set
    elements sorted); float outputs must match exactly.

    * invalid: the check is not a literal argument list; the spec has no reference or entry
      point; the reference raises, exceeds half the program's wall limit, or returns something
      without a stable repr (``<... at 0x...>``); the sandbox itself failed.
    * fail: the program's output differs, it crashes, times out, exits early, or does not parse.
    * pass: equal outputs.

    ``output`` is the whole program, or, if it holds Markdown fences, its last fenced block.
    References run in batches (one sandbox run per reference and up to ``REFERENCE_BATCH_SECONDS``
    of inputs, each input under its own timer); their outputs and the programs' verdicts are
    cached. The comparison runs in the sandbox's tests process: the expected output never enters
    the program's process, which only answers the call with a plain builtin value (see
    ``data_pipelines.sandbox_calls``).

    Args:
        limits: sandbox limits for each generated program.
        workers: sandbox workers: programs run at once by ``validate_many``.
        isolation: passed to ``Sandbox``.
        cache_size: reference outputs and program verdicts kept.

    >>> spec = {"reference_solution": "def f(x):\\n    return x * 2\\n", "entry_point": "f",
    ...         "tests": ["assert f(1) == 2\\nassert f(-3) == -6\\n"]}
    >>> with CodeValidator() as v:
    ...     v.all_checks("", spec), v.validate("def f(x):\\n    return x + x\\n", "-3", spec).outcome
    (['1', '-3'], 'pass')
    """

    def __init__(
        self,
        limits: SandboxLimits = DEFAULT_LIMITS,
        workers: int = 1,
        isolation: str = "auto",
        cache_size: int = 10_000,
    ):
        self.sandbox = Sandbox(limits, isolation=isolation, workers=workers)
        batch = replace(limits, cpu_seconds=REFERENCE_BATCH_SECONDS, wall_seconds=REFERENCE_BATCH_SECONDS)
        self.reference_sandbox = Sandbox(batch, isolation=isolation, workers=workers)
        self.reference_seconds = limits.wall_seconds / 2  # a check the reference barely answers is unfair
        self.batch_size = max(1, int(0.8 * REFERENCE_BATCH_SECONDS / self.reference_seconds))
        self.cache_size = cache_size
        self._references: OrderedDict[tuple, tuple[bool, str]] = OrderedDict()
        self._verdicts: OrderedDict[tuple, Validation] = OrderedDict()
        self._lock = threading.Lock()

    def validate(self, output: str, check: str, spec: dict[str, Any]) -> Validation:
        return self.validate_many([(output, check, spec)])[0]

    def validate_many(self, items: Sequence[tuple[str, str, dict[str, Any]]]) -> list[Validation]:
        """Batched: every uncached reference output first (one run per reference and batch of
        inputs), then every uncached program on all workers; results in input order."""
        results: list[Validation | None] = [None] * len(items)
        jobs: dict[int, tuple[str, str, str, str]] = {}  # index -> (program, reference, entry, args)
        for i, (output, check, spec) in enumerate(items):
            reference, entry = _code_spec(spec)
            args = parse_call_args(check)
            if args is None:
                results[i] = _invalid("the check is not a literal argument list")
            elif reference is None:
                results[i] = _invalid("the spec has no reference solution and entry point")
            else:
                jobs[i] = (_program_text(output), reference, entry, args)
        expected = self._reference_outputs({job[1:] for job in jobs.values()})
        verdicts = self._lookup(self._verdicts, set(jobs.values()))
        to_run: dict[tuple[str, str, str, str], str] = {}
        for i, job in jobs.items():
            ok, text = expected[job[1:]]
            if not ok:
                results[i] = Validation("invalid", f"the reference rejects this input ({text})")
            elif _ADDRESS.search(text):
                results[i] = Validation("invalid", "the reference's output has no stable repr")
            elif job not in verdicts:
                to_run[job] = _CANON + _PROGRAM_TEST.format(
                    entry=job[2], args=job[3], expected=text, mismatch=_MISMATCH
                )
        runs = self.sandbox.run_many([job[0] for job in to_run], list(to_run.values()), [[job[2]] for job in to_run])
        for job, result in zip(list(to_run), runs):
            verdicts[job] = _program_validation(result)
            if result.status != "sandbox_error":  # a broken worker is transient: retry next time
                self._store(self._verdicts, job, verdicts[job])
        return [result if result is not None else verdicts[jobs[i]] for i, result in enumerate(results)]

    def all_checks(self, output: str, spec: dict[str, Any]) -> list[str]:
        """The literal inputs that the spec's tests pass to ``candidate`` (HumanEval) or the
        entry point (MBPP), in order, without repeats; empty when the tests compute their
        inputs (loops, random data) or the spec has no entry point."""
        tests = spec.get("tests") or []
        tests = (tests,) if isinstance(tests, str) else tuple(tests)
        return list(_test_inputs(tests, spec.get("entry_point") or ""))

    def _reference_outputs(self, needed: set[tuple[str, str, str]]) -> dict[tuple[str, str, str], tuple[bool, str]]:
        """``(ok, canonical repr or error)`` of each (reference, entry, args), run in batches if not cached."""
        found = self._lookup(self._references, needed)
        groups: dict[tuple[str, str], list[str]] = {}
        for reference, entry, args in sorted(needed - found.keys()):
            groups.setdefault((reference, entry), []).append(args)
        chunks = [
            (ref, entry, args[i : i + self.batch_size])
            for (ref, entry), args in groups.items()
            for i in range(0, len(args), self.batch_size)
        ]
        while chunks:
            codes = [f"{reference}\n{self._batch_code(entry, args)}" for reference, entry, args in chunks]
            runs = self.reference_sandbox.run_many(codes)
            retry = []
            for (reference, entry, args), result in zip(chunks, runs):
                outputs = _batch_outputs(result, len(args))
                if outputs is None and len(args) > 1:  # one input broke the batch: run each alone
                    retry += [(reference, entry, [a]) for a in args]
                    continue
                for one_args, output in zip(args, outputs or [(False, _STATUS_WORDS.get(result.status, "error"))]):
                    found[(reference, entry, one_args)] = output
                    if result.status != "sandbox_error":
                        self._store(self._references, (reference, entry, one_args), output)
            chunks = retry
        return found

    def _batch_code(self, entry: str, args: list[str]) -> str:
        calls = ", ".join(f"lambda: {entry}({a})" for a in args)
        batch = _CANON + _BATCH.format(seconds=self.reference_seconds, mark=_REFERENCE_MARK)
        return _REFERENCE_BATCH.format(calls=calls, batch=batch)

    def _lookup(self, cache: OrderedDict, keys: set) -> dict:
        with self._lock:
            found = {key: cache[key] for key in keys if key in cache}
            for key in found:
                cache.move_to_end(key)
            return found

    def _store(self, cache: OrderedDict, key: tuple, value: Any) -> None:
        with self._lock:
            cache[key] = value
            while len(cache) > self.cache_size:
                cache.popitem(last=False)

    def close(self) -> None:
        self.sandbox.close()
        self.reference_sandbox.close()


_STATUS_WORDS = {
    "timeout": "timeout",
    "memory": "memory limit",
    "output_limit": "output limit",
    "killed": "killed",
    "sandbox_error": "sandbox error",
    "error": "error",
}


def _code_spec(spec: dict[str, Any]) -> tuple[str | None, str]:
    reference, entry = spec.get("reference_solution"), spec.get("entry_point")
    if not isinstance(reference, str) or not reference.strip() or not isinstance(entry, str):
        return None, ""
    if not entry.isidentifier():
        raise ValueError(f"entry_point must be a Python identifier, got {entry!r}")
    return reference, entry


def _program_text(output: str) -> str:
    if not isinstance(output, str):
        return ""
    fenced = _FENCE.findall(output)
    return fenced[-1] if fenced else output


def _batch_outputs(result: SandboxResult, n: int) -> list[tuple[bool, str]] | None:
    """The reference's per-input outputs, read from its last marked stdout line (the reference is
    trusted code, run as a plain program), or None if the batch did not finish."""
    if result.status != "ok":
        return None
    lines = [line for line in result.stdout.splitlines() if line.startswith(_REFERENCE_MARK)]
    try:
        outputs = json.loads(lines[-1][len(_REFERENCE_MARK) :]) if lines else None
    except ValueError:
        return None
    if not isinstance(outputs, list) or len(outputs) != n:
        return None
    return [(bool(ok), str(text)) for ok, text in outputs]


def _program_validation(result: SandboxResult) -> Validation:
    verdict = verdict_from_result(result)
    if verdict.correct is True:
        return Validation("pass", "same output")
    if verdict.correct is None:
        return Validation("invalid", verdict.reason)  # the sandbox failed: nobody's fault
    exception = result.exception or ""
    if verdict.reason == "assertion failed" and exception == f"AssertionError: {_MISMATCH}":
        return Validation("fail", "wrong output")
    if verdict.reason in ("runtime error", "assertion failed"):
        return Validation("fail", f"crashed ({exception.split(':', 1)[0] or 'unknown error'})")
    return Validation("fail", verdict.reason)


@lru_cache(maxsize=4096)
def _test_inputs(tests: tuple[str, ...], entry_point: str) -> tuple[str, ...]:
    if not entry_point:
        return ()
    calls: list[tuple[int, int, int, str]] = []
    for i, code in enumerate(tests):
        try:
            tree = ast.parse(code)
        except (SyntaxError, ValueError, MemoryError, RecursionError):
            continue
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id in ("candidate", entry_point)
            ):
                args = parse_call_args(ast.unparse(ast.Call(ast.Name("f"), node.args, node.keywords))[2:-1])
                if args is not None:
                    calls.append((i, node.lineno, node.col_offset, args))
    return tuple(dict.fromkeys(args for *_, args in sorted(calls)))
