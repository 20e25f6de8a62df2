"""The errors a user can cause, and the one way an exception becomes one line of text."""

from __future__ import annotations

import os
import re


class StageError(Exception):
    """Bad input: a file, a parameter or a source. The message names it and says what is wrong."""


def describe(error: BaseException) -> str:
    """What went wrong, in one line and without the traceback: an OS error by its reason
    ("No space left on device"), anything else by the first line of its message."""
    if isinstance(error, TimeoutError) or "timed out" in str(error):
        return "timed out"
    if isinstance(error, OSError):
        # h5py reports HDF5's failures as an OSError whose text holds the errno.
        found = re.search(r"errno = (\d+)", str(error))
        if found:
            return os.strerror(int(found.group(1)))
        if error.strerror:
            return error.strerror
    return (str(error).strip().splitlines() or [type(error).__name__])[0]
