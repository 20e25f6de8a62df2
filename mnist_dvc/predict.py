"""Classify handwritten digits with a trained (or pulled) model: models/model.json + model.h5.

    mnist-predict digit.png scan.jpg batch.npy [--json] [--model-dir models]

Every input gets an answer: a prediction (one line per image: the digit and its probability),
or one line on stderr that names the input (`path`, or `path[i]` for an image of a batch) and
says what is wrong; the other inputs are still classified, and the exit status is then 1.
`--json` always prints one JSON document, `{"predictions": [...], "errors": [...]}`, also when
the model cannot be loaded.

Images (PNG, JPEG, GIF, BMP, TIFF, WebP; the first frame of an animation) of any polarity, at
most MAX_PIXELS (25,000,000) pixels: larger ones are refused before they are decoded
(decompression bombs). They are taken as a person sees them: turned upright as their EXIF
orientation says, transparent parts composited onto white paper (so dark ink on a transparent
background is dark ink on white), then grey; 16-bit grey is scaled to 8 bits, 32-bit and
floating-point pixels are refused. Then they are turned into what MNIST's digits are: light on
dark, the digit scaled to fit a 20x20 box and centred by its centre of mass in a 28x28 field.

A `.npy` batch holds images already in MNIST's form, shaped (N, 28, 28), (28, 28),
(N, 28, 28, 1) or (N, 1, 28, 28), at most MAX_NPY_IMAGES (70,000: all of MNIST) per file,
checked from the file's header before anything is allocated. Numbers only (no strings, objects,
booleans or complex numbers): integers must be 0-255 (they are divided by 255), floats 0-1 and
finite (no NaN, no infinity). An image of a batch outside these ranges is reported by its
`path[i]`, the others are classified.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import re
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from mnist_dvc import mnist
from mnist_dvc.errors import StageError, describe
from mnist_dvc.model import ModelError, load_model
from mnist_dvc.paths import MODEL_JSON, MODEL_WEIGHTS
from mnist_dvc.prepared import data_format_of, with_channel

DIGIT_BOX = 20  # MNIST's digits fit a 20x20 box inside the 28x28 image
# A 5000x5000 photo: decoded to RGBA, grey and floats it takes a few hundred MB at most.
MAX_PIXELS = 25_000_000
MAX_NPY_IMAGES = 70_000  # all of MNIST; float64 that is 440 MB
# Pillow opens some 40 formats; these are the ones digits come in. EPS would run Ghostscript.
IMAGE_FORMATS = ("PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP")
SIXTEEN_BIT_GREY = ("I;16", "I;16B", "I;16L", "I;16N")
_SHAPE = (mnist.IMAGE_ROWS, mnist.IMAGE_COLS)
# The layouts of a batch, without the leading N (a single (28, 28) image has none).
NPY_LAYOUTS = (_SHAPE, (*_SHAPE, 1), (1, *_SHAPE))
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


class InputError(StageError):
    """An input cannot be read as digits. The message is one line naming the input."""


@dataclass
class Prediction:
    input: str
    digit: int
    probability: float
    probabilities: list[float]


@dataclass
class Loaded:
    """What came of some inputs: named images in MNIST's form, and one error per bad input."""

    images: list[tuple[str, np.ndarray]] = field(default_factory=list)
    errors: list[InputError] = field(default_factory=list)

    def extend(self, other: Loaded) -> None:
        self.images.extend(other.images)
        self.errors.extend(other.errors)


# Images


def mnist_like(grey: np.ndarray) -> np.ndarray:
    """A grey image (H, W), uint8, either polarity -> float32 (28, 28) in [0, 1] as in MNIST."""
    image = grey.astype(np.float32)
    background = float(np.median(np.concatenate([image[0], image[-1], image[:, 0], image[:, -1]])))
    if background > 127:  # dark ink on light paper: MNIST is light ink on black
        image, background = 255 - image, 255 - background
    image = np.clip(image - background, 0, 255)
    rows, cols = np.nonzero(image > 0.1 * image.max())
    if len(rows) == 0:  # a blank image
        return np.zeros(_SHAPE, np.float32)
    digit = image[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    height, width = digit.shape
    if max(height, width) != DIGIT_BOX:  # MNIST's own digits already fit: leave them be
        scale = DIGIT_BOX / max(height, width)
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        digit = np.asarray(Image.fromarray(digit).resize(size, Image.Resampling.LANCZOS))
        digit = np.clip(digit, 0, 255)
    top, left = _placement(digit)
    field = np.zeros(_SHAPE, np.float32)
    field[top : top + digit.shape[0], left : left + digit.shape[1]] = digit
    return field / 255.0


def _placement(digit: np.ndarray) -> tuple[int, int]:
    """Where the digit's top-left corner goes so that its centre of mass lands on the centre of
    the 28x28 field."""
    ys, xs = np.indices(digit.shape)
    mass = float(digit.sum())
    if mass > 0:
        centre_y, centre_x = float((ys * digit).sum()) / mass, float((xs * digit).sum()) / mass
    else:  # a faint hairline that resampling wiped out: its box's centre will do
        centre_y, centre_x = (digit.shape[0] - 1) / 2, (digit.shape[1] - 1) / 2
    rows_n, cols_n = _SHAPE
    top = int(np.clip(round(rows_n / 2 - centre_y), 0, rows_n - digit.shape[0]))
    left = int(np.clip(round(cols_n / 2 - centre_x), 0, cols_n - digit.shape[1]))
    return top, left


def image_from_bytes(data: bytes, name: str) -> np.ndarray:
    """An encoded image (PNG, JPEG, ...: an upload, say) -> float32 (28, 28) in [0, 1] as in
    MNIST. Raises InputError, one line naming `name`, for anything that is not such an image."""
    return image_from_stream(io.BytesIO(data), name)


def image_from_stream(stream: BinaryIO, name: str) -> np.ndarray:
    return mnist_like(grey_as_seen(stream, name))


def grey_as_seen(stream: BinaryIO, name: str) -> np.ndarray:
    """The image as a person sees it, uint8 grey (H, W), or InputError."""
    try:
        with warnings.catch_warnings():
            # Pillow warns (two lines on stderr) about damage it reads past, "Corrupt EXIF data"
            # and the like: the image is read all the same. Its warning about images over its
            # own limit, which is above ours, is an error: they are refused, in our words.
            # (The filters are global: threads decoding at once may see each other's, which
            # changes what is printed, never what is refused: _check_size sees every image.)
            warnings.simplefilter("ignore")
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(stream, formats=IMAGE_FORMATS) as image:
                _check_size(image.size, name)
                return _grey(image, name)
    except InputError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        found = re.search(r"\((\d+) pixels\)", str(error))
        pixels = f"{int(found.group(1)):,}" if found else "too many"
        raise _too_many_pixels(name, pixels) from None
    except UnidentifiedImageError:
        raise InputError(
            f"{name}: not a readable image (not {', '.join(IMAGE_FORMATS[:-1])} or WebP)"
        ) from None
    except Exception as error:
        # Pillow's decoders meet damaged files with whatever they run into: OSError,
        # SyntaxError, ValueError, struct.error, EOFError, IndexError, MemoryError, ...
        raise InputError(f"{name}: not a readable image ({describe(error)})") from None


def _check_size(size: tuple[int, int], name: str) -> None:
    """Refuse an image by its header, before its pixels are decoded."""
    width, height = size
    if width * height > MAX_PIXELS:
        raise _too_many_pixels(name, f"{width}x{height}")
    if width * height == 0:
        raise InputError(f"{name}: an empty image ({width}x{height} pixels)")


def _too_many_pixels(name: str, pixels: str) -> InputError:
    return InputError(
        f"{name}: {pixels} pixels, over the limit of {MAX_PIXELS:,} (a decompression bomb?)"
    )


def _grey(image: Image.Image, name: str) -> np.ndarray:
    # A phone stores a photo as the sensor saw it and an EXIF tag says how to turn it upright.
    image = ImageOps.exif_transpose(image)
    if image.mode in SIXTEEN_BIT_GREY:  # Pillow's convert("L") would clip 16-bit grey at 255
        return np.round(np.asarray(image, np.float32) / 257).astype(np.uint8)
    if image.mode in ("I", "F"):  # no range to scale from: 0-1? 0-255? 0-65535?
        raise InputError(
            f"{name}: {'32-bit integer' if image.mode == 'I' else 'floating-point'} pixels "
            "are not supported (save it with 8 or 16 bits per pixel)"
        )
    if image.has_transparency_data:
        # Transparent pixels hold any colour (often black): show them as the paper they let
        # through, white, as a viewer does.
        paper = Image.new("RGBA", image.size, "white")
        image = Image.alpha_composite(paper, image.convert("RGBA"))
    return np.asarray(image.convert("L"))


# .npy batches


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
    batch = array.reshape(-1, *_SHAPE)
    loaded = Loaded()
    for i, problem in enumerate(_value_problems(batch)):
        if problem:
            loaded.errors.append(InputError(f"{name}[{i}]: {problem}"))
        else:
            loaded.images.append((f"{name}[{i}]", _scaled(batch[i])))
    return loaded


def _check_dtype(dtype: np.dtype, name: str) -> None:
    if dtype.kind not in "uif":  # unsigned and signed integers, floats
        what = NOT_NUMBERS.get(dtype.kind, "values")
        raise InputError(
            f"{name}: holds {what} ({dtype}), expected numbers: integers 0-255 or floats 0-1"
        )


def _check_shape(shape: tuple[int, ...], name: str) -> None:
    shape = tuple(shape)
    count = 1 if shape == _SHAPE else shape[0] if shape[1:] in NPY_LAYOUTS else -1
    if count < 0:
        raise InputError(f"{name}: shape {shape}, expected {NPY_SHAPES_TEXT}")
    if count == 0:
        raise InputError(f"{name}: holds no images")
    if count > MAX_NPY_IMAGES:
        raise InputError(f"{name}: {count:,} images, over the limit of {MAX_NPY_IMAGES:,}")


def _value_problems(batch: np.ndarray) -> list[str | None]:
    """For each image (N, 28, 28): None if its values fit its type, else what is wrong."""
    axes = (1, 2)
    floats = batch.dtype.kind == "f"
    finite = np.isfinite(batch).all(axis=axes) if floats else np.ones(len(batch), bool)
    lows, highs = batch.min(axis=axes).tolist(), batch.max(axis=axes).tolist()
    top, expected = (1, "floats 0-1") if floats else (255, "integers 0-255")

    def problem(finite: bool, low: float, high: float) -> str | None:
        if not finite:
            return "holds NaN or infinity"
        if low < 0 or high > top:
            return f"values from {low} to {high}, expected {expected}"
        return None

    return [problem(*each) for each in zip(finite.tolist(), lows, highs, strict=True)]


def _scaled(image: np.ndarray) -> np.ndarray:
    if image.dtype.kind == "f":
        return image.astype(np.float32)
    return (image / 255.0).astype(np.float32)


# Files and the command line


def load_inputs(path: Path) -> Loaded:
    """The images in a file (an image, or a .npy batch), or the error that says why not."""
    try:
        with _opened(path) as stream:
            if path.suffix.lower() == ".npy":
                return images_from_npy(stream, str(path))
            return Loaded(images=[(str(path), image_from_stream(stream, str(path)))])
    except InputError as error:
        return Loaded(errors=[error])


def _opened(path: Path) -> BinaryIO:
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if not path.is_file():
        raise InputError(f"{path}: not a file")
    try:
        return open(path, "rb")  # the caller's `with` closes it
    except OSError as error:
        raise InputError(f"{path}: {describe(error)}") from None


def predict(model, named_images: list[tuple[str, np.ndarray]]) -> list[Prediction]:
    """One prediction per image. Raises ModelError if the model cannot classify them here."""
    if not named_images:
        return []
    names, images = zip(*named_images, strict=True)
    batch = with_channel(np.stack(images), data_format_of(model.input_shape[1:]))
    try:
        probabilities = model.predict(batch, verbose=0)
    except Exception as error:  # e.g. TensorFlow runs channels_first convolutions on GPUs only
        raise ModelError(f"the model cannot classify here: {describe(error)}") from None
    if not np.isfinite(probabilities).all():
        raise ModelError("the model gives NaN or infinite probabilities (damaged weights?)")
    return [
        Prediction(name, int(p.argmax()), float(p.max()), [round(float(x), 6) for x in p])
        for name, p in zip(names, probabilities, strict=True)
    ]


def report(predictions: list[Prediction], errors: list[StageError], as_json: bool) -> int:
    """Print the answers; the exit status: 1 if anything was wrong."""
    for error in errors:
        print(f"predict: error: {error}", file=sys.stderr)
    if as_json:
        document = {
            "predictions": [vars(prediction) for prediction in predictions],
            "errors": [str(error) for error in errors],
        }
        print(json.dumps(document, indent=2))
    else:
        for prediction in predictions:
            print(f"{prediction.input}: {prediction.digit} ({prediction.probability:.4f})")
    return 1 if errors else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="mnist-predict", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("inputs", nargs="+", type=Path, help="images or .npy batches")
    parser.add_argument("--model-dir", type=Path, default=MODEL_JSON.parent)
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    args = parser.parse_args(argv)

    json_path = args.model_dir / MODEL_JSON.name
    try:
        model = load_model(json_path, args.model_dir / MODEL_WEIGHTS.name)
    except ModelError as error:
        return report([], [error], args.json)
    loaded = Loaded()
    for path in args.inputs:
        loaded.extend(load_inputs(path))
    try:
        predictions = predict(model, loaded.images)
    except ModelError as error:
        failure = ModelError(f"{json_path}: {error}")
        return report([], [*loaded.errors, failure], args.json)
    return report(predictions, loaded.errors, args.json)


if __name__ == "__main__":
    sys.exit(main())
