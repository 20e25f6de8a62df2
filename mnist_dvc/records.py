"""The records the pipeline writes and reads back: metrics.json, reports/per_digit.json and
models/provenance.json, checked for the shape their readers use before anything uses them.

The report stage, mnist-serve's /model and mnist-verify read them; a record that is not what
the pipeline writes (edited by hand, damaged, another tool's) is refused in one line naming
the file and the entry, instead of a KeyError or TypeError deep in the card or the verdict.
Each is read within its size (mnist_dvc/files.py) and parsed as bounded, strict JSON
(mnist_dvc/documents.py).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from mnist_dvc import mnist
from mnist_dvc.documents import DocumentError, load_json
from mnist_dvc.errors import StageError, describe
from mnist_dvc.files import read_limited
from mnist_dvc.quoting import quote

Parsed = TypeVar("Parsed")


class RecordError(StageError):
    """A record that cannot be read, or is not what the pipeline writes."""


@dataclass(frozen=True)
class Metrics:
    accuracy: float  # on the test images, 0-1
    loss: float


def _number(document: dict, key: str, low: float, high: float) -> float:
    value = document.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise DocumentError(f"no {key} (a number)")
    if not low <= value <= high:
        raise DocumentError(f"{key} {value} is not between {low:g} and {high:g}")
    return float(value)


def _object(data: str | bytes) -> dict:
    document = load_json(data)
    if not isinstance(document, dict):
        raise DocumentError("not a JSON object")
    return document


def parse_metrics(data: str | bytes) -> Metrics:
    """metrics.json: {"accuracy": 0-1, "loss": a number of at least 0}."""
    document = _object(data)
    return Metrics(_number(document, "accuracy", 0, 1), _number(document, "loss", 0, math.inf))


def parse_per_digit(data: str | bytes) -> dict[str, float]:
    """reports/per_digit.json: each digit "0"-"9" with its accuracy, 0-1."""
    document = _object(data)
    return {str(d): _number(document, str(d), 0, 1) for d in range(mnist.NUM_CLASSES)}


# What provenance.describe() and mnist-verify read from a provenance, by entry: its type, and the
# type of each item of a list or value of a mapping. Entries a provenance from before lacks
# (precision, gpus) may be missing.
_PROVENANCE: dict[str, tuple[type, tuple[type, ...] | None]] = {
    "model_h5_md5": (str, None),
    "numerics": (str, None),
    "precision": (str, None),
    "cpu": (dict, (str, list)),
    "gpus": (list, (str,)),
    "environment": (dict, (str, type(None))),
    "threads": (dict, (int, type(None))),
    "versions": (dict, (str,)),
}


def parse_provenance(data: str | bytes) -> dict[str, Any]:
    """models/provenance.json, as provenance.provenance() writes it."""
    made = _object(data)
    for key, (kind, items) in _PROVENANCE.items():
        if key not in made:
            continue
        value = made[key]
        if not isinstance(value, kind):
            raise DocumentError(f"{key}: expected {kind.__name__}, got {quote(value)}")
        inner = value.values() if isinstance(value, dict) else value if kind is list else ()
        for item in inner:
            if isinstance(item, bool) or not isinstance(item, items or ()):
                raise DocumentError(f"{key}: holds {quote(item)}, not what the train stage writes")
    flags = made.get("cpu", {}).get("flags", [])
    if not isinstance(flags, list) or not all(isinstance(flag, str) for flag in flags):
        raise DocumentError(f"cpu.flags: expected a list of names, got {quote(flags)}")
    return made


def read_record(path: Path, parse: Callable[[bytes], Parsed]) -> Parsed:
    """`parse` of the file at `path`; RecordError naming the file if it cannot be read or
    parsed (FileNotFoundError, an OSError, goes on: a missing record is the caller's case)."""
    try:
        data = read_limited(path)
    except FileNotFoundError:
        raise
    except OSError as error:
        raise RecordError(f"{path}: {describe(error)}") from None
    try:
        return parse(data)
    except DocumentError as error:
        raise RecordError(f"{path}: {error}") from None


def read_provenance(path: Path) -> dict[str, Any] | None:
    """The provenance recorded at `path`, None if there is none; RecordError if it is not one."""
    try:
        return read_record(path, parse_provenance)
    except FileNotFoundError:
        return None
