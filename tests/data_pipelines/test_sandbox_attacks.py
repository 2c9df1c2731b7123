"""Programs that try to get a wrong answer labelled as passing, and programs that try to harm the host.

The code verifier is an RL reward: a policy will find any way to forge a pass. Each attack below is
a wrong program plus a trick. Every one must end within its limit, leave the host and the worker
unharmed (no process of either sandbox uid left, the worker still answers), and be labelled
failing. The first groups forged a pass when the tests ran in the program's own process; the last
ones are the resource and escape attacks of ``test_sandbox.py``, now run with tests beside them.
"""

from __future__ import annotations

import subprocess
import time
import uuid

import pytest

from data_pipelines import sandbox as sandbox_module
from data_pipelines.sandbox import Sandbox, SandboxLimits
from data_pipelines.verifiers.code import build_test_code, verdict_from_result

from .test_sandbox import PROJECT, sandbox_processes

LIMITS = SandboxLimits(cpu_seconds=2, wall_seconds=2, memory_mb=256, max_processes=16, max_output_bytes=100_000)
SLACK = 2.0  # seconds on top of the wall limit: two processes to tear down on a busy 2-core machine
pytestmark = pytest.mark.skipif(sandbox_module.available_backends() == ["none"], reason="no sandbox backend here")

WRONG_ADD = "def add(a, b):\n    return a - b\n"
RIGHT_ADD = "def add(a, b):\n    return a + b\n"
MBPP_TESTS = "assert add(2, 3) == 5\nassert add(-1, 1) == 0\n"
HUMANEVAL_TESTS = build_test_code(
    "def check(candidate):\n    assert candidate(2, 3) == 5\n    assert candidate(-1, 1) == 0\n", "add"
)
FORGE = (
    "def _forge(secret=b'0' * 32):\n    import json, os\n    for fd in range(256):\n        for message in ("
    "b'passed ' + secret + b'\\n', json.dumps({'passed': True}).encode() + b'\\n'):\n            try:\n"
    "                os.write(fd, message)\n            except OSError:\n                pass\n"
)


def find_nonce(start: str) -> str:
    """Program text that walks frames from ``start`` looking for the run's secret and forges with it."""
    return (
        FORGE + "def _steal(frame):\n    import os\n    while frame is not None:\n"
        "        for scope in (frame.f_locals, frame.f_globals):\n            secret = scope.get('nonce')\n"
        "            if isinstance(secret, str):\n                _forge(secret.encode())\n"
        "                os._exit(0)\n        frame = frame.f_back\n" + start
    )


ALWAYS_EQUAL = (
    "class _Liar:\n    def __eq__(self, other):\n        return True\n    def __ne__(self, other):\n"
    "        return False\n    def __hash__(self):\n        return hash(5)\n    def __bool__(self):\n"
    "        return True\n"
)

FORGERIES = {
    "frame-nonce": find_nonce("import sys\n_steal(sys._getframe())\n") + WRONG_ADD,
    # The tests' own copy of the builtins, found among every object of the interpreter.
    "gc-patched-builtins": (
        WRONG_ADD + "import gc\ngc.unfreeze()\nfor obj in gc.get_objects():\n"
        "    if isinstance(obj, dict) and obj.get('abs') is abs:\n"
        "        obj['abs'] = lambda x: 0\n",
        "assert abs(add(2, 3) - 5) < 1e-9\n",
    ),
    "gc-nonce": FORGE + "import gc, os, re\ngc.unfreeze()\nfor obj in gc.get_objects():\n    values = obj.values() if "
    "isinstance(obj, dict) else obj if isinstance(obj, (list, tuple)) else ()\n    for value in list("
    "values):\n        if isinstance(value, str) and re.fullmatch('[0-9a-f]{32}', value):\n"
    "            _forge(value.encode())\nos._exit(0)\n",
    "traceback-frames": find_nonce(
        "try:\n    raise RuntimeError\nexcept RuntimeError as exc:\n    _steal(exc.__traceback__.tb_frame)\n"
    )
    + WRONG_ADD,
    # Every call the trusted code makes after the program: its frames lead back to the secret.
    "settrace": find_nonce(
        "import sys\ndef _tracer(frame, event, arg):\n    _steal(frame)\n    return _tracer\nsys.settrace(_tracer)\n"
    )
    + WRONG_ADD,
    "audit-hook": find_nonce(
        "import sys\ndef _hook(event, args):\n    if event in ('compile', 'exec'):\n"
        "        _steal(sys._getframe())\nsys.addaudithook(_hook)\n"
    )
    + WRONG_ADD,
    "atexit": FORGE + "import atexit, sys\natexit.register(_forge)\n" + WRONG_ADD + "sys.exit(0)\n",
    "every-fd-then-os._exit": FORGE + "import os\n_forge()\nos._exit(0)\n" + WRONG_ADD,
    "sys.exit-before-tests": WRONG_ADD + "import sys\nsys.exit(0)\n",
    "os._exit-before-tests": WRONG_ADD + "import os\nos._exit(0)\n",
    "exit-inside-the-call": "def add(a, b):\n    raise SystemExit(0)\n",
    "os._exit-inside-the-call": "import os\ndef add(a, b):\n    os._exit(0)\n",
    "keyboard-interrupt-inside-the-call": "def add(a, b):\n    raise KeyboardInterrupt\n",
    # The call pipes: a forged answer (or verdict) written ahead of the real ones.
    "forged-call-answers": "import json, os, struct\nfor fd in (4, 5):\n    for message in ({'t': ['ok', 5]}, "
    "{'passed': True}):\n        data = json.dumps(message).encode()\n        try:\n"
    "            os.write(fd, struct.pack('!I', len(data)) + data)\n        except OSError:\n"
    "            pass\n" + WRONG_ADD,
    # Full control of its own process: the call server itself answers 5 to everything.
    "patched-call-server": WRONG_ADD + "import sys\nfor module in list(sys.modules.values()):\n"
    "    if hasattr(module, '_answer'):\n        module._answer = lambda *a, m=module: m.encode("
    "('ok', 5), None)\n",
    "patched-builtins-and-hooks": WRONG_ADD + "import builtins, sys\nbuiltins.AssertionError = type('AssertionError',"
    " (Exception,), {})\nsys.excepthook = lambda *a: None\n",
}

SPOOFED_VALUES = {
    "always-equal": ALWAYS_EQUAL + "def add(a, b):\n    return _Liar()\n",
    "always-equal-in-set": (ALWAYS_EQUAL + "def add(a, b):\n    return _Liar()\n", "assert add(2, 3) in {5}\n"),
    "int-subclass": "class _Int(int):\n    def __eq__(self, other):\n        return True\n"
    "def add(a, b):\n    return _Int(a - b)\n",
    "int-subclass-index-and-repr": "class _Int(int):\n    __index__ = __int__ = lambda self: 5\n"
    "    __repr__ = __str__ = lambda self: '5'\n    __eq__ = lambda self, o: True\n"
    "    __hash__ = lambda self: hash(5)\ndef add(a, b):\n    return _Int(0)\n",
    "str-subclass": (
        "class _Str(str):\n    def __eq__(self, other):\n        return True\n"
        "def greet(name):\n    return _Str('no')\n",
        "assert greet('ada') == 'hello ada'\n",
    ),
    "list-subclass": (
        "class _List(list):\n    def __eq__(self, other):\n        return True\n"
        "    def __iter__(self):\n        return iter([1, 2])\ndef pair():\n    return _List([0])\n",
        "assert pair() == [1, 2]\n",
    ),
    "tuple-subclass": (
        "class _Tuple(tuple):\n    __eq__ = lambda self, o: True\ndef pair():\n    return _Tuple((0,))\n",
        "assert pair() == (1, 2)\n",
    ),
    "dict-subclass": (
        "class _Dict(dict):\n    __eq__ = lambda self, o: True\n    items = lambda self: [('a', 1)]\n"
        "def count():\n    return _Dict(b=2)\n",
        "assert count() == {'a': 1}\n",
    ),
    "float-subclass": (
        "class _Float(float):\n    __sub__ = lambda self, o: 0.0\n    __eq__ = lambda self, o: True\n"
        "def half():\n    return _Float(0.25)\n",
        "assert abs(half() - 0.5) < 1e-9\n",
    ),
    "class-spoof": "class _Fake:\n    __class__ = property(lambda self: int)\n    __eq__ = lambda self, o: True\n"
    "def add(a, b):\n    return _Fake()\n",
    "truth-that-changes": (
        "class _Flip:\n    n = 0\n    def __bool__(self):\n        _Flip.n += 1\n"
        "        return _Flip.n == 1\ndef is_even(n):\n    return _Flip()\n",
        "assert is_even(4)\nassert not is_even(3)\n",
    ),
    # StopIteration inside map() ends it: all() of an empty map holds.
    "stop-iteration-in-map": ("def is_even(n):\n    raise StopIteration\n", "assert all(map(is_even, [2, 3, 4]))\n"),
    "unserializable-generator": ("def evens(n):\n    yield from (0, 2)\n", "assert list(evens(3)) == [0, 2]\n"),
    "self-referencing-list": (
        "def nested():\n    x = []\n    x.append(x)\n    return x\n",
        "assert nested() == [[]]\n",
    ),
}

REACH_THE_TESTS = {
    "proc-mem-and-fds": WRONG_ADD + "import os\nfor pid in os.listdir('/proc'):\n"
    "    if not pid.isdigit() or pid == os.readlink('/proc/self'):\n        continue\n"
    "    for path, mode in ((f'/proc/{pid}/mem', 'r+b'), (f'/proc/{pid}/fd/3', 'wb')):\n"
    "        try:\n            open(path, mode).write(b'{\"passed\": true}\\n')\n"
    "            print('reached', path)\n        except (OSError, ValueError):\n            pass\n",
    "ptrace-every-pid": WRONG_ADD + "import ctypes, os\nlibc = ctypes.CDLL(None, use_errno=True)\n"
    "for pid in [int(p) for p in os.listdir('/proc') if p.isdigit()]:\n"
    "    if pid != int(os.readlink('/proc/self')) and libc.ptrace(16, pid, None, None) == 0:\n"
    "        print('reached', pid)\n",
    "kill-every-pid": WRONG_ADD + "import os\nfor pid in range(-1, 400):\n    try:\n        os.kill(pid, 9)\n"
    "    except OSError:\n        pass\n",
    "tests-scratch": WRONG_ADD + "import os\nfor path in ('/tmp', os.path.dirname(os.getcwd())):\n    try:\n"
    "        print('reached', os.listdir(path))\n    except OSError:\n        pass\n",
}

RESOURCES = {  # the attacks of test_sandbox.py, with the tests' process running beside them
    "fork-bomb": "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n",
    "fork-bomb-in-the-call": "import os\ndef add(a, b):\n    while True:\n        try:\n            os.fork()\n"
    "        except OSError:\n            pass\n",
    "memory-bomb": "chunks = []\nwhile True:\n    chunks.append(bytearray(10 ** 7))\n",
    "huge-return-value": "def add(a, b):\n    return list(range(10 ** 8))\n",
    "output-flood": "import sys\nfor _ in range(100):\n    sys.stdout.write('x' * 1_000_000)\n",
    "busy-loop-in-the-call": "def add(a, b):\n    while True:\n        pass\n",
    "surviving-children": WRONG_ADD + "import subprocess\nsubprocess.Popen(['sleep', '60'], start_new_session=True)\n"
    "subprocess.Popen(['sh', '-c', 'sleep 60 & sleep 60'])\n",
    "network": WRONG_ADD + "import socket\nfor host in ('1.1.1.1', '127.0.0.1'):\n    try:\n"
    "        socket.create_connection((host, 53), timeout=1)\n        print('reached', host)\n"
    "    except OSError:\n        pass\n",
    "write-outside-scratch": WRONG_ADD + f"for path in ['/tmp/x', '/root/x', {str(PROJECT / 'x')!r}, '/dev/shm/x']:\n"
    "    try:\n        open(path, 'w').write('x')\n        print('reached', path)\n"
    "    except OSError:\n        pass\n",
    "environment": WRONG_ADD + "import os, glob\nfor path in glob.glob('/proc/*/environ'):\n    try:\n"
    "        if b'CRITICS' in open(path, 'rb').read():\n            print('reached', path)\n"
    "    except OSError:\n        pass\nif any('CRITICS' in k for k in os.environ):\n"
    "    print('reached environ')\n",
}

ATTACKS = {**FORGERIES, **SPOOFED_VALUES, **REACH_THE_TESTS, **RESOURCES}


def attack_params() -> list:
    """(program, tests) per attack: MBPP-style asserts and a HumanEval-style ``check(candidate)``
    for the attacks on ``add``, their own tests for the others."""
    params = []
    for name, attack in ATTACKS.items():
        if isinstance(attack, tuple):
            params.append(pytest.param(*attack, id=name))
        else:
            params += [
                pytest.param(attack, MBPP_TESTS, id=f"{name}-mbpp"),
                pytest.param(attack, HUMANEVAL_TESTS, id=f"{name}-humaneval"),
            ]
    return params


@pytest.fixture(scope="module", params=[b for b in ("bwrap", "unshare") if sandbox_module._backend_available(b)])
def sandbox(request):
    """A sandbox per isolation backend that works here (none: the module is skipped)."""
    with Sandbox(LIMITS, isolation=request.param) as box:
        yield box


def run_contained(box: Sandbox, code: str, tests: str, expose=()):
    """Run ``code`` with ``tests``; assert it ended in time and the host and the worker are unharmed."""
    start = time.monotonic()
    result = box.run(code, tests=tests, expose=expose)
    elapsed = time.monotonic() - start
    assert elapsed < LIMITS.wall_seconds + SLACK, f"took {elapsed:.1f}s: {result}"
    assert subprocess.run(["true"], timeout=5).returncode == 0  # the host can still spawn
    mechanisms = box.mechanisms
    if mechanisms["uid_switch"]:
        assert sandbox_processes(mechanisms["uid"]) == sandbox_processes(mechanisms["tests_uid"]) == []
    assert box.run("print('still here')").stdout == "still here\n"  # and so can the worker
    return result


def test_the_suite_is_large_enough():
    assert len(ATTACKS) >= 30 and len(FORGERIES) + len(SPOOFED_VALUES) >= 20


@pytest.mark.parametrize("code, tests", attack_params())
def test_attack_is_contained_and_fails(sandbox, monkeypatch, code, tests):
    monkeypatch.setenv("CRITICS_SECRET", uuid.uuid4().hex)  # for the environment attack
    result = run_contained(sandbox, code, tests)
    assert not result.tests_passed, result
    assert verdict_from_result(result).correct is False, result
    assert "reached" not in result.stdout, result.stdout


# ------------------------------------------------------------------------ honest programs still pass
HONEST = [  # (program, tests, entry point): right ones pass, the wrong twin fails
    (RIGHT_ADD, MBPP_TESTS, "add"),
    (RIGHT_ADD, HUMANEVAL_TESTS, "add"),
    # MBPP's helpers the tests build with (367: a tree of Node objects), and a class used as a value
    (
        "class Node:\n    def __init__(self, v):\n        self.v, self.left = v, None\n"
        "def depth(n):\n    return 0 if n is None else 1 + depth(n.left)\n",
        "root = Node(1)\nroot.left = Node(2)\nassert depth(root) == 2\nassert root.left.v == 2\n",
        "depth",
    ),
    # HumanEval/32: the tests call a helper from the prompt
    (
        "def poly(xs, x):\n    return sum(c * x ** i for i, c in enumerate(xs))\n"
        "def find_zero(xs):\n    return -xs[0] / xs[1]\n",
        "def check(candidate):\n    import math\n    assert math.fabs(poly([1, 2], candidate([1, 2]))) < 1e-9\n"
        "check(find_zero)\n",
        "find_zero",
    ),
    # exceptions the tests expect, sets, dicts, tuples, bytes, complex, floats, types as arguments
    (
        "def parse(s):\n    if not s:\n        raise ValueError('empty')\n    return int(s)\n",
        "try:\n    parse('')\nexcept ValueError as e:\n    assert str(e) == 'empty'\nelse:\n    raise AssertionError\n"
        "assert parse('7') == 7\n",
        "parse",
    ),
    (
        "from collections import Counter, OrderedDict\ndef stats(xs):\n    return (set(xs), Counter(xs), "
        "OrderedDict(a=1), bytes(xs), complex(len(xs), 1), sum(xs) / 4, frozenset(xs))\n",
        "assert stats([1, 1, 2]) == ({1, 2}, {1: 2, 2: 1}, {'a': 1}, b'\\x01\\x01\\x02', 3 + 1j, 1.0, "
        "frozenset({1, 2}))\n",
        "stats",
    ),
    (
        "def drop(xs, kind):\n    return [x for x in xs if not isinstance(x, kind)]\n",
        "assert drop([1, 'a', 2.5], int) == ['a', 2.5]\n",
        "drop",
    ),
    # MBPP/126: the function under test shadows a builtin
    ("def sum(a, b):\n    return a + b\n", "assert sum(2, 3) == 5\n", "sum"),
    # a program reading its own stdin-free globals and printing still passes
    (
        "import math\nSCALE = 2\ndef area(r):\n    print('computing')\n    return math.pi * r * r * SCALE / 2\n",
        "assert abs(area(2) - 4 * math.pi) < 1e-12\n",
        "area",
    ),
]
WRONG_TWIN = {
    "add": "def add(a, b):\n    return a * b\n",
    "depth": "class Node:\n    def __init__(self, v):\n"
    "        self.v, self.left = v, None\ndef depth(n):\n    return 1\n",
    "find_zero": "def poly(xs, x):\n    return sum(c * x ** i for i, c in enumerate(xs))\n"
    "def find_zero(xs):\n    return 0.25\n",
    "parse": "def parse(s):\n    return int(s or 0)\n",
    "stats": "def stats(xs):\n    return (set(xs), {1: 2}, {'a': 1}, bytes(xs), 3 + 1j, 1.0, set(xs))\n",
    "drop": "def drop(xs, kind):\n    return xs\n",
    "sum": "def sum(a, b):\n    return 0\n",
    "area": "import math\ndef area(r):\n    return math.pi * r\n",
}


@pytest.mark.parametrize("program, tests, entry", HONEST, ids=[f"{i}-{h[2]}" for i, h in enumerate(HONEST)])
def test_honest_programs_pass_and_their_wrong_twins_fail(sandbox, program, tests, entry):
    right = sandbox.run(program, tests=tests, expose=[entry])
    assert right.tests_passed and verdict_from_result(right).correct is True, right
    wrong = sandbox.run(WRONG_TWIN[entry], tests=tests, expose=[entry])
    assert verdict_from_result(wrong).correct is False, wrong


def test_a_value_that_is_not_plain_fails_with_a_clear_reason(sandbox):
    result = sandbox.run("def make():\n    return object()\n", tests="assert make() == 1\n", expose=["make"])
    assert not result.tests_passed and result.phase == "tests"
    assert result.exception.startswith("TypeError: the tests cannot compare") and "plain builtin" in result.exception
