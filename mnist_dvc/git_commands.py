"""git as the project's tools call it, each question asked and answered in one place: the
repository a folder is in, the refs a remote lists, whether a location is a URL. Every call
goes through mnist_dvc/commands.py (a deadline, no prompts, a failure as one redacted line);
each caller names its own error class and words, so a refusal keeps its tool's name and advice.

No stage runs git, so this is a module apart from commands.py, which the stages import: an
edit here reruns no stage (docs/pipeline.md, "Where a piece of code goes").
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from mnist_dvc.commands import completed, run
from mnist_dvc.errors import ProjectError, describe

LOCAL_TIMEOUT_S = 120.0  # one git command on this machine: a stalled disk fails, not hangs
REMOTE_TIMEOUT_S = 120.0  # one question to a git remote (`git ls-remote`)
# A line of `git ls-remote`: an object name (SHA-1 or SHA-256), a tab, the ref.
_LISTED_REF = re.compile(r"^([0-9a-f]{40}|[0-9a-f]{64})\t(\S+)$")


def is_url(location: str) -> bool:
    """Whether git would read `location` as a URL (scheme://...) or scp-like (user@host:path),
    rather than as a local path."""
    return "://" in location or (":" in location.split("/")[0] and not location.startswith("/"))


def git(repo: Path, *args: str, error: type[ProjectError], timeout: float = LOCAL_TIMEOUT_S) -> str:
    """`git ARGS` in `repo`, its stdout without the trailing newline; `error` if it fails."""
    name = f"git {' '.join(args)}"
    return run(["git", *args], repo, error=error, name=name, timeout=timeout).rstrip("\n")


def git_ok(repo: Path, *args: str, timeout: float = 60) -> bool:
    """Whether `git ARGS` succeeds in `repo` (a question: its output does not matter)."""
    try:
        done = completed(["git", *args], repo, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def repo_root(
    cwd: Path | None,
    *,
    error: type[ProjectError],
    outside: str,
    timeout: float = LOCAL_TIMEOUT_S,
) -> Path:
    """The top folder of the git work tree that `cwd` (None: this process's folder) is in;
    `error(outside)` when it is in none, `error` with the reason when git cannot be asked."""
    try:
        done = completed(["git", "rev-parse", "--show-toplevel"], cwd, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise error(f"git rev-parse: timed out after {timeout:g} s") from None
    except OSError as oserror:
        raise error(f"cannot run git: {describe(oserror)}") from None
    if done.returncode != 0:
        raise error(outside)
    return Path(done.stdout.strip())


def ls_remote(
    location: str,
    *options: str,
    cwd: Path | None = None,
    error: type[ProjectError],
    name: str,
    timeout: float = REMOTE_TIMEOUT_S,
) -> dict[str, str]:
    """{ref: object} of what `git ls-remote OPTIONS LOCATION` lists, in one call and without a
    clone; `error`, with `name` and git's reason, when the remote cannot be read."""
    argv = ["git", "ls-remote", *options, location]
    return listed_refs(run(argv, cwd, error=error, name=name, timeout=timeout))


def listed_refs(listing: str) -> dict[str, str]:
    """{ref: object} from the output of `git ls-remote`; lines of another form (a warning git
    printed where its output and its errors were read together) are left out."""
    found = (_LISTED_REF.match(line.strip()) for line in listing.splitlines())
    return {match[2]: match[1] for match in found if match}
