"""Reading files the project is handed (settings, records, models, data, uploads' paths): a
regular file only, and no larger than its kind can be, both checked before a byte is read.

A symlink to /dev/zero, a named pipe or a folder where a file should be would otherwise be read
(or hashed) forever, or block the reader at its `open`; a file of gigabytes where a few KB
belong would be read into memory whole. So every file is opened without blocking, examined with
fstat (the opened file itself: nothing can be swapped in between), and refused with a
FileRefused, an OSError naming the file and what is wrong with it, which every command's usual
OSError handling turns into its one line. A file that grows while it is read is cut off at the
limit all the same.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

# The largest files of their kind, with room to spare: settings and records (params.yaml,
# sources.yaml, release.yaml, dvc.yaml, dvc.lock, metrics.json, provenance.json, per-digit
# accuracy, predictions.csv: the largest, predictions.csv, is about 40 KB).
MAX_RECORD_BYTES = 1 << 20
# Files hashed in chunks (model.h5 is 4.8 MB, MNIST's largest file 47 MB): a limit on time.
MAX_HASHED_BYTES = 4 << 30
# A model's weights or its ONNX export (4.8 MB here): ONNX's protobuf cannot exceed 2 GiB.
MAX_MODEL_BYTES = 2 << 30
CHUNK = 1 << 20

_KINDS = {
    stat.S_IFDIR: "a folder",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFIFO: "a named pipe",
    stat.S_IFSOCK: "a socket",
}


class FileRefused(OSError):
    """A file that is not a regular one, or larger than its kind can be."""

    def __init__(self, path: Path | str, reason: str) -> None:
        super().__init__(errno.EINVAL, reason, os.fspath(path))


@contextmanager
def open_regular(path: Path | str, limit: int) -> Iterator[BinaryIO]:
    """`path` opened for reading, once it is known to be a regular file of at most `limit`
    bytes; FileRefused if not (OSError if it cannot be opened at all)."""
    # O_NONBLOCK: opening a named pipe returns at once instead of waiting for a writer.
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        info = os.fstat(fd)
        kind = stat.S_IFMT(info.st_mode)
        if kind != stat.S_IFREG:
            raise FileRefused(path, f"not a regular file ({_KINDS.get(kind, 'a special file')})")
        if info.st_size > limit:
            raise FileRefused(path, too_large(info.st_size, limit))
        os.set_blocking(fd, True)
        file = os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
    with file:
        yield file


def too_large(size: int, limit: int) -> str:
    return f"{size:,} bytes, larger than such a file can be (at most {limit:,})"


def _grown(path: Path | str, limit: int) -> FileRefused:
    # It grew after it was examined (a log being written, say).
    return FileRefused(path, f"more than {limit:,} bytes, larger than such a file can be")


def read_limited(path: Path | str, limit: int = MAX_RECORD_BYTES) -> bytes:
    """The bytes of a regular file of at most `limit` bytes; FileRefused otherwise."""
    with open_regular(path, limit) as file:
        data = file.read(limit + 1)
    if len(data) > limit:
        raise _grown(path, limit)
    return data


def read_text_limited(path: Path | str, limit: int = MAX_RECORD_BYTES) -> str:
    """read_limited as UTF-8 text (UnicodeDecodeError, a ValueError, if it is not)."""
    return read_limited(path, limit).decode("utf-8")


def chunks(path: Path | str, limit: int = MAX_HASHED_BYTES) -> Iterator[bytes]:
    """A regular file's bytes in chunks, at most `limit` of them in all: what a digest reads."""
    with open_regular(path, limit) as file:
        read = 0
        while chunk := file.read(CHUNK):
            read += len(chunk)
            if read > limit:
                raise _grown(path, limit)
            yield chunk


def require_regular(path: Path | str, limit: int) -> None:
    """Refuse `path` unless it is a regular file of at most `limit` bytes, for a reader that
    opens it itself (NumPy's memory map, ONNX Runtime, HDF5)."""
    with open_regular(path, limit):
        pass


def model_problem(path: Path) -> str | None:
    """Why a model's file (model.json, model.h5, model.onnx) cannot be loaded, in words, before
    a loader opens it; None if it can, or if it is missing (the loader says so)."""
    limit = MAX_RECORD_BYTES if path.suffix == ".json" else MAX_MODEL_BYTES
    try:
        require_regular(path, limit)
    except FileNotFoundError:
        return None
    except OSError as error:
        return f"{path}: {error.strerror}"
    return None
