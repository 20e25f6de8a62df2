"""Stage `preprocess`: IDX files in data/raw -> float32 images in [0, 1] and uint8 labels as .npy.

The images get the layout Keras's convolutions expect: (N, 28, 28, 1) for channels_last,
(N, 1, 28, 28) for channels_first, as the notebook did. `.npy` files can be memory-mapped,
so training reads only the images it uses.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mnist_dvc import mnist, prepared
from mnist_dvc.atomic import atomic_output
from mnist_dvc.idx import IdxError, read_idx
from mnist_dvc.params import load_params
from mnist_dvc.paths import PREPARED_DIR, RAW_DIR
from mnist_dvc.prepared import DataFormat


def load_split(
    images_file: Path, labels_file: Path, expected_count: int
) -> tuple[np.ndarray, np.ndarray]:
    """Read one split's images and labels and check that they belong together."""
    images = read_idx(images_file, ndim=3, shape=prepared.IMAGE_SHAPE)
    labels = read_idx(labels_file, ndim=1)
    if len(images) != len(labels):
        raise IdxError(
            f"{images_file} holds {len(images)} images but {labels_file} holds {len(labels)} labels"
        )
    if len(images) != expected_count:
        raise IdxError(f"{images_file}: {len(images)} images, expected {expected_count}")
    if labels.max(initial=0) >= mnist.NUM_CLASSES:
        raise IdxError(f"{labels_file}: label {labels.max()} is not a digit 0-9")
    return images, labels


def scale_images(images: np.ndarray, data_format: DataFormat) -> np.ndarray:
    """uint8 (N, 28, 28) -> float32 in [0, 1] with a channel axis where Keras wants it."""
    return prepared.with_channel(images.astype(np.float32) / 255.0, data_format)


def preprocess(raw_dir: Path, out_dir: Path, data_format: DataFormat) -> None:
    splits = {
        "train": (mnist.TRAIN_IMAGES, mnist.TRAIN_LABELS, mnist.NUM_TRAIN),
        "test": (mnist.TEST_IMAGES, mnist.TEST_LABELS, mnist.NUM_TEST),
    }
    # Read and check everything before writing anything: headers first (the most specific
    # message), then the pinned digests, which catch any damage the headers cannot show.
    loaded = {}
    for split, (images, labels, count) in splits.items():
        loaded[split] = load_split(raw_dir / images.name, raw_dir / labels.name, count)
        mnist.verify(raw_dir / images.name, images)
        mnist.verify(raw_dir / labels.name, labels)
    with atomic_output(out_dir) as ready:
        ready.mkdir()
        for split, (images, labels) in loaded.items():
            prepared.save_split(ready, split, scale_images(images, data_format), labels)


def main() -> None:
    params = load_params().preprocess
    preprocess(RAW_DIR, PREPARED_DIR, params.data_format)
    print(f"preprocess: wrote {PREPARED_DIR}/{{x,y}}_{{train,test}}.npy ({params.data_format})")
