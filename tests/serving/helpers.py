"""What the serving tests share: an untrained model written as a checkout holds it (with a
dvc.lock and a metrics.json), digit-like images, and `mnist-serve` started on a free port."""

from __future__ import annotations

import hashlib
import io
import json
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import keras
import numpy as np
import pytest
import yaml
from PIL import Image, ImageDraw

from mnist_dvc import provenance
from mnist_dvc.architectures import build_model
from mnist_dvc.export import export_onnx
from mnist_dvc.model import save_model
from mnist_dvc.params import load_params
from mnist_dvc.serving.background import ServerDidNotStart, serve_in_background
from tests.helpers import ENV, REPO_ROOT, missing_prerequisite

PREDICT_URLS = ("/predict", "/v1/models/mnist-cnn:predict")


def write_project(root: Path) -> Path:
    """root/models/model.{json,h5,onnx} of an untrained notebook CNN, with a dvc.lock whose
    train, evaluate and export stages name them and a metrics.json, as in a checkout after
    `dvc pull`."""
    keras.utils.set_random_seed(1)
    model = build_model((28, 28, 1), load_params(REPO_ROOT / "params.yaml").train.model)
    models = root / "models"
    save_model(model, models / "model.json", models / "model.h5")
    export_onnx(model, models / "model.onnx")
    (root / "metrics.json").write_text(
        json.dumps({"loss": 2.3, "accuracy": 0.1234, "ood_accuracy": 0.0987, "ood_loss": 3.1})
    )

    def entries(*paths: str) -> list[dict]:
        return [{"path": path, "hash": "md5", "md5": md5(root / path)} for path in paths]

    pair = ("models/model.json", "models/model.h5")
    lock = {"schema": "2.0", "stages": {
        "train": {"cmd": "python -m stages train", "outs": entries(*pair)},
        "evaluate": {"cmd": "python -m stages evaluate", "deps": entries(*pair),
                     "outs": entries("metrics.json")},
        "export": {"cmd": "python -m stages export", "deps": entries(*pair),
                   "outs": entries("models/model.onnx")},
    }}  # fmt: skip
    (root / "dvc.lock").write_text(yaml.safe_dump(lock))
    made = {"model_h5_md5": md5(models / "model.h5"), **provenance.provenance("portable")}
    (models / "provenance.json").write_text(json.dumps(made))
    return models


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def digit_images(count: int, seed: int = 0) -> np.ndarray:
    """Blurry strokes in [0, 1], roughly digit-like (the model is untrained: any input does)."""
    rng = np.random.default_rng(seed)
    images = np.zeros((count, 28, 28), np.float32)
    for image in images:
        top, left = rng.integers(4, 10, size=2)
        image[top : top + 14, left : left + 3] = rng.random()
        image[top : top + 3, left : left + 12] = 1.0
    return images


def drawn_digit(size: tuple[int, int] = (240, 320), dark_on_light: bool = True) -> Image.Image:
    """A hand-drawn-looking 7, large, as a photo or a scan would hold it."""
    ink, paper = (20, 235) if dark_on_light else (250, 10)
    image = Image.new("L", size, paper)
    draw = ImageDraw.Draw(image)
    w, h = size
    draw.line([(w * 0.25, h * 0.2), (w * 0.75, h * 0.2), (w * 0.4, h * 0.85)], fill=ink, width=24)
    return image


def encoded(image: Image.Image, kind: str) -> bytes:
    out = io.BytesIO()
    image.convert("RGB").save(out, kind)
    return out.getvalue()


def expected(predictor, images: np.ndarray) -> np.ndarray:
    return np.asarray(predictor(np.asarray(images, np.float32)))


def serve_commands() -> dict[str, list[str]]:
    """`mnist-serve` (the console script `make setup` installs) and `python -m
    mnist_dvc.serving`."""
    script = Path(sys.executable).parent / "mnist-serve"
    return {
        "console script": [str(script)] if script.exists() else [],
        "module": [sys.executable, "-m", "mnist_dvc.serving"],
    }


def serve_command(kind: str) -> list[str]:
    command = serve_commands()[kind]
    if not command:
        missing_prerequisite("mnist-serve is not installed: run `make setup` (pip install -e .)")
    return command


@contextmanager
def serving(model_dir: Path, *options: str, kind: str = "module") -> Iterator[str]:
    """`mnist-serve --model-dir model_dir` on a free port of 127.0.0.1 until the block ends;
    stopped by its PID (SIGTERM, then SIGKILL), whatever happens in the block."""
    log = model_dir.parent / f"serve-{time.monotonic_ns()}.log"
    args = ["--model-dir", str(model_dir), *options]
    try:
        with serve_in_background(args, log=log, command=serve_command(kind), env=ENV) as (url, _):
            yield url
    except ServerDidNotStart as error:
        pytest.fail(str(error))
