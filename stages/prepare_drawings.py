"""Stage `prepare_drawings`: the drawings version that `drawings.version` names
(mnist_dvc/drawings.py), read at its tag, into data/drawings_train (its training split, when
`drawings.train` is true) and data/drawings_holdout (its holdout split), in data/prepared's
layout with the channel axis `preprocess.data_format` says. With `version: none`, or `train:
false`, the arrays are empty: train and evaluate then compute as they did before drawings
existed, and their outputs keep their bytes.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from mnist_dvc import drawings, prepared
from mnist_dvc.atomic import atomic_outputs
from mnist_dvc.params import DrawingsParams, load_params
from mnist_dvc.paths import DRAWINGS_HOLDOUT_DIR, DRAWINGS_TRAIN_DIR
from mnist_dvc.prepared import DataFormat

Split = tuple[np.ndarray, np.ndarray]
_CHANNELS_LAST = prepared.CHANNEL_SHAPES["channels_last"]  # how a version holds its images


def select(root: Path, p: DrawingsParams, data_format: DataFormat) -> tuple[Split, Split]:
    """(training split, holdout split) of the chosen version, each (images, labels), in
    `data_format`'s layout."""
    empty = np.zeros((0, *_CHANNELS_LAST), np.float32), np.zeros(0, np.uint8)
    train = holdout = empty
    if p.version != "none":
        with tempfile.TemporaryDirectory() as scratch:
            folder = Path(scratch) / "version"
            drawings.checkout_version(root, p.version, folder)
            splits = drawings.load_splits(folder, drawings.read_rows(folder))
            holdout = _copied(splits["holdout"])
            if p.train:
                train = _copied(splits["train"])
    if data_format == "channels_first":
        train, holdout = ((np.moveaxis(x, -1, 1), y) for x, y in (train, holdout))
    return train, holdout


def _copied(split: Split) -> Split:
    """Arrays in memory, not mapped from a file in a folder about to be removed."""
    return np.array(split[0]), np.array(split[1])


def main() -> None:
    params = load_params()
    train, holdout = select(Path.cwd(), params.drawings, params.preprocess.data_format)
    with atomic_outputs(DRAWINGS_TRAIN_DIR, DRAWINGS_HOLDOUT_DIR) as (train_dir, holdout_dir):
        for folder, split, (images, labels) in (
            (train_dir, "train", train),
            (holdout_dir, "holdout", holdout),
        ):
            folder.mkdir()
            prepared.save_split(folder, split, images, labels)
    print(
        f"prepare_drawings: {params.drawings.version}: {len(train[1])} training and "
        f"{len(holdout[1])} holdout images in {DRAWINGS_TRAIN_DIR} and {DRAWINGS_HOLDOUT_DIR}"
    )
