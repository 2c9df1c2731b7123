"""The two sides of a sandboxed test run, and the restricted encoding between them.

When a run has tests, the zygote (``sandbox_worker``) forks two processes that cannot reach each
other (sibling PID namespaces, different uids, the tests' process not dumpable, no shared file
descriptor but the two pipes of the calls):

* the **program** process (``run_program``) runs the untrusted program, then answers the tests'
  calls: a call's arguments come in; its return value, or its exception's builtin type and
  message, go back;
* the **tests** process (``run_tests``) runs the test code (from the dataset, so trusted, but
  sandboxed too: it is data) with every global the program defined standing in as a
  ``ProgramObject`` that forwards calls. Only this process reports the verdict, on a pipe that
  only it holds, so nothing the program does (reading our memory, patching builtins, exiting
  early, writing to any descriptor) can report a pass.

Values cross in a restricted, non-executable encoding (JSON with one-key tags; ``encode`` and
``decode``): None, bool, int, float, complex, str, bytes, list, tuple, dict, set and frozenset,
nested, and the builtin classes themselves (``int``, ``ValueError``), named. A
subclass of one of these crosses as its base type's real contents, read with the base type's own
methods, so an overridden ``__eq__``, ``__hash__`` or ``__class__`` stays behind; any other object
stays in the program and crosses as an opaque reference (a ``ProgramObject``: it can be called,
its attributes read and set, as a tree's nodes are in MBPP's tests, but it cannot be compared,
hashed, iterated or tested for truth). The tests therefore compare real builtin values, made in
their own process. Standard library only: this runs inside the sandbox.
"""

from __future__ import annotations

import builtins
import contextlib
import importlib
import json
import os
import select
import struct
import sys
import time
import types

REPORT_FD, IN_FD, OUT_FD = 3, 4, 5  # in both processes: the report pipe, then the calls' two pipes
_BUILTIN_NAMES = frozenset(name for name in vars(builtins) if not name.startswith("__"))
_TAGS = {"t": tuple, "s": set, "f": frozenset}
# Raised by the program, these would end or bend the tests' control flow (a StopIteration raised
# inside ``map`` ends it early: ``all(map(candidate, xs))`` would hold), so they cross as faults or
# as RuntimeError, as PEP 479 does inside generators.
_NOT_RERAISED = (StopIteration, StopAsyncIteration)


# ----------------------------------------------------------------------------------- framing
def write_frame(fd: int, data: bytes) -> None:
    """Write ``data`` to ``fd`` as one length-prefixed frame."""
    data = struct.pack("!I", len(data)) + data
    while data:
        data = data[os.write(fd, data) :]


def read_exact(fd: int, size: int, deadline: float | None = None) -> bytes | None:
    """Read ``size`` bytes; None on EOF or when ``deadline`` (monotonic) passes."""
    chunks, need = [], size
    while need:
        if deadline is not None and not select.select([fd], [], [], max(0.0, deadline - time.monotonic()))[0]:
            return None
        chunk = os.read(fd, min(need, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        need -= len(chunk)
    return b"".join(chunks)


def read_frame(fd: int, limit: int | None = None, deadline: float | None = None) -> bytes | None:
    """Read one frame written by ``write_frame``; None on EOF or after ``deadline``.

    Raises:
        ValueError: the frame is longer than ``limit`` bytes (it is not read).
    """
    head = read_exact(fd, 4, deadline)
    if head is None:
        return None
    size = struct.unpack("!I", head)[0]
    if limit is not None and size > limit:
        raise ValueError(f"a message of {size:,} bytes, over the limit of {limit:,}")
    return read_exact(fd, size, deadline)


# ---------------------------------------------------------------------------------- encoding
def encode(value, reference) -> bytes:
    """``value`` in the restricted encoding; ``reference(obj)`` is called for each object that is
    not a plain builtin value and returns what stands for it, an ``[id, type name]`` pair.

    >>> class Liar(int):
    ...     def __eq__(self, other):
    ...         return True
    >>> decode(encode((Liar(3), {"k": {b"x"}}), None), None)
    (3, {'k': {b'x'}})
    >>> type(decode(encode([Liar(3)], None), None)[0])
    <class 'int'>
    """
    return json.dumps(_plain(value, reference), allow_nan=True, separators=(",", ":")).encode()


def _plain(x, reference):
    """``x`` as JSON-ready data. Base-type methods read a subclass's real contents: ``list.copy``
    and ``dict.items`` bypass an overridden ``__iter__``, ``int.__index__`` returns an exact int."""
    t = type(x)
    if x is None or t is bool or t is int or t is float or t is str:
        return x
    if issubclass(t, int):
        return int.__index__(x)
    if issubclass(t, float):
        return float.__float__(x)
    if issubclass(t, str):
        return str.__str__(x)
    if issubclass(t, complex):
        return {"c": [complex.real.__get__(x), complex.imag.__get__(x)]}
    if issubclass(t, bytes):
        return {"b": bytes.hex(x)}
    if issubclass(t, list):
        return [_plain(item, reference) for item in list.copy(x)]
    if issubclass(t, tuple):
        return {"t": [_plain(item, reference) for item in tuple.__iter__(x)]}
    if issubclass(t, dict):
        return {"d": [[_plain(k, reference), _plain(v, reference)] for k, v in dict.items(x)]}
    if issubclass(t, frozenset):
        return {"f": [_plain(item, reference) for item in frozenset.__iter__(x)]}
    if issubclass(t, set):
        return {"s": [_plain(item, reference) for item in set.__iter__(x)]}
    if isinstance(x, type) and getattr(builtins, x.__name__, None) is x:  # MBPP passes ``int`` itself
        return {"y": x.__name__}
    if reference is None:
        raise TypeError(f"a {t.__name__} is not a plain builtin value")
    return {"h": reference(x)}


def decode(data: bytes, reference):
    """The value ``encode`` wrote; ``reference(id, type name)`` turns a reference back into an
    object. Builds only plain builtin values (and what ``reference`` returns): never executes.

    Raises:
        ValueError: ``data`` is not a well-formed encoding.
    """
    try:
        return json.loads(data, object_hook=lambda obj: _tagged(obj, reference))
    except (ValueError, TypeError, RecursionError, MemoryError) as exc:
        raise ValueError(f"not a well-formed value ({type(exc).__name__}: {str(exc)[:200]})") from None


def _tagged(obj: dict, reference):
    if len(obj) != 1:
        raise ValueError("a JSON object must hold exactly one tag")
    ((tag, body),) = obj.items()
    if tag in _TAGS and type(body) is list:
        return _TAGS[tag](body)
    if tag == "d" and type(body) is list and all(type(pair) is list and len(pair) == 2 for pair in body):
        return dict(body)
    if tag == "b" and type(body) is str:
        return bytes.fromhex(body)
    if tag == "c" and type(body) is list and len(body) == 2 and all(type(part) in (int, float) for part in body):
        return complex(*body)
    if tag == "y" and type(body) is str and isinstance(getattr(builtins, body, None), type):
        return getattr(builtins, body)
    if (
        tag == "h"
        and reference is not None
        and type(body) is list
        and len(body) == 2
        and type(body[0]) is int
        and type(body[1]) is str
    ):
        return reference(body[0], body[1][:100])
    raise ValueError(f"unknown tag {tag[:20]!r}")


# ------------------------------------------------------------------------------ program side
def run_program(code: str, serve: bool) -> None:
    """The program's process: run ``code`` as ``__main__``; then, with ``serve``, answer the tests'
    calls until they hang up. Reports an uncaught exception on ``REPORT_FD`` (advisory: the
    program can write anything there). Never returns."""
    main = types.ModuleType("__main__")
    main.__builtins__ = builtins
    sys.modules["__main__"] = main
    status = 0
    try:
        exec(compile(code, "<program>", "exec", dont_inherit=True, optimize=0), vars(main))
    except SystemExit as exc:
        status, serve = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1), False
        _report_program(exc)
    except BaseException as exc:  # noqa: BLE001 - report everything, as the interpreter would
        status, serve = 1, False
        _report_program(exc)
        with contextlib.suppress(BaseException):
            __import__("traceback").print_exc()
    if serve:
        with contextlib.suppress(OSError, ValueError, TypeError, RecursionError):
            _answer_calls(vars(main))
    _flush(sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__)
    os._exit(status & 0xFF)


def _flush(*streams) -> None:
    for stream in streams:
        with contextlib.suppress(BaseException):
            stream.flush()


def _report_program(exc: BaseException) -> None:
    with contextlib.suppress(BaseException):
        os.write(REPORT_FD, json.dumps({"phase": "program", "exception": describe(exc)}).encode() + b"\n")


def describe(exc: BaseException) -> str:
    """``"Type: message"``, at most 2,000 characters, even if ``__str__`` fails."""
    try:
        return f"{type(exc).__name__}: {exc}"[:2000]
    except BaseException:  # noqa: BLE001 - __str__ is untrusted
        return f"{type(exc).__name__}: <unprintable>"


def _answer_calls(namespace: dict) -> None:
    """Send the program's globals (modules by name, anything else as a reference), then answer
    each call, attribute read or write until the tests close their end."""
    objects: list = []

    def reference(obj) -> list:
        objects.append(obj)
        return [len(objects) - 1, type(obj).__name__]

    manifest = {
        name: ("module", str(getattr(value, "__name__", "")))
        if isinstance(value, types.ModuleType)
        else ("object", reference(value))
        for name, value in list(namespace.items())
        if isinstance(name, str) and not name.startswith("__")
    }
    _flush(sys.stdout, sys.stderr)  # the output keeps the order of events: program, then each call
    write_frame(OUT_FD, encode(manifest, None))
    while (request := read_frame(IN_FD)) is not None:
        answer = _answer(request, objects, reference)
        _flush(sys.stdout, sys.stderr)
        write_frame(OUT_FD, answer)


def _answer(request: bytes, objects: list, reference) -> bytes:
    try:
        op, ref, *rest = decode(request, lambda i, _: objects[i])
        target = objects[ref]
        if op == "call":
            value = target(*rest[0], **rest[1])
        elif op == "getattr":
            value = getattr(target, rest[0])
        else:
            setattr(target, rest[0], rest[1])
            value = None
        return encode(("ok", value), reference)
    except BaseException as exc:  # noqa: BLE001 - every exception goes back to the tests
        base = next(c for c in type(exc).__mro__ if getattr(builtins, c.__name__, None) is c)
        return encode(("raise", base.__name__, describe(exc)), None)


# -------------------------------------------------------------------------------- tests side
class ProgramFault(BaseException):
    """The program's process broke the calls: it ended, or answered outside the protocol. A
    ``BaseException``, and remembered by the channel, so tests that catch everything still fail."""


class _Channel:
    """The tests' end of the calls: one request, one answer, in order."""

    def __init__(self, limit: int):
        self.limit = limit
        self.fault: str | None = None

    def ask(self, request: tuple):
        if self.fault:
            raise ProgramFault(self.fault)
        try:
            data = encode(request, _reference_of)
        except (TypeError, ValueError, RecursionError) as exc:
            raise TypeError(f"the tests cannot pass this to the program: {exc}") from None
        _flush(sys.stdout, sys.stderr)
        try:
            write_frame(OUT_FD, data)
            answer = read_frame(IN_FD, self.limit)
        except ValueError as exc:
            self._fail(f"ValueError: the program's answer is too large: {exc}")
        except OSError:
            answer = None  # EPIPE: it is gone
        except BaseException:  # a signal handler raised mid-message: the channel is out of step
            self.fault = "RuntimeError: a call to the program was interrupted"
            raise
        if answer is None:
            self._fail("SystemExit: the program ended while the tests were calling it")
        try:
            kind, *body = decode(answer, lambda i, name: ProgramObject(i, name, self))
        except ValueError as exc:
            self._fail(f"ValueError: the program's answer is malformed: {exc}")
        if kind == "ok" and len(body) == 1:
            return body[0]
        if kind == "raise" and len(body) == 2 and all(type(part) is str for part in body):
            raise self._exception(*body)
        self._fail("ValueError: the program's answer is malformed")

    def _exception(self, name: str, text: str) -> BaseException:
        """The builtin exception the program raised, with its message (a custom class arrives as
        its nearest builtin base, its own name kept in the message). ``SystemExit`` and the other
        non-``Exception``s are faults: the program gave up, as it would have in one process."""
        cls = getattr(builtins, name, None)
        if not (isinstance(cls, type) and issubclass(cls, Exception)):
            self._fail(text if text.startswith("SystemExit: ") else f"SystemExit: the program raised {text}")
        if issubclass(cls, _NOT_RERAISED):
            return RuntimeError(text)
        message = text[len(name) + 2 :] if text.startswith(f"{name}: ") else text
        try:
            return cls(message)
        except TypeError:  # a constructor that needs more arguments (UnicodeDecodeError)
            return RuntimeError(text)

    def _fail(self, fault: str):
        self.fault = fault
        raise ProgramFault(fault)


def _reference_of(obj) -> list:
    if type(obj) is ProgramObject:
        return [object.__getattribute__(obj, "_id"), ""]
    raise TypeError(f"a {type(obj).__name__} is not a plain builtin value")


class ProgramObject:
    """An object that stayed in the program's process (a function, a class, an instance).

    The tests may call it and read or set its attributes, which runs in the program; they cannot
    compare, hash, iterate or test it for truth: the answer would be the program's to give."""

    __slots__ = ("_id", "_type", "_channel")

    def __init__(self, id_: int, type_name: str, channel: _Channel):
        for slot, value in zip(self.__slots__, (id_, type_name, channel)):
            object.__setattr__(self, slot, value)

    def __call__(self, *args, **kwargs):
        return self._channel.ask(("call", self._id, list(args), kwargs))

    def __getattr__(self, name: str):
        if name in ProgramObject.__slots__:
            raise AttributeError(name)
        return self._channel.ask(("getattr", self._id, name))

    def __setattr__(self, name: str, value) -> None:
        self._channel.ask(("setattr", self._id, name, value))

    def __repr__(self) -> str:
        return f"<program object #{self._id}: {self._type or 'object'}>"

    def _opaque(self, *args):
        raise TypeError(
            f"the tests cannot compare, hash, iterate or test the truth of {self!r}: only plain "
            "builtin values (int, float, str, bytes, list, tuple, dict, set, None) come back from "
            "the program"
        )

    __eq__ = __ne__ = __lt__ = __le__ = __gt__ = __ge__ = __hash__ = __bool__ = __len__ = __iter__ = _opaque
    __contains__ = __index__ = __int__ = __float__ = _opaque


def run_tests(tests: str, expose, limit: int) -> None:
    """The tests' process: wait for the program's globals, run ``tests`` against them, and report
    on ``REPORT_FD``: ``{"passed": true}``, or the exception and where it came from. Never returns."""
    channel, status = _Channel(limit), 1
    try:
        code = compile(tests, "<tests>", "exec", dont_inherit=True, optimize=0)
        namespace = _test_namespace(channel, _names(code), set(expose))
        exec(code, namespace)
        if channel.fault:  # the tests caught the fault: the run failed all the same
            raise ProgramFault(channel.fault)
        report, status = {"passed": True}, 0
    except ProgramFault:
        report = {"phase": "program", "exception": channel.fault}
    except BaseException as exc:  # noqa: BLE001 - SystemExit too: tests that exit did not pass
        report = {"phase": "program" if channel.fault else "tests", "exception": channel.fault or describe(exc)}
        with contextlib.suppress(BaseException):
            __import__("traceback").print_exc()
    _flush(sys.stdout, sys.stderr)
    with contextlib.suppress(OSError):
        os.write(REPORT_FD, json.dumps(report).encode() + b"\n")
    os._exit(status)


def _test_namespace(channel: _Channel, used: set[str], expose: set[str]) -> dict:
    """The tests' globals: the program's globals as ``ProgramObject``s, and the standard library
    modules it imported under their own names as the tests' own copies. A name that shadows a
    builtin is left out unless it is exposed (the function under test, MBPP's ``sum``), so a
    program cannot rig ``abs`` or ``AssertionError``."""
    try:
        manifest = read_frame(IN_FD, channel.limit)
    except (OSError, ValueError):
        manifest = None
    if manifest is None:
        channel._fail("SystemExit: the program ended before the tests ran")
    try:
        entries = [
            (name, kind, body)
            for name, (kind, body) in decode(manifest, None).items()
            if type(name) is str and type(kind) is str
        ]
    except (ValueError, TypeError, AttributeError):
        channel._fail("ValueError: the program's globals are malformed")
    namespace = {"__name__": "__main__", "__builtins__": builtins}
    for name, kind, body in entries:
        if name in _BUILTIN_NAMES and name not in expose:
            continue
        if kind == "object" and type(body) is list and len(body) == 2 and type(body[0]) is int:
            namespace[name] = ProgramObject(body[0], str(body[1])[:100], channel)
        # Only ``import math`` as ``math``, and only if the tests name it: a program must not choose
        # which module the tests' ``math`` is, nor make them import what they never use.
        elif kind == "module" and body == name and name in used and name in sys.stdlib_module_names:
            with contextlib.suppress(ImportError):
                namespace[name] = importlib.import_module(name)
    return namespace


def _names(code: types.CodeType) -> set[str]:
    """Every name ``code`` and the functions in it may look up."""
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _names(const)
    return names
