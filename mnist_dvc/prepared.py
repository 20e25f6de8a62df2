"""The prepared data set that preprocess writes and train and evaluate read: one .npy file per
array, images float32 in [0, 1] with a channel axis, labels uint8 digits, and which axis holds
the channel. The one place that knows the layouts of a 28x28 image: without a channel axis
(IMAGE_SHAPE: the IDX files, mnist-predict's and mnist-serve's images) and with it, first or
last (CHANNEL_SHAPES: what the model takes).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np

from mnist_dvc import mnist
from mnist_dvc.errors import StageError, describe
from mnist_dvc.files import require_regular

DataFormat = Literal["channels_last", "channels_first"]
IMAGE_SHAPE = (mnist.IMAGE_ROWS, mnist.IMAGE_COLS)
CHANNEL_SHAPES: dict[DataFormat, tuple[int, int, int]] = {
    "channels_last": (*IMAGE_SHAPE, 1),
    "channels_first": (1, *IMAGE_SHAPE),
}
SPLITS = ("train", "test")
# The largest array, the training images as float32: 60,000 x 28 x 28 x 4 bytes = 188 MB.
MAX_ARRAY_BYTES = 256 << 20


class PreparedError(StageError):
    """data/prepared is missing an array or holds one that is not what preprocess writes."""


def files(folder: Path, split: str) -> tuple[Path, Path]:
    """The images file and the labels file of a split."""
    return folder / f"x_{split}.npy", folder / f"y_{split}.npy"


def all_files(folder: Path) -> list[Path]:
    return [path for split in SPLITS for path in files(folder, split)]


def save_split(folder: Path, split: str, images: np.ndarray, labels: np.ndarray) -> None:
    images_file, labels_file = files(folder, split)
    np.save(images_file, images)
    np.save(labels_file, labels)


def load_split(
    folder: Path, split: str, *, count: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """A split's images and labels (the first `count` only: the images file is memory-mapped,
    so a quick run reads only the images it uses)."""
    images_file, labels_file = files(folder, split)
    images = np.asarray(_load(images_file, np.float32, ndim=4)[:count])
    labels = _load(labels_file, np.uint8, ndim=1)[:count]
    if len(images) != len(labels):
        raise PreparedError(f"{images_file} and {labels_file} hold different numbers of items")
    return images, labels


def _load(path: Path, dtype: type, *, ndim: int) -> np.ndarray:
    try:
        require_regular(path, MAX_ARRAY_BYTES)  # a named pipe would block np.load's open
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except FileNotFoundError:
        raise PreparedError(f"{path}: no such file (run the preprocess stage)") from None
    except OSError as error:
        raise PreparedError(f"{path}: {describe(error)}") from None
    except ValueError as error:
        raise PreparedError(f"{path}: not a .npy array ({error})") from None
    if array.dtype != dtype or array.ndim != ndim:
        raise PreparedError(
            f"{path}: {array.dtype} with {array.ndim} dimensions, expected "
            f"{np.dtype(dtype)} with {ndim} (run the preprocess stage again)"
        )
    return array


def channel_axis(data_format: DataFormat) -> int:
    """Where the channel axis goes in a batch (N, ...) of images."""
    return 1 if data_format == "channels_first" else -1


def data_format_of(image_shape: tuple[int | None, ...]) -> DataFormat:
    """The layout of images shaped `image_shape` (without the batch axis): MNIST's images have
    one channel, so a leading axis of 1 is the channel."""
    return "channels_first" if image_shape[0] == 1 else "channels_last"


def with_channel(images: np.ndarray, data_format: DataFormat) -> np.ndarray:
    """(N, 28, 28) -> the batch layout that `data_format` says."""
    return np.expand_dims(images, axis=channel_axis(data_format))
