"""The folder swap survives a crash at every step; unwritable outputs are one clear error."""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest

from data_pipelines import files
from data_pipelines.files import (
    OutputError,
    aside_path,
    check_writable,
    recover,
    recover_all,
    replace_folder,
    staged_folder,
    writing,
)


class Crash(BaseException):
    """A kill: no ``except Exception`` and no cleanup of ours runs after it."""


def make_folder(path: Path, tag: str, n: int = 5) -> Path:
    path.mkdir(parents=True)
    for i in range(n):
        (path / f"part-{i}.txt").write_text(f"{tag} {i}")
    return path


def whole(path: Path) -> str | None:
    """``old`` or ``new`` when ``path`` holds that complete folder, else None."""
    if not path.is_dir():
        return None
    texts = {p.name: p.read_text() for p in path.iterdir()}
    for tag in ("old", "new"):
        if texts == {f"part-{i}.txt": f"{tag} {i}" for i in range(5)}:
            return tag
    return None


def crash_on_call(monkeypatch, name: str, call: int, partial: bool = False) -> None:
    """Make the ``call``-th ``os.rename`` (or ``shutil.rmtree``) inside the swap crash; a partial
    ``rmtree`` deletes two files first, as a kill in the middle of a delete would."""
    real = {"rename": os.rename, "rmtree": shutil.rmtree}[name]
    calls = []

    def maybe_crash(path, *args, **kwargs):
        calls.append(path)
        if len(calls) == call:
            if partial:
                for file in sorted(Path(path).iterdir())[:2]:
                    file.unlink()
            raise Crash(f"killed at {name} #{call}")
        return real(path, *args, **kwargs)

    target = files.os if name == "rename" else files.shutil
    monkeypatch.setattr(target, name, maybe_crash)


@pytest.mark.parametrize(
    "step, name, call, partial, expected",
    [
        ("before the old folder is moved aside", "rename", 1, False, "old"),
        ("between moving the old aside and the new in", "rename", 2, False, None),  # target missing, old aside
        ("while the old folder is deleted", "rmtree", 1, True, "new"),
    ],
)
def test_a_crash_at_any_step_leaves_the_old_or_the_new_folder_whole(
    tmp_path, monkeypatch, step, name, call, partial, expected
):
    target = make_folder(tmp_path / "checkpoint-4", "old")
    staged = make_folder(tmp_path / ".staging" / "checkpoint-4", "new")
    crash_on_call(monkeypatch, name, call, partial)
    with pytest.raises(Crash):
        replace_folder(staged, target)
    monkeypatch.undo()
    assert whole(target) == expected
    if expected is None:  # the old one is complete, aside, under a name nothing counts as a checkpoint
        assert whole(aside_path(target)) == "old" and aside_path(target).name == ".checkpoint-4.old"

    recover_all(tmp_path)  # the next run
    assert whole(target) in {"old", "new"} and whole(target) == (expected or "old")
    assert not aside_path(target).exists()
    replace_folder(make_folder(tmp_path / "again", "new"), target)  # and the next swap works
    assert whole(target) == "new" and not aside_path(target).exists()


def test_the_old_swap_deleted_before_it_renamed_and_this_one_does_not(tmp_path, monkeypatch):
    """The bug this replaces: delete the old folder, then rename; a kill mid-delete left a half folder in place."""
    target = make_folder(tmp_path / "final", "old")
    staged = make_folder(tmp_path / ".final.staging", "new")
    crash_on_call(monkeypatch, "rmtree", 1, partial=True)
    with pytest.raises(Crash):
        replace_folder(staged, target)
    monkeypatch.undo()
    assert whole(target) == "new"  # never a half folder under the real name
    assert len(list(aside_path(target).iterdir())) == 3  # the half-deleted one is aside ...
    recover(target)
    assert not aside_path(target).exists()  # ... and cleaned on the next run


def test_staged_folder_swaps_in_on_success_and_leaves_the_target_on_error(tmp_path):
    make_folder(tmp_path / "out", "old")
    with pytest.raises(RuntimeError):
        with staged_folder(tmp_path / "out") as tmp:
            (tmp / "part-0.txt").write_text("half")
            raise RuntimeError("builder failed")
    assert whole(tmp_path / "out") == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    with staged_folder(tmp_path / "out") as tmp:
        for i in range(5):
            (tmp / f"part-{i}.txt").write_text(f"new {i}")
    assert whole(tmp_path / "out") == "new" and sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_check_writable_creates_the_folder_and_leaves_nothing_in_it(tmp_path):
    assert check_writable(tmp_path / "a" / "b") == tmp_path / "a" / "b"
    assert list((tmp_path / "a" / "b").iterdir()) == []


def test_a_file_where_the_folder_should_be_is_an_error(tmp_path):
    (tmp_path / "run").write_text("x")
    with pytest.raises(OutputError, match=f"^run.output_dir {tmp_path / 'run'} is a file, not a folder$"):
        check_writable(tmp_path / "run", "run.output_dir")
    with pytest.raises(OutputError, match=r"cannot write to run.output_dir .*/run/sub: Not a directory \(ENOTDIR\)"):
        check_writable(tmp_path / "run" / "sub", "run.output_dir")


def read_only_below(monkeypatch, root: Path) -> None:
    """Files under ``root`` cannot be created, as on a read-only mount (root ignores chmod 0o555)."""
    real = os.open

    def guarded(path, flags, *args, **kwargs):
        if Path(path).is_relative_to(root) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
        return real(path, flags, *args, **kwargs)

    monkeypatch.setattr(files.os, "open", guarded)


def test_a_read_only_folder_is_found_by_check_writable(tmp_path, monkeypatch):
    read_only_below(monkeypatch, tmp_path / "mnt")
    with pytest.raises(OutputError) as caught:
        check_writable(tmp_path / "mnt" / "run", "run.output_dir")
    assert (
        str(caught.value) == f"cannot write to run.output_dir {tmp_path / 'mnt' / 'run'}: Read-only file system (EROFS)"
    )
    assert caught.value.errno == errno.EROFS and isinstance(caught.value, OSError)


@pytest.mark.parametrize(
    "raised, reason",
    [
        (OSError(errno.ENOSPC, "No space left on device"), "No space left on device (ENOSPC)"),
        (OSError(errno.EACCES, "Permission denied"), "Permission denied (EACCES)"),
        # what safetensors (Rust) raises on a full disk: no OSError, the errno only in the text
        (
            Exception("Error while serializing: I/O error: No space left on device (os error 28)"),
            "No space left on device (ENOSPC)",
        ),
    ],
)
def test_a_full_or_forbidden_disk_while_writing_is_one_line_naming_the_folder(raised, reason):
    with pytest.raises(OutputError) as caught:
        with writing("/runs/a", "run.output_dir"):
            raise raised
    assert str(caught.value) == f"cannot write to run.output_dir /runs/a: {reason}"


def disk_with_free_bytes(monkeypatch, free: int) -> None:
    monkeypatch.setattr(files.shutil, "disk_usage", lambda path: SimpleNamespace(total=10 << 30, free=free))


def test_a_write_that_fails_without_an_errno_on_a_full_disk_is_a_full_disk(tmp_path, monkeypatch):
    """What torch.save raises when the disk fills under it: a RuntimeError with no errno."""
    disk_with_free_bytes(monkeypatch, 0)
    with pytest.raises(OutputError) as caught:
        with writing(tmp_path / "run", "run.output_dir"):
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 440960 vs 440848")
    assert str(caught.value) == f"cannot write to run.output_dir {tmp_path / 'run'}: the disk is full (0 bytes free)"
    assert caught.value.errno == errno.ENOSPC


@pytest.mark.parametrize(
    "raised",
    [
        OSError(errno.EIO, "I/O error"),
        ValueError("a bug"),
        FileNotFoundError("x"),
        RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos"),
    ],
)
def test_other_errors_pass_through_writing_unchanged(tmp_path, monkeypatch, raised):
    disk_with_free_bytes(monkeypatch, 50 << 30)
    with pytest.raises(type(raised)) as caught:
        with writing(tmp_path):
            raise raised
    assert caught.value is raised
