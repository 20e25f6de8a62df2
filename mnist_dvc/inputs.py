"""What `mnist-predict` and `mnist-serve` accept as digits, and how it becomes MNIST's form.

Images (PNG, JPEG, GIF, BMP, TIFF, WebP; the first frame of an animation) of any polarity, at
most MAX_PIXELS (25,000,000) pixels: larger ones are refused before they are decoded
(decompression bombs). They are taken as a person sees them: turned upright as their EXIF
orientation says, transparent parts composited onto white paper (so dark ink on a transparent
background is dark ink on white), then grey; 16-bit grey is scaled by its own range (a 12-bit
scan in a 16-bit file too), 32-bit and floating-point pixels are refused. Then they are turned
into what MNIST's digits are: light on dark, the ink's contrast stretched so that the darkest
stroke is full ink (a light pencil digit reads as a dark one), the digit scaled to fit a 20x20
box and centred by its centre of mass in a 28x28 field. An image with no ink (blank, one shade
throughout, or smaller than MIN_SIDE pixels) is refused in one line, not given a digit.

A `.npy` batch holds images already in MNIST's form, shaped (N, 28, 28), (28, 28),
(N, 28, 28, 1) or (N, 1, 28, 28), at most MAX_NPY_IMAGES (70,000: all of MNIST) per file,
checked from the file's header before anything is allocated. Numbers only (no strings, objects,
booleans or complex numbers): integers must be 0-255 (they are divided by 255), floats 0-1 and
finite (no NaN, no infinity). An image of a batch outside these ranges, or with no ink (the
same rule as an image file's: `no_ink`), is reported by its `path[i]`, the others are
classified.
"""

from __future__ import annotations

import io
import math
import re
import warnings
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import ExifTags, Image, UnidentifiedImageError

from mnist_dvc.errors import StageError, describe
from mnist_dvc.files import open_regular
from mnist_dvc.prepared import CHANNEL_SHAPES, IMAGE_SHAPE

DIGIT_BOX = 20  # MNIST's digits fit a 20x20 box inside the 28x28 image
# The least difference between ink and paper, of the full scale, that is read as a drawing:
# pencil on grey paper (ink 170 on 210) has 40/255; the noise of a JPEG of blank paper a few.
MIN_INK = 16 / 255
MIN_SIDE = 8  # pixels: a smaller picture cannot hold a digit anyone could read
# The side images are worked at: larger ones are reduced by whole blocks of pixels as they are
# read, so that a 5000x5000 upload costs its decoding once and then a few MB.
WORKING_SIDE = 1024
# A 5000x5000 photo: decoded to RGBA, grey and floats it takes a few hundred MB at most.
MAX_PIXELS = 25_000_000
MAX_NPY_IMAGES = 70_000  # all of MNIST; float64 that is 440 MB
MAX_FILE_BYTES = 512 << 20  # an input file: that .npy, or an uncompressed 25-Mpixel image
# Pillow opens some 40 formats; these are the ones digits come in. EPS would run Ghostscript.
IMAGE_FORMATS = ("PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP")
SIXTEEN_BIT_GREY = ("I;16", "I;16B", "I;16L", "I;16N")
# The layouts of a batch, without the leading N (a single (28, 28) image has none).
NPY_LAYOUTS = (IMAGE_SHAPE, *CHANNEL_SHAPES.values())
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
class Loaded:
    """What came of some inputs: named images in MNIST's form, and one error per bad input."""

    images: list[tuple[str, np.ndarray]] = field(default_factory=list)
    errors: list[InputError] = field(default_factory=list)

    def extend(self, other: Loaded) -> None:
        self.images.extend(other.images)
        self.errors.extend(other.errors)


# Images


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


def image_from_bytes(data: bytes, name: str) -> np.ndarray:
    """An encoded image (PNG, JPEG, ...: an upload, say) -> float32 (28, 28) in [0, 1] as in
    MNIST. Raises InputError, one line naming `name`, for anything that is not such an image."""
    return image_from_stream(io.BytesIO(data), name)


def image_from_stream(stream: BinaryIO, name: str) -> np.ndarray:
    return mnist_like(grey_as_seen(stream, name), name)


def grey_as_seen(stream: BinaryIO, name: str) -> np.ndarray:
    """The image as a person sees it, grey (H, W): uint8, or floats 0-1 for 16-bit grey; or
    InputError."""
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
    # A phone stores a photo as the sensor saw it and an EXIF tag says how to turn it upright;
    # read before any conversion below, which would drop a TIFF's tags.
    orientation = image.getexif().get(ExifTags.Base.Orientation, 1)
    # A JPEG decodes straight to a fraction of its size (its DCT scaling): memory, and time.
    image.draft(image.mode, (WORKING_SIDE, WORKING_SIDE))
    # Anything larger is cut down first, by whole pixel blocks: a digit needs no 5000x5000
    # pixels, and every copy made below (upright, composited, grey) is then small.
    factor = max(image.size) // WORKING_SIDE
    sixteen_bit = image.mode in SIXTEEN_BIT_GREY
    if factor > 1:
        image = _reducible(image).reduce(factor)
    image = image.transpose(UPRIGHT[orientation]) if orientation in UPRIGHT else image
    if sixteen_bit:  # Pillow's convert("L") would clip 16-bit grey at 255
        # Scaled by its own range: a 12-bit scanner's 0-4095 in a 16-bit file is its full scale.
        grey = np.asarray(image, np.float32)
        low, high = float(grey.min()), float(grey.max())
        return (grey - low) / (high - low) if high > low else np.zeros_like(grey)
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


# What turns an image upright, by its EXIF orientation (as ImageOps.exif_transpose does).
UPRIGHT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def _reducible(image: Image.Image) -> Image.Image:
    """The image in a mode Pillow's reduce() averages: bilevel and palette images become grey
    or RGBA (averaging palette indices would mix unrelated colours), 16-bit grey 32-bit. Images
    of 2048 pixels or more in modes 1, P or I;16 were refused as "image has wrong mode"."""
    if image.mode in SIXTEEN_BIT_GREY:
        return image.convert("I")
    if image.mode in ("1", "P", "PA"):
        return image.convert("RGBA" if image.has_transparency_data else "L")
    return image


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
    batch = array.reshape(-1, *IMAGE_SHAPE)
    loaded = Loaded()
    for i, problem in enumerate(_value_problems(batch)):
        if problem:
            loaded.errors.append(InputError(f"{name}[{i}]: {problem}"))
        else:
            loaded.images.append((f"{name}[{i}]", _scaled(batch[i])))
    return loaded


MAX_DTYPE_SHOWN = 80  # a record dtype's text can be as long as its field names


def _check_dtype(dtype: np.dtype, name: str) -> None:
    if dtype.kind not in "uif":  # unsigned and signed integers, floats
        what = NOT_NUMBERS.get(dtype.kind, "values")
        shown = str(dtype)
        if len(shown) > MAX_DTYPE_SHOWN:
            shown = f"{shown[: MAX_DTYPE_SHOWN - 3]}..."
        raise InputError(
            f"{name}: holds {what} ({shown}), expected numbers: integers 0-255 or floats 0-1"
        )


def _check_shape(shape: tuple[int, ...], name: str) -> None:
    shape = tuple(shape)
    count = 1 if shape == IMAGE_SHAPE else shape[0] if shape[1:] in NPY_LAYOUTS else -1
    if count < 0:
        raise InputError(f"{name}: shape {shape}, expected {NPY_SHAPES_TEXT}")
    if count == 0:
        raise InputError(f"{name}: holds no images")
    if count > MAX_NPY_IMAGES:
        raise InputError(f"{name}: {count:,} images, over the limit of {MAX_NPY_IMAGES:,}")


def _value_problems(batch: np.ndarray) -> list[str | None]:
    """For each image (N, 28, 28): None if its values fit its type and it has ink, else what
    is wrong."""
    axes = (1, 2)
    floats = batch.dtype.kind == "f"
    finite = np.isfinite(batch).all(axis=axes) if floats else np.ones(len(batch), bool)
    lows, highs = batch.min(axis=axes).tolist(), batch.max(axis=axes).tolist()
    top, expected = (1, "floats 0-1") if floats else (255, "integers 0-255")

    def problem(image: np.ndarray, finite: bool, low: float, high: float) -> str | None:
        if not finite:
            return "holds NaN or infinity"
        if low < 0 or high > top:
            return f"values from {low} to {high}, expected {expected}"
        # A uniform image holds no digit, here as in a PNG: the same rule (mnist_like's).
        return no_ink(float(ink_only(image.astype(np.float32), top).max()), top)

    return [problem(*each) for each in zip(batch, finite.tolist(), lows, highs, strict=True)]


def _scaled(image: np.ndarray) -> np.ndarray:
    if image.dtype.kind == "f":
        return image.astype(np.float32)
    return (image / 255.0).astype(np.float32)


# Files


def load_inputs(path: Path) -> Loaded:
    """The images in a file (an image, or a .npy batch), or the error that says why not."""
    try:
        with _opened(path) as stream:
            if path.suffix.lower() == ".npy":
                return images_from_npy(stream, str(path))
            return Loaded(images=[(str(path), image_from_stream(stream, str(path)))])
    except InputError as error:
        return Loaded(errors=[error])


@contextmanager
def _opened(path: Path) -> Iterator[BinaryIO]:
    """The file, if it is a regular one of at most MAX_FILE_BYTES (mnist_dvc/files.py)."""
    with ExitStack() as stack:
        try:
            stream = stack.enter_context(open_regular(path, MAX_FILE_BYTES))
        except FileNotFoundError:
            raise InputError(f"{path}: no such file") from None
        except OSError as error:  # a folder, a device, a named pipe, too large, unreadable
            raise InputError(f"{path}: {describe(error)}") from None
        yield stream
