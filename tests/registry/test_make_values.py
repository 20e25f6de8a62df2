"""`make release`, `make promote` and `make publish` with values that start with `-` or name
what is not a folder, in a small git and DVC repository (no model needed: each is refused
before one would be looked at). `VERSION=--help` printed mnist-release's help and exited 0,
having released nothing; `DEST=<a file>` and `DEST=/proc/self` were tracebacks."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from tests.helpers import REPO_ROOT, sh

pytestmark = pytest.mark.slow  # make, git, dvc and mnist-release in processes of their own

MAKE_FAILED = re.compile(r"make(\[\d+\])?: \*\*\*")  # make's own line that a recipe failed
VERSION = "a version looks like v1.2.0 (SemVer with a leading v)"


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    """A git and DVC repository with the Makefile and a local remote holding one file."""
    repo = tmp_path_factory.mktemp("make") / "repo"
    repo.mkdir()
    shutil.copy(REPO_ROOT / "Makefile", repo / "Makefile")
    store = repo.parent / "store"
    (store / "files" / "md5" / "ab").mkdir(parents=True)
    (store / "files" / "md5" / "ab" / "cdef").write_bytes(b"a model's bytes")
    sh("git", "init", "-q", cwd=repo)
    sh("dvc", "init", "-q", cwd=repo)
    sh("dvc", "remote", "add", "-d", "store", str(store), cwd=repo)
    return repo


def refused(repo: Path, *args: str) -> str:
    """The one line of `make -s ARGS`, which must fail without printing anything else."""
    run = sh("make", "-s", *args, cwd=repo, check=False)
    assert run.returncode != 0 and run.stdout == "", run.stdout + run.stderr
    said = [line for line in run.stderr.splitlines() if not MAKE_FAILED.match(line)]
    assert len(said) == 1 and "usage:" not in run.stderr, run.stderr
    assert said[0].startswith("mnist-release: error: "), run.stderr
    return said[0].removeprefix("mnist-release: error: ")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["release", "VERSION=--help"], f"{VERSION}, got '--help'; no tag was made"),
        (["release", "VERSION=-h"], f"{VERSION}, got '-h'; no tag was made"),
        (["release", "VERSION=v1.0.0", "STAGE=-h"],
         "a stage is one of dev, staging, prod, got '-h'; no tag was made"),
        (["promote", "VERSION=-h", "STAGE=prod"], f"{VERSION}, got '-h'; no tag was made"),
        (["promote", "VERSION=v1.0.0", "STAGE=--help"],
         "a stage is one of dev, staging, prod, got '--help'; no tag was made"),
        (["publish", "DEST=--help"], "a destination folder that starts with '-' reads as an "
         "option, got '--help': write ./--help for a folder of that name"),
    ],
)  # fmt: skip
def test_a_value_that_starts_with_a_dash_is_a_value_and_refused(repo, args, message):
    assert refused(repo, *args) == message
    assert sh("git", "tag", "--list", cwd=repo).stdout == ""


def test_publish_to_a_file_or_to_proc_is_one_line(repo, tmp_path):
    afile = tmp_path / "notes.txt"
    afile.write_text("not a folder")
    assert refused(repo, "publish", f"DEST={afile}") == (
        f"{afile} is not a folder: publish to a folder (it is made if missing)"
    )
    assert afile.read_text() == "not a folder"
    said = refused(repo, "publish", "DEST=/proc/self")
    assert said.startswith("cannot publish to /proc/self/files/md5/ab/cdef: "), said
