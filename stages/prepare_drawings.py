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


def select(root: Path, p: DrawingsParams, data_format: DataFormat) -> tuple[Split, Split]:
    """(training split, holdout split) of the chosen version, each (images, labels)."""
    empty = np.zeros((0, 28, 28), np.float32), np.zeros(0, np.uint8)
    splits = {"train": empty, "holdout": empty}
    if p.version != "none":
        with tempfile.TemporaryDirectory() as scratch:
            folder = Path(scratch) / "version"
            drawings.checkout_version(root, p.version, folder)
            rows = drawings.read_rows(folder)
            drawings.images_by_hash(folder, rows)  # the manifest and the arrays agree
            splits = {split: drawings.load(folder, split) for split in drawings.SPLITS}
            splits = {s: (np.asarray(x)[..., 0], np.asarray(y)) for s, (x, y) in splits.items()}
    if not p.train:
        splits["train"] = empty
    return tuple(  # type: ignore[return-value]
        (prepared.with_channel(x, data_format), y) for x, y in (splits["train"], splits["holdout"])
    )


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
