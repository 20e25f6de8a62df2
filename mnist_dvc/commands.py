"""Running the programs this project drives (git, dvc, npm), and the one way their failure
becomes one line: the last line of what they wrote to stderr, which is where git, DVC and npm
put the reason (the lines before it are context: "Cloning into...", a progress bar).

Each caller names the error class its users see (the release's, the sweep's, a source's), so
that the message keeps its tool's name and its advice.
"""

from __future__ import annotations

import subprocess
from collections.abc import Mapping
from pathlib import Path

from mnist_dvc.errors import ProjectError, describe


def is_url(location: str) -> bool:
    """Whether git would read `location` as a URL (scheme://...) or scp-like (user@host:path),
    rather than as a local path."""
    return "://" in location or (":" in location.split("/")[0] and not location.startswith("/"))


def last_line(stderr: str | bytes, default: str) -> str:
    """The last non-empty line of a program's stderr, or `default` when it wrote nothing."""
    if isinstance(stderr, bytes):
        stderr = stderr.decode(errors="replace")
    return (stderr.strip().splitlines() or [default])[-1].strip()


def run(
    argv: list[str],
    cwd: Path | None = None,
    *,
    error: type[ProjectError],
    name: str | None = None,
    timeout: float | None = None,
    env: Mapping[str, str] | None = None,
) -> str:
    """Run `argv` in `cwd` and return its stdout. A failure, a timeout or a missing program
    raises `error` with `name` (default: the command line) and the reason in one line."""
    name = name or " ".join(argv)
    try:
        done = subprocess.run(
            argv, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env, check=False
        )
    except subprocess.TimeoutExpired:
        raise error(f"{name}: timed out after {timeout:g} s") from None
    except OSError as oserror:
        raise error(f"{name}: cannot run {argv[0]}: {describe(oserror)}") from None
    if done.returncode != 0:
        raise error(f"{name}: {last_line(done.stderr, f'exit status {done.returncode}')}")
    return done.stdout


def git(repo: Path, *args: str, error: type[ProjectError], timeout: float = 120) -> str:
    """`git ARGS` in `repo`, its stdout without the trailing newline."""
    name = f"git {' '.join(args)}"
    return run(["git", *args], repo, error=error, name=name, timeout=timeout).rstrip("\n")


def git_ok(repo: Path, *args: str, timeout: float = 60) -> bool:
    """Whether `git ARGS` succeeds in `repo` (a question: its output does not matter)."""
    try:
        done = subprocess.run(["git", *args], cwd=repo, capture_output=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0
