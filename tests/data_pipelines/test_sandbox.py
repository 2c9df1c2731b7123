"""The sandbox's attack suite, and what a normal program can still do inside it.

Every attack must end within its limit (wall time measured here), be reported as a failure where
a verdict applies, and leave the host untouched: no file written, no byte on a local listener, no
process left behind, and the host (and the worker) still able to start processes afterwards.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from data_pipelines import sandbox as sandbox_module
from data_pipelines.sandbox import Sandbox, SandboxLimits, SandboxUnavailable
from data_pipelines.verifiers.code import verdict_from_result

LIMITS = SandboxLimits(cpu_seconds=2, wall_seconds=2, memory_mb=256, max_processes=16, max_output_bytes=100_000)
SLACK = 1.5  # seconds on top of a limit: worker round trip and teardown on a busy 2-core machine
PROJECT = Path(__file__).resolve().parents[2]
ISOLATED = sandbox_module.available_backends() != ["none"]
needs_isolation = pytest.mark.skipif(not ISOLATED, reason="neither bwrap nor unshare can isolate here")
needs_bwrap = pytest.mark.skipif(not sandbox_module._backend_available("bwrap"), reason="bwrap cannot isolate here")
needs_unshare = pytest.mark.skipif(not sandbox_module._backend_available("unshare"), reason="unshare unusable here")

WRONG_ADD = "def add(a, b):\n    return a - b\n"
ADD_TESTS = "assert add(2, 3) == 5\n"


@pytest.fixture(scope="module")
def sandbox():
    with Sandbox(LIMITS) as box:  # bwrap where it works, else unshare
        yield box


def sandbox_processes(uid: int) -> list[int]:
    """Pids of host processes running as the sandbox's uid."""
    pids = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            if f"Uid:\t{uid}\t" in status.read_text():
                pids.append(int(status.parent.name))
        except OSError:
            continue
    return pids


def run_contained(box: Sandbox, code: str, tests: str | None = None, limit: float = LIMITS.wall_seconds):
    """Run ``code``; assert it ended in time and the host and the worker are unharmed."""
    start = time.monotonic()
    result = box.run(code, tests=tests)
    elapsed = time.monotonic() - start
    assert elapsed < limit + SLACK, f"took {elapsed:.1f}s: {result}"
    assert subprocess.run(["true"], timeout=5).returncode == 0  # the host can still spawn
    if box.mechanisms.get("uid_switch"):
        assert sandbox_processes(box.mechanisms["uid"]) == sandbox_processes(box.mechanisms["tests_uid"]) == []
    assert box.run("print('still here')").stdout == "still here\n"  # and so can the worker
    return result


# ------------------------------------------------------------------------------------- normal use
@needs_isolation
def test_normal_program_runs_with_stdin_and_output(sandbox):
    result = sandbox.run("import sys\nname = sys.stdin.read().strip()\nprint(f'hello {name}')\n", stdin="ada\n")
    assert (result.status, result.returncode, result.stdout, result.stderr) == ("ok", 0, "hello ada\n", "")


@needs_isolation
def test_errors_and_exit_codes_are_reported(sandbox):
    failing = sandbox.run("raise ValueError('bad input')")
    assert (failing.status, failing.returncode, failing.exception) == ("error", 1, "ValueError: bad input")
    assert "Traceback" in failing.stderr
    assert sandbox.run("import sys; sys.exit(3)").returncode == 3
    syntax = sandbox.run("def broken(:\n")
    assert syntax.status == "error" and syntax.exception.startswith("SyntaxError")


@needs_isolation
def test_scratch_folder_is_writable_and_fresh_per_program(sandbox):
    code = (
        "import os, tempfile\nopen('notes.txt', 'w').write('kept')\n"
        "with tempfile.NamedTemporaryFile(dir=os.environ['TMPDIR']) as f: f.write(b'x' * 1000)\n"
        "print(open('notes.txt').read(), os.listdir('.'))\n"
    )
    assert sandbox.run(code).stdout == "kept ['notes.txt']\n"
    assert sandbox.run("import os; print(os.listdir('.'))").stdout == "[]\n"


@needs_isolation
def test_run_many_keeps_input_order_across_workers():
    with Sandbox(LIMITS, workers=2) as box:
        results = list(box.run_many([f"print({i} * {i})" for i in range(12)]))
    assert [r.stdout for r in results] == [f"{i * i}\n" for i in range(12)]


@needs_isolation
def test_tests_pass_only_when_they_run_to_the_end(sandbox):
    assert sandbox.run("def add(a, b):\n    return a + b\n", tests=ADD_TESTS).tests_passed
    failed = sandbox.run(WRONG_ADD, tests=ADD_TESTS)
    assert not failed.tests_passed and (failed.phase, failed.exception) == ("tests", "AssertionError: ")


@needs_isolation
def test_tests_run_beside_the_program_and_the_output_keeps_its_order(sandbox):
    code = (
        "import sys\nname = sys.stdin.read().strip()\nprint('program', name)\ndef greet(x):\n"
        "    print('call', x)\n    return f'{x} {name}'\n"
    )
    result = sandbox.run(code, stdin="ada\n", tests="print('tests')\nassert greet('hi') == 'hi ada'\nprint('done')\n")
    assert result.tests_passed and result.stdout == "program ada\ntests\ncall hi\ndone\n", result
    assert sandbox.mechanisms["tests_uid"] != sandbox.mechanisms["uid"] or not sandbox.mechanisms["uid_switch"]


# ------------------------------------------------------------------------------------ resources
@needs_isolation
def test_fork_bomb_is_contained(sandbox):
    bomb = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n"
    result = run_contained(sandbox, bomb)
    assert result.status == "timeout"
    count = (
        "import os, time\nn = 0\nfor _ in range(100):\n    try:\n        if os.fork() == 0:\n"
        "            time.sleep(30)\n            os._exit(0)\n        n += 1\n    except OSError:\n"
        "        break\nprint(n)\n"
    )
    assert 0 < int(run_contained(sandbox, count, limit=0.5).stdout) < LIMITS.max_processes


@needs_isolation
def test_background_processes_die_with_the_program(sandbox):
    code = (
        "import subprocess\nsubprocess.Popen(['sleep', '60'], start_new_session=True)\n"
        "subprocess.Popen(['sh', '-c', 'sleep 60 & sleep 60'])\nprint('spawned')\n"
    )
    result = run_contained(sandbox, code, limit=0.5)
    assert (result.status, result.stdout) == ("ok", "spawned\n")


@pytest.mark.parametrize("code", ["while True:\n    pass\n", "import time\ntime.sleep(60)\n"], ids=["busy", "sleep"])
@needs_isolation
def test_infinite_loops_time_out(sandbox, code):
    assert run_contained(sandbox, code).status == "timeout"


@needs_isolation
def test_cpu_limit_stops_a_busy_loop_before_the_wall_limit():
    with Sandbox(SandboxLimits(cpu_seconds=1, wall_seconds=20)) as box:
        result = run_contained(box, "while True:\n    pass\n", limit=1)
    assert result.status == "timeout" and result.returncode < 0


@pytest.mark.parametrize(
    "code",
    ["x = bytearray(8 * 1024 ** 3)\n", "chunks = []\nwhile True:\n    chunks.append(bytearray(10 ** 7))\n"],
    ids=["one-shot", "growing"],
)
@needs_isolation
def test_memory_bomb_is_stopped(sandbox, code):
    result = run_contained(sandbox, code)
    assert result.status == "memory", result


@needs_isolation
def test_memory_of_all_processes_together_is_bounded():
    limits = SandboxLimits(wall_seconds=10, memory_mb=128, max_processes=16)
    code = (
        "import os, time\nkids = []\nfor _ in range(8):\n    pid = os.fork()\n    if pid == 0:\n"
        "        block = bytearray(100 * 1024 * 1024)\n        block[::4096] = b'x' * len(block[::4096])\n"
        "        time.sleep(0.5)\n        os._exit(0)\n    kids.append(pid)\n"
        "print(sum(os.waitpid(pid, 0)[1] == 0 for pid in kids))\n"
    )
    with Sandbox(limits) as box:
        if not box.mechanisms["cgroup"]:
            pytest.skip("cannot create a memory cgroup here; only the per-process limit applies")
        result = run_contained(box, code, limit=limits.wall_seconds)
    assert result.status == "ok", result
    assert int(result.stdout) * 100 <= limits.memory_mb + limits.scratch_mb + 128  # the worker's cgroup


@needs_isolation
def test_100_mb_of_stdout_is_cut_at_the_output_limit(sandbox):
    code = "import sys\nfor _ in range(100):\n    sys.stdout.write('x' * 1_000_000)\n"
    result = run_contained(sandbox, code)
    assert result.status == "output_limit"
    assert len(result.stdout) <= LIMITS.max_output_bytes


# ---------------------------------------------------------------------------- network, files, env
@needs_isolation
def test_no_network_to_the_internet_or_to_host_listeners(sandbox):
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.settimeout(0.3)
        port = listener.getsockname()[1]
        code = (
            "import socket\nfor host, port in [('1.1.1.1', 53), ('127.0.0.1', %d)]:\n"  # noqa: UP031
            "    try:\n        socket.create_connection((host, port), timeout=1).sendall(b'leak')\n"
            "        print('connected', host)\n    except OSError:\n        print('blocked', host)\n"
            "try:\n    socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'x', ('1.1.1.1', 53))\n"
            "    print('sent udp')\nexcept OSError:\n    print('blocked udp')\n"
        ) % port
        result = run_contained(sandbox, code)
        assert result.stdout == "blocked 1.1.1.1\nblocked 127.0.0.1\nblocked udp\n"
        with pytest.raises(socket.timeout):
            listener.accept()


@needs_isolation
def test_cannot_write_outside_scratch(sandbox):
    name = f"critics-sandbox-{uuid.uuid4().hex}"
    targets = [f"/tmp/{name}", f"/root/{name}", str(PROJECT / name), f"/var/tmp/{name}", f"/dev/shm/{name}"]
    code = (
        f"import os\nfor path in {targets!r}:\n    try:\n        open(path, 'w').write('x')\n"
        "        print('wrote', path)\n    except OSError:\n        print('denied')\n"
        f"try:\n    os.remove({str(PROJECT / 'pyproject.toml')!r})\nexcept OSError:\n    print('denied')\n"
    )
    result = run_contained(sandbox, code)
    assert result.stdout == "denied\n" * (len(targets) + 1)
    assert not any(os.path.exists(path) for path in targets)


@needs_isolation
def test_host_secrets_do_not_reach_the_program(monkeypatch):
    secret = uuid.uuid4().hex
    monkeypatch.setenv("CRITICS_SECRET", secret)
    code = (
        "import os, glob\nprint(dict(os.environ))\nfor path in glob.glob('/proc/*/environ'):\n"
        "    try:\n        print(open(path, 'rb').read())\n    except OSError:\n        pass\n"
    )
    with Sandbox(LIMITS) as box:
        result = box.run(code)
    assert result.status == "ok" and "PATH" in result.stdout
    assert secret not in result.stdout + result.stderr


# --------------------------------------------------------------------------- cheating the verdict
@pytest.mark.parametrize(
    "attack",
    [
        "import os\nos.kill(os.getppid(), 9)\n",
        "import os\nos.killpg(os.getpgid(0), 9)\n",
        "import os\nos.system('kill -9 -1')\n",
        "import os\nfor pid in range(1, 400):\n    try:\n        os.kill(pid, 9)\n    except OSError:\n        pass\n",
    ],
    ids=["getppid", "killpg", "kill-all", "every-pid"],
)
@needs_isolation
def test_killing_the_parent_fails_and_harms_nothing(sandbox, attack):
    result = run_contained(sandbox, WRONG_ADD + attack, tests=ADD_TESTS)
    assert verdict_from_result(result).correct is False


@pytest.mark.parametrize(
    "attack",
    [
        "import sys\nsys.exit(0)\n",
        "raise SystemExit\n",
        "import os\nos._exit(0)\n",
        "exit()\n",
        "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n",
    ],
    ids=["sys.exit", "SystemExit", "os._exit", "exit", "self-kill"],
)
@needs_isolation
def test_exiting_before_the_asserts_fails(sandbox, attack):
    result = sandbox.run(WRONG_ADD + attack, tests=ADD_TESTS)
    assert not result.tests_passed
    assert verdict_from_result(result).correct is False


@pytest.mark.parametrize(
    "attack, tests",
    [
        ("import builtins\nbuiltins.AssertionError = type('AssertionError', (Exception,), {})\n", ADD_TESTS),
        ("AssertionError.__init__ = lambda self, *a: None\n", ADD_TESTS),
        ("import builtins\nbuiltins.abs = lambda x: 0\n", "assert abs(add(2, 3) - 5) < 1e-9\n"),
        ("abs = lambda x: 0\n", "assert abs(add(2, 3) - 5) < 1e-9\n"),
        ("import math\nmath.isclose = lambda *a, **k: True\n", "import math\nassert math.isclose(add(2, 3), 5)\n"),
        (
            "import sys, types\nsys.modules['math'] = types.SimpleNamespace(isclose=lambda *a, **k: True)\n",
            "import math\nassert math.isclose(add(2, 3), 5)\n",
        ),
        ("def check(candidate):\n    pass\n", "def check(candidate):\n    assert candidate(2, 3) == 5\ncheck(add)\n"),
        ("import sys\nsys.excepthook = lambda *a: None\nsys.settrace(lambda *a: None)\n", ADD_TESTS),
        (
            "import os\nprint('{\"passed\": \"0\"}')\nos.write(3, b'passed 00000000000000000000000000000000\\n')\n"
            "os._exit(0)\n",
            ADD_TESTS,
        ),
    ],
    ids=[
        "AssertionError",
        "AssertionError.__init__",
        "builtins.abs",
        "global-abs",
        "math.isclose",
        "sys.modules",
        "check",
        "hooks",
        "forged-report",
    ],
)
@needs_isolation
def test_monkey_patching_cannot_swallow_failures(sandbox, attack, tests):
    result = sandbox.run(WRONG_ADD + attack, tests=tests)
    assert not result.tests_passed, result
    assert verdict_from_result(result).correct is False


# ----------------------------------------------------------------------------- backends, opt-out
def test_missing_isolation_raises_a_clear_error(monkeypatch):
    monkeypatch.setattr(sandbox_module, "_backend_available", lambda name: name == "none")
    for isolation in ("auto", "bwrap", "unshare"):
        with pytest.raises(SandboxUnavailable, match='isolation="none"'):
            Sandbox(LIMITS, isolation=isolation)
    with pytest.raises(ValueError, match="isolation must be one of"):
        Sandbox(LIMITS, isolation="docker")


def test_opting_out_runs_without_isolation(monkeypatch):
    monkeypatch.setattr(sandbox_module, "_backend_available", lambda name: name == "none")
    with Sandbox(LIMITS, isolation="none") as box:
        result = box.run("print(sum(range(10)))")
        assert (result.status, result.stdout, box.mechanisms["backend"]) == ("ok", "45\n", "none")
        assert box.run("while True:\n    pass\n").status == "timeout"


@pytest.mark.parametrize(
    "backend", [pytest.param("bwrap", marks=needs_bwrap), pytest.param("unshare", marks=needs_unshare)]
)
def test_each_backend_isolates_network_files_and_processes(backend):
    name = f"/tmp/critics-sandbox-{uuid.uuid4().hex}"
    code = (
        "import socket\ntry:\n    socket.create_connection(('1.1.1.1', 53), timeout=1)\nexcept OSError:\n"
        f"    print('no network')\ntry:\n    open({name!r}, 'w')\nexcept OSError:\n    print('read-only')\n"
        "open('scratch.txt', 'w').write('ok')\nprint(open('scratch.txt').read())\n"
    )
    with Sandbox(LIMITS, isolation=backend) as box:
        result = run_contained(box, code)
        assert run_contained(box, "import os\nwhile True:\n    os.fork()\n").status in ("timeout", "error")
        assert box.mechanisms == {**box.mechanisms, "backend": backend, "pidns": True, "uid_switch": True}
    assert result.stdout == "no network\nread-only\nok\n"
    assert not os.path.exists(name)


@needs_isolation
def test_a_dead_worker_is_replaced_and_close_leaves_nothing_behind():
    box = Sandbox(LIMITS)
    first = box.mechanisms
    roots = [box._workers[0].info.get("root")]
    os.killpg(box._workers[0].proc.pid, 9)  # the worker dies between two programs
    box._workers[0].proc.wait()
    assert box.run("print('again')").stdout == "again\n"
    second = box.mechanisms
    roots.append(box._workers[0].info.get("root"))
    box.close()
    assert not [root for root in roots if root and os.path.exists(root)]  # scratch roots of killed zygotes too
    for uid in (first["uid"], second["uid"]):
        assert sandbox_processes(uid) == []
        assert not list(Path("/sys/fs/cgroup").glob(f"*/**/critics-sandbox-{uid}"))
