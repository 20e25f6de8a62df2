"""HEAD's results, read from git alone (no DVC cache or remote): each file by `git show`, and
refused unread, by the size git records, when it is larger than MAX_RECORD_BYTES.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from mnist_dvc import commands
from mnist_dvc.errors import describe
from mnist_dvc.files import MAX_RECORD_BYTES, too_large
from mnist_dvc.git_commands import repo_root
from mnist_dvc.verify.results import READ, RESULTS, Results, VerifyError, parse_results

NO_COMMITTED = (
    "HEAD has no committed results: run `dvc repro` and commit dvc.lock, metrics.json and reports/"
)
GIT_TIMEOUT_S = 120.0  # one local git command: a repository on a stalled disk fails, not hangs


def _git(repo: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    """`git -C repo ARGS`, its output as bytes: a committed file is compared as it is, which
    commands.run (text, and the command line in its messages) would not leave it."""
    try:
        git = ["git", "-C", str(repo), *args]
        return commands.completed(git, timeout=GIT_TIMEOUT_S, text=False)
    except subprocess.TimeoutExpired:
        raise VerifyError(f"git {args[0]}: timed out after {GIT_TIMEOUT_S:g} s") from None
    except OSError as error:
        raise VerifyError(f"cannot run git: {describe(error)}") from error


def _git_failure(run: subprocess.CompletedProcess[bytes]) -> str:
    return commands.last_line(run.stderr, f"git exited with status {run.returncode}")


def check_project(repo: Path) -> str:
    """Refuse a folder that is not a DVC project in a git repository; HEAD's commit, or ''."""
    if not repo.is_dir():
        raise VerifyError(f"no such folder: {repo}")
    outside = f"{repo.resolve()} is not in a git repository"
    repo_root(repo, error=VerifyError, outside=outside, timeout=GIT_TIMEOUT_S)
    if not (repo / "dvc.yaml").is_file():
        raise VerifyError(f"no dvc.yaml in {repo.resolve()}: not the pipeline's folder (--repo)")
    head = _git(repo, "rev-parse", "--verify", "--quiet", "HEAD^{commit}")
    return head.stdout.decode().strip() if head.returncode == 0 else ""


def read_committed(repo: Path, paths: tuple[Path, ...]) -> dict[Path, bytes | None]:
    """The files committed at HEAD (None for those HEAD does not have), from git; one larger
    than MAX_RECORD_BYTES is refused by the size git records, unread."""
    listed = _git(repo, "ls-tree", "--long", "HEAD", "--", *map(str, paths))
    if listed.returncode != 0:
        raise VerifyError(f"git ls-tree HEAD: {_git_failure(listed)}")
    sizes = {}  # "<mode> blob <object> <size>\t<path>" per file
    for line in listed.stdout.decode().splitlines():
        fields, _, name = line.partition("\t")
        sizes[name] = fields.split()[-1]
    files: dict[Path, bytes | None] = {}
    for path in paths:
        if str(path) not in sizes:
            files[path] = None
            continue
        size = int(sizes[str(path)]) if sizes[str(path)].isdigit() else 0
        if size > MAX_RECORD_BYTES:
            raise VerifyError(f"HEAD:{path}: {too_large(size, MAX_RECORD_BYTES)}")
        shown = _git(repo, "show", "--no-textconv", f"HEAD:./{path}")
        if shown.returncode != 0:
            raise VerifyError(f"git show HEAD:{path}: {_git_failure(shown)}")
        files[path] = shown.stdout
    return files


def load_committed(repo: Path) -> Results:
    """HEAD's results, from git; refused when HEAD has none."""
    commit = check_project(repo)
    files = read_committed(repo, READ) if commit else {}
    if not commit or any(files[path] is None for path in RESULTS):
        raise VerifyError(NO_COMMITTED)
    return parse_results(files, "HEAD", commit)
