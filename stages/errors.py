"""The errors a user can cause, and the wrapper that turns them into one line and exit code 1."""

from __future__ import annotations

import sys
from collections.abc import Callable


class StageError(Exception):
    """Bad input: a file, a parameter or a source. The message names it and says what is wrong."""


def run_stage(name: str, work: Callable[[], object]) -> None:
    """Run a stage's `main`; print user errors (and OS errors such as a full disk) in one line."""
    try:
        work()
    except StageError as error:
        sys.exit(f"{name}: error: {error}")
    except OSError as error:
        where = f"{error.filename}: " if error.filename else ""
        sys.exit(f"{name}: error: {where}{error.strerror or error}")
