"""An encoded image (PNG, JPEG, GIF, BMP, TIFF, WebP; the first frame of an animation) as
MNIST's digit: what mnist-predict reads from an image file and mnist-serve from an upload.

At most MAX_PIXELS (25,000,000) pixels: larger ones are refused before they are decoded
(decompression bombs). They are taken as a person sees them: turned upright as their EXIF
orientation says, transparent parts composited onto white paper (so dark ink on a transparent
background is dark ink on white), then grey; 16-bit grey is scaled by its own range (a 12-bit
scan in a 16-bit file too), 32-bit and floating-point pixels are refused. Then they are put in
MNIST's form (mnist_dvc/digits.py).
"""

from __future__ import annotations

import io
import re
import warnings
from typing import BinaryIO

import numpy as np
from PIL import ExifTags, Image, UnidentifiedImageError

from mnist_dvc.digits import InputError, mnist_like
from mnist_dvc.errors import describe

# The side images are worked at: larger ones are reduced by whole blocks of pixels as they are
# read, so that a 5000x5000 upload costs its decoding once and then a few MB.
WORKING_SIDE = 1024
# A 5000x5000 photo: decoded to RGBA, grey and floats it takes a few hundred MB at most.
MAX_PIXELS = 25_000_000
# Pillow opens some 40 formats; these are the ones digits come in. EPS would run Ghostscript.
IMAGE_FORMATS = ("PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP")
SIXTEEN_BIT_GREY = ("I;16", "I;16B", "I;16L", "I;16N")


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
