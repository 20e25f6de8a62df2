"""The one error boundary of every console script, as `stage.run_stage` is the stages':

    def main(argv: list[str] | None = None) -> int:
        return run_tool("mnist-verify", verify, argv, json_error=...)

Whatever ends the work ends in one line on stderr that starts with the tool's own name, is
redacted (mnist_dvc/redact.py) and comes with an exit status that says what kind of end it was;
never a traceback:

    a refusal (ProjectError)    <tool>: error: <message>              its exit_status: 1, 2 usage
    a file or the disk          <tool>: error: <file>: <reason>       1
    out of memory               <tool>: error: out of memory: ...     1
    Ctrl-C                      <tool>: interrupted                   130
    its output closed (| head)  <tool>: error: ... (broken pipe)      141, as SIGPIPE would end it
    anything else               <tool>: error: a bug in <tool>: ...   70 (EX_SOFTWARE)

A usage error is a refusal too: `ToolParser`, argparse's parser with `error()` raising
UsageError instead of printing a usage block. A tool asked for `--json` prints its error as the
JSON document `json_error` makes (on stdout, as its answers go), as well as the line on stderr.
Only the standard library is used here, so that every tool and stage can use it.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import sys
from collections.abc import Callable, Sequence
from contextlib import suppress
from typing import Any, NoReturn

from mnist_dvc.errors import ProjectError, UsageError, describe
from mnist_dvc.redact import redact

INTERRUPTED = 128 + signal.SIGINT  # 130, as shells report a Ctrl-C
BROKEN_PIPE = 128 + signal.SIGPIPE  # 141, as shells report a program SIGPIPE ended
TERMINATED = 128 + signal.SIGTERM  # 143, as shells report a `kill`
BUG = 70  # EX_SOFTWARE (sysexits.h): an internal error, not the user's
FAILED = 1


class ToolParser(argparse.ArgumentParser):
    """argparse's parser, whose usage errors are UsageError, for `run_tool` to tell in one line
    (or as JSON) instead of argparse's usage block on stderr and exit status 2."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see {self.prog} --help)")


def whole_number(least: int, most: int) -> Callable[[str], int]:
    """An argparse type: a whole number from `least` to `most`, or a one-line usage error."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            shown = text if len(text) <= 40 else f"{text[:40]}..."
            raise argparse.ArgumentTypeError(f"not a whole number: {shown!r}") from None
        if not least <= value <= most:
            raise argparse.ArgumentTypeError(f"{value}: must be from {least} to {most}")
        return value

    return parse


def failure(name: str, error: BaseException) -> tuple[str, int]:
    """The one line (redacted) and the exit status for an exception that ended `name`'s work."""
    line, status = _failure(name, error)
    return re.sub(r"\s*[\r\n]+\s*", " ", line), status  # one line, whatever a message held


def _failure(name: str, error: BaseException) -> tuple[str, int]:
    if (interruption := _interrupted(error)) is not None:
        return f"{name}: interrupted", getattr(interruption, "exit_status", INTERRUPTED)
    if isinstance(error, BrokenPipeError):
        closed = "its output was closed before it was all written (broken pipe)"
        return f"{name}: error: {closed}", BROKEN_PIPE
    if isinstance(error, ProjectError):
        return redact(f"{name}: error: {error}"), error.exit_status
    if isinstance(error, OSError):
        where = f"{error.filename}: " if error.filename else ""
        return redact(f"{name}: error: {where}{describe(error)}"), FAILED
    if isinstance(error, MemoryError):
        return f"{name}: error: out of memory: the work asks for more than this machine has", FAILED
    bug = f"a bug in {name}, please report it: {type(error).__name__}: {describe(error)}"
    return redact(f"{name}: error: {bug}"), BUG


def _interrupted(error: BaseException | None) -> KeyboardInterrupt | None:
    """The Ctrl-C (or `Terminated`) that ended the work, if one did: a KeyboardInterrupt, or an
    error it caused (Ctrl-C while a compiled module loads, as onnxruntime's does in
    mnist-serve's first second, comes out as `ImportError: initialization failed`, which was 'a
    bug', exit status 70)."""
    seen, found = set(), []
    while error is not None and id(error) not in seen:
        if isinstance(error, KeyboardInterrupt):
            found.append(error)
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    # A library may raise a KeyboardInterrupt of its own while it handles ours (Ray's does).
    return next((each for each in found if isinstance(each, Terminated)), None) or next(
        iter(found), None
    )


class Terminated(KeyboardInterrupt):
    """SIGTERM (`kill`), raised where the work is, as Ctrl-C is: what the work cleans up on its
    way out (a sweep's clone, a download's partial folder, a command's process group) is
    cleaned up for a `kill` too, and the command ends with `<name>: interrupted`, 143."""

    exit_status = TERMINATED


def _raise_terminated(_signum: int, _frame: object) -> None:
    raise Terminated


def end_on_sigterm_as_on_ctrl_c() -> None:
    """Make SIGTERM raise Terminated in this process, unless something already handles it."""
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _raise_terminated)


def json_requested(argv: Sequence[str]) -> bool:
    """Whether the command line asks for --json (an option before any `--`)."""
    options = list(argv)
    if "--" in options:
        options = options[: options.index("--")]
    return "--json" in options


def run_tool(
    name: str,
    work: Callable[[list[str] | None], int],
    argv: list[str] | None = None,
    *,
    json_error: Callable[[str], Any] | None = None,
) -> int:
    """`work(argv)`'s exit status, or, whatever it raised, the status `failure` gives after its
    one line on stderr (and, with --json, `json_error(message)` as JSON on stdout)."""
    try:
        status = work(argv)
        sys.stdout.flush()  # here, where a closed pipe is caught, not at the interpreter's exit
        return status
    except SystemExit:
        raise
    except BaseException as error:  # the boundary: nothing gets past it as a traceback
        line, status = failure(name, error)
    if status == BROKEN_PIPE:
        _silence_stdout()
    elif json_error is not None and json_requested(sys.argv[1:] if argv is None else argv):
        message = line.partition(": error: ")[2] or line.partition(": ")[2]
        try:
            print(json.dumps(json_error(message)), flush=True)
        except OSError:  # closed as well: the line on stderr still says what happened
            _silence_stdout()
    with suppress(OSError):
        print(line, file=sys.stderr, flush=True)
    return status


def _silence_stdout() -> None:
    """Point stdout at /dev/null: what is left in its buffer would otherwise fail once more
    when the interpreter flushes it on its way out, with a traceback of its own."""
    with suppress(OSError, ValueError):  # ValueError: stdout is not a file (a test's StringIO)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
