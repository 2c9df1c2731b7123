"""The restricted encoding between a program's process and its tests', and the tests' end of the calls.

No sandbox needed: these are the pure parts. What the program sends is decoded in the tests'
process, so the decoder must build plain builtin values only, and refuse anything else.
"""

from __future__ import annotations

import math
import os
from collections import Counter, OrderedDict, namedtuple

import pytest

from data_pipelines import sandbox_calls as calls
from data_pipelines.sandbox_calls import ProgramFault, ProgramObject, decode, encode


def round_trip(value):
    return decode(encode(value, None), None)


@pytest.mark.parametrize(
    "value",
    [
        None,
        True,
        False,
        0,
        -7,
        2**200,
        1.5,
        -0.0,
        float("inf"),
        "",
        "héllo\n\x00",
        b"\x00\xff",
        3 - 2j,
        [1, [2, (3,)]],
        (),
        (1,),
        {"a": 1, 2: [3], (4, 5): None, None: b"x"},
        {1, "a", (2, 3)},
        frozenset({1}),
        {frozenset({1}): {2: {3}}},
        int,
        ValueError,
        [{"t": 1}, {"h": 2}],
    ],
    ids=repr,
)
def test_plain_values_round_trip_exactly(value):
    back = round_trip(value)
    assert back == value and type(back) is type(value)
    assert repr(back) == repr(value)  # -0.0, tuple vs list, key order


def test_nan_round_trips():
    assert math.isnan(round_trip(float("nan")))


def test_subclasses_cross_as_their_base_types_real_contents():
    class Liar(int):
        def __eq__(self, other):
            return True

        __hash__ = int.__hash__

        def __index__(self):
            return 5

    class Shout(str):
        def __str__(self):
            return "LOUD"

    class Fake(list):
        def __iter__(self):
            return iter([9])

    class Items(dict):
        def items(self):
            return [("x", 9)]

    Pair = namedtuple("Pair", "a b")
    sent = [Liar(3), Shout("quiet"), Fake([1, 2]), Items(a=1), Pair(1, 2), Counter("aab"), OrderedDict(z=1)]
    back = round_trip(sent)
    assert back == [3, "quiet", [1, 2], {"a": 1}, (1, 2), {"a": 2, "b": 1}, {"z": 1}]
    assert [type(v) for v in back] == [int, str, list, dict, tuple, dict, dict]


@pytest.mark.parametrize(
    "data",
    [
        b'{"t": [1], "s": [2]}',
        b'{"x": 1}',
        b'{"y": "eval"}',
        b'{"y": "open"}',
        b'{"h": [0, "f"]}',
        b'{"b": "zz"}',
        b'{"d": [[[1], 2]]}',
        b'{"d": [[1]]}',
        b'{"s": [[1]]}',
        b'{"c": ["1", 2]}',
        b"[1, 2",
        b"\xff",
        b"[" * 100_000 + b"]" * 100_000,
        b'{"t": 5}',
    ],
    ids=lambda d: d[:30].decode(errors="replace"),
)
def test_anything_else_is_refused(data):
    with pytest.raises(ValueError):
        decode(data, None)


def test_objects_that_are_not_plain_need_a_reference():
    with pytest.raises(TypeError, match="not a plain builtin value"):
        encode(object(), None)
    refs = []
    data = encode([object(), 1], lambda obj: refs.append(obj) or [len(refs) - 1, type(obj).__name__])
    assert decode(data, lambda i, name: (i, name)) == [(0, "object"), 1]


def test_a_program_object_cannot_be_compared_hashed_iterated_or_tested():
    obj = ProgramObject(3, "Liar", calls._Channel(1 << 20))
    for use in (
        lambda: obj == 5,
        lambda: obj != 5,
        lambda: obj < 5,
        lambda: hash(obj),
        lambda: bool(obj),
        lambda: list(obj),
        lambda: len(obj),
        lambda: 5 in obj,
        lambda: {obj},
        lambda: int(obj),
    ):
        with pytest.raises(TypeError, match="only plain builtin values"):
            use()
    assert repr(obj) == "<program object #3: Liar>"
    assert obj is not None and type(obj) is ProgramObject


@pytest.mark.parametrize(
    "name, text, expected",
    [
        ("ValueError", "ValueError: bad", ValueError("bad")),
        ("ValueError", "JSONDecodeError: bad", ValueError("JSONDecodeError: bad")),
        ("AssertionError", "AssertionError: ", AssertionError("")),
        ("StopIteration", "StopIteration: ", RuntimeError("StopIteration: ")),  # would end a map() early
        ("UnicodeDecodeError", "UnicodeDecodeError: x", RuntimeError("UnicodeDecodeError: x")),
    ],
)
def test_the_programs_exceptions_come_back_as_builtin_ones(name, text, expected):
    raised = calls._Channel(1 << 20)._exception(name, text)
    assert type(raised) is type(expected) and str(raised) == str(expected)


@pytest.mark.parametrize(
    "name, text, fault",
    [
        ("SystemExit", "SystemExit: 0", "SystemExit: 0"),
        ("KeyboardInterrupt", "KeyboardInterrupt: ", "SystemExit: the program raised KeyboardInterrupt: "),
        ("eval", "eval: x", "SystemExit: the program raised eval: x"),
    ],
)
def test_exits_are_faults_that_stick(name, text, fault):
    channel = calls._Channel(1 << 20)
    with pytest.raises(ProgramFault):
        channel._exception(name, text)
    assert channel.fault == fault
    with pytest.raises(ProgramFault):  # every later call fails too
        channel.ask(("call", 0, [], {}))


def test_frames_over_the_limit_are_not_read():
    read, write = os.pipe()
    try:
        calls.write_frame(write, b"ok")
        assert calls.read_frame(read, limit=10) == b"ok"
        calls.write_frame(write, b"x" * 100)
        with pytest.raises(ValueError, match="over the limit"):
            calls.read_frame(read, limit=10)
    finally:
        os.close(read)
        os.close(write)
