"""The drawings data set: digits users drew on the page and labelled (mnist_dvc/spool.py), as
`mnist-drawings version` writes each version of it into data/drawings (DVC-tracked, registered
with GTO as mnist-drawings@vX.Y.Z) and the prepare_drawings stage reads one back.

A version holds data/prepared's layout, for two splits:
    x_train.npy, y_train.npy        (N, 28, 28, 1) float32 in [0, 1]; uint8 digits
    x_holdout.npy, y_holdout.npy    the same, for scoring only
    samples.csv                     one row per sample: sha256, label, split, version that
                                    added it, the served model's prediction and its md5
A sample's split is decided by its content hash alone (`split_of`), so it never moves between
them; a new version keeps every row and image of the one before, in order, and appends.
"""

from __future__ import annotations

import csv
import io
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np

from mnist_dvc import prepared
from mnist_dvc.errors import StageError, describe
from mnist_dvc.files import read_text_limited

ARTIFACT = "mnist-drawings"
SPLITS = ("train", "holdout")
MANIFEST = "samples.csv"
HOLDOUT_EVERY = 5  # one sample in five, by hash, is held out: about 20 %
# samples.csv: a row is about 160 bytes (its hash, the model's md5s), 1,000 bytes at most with
# a long model name; a million samples then, far past what a spool gathers between versions.
MAX_MANIFEST_BYTES = 1 << 30
_SHAPE = prepared.CHANNEL_SHAPES["channels_last"]


class DrawingsError(StageError):
    """A drawings version is missing a file or holds one that `mnist-drawings` did not write."""


@dataclass(frozen=True)
class Row:
    sha256: str
    label: int
    split: str
    version: str
    prediction: str  # "" when the server did not say
    model: str


def split_of(sha256: str) -> str:
    """train or holdout, from the sample's content hash alone."""
    return "holdout" if int(sha256[:8], 16) % HOLDOUT_EVERY == 0 else "train"


def read_rows(folder: Path) -> list[Row]:
    path = folder / MANIFEST
    try:
        text = read_text_limited(path, MAX_MANIFEST_BYTES)
    except FileNotFoundError:
        raise DrawingsError(f"{path}: no such file (not a drawings version)") from None
    except OSError as error:
        raise DrawingsError(f"{path}: {describe(error)}") from None
    reader = csv.DictReader(io.StringIO(text))
    names = [f.name for f in fields(Row)]
    if reader.fieldnames != names:
        raise DrawingsError(f"{path}: its columns are {reader.fieldnames}, expected {names}")
    try:
        rows = [Row(**{**line, "label": int(line["label"])}) for line in reader]
    except (TypeError, ValueError) as error:
        raise DrawingsError(f"{path}: a row that is not a sample ({describe(error)})") from None
    for row in rows:
        if row.split != split_of(row.sha256) or not 0 <= row.label <= 9:
            raise DrawingsError(f"{path}: sample {row.sha256[:12]} is not as written")
    return rows


def load(folder: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """A split's images (N, 28, 28, 1) and labels; DrawingsError if they are not whole."""
    try:
        images, labels = prepared.load_split(folder, split)
    except prepared.PreparedError as error:
        text = str(error).replace("run the preprocess stage", "not a drawings version")
        raise DrawingsError(text) from None
    if images.shape[1:] != _SHAPE:
        raise DrawingsError(f"{folder}: x_{split}.npy holds {images.shape[1:]} images")
    return images, labels


def write(folder: Path, rows: list[Row], images: dict[str, np.ndarray]) -> None:
    """A version into `folder` (new and empty): rows in order, each sample's image from
    `images` by hash, (28, 28) or (28, 28, 1)."""
    for split in SPLITS:
        chosen = [row for row in rows if row.split == split]
        x = np.zeros((len(chosen), *_SHAPE), np.float32)
        for i, row in enumerate(chosen):
            x[i] = images[row.sha256].reshape(_SHAPE)
        y = np.array([row.label for row in chosen], np.uint8)
        prepared.save_split(folder, split, x, y)
    out = io.StringIO()
    writer = csv.DictWriter(out, [f.name for f in fields(Row)], lineterminator="\n")
    writer.writeheader()
    writer.writerows(asdict(row) for row in rows)
    (folder / MANIFEST).write_text(out.getvalue())


def load_splits(folder: Path, rows: list[Row]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Each split's images and labels, checked against `rows` (samples.csv)."""
    splits = {}
    for split in SPLITS:
        images, labels = load(folder, split)
        chosen = [row for row in rows if row.split == split]
        if len(chosen) != len(images) or any(
            int(label) != row.label for row, label in zip(chosen, labels, strict=True)
        ):
            raise DrawingsError(f"{folder}: {MANIFEST} and x_{split}.npy do not agree")
        splits[split] = images, labels
    return splits


def images_by_hash(folder: Path, rows: list[Row]) -> dict[str, np.ndarray]:
    """Every sample's image of a version, by hash, read from its arrays in row order."""
    found: dict[str, np.ndarray] = {}
    for split, (images, _) in load_splits(folder, rows).items():
        chosen = [row for row in rows if row.split == split]
        found |= {row.sha256: image for row, image in zip(chosen, images, strict=True)}
    return found


def tag(version: str) -> str:
    """The git tag of a version, as GTO names it."""
    return f"{ARTIFACT}@{version}"


def checkout_version(root: Path, version: str, dest: Path) -> None:
    """A registered version's files into `dest` (new), read at its tag through DVC: from the
    cache, or the default remote. The tag names a commit, the commit's data/drawings.dvc an
    md5: the version alone says which bytes these are."""
    from dvc.api import DVCFileSystem
    from dvc.scm import RevError

    from mnist_dvc.paths import DRAWINGS_DIR

    try:
        DVCFileSystem(str(root), rev=tag(version)).get(
            DRAWINGS_DIR.as_posix(), str(dest), recursive=True
        )
    except RevError:  # raised by the first read, not by the file system's creation
        raise DrawingsError(
            f"drawings.version: {version} is not a registered {ARTIFACT} version "
            f"(no tag {tag(version)}: `gto show {ARTIFACT}` lists them; a queued or --temp "
            "experiment has no tags: `dvc exp run` in the work tree)"
        ) from None
    except FileNotFoundError:
        raise DrawingsError(
            f"{ARTIFACT} {version}: {DRAWINGS_DIR} is in neither the DVC cache nor the default "
            f"remote: `dvc fetch --all-tags {DRAWINGS_DIR}.dvc`, or `dvc push` it where it was made"
        ) from None
