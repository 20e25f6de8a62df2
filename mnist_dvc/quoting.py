"""How a message shows a value or a name it got from an input: never whole. A value by its repr,
bounded at every level (a few items of a list or mapping, the ends of a string, the digits of a
large number), a name (a key, a path) by its first MAX_QUOTED characters; credentials in a URL
masked before a string is cut. An input of 522 MB once made a "one-line" error of 522 MB.
"""

from __future__ import annotations

import re
import reprlib

from mnist_dvc.redact import redact

MAX_QUOTED = 60  # characters of an input that a message quotes
_REDACTED_PREFIX = 1000  # characters of a text looked at for credentials before it is quoted


class _Quoter(reprlib.Repr):
    """repr() bounded at every level: a few items of a list or mapping, the ends of a string,
    the digits of a large number; credentials in a URL masked before a string is cut."""

    def __init__(self) -> None:
        super().__init__()
        self.maxlevel, self.maxlist, self.maxtuple, self.maxdict, self.maxset = 3, 4, 4, 4, 4
        self.maxstring = self.maxother = MAX_QUOTED
        self.maxlong = 24

    def repr_str(self, x: str, level: int) -> str:
        return super().repr_str(_redacted(x), level)


def _redacted(text: str) -> str:
    """`text`, credentials masked, looked at no further than _REDACTED_PREFIX characters (the
    redaction's patterns cost more than linear time on some long texts)."""
    if len(text) <= _REDACTED_PREFIX:
        return redact(text)
    head = redact(text[:_REDACTED_PREFIX])
    # A URL whose user and password run past the cut has no "@" left to be found by: mask it.
    return re.sub(r"(\b[A-Za-z][A-Za-z0-9+.-]*://)[^/?#\s]*$", r"\1***", head) + "..."


_QUOTER = _Quoter()


def shorten(text: str) -> str:
    """A name (a key, a path) as a message shows it: at most MAX_QUOTED characters of it."""
    return text if len(text) <= MAX_QUOTED else f"{text[: MAX_QUOTED - 3]}..."


def quote(value: object) -> str:
    """`value` as a message shows it: its repr, at most about MAX_QUOTED characters of it."""
    try:
        shown = _QUOTER.repr(value)
    except ValueError:  # an integer of more than 4,300 digits has no decimal repr to cut
        return f"an {type(value).__name__} too long to show"
    return shown if len(shown) <= 2 * MAX_QUOTED else f"{shown[: 2 * MAX_QUOTED - 3]}..."
