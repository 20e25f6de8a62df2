"""The errors a user can cause, and the one way an exception becomes one line of text."""

from __future__ import annotations

import os
import re


class StageError(Exception):
    """Bad input: a file, a parameter or a source. The message names it and says what is wrong."""


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
