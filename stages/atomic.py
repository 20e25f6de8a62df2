"""Write outputs so that an interrupted or failed run never leaves a half-written one in place.

Each output is built under a hidden name beside its final path (`.model.h5.partial`), on the
same file system, and renamed into place only when complete: a rename is atomic. A run killed
half-way leaves at most that hidden file, which the next run of the stage deletes first.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from stages.errors import StageError


class OutputError(StageError):
    """An output could not be written (read-only folder, full disk, ...)."""


@contextmanager
def atomic_output(final: Path) -> Iterator[Path]:
    """Yield a hidden path beside `final` to write a file or a folder to; on success, move it
    into place, replacing what was there; on any failure, remove it and keep the old output."""
    partial = final.with_name(f".{final.name}.partial")
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        _remove(partial)  # left by a killed run
        yield partial
        _fsync(partial)
        _replace(partial, final)
    except OSError as error:
        if error.filename is not None and not str(error.filename).startswith(str(partial)):
            raise  # about some other file (an input, say): let it speak for itself
        raise OutputError(f"{final}: cannot write it: {_reason(error)}") from None
    finally:
        _remove(partial)


def _reason(error: OSError) -> str:
    # h5py reports HDF5's failures as an OSError whose text holds the errno.
    found = re.search(r"errno = (\d+)", str(error))
    if found:
        return os.strerror(int(found.group(1)))
    return error.strerror or str(error).splitlines()[0]


def _replace(partial: Path, final: Path) -> None:
    if partial.is_dir() and final.exists():
        # A folder cannot be renamed over a non-empty one: move the old one aside first.
        old = final.with_name(f".{final.name}.old")
        _remove(old)
        os.replace(final, old)
        os.replace(partial, final)
        _remove(old)
    else:
        os.replace(partial, final)


def _fsync(path: Path) -> None:
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    for file in files:
        with open(file, "rb") as handle:
            os.fsync(handle.fileno())


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()
