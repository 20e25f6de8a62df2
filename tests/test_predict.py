"""`mnist-predict` on real MNIST test digits written out as images, and on bad input: every
input gets a prediction or one line naming it, and `--json` always prints one document."""

from __future__ import annotations

import io
import json
import os
import struct
import subprocess
import sys
import tracemalloc
import zlib

import numpy as np
import pytest
from PIL import Image

from mnist_dvc import mnist
from mnist_dvc import predict as predict_module
from mnist_dvc.digits import InputError, mnist_like
from mnist_dvc.idx import read_idx
from mnist_dvc.image_files import image_from_bytes
from mnist_dvc.inputs import load_inputs
from mnist_dvc.model import load_model, save_model
from mnist_dvc.npy_batches import check_each_image, check_images, images_from_npy
from mnist_dvc.predict import main
from tests.helpers import ENV

COUNT = 100


@pytest.fixture(scope="module")
def digits(real_raw_dir):
    images = read_idx(real_raw_dir / mnist.TEST_IMAGES.name, ndim=3)[:COUNT]
    return images


@pytest.fixture(scope="module")
def own_predictions(weak_model_dir, digits):
    model = load_model(weak_model_dir / "model.json", weak_model_dir / "model.h5")
    return model.predict((digits / 255.0).astype(np.float32)[..., None], verbose=0).argmax(axis=1)


def predict_cli(model_dir, *inputs, json_output=True):
    args = [
        sys.executable,
        "-m",
        "mnist_dvc.predict",
        "--model-dir",
        str(model_dir),
        *map(str, inputs),
    ]
    if json_output:
        args.append("--json")
    return subprocess.run(args, env=ENV, capture_output=True, text=True, timeout=300)


def test_mnist_digits_are_left_nearly_as_they_are(digits):
    # Those whose darkest pixel is 254, not 255, are stretched by 1/254: a hair.
    unchanged = [np.abs(mnist_like(image) - image / 255).max() < 1.01 / 255 for image in digits]
    assert np.mean(unchanged) > 0.75  # the rest move by a pixel: their centre of mass rounds


@pytest.mark.parametrize(
    ("grey", "reason"),
    [
        (np.zeros((28, 28), np.uint8), "no ink: a blank or uniform image"),
        (np.full((40, 30), 200, np.uint8), "no ink: a blank or uniform image"),
        (np.zeros((1, 1), np.uint8), "1x1 pixels, too small to hold a digit (at least 8x8)"),
    ],
)
def test_an_image_without_ink_is_refused_not_given_a_digit(grey, reason):
    for data in (encoded(Image.fromarray(grey)), encoded(Image.fromarray(255 - grey), "JPEG")):
        with pytest.raises(InputError) as error:
            image_from_bytes(data, "blank.png")
        assert str(error.value).startswith(f"blank.png: {reason}")


def pencil(digit: np.ndarray, ink: int = 170, paper: int = 210) -> np.ndarray:
    """A digit drawn in light pencil on grey paper: dark ink `ink` at its strongest."""
    return np.round(paper - digit.astype(np.float32) * (paper - ink) / 255).astype(np.uint8)


def twelve_bit(digit: np.ndarray) -> Image.Image:
    """The digit as a 12-bit scanner stores it: dark on light, 0-4095 in a 16-bit file."""
    values = np.round((255 - digit.astype(np.float32)) * 4095 / 255).astype(np.uint16)
    return Image.fromarray(values)


def test_faint_and_12_bit_digits_become_what_the_full_contrast_digit_becomes(digits):
    for digit in digits[:20]:
        full = mnist_like(digit)
        light = image_from_bytes(encoded(Image.fromarray(pencil(digit))), "pencil.png")
        assert np.abs(light - full).mean() < 0.02
        scanned = image_from_bytes(encoded(twelve_bit(digit)), "scan.png")
        assert np.abs(scanned - full).mean() < 0.01


@pytest.mark.slow  # trains a model through the train stage
def test_png_digits_agree_with_the_model(weak_model_dir, digits, own_predictions, tmp_path):
    paths = []
    for i, image in enumerate(digits):
        paths.append(tmp_path / f"{i:03d}.png")
        Image.fromarray(image).save(paths[-1])
    run = predict_cli(weak_model_dir, *paths)
    assert run.returncode == 0, run.stderr[-2000:]
    result = json.loads(run.stdout)
    assert [p["input"] for p in result["predictions"]] == [str(p) for p in paths]
    predicted = np.array([p["digit"] for p in result["predictions"]])
    np.testing.assert_array_equal(predicted, own_predictions)
    assert all(0.0 <= p["probability"] <= 1.0 for p in result["predictions"])
    assert result["errors"] == []


@pytest.mark.slow  # trains a model through the train stage
def test_large_dark_on_light_jpegs_mostly_agree(weak_model_dir, digits, own_predictions, tmp_path):
    paths = []
    for i, image in enumerate(digits):
        paths.append(tmp_path / f"{i:03d}.jpg")
        big = Image.fromarray(255 - image).resize((112, 112), Image.Resampling.BICUBIC)
        big.convert("RGB").save(paths[-1], quality=90)
    run = predict_cli(weak_model_dir, *paths)
    predicted = np.array([p["digit"] for p in json.loads(run.stdout)["predictions"]])
    agreement = float((predicted == own_predictions).mean())
    assert agreement >= 0.95, agreement  # resampling and JPEG change a few pixels


@pytest.mark.slow  # trains a model through the train stage
def test_npy_batch_and_plain_output(weak_model_dir, digits, own_predictions, tmp_path):
    batch = tmp_path / "batch.npy"
    np.save(batch, digits[:10])
    run = predict_cli(weak_model_dir, batch, json_output=False)
    assert run.returncode == 0, run.stderr[-2000:]
    lines = run.stdout.strip().splitlines()
    assert len(lines) == 10
    for i, (line, digit) in enumerate(zip(lines, own_predictions[:10], strict=True)):
        name, _, rest = line.partition(": ")
        assert name == f"{batch}[{i}]"
        assert rest.startswith(f"{digit} (")


@pytest.mark.slow  # trains a model through the train stage
def test_bad_inputs_are_named_and_the_rest_classified(weak_model_dir, digits, tmp_path):
    good = tmp_path / "good.png"
    Image.fromarray(digits[0]).save(good)
    missing = tmp_path / "missing.png"
    not_an_image = tmp_path / "notes.png"
    not_an_image.write_text("not a picture")
    wrong_shape = tmp_path / "wrong.npy"
    np.save(wrong_shape, np.zeros((3, 32, 32), np.uint8))
    blank, dot = tmp_path / "blank.png", tmp_path / "dot.png"
    Image.new("L", (64, 64), 230).save(blank)
    Image.new("L", (1, 1), 0).save(dot)
    run = predict_cli(weak_model_dir, missing, good, not_an_image, wrong_shape, blank, dot,
                      json_output=False)  # fmt: skip
    assert run.returncode == 1
    assert len(run.stdout.strip().splitlines()) == 1  # only the good image gets a digit
    assert run.stdout.startswith(f"{good}: ")
    errors = run.stderr.strip().splitlines()[-5:]
    assert errors[0] == f"mnist-predict: error: {missing}: no such file"
    assert errors[1].startswith(f"mnist-predict: error: {not_an_image}: not a readable image")
    assert errors[2] == (
        f"mnist-predict: error: {wrong_shape}: shape (3, 32, 32), expected "
        "(N, 28, 28), (28, 28), (N, 28, 28, 1) or (N, 1, 28, 28)"
    )
    assert errors[3].startswith(f"mnist-predict: error: {blank}: no ink: a blank or uniform image")
    assert errors[4] == (
        f"mnist-predict: error: {dot}: 1x1 pixels, too small to hold a digit (at least 8x8)"
    )


@pytest.mark.slow  # runs mnist-predict in a process
def test_missing_model_is_one_line_and_a_json_document(tmp_path, digits):
    good = tmp_path / "good.png"
    Image.fromarray(digits[0]).save(good)
    run = predict_cli(tmp_path / "nowhere", good)
    assert run.returncode == 1
    line = run.stderr.strip().splitlines()[-1]
    assert line.startswith(f"mnist-predict: error: {tmp_path / 'nowhere' / 'model.json'}: ")
    assert json.loads(run.stdout) == {
        "predictions": [],
        "errors": [line.removeprefix("mnist-predict: error: ")],
    }


def test_a_thread_count_tensorflow_cannot_start_is_one_line_not_a_crash(tmp_path, digits):
    """TF_NUM_INTRAOP_THREADS=-1 was SIGABRT with a C++ stack, 10**9 SIGSEGV."""
    good = tmp_path / "good.png"
    Image.fromarray(digits[0]).save(good)
    args = [sys.executable, "-m", "mnist_dvc.predict", "--model-dir", str(tmp_path), str(good)]
    env = {**ENV, "TF_NUM_INTRAOP_THREADS": "1000000000"}
    run = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)
    assert (run.returncode, run.stdout) == (1, "")
    assert run.stderr.strip() == (
        "mnist-predict: error: TF_NUM_INTRAOP_THREADS is '1000000000': set it to a whole number "
        "of threads from 1 to 1024, or to 0 or unset it for one per core"
    )


# The inputs of the bug report: each gets one line, and the good ones are still classified.


def png_header(width: int, height: int) -> bytes:
    """A PNG that claims width x height pixels and holds almost none: a decompression bomb's
    header, without the gigabytes of zeros it would take to make a real one."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + data))
        return struct.pack(">I", len(data)) + kind + data + crc

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"".join(
        [
            b"\x89PNG\r\n\x1a\n",
            chunk(b"IHDR", header),
            chunk(b"IDAT", zlib.compress(b"\0" * 100)),
            chunk(b"IEND", b""),
        ]
    )


def npy_header_only(path, shape, descr="|u1"):
    with open(path, "wb") as out:
        header = {"descr": descr, "fortran_order": False, "shape": shape}
        np.lib.format.write_array_header_1_0(out, header)
    return path


@pytest.mark.slow  # trains a model through the train stage
def test_the_reports_bad_inputs_each_get_one_line_and_json_keeps_the_rest(
    weak_model_dir, digits, tmp_path
):
    good = tmp_path / "good.png"
    Image.fromarray(digits[0]).save(good)
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_header(40000, 40000))
    strings = tmp_path / "strings.npy"
    np.save(strings, np.full((2, 28, 28), "ink"))
    billion = npy_header_only(tmp_path / "billion.npy", (10**9, 28, 28))
    mixed = tmp_path / "mixed.npy"  # a good image, a NaN, one in 0-255 though it is float
    np.save(mixed, np.stack([digits[1] / 255.0, np.full((28, 28), np.nan), digits[2] * 1.0]))
    run = predict_cli(weak_model_dir, bomb, good, strings, billion, mixed)
    assert run.returncode == 1
    assert "Traceback" not in run.stderr
    document = json.loads(run.stdout)
    assert [p["input"] for p in document["predictions"]] == [str(good), f"{mixed}[0]"]
    assert document["errors"] == [
        f"{bomb}: 1,600,000,000 pixels, over the limit of 25,000,000 (a decompression bomb?)",
        f"{strings}: holds strings (<U3), expected numbers: integers 0-255 or floats 0-1",
        f"{billion}: 1,000,000,000 images, over the limit of 70,000",
        f"{mixed}[1]: holds NaN or infinity",
        f"{mixed}[2]: values from 0.0 to 255.0, expected floats 0-1",
    ]
    errors = [line for line in run.stderr.splitlines() if line.startswith("mnist-predict: error: ")]
    assert errors == [f"mnist-predict: error: {error}" for error in document["errors"]]


@pytest.mark.slow  # trains a model through the train stage
def test_transparent_backgrounds_are_white_paper(weak_model_dir, digits, tmp_path):
    """Dark ink on a transparent background whose hidden colour is black, as RGBA and as a
    palette image: classified as the same ink on white paper, not as a blank image."""
    count = 20
    opaque, rgba, palette = [], [], []
    grey_palette = [0, 0, 0] + [level for i in range(1, 256) for level in [255 - i] * 3]
    for i, digit in enumerate(digits[:count]):
        opaque.append(tmp_path / f"{i:02d}-opaque.png")
        Image.fromarray(255 - digit).save(opaque[-1])
        rgba.append(tmp_path / f"{i:02d}-rgba.png")
        ink = np.zeros((*digit.shape, 4), np.uint8)
        ink[..., 3] = digit  # black, as opaque as the digit is bright
        Image.fromarray(ink).save(rgba[-1])
        palette.append(tmp_path / f"{i:02d}-palette.png")
        indexed = Image.fromarray(digit).convert("P")  # index i is ink of level 255 - i
        indexed.putpalette(grey_palette)
        indexed.save(palette[-1], transparency=0)  # index 0 is black, but transparent
    run = predict_cli(weak_model_dir, *opaque, *rgba, *palette)
    assert run.returncode == 0, run.stderr[-2000:]
    predicted = [p["digit"] for p in json.loads(run.stdout)["predictions"]]
    assert predicted[count : 2 * count] == predicted[:count]
    assert predicted[2 * count :] == predicted[:count]
    for paths in (rgba, palette):
        seen = image_from_bytes(paths[0].read_bytes(), str(paths[0]))
        np.testing.assert_array_equal(seen, image_from_bytes(opaque[0].read_bytes(), "opaque"))


def encoded(image: Image.Image, file_format: str = "PNG", **options) -> bytes:
    out = io.BytesIO()
    image.save(out, file_format, **options)
    return out.getvalue()


def test_decompression_bombs_are_refused_by_their_header():
    for (width, height), pixels in [
        ((40000, 40000), "1,600,000,000"),  # over twice Pillow's own limit: its error
        ((10000, 10000), "100,000,000"),  # over Pillow's limit: its warning
        ((6000, 6000), "6000x6000"),  # under Pillow's, over ours
    ]:
        with pytest.raises(InputError) as error:
            image_from_bytes(png_header(width, height), "big.png")
        assert str(error.value) == (
            f"big.png: {pixels} pixels, over the limit of 25,000,000 (a decompression bomb?)"
        )


@pytest.mark.slow  # trains a model through the train stage
def test_pencil_light_low_contrast_and_12_bit_digits_agree_with_the_model(
    weak_model_dir, digits, own_predictions, tmp_path
):
    """The case that was misread: a 7 in ink 170 on paper 210 came out "1 (0.1202)"."""
    kinds = {
        "pencil": lambda d: Image.fromarray(pencil(d)),
        "low-contrast": lambda d: Image.fromarray(pencil(d, ink=110, paper=70)),  # light on dark
        "12-bit": twelve_bit,
    }
    for kind, draw in kinds.items():
        paths = []
        for i, digit in enumerate(digits):
            paths.append(tmp_path / f"{kind}-{i:03d}.png")
            draw(digit).save(paths[-1])
        run = predict_cli(weak_model_dir, *paths)
        assert run.returncode == 0, run.stderr[-2000:]
        predicted = np.array([p["digit"] for p in json.loads(run.stdout)["predictions"]])
        assert (predicted == own_predictions).mean() >= 0.97, kind


def test_16_bit_grey_is_scaled_not_clipped(digits):
    eight = image_from_bytes(encoded(Image.fromarray(digits[0])), "8.png")
    sixteen_bit = Image.fromarray(digits[0].astype(np.uint16) * 257)
    assert sixteen_bit.mode == "I;16"
    np.testing.assert_array_equal(image_from_bytes(encoded(sixteen_bit), "16.png"), eight)


def test_32_bit_and_float_pixels_are_refused(digits):
    for mode, pixels in [("I", "32-bit integer"), ("F", "floating-point")]:
        data = encoded(Image.fromarray(digits[0]).convert(mode), "TIFF")
        with pytest.raises(InputError, match=f"^scan.tif: {pixels} pixels are not supported"):
            image_from_bytes(data, "scan.tif")


def test_a_photo_is_turned_upright_as_its_exif_says(digits):
    upright = Image.fromarray(255 - digits[0])
    exif = Image.Exif()
    exif[0x0112] = 6  # the camera was turned: show the stored image turned 90 degrees clockwise
    stored = upright.transpose(Image.Transpose.ROTATE_90)  # as the camera stored it
    np.testing.assert_array_equal(
        image_from_bytes(encoded(stored, exif=exif), "photo.png"),
        image_from_bytes(encoded(upright), "upright.png"),
    )


def test_not_an_image_is_one_line():
    with pytest.raises(InputError) as error:
        image_from_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n", "figure.eps")  # Ghostscript's, refused
    assert str(error.value) == (
        "figure.eps: not a readable image (not PNG, JPEG, GIF, BMP, TIFF or WebP)"
    )


# .npy batches: numbers only, scaled as the docstring says, checked before allocating.


def test_integer_batches_of_any_width_are_scaled(digits):
    expected = check_images(digits[:3], "u8.npy")
    np.testing.assert_array_equal(expected, digits[:3] / np.float32(255))
    for dtype in (np.int64, np.int32, np.int16, np.uint16):
        images = check_images(digits[:3].astype(dtype), f"{dtype.__name__}.npy")
        np.testing.assert_array_equal(images, expected)
    floats = digits[:3] / 255.0
    np.testing.assert_allclose(check_images(floats, "f8.npy"), expected)


def test_every_layout_of_a_batch_is_accepted(digits):
    batch = digits[:2]
    expected = check_images(batch, "b.npy")
    for layout in (batch[:, :, :, None], batch[:, None], batch[0]):
        images = check_images(layout, "b.npy")
        np.testing.assert_array_equal(images, expected[: len(images)])


def test_values_out_of_range_are_named_by_image():
    batch = np.zeros((4, 28, 28), np.float32)
    batch[:, 10:18, 12:15] = 1.0  # a stroke of ink on each
    batch[1, 3, 3], batch[2, 0, 0], batch[3, 5, 5] = np.inf, 1.5, -0.25
    loaded = check_each_image(batch, "b.npy")
    assert [name for name, _ in loaded.images] == ["b.npy[0]"]
    assert [str(error) for error in loaded.errors] == [
        "b.npy[1]: holds NaN or infinity",
        "b.npy[2]: values from 0.0 to 1.5, expected floats 0-1",
        "b.npy[3]: values from -0.25 to 1.0, expected floats 0-1",
    ]
    with pytest.raises(InputError) as error:
        check_images(batch, "b.npy")
    assert str(error.value) == "b.npy[1]: holds NaN or infinity (and 2 more)"
    wide = np.zeros((2, 28, 28), np.int32)
    wide[:, 10:18, 12:15] = 255
    wide[1, 0, 0] = 256
    with pytest.raises(InputError) as error:
        check_images(wide, "w.npy")
    assert str(error.value) == "w.npy[1]: values from 0 to 256, expected integers 0-255"


@pytest.mark.parametrize("dtype", [bool, complex, str, bytes, object, "datetime64[s]"])
def test_only_numbers_are_images(dtype):
    with pytest.raises(InputError, match=r"^b\.npy: holds \w.*, expected numbers: integers"):
        check_images(np.zeros((1, 28, 28), dtype), "b.npy")


def test_a_batchs_size_is_checked_from_its_header_before_allocating(tmp_path):
    billion = npy_header_only(tmp_path / "billion.npy", (10**9, 28, 28), descr="<f8")
    tracemalloc.start()
    try:
        with open(billion, "rb") as stream, pytest.raises(InputError) as error:
            images_from_npy(stream, "billion.npy")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert str(error.value) == "billion.npy: 1,000,000,000 images, over the limit of 70,000"
    assert peak < 1 << 20
    truncated = npy_header_only(tmp_path / "short.npy", (10, 28, 28))
    with open(truncated, "rb") as stream, pytest.raises(InputError, match="truncated"):
        images_from_npy(stream, "short.npy")


# The model failing after it loaded: one line naming it, and still one JSON document.


class BrokenModel:
    input_shape = (None, 28, 28, 1)

    def __init__(self, outputs=None, error=None):
        self.outputs, self.error = outputs, error

    def predict(self, batch, verbose=0):
        if self.error:
            raise self.error
        return np.full((len(batch), 10), self.outputs, np.float32)


@pytest.mark.parametrize(
    ("model", "why"),
    [
        (
            BrokenModel(error=RuntimeError("Graph execution error:\n\ntrace\n\nNo NCHW on CPU")),
            "the model cannot classify here: No NCHW on CPU",
        ),
        (BrokenModel(outputs=np.nan), "the model gives NaN or infinite probabilities"),
    ],
)
def test_a_model_that_cannot_classify_is_one_line(
    model, why, digits, tmp_path, monkeypatch, capsys
):
    monkeypatch.setattr(predict_module, "load_model", lambda *paths: model)
    good, bad = tmp_path / "good.png", tmp_path / "bad.png"
    Image.fromarray(digits[0]).save(good)
    bad.write_bytes(b"GIF89a")
    status = main([str(good), str(bad), "--json", "--model-dir", str(tmp_path)])
    out, err = capsys.readouterr()
    assert status == 1
    document = json.loads(out)
    assert document["predictions"] == []
    assert document["errors"][0].startswith(f"{bad}: not a readable image")
    assert document["errors"][1].startswith(f"{tmp_path / 'model.json'}: {why}")
    assert err.count("\n") == 2


def test_a_model_whose_outputs_are_not_probabilities_is_one_line(tmp_path, digits, capsys):
    """Before: a linear last layer printed a "probability" of 18.95."""
    import keras

    model = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(),
                              keras.layers.Dense(10)])  # fmt: skip
    save_model(model, tmp_path / "model.json", tmp_path / "model.h5")
    image = tmp_path / "digit.png"
    Image.fromarray(digits[0]).save(image)
    assert main(["--model-dir", str(tmp_path), str(image)]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err == (
        f"mnist-predict: error: {tmp_path / 'model.json'}: its last layer (Dense) does not end "
        "in a softmax: its outputs are not digit probabilities\n"
    )


def test_a_model_or_an_input_that_is_not_a_regular_file_is_refused_at_once(
    tmp_path, digits, capsys
):
    """Issue 28: model.h5 as a symlink to /dev/zero, an input that is a named pipe: each is
    refused by what it is, before a loader opens it (it would read forever, or wait)."""
    models = tmp_path / "models"
    models.mkdir()
    (models / "model.json").write_text("{}")
    (models / "model.h5").symlink_to("/dev/zero")
    good = tmp_path / "good.png"
    Image.fromarray(digits[0]).save(good)
    assert main(["--model-dir", str(models), str(good)]) == 1
    assert capsys.readouterr().err == (
        f"mnist-predict: error: {models / 'model.h5'}: not a regular file (a character device)\n"
    )
    pipe = tmp_path / "pipe.png"
    os.mkfifo(pipe)
    loaded = load_inputs(pipe)
    assert [str(error) for error in loaded.errors] == [f"{pipe}: not a regular file (a named pipe)"]


# One rule for every kind of input (issue 28 §5 and §7).


@pytest.mark.parametrize("shade", [0, 128, 255])
def test_a_uniform_image_is_refused_alike_as_npy_png_and_json(tmp_path, monkeypatch, capsys, shade):
    """A uniform .npy image got "2 (0.8404)" while the same as a PNG was refused."""
    monkeypatch.setattr(predict_module, "load_model", lambda *paths: BrokenModel(outputs=0.1))
    png, npy = tmp_path / "uniform.png", tmp_path / "uniform.npy"
    Image.new("L", (28, 28), shade).save(png)
    np.save(npy, np.full((1, 28, 28), shade, np.uint8))
    status = main([str(png), str(npy), "--json", "--model-dir", str(tmp_path)])
    document = json.loads(capsys.readouterr().out)
    assert status == 1 and document["predictions"] == []
    reason = (
        "no ink: a blank or uniform image (its darkest mark differs from the paper by 0/255, "
        "at least 16 is read as ink)"
    )
    assert document["errors"] == [f"{png}: {reason}", f"{npy}[0]: {reason}"]
    with pytest.raises(InputError, match=r"^instances\[0\]: no ink: "):
        check_images(np.full((1, 28, 28), shade / 255, np.float32), "instances")


def test_a_faint_npy_image_is_read_as_a_faint_png_is(digits):
    """Ink 20/255 above the paper is ink in either; 10/255 in neither."""
    for ink, readable in ((20, True), (10, False)):
        faint = np.where(digits[0] > 128, ink, 0).astype(np.uint8)
        as_png = io.BytesIO()
        Image.fromarray(faint).save(as_png, "PNG")
        from_png = from_npy = True
        try:
            image_from_bytes(as_png.getvalue(), "faint.png")
        except InputError:
            from_png = False
        from_npy = not check_each_image(faint, "faint.npy").errors
        assert from_png == from_npy == readable


def drawn_seven(side: int, mode: str) -> bytes:
    image = Image.new("L", (side, side), 255)
    from PIL import ImageDraw

    ImageDraw.Draw(image).line(
        [(side * 0.3, side * 0.2), (side * 0.7, side * 0.2), (side * 0.4, side * 0.85)],
        fill=0, width=side // 12,
    )  # fmt: skip
    if mode == "I;16":
        image = image.convert("I").point(lambda v: v * 200).convert("I;16")
    else:
        image = image.convert(mode)
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


@pytest.mark.parametrize("mode", ["1", "P", "I;16"])
def test_large_bilevel_palette_and_16_bit_images_are_read(mode):
    """2048 px or more in modes 1, P or I;16 were "not a readable image (image has wrong
    mode)", the same at 2047 px were read: now both are, and give the same digit."""
    small = image_from_bytes(drawn_seven(2047, mode), "small.png")
    large = image_from_bytes(drawn_seven(2048, mode), "large.png")
    assert np.abs(small - large).max() < 0.35 and abs(float(small.sum() - large.sum())) < 3
