"""Read and write the IDX format of the MNIST files, checking every header field on the way in.

IDX: two zero bytes, a type code (0x08 = unsigned byte), the number of dimensions, then one
big-endian uint32 per dimension, then the data, row-major.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from mnist_dvc.errors import StageError
from mnist_dvc.files import read_limited

UBYTE = 0x08
# MNIST's largest file, the training images, is 47,040,016 bytes.
MAX_IDX_BYTES = 64 << 20


class IdxError(StageError):
    """A file is not the IDX data it should be."""


def read_idx(path: Path, *, ndim: int, shape: tuple[int, ...] | None = None) -> np.ndarray:
    """Read an unsigned-byte IDX file with `ndim` dimensions.

    `shape` pins the trailing dimensions (e.g. (28, 28) for images); the first one is the count.
    A file that is not a regular one, or larger than MAX_IDX_BYTES, is refused unread.
    """
    data = read_limited(path, MAX_IDX_BYTES)
    expected_magic = (UBYTE << 8) | ndim
    if len(data) < 4:
        raise IdxError(f"{path}: too short for an IDX header ({len(data)} bytes)")
    (magic,) = struct.unpack(">I", data[:4])
    if magic != expected_magic:
        raise IdxError(
            f"{path}: wrong magic number 0x{magic:08x}, expected 0x{expected_magic:08x} "
            f"(unsigned bytes, {ndim} dimensions)"
        )
    header_size = 4 + 4 * ndim
    if len(data) < header_size:
        raise IdxError(f"{path}: truncated header ({len(data)} of {header_size} bytes)")
    dims = struct.unpack(f">{ndim}I", data[4:header_size])
    if shape is not None and tuple(dims[1:]) != tuple(shape):
        raise IdxError(
            f"{path}: wrong dimensions {'x'.join(map(str, dims[1:]))}, "
            f"expected {'x'.join(map(str, shape))}"
        )
    expected_size = header_size + int(np.prod(dims, dtype=np.int64))
    if len(data) != expected_size:
        raise IdxError(
            f"{path}: {len(data)} bytes, but its header ({' x '.join(map(str, dims))}) "
            f"needs {expected_size}: the file is truncated or has trailing bytes"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header_size).reshape(dims)


def idx_bytes(array: np.ndarray) -> bytes:
    """The IDX encoding of a uint8 array."""
    if array.dtype != np.uint8:
        raise TypeError(f"IDX writing supports uint8 arrays only, got {array.dtype}")
    header = struct.pack(f">I{array.ndim}I", (UBYTE << 8) | array.ndim, *array.shape)
    return header + np.ascontiguousarray(array).tobytes()


def write_idx(path: Path, array: np.ndarray) -> None:
    Path(path).write_bytes(idx_bytes(array))
