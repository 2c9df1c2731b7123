"""Isolated execution of untrusted Python (model-generated code, its tests).

``Sandbox(limits).run(code)`` runs ``code`` with no network, a read-only file system except a
fresh scratch folder (its working directory), an empty environment, and limits on CPU time, wall
time, memory, processes and output. Layers, from the outside in:

* **worker** (one per worker slot, long-lived): a Python "zygote" started under ``bwrap``
  (network, PID, IPC and UTS namespaces; ``/`` bound read-only; a size-capped tmpfs on ``/tmp``)
  or, failing that, under ``unshare`` (the zygote remounts every mount read-only itself). Where
  a tmpfs covers the Python installation or this package (a venv made in ``mktemp -d``, a pyenv
  in a private ``/root``), those paths are bound back, read-only. It reads programs from a pipe,
  so Python starts once per worker, not once per program.
* **program**: the zygote forks it into a fresh PID namespace, as its PID 1, so when it dies the
  kernel kills every descendant (fork bombs, daemons, ``setsid`` escapees). It switches to an
  unprivileged uid unique to the worker (which drops all capabilities and makes ``RLIMIT_NPROC``
  count only this program's processes: root ignores that limit), sets ``no_new_privs`` and
  rlimits (CPU, address space, processes, file size), then ``exec``s the code in-process, with
  common stdlib modules pre-imported; its scratch folder is deleted afterwards.
* **tests** (when given): a second process, forked and confined the same way but under another
  uid, in a sibling PID namespace and not dumpable, runs the test code. The program's globals
  reach it only as references: calls go to the program's process and plain builtin values come
  back, in an encoding that cannot execute anything (``sandbox_calls``). The tests compare real
  values in their own process, and only they report the pass, on a pipe the program never holds;
  nothing the program does in its own process (reading the interpreter's memory, patching
  builtins, returning an object that equals everything, exiting early) can forge it.
* **cgroups** (when the host lets us create them): a pids and a memory cgroup per worker bound
  the whole tree, so even 32 processes x ``memory_mb`` cannot exhaust the host.

With no working backend ``Sandbox`` raises ``SandboxUnavailable``; ``isolation="none"`` opts out
explicitly: the rlimits, and as root the PID namespace, still apply; the file system, network and
(where the Python installation is private to root) the uid do not get isolated. The zygote is
``sandbox_worker.py``, run as a script inside the sandbox (standard library only); this module
is the host side.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import weakref
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from functools import cache
from itertools import count

from data_pipelines import sandbox_worker
from data_pipelines.sandbox_worker import MB as _MB
from data_pipelines.sandbox_worker import PATH as _PATH
from data_pipelines.sandbox_worker import recv as _recv
from data_pipelines.sandbox_worker import send as _send

__all__ = ["Sandbox", "SandboxLimits", "SandboxResult", "SandboxUnavailable", "available_backends"]

BACKENDS = ("bwrap", "unshare", "none")
_OPT_OUT = 'pass isolation="none" to run untrusted code without isolation (unsafe)'


@dataclass(frozen=True)
class SandboxLimits:
    """Per-program limits.

    Attributes:
        cpu_seconds: CPU time of the program's main process (``RLIMIT_CPU``, rounded up).
        wall_seconds: wall-clock time, after which the whole process tree is killed.
        memory_mb: address space per process (``RLIMIT_AS``); also bounds the worker's cgroup.
        max_processes: processes and threads the program may have at once (``RLIMIT_NPROC``).
        max_output_bytes: stdout + stderr captured; exceeding it kills the program.
        scratch_mb: size of the worker's tmpfs, which holds the scratch folder.
    """

    cpu_seconds: float = 10
    wall_seconds: float = 10
    memory_mb: int = 1024
    max_processes: int = 32
    max_output_bytes: int = 1_000_000
    scratch_mb: int = 64


@dataclass
class SandboxResult:
    """What happened to one program.

    Attributes:
        status: "ok" (exit 0), "error" (non-zero exit), "timeout" (wall or CPU limit), "memory",
            "output_limit", "killed" (another signal), or "sandbox_error" (the worker failed).
        returncode: exit code, or minus the signal number; None if unknown.
        stdout: captured standard output (decoded, invalid UTF-8 replaced).
        stderr: captured standard error.
        wall_seconds: wall time of the program.
        tests_passed: True only when ``tests`` were given and their own process, which the
            program cannot reach, ran them to the end without an exception (see ``Sandbox.run``).
        exception: "Type: message" of an uncaught exception (``SystemExit`` included): the tests'
            one when they failed, else the program's (advisory: the program could forge it).
        phase: "program" or "tests": where ``exception`` was raised.
    """

    status: str
    returncode: int | None
    stdout: str
    stderr: str
    wall_seconds: float
    tests_passed: bool = False
    exception: str | None = None
    phase: str | None = None


class SandboxUnavailable(RuntimeError):
    """No isolation backend works on this machine (or the one requested does not)."""


# ------------------------------------------------------------------------------- host side
@cache
def _backend_available(name: str) -> bool:
    """Whether ``name`` can actually create its namespaces here (probed once per process)."""
    if name == "none":
        return True
    probe = {
        "bwrap": ["bwrap", *_BWRAP_NS, "--ro-bind", "/", "/", "true"],
        "unshare": ["unshare", *_UNSHARE_NS, "true"],
    }.get(name)
    if probe is None or shutil.which(probe[0]) is None:
        return False
    try:
        return subprocess.run(probe, capture_output=True, timeout=30, env={"PATH": _PATH}).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def available_backends() -> list[str]:
    """The isolation backends that work on this machine, strongest first ("none" always last)."""
    return [name for name in BACKENDS if _backend_available(name)]


def _resolve_isolation(isolation: str) -> str:
    if isolation not in (*BACKENDS, "auto"):
        raise ValueError(f"isolation must be one of auto, {', '.join(BACKENDS)}; got {isolation!r}")
    if isolation == "none":
        return "none"
    for name in ("bwrap", "unshare") if isolation == "auto" else (isolation,):
        if _backend_available(name):
            return name
    wanted = "neither bubblewrap (bwrap) nor unshare" if isolation == "auto" else isolation
    raise SandboxUnavailable(
        f"cannot isolate untrusted code: {wanted} can create namespaces here (needs root or "
        f"unprivileged user namespaces); install bubblewrap, or {_OPT_OUT}"
    )


# No user namespace: as root the zygote must keep real root to switch each program to its own uid.
_BWRAP_NS = ["--unshare-net", "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try"]
_UNSHARE_NS = ["--mount", "--net", "--pid", "--ipc", "--uts", "--fork", "--kill-child", "--propagation", "private"]
_ZYGOTE_CAPS = ["CAP_SETUID", "CAP_SETGID", "CAP_SYS_ADMIN", "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_KILL"]
_uid_counter = count()


def _worker_uid() -> int:
    """A uid pair no other live worker on this machine uses (programs get it, their tests it + 1):
    it scopes ``RLIMIT_NPROC`` to one process tree."""
    return 10_000_000 + (os.getpid() % (1 << 20)) * 1024 + next(_uid_counter) % 512 * 2


def _installation_paths() -> set[str]:
    """What the worker must see of this Python: the prefixes (a venv's, the stdlib's), the folder
    of every link from ``sys.executable`` to the interpreter, and this package's folder (the
    zygote's script). Paths stay as written, not resolved: they are looked up that way."""
    paths = {
        sys.prefix,
        sys.base_prefix,
        sys.exec_prefix,
        sys.base_exec_prefix,
        os.path.dirname(os.path.realpath(sys.executable)),
        os.path.dirname(os.path.abspath(sandbox_worker.__file__)),
    }
    link = os.path.abspath(sys.executable)
    for _ in range(40):  # the kernel's own limit on links followed
        paths.add(os.path.dirname(link))
        if not os.path.islink(link):
            break
        link = os.path.abspath(os.path.join(os.path.dirname(link), os.readlink(link)))
    paths = {os.path.abspath(path) for path in paths}
    return {path for path in paths if not any(path.startswith(other + os.sep) for other in paths)}


def _covered_installation(as_root: bool) -> dict[str, list[str]]:
    """The installation paths that the sandbox covers, by the folder that covers them: ``/tmp``
    (the scratch tmpfs; a venv made in ``mktemp -d`` lives there) and, as root, a private folder
    (no o+x, e.g. ``/root`` holding pyenv) that would hide them from the programs' uid. The
    sandbox binds each back, read-only, on top of the tmpfs it puts there."""
    covered: dict[str, list[str]] = {}
    for path in sorted(_installation_paths()):
        parts, top = path.split(os.sep), None
        if parts[1:2] == ["tmp"] and len(parts) > 2:
            top = "/tmp"
        for depth in range(2, len(parts)) if top is None and as_root else ():
            if not os.stat(os.sep.join(parts[:depth])).st_mode & 0o001:
                top = os.sep.join(parts[:depth])
                break
        if top is not None:
            covered.setdefault(top, []).append(path)
    return covered


def _bwrap_binds(top: str, paths: list[str]) -> list[str]:
    """bwrap arguments that bind ``paths`` back, read-only, on the tmpfs at ``top``."""
    args = []
    for path in paths:
        folder = top
        for part in os.path.relpath(os.path.dirname(path), top).split(os.sep):
            folder = os.path.normpath(os.path.join(folder, part))  # else bwrap makes it 0700
            args += ["--perms", "0755", "--dir", folder] if folder != top else []
        args += ["--ro-bind", path, path]  # bwrap reads the source from the old root: never covered
    return args


def _worker_argv(backend: str, limits: SandboxLimits, uid: int) -> list[str]:
    covered = {} if backend == "none" else _covered_installation(os.geteuid() == 0)
    config = {
        "uid": uid,
        "mounts": backend == "unshare",
        "scratch_mb": limits.scratch_mb,
        "expose": covered,
        "root": None if backend == "none" else "/tmp",
    }
    zygote = [sys.executable, "-I", os.path.abspath(sandbox_worker.__file__), "--zygote", json.dumps(config)]
    if backend == "bwrap":
        caps = [arg for cap in _ZYGOTE_CAPS for arg in ("--cap-add", cap)] if os.geteuid() == 0 else []
        private = []
        for top, paths in covered.items():
            if top != "/tmp":
                private += ["--perms", "0755", "--tmpfs", top, *_bwrap_binds(top, paths), "--remount-ro", top]
        scratch = [
            "--size",
            str(limits.scratch_mb * _MB),
            "--tmpfs",
            "/tmp",
            *_bwrap_binds("/tmp", covered.get("/tmp", [])),
        ]  # after the tmpfs, on top of it
        return [
            "bwrap",
            *_BWRAP_NS,
            "--ro-bind",
            "/",
            "/",
            *private,
            "--dev",
            "/dev",
            "--proc",
            "/proc",
            *scratch,
            "--clearenv",
            "--new-session",
            "--cap-drop",
            "ALL",
            *caps,
            "--",
            *zygote,
        ]
    if backend == "unshare":
        return ["unshare", *_UNSHARE_NS, "--mount-proc", "--", *zygote]
    return zygote


class _Cgroup:
    """Per-worker pids + memory cgroups (v1 or v2), created only where the host allows it."""

    def __init__(self, dirs: list[str]):
        self.dirs = dirs
        self._oom_kills = self.oom_kills()

    @classmethod
    def create(cls, name: str, limits: SandboxLimits) -> _Cgroup | None:
        pids = str(2 * limits.max_processes + 8)  # a program's tree, its tests' tree, bwrap and the zygote
        memory = str((limits.memory_mb + limits.scratch_mb + 128) * _MB)  # + zygote and tmpfs
        try:
            own = {line.split(":")[1]: line.strip().split(":", 2)[2] for line in open("/proc/self/cgroup")}
        except OSError:
            return None
        if os.path.isdir("/sys/fs/cgroup/pids") and os.path.isdir("/sys/fs/cgroup/memory"):
            plan = [
                (f"/sys/fs/cgroup/pids{own.get('pids', '/')}", {"pids.max": pids}),
                (f"/sys/fs/cgroup/memory{own.get('memory', '/')}", {"memory.limit_in_bytes": memory}),
            ]
        elif os.path.exists("/sys/fs/cgroup/cgroup.controllers"):
            plan = [(f"/sys/fs/cgroup{own.get('', '/')}", {"pids.max": pids, "memory.max": memory})]
        else:
            return None
        made = []
        try:
            for parent, settings in plan:
                made.append(os.path.join(parent, name))
                os.mkdir(made[-1])
                for key, value in settings.items():
                    with open(os.path.join(made[-1], key), "w") as f:
                        f.write(value)
        except OSError:
            cls(made).remove()
            return None
        return cls(made)

    def wrap(self, argv: list[str]) -> list[str]:
        """``argv`` started from a shell that first moves itself into the cgroups."""
        moves = " && ".join(f"echo $$ > '{d}/cgroup.procs'" for d in self.dirs)
        return ["/bin/sh", "-c", f'{moves} && exec "$@"', "sh", *argv]

    def oom_kills(self) -> int:
        total = 0
        for path in (os.path.join(d, n) for d in self.dirs for n in ("memory.oom_control", "memory.events")):
            with contextlib.suppress(OSError), open(path) as f:
                total += sum(int(line.split()[1]) for line in f if line.startswith("oom_kill "))
        return total

    def new_oom_kill(self) -> bool:
        before, self._oom_kills = self._oom_kills, self.oom_kills()
        return self._oom_kills > before

    def remove(self) -> None:
        for d in self.dirs:
            deadline = time.monotonic() + 2  # killed processes take a moment to leave
            while os.path.isdir(d) and time.monotonic() < deadline:
                with contextlib.suppress(OSError):
                    os.rmdir(d)
                time.sleep(0.01)


class _Worker:
    """One zygote process and the pipe to it. Not thread-safe: ``Sandbox`` hands out workers."""

    def __init__(self, backend: str, limits: SandboxLimits):
        self.backend, self.limits = backend, limits
        self.proc: subprocess.Popen | None = None
        self.cgroup: _Cgroup | None = None
        self.info: dict = {}

    def start(self) -> None:
        uid = _worker_uid()
        argv = _worker_argv(self.backend, self.limits, uid)
        self.cgroup = _Cgroup.create(f"critics-sandbox-{uid}", self.limits) if os.geteuid() == 0 else None
        if self.cgroup:
            argv = self.cgroup.wrap(argv)
        self._log = tempfile.TemporaryFile()
        # A fixed, minimal environment: nothing of the host's (tokens, keys) reaches the worker.
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            env={"PATH": _PATH, "LANG": "C.UTF-8"},
            start_new_session=True,
        )
        hello = _recv(self.proc.stdout.fileno(), time.monotonic() + 60)
        if not hello:
            detail = self._stderr_tail()
            self.close()
            raise SandboxUnavailable(f"the {self.backend} sandbox worker failed to start: {detail}; {_OPT_OUT}")
        self.info = {**hello, "cgroup": bool(self.cgroup)}

    def _stderr_tail(self) -> str:
        self._log.seek(0)
        return self._log.read()[-2000:].decode(errors="replace").strip() or "(no output)"

    def run(self, request: dict) -> dict:
        if self.proc is None or self.proc.poll() is not None:
            self.close()  # a dead worker's pipes and cgroup go first
            self.start()
        try:
            _send(self.proc.stdin.fileno(), request)
            reply = _recv(self.proc.stdout.fileno(), time.monotonic() + self.limits.wall_seconds + 30)
        except OSError:
            reply = None
        if reply is None:  # the zygote died or hung: never reuse it
            detail = self._stderr_tail()
            self.close()
            return {"status": "sandbox_error", "returncode": None, "stdout": "", "stderr": detail, "wall_seconds": 0.0}
        oom = self.cgroup is not None and self.cgroup.new_oom_kill()  # read every time: a fresh baseline
        if oom and reply["status"] in ("killed", "timeout"):
            reply["status"] = "memory"
        return reply

    def close(self) -> None:
        if self.proc is not None:
            with contextlib.suppress(OSError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.kill()
            self.proc.wait()
            for pipe in (self.proc.stdin, self.proc.stdout):
                with contextlib.suppress(OSError):
                    pipe.close()
            self.proc = None
        # A killed zygote cannot remove the scratch root it made; where it made it in our own
        # /tmp (no private mounts), remove it here.
        root = self.info.pop("root", None)
        if root and os.path.basename(root).startswith("critics-sandbox-"):
            shutil.rmtree(root, ignore_errors=True)
        if self.cgroup is not None:
            self.cgroup.remove()
            self.cgroup = None


class Sandbox:
    """Runs untrusted Python programs in isolated, long-lived workers.

    Args:
        limits: per-program limits.
        isolation: "auto" (bwrap, else unshare), "bwrap", "unshare", or "none" to opt out.
        workers: number of worker processes; ``run_many`` runs that many programs at once.

    Raises:
        SandboxUnavailable: the requested isolation (or, for "auto", any) does not work here.

    Workers start lazily and stop with ``close()`` (or the ``with`` block). ``run`` is
    thread-safe.

    >>> with Sandbox(SandboxLimits(wall_seconds=5)) as sandbox:
    ...     sandbox.run("print(6 * 7)").stdout
    '42\\n'
    """

    def __init__(self, limits: SandboxLimits = SandboxLimits(), isolation: str = "auto", workers: int = 1):
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        self.limits, self._limits = limits, asdict(limits)
        self.backend = _resolve_isolation(isolation)
        self._workers = [_Worker(self.backend, limits) for _ in range(workers)]
        self._idle: queue.SimpleQueue[_Worker] = queue.SimpleQueue()
        for worker in self._workers:
            self._idle.put(worker)
        self._finalizer = weakref.finalize(self, _close_all, self._workers)

    def run(
        self, code: str, stdin: str | None = None, tests: str | None = None, expose: Sequence[str] = ()
    ) -> SandboxResult:
        """Run ``code`` (a whole program, ``__name__ == "__main__"``) and return what happened.

        Args:
            code: Python source.
            stdin: text fed to the program's standard input (empty if None).
            tests: optional test code, run in a separate sandboxed process once ``code`` has run.
                The program's globals appear there as references (a function call runs in the
                program's process and returns a plain builtin value, see ``sandbox_calls``);
                its modules as the tests' own standard library modules. ``tests_passed`` is set
                only when that process reports that ``tests`` returned normally.
            expose: names the tests must see as the program defined them even where they shadow
                a builtin: the function under test (MBPP's ``sum``, say).
        """
        request = {"code": code, "stdin": stdin or "", "tests": tests, "expose": list(expose), "limits": self._limits}
        worker = self._idle.get()
        try:
            reply = worker.run(request)
        finally:
            self._idle.put(worker)
        return SandboxResult(**reply)

    def run_many(
        self,
        codes: Iterable[str],
        tests: Iterable[str | None] | None = None,
        expose: Iterable[Sequence[str]] | None = None,
    ) -> Iterator[SandboxResult]:
        """Run many programs on all workers at once; yields results in input order, lazily.

        Args:
            codes: the programs.
            tests: one test code (or None) per program, as in ``run``.
            expose: one list of exposed names per program, as in ``run``.
        """
        codes = list(codes)
        tests = [None] * len(codes) if tests is None else list(tests)
        expose = [()] * len(codes) if expose is None else list(expose)
        if not len(tests) == len(expose) == len(codes):
            raise ValueError(f"got {len(codes)} programs, {len(tests)} tests and {len(expose)} expose lists")
        return self._stream(list(zip(codes, tests, expose)))

    def _stream(self, jobs: list) -> Iterator[SandboxResult]:
        pool = ThreadPoolExecutor(len(self._workers), thread_name_prefix="sandbox")
        try:
            yield from pool.map(lambda job: self.run(job[0], tests=job[1], expose=job[2]), jobs)
        finally:  # a caller that stops early must not wait for every queued program
            pool.shutdown(cancel_futures=True)

    @property
    def mechanisms(self) -> dict:
        """What isolation the (started) workers verified: backend, uid switch, PID namespaces, cgroups."""
        if not any(worker.info for worker in self._workers):
            self.run("pass")
        return {"backend": self.backend, **next(worker.info for worker in self._workers if worker.info)}

    def close(self) -> None:
        """Stop every worker (and every program still running in it)."""
        self._finalizer()

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _close_all(workers: list[_Worker]) -> None:
    for worker in workers:
        worker.close()
