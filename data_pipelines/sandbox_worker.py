"""The inside of the sandbox: the zygote that ``data_pipelines.sandbox`` starts in each worker.

The host launches this file as a script, ``python -I sandbox_worker.py --zygote CONFIG``, under
``bwrap`` or ``unshare`` (see ``data_pipelines.sandbox`` for the layers). The zygote pre-imports
common stdlib modules, then reads runs from its stdin pipe. For each it forks the program and,
when the run has tests, a second process for them (see ``sandbox_calls``), each into a fresh PID
namespace, under its own uid, rlimits and scratch folder; it collects their output, enforces the
wall time and output cap, and writes the verdict back on its stdout pipe. A pass is read only from
the tests' process, on a pipe the program's process never holds. It runs in isolated mode on a
read-only file system with the host's package not importable, so it uses only the standard
library and never imports ``data_pipelines``; the host imports the framing (``send``, ``recv``)
and ``PATH``/``MB`` from here so that both ends agree.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import gc
import json
import math
import os
import resource
import select
import shutil
import signal
import sys
import tempfile
import time
import types
from dataclasses import dataclass

if __package__:  # imported by the host, as part of data_pipelines
    from . import sandbox_calls as calls
else:  # the zygote, run as a script in isolated mode: its own folder is not on sys.path
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import sandbox_calls as calls

    del sys.path[0]

PATH = "/usr/local/bin:/usr/bin:/bin"  # the only environment the worker and programs get, with LANG
MB = 1024 * 1024


# ----------------------------------------------------------------------------------- framing
def send(fd: int, obj: dict) -> None:
    """Write ``obj`` to ``fd`` as one length-prefixed JSON message."""
    calls.write_frame(fd, json.dumps(obj).encode())


def recv(fd: int, deadline: float | None = None) -> dict | None:
    """Read one message written by ``send``; None on EOF or when ``deadline`` (monotonic) passes."""
    body = calls.read_frame(fd, None, deadline)
    return None if body is None else json.loads(body)


# ------------------------------------------------------------------------------------ zygote
_CLONE_NEWPID = 0x20000000
_PR_SET_PDEATHSIG, _PR_SET_DUMPABLE, _PR_SET_NO_NEW_PRIVS = 1, 4, 38
_MS_RDONLY, _MS_NOSUID, _MS_NODEV, _MS_NOEXEC, _MS_REMOUNT, _MS_BIND, _MS_REC = 1, 2, 4, 8, 32, 4096, 16384
# Imported once in the zygote so programs start warm (typing alone costs ~5 ms per program). Not
# threading, nor what imports it (subprocess, queue, concurrent.futures): its at-fork handler
# alone costs every child ~100 copy-on-write page faults, ~0.35 ms, twice per run with tests.
_PRELOAD = (
    "typing",
    "math",
    "re",
    "string",
    "collections",
    "itertools",
    "functools",
    "heapq",
    "bisect",
    "random",
    "hashlib",
    "statistics",
    "fractions",
    "decimal",
    "copy",
    "datetime",
    "operator",
    "traceback",
    "io",
)


@dataclass
class _Zygote:
    uid: int  # the programs' uid; their tests run as uid + 1, so neither can signal or trace the other
    root: str
    libc: ctypes.CDLL
    uid_switch: bool = False
    pidns: bool = False  # a PID namespace per process
    own_pidns: int = -1  # fd of the zygote's PID namespace, to return to after each unshare
    runs: int = 0


def _mount(libc: ctypes.CDLL, source, target: str, fstype, flags: int, data: bytes | None = None) -> None:
    if libc.mount(source and os.fsencode(source), os.fsencode(target), fstype, flags, data) != 0:
        raise OSError(ctypes.get_errno(), f"mount {target}: {os.strerror(ctypes.get_errno())}")


def _isolate_mounts(libc: ctypes.CDLL, scratch_mb: int, expose: dict[str, list[str]]) -> None:
    """(unshare backend) What bwrap's arguments do: every mount read-only in our private mount
    namespace, a tmpfs on /tmp, and the Python installation bound back where a tmpfs (the one on
    /tmp, or one over a private directory) covers it (``expose``: covering folder -> paths)."""
    # Opened first: once /tmp (or a private folder) is covered, these paths no longer resolve.
    handles = {path: os.open(path, os.O_PATH) for paths in expose.values() for path in paths}
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
        if top != "/tmp":
            _mount(libc, "tmpfs", top, b"tmpfs", _MS_NOSUID | _MS_NODEV, b"size=1m,mode=755")
        for path in paths:
            os.makedirs(path, exist_ok=True)
            _mount(libc, f"/proc/self/fd/{handles[path]}", path, None, _MS_BIND | _MS_REC)
            _mount(libc, None, path, None, _MS_REMOUNT | _MS_BIND | _MS_RDONLY | _MS_NOSUID)
        if top != "/tmp":
            _mount(libc, None, top, None, _MS_REMOUNT | _MS_RDONLY | _MS_NOSUID | _MS_NODEV)
    for handle in handles.values():
        os.close(handle)


def _zygote_main(config: dict) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if config["mounts"]:
        _isolate_mounts(libc, config["scratch_mb"], config["expose"])
    os.environ.clear()  # the children's environment, but for their HOME and TMPDIR
    os.environ.update(PATH=PATH, LANG="C.UTF-8")
    proto_in, proto_out = os.dup(0), os.dup(1)
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0), os.dup2(null, 1)  # a stray print must not corrupt the protocol
    root = config["root"] or tempfile.mkdtemp(prefix="critics-sandbox-")
    os.chmod(root, 0o711)  # programs may traverse, not list or write
    for name in _PRELOAD:
        __import__(name)
    z = _Zygote(config["uid"], root, libc, own_pidns=os.open("/proc/self/ns/pid", os.O_RDONLY))
    # Without the uid switch (not root, or the uid could not even read the stdlib) both processes
    # keep our uid: then only the cgroup, if any, bounds their processes.
    z.uid_switch = os.geteuid() == 0 and _probe(lambda: _drop_privileges(z.uid) or os.access(os.__file__, os.R_OK))
    z.pidns = _probe(lambda: _enter_new_pidns(z) and _leave_new_pidns(z) and _enter_new_pidns(z))
    gc.freeze()  # a program's garbage collections then skip (and do not copy-on-write) our objects
    uid = z.uid if z.uid_switch else os.geteuid()
    send(
        proto_out,
        {
            "uid": uid,
            "tests_uid": uid + 1 if z.uid_switch else uid,
            "uid_switch": z.uid_switch,
            "pidns": z.pidns,
            "root": None if config["root"] else root,
        },
    )
    try:
        while (request := recv(proto_in)) is not None:
            send(proto_out, _serve(z, request, proto_in))
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


# --------------------------------------------------------------------------------------- run
class _Run:
    """The pipes and scratch folders of one run. Each child gets only its own ends, as fds 0..5:
    the program ``stdin, out, err, report[, requests in, answers out]``, the tests ``/dev/null,
    out, err, tests' report, answers in, requests out``. The tests' report pipe is the verdict's
    only way out, and no descriptor of the program's process leads to it."""

    def __init__(self, z: _Zygote, stdin: str, with_tests: bool):
        self.stdin = os.memfd_create("stdin")
        os.write(self.stdin, stdin.encode())
        os.lseek(self.stdin, 0, os.SEEK_SET)
        self.null = os.open(os.devnull, os.O_RDONLY)
        self.out, self.err, self.report = os.pipe(), os.pipe(), os.pipe()
        self.tests_report, self.requests, self.answers = (os.pipe(), os.pipe(), os.pipe()) if with_tests else [None] * 3
        self.scratch = [self._scratch(z, "program", z.uid)]
        if with_tests:
            self.scratch.append(self._scratch(z, "tests", z.uid + 1))

    @staticmethod
    def _scratch(z: _Zygote, role: str, uid: int) -> str:
        path = os.path.join(z.root, f".critics-run{z.runs}-{role}")
        os.mkdir(path, 0o700)
        if z.uid_switch:
            os.chown(path, uid, uid)
        return path

    def program_fds(self) -> list[int]:
        calls_ = [self.requests[0], self.answers[1]] if self.requests else []
        return [self.stdin, self.out[1], self.err[1], self.report[1], *calls_]

    def tests_fds(self) -> list[int]:
        return [self.null, self.out[1], self.err[1], self.tests_report[1], self.answers[0], self.requests[1]]

    def read_ends(self) -> dict[str, int]:
        ends = {"out": self.out[0], "err": self.err[0], "report": self.report[0]}
        return {**ends, "tests_report": self.tests_report[0]} if self.tests_report else ends

    def close_child_ends(self) -> None:
        """Our copies of the children's ends: else no child would ever see EOF from the other."""
        for fd in [
            self.stdin,
            self.null,
            self.out[1],
            self.err[1],
            self.report[1],
            *([self.tests_report[1], *self.requests, *self.answers] if self.tests_report else []),
        ]:
            with contextlib.suppress(OSError):
                os.close(fd)

    def close(self) -> None:
        self.close_child_ends()
        for fd in self.read_ends().values():
            with contextlib.suppress(OSError):
                os.close(fd)
        for path in self.scratch:
            shutil.rmtree(path, ignore_errors=True)


def _serve(z: _Zygote, request: dict, proto_in: int) -> dict:
    z.runs += 1
    limits = types.SimpleNamespace(**request["limits"])  # the host's SandboxLimits, as sent
    tests = request["tests"]
    run, start = _Run(z, request["stdin"], tests is not None), time.monotonic()
    try:
        procs = {
            "program": _spawn(
                z,
                "program",
                run.scratch[0],
                run.program_fds(),
                limits,
                lambda: calls.run_program(request["code"], serve=tests is not None),
            )
        }
        if tests is not None:
            limit = max(MB, limits.memory_mb * MB // 16)  # the largest answer the tests will decode
            procs["tests"] = _spawn(
                z,
                "tests",
                run.scratch[1],
                run.tests_fds(),
                limits,
                lambda: calls.run_tests(tests, request.get("expose", ()), limit),
            )
        run.close_child_ends()
        return _supervise(z, limits, run.read_ends(), procs, start, proto_in)
    finally:
        run.close()


def _spawn(z: _Zygote, role: str, scratch: str, fds: list[int], limits, main) -> int:
    """Fork ``main`` into a new PID namespace (as its PID 1), confined; returns its pid."""
    if z.pidns and not _enter_new_pidns(z):
        raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWPID) failed")
    try:
        pid = os.fork()
        if pid == 0:
            try:
                _confine(z, role, scratch, fds, limits)
                main()
            finally:
                os._exit(70)
    finally:
        if z.pidns and not _leave_new_pidns(z):
            raise OSError(ctypes.get_errno(), "setns(CLONE_NEWPID) failed")
    return pid


def _confine(z: _Zygote, role: str, scratch: str, fds: list[int], limits) -> None:
    """In a fresh child: keep only ``fds`` (as 0, 1, ...), drop to the role's uid, set the limits."""
    tests = role == "tests"
    os.setsid()
    high = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 64) for fd in fds]
    for target, fd in enumerate(high):
        os.dup2(fd, target, inheritable=target < 3)  # the report and call pipes stay out of subprocesses
    if getattr(z.libc, "close_range", None) is None or z.libc.close_range(len(fds), 0xFFFFFFFF, 0) != 0:
        os.closerange(len(fds), 1 << 16)  # close_range(2) is one call; this is 65k, about 2 ms
    os.chdir(scratch)
    sys.argv = [""]
    os.environ["HOME"] = os.environ["TMPDIR"] = scratch  # the rest was set once, in the zygote
    with contextlib.suppress(OSError):  # if a cgroup runs out of memory, the program dies first, the zygote last
        fd = os.open("/proc/self/oom_score_adj", os.O_WRONLY)
        os.write(fd, b"500" if tests else b"1000")
        os.close(fd)
    if z.uid_switch:
        _drop_privileges(z.uid + 1 if tests else z.uid)
        resource.setrlimit(resource.RLIMIT_NPROC, (limits.max_processes, limits.max_processes))
    z.libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)  # setuid binaries cannot give root back
    z.libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)  # dies with the zygote
    if tests:
        # Not dumpable: /proc/PID/mem, fd and environ turn root-only and ptrace needs CAP_SYS_PTRACE,
        # so even a program left with our uid (no uid switch) cannot read or steer the tests' process.
        z.libc.prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0)
    cpu = max(1, math.ceil(limits.cpu_seconds))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu))  # hard limit: SIGKILL, which PID 1 cannot ignore
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_FSIZE, (limits.scratch_mb * MB,) * 2)
    resource.setrlimit(resource.RLIMIT_AS, (limits.memory_mb * MB,) * 2)


def _drop_privileges(uid: int) -> None:
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)  # from root to a non-root uid: clears every capability


# ------------------------------------------------------------------------------- supervision
def _supervise(z: _Zygote, limits, fds: dict[str, int], procs: dict[str, int], start: float, proto_in: int) -> dict:
    """Collect output until every process ends; kill them all on wall time, output size, or host exit."""
    captured = {fd: bytearray() for fd in fds.values()}
    pidfds = [os.pidfd_open(pid) for pid in procs.values()]
    try:
        killed = _collect(limits, captured, fds, pidfds, list(procs.values()), start + limits.wall_seconds, proto_in)
    finally:
        for pidfd in pidfds:
            os.close(pidfd)
    waited = {}
    for role, pid in procs.items():
        _kill(pid, group=not z.pidns)  # its whole tree: a no-op with a PID namespace, once it ended
        waited[role] = os.wait4(pid, 0)[1:]
    for fd in captured:  # the writers are gone (with a PID namespace) or killed: drain
        os.set_blocking(fd, False)
        with contextlib.suppress(BlockingIOError):
            while len(captured[fd]) <= limits.max_output_bytes and (data := os.read(fd, 1 << 16)):
                captured[fd] += data
    out, err = captured[fds["out"]], captured[fds["err"]]
    if len(out) + len(err) > limits.max_output_bytes:
        killed = killed or "output_limit"
    verdicts = [_verdict(status, usage.ru_utime + usage.ru_stime, killed, limits) for status, usage in waited.values()]
    reply = min(verdicts, key=lambda v: {"ok": 2, "error": 1}.get(v["status"], 0))  # a limit, else an error
    tests_report = captured.get(fds.get("tests_report"))
    reply.update(_report_fields(bytes(captured[fds["report"]]), None if tests_report is None else bytes(tests_report)))
    cap = limits.max_output_bytes
    reply.update(
        stdout=bytes(out[:cap]).decode(errors="replace"),
        stderr=bytes(err[:cap]).decode(errors="replace"),
        wall_seconds=round(time.monotonic() - start, 4),
    )
    if reply["status"] == "error" and (reply["exception"] or "").startswith("MemoryError"):
        reply["status"] = "memory"
    reply["tests_passed"] = reply["tests_passed"] and reply["status"] == "ok"
    return reply


def _collect(limits, captured: dict, fds: dict, pidfds: list[int], pids: list[int], deadline: float, proto_in: int):
    """Read the pipes until every process exits; returns why they must be killed, or None."""
    watched, running = [*captured, *pidfds, proto_in], set(pidfds)
    while running:
        left = deadline - time.monotonic()
        ready = select.select(watched, [], [], left)[0] if left > 0 else []
        if not ready:
            return "timeout"
        if proto_in in ready:  # the host closed the pipe: it is gone, so are we
            for pid in pids:
                _kill(pid, group=True)
            os._exit(0)
        for fd in ready:
            data = b"" if fd in running else os.read(fd, 1 << 16)
            if data:
                captured[fd] += data
            else:
                watched.remove(fd)
                running.discard(fd)
        if len(captured[fds["out"]]) + len(captured[fds["err"]]) > limits.max_output_bytes:
            return "output_limit"
        if any(len(captured[fds[name]]) > 1 << 16 for name in ("report", "tests_report") if name in fds):
            return "output_limit"
    return None


def _kill(pid: int, group: bool) -> None:
    """SIGKILL a process; with a PID namespace that kills every descendant, else its group."""
    for target in (-pid, pid) if group else (pid,):
        with contextlib.suppress(OSError):
            os.kill(target, signal.SIGKILL)


def _verdict(status: int, cpu: float, killed: str | None, limits: types.SimpleNamespace) -> dict:
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


def _report_fields(program: bytes, tests: bytes | None) -> dict:
    """``tests_passed``, ``exception`` and ``phase``. A pass comes only from the tests' own pipe;
    the program's report (advisory: it could write anything) explains a failure that the tests'
    process saw only as the program going away."""
    claimed = next((m for m in _messages(program) if isinstance(m.get("exception"), str)), None)
    fields = {"tests_passed": False, "exception": claimed and claimed["exception"], "phase": claimed and "program"}
    verdict = next(iter(_messages(tests or b"")), {})
    if verdict.get("passed") is True:
        return {"tests_passed": True, "exception": None, "phase": None}
    if verdict.get("phase") == "tests" or (fields["exception"] is None and isinstance(verdict.get("exception"), str)):
        fields.update(exception=str(verdict["exception"]), phase=str(verdict["phase"]))
    return fields


def _messages(report: bytes) -> list[dict]:
    messages = []
    for line in report.splitlines():
        with contextlib.suppress(ValueError):
            message = json.loads(line)
            if isinstance(message, dict):
                messages.append(message)
    return messages


if __name__ == "__main__" and sys.argv[1:2] == ["--zygote"]:
    _zygote_main(json.loads(sys.argv[2]))
