"""Images already in MNIST's form, as arrays: a `.npy` batch read from its header up (what
mnist-predict reads from a .npy file), or an array decoded elsewhere (mnist-serve's JSON
instances).

Shaped (N, 28, 28), (28, 28), (N, 28, 28, 1) or (N, 1, 28, 28), at most MAX_NPY_IMAGES
(70,000: all of MNIST) per file, checked from the file's header before anything is allocated.
Numbers only (no strings, objects, booleans or complex numbers): integers must be 0-255 (they
are divided by 255), floats 0-1 and finite (no NaN, no infinity). An image of a batch outside
these ranges, or with no ink (the same rule as an image file's: mnist_dvc/digits.py's
`no_ink`), is reported by its `path[i]`, the others are classified.
"""

from __future__ import annotations

import math
from typing import BinaryIO

import numpy as np

from mnist_dvc.digits import InputError, Loaded, ink_only, no_ink
from mnist_dvc.errors import describe
from mnist_dvc.prepared import CHANNEL_SHAPES, IMAGE_SHAPE

MAX_NPY_IMAGES = 70_000  # all of MNIST; float64 that is 440 MB
# The layouts of a batch, without the leading N (a single (28, 28) image has none).
NPY_LAYOUTS = (IMAGE_SHAPE, *CHANNEL_SHAPES.values())
NPY_SHAPES_TEXT = "(N, 28, 28), (28, 28), (N, 28, 28, 1) or (N, 1, 28, 28)"
# What the dtypes that are not numbers hold, by their kind, for the message that refuses them.
NOT_NUMBERS = {
    "b": "booleans",
    "c": "complex numbers",
    "U": "strings",
    "S": "bytes",
    "O": "Python objects",
    "V": "records",
    "M": "dates",
    "m": "durations",
}


def images_from_npy(stream: BinaryIO, name: str) -> Loaded:
    """A .npy batch -> its images in MNIST's form, each named `name[i]`, and an error for each
    image out of range. Raises InputError if the file is not such a batch; its size is checked
    from the header before anything is allocated."""
    return check_each_image(_read_npy(stream, name), name)


def _read_npy(stream: BinaryIO, name: str) -> np.ndarray:
    shape, fortran_order, dtype = _npy_header(stream, name)
    _check_dtype(dtype, name)
    _check_shape(shape, name)
    nbytes = math.prod(shape) * dtype.itemsize  # bounded: the shape has passed its checks
    data = stream.read(nbytes)
    if len(data) < nbytes:
        raise InputError(
            f"{name}: truncated: its header promises {nbytes:,} bytes of images, "
            f"it holds {len(data):,}"
        )
    return np.frombuffer(data, dtype).reshape(shape, order="F" if fortran_order else "C")


def _npy_header(stream: BinaryIO, name: str) -> tuple[tuple[int, ...], bool, np.dtype]:
    """(shape, fortran_order, dtype) from a .npy header, without reading the data."""
    readers = {
        (1, 0): np.lib.format.read_array_header_1_0,
        (2, 0): np.lib.format.read_array_header_2_0,
    }
    try:
        version = np.lib.format.read_magic(stream)
        if version not in readers:  # 3.0 is for structured types with Unicode field names
            raise InputError(f"{name}: .npy format version {version[0]}.{version[1]}, not 1 or 2")
        return readers[version](stream)
    except InputError:
        raise
    except Exception as error:  # mostly ValueError; NumPy's parser of the header dict decides
        raise InputError(f"{name}: not a readable .npy file ({describe(error)})") from None


def check_images(array: np.ndarray, name: str) -> np.ndarray:
    """Images already decoded (a JSON batch, say) -> float32 (N, 28, 28) in [0, 1], as MNIST.

    Takes what a .npy batch may hold (see the module's doc): integers 0-255 are divided by
    255, finite floats 0-1 are taken as they are. Raises InputError for anything else: one
    line, naming `name[i]` if an image's values are out of range."""
    loaded = check_each_image(array, name)
    if loaded.errors:
        others = len(loaded.errors) - 1
        raise InputError(f"{loaded.errors[0]}{f' (and {others} more)' if others else ''}")
    return np.stack([image for _, image in loaded.images])


def check_each_image(array: np.ndarray, name: str) -> Loaded:
    """check_images, image by image: each good one named `name[i]`, an error for each other.
    Raises InputError if the whole array is of the wrong type or shape."""
    _check_dtype(array.dtype, name)
    _check_shape(array.shape, name)
    batch = array.reshape(-1, *IMAGE_SHAPE)
    loaded = Loaded()
    for i, problem in enumerate(_value_problems(batch)):
        if problem:
            loaded.errors.append(InputError(f"{name}[{i}]: {problem}"))
        else:
            loaded.images.append((f"{name}[{i}]", _scaled(batch[i])))
    return loaded


MAX_DTYPE_SHOWN = 80  # a record dtype's text can be as long as its field names


def _check_dtype(dtype: np.dtype, name: str) -> None:
    if dtype.kind not in "uif":  # unsigned and signed integers, floats
        what = NOT_NUMBERS.get(dtype.kind, "values")
        shown = str(dtype)
        if len(shown) > MAX_DTYPE_SHOWN:
            shown = f"{shown[: MAX_DTYPE_SHOWN - 3]}..."
        raise InputError(
            f"{name}: holds {what} ({shown}), expected numbers: integers 0-255 or floats 0-1"
        )


def _check_shape(shape: tuple[int, ...], name: str) -> None:
    shape = tuple(shape)
    count = 1 if shape == IMAGE_SHAPE else shape[0] if shape[1:] in NPY_LAYOUTS else -1
    if count < 0:
        raise InputError(f"{name}: shape {shape}, expected {NPY_SHAPES_TEXT}")
    if count == 0:
        raise InputError(f"{name}: holds no images")
    if count > MAX_NPY_IMAGES:
        raise InputError(f"{name}: {count:,} images, over the limit of {MAX_NPY_IMAGES:,}")


def _value_problems(batch: np.ndarray) -> list[str | None]:
    """For each image (N, 28, 28): None if its values fit its type and it has ink, else what
    is wrong."""
    axes = (1, 2)
    floats = batch.dtype.kind == "f"
    finite = np.isfinite(batch).all(axis=axes) if floats else np.ones(len(batch), bool)
    lows, highs = batch.min(axis=axes).tolist(), batch.max(axis=axes).tolist()
    top, expected = (1, "floats 0-1") if floats else (255, "integers 0-255")

    def problem(image: np.ndarray, finite: bool, low: float, high: float) -> str | None:
        if not finite:
            return "holds NaN or infinity"
        if low < 0 or high > top:
            return f"values from {low} to {high}, expected {expected}"
        # A uniform image holds no digit, here as in a PNG: the same rule (mnist_like's).
        return no_ink(float(ink_only(image.astype(np.float32), top).max()), top)

    return [problem(*each) for each in zip(batch, finite.tolist(), lows, highs, strict=True)]


def _scaled(image: np.ndarray) -> np.ndarray:
    if image.dtype.kind == "f":
        return image.astype(np.float32)
    return (image / 255.0).astype(np.float32)
