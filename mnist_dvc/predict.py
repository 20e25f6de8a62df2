"""Classify handwritten digits with a trained (or pulled) model: models/model.json + model.h5.

    mnist-predict digit.png scan.jpg batch.npy [--json] [--model-dir models]

Images of any size, dark-on-light or light-on-dark, are turned into what MNIST's digits are:
light on dark, the digit scaled to fit a 20x20 box and centred by its centre of mass in a
28x28 field. A `.npy` batch holds images already in MNIST's form: (N, 28, 28) or with a channel
axis, uint8 0-255 or float 0-1. One line per image: the digit and its probability. A bad
input is reported in one line and the rest are still classified; the exit status is then 1.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from mnist_dvc import mnist
from mnist_dvc.errors import StageError
from mnist_dvc.model import load_model
from mnist_dvc.paths import MODEL_JSON, MODEL_WEIGHTS
from mnist_dvc.prepared import data_format_of, with_channel

DIGIT_BOX = 20  # MNIST's digits fit a 20x20 box inside the 28x28 image


class InputError(StageError):
    """An input file cannot be read as digits."""


@dataclass
class Prediction:
    input: str
    digit: int
    probability: float
    probabilities: list[float]


def mnist_like(grey: np.ndarray) -> np.ndarray:
    """A grey image (H, W), uint8, either polarity -> float32 (28, 28) in [0, 1] as in MNIST."""
    image = grey.astype(np.float32)
    background = float(np.median(np.concatenate([image[0], image[-1], image[:, 0], image[:, -1]])))
    if background > 127:  # dark ink on light paper: MNIST is light ink on black
        image, background = 255 - image, 255 - background
    image = np.clip(image - background, 0, 255)
    rows, cols = np.nonzero(image > 0.1 * image.max())
    rows_n, cols_n = mnist.IMAGE_ROWS, mnist.IMAGE_COLS
    if len(rows) == 0:  # a blank image
        return np.zeros((rows_n, cols_n), np.float32)
    digit = image[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    height, width = digit.shape
    if max(height, width) != DIGIT_BOX:  # MNIST's own digits already fit: leave them be
        scale = DIGIT_BOX / max(height, width)
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        digit = np.asarray(Image.fromarray(digit).resize(size, Image.Resampling.LANCZOS))
        digit = np.clip(digit, 0, 255)
    # Place the digit so that its centre of mass lands on the centre of the 28x28 field.
    ys, xs = np.indices(digit.shape)
    centre_y, centre_x = (ys * digit).sum() / digit.sum(), (xs * digit).sum() / digit.sum()
    top = int(np.clip(round(rows_n / 2 - centre_y), 0, rows_n - digit.shape[0]))
    left = int(np.clip(round(cols_n / 2 - centre_x), 0, cols_n - digit.shape[1]))
    field = np.zeros((rows_n, cols_n), np.float32)
    field[top : top + digit.shape[0], left : left + digit.shape[1]] = digit
    return field / 255.0


def load_inputs(path: Path) -> list[tuple[str, np.ndarray]]:
    """(name, 28x28 float image) for each image in the file."""
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    if path.suffix.lower() == ".npy":
        return _load_batch(path)
    try:
        with Image.open(path) as image:
            grey = np.asarray(image.convert("L"))
    except (UnidentifiedImageError, OSError) as error:
        raise InputError(f"{path}: not a readable image ({error})") from None
    return [(str(path), mnist_like(grey))]


def _load_batch(path: Path) -> list[tuple[str, np.ndarray]]:
    try:
        batch = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as error:
        raise InputError(f"{path}: not a readable .npy file ({error})") from None
    batch = np.squeeze(batch) if batch.ndim == 4 else batch
    if batch.ndim == 2:
        batch = batch[np.newaxis]
    if batch.shape[1:] != (mnist.IMAGE_ROWS, mnist.IMAGE_COLS):
        raise InputError(f"{path}: shape {batch.shape}, expected (N, 28, 28)")
    images = batch / 255.0 if batch.dtype == np.uint8 else batch.astype(np.float32)
    return [(f"{path}[{i}]", image) for i, image in enumerate(images.astype(np.float32))]


def predict(model, named_images: list[tuple[str, np.ndarray]]) -> list[Prediction]:
    if not named_images:
        return []
    names, images = zip(*named_images, strict=True)
    batch = with_channel(np.stack(images), data_format_of(model.input_shape[1:]))
    probabilities = model.predict(batch, verbose=0)
    return [
        Prediction(name, int(p.argmax()), float(p.max()), [round(float(x), 6) for x in p])
        for name, p in zip(names, probabilities, strict=True)
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mnist-predict", description=__doc__)
    parser.add_argument("inputs", nargs="+", type=Path, help="PNG/JPEG images or .npy batches")
    parser.add_argument("--model-dir", type=Path, default=MODEL_JSON.parent)
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    args = parser.parse_args(argv)

    try:
        model = load_model(args.model_dir / MODEL_JSON.name, args.model_dir / MODEL_WEIGHTS.name)
    except StageError as error:
        print(f"predict: error: {error}", file=sys.stderr)
        return 1
    named, errors = [], []
    for path in args.inputs:
        try:
            named.extend(load_inputs(path))
        except InputError as error:
            errors.append(str(error))
            print(f"predict: error: {error}", file=sys.stderr)
    results = predict(model, named)
    if args.json:
        document = {
            "predictions": [vars(result) for result in results],
            "errors": errors,
        }
        print(json.dumps(document, indent=2))
    else:
        for result in results:
            print(f"{result.input}: {result.digit} ({result.probability:.4f})")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
