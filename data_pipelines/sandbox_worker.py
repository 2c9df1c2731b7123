"""The inside of the sandbox: the zygote that ``data_pipelines.sandbox`` starts in each worker.

The host launches this file as a script, ``python -I sandbox_worker.py --zygote CONFIG``, under
``bwrap`` or ``unshare`` (see ``data_pipelines.sandbox`` for the layers). The zygote pre-imports
common stdlib modules, then reads programs from its stdin pipe, forks each into a fresh PID
namespace, drops it to the worker's uid with rlimits, runs it with the trusted ``_driver``, and
writes the verdict back on its stdout pipe. It runs in isolated mode on a read-only file system
with the host's package not importable, so it must use only the standard library and never
import ``data_pipelines``; the host imports the framing (``send``, ``recv``) and ``PATH``/``MB``
from here so that both ends agree.
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
import resource
import secrets
import select
import shutil
import signal
import struct
import sys
import tempfile
import time
import types
from dataclasses import dataclass

PATH = "/usr/local/bin:/usr/bin:/bin"  # the only environment the worker and programs get, with LANG
MB = 1024 * 1024


# ----------------------------------------------------------------------------------- framing
def send(fd: int, obj: dict) -> None:
    """Write ``obj`` to ``fd`` as one length-prefixed JSON message."""
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


def recv(fd: int, deadline: float | None = None) -> dict | None:
    """Read one message written by ``send``; None on EOF or when ``deadline`` (monotonic) passes."""
    head = _read_exact(fd, 4, deadline)
    body = head and _read_exact(fd, struct.unpack("!I", head)[0], deadline)
    return None if body is None else json.loads(body)


# ------------------------------------------------------------------------------------ zygote
_CLONE_NEWPID = 0x20000000
_PR_SET_PDEATHSIG, _PR_SET_NO_NEW_PRIVS = 1, 38
_MS_RDONLY, _MS_NOSUID, _MS_NODEV, _MS_NOEXEC, _MS_REMOUNT, _MS_BIND, _MS_REC = 1, 2, 4, 8, 32, 4096, 16384
# Imported once in the zygote so programs start warm (typing alone costs ~5 ms per program). The
# last three (with threading, logging, ...) came with the host's code when both halves were one
# module; they stay so that programs see the same warm, restorable modules.
_PRELOAD = ("typing", "math", "re", "string", "collections", "itertools", "functools", "heapq", "bisect",
            "random", "hashlib", "statistics", "fractions", "decimal", "copy", "datetime", "operator",
            "traceback", "io", "subprocess", "queue", "concurrent.futures.thread")
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
    send(proto_out, {"uid": z.uid if z.uid_switch else os.geteuid(), "uid_switch": z.uid_switch, "pidns": z.pidns,
                     "root": None if config["root"] else root})
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


def _serve(z: _Zygote, request: dict, proto_in: int) -> dict:
    z.runs += 1
    limits = types.SimpleNamespace(**request["limits"])  # the host's SandboxLimits, as sent
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
    os.environ.update(PATH=PATH, HOME=scratch, TMPDIR=scratch, LANG="C.UTF-8")
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
    resource.setrlimit(resource.RLIMIT_FSIZE, (limits.scratch_mb * MB,) * 2)
    resource.setrlimit(resource.RLIMIT_AS, (limits.memory_mb * MB,) * 2)
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


def _supervise(z, limits, fds: dict, program: int, start: float, nonce: str, proto_in: int) -> dict:
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
