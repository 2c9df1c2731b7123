"""Output folders written safely: one atomic folder swap, a write check, one clear error for a bad disk.

A folder that others read (a built dataset, a checkpoint, ``final/``) is never written in place.
It is written into a staging folder, then swapped in by ``replace_folder``:

1. the old folder (if any) is renamed aside, to ``.<name>.old`` beside it;
2. the staged folder is renamed to the target name;
3. the aside folder is deleted.

Each rename is atomic, so a crash at any point leaves one complete folder: before step 2 the old
one (in place, or aside with the target missing), after it the new one (with an aside folder,
maybe half deleted, beside it). ``recover`` puts that right on the next run: an aside folder
whose target is missing is renamed back; one whose target exists is deleted. The aside name
starts with a dot, so nothing that looks for ``checkpoint-N`` or ``round-N`` ever counts it.

Writes that fail because the disk is full, read-only or not ours become one ``OutputError`` that
names the folder, and ``check_writable`` finds a read-only folder before anything is loaded.

>>> import tempfile
>>> root = Path(tempfile.mkdtemp())
>>> with staged_folder(root / "out") as tmp:
...     _ = (tmp / "data.txt").write_text("new")
>>> (root / "out" / "data.txt").read_text(), sorted(p.name for p in root.iterdir())
('new', ['out'])
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

# A full disk, a read-only disk, a folder that is not ours: the user's to fix, not a bug to trace.
OUTPUT_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM}
# Libraries written in Rust (safetensors) report an I/O error as text: "... (os error 28)".
_RUST_IO_ERROR = re.compile(r"\(os error (\d+)\)|Os \{ code: (\d+)")
_ASIDE = re.compile(r"^\.(.+)\.old$")
FULL_BELOW = 1 << 20  # bytes free under which a write that failed without an errno failed for want of space


class OutputError(OSError):
    """An output folder cannot be written (full, read-only, no permission); the message names it."""


def aside_path(target: Path) -> Path:
    """Where ``replace_folder`` moves the old ``target`` while it swaps the new one in."""
    return target.with_name(f".{target.name}.old")


def staging_path(target: Path) -> Path:
    """The staging folder ``staged_folder`` writes ``target`` into (beside it, hidden)."""
    return target.with_name(f".{target.name}.staging")


def recover(target: str | Path) -> None:
    """Finish a swap of ``target`` that a crash interrupted (a no-op when there is none).

    An aside folder with no target is the old complete folder: it goes back. An aside folder
    beside a target is the old one after the new one was swapped in: it is deleted. Several
    processes (ranks) may recover the same folder at once: whoever is second finds nothing to do.
    """
    target = Path(target)
    aside = aside_path(target)
    if not aside.exists():
        return
    if target.exists():
        shutil.rmtree(aside, ignore_errors=True)
        return
    with contextlib.suppress(FileNotFoundError):  # another process restored it first
        os.rename(aside, target)


def recover_all(folder: str | Path) -> None:
    """``recover`` every interrupted swap of a folder inside ``folder``."""
    folder = Path(folder)
    if not folder.is_dir():
        return
    for entry in list(folder.iterdir()):
        match = _ASIDE.match(entry.name)
        if match and entry.is_dir():
            recover(folder / match.group(1))


def replace_folder(staged: str | Path, target: str | Path) -> Path:
    """Swap the complete folder ``staged`` in as ``target``, atomically (see the module docstring).

    Returns:
        ``target``.
    """
    staged, target = Path(staged), Path(target)
    recover(target)
    aside = aside_path(target)
    if target.exists():
        os.rename(target, aside)
    os.rename(staged, target)
    shutil.rmtree(aside, ignore_errors=True)
    return target


@contextlib.contextmanager
def staged_folder(target: str | Path) -> Iterator[Path]:
    """Yield an empty staging folder; once the block ends without error it replaces ``target``.

    On an error the staging folder is removed and ``target`` is left as it was; after a kill it
    is left behind and the next ``staged_folder`` of the same target starts it afresh.
    """
    target = Path(target)
    staging = staging_path(target)
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    replace_folder(staging, target)


def check_writable(folder: str | Path, key: str = "output_dir") -> Path:
    """Create ``folder`` if needed and prove a file can be written in it, before any work starts.

    Args:
        folder: the output folder.
        key: the config key that named it, for the message.

    Returns:
        ``folder`` as a ``Path``.

    Raises:
        OutputError: the folder is a file, or cannot be created or written (read-only, full, ...).
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise OutputError(f"{key} {folder} is a file, not a folder")
    probe = folder / f".write-check-{os.getpid()}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        handle = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(handle, b"ok")
        finally:
            os.close(handle)
        os.unlink(probe)
    except OSError as exc:
        raise output_error(folder, key, exc) from None
    return folder


@contextlib.contextmanager
def writing(folder: str | Path, key: str = "output_dir") -> Iterator[None]:
    """Turn a full, read-only or forbidden disk met inside the block into one ``OutputError``.

    The cause is the error's errno (its own, a chained ``OSError``'s, or the ``(os error N)`` a
    Rust library such as safetensors prints); an error with no errno raised while the disk has
    under ``FULL_BELOW`` bytes free (``torch.save`` on a full disk) counts as a full disk. Other
    errors pass unchanged.

    >>> with writing("/runs/a", "run.output_dir"):
    ...     raise OSError(errno.ENOSPC, "No space left on device")
    Traceback (most recent call last):
    ...
    data_pipelines.files.OutputError: cannot write to run.output_dir /runs/a: No space left on device (ENOSPC)
    """
    try:
        yield
    except OutputError:
        raise
    except Exception as exc:
        code = _errno(exc)
        if code is None and (free := _free_bytes(Path(folder))) is not None and free < FULL_BELOW:
            # torch.save reports a full disk as a RuntimeError with no errno: the disk itself says it
            error = OutputError(f"cannot write to {key} {folder}: the disk is full ({free:,} bytes free)")
            error.errno = errno.ENOSPC
            raise error from exc
        if code not in OUTPUT_ERRNOS:
            raise
        raise output_error(Path(folder), key, exc, code) from exc


def output_error(folder: Path, key: str, exc: BaseException, code: int | None = None) -> OutputError:
    """The one-line ``OutputError`` for ``exc`` met while writing ``folder``."""
    code = _errno(exc) if code is None else code
    reason = f"{os.strerror(code)} ({errno.errorcode.get(code, code)})" if code else str(exc)
    error = OutputError(f"cannot write to {key} {folder}: {reason}")
    error.errno = code  # not ``filename``: OSError would print "[Errno N] None: 'path'" instead of the message
    return error


def _free_bytes(folder: Path) -> int | None:
    """Bytes free (to this user) on the disk of ``folder`` or its nearest existing parent; None if unknown."""
    for place in (folder, *folder.parents):
        if place.exists():
            try:
                return shutil.disk_usage(place).free
            except OSError:
                return None
    return None


def _errno(exc: BaseException) -> int | None:
    """The OS error number behind ``exc``: its own, a chained ``OSError``'s, or one a Rust library printed."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno:
            return seen.errno
        seen = seen.__cause__ or seen.__context__
    match = _RUST_IO_ERROR.search(str(exc))
    return int(match.group(1) or match.group(2)) if match else None
