"""What `mnist-predict` reads: a file named on its command line, an image (mnist_dvc/
image_files.py) or a `.npy` batch (mnist_dvc/npy_batches.py) by its suffix, as named images in
MNIST's form and one InputError for each bad one. A file is opened only if it is a regular one
of at most MAX_FILE_BYTES.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import BinaryIO

from mnist_dvc.digits import InputError, Loaded
from mnist_dvc.errors import describe
from mnist_dvc.files import open_regular
from mnist_dvc.image_files import image_from_stream
from mnist_dvc.npy_batches import images_from_npy

MAX_FILE_BYTES = 512 << 20  # an input file: that .npy, or an uncompressed 25-Mpixel image


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
