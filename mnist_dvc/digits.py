"""MNIST's form of a digit, and the one rule for what holds one: a grey picture of either
polarity and any contrast made light ink on black, the darkest stroke full ink, the digit
scaled to fit a 20x20 box and centred by its centre of mass in a 28x28 field, as MNIST's
digits are. An image with no ink (blank, one shade throughout, or smaller than MIN_SIDE
pixels) is refused in one line, whatever it came as: an image file (mnist_dvc/image_files.py),
an image of a .npy batch or a JSON instance (mnist_dvc/npy_batches.py).

InputError and Loaded are what every reader of inputs gives: mnist-predict's files
(mnist_dvc/inputs.py) and mnist-serve's bodies.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from mnist_dvc.errors import StageError
from mnist_dvc.prepared import IMAGE_SHAPE

DIGIT_BOX = 20  # MNIST's digits fit a 20x20 box inside the 28x28 image
# The least difference between ink and paper, of the full scale, that is read as a drawing:
# pencil on grey paper (ink 170 on 210) has 40/255; the noise of a JPEG of blank paper a few.
MIN_INK = 16 / 255
MIN_SIDE = 8  # pixels: a smaller picture cannot hold a digit anyone could read


class InputError(StageError):
    """An input cannot be read as digits. The message is one line naming the input."""


@dataclass
class Loaded:
    """What came of some inputs: named images in MNIST's form, and one error per bad input."""

    images: list[tuple[str, np.ndarray]] = field(default_factory=list)
    errors: list[InputError] = field(default_factory=list)

    def extend(self, other: Loaded) -> None:
        self.images.extend(other.images)
        self.errors.extend(other.errors)


def mnist_like(grey: np.ndarray, name: str = "image") -> np.ndarray:
    """A grey image (H, W), either polarity, any contrast: uint8, or floats 0-1 of its full
    scale -> float32 (28, 28) in [0, 1] as in MNIST. Raises InputError naming `name` for an
    image with no ink."""
    if min(grey.shape) < MIN_SIDE:
        height, width = grey.shape
        raise InputError(
            f"{name}: {width}x{height} pixels, too small to hold a digit "
            f"(at least {MIN_SIDE}x{MIN_SIDE})"
        )
    full = 255.0 if grey.dtype == np.uint8 else 1.0  # the full scale, white
    image = ink_only(grey.astype(np.float32), full)
    darkest = float(image.max())
    if problem := no_ink(darkest, full):
        raise InputError(f"{name}: {problem}")
    if darkest != 255:  # the darkest stroke made full ink, as MNIST's are: 0-255 from here
        image = np.minimum(image * (255 / darkest), 255)  # no rounding past full ink
    rows, cols = np.nonzero(image > 0.1 * 255)
    digit = image[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    height, width = digit.shape
    if max(height, width) != DIGIT_BOX:  # MNIST's own digits already fit: leave them be
        scale = DIGIT_BOX / max(height, width)
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        digit = np.asarray(Image.fromarray(digit).resize(size, Image.Resampling.LANCZOS))
        digit = np.clip(digit, 0, 255)
    top, left = _placement(digit)
    field = np.zeros(IMAGE_SHAPE, np.float32)
    field[top : top + digit.shape[0], left : left + digit.shape[1]] = digit
    return field / 255.0


def ink_only(image: np.ndarray, full: float) -> np.ndarray:
    """The image as light ink on black paper, as MNIST's: the paper (the median of its border)
    subtracted, dark ink on light paper turned over first. Values 0-`full`."""
    background = float(np.median(np.concatenate([image[0], image[-1], image[:, 0], image[:, -1]])))
    if background > full / 2:  # dark ink on light paper: MNIST is light ink on black
        image, background = full - image, full - background
    return np.clip(image - background, 0, full)


def no_ink(darkest: float, full: float) -> str | None:
    """Why an image whose darkest mark (of ink_only) is `darkest` holds no digit, or None: the
    one rule for every kind of input, an uploaded PNG as a .npy batch's or a JSON instance."""
    if darkest >= MIN_INK * full:
        return None
    return (
        f"no ink: a blank or uniform image (its darkest mark differs from the paper by "
        f"{darkest / full * 255:.0f}/255, at least {MIN_INK * 255:.0f} is read as ink)"
    )


def _placement(digit: np.ndarray) -> tuple[int, int]:
    """Where the digit's top-left corner goes so that its centre of mass lands on the centre of
    the 28x28 field."""
    ys, xs = np.indices(digit.shape)
    mass = float(digit.sum())
    if mass > 0:
        centre_y, centre_x = float((ys * digit).sum()) / mass, float((xs * digit).sum()) / mass
    else:  # a faint hairline that resampling wiped out: its box's centre will do
        centre_y, centre_x = (digit.shape[0] - 1) / 2, (digit.shape[1] - 1) / 2
    rows_n, cols_n = IMAGE_SHAPE
    top = int(np.clip(round(rows_n / 2 - centre_y), 0, rows_n - digit.shape[0]))
    left = int(np.clip(round(cols_n / 2 - centre_x), 0, cols_n - digit.shape[1]))
    return top, left
