"""What the out-of-distribution set is: the test part of UCI's "optdigits" (Alpaydin and Kaynak,
1998), real handwritten digits by people other than MNIST's writers, as scikit-learn ships it
for `sklearn.datasets.load_digits`. The one home of its facts (file, size, SHA-256) and of
reading it; mnist_dvc/ood.py holds only what the stages after it need (paths, metric keys).

The file is a CSV of 1,797 rows: 64 pixel values 0-16 (an 8x8 image, row by row, light ink on
black: each pixel counts the set pixels of a 4x4 block of the writer's 32x32 bitmap), then the
digit. Reading it needs no scikit-learn: fetch_ood takes the file out of the package, and the
digest pinned here is of the uncompressed CSV, so any scikit-learn release or platform that
ships the same data gives the same bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mnist_dvc import mnist
from mnist_dvc.digests import file_digest
from mnist_dvc.errors import StageError
from mnist_dvc.files import read_limited


@dataclass(frozen=True)
class PublishedFile:
    name: str  # in data/ood_raw
    sha256: str  # of the uncompressed file
    size: int  # bytes, uncompressed
    member: str  # where scikit-learn's wheels keep it, gzipped


DIGITS = PublishedFile(
    "digits.csv",
    "6ebb3d2fee246a4e99363262ddf8a00a3c41bee6014c373ed9d9216ba7f651b8",
    264_712,
    "sklearn/datasets/data/digits.csv.gz",
)
COUNT = 1797
SIDE = 8  # pixels: the images are 8x8
LEVELS = 16  # the darkest value: a 4x4 block all ink


class OodDataError(StageError):
    """The out-of-distribution file is not the pinned one, or not what it should hold."""


def verify(path: Path, file: PublishedFile = DIGITS) -> None:
    """Raise OodDataError unless `path` holds exactly the pinned bytes."""
    actual = file_digest(path, "sha256")
    if actual != file.sha256:
        raise OodDataError(f"{path}: SHA-256 {actual}, expected {file.sha256}")


def read(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 (N, 8, 8) with values 0-16, labels uint8) from the CSV at `path`; an
    OodDataError naming the file and the line for anything else."""
    try:
        text = read_limited(path, DIGITS.size).decode("ascii")
    except UnicodeDecodeError:
        raise OodDataError(f"{path}: not a CSV of numbers") from None
    rows = text.splitlines()
    if len(rows) != COUNT:
        raise OodDataError(f"{path}: {len(rows)} rows, expected {COUNT}")
    values = np.zeros((COUNT, SIDE * SIDE + 1), np.uint8)
    for number, row in enumerate(rows):
        fields = row.split(",")
        if len(fields) != SIDE * SIDE + 1 or not all(field.isdigit() for field in fields):
            raise OodDataError(f"{path}, line {number + 1}: not {SIDE * SIDE + 1} whole numbers")
        numbers = [int(field) for field in fields]
        if max(numbers[:-1]) > LEVELS or numbers[-1] >= mnist.NUM_CLASSES:
            raise OodDataError(
                f"{path}, line {number + 1}: a pixel above {LEVELS} or a label that is not 0-9"
            )
        values[number] = numbers
    return values[:, :-1].reshape(COUNT, SIDE, SIDE), values[:, -1].copy()
