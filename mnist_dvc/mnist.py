"""What MNIST is: the four canonical IDX files, their sizes and SHA-256 digests.

This is the one home of these facts; every stage and test that needs them imports them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mnist_dvc.digests import file_digest
from mnist_dvc.errors import StageError


@dataclass(frozen=True)
class IdxFile:
    name: str
    sha256: str
    npz_key: str  # the array holding the same data in Keras's mnist.npz


TRAIN_IMAGES = IdxFile(
    "train-images-idx3-ubyte",
    "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "x_train",
)
TRAIN_LABELS = IdxFile(
    "train-labels-idx1-ubyte",
    "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "y_train",
)
TEST_IMAGES = IdxFile(
    "t10k-images-idx3-ubyte",
    "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "x_test",
)
TEST_LABELS = IdxFile(
    "t10k-labels-idx1-ubyte",
    "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    "y_test",
)
FILES: tuple[IdxFile, ...] = (TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS)

# SHA-256 of Keras's own mirror of the data set (arrays x_train, y_train, x_test, y_test).
KERAS_NPZ_SHA256 = "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1"

IMAGE_ROWS = IMAGE_COLS = 28
NUM_CLASSES = 10
NUM_TRAIN = 60000
NUM_TEST = 10000


class DigestError(StageError):
    """A file's bytes are not the pinned ones."""


def verify(path: Path, file: IdxFile) -> None:
    """Raise DigestError unless `path` holds exactly the bytes of `file`."""
    actual = file_digest(path, "sha256")
    if actual != file.sha256:
        raise DigestError(f"{path}: SHA-256 {actual}, expected {file.sha256}")
