"""Stage `prepare_ood`: the out-of-distribution set in data/ood_raw -> MNIST's form, as .npy in
data/ood_prepared, laid out as data/prepared's test split (mnist_dvc/prepared.py): x_test.npy,
float32 in [0, 1] with the channel axis `preprocess.data_format` says, and y_test.npy, uint8.

MNIST's own normalisation (LeCun, Cortes and Burges): NIST's black-and-white digits were
size-normalised to fit a 20x20 box, their aspect ratio kept, which anti-aliasing made grey;
then each was placed in a 28x28 field so that its centre of mass lies at the field's centre.
Each 8x8 image here (values 0-16, mnist_dvc/optdigits.py) goes the same way, through the one
definition of MNIST's form that mnist-predict and mnist-serve use for their inputs
(`mnist_like`, mnist_dvc/digits.py), so that the score is the model's on real handwriting
taken as the server takes a drawing:
- values divided by 16, the darkest stroke then made full ink (MNIST's strokes are full ink);
- cropped to the box of its ink (pixels above a tenth of full ink);
- resized, Lanczos-filtered (anti-aliased), so that its longer side is 20 pixels;
- placed in 28x28 with its centre of mass on pixel (14, 14), to the nearest whole pixel.
The arithmetic is NumPy's and Pillow's at the locked versions: the same input gives the same
bytes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mnist_dvc import optdigits, prepared
from mnist_dvc.atomic import atomic_output
from mnist_dvc.digits import mnist_like
from mnist_dvc.ood import OOD_PREPARED_DIR, OOD_RAW_DIR, OOD_SPLIT
from mnist_dvc.params import load_params
from mnist_dvc.prepared import DataFormat


def to_mnist_form(images: np.ndarray, name: str = "images") -> np.ndarray:
    """uint8 (N, 8, 8) with values 0-16 -> float32 (N, 28, 28) in [0, 1], as MNIST's digits;
    an InputError naming `name` and the image's number for one with no ink."""
    scale = np.float32(optdigits.LEVELS)
    return np.stack(
        [
            mnist_like(image.astype(np.float32) / scale, f"{name}, image {number}")
            for number, image in enumerate(images)
        ]
    )


def prepare_ood(raw_dir: Path, out_dir: Path, data_format: DataFormat) -> int:
    """Write the prepared set to `out_dir`; return how many images it holds."""
    source = raw_dir / optdigits.DIGITS.name
    optdigits.verify(source)
    images, labels = optdigits.read(source)
    scaled = prepared.with_channel(to_mnist_form(images, str(source)), data_format)
    with atomic_output(out_dir) as ready:
        ready.mkdir()
        prepared.save_split(ready, OOD_SPLIT, scaled, labels)
    return len(labels)


def main() -> None:
    params = load_params().preprocess
    count = prepare_ood(OOD_RAW_DIR, OOD_PREPARED_DIR, params.data_format)
    print(f"prepare_ood: wrote {count} images to {OOD_PREPARED_DIR} ({params.data_format})")
