"""Isolated execution of untrusted Python (model-generated code, its tests).

``Sandbox(limits).run(code)`` runs ``code`` with no network, a read-only file system except a
fresh scratch folder (its working directory), an empty environment, and limits on CPU time, wall
time, memory, processes and output. Layers, from the outside in:

* **worker** (one per worker slot, long-lived): a Python "zygote" started under ``bwrap``
  (network, PID, IPC and UTS namespaces; ``/`` bound read-only; a size-capped tmpfs on ``/tmp``)
  or, failing that, under ``unshare`` (the zygote remounts every mount read-only itself). It
  reads programs from a pipe, so Python starts once per worker, not once per program.
* **program**: the zygote forks it into a fresh PID namespace, as its PID 1, so when it dies the
  kernel kills every descendant (fork bombs, daemons, ``setsid`` escapees). It switches to an
  unprivileged uid unique to the worker (which drops all capabilities and makes ``RLIMIT_NPROC``
  count only this program's processes: root ignores that limit), sets ``no_new_privs`` and
  rlimits (CPU, address space, processes, file size), then ``exec``s the code in-process, with
  common stdlib modules pre-imported; its scratch folder is deleted afterwards.
* **cgroups** (when the host lets us create them): a pids and a memory cgroup per worker bound
  the whole tree, so even 32 processes x ``memory_mb`` cannot exhaust the host.

With no working backend ``Sandbox`` raises ``SandboxUnavailable``; ``isolation="none"`` opts out
explicitly: the rlimits, and as root the PID namespace, still apply; the file system, network and
(where the Python installation is private to root) the uid do not get isolated. The zygote half of
this file runs as a script inside the sandbox, so the module imports only the standard library.
"""

from __future__ import annotations

import builtins
import contextlib
import ctypes
import fcntl
import gc
import json
import math
import os
import queue
import resource
import secrets
import select
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import types
import weakref
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from functools import lru_cache
from itertools import count

__all__ = ["Sandbox", "SandboxLimits", "SandboxResult", "SandboxUnavailable", "available_backends"]

BACKENDS = ("bwrap", "unshare", "none")
_OPT_OUT = 'pass isolation="none" to run untrusted code without isolation (unsafe)'
_PATH = "/usr/local/bin:/usr/bin:/bin"
_MB = 1024 * 1024


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
        tests_passed: True only when ``tests`` were given and the trusted driver saw them run to
            the end without an exception (see ``Sandbox.run``).
        exception: "Type: message" of an uncaught exception (``SystemExit`` included), as
            reported by the driver; advisory, since the program could forge it.
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


# ----------------------------------------------------------------------------------- framing
def _send(fd: int, obj: dict) -> None:
    data = json.dumps(obj).encode()
    data = struct.pack("!I", len(data)) + data
    while data:
        data = data[os.write(fd, data) :]


def _read_exact(fd: int, size: int, deadline: float | None) -> bytes | None:
    """Read ``size`` bytes; None on EOF or when ``deadline`` (monotonic) passes."""
    chunks, need = [], size
    while need:
        if deadline is not None and not select.select([fd], [], [], max(0.0, deadline - time.monotonic()))[0]:
            return None
        chunk = os.read(fd, need)
        if not chunk:
            return None
        chunks.append(chunk)
        need -= len(chunk)
    return b"".join(chunks)


def _recv(fd: int, deadline: float | None = None) -> dict | None:
    head = _read_exact(fd, 4, deadline)
    body = head and _read_exact(fd, struct.unpack("!I", head)[0], deadline)
    return None if body is None else json.loads(body)


# ------------------------------------------------------------------------------- host side
@lru_cache(maxsize=None)
def _backend_available(name: str) -> bool:
    """Whether ``name`` can actually create its namespaces here (probed once per process)."""
    if name == "none":
        return True
    probe = {"bwrap": ["bwrap", *_BWRAP_NS, "--ro-bind", "/", "/", "true"],
             "unshare": ["unshare", *_UNSHARE_NS, "true"]}.get(name)
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
    """A uid no other live worker on this machine uses: it scopes ``RLIMIT_NPROC`` to one program."""
    return 10_000_000 + (os.getpid() % (1 << 20)) * 1024 + next(_uid_counter) % 1024


def _hidden_installation() -> dict[str, list[str]]:
    """Private directories (mode without o+x, e.g. ``/root`` holding pyenv) that hide the Python
    installation from the sandbox's uid, each with the installation paths under it: the sandbox
    covers such a directory with an empty tmpfs and binds just those paths back, read-only."""
    hidden: dict[str, list[str]] = {}
    prefixes = {os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix)}
    for path in sorted(prefixes):
        parts = path.split(os.sep)
        for depth in range(2, len(parts)):
            ancestor = os.sep.join(parts[:depth])
            if not os.stat(ancestor).st_mode & 0o001:
                hidden.setdefault(ancestor, []).append(path)
                break
    return hidden


def _worker_argv(backend: str, limits: SandboxLimits, uid: int) -> list[str]:
    hidden = _hidden_installation() if os.geteuid() == 0 else {}
    config = {"uid": uid, "mounts": backend == "unshare", "scratch_mb": limits.scratch_mb, "expose": hidden,
              "root": None if backend == "none" else "/tmp"}
    zygote = [sys.executable, "-I", os.path.abspath(__file__), "--zygote", json.dumps(config)]
    if backend == "bwrap":
        caps = [arg for cap in _ZYGOTE_CAPS for arg in ("--cap-add", cap)] if os.geteuid() == 0 else []
        expose = []
        for top, paths in hidden.items():
            expose += ["--perms", "0755", "--tmpfs", top]
            for path in paths:
                folder = top
                for part in os.path.relpath(os.path.dirname(path), top).split(os.sep):
                    folder = os.path.normpath(os.path.join(folder, part))  # else bwrap makes it 0700
                    expose += ["--perms", "0755", "--dir", folder] if folder != top else []
                expose += ["--ro-bind", path, path]
            expose += ["--remount-ro", top]
        return ["bwrap", *_BWRAP_NS, "--ro-bind", "/", "/", *expose, "--dev", "/dev", "--proc", "/proc",
                "--size", str(limits.scratch_mb * _MB), "--tmpfs", "/tmp", "--clearenv", "--new-session",
                "--cap-drop", "ALL", *caps, "--", *zygote]
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
        pids = str(limits.max_processes + 8)  # + bwrap and the zygote
        memory = str((limits.memory_mb + limits.scratch_mb + 128) * _MB)  # + zygote and tmpfs
        try:
            own = {line.split(":")[1]: line.strip().split(":", 2)[2] for line in open("/proc/self/cgroup")}
        except OSError:
            return None
        if os.path.isdir("/sys/fs/cgroup/pids") and os.path.isdir("/sys/fs/cgroup/memory"):
            plan = [(f"/sys/fs/cgroup/pids{own.get('pids', '/')}", {"pids.max": pids}),
                    (f"/sys/fs/cgroup/memory{own.get('memory', '/')}", {"memory.limit_in_bytes": memory})]
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
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log,
                                     env={"PATH": _PATH, "LANG": "C.UTF-8"}, start_new_session=True)
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
        self.limits = limits
        self.backend = _resolve_isolation(isolation)
        self._workers = [_Worker(self.backend, limits) for _ in range(workers)]
        self._idle: queue.SimpleQueue[_Worker] = queue.SimpleQueue()
        for worker in self._workers:
            self._idle.put(worker)
        self._finalizer = weakref.finalize(self, _close_all, self._workers)

    def run(self, code: str, stdin: str | None = None, tests: str | None = None,
            expose: Sequence[str] = ()) -> SandboxResult:
        """Run ``code`` (a whole program, ``__name__ == "__main__"``) and return what happened.

        Args:
            code: Python source.
            stdin: text fed to the program's standard input (empty if None).
            tests: optional test code run after ``code`` in a copy of its namespace, with the
                builtins and pre-imported stdlib modules restored first (so a program cannot
                swallow failures by patching them). ``tests_passed`` is set only when the
                driver reports, with a per-run secret, that ``tests`` returned normally.
            expose: names the tests must see as the program defined them even where they shadow
                a builtin: the function under test (MBPP's ``sum``, say).
        """
        request = {"code": code, "stdin": stdin or "", "tests": tests, "expose": list(expose),
                   "limits": asdict(self.limits)}
        worker = self._idle.get()
        try:
            reply = worker.run(request)
        finally:
            self._idle.put(worker)
        return SandboxResult(**reply)

    def run_many(self, codes: Iterable[str], tests: Iterable[str | None] | None = None,
                 expose: Iterable[Sequence[str]] | None = None) -> Iterator[SandboxResult]:
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


# ------------------------------------------------------------------- zygote (inside the sandbox)
_CLONE_NEWPID = 0x20000000
_PR_SET_PDEATHSIG, _PR_SET_NO_NEW_PRIVS = 1, 38
_MS_RDONLY, _MS_NOSUID, _MS_NODEV, _MS_NOEXEC, _MS_REMOUNT, _MS_BIND, _MS_REC = 1, 2, 4, 8, 32, 4096, 16384
# Imported once in the zygote so programs start warm (typing alone costs ~5 ms per program).
_PRELOAD = ("typing", "math", "re", "string", "collections", "itertools", "functools", "heapq", "bisect",
            "random", "hashlib", "statistics", "fractions", "decimal", "copy", "datetime", "operator",
            "traceback", "io")
_BUILTIN_NAMES = frozenset(name for name in vars(builtins) if not name.startswith("__"))


@dataclass
class _Zygote:
    uid: int
    root: str
    libc: ctypes.CDLL
    uid_switch: bool = False
    pidns: bool = False  # a PID namespace per program
    own_pidns: int = -1  # fd of the zygote's PID namespace, to return to after each unshare
    runs: int = 0


# Filled in by the zygote: modules as they were before any program ran, and the builtins the
# tests see. Each program's process gets its own copy-on-write copy of both.
_PRISTINE_MODULES: dict[str, tuple[types.ModuleType, dict]] = {}
_PRISTINE_BUILTINS: dict = {}
_RESTORED: set[str] = set()


def _mount(libc: ctypes.CDLL, source, target: str, fstype, flags: int, data: bytes | None = None) -> None:
    if libc.mount(source and os.fsencode(source), os.fsencode(target), fstype, flags, data) != 0:
        raise OSError(ctypes.get_errno(), f"mount {target}: {os.strerror(ctypes.get_errno())}")


def _isolate_mounts(libc: ctypes.CDLL, scratch_mb: int, expose: dict[str, list[str]]) -> None:
    """(unshare backend) What bwrap's arguments do: every mount read-only in our private mount
    namespace, a tmpfs on /tmp, and the Python installation visible under private directories."""
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4].encode().decode("unicode_escape") for line in f]
    for point in sorted(set(points), key=len):
        try:
            keep = os.statvfs(point).f_flag & (_MS_NODEV | _MS_NOEXEC)
        except OSError:
            continue  # overmounted or unreachable
        with contextlib.suppress(OSError):
            _mount(libc, None, point, None, _MS_REMOUNT | _MS_BIND | _MS_RDONLY | _MS_NOSUID | keep)
        if not os.statvfs(point).f_flag & _MS_RDONLY:
            raise OSError(f"cannot remount {point} read-only")
    _mount(libc, "tmpfs", "/tmp", b"tmpfs", _MS_NOSUID | _MS_NODEV, f"size={scratch_mb}m,mode=755".encode())
    for top, paths in expose.items():
        handles = [os.open(path, os.O_PATH) for path in paths]  # still reachable once top is covered
        _mount(libc, "tmpfs", top, b"tmpfs", _MS_NOSUID | _MS_NODEV, b"size=1m,mode=755")
        for path, handle in zip(paths, handles):
            os.makedirs(path, exist_ok=True)
            _mount(libc, f"/proc/self/fd/{handle}", path, None, _MS_BIND | _MS_REC)
            _mount(libc, None, path, None, _MS_REMOUNT | _MS_BIND | _MS_RDONLY | _MS_NOSUID)
        _mount(libc, None, top, None, _MS_REMOUNT | _MS_RDONLY | _MS_NOSUID | _MS_NODEV)


def _zygote_main(config: dict) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if config["mounts"]:
        _isolate_mounts(libc, config["scratch_mb"], config["expose"])
    proto_in, proto_out = os.dup(0), os.dup(1)
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0), os.dup2(null, 1)  # a stray print must not corrupt the protocol
    root = config["root"] or tempfile.mkdtemp(prefix="critics-sandbox-")
    os.chmod(root, 0o711)  # programs may traverse, not list or write
    for name in _PRELOAD:
        __import__(name)
    z = _Zygote(config["uid"], root, libc, own_pidns=os.open("/proc/self/ns/pid", os.O_RDONLY))
    # Without the uid switch (not root, or the uid could not even read the stdlib) the program
    # keeps our uid: then only the cgroup, if any, bounds its processes.
    z.uid_switch = os.geteuid() == 0 and _probe(lambda: _drop_privileges(z.uid) or os.access(os.__file__, os.R_OK))
    z.pidns = _probe(lambda: _enter_new_pidns(z) and _leave_new_pidns(z) and _enter_new_pidns(z))
    _PRISTINE_MODULES.update((n, (m, dict(vars(m)))) for n, m in list(sys.modules.items()) if n != "__main__")
    _PRISTINE_BUILTINS.update(vars(builtins), __import__=_restoring_import)
    gc.freeze()  # a program's garbage collections then skip (and do not copy-on-write) our objects
    _send(proto_out, {"uid": z.uid if z.uid_switch else os.geteuid(), "uid_switch": z.uid_switch, "pidns": z.pidns})
    try:
        while (request := _recv(proto_in)) is not None:
            _send(proto_out, _serve(z, request, proto_in))
    finally:
        if not config["root"]:
            shutil.rmtree(root, ignore_errors=True)


def _probe(action) -> bool:
    pid = os.fork()
    if pid == 0:
        try:
            os._exit(0 if action() else 1)
        finally:
            os._exit(1)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0


def _enter_new_pidns(z: _Zygote) -> bool:
    """The next child starts a new PID namespace (as its PID 1)."""
    return z.libc.unshare(_CLONE_NEWPID) == 0


def _leave_new_pidns(z: _Zygote) -> bool:
    """Children go back to our own PID namespace, so that the next unshare is allowed."""
    return z.libc.setns(z.own_pidns, _CLONE_NEWPID) == 0


def _serve(z: _Zygote, request: dict, proto_in: int) -> dict:
    z.runs += 1
    limits = SandboxLimits(**request["limits"])
    scratch = os.path.join(z.root, f"run{z.runs}")
    os.mkdir(scratch, 0o700)
    if z.uid_switch:
        os.chown(scratch, z.uid, z.uid)
    stdin = os.memfd_create("stdin")
    os.write(stdin, request["stdin"].encode())
    os.lseek(stdin, 0, os.SEEK_SET)
    pipes = {name: os.pipe() for name in ("out", "err", "report")}
    nonce, start = secrets.token_hex(16), time.monotonic()
    if z.pidns and not _enter_new_pidns(z):
        raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWPID) failed")
    try:
        program = os.fork()
        if program == 0:
            try:
                _program(z, request, limits, scratch, stdin, {k: w for k, (_, w) in pipes.items()}, nonce)
            finally:
                os._exit(70)
    finally:
        if z.pidns and not _leave_new_pidns(z):
            raise OSError(ctypes.get_errno(), "setns(CLONE_NEWPID) failed")
    os.close(stdin)
    for _, write_end in pipes.values():
        os.close(write_end)
    try:
        reply = _supervise(z, limits, {k: r for k, (r, _) in pipes.items()}, program, start, nonce, proto_in)
    finally:
        for read_end, _ in pipes.values():
            os.close(read_end)
        shutil.rmtree(scratch, ignore_errors=True)
    return reply


def _program(z, request, limits, scratch, stdin, pipes, nonce) -> None:
    """The program's process: drop privileges, set limits, run the driver. Never returns."""
    os.setsid()
    high = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 64) for fd in (stdin, pipes["out"], pipes["err"], pipes["report"])]
    for target, fd in enumerate(high):
        os.dup2(fd, target, inheritable=target < 3)
    if getattr(z.libc, "close_range", None) is None or z.libc.close_range(4, 0xFFFFFFFF, 0) != 0:
        os.closerange(4, 1 << 16)  # close_range(2) is one call; this is 65k, about 2 ms
    os.chdir(scratch)
    sys.argv = [""]
    os.environ.clear()
    os.environ.update(PATH=_PATH, HOME=scratch, TMPDIR=scratch, LANG="C.UTF-8")
    with contextlib.suppress(OSError), open("/proc/self/oom_score_adj", "w") as f:
        f.write("1000")  # if a cgroup runs out of memory, the program dies, not the zygote
    if z.uid_switch:
        _drop_privileges(z.uid)
        resource.setrlimit(resource.RLIMIT_NPROC, (limits.max_processes, limits.max_processes))
    z.libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)  # setuid binaries cannot give root back
    z.libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)  # dies with the zygote
    cpu = max(1, math.ceil(limits.cpu_seconds))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu))  # hard limit: SIGKILL, which PID 1 cannot ignore
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_FSIZE, (limits.scratch_mb * _MB,) * 2)
    resource.setrlimit(resource.RLIMIT_AS, (limits.memory_mb * _MB,) * 2)
    _driver(request["code"], request["tests"], nonce, request.get("expose", ()))


def _drop_privileges(uid: int) -> None:
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)  # from root to a non-root uid: clears every capability


def _restore_module(name: str) -> types.ModuleType | None:
    """Put back a pre-imported module, and its attributes, as they were before the program ran.

    Done lazily, for the modules the tests import or name, because checking every module would
    touch (and copy-on-write) thousands of pages: ~9 ms per program instead of microseconds.
    """
    if name not in _PRISTINE_MODULES:
        return None
    module, saved = _PRISTINE_MODULES[name]
    if name not in _RESTORED:
        _RESTORED.add(name)
        sys.modules[name] = module
        current, missing = vars(module), object()
        for key, value in saved.items():
            if current.get(key, missing) is not value:
                current[key] = value
    return module


def _restoring_import(name, globals=None, locals=None, fromlist=(), level=0):
    """The tests' ``__import__``: restores pre-imported modules before handing them out."""
    if level == 0 and isinstance(name, str):
        parts = name.split(".")
        for depth in range(1, len(parts) + 1):
            _restore_module(".".join(parts[:depth]))
        for item in fromlist or ():
            if isinstance(item, str):
                _restore_module(f"{name}.{item}")
    return _PRISTINE_BUILTINS_IMPORT(name, globals, locals, fromlist, level)


_PRISTINE_BUILTINS_IMPORT = builtins.__import__


def _test_scope(namespace: dict, expose=()) -> dict:
    """The tests' globals: the program's names minus those shadowing builtins (but for the
    ``expose``d names under test), with the builtins and any pre-imported module the program
    bound (or patched) restored."""
    sys.settrace(None)
    sys.setprofile(None)
    scope = {}
    for key, value in list(namespace.items()):
        if key in _BUILTIN_NAMES and key not in expose:
            continue
        if isinstance(value, types.ModuleType):
            value = _restore_module(getattr(value, "__name__", "")) or value
        scope[key] = value
    scope["__builtins__"] = _PRISTINE_BUILTINS
    return scope


def _driver(code, tests, nonce, expose=(), *, _exec=exec, _compile=compile, _write=os.write, _exit=os._exit,
            _dumps=json.dumps, _scope=_test_scope, _stdout=sys.stdout, _stderr=sys.stderr) -> None:
    """Run ``code`` then ``tests``; write ``nonce`` to fd 3 only if the tests returned.

    Threat model: the program runs in this process, so it can do anything this driver can. The
    closed holes are the generic ones: exiting early (``sys.exit``, ``os._exit``, signals) never
    writes the nonce; printing a fake success marker does not help, since success travels on fd
    3 with a per-run random nonce; the tests run with pristine builtins, restored stdlib modules
    and no trace hooks, use the real ``AssertionError`` (a static type) and keep their asserts.
    Out of scope: a program written against this driver that searches the interpreter's memory
    for the nonce or our pristine copies, or re-patches things from a thread while tests run.
    """
    main = types.ModuleType("__main__")
    main.__builtins__ = builtins
    sys.modules["__main__"] = main
    namespace, phase, status = vars(main), "program", 0
    try:
        _exec(_compile(code, "<program>", "exec", dont_inherit=True, optimize=0), namespace)
        if tests is not None:
            phase = "tests"
            _exec(_compile(tests, "<tests>", "exec", dont_inherit=True, optimize=0), _scope(namespace, expose))
            _write(3, b"passed " + nonce.encode() + b"\n")
    except SystemExit as exc:
        status = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        _report(_write, _dumps, phase, exc)
    except BaseException as exc:  # noqa: BLE001 - report everything, like the interpreter would
        status = 1
        _report(_write, _dumps, phase, exc)
        with contextlib.suppress(BaseException):
            __import__("traceback").print_exc()
    for stream in (sys.stdout, sys.stderr, _stdout, _stderr):
        with contextlib.suppress(BaseException):
            stream.flush()
    _exit(status & 0xFF)


def _report(write, dumps, phase: str, exc: BaseException) -> None:
    try:
        text = f"{type(exc).__name__}: {exc}"[:2000]
    except BaseException:  # noqa: BLE001 - __str__ is untrusted
        text = "Exception: <unprintable>"
    with contextlib.suppress(BaseException):
        write(3, dumps({"phase": phase, "exception": text}).encode() + b"\n")


def _supervise(z, limits: SandboxLimits, fds: dict, program: int, start: float, nonce: str, proto_in: int) -> dict:
    """Collect output until the program ends; kill it on wall time, output size, or host exit."""
    captured = {fds["out"]: bytearray(), fds["err"]: bytearray(), fds["report"]: bytearray()}
    pidfd = os.pidfd_open(program)
    try:
        killed = _collect(z, limits, captured, fds, pidfd, program, start + limits.wall_seconds, proto_in)
    finally:
        os.close(pidfd)
    _kill(program, group=not z.pidns)  # its whole tree: a no-op with a PID namespace, once it ended
    _, status, usage = os.wait4(program, 0)
    for fd in captured:  # the writers are gone (with a PID namespace) or killed: drain
        os.set_blocking(fd, False)
        with contextlib.suppress(BlockingIOError):
            while len(captured[fd]) <= limits.max_output_bytes and (data := os.read(fd, 1 << 16)):
                captured[fd] += data
    if len(captured[fds["out"]]) + len(captured[fds["err"]]) > limits.max_output_bytes:
        killed = killed or "output_limit"
    reply = _verdict(status, usage.ru_utime + usage.ru_stime, killed, limits)
    reply.update(_report_fields(bytes(captured[fds["report"]]), nonce))
    cap = limits.max_output_bytes
    reply.update(stdout=bytes(captured[fds["out"]][:cap]).decode(errors="replace"),
                 stderr=bytes(captured[fds["err"]][:cap]).decode(errors="replace"),
                 wall_seconds=round(time.monotonic() - start, 4))
    if reply["status"] == "error" and (reply["exception"] or "").startswith("MemoryError"):
        reply["status"] = "memory"
    reply["tests_passed"] = reply["tests_passed"] and reply["status"] == "ok"
    return reply


def _collect(z, limits, captured: dict, fds: dict, pidfd: int, program: int, deadline: float, proto_in: int):
    """Read the pipes until the program exits; returns why it must be killed, or None."""
    watched = [*captured, pidfd, proto_in]
    while True:
        left = deadline - time.monotonic()
        ready = select.select(watched, [], [], left)[0] if left > 0 else []
        if not ready:
            return "timeout"
        if proto_in in ready:  # the host closed the pipe: it is gone, so are we
            _kill(program, group=True)
            os._exit(0)
        if pidfd in ready:
            return None
        for fd in ready:
            data = os.read(fd, 1 << 16)
            if data:
                captured[fd] += data
            else:
                watched.remove(fd)
        if len(captured[fds["out"]]) + len(captured[fds["err"]]) > limits.max_output_bytes:
            return "output_limit"
        if len(captured[fds["report"]]) > 1 << 16:
            return "output_limit"


def _kill(program: int, group: bool) -> None:
    """SIGKILL the program; with a PID namespace that kills every descendant, else its group."""
    for target in (-program, program) if group else (program,):
        with contextlib.suppress(OSError):
            os.kill(target, signal.SIGKILL)


def _verdict(status: int, cpu: float, killed: str | None, limits: SandboxLimits) -> dict:
    code = os.waitstatus_to_exitcode(status)
    if killed:
        outcome = killed
    elif code < 0:
        # RLIMIT_CPU's SIGKILL; rusage under-counts CPU time against the limit, hence the margin.
        over_cpu = -code == signal.SIGXCPU or (-code == signal.SIGKILL and cpu >= 0.5 * math.ceil(limits.cpu_seconds))
        outcome = "timeout" if over_cpu else "killed"
    else:
        outcome = "ok" if code == 0 else "error"
    return {"status": outcome, "returncode": code}


def _report_fields(report: bytes, nonce: str) -> dict:
    """Parse what the driver wrote on fd 3; only the right nonce counts as "tests passed"."""
    fields = {"tests_passed": False, "exception": None, "phase": None}
    for line in report.splitlines():
        if line == b"passed " + nonce.encode():
            fields["tests_passed"] = True
            continue
        try:
            message = json.loads(line)
        except ValueError:
            continue
        if isinstance(message, dict) and isinstance(message.get("exception"), str) and fields["exception"] is None:
            fields.update(exception=message["exception"], phase=str(message.get("phase")))
    return fields


if __name__ == "__main__" and sys.argv[1:2] == ["--zygote"]:
    _zygote_main(json.loads(sys.argv[2]))
