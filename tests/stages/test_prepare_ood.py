"""The prepare_ood stage: MNIST's normalisation of the out-of-distribution set's 8x8 digits, on
known images (one pixel, bars) and on the real set, and the real file read strictly."""

from __future__ import annotations

import numpy as np
import pytest

from mnist_dvc import optdigits, prepared
from mnist_dvc.digits import InputError
from stages.prepare_ood import prepare_ood, to_mnist_form

FULL = optdigits.LEVELS


def _image(*pixels: tuple[int, int], value: int = FULL) -> np.ndarray:
    image = np.zeros((1, optdigits.SIDE, optdigits.SIDE), np.uint8)
    for row, col in pixels:
        image[0, row, col] = value
    return image


def _centre_of_mass(image: np.ndarray) -> tuple[float, float]:
    rows, cols = np.indices(image.shape)
    mass = image.sum()
    return float((rows * image).sum() / mass), float((cols * image).sum() / mass)


def _ink_box(image: np.ndarray) -> tuple[int, int]:
    rows, cols = np.nonzero(image > 0.1)
    return int(rows.max() - rows.min() + 1), int(cols.max() - cols.min() + 1)


def _assert_mnist_form(image: np.ndarray) -> None:
    assert image.shape == prepared.IMAGE_SHAPE and image.dtype == np.float32
    # The darkest stroke is made full ink; resizing a thin one may soften it a little.
    assert image.min() >= 0 and 0.5 < image.max() <= 1
    # Centred by its centre of mass on pixel (14, 14), to the nearest whole pixel.
    for centre in _centre_of_mass(image):
        assert 13.5 - 1e-6 <= centre <= 14.5 + 1e-6


def test_one_pixel_fills_the_20x20_box_centred():
    for place in [(0, 0), (3, 4), (7, 7)]:
        for value in (2, 9, FULL):  # faint or dark, it becomes full ink (1 of 16 is no ink)
            [image] = to_mnist_form(_image(place, value=value))
            _assert_mnist_form(image)
            assert _ink_box(image) == (20, 20)
            assert np.all(image[4:24, 4:24] == 1) and image.sum() == 400


@pytest.mark.parametrize("vertical", [True, False])
def test_a_bar_keeps_its_aspect_ratio(vertical):
    pixels = [(row, 3) if vertical else (3, row) for row in range(1, 7)]  # 6x1 pixels
    [image] = to_mnist_form(_image(*pixels))
    _assert_mnist_form(image)
    long_side, short_side = _ink_box(image) if vertical else _ink_box(image)[::-1]
    assert long_side == 20 and short_side in (3, 4)  # 20/6 of one pixel, anti-aliased


def test_grey_levels_are_kept_relative_to_the_darkest():
    [image] = to_mnist_form(_image((2, 2), (2, 3), (5, 5)) // 2 + _image((5, 2), value=4))
    _assert_mnist_form(image)
    assert 0 < image[image > 0].min() < 0.6  # the faint pixel stays fainter than the strokes


def test_an_image_without_ink_is_refused_naming_it():
    images = np.concatenate([_image((3, 3)), _image()])
    with pytest.raises(InputError, match=r"^digits.csv, image 1: no ink"):
        to_mnist_form(images, "digits.csv")


def test_the_real_set_in_mnist_form_deterministic_bytes(real_ood_raw_dir, tmp_path):
    count = prepare_ood(real_ood_raw_dir, tmp_path / "a", "channels_last")
    assert count == optdigits.COUNT
    images, labels = prepared.load_split(tmp_path / "a", "test")
    assert images.shape == (optdigits.COUNT, 28, 28, 1) and labels.dtype == np.uint8
    assert np.bincount(labels).tolist() == [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]
    for image in images[..., 0]:
        _assert_mnist_form(image)
        assert max(_ink_box(image)) in (20, 21)  # Lanczos's lobes may just pass a tenth of ink
    prepare_ood(real_ood_raw_dir, tmp_path / "b", "channels_first")
    again, _ = prepared.load_split(tmp_path / "b", "test")
    assert again.shape == (optdigits.COUNT, 1, 28, 28)
    assert again.tobytes() == images.tobytes()  # the same bytes, whichever the layout


def test_the_real_file_is_read_strictly(real_ood_raw_dir, tmp_path):
    images, labels = optdigits.read(real_ood_raw_dir / optdigits.DIGITS.name)
    assert images.shape == (optdigits.COUNT, 8, 8) and images.max() == FULL
    assert labels[:10].tolist() == list(range(10))
    rows = (real_ood_raw_dir / optdigits.DIGITS.name).read_text().splitlines()
    damaged = tmp_path / "digits.csv"
    damaged.write_text("\n".join([*rows[:4], rows[4].replace(",0,", ",17,", 1), *rows[5:]]))
    with pytest.raises(optdigits.OodDataError, match=r"digits.csv, line 5: a pixel above 16"):
        optdigits.read(damaged)
    with pytest.raises(optdigits.OodDataError, match=r"SHA-256 [0-9a-f]{64}, expected 6ebb3d2f"):
        optdigits.verify(damaged)
