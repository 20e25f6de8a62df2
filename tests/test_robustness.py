"""Property-based tests: whatever bytes, images, arrays or JSON come in, `mnist-predict` and the
model loader answer with a result or one line naming the input, never a traceback."""

from __future__ import annotations

import contextlib
import io
import json
import re
import tempfile
import warnings
from pathlib import Path
from unittest import mock

import hypothesis.extra.numpy as hnp
import keras
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from mnist_dvc import mnist
from mnist_dvc import predict as predict_module
from mnist_dvc.digits import InputError, mnist_like
from mnist_dvc.idx import read_idx
from mnist_dvc.image_files import image_from_bytes
from mnist_dvc.model import ModelError, load_model
from mnist_dvc.npy_batches import check_each_image, check_images, images_from_npy
from mnist_dvc.predict import main

NAME = "upload.png"
# Hypothesis's examples run in one test function: tmp_path would be shared by all of them.
SETTINGS = {"deadline": None, "suppress_health_check": [HealthCheck.too_slow]}


def assert_one_line(text: str) -> None:
    assert "\n" not in text, text
    assert len(text) < 400 + len(text.partition(": ")[0]), text  # a line a person reads


def assert_one_line_about(error: Exception, name: str) -> None:
    assert str(error).startswith(f"{name}: "), str(error)
    assert_one_line(str(error))


def assert_mnist_form(image: np.ndarray) -> None:
    assert image.shape == (28, 28) and image.dtype == np.float32
    assert np.isfinite(image).all() and image.min() >= 0 and image.max() <= 1


def decoded_or_refused(data: bytes, name: str = NAME) -> np.ndarray | None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a warning would be more lines on stderr
            image = image_from_bytes(data, name)
    except InputError as error:
        assert_one_line_about(error, name)
        return None
    assert_mnist_form(image)
    return image


# Images: (format, mode) pairs that Pillow writes and mnist-predict must read.
WRITABLE = [
    *[("PNG", mode) for mode in ("1", "L", "LA", "P", "RGB", "RGBA", "I;16")],
    *[("JPEG", mode) for mode in ("L", "RGB", "CMYK")],
    *[("GIF", mode) for mode in ("L", "P")],
    *[("BMP", mode) for mode in ("1", "L", "P", "RGB", "RGBA")],
    *[("TIFF", mode) for mode in ("1", "L", "LA", "RGB", "RGBA", "CMYK", "I;16")],
    *[("WEBP", mode) for mode in ("RGB", "RGBA")],
]


@st.composite
def encoded_images(draw) -> bytes:
    """A small image of any content in one of the formats and modes above, encoded."""
    file_format, mode = draw(st.sampled_from(WRITABLE))
    width, height = draw(st.integers(1, 40)), draw(st.integers(1, 40))
    size = len(Image.new(mode, (width, height)).tobytes())
    image = Image.frombytes(mode, (width, height), draw(st.binary(min_size=size, max_size=size)))
    options = {}
    if mode == "P":
        image.putpalette(draw(st.binary(min_size=768, max_size=768)))
        if draw(st.booleans()) and file_format in ("PNG", "GIF"):
            options["transparency"] = draw(st.integers(0, 255))
    out = io.BytesIO()
    image.save(out, file_format, **options)
    return out.getvalue()


@st.composite
def damaged(draw, encoded: st.SearchStrategy[bytes]) -> bytes:
    """A valid file with some bytes overwritten, and perhaps cut short: what reaches the
    decoders, where random bytes stop at the first check of the header."""
    data = bytearray(draw(encoded))
    for _ in range(draw(st.integers(1, 8))):
        position = draw(st.integers(0, len(data) - 1))
        data[position] = draw(st.integers(0, 255))
    return bytes(data[: draw(st.integers(1, len(data)))])


@settings(max_examples=300, **SETTINGS)
@given(st.binary(max_size=2000))
def test_arbitrary_bytes_are_an_image_or_one_line(data):
    decoded_or_refused(data)


@pytest.fixture(scope="module")
def mnist_digits(real_raw_dir) -> np.ndarray:
    """The first 100 real test digits, uint8 (28, 28)."""
    return read_idx(real_raw_dir / mnist.TEST_IMAGES.name, ndim=3)[:100]


NO_DIGIT = re.compile(r": (\d+x\d+ pixels, too small to hold a digit|no ink: )")


def mnist_form_or_no_digit(make) -> None:
    """What `make()` returns is in MNIST's form, or it was read and holds no digit."""
    try:
        assert_mnist_form(make())
    except InputError as error:
        assert NO_DIGIT.search(str(error)), str(error)
        assert_one_line(str(error))


@settings(max_examples=150, **SETTINGS)
@given(encoded_images())
def test_every_image_pillow_writes_is_read(data):
    mnist_form_or_no_digit(lambda: image_from_bytes(data, NAME))


@settings(max_examples=600, **SETTINGS)
@given(damaged(encoded_images()))
def test_damaged_images_are_an_image_or_one_line(data):
    decoded_or_refused(data)


@settings(max_examples=200, **SETTINGS)
@given(hnp.arrays(np.uint8, hnp.array_shapes(min_dims=2, max_dims=2, max_side=80)))
def test_mnist_like_takes_any_grey_image(grey):
    mnist_form_or_no_digit(lambda: mnist_like(grey))


@settings(max_examples=100, **SETTINGS)
@given(
    index=st.integers(0, 99),
    paper=st.integers(140, 255),  # light paper (dark paper for light ink: 255 - paper)
    contrast=st.integers(40, 115),  # from pencil on grey paper (40) up
    dark_on_light=st.booleans(),
)
def test_a_digit_reads_the_same_at_any_contrast(mnist_digits, index, paper, contrast,
                                                dark_on_light):  # fmt: skip
    """A pencil-light or low-contrast drawing of a digit becomes what the same digit at full
    contrast becomes: its darkest stroke full ink, the same amount of ink in the same place
    (the faintest edge pixels, which so few shades lose, may move its box by a pixel)."""
    digit = mnist_digits[index].astype(np.float32)
    ink = digit * (contrast / 255)
    faint = np.round(paper - ink if dark_on_light else 255 - paper + ink).astype(np.uint8)
    full, read = mnist_like(mnist_digits[index]), mnist_like(faint)
    assert read.max() == pytest.approx(1.0)
    assert 0.95 < read.sum() / full.sum() < 1.05
    assert np.linalg.norm(centre_of_mass(read) - centre_of_mass(full)) <= 1.5


def centre_of_mass(image: np.ndarray) -> np.ndarray:
    rows, cols = np.indices(image.shape)
    return np.array([(rows * image).sum(), (cols * image).sum()]) / image.sum()


# .npy batches

ACCEPTED_SHAPES = st.one_of(
    st.just((28, 28)),
    st.integers(1, 3).map(lambda n: (n, 28, 28)),
    st.integers(1, 3).map(lambda n: (n, 28, 28, 1)),
    st.integers(1, 3).map(lambda n: (n, 1, 28, 28)),
)
ANY_DTYPE = st.one_of(
    hnp.scalar_dtypes(),
    hnp.byte_string_dtypes(),
    hnp.unicode_string_dtypes(),
    hnp.array_dtypes(allow_subarrays=True),
)


def checked_or_refused(array: np.ndarray, name: str = "batch.npy") -> None:
    """One answer for each image (an image or an error), or one error for the whole array;
    check_images gives the images or the first error."""
    try:
        loaded = check_each_image(array, name)
    except InputError as error:
        assert_one_line_about(error, name)
        return
    count = 1 if array.ndim == 2 else array.shape[0]
    names = [name for name, _ in loaded.images] + [str(e).partition(": ")[0] for e in loaded.errors]
    assert sorted(names) == sorted(f"{name}[{i}]" for i in range(count))
    for _, image in loaded.images:
        assert_mnist_form(image)
    for error in loaded.errors:
        assert_one_line(str(error))
    try:
        images = check_images(array, name)
    except InputError as error:
        assert loaded.errors and str(error).startswith(str(loaded.errors[0]))
        assert_one_line(str(error))
        return
    assert not loaded.errors and len(images) == count
    for image in images:
        assert_mnist_form(image)


@settings(max_examples=200, **SETTINGS)
@given(
    st.one_of(
        hnp.arrays(ANY_DTYPE, ACCEPTED_SHAPES),
        hnp.arrays(ANY_DTYPE, hnp.array_shapes(min_dims=0, max_dims=4, max_side=30)),
    )
)
def test_check_images_answers_any_array(array):
    checked_or_refused(array)


@st.composite
def npy_files(draw) -> bytes:
    """A .npy file: either a real array's, damaged, or a header of arbitrary claims."""
    if draw(st.booleans()):
        array = draw(hnp.arrays(hnp.scalar_dtypes(), ACCEPTED_SHAPES))
        out = io.BytesIO()
        np.save(out, array, allow_pickle=False)
        return draw(damaged(st.just(out.getvalue())))
    header = {
        "descr": draw(
            st.one_of(
                st.sampled_from(["<f4", "|u1", "<i8", "|b1", "O", "<U3"]), st.text(max_size=8)
            )
        ),
        "fortran_order": draw(st.booleans()),
        "shape": tuple(draw(st.lists(st.integers(-2, 10**12) | st.just(28), max_size=4))),
    }
    out = io.BytesIO()
    try:
        np.lib.format.write_array_header_1_0(out, header)
    except Exception:  # a descr NumPy will not even write: use it raw
        out = io.BytesIO(b"\x93NUMPY\x01\x00" + repr(header).encode()[:200])
    return out.getvalue() + draw(st.binary(max_size=3000))


@settings(max_examples=300, **SETTINGS)
@given(st.one_of(npy_files(), st.binary(max_size=200).map(lambda b: b"\x93NUMPY" + b)))
def test_npy_bytes_are_images_or_one_line(data):
    try:
        loaded = images_from_npy(io.BytesIO(data), "batch.npy")
    except InputError as error:
        assert_one_line_about(error, "batch.npy")
        return
    for _, image in loaded.images:
        assert_mnist_form(image)


# The command line: every input gets an answer, --json always prints one document.


class FakeModel:
    """Stands in for Keras: the CLI's bookkeeping is under test here, not the network."""

    input_shape = (None, 28, 28, 1)

    def predict(self, batch, verbose=0):
        return np.full((len(batch), 10), 0.1, np.float32)


SUFFIXES = st.sampled_from([".png", ".jpg", ".npy", ".gif", ".txt"])


@settings(max_examples=60, **SETTINGS)
@given(
    st.lists(
        st.tuples(SUFFIXES, st.one_of(st.binary(max_size=300), encoded_images(), npy_files())),
        min_size=1,
        max_size=4,
    )
)
def test_every_input_gets_an_answer_and_json_is_one_document(files):
    with tempfile.TemporaryDirectory() as folder:
        paths = [Path(folder) / f"in{i}{suffix}" for i, (suffix, _) in enumerate(files)]
        for path, (_, data) in zip(paths, files, strict=True):
            path.write_bytes(data)
        stdout, stderr = io.StringIO(), io.StringIO()
        with (
            mock.patch.object(predict_module, "load_model", return_value=FakeModel()),
            contextlib.redirect_stdout(stdout),
            contextlib.redirect_stderr(stderr),
        ):
            status = main([*map(str, paths), "--json"])
    document = json.loads(stdout.getvalue())
    answered = [p["input"] for p in document["predictions"]]
    answered += [error.partition(": ")[0] for error in document["errors"]]
    for path in map(str, paths):  # a batch's images are answered as path[i]
        assert any(name == path or name.startswith(f"{path}[") for name in answered), path
    for error in document["errors"]:
        assert_one_line(error)
    assert status == (1 if document["errors"] else 0)
    assert stderr.getvalue().count("\n") == len(document["errors"])


# model.json

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)
CLASS_NAMES = st.sampled_from(
    ["Sequential", "Functional", "Model", "Dense", "InputLayer", "Conv2D", "Lambda", "system"]
)
MODULES = st.sampled_from(["keras", "keras.layers", "keras.models", "builtins", "os", "tensorflow"])


def small_model_config() -> dict:
    model = keras.Sequential(
        [keras.Input((28, 28, 1)), keras.layers.Flatten(), keras.layers.Dense(10, "softmax")]
    )
    return json.loads(model.to_json())


@pytest.fixture(scope="module")
def model_config() -> dict:
    return small_model_config()


@st.composite
def mutated(draw, config: dict) -> object:
    """The config of a real model with one value somewhere inside replaced by any JSON."""
    config = json.loads(json.dumps(config))
    node, key = None, None
    value = config
    while isinstance(value, dict | list) and value and draw(st.integers(0, 5)):
        keys = list(value) if isinstance(value, dict) else list(range(len(value)))
        node, key = value, draw(st.sampled_from(keys))
        value = node[key]
    if node is None:
        return draw(JSON_VALUES)
    node[key] = draw(JSON_VALUES)
    return config


def any_model_json(config: dict) -> st.SearchStrategy[object]:
    model_like = st.fixed_dictionaries(
        {"class_name": CLASS_NAMES, "config": JSON_VALUES},
        optional={"module": MODULES, "registered_name": JSON_VALUES},
    )
    return st.one_of(JSON_VALUES, model_like, mutated(config))


def assert_model_error_names_the_right_file(document: object) -> None:
    with tempfile.TemporaryDirectory() as folder:
        json_path, weights_path = Path(folder) / "model.json", Path(folder) / "model.h5"
        json_path.write_text(json.dumps(document))
        with pytest.raises(ModelError) as error:
            load_model(json_path, weights_path)
    text = str(error.value)
    assert_one_line(text)
    # Only a model.json that describes an MNIST classifier gets as far as the missing weights.
    assert text.startswith(f"{json_path}: ") or text == f"{weights_path}: no such file", text


@settings(max_examples=150, **SETTINGS)
@given(st.data())
def test_any_json_is_a_model_or_one_line_naming_model_json(model_config, data):
    assert_model_error_names_the_right_file(data.draw(any_model_json(model_config)))


def test_a_record_dtype_with_long_field_names_is_one_short_line():
    # found by test_check_images_answers_any_array on 2026-12-03: the whole dtype was quoted
    fields = [(f"field{'x' * 60}{i}", "?") for i in range(6)]
    array = np.zeros((28, 28), dtype=fields)
    with pytest.raises(InputError) as refused:
        check_each_image(array, "batch.npy")
    assert_one_line_about(refused.value, "batch.npy")
    assert str(refused.value).startswith("batch.npy: holds records ([('field")
    assert "...)" in str(refused.value)
