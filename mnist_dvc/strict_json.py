"""JSON as every JSON reader accepts it: the one way the stages write their JSON outputs.

Python's json writes NaN and Infinity by default, which are not JSON: other tools then reject
metrics.json. Here a non-finite number is an error, never an output.
"""

from __future__ import annotations

import json
from typing import Any

from mnist_dvc.errors import StageError


def dumps(document: Any, what: str) -> str:
    """`document` as indented JSON text with a final newline; StageError naming `what` (the
    file it is for) if it holds NaN or an infinity."""
    try:
        return json.dumps(document, indent=2, allow_nan=False) + "\n"
    except ValueError:
        raise StageError(f"{what}: refused to write a number that is not finite (NaN or an "
                         "infinity), which JSON cannot hold") from None  # fmt: skip
