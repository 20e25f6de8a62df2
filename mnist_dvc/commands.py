"""Running the programs this project drives (git, dvc, npm, g++), and the one way their failure
becomes one line: the last line of what they wrote to stderr, which is where git, DVC and npm
put the reason (the lines before it are context: "Cloning into...", a progress bar).

Each caller names the error class its users see (the release's, the sweep's, a source's), so
that the message keeps its tool's name and its advice. The line is redacted (a URL's password
in the command line or in the tool's words never shows), and a command that talks to a server
has a deadline for the whole run: at the deadline, or on Ctrl-C, its whole process group is
killed (git's remote helpers, npm's workers), not only the program started. Programs run in a
session of their own, without a terminal, so none can stop to ask for a password.

git's questions and their answers (the repository's top folder, a remote's refs) are
mnist_dvc/git_commands.py's, which runs them through here.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Mapping
from contextlib import suppress
from pathlib import Path

from mnist_dvc.errors import ProjectError, describe
from mnist_dvc.redact import redact

# No prompt for credentials even where a terminal could be found: fail instead.
NO_PROMPTS = {"GIT_TERMINAL_PROMPT": "0"}


def last_line(stderr: str | bytes, default: str) -> str:
    """The line of a program's stderr that says why it failed: git's first `fatal:` line where
    it wrote one, else the last non-empty line that is not git's advice (`hint:`), or `default`
    when it wrote nothing. git follows some reasons with advice: `fatal: '/x' does not appear
    to be a git repository`, `fatal: Could not read from remote repository.`, then `Please make
    sure you have the correct access rights` / `and the repository exists.`, whose last line
    alone was the whole message."""
    if isinstance(stderr, bytes):
        stderr = stderr.decode(errors="replace")
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    lines = [line for line in lines if not line.startswith("hint:")] or lines
    fatal = [line for line in lines if line.startswith("fatal:")]
    return fatal[0] if fatal else (lines or [default])[-1]


def run(
    argv: list[str],
    cwd: Path | None = None,
    *,
    error: type[ProjectError],
    name: str | None = None,
    timeout: float | None = None,
    env: Mapping[str, str] | None = None,
) -> str:
    """Run `argv` in `cwd` and return its stdout. A failure, a timeout (`timeout` seconds for
    the whole run) or a missing program raises `error` with `name` (default: the command line)
    and the reason in one line, redacted."""
    name = name or " ".join(argv)
    try:
        done = completed(argv, cwd, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        raise error(redact(f"{name}: timed out after {timeout:g} s")) from None
    except OSError as oserror:
        raise error(redact(f"{name}: cannot run {argv[0]}: {describe(oserror)}")) from None
    if done.returncode != 0:
        reason = last_line(done.stderr, f"exit status {done.returncode}")
        raise error(redact(f"{name}: {reason}"))
    return done.stdout


def completed(
    argv: list[str],
    cwd: Path | None = None,
    *,
    timeout: float | None = None,
    env: Mapping[str, str] | None = None,
    text: bool = True,
) -> subprocess.CompletedProcess:
    """subprocess.run with its output captured, in a session of its own; at `timeout` seconds,
    or when this process is interrupted, its whole process group is killed before the error
    goes on (TimeoutExpired, KeyboardInterrupt)."""
    with subprocess.Popen(
        argv,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=text,
        env={**(os.environ if env is None else env), **NO_PROMPTS},
        start_new_session=True,
    ) as process:
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        except BaseException:
            with suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            raise
    return subprocess.CompletedProcess(argv, process.returncode, stdout, stderr)
