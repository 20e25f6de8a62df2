"""`mnist-predict` on real MNIST test digits written out as images, and on bad input."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from mnist_dvc import mnist
from mnist_dvc.idx import read_idx
from mnist_dvc.model import load_model
from mnist_dvc.predict import mnist_like
from tests.helpers import ENV, run_stage_module, write_params

COUNT = 100


@pytest.fixture(scope="module")
def model_dir(real_prepared_dir, tmp_path_factory):
    work = tmp_path_factory.mktemp("predict")
    (work / "data").mkdir()
    (work / "data" / "prepared").symlink_to(real_prepared_dir)
    write_params(work / "params.yaml", epochs=1, train_images=4000)
    assert run_stage_module("train", work).returncode == 0
    return work / "models"


@pytest.fixture(scope="module")
def digits(real_raw_dir):
    images = read_idx(real_raw_dir / mnist.TEST_IMAGES.name, ndim=3)[:COUNT]
    return images


@pytest.fixture(scope="module")
def own_predictions(model_dir, digits):
    model = load_model(model_dir / "model.json", model_dir / "model.h5")
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
    unchanged = [np.array_equal(mnist_like(image), image / np.float32(255)) for image in digits]
    assert np.mean(unchanged) > 0.75  # the rest move by a pixel: their centre of mass rounds
    assert not mnist_like(np.zeros((28, 28), np.uint8)).any()  # a blank stays blank


def test_png_digits_agree_with_the_model(model_dir, digits, own_predictions, tmp_path):
    paths = []
    for i, image in enumerate(digits):
        paths.append(tmp_path / f"{i:03d}.png")
        Image.fromarray(image).save(paths[-1])
    run = predict_cli(model_dir, *paths)
    assert run.returncode == 0, run.stderr[-2000:]
    result = json.loads(run.stdout)
    assert [p["input"] for p in result["predictions"]] == [str(p) for p in paths]
    predicted = np.array([p["digit"] for p in result["predictions"]])
    np.testing.assert_array_equal(predicted, own_predictions)
    assert all(0.0 <= p["probability"] <= 1.0 for p in result["predictions"])
    assert result["errors"] == []


def test_large_dark_on_light_jpegs_mostly_agree(model_dir, digits, own_predictions, tmp_path):
    paths = []
    for i, image in enumerate(digits):
        paths.append(tmp_path / f"{i:03d}.jpg")
        big = Image.fromarray(255 - image).resize((112, 112), Image.Resampling.BICUBIC)
        big.convert("RGB").save(paths[-1], quality=90)
    run = predict_cli(model_dir, *paths)
    predicted = np.array([p["digit"] for p in json.loads(run.stdout)["predictions"]])
    agreement = float((predicted == own_predictions).mean())
    assert agreement >= 0.95, agreement  # resampling and JPEG change a few pixels


def test_npy_batch_and_plain_output(model_dir, digits, own_predictions, tmp_path):
    batch = tmp_path / "batch.npy"
    np.save(batch, digits[:10])
    run = predict_cli(model_dir, batch, json_output=False)
    assert run.returncode == 0, run.stderr[-2000:]
    lines = run.stdout.strip().splitlines()
    assert len(lines) == 10
    for i, (line, digit) in enumerate(zip(lines, own_predictions[:10], strict=True)):
        name, _, rest = line.partition(": ")
        assert name == f"{batch}[{i}]"
        assert rest.startswith(f"{digit} (")


def test_bad_inputs_are_named_and_the_rest_classified(model_dir, digits, tmp_path):
    good = tmp_path / "good.png"
    Image.fromarray(digits[0]).save(good)
    missing = tmp_path / "missing.png"
    not_an_image = tmp_path / "notes.png"
    not_an_image.write_text("not a picture")
    wrong_shape = tmp_path / "wrong.npy"
    np.save(wrong_shape, np.zeros((3, 32, 32), np.uint8))
    run = predict_cli(model_dir, missing, good, not_an_image, wrong_shape, json_output=False)
    assert run.returncode == 1
    assert run.stdout.strip().splitlines()[0].startswith(f"{good}: ")
    errors = run.stderr.strip().splitlines()[-3:]
    assert errors[0] == f"predict: error: {missing}: no such file"
    assert errors[1].startswith(f"predict: error: {not_an_image}: not a readable image")
    assert errors[2] == f"predict: error: {wrong_shape}: shape (3, 32, 32), expected (N, 28, 28)"


def test_missing_model_is_one_line(tmp_path, digits):
    good = tmp_path / "good.png"
    Image.fromarray(digits[0]).save(good)
    run = predict_cli(tmp_path / "nowhere", good)
    assert run.returncode == 1
    assert run.stderr.strip().splitlines()[-1].startswith("predict: error: ")
    assert "nowhere/model.json" in run.stderr
