"""The sandbox starts wherever the project and its venv live.

A fresh clone with its venv in a ``mktemp -d`` folder (mode 0700, under the /tmp that the sandbox
covers with its scratch tmpfs) used to fail with both backends; so did a venv directly under /tmp
with bwrap, and a clone under a private /root. Each case builds a small venv the way ``python -m
venv`` does (``bin/python -> python3 -> <interpreter>``, whose own links lead into pyenv or /usr)
next to a copy of the sandbox's modules, and starts a sandbox from it in a fresh interpreter.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import pytest

from data_pipelines import sandbox as sandbox_module

PROJECT = Path(__file__).resolve().parents[2]
MODULES = ("sandbox.py", "sandbox_worker.py", "sandbox_calls.py")  # standard library only: no other deps
BASES = {"base": os.path.join(sys.base_prefix, "bin", "python3"), "usr": "/usr/bin/python3"}
LOCATIONS = {  # name -> a new folder to hold the clone and its venv
    "mktemp": lambda: subprocess.run(["mktemp", "-d"], capture_output=True, text=True, check=True).stdout.strip(),
    "tmp": lambda: tempfile.mkdtemp(prefix="critics-install-", dir="/tmp"),
    "home": lambda: tempfile.mkdtemp(prefix="critics-install-", dir=os.path.expanduser("~")),
    "work": lambda: tempfile.mkdtemp(prefix="critics-install-", dir=PROJECT.parent),
}
CASES = [("mktemp", "base"), ("mktemp", "usr"), ("tmp", "base"), ("home", "base"), ("work", "usr")]
PROBE = r"""
import json, sys
from data_pipelines.sandbox import Sandbox, SandboxLimits
with Sandbox(SandboxLimits(wall_seconds=10), isolation=sys.argv[1]) as box:
    plain = box.run("import csv, sys\nprint(sys.prefix)\n")  # csv: not pre-imported, read as the sandbox's uid
    right = box.run("def add(a, b):\n    return a + b\n", tests="assert add(2, 3) == 5\n")
    wrong = box.run("def add(a, b):\n    return a - b\n", tests="assert add(2, 3) == 5\n")
    print(json.dumps({"plain": [plain.status, plain.stdout, plain.stderr], "right": right.tests_passed,
                      "wrong": wrong.tests_passed, "mechanisms": box.mechanisms}))
"""


def make_venv(folder: Path, base: str, venv_directly_in: Path | None = None) -> Path:
    """A venv as ``python -m venv --without-pip`` lays it out, by symlinks; returns its python."""
    venv = (venv_directly_in or folder) / f"critics-venv-{uuid.uuid4().hex[:12]}"
    (venv / "bin").mkdir(parents=True)
    (venv / "pyvenv.cfg").write_text(f"home = {os.path.dirname(base)}\ninclude-system-site-packages = false\n")
    os.symlink(base, venv / "bin" / "python3")
    os.symlink("python3", venv / "bin" / "python")
    return venv / "bin" / "python"


@pytest.fixture
def install(request):
    """(clone folder, venv python) for a (location, base) case; removed afterwards."""
    location, base = request.param
    if not os.path.exists(BASES[base]):
        pytest.skip(f"no {BASES[base]} here")
    try:
        folder = Path(LOCATIONS[location]())
    except OSError as exc:
        pytest.skip(f"cannot make a folder for {location}: {exc}")
    made = [folder]
    try:
        clone = folder / "clone" / "data_pipelines"
        clone.mkdir(parents=True)
        (clone / "__init__.py").write_text("")
        for name in MODULES:
            shutil.copy(PROJECT / "data_pipelines" / name, clone / name)
        # "tmp": the venv itself directly under /tmp, beside the private folder holding the clone
        python = make_venv(folder, BASES[base], Path("/tmp") if location == "tmp" else None)
        made.append(python.parents[1])
        yield clone.parent, python
    finally:
        for path in made:
            shutil.rmtree(path, ignore_errors=True)


@pytest.mark.parametrize(
    "backend",
    [
        pytest.param(
            name, marks=pytest.mark.skipif(not sandbox_module._backend_available(name), reason=f"no {name} here")
        )
        for name in ("bwrap", "unshare")
    ],
)
@pytest.mark.parametrize("install", CASES, ids=[f"{location}-{base}" for location, base in CASES], indirect=True)
def test_the_sandbox_starts_from_a_venv_anywhere(install, backend):
    clone, python = install
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(clone)}
    done = subprocess.run(
        [str(python), "-c", PROBE, backend], capture_output=True, text=True, env=env, cwd=clone, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.splitlines()[-1])
    assert report["plain"] == ["ok", f"{python.parents[1]}\n", ""]  # the venv's own interpreter ran it
    assert (report["right"], report["wrong"]) == (True, False)
    mechanisms = report["mechanisms"]
    assert mechanisms["backend"] == backend and mechanisms["pidns"]
    assert mechanisms["uid_switch"] == (os.geteuid() == 0)
