"""The project's errors, and the one way an exception becomes one line of text.

Every error the project raises on purpose is a ProjectError whose message is the one line a
user reads: what is wrong, naming the file, the dotted params key or the value, and what to do.

    ProjectError
    ├── StageError     bad input to a stage: a file, a parameter or a source
    │   └── ExportError  an export that does not compute what the Keras model computes
    └── ToolError      a console script's refusal (mnist-release, mnist-sweep, mnist-verify...)
        └── UsageError   a command line the tool cannot take (exit status 2, as argparse's)

Each carries the exit status it ends a command with (`exit_status`): the one error boundary of
the console scripts (mnist_dvc/tool.py) and of the stages (mnist_dvc/stage.py) exit with it.
"""

from __future__ import annotations

import os
import re


class ProjectError(Exception):
    """Something this project refuses or cannot do; str() is the one line to show."""

    exit_status = 1


class ToolError(ProjectError):
    """A console script refuses: bad arguments, or a repository or server not fit for it."""


class UsageError(ToolError):
    """A command line the tool cannot take: an unknown option, a missing or malformed value."""

    exit_status = 2


class StageError(ProjectError):
    """Bad input: a file, a parameter or a source. The message names it and says what is wrong."""


class ExportError(StageError):
    """An export does not compute what the Keras model computes, or cannot be made stable."""


MAX_REASON = 200  # Keras's messages can quote a whole model config in their first line


def describe(error: BaseException) -> str:
    """What went wrong, in one line and without the traceback: an OS error by its reason
    ("No space left on device"), a TensorFlow error by its last paragraph (the reason, after a
    trace of the graph), anything else by the first line of its message; cut short."""
    if isinstance(error, TimeoutError) or "timed out" in str(error):
        return "timed out"
    if isinstance(error, OSError):
        # h5py reports HDF5's failures as an OSError whose text holds the errno.
        found = re.search(r"errno = (\d+)", str(error))
        if found:
            return os.strerror(int(found.group(1)))
        if error.strerror:
            return error.strerror
    before, _, last = str(error).strip().rpartition("\n\n")
    text = last.strip() if before and last.strip() else str(error).strip()
    reason = (text.splitlines() or [type(error).__name__])[0]
    return reason if len(reason) <= MAX_REASON else f"{reason[: MAX_REASON - 3]}..."
