"""mnist-serve: every endpoint and every kind of bad input in-process (FastAPI's TestClient on
an untrained model built here), the batcher with a stand-in model, the refusal of a model.json
with a Lambda layer, and (slow) the real server in a subprocess."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import json
import select
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import keras
import numpy as np
import pytest
import yaml
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageDraw

from mnist_dvc import numerics
from mnist_dvc.architectures import build_model
from mnist_dvc.export import export_onnx
from mnist_dvc.inputs import image_from_bytes
from mnist_dvc.model import save_model
from mnist_dvc.params import load_params
from mnist_dvc.serving.app import create_app
from mnist_dvc.serving.background import ServerDidNotStart, serve_in_background
from mnist_dvc.serving.batching import Batcher
from mnist_dvc.serving.bodies import MAX_BODY_BYTES, MAX_INSTANCES
from mnist_dvc.serving.card import model_card
from mnist_dvc.serving.cli import main as serve_main
from mnist_dvc.serving.engines import load_engine
from tests.helpers import ENV, REPO_ROOT, missing_prerequisite
from tests.servers import free_port

PREDICT_URLS = ("/predict", "/v1/models/mnist-cnn:predict")


# --- a served model, built here ---


def write_project(root: Path) -> Path:
    """root/models/model.{json,h5,onnx} of an untrained notebook CNN, with a dvc.lock whose
    train, evaluate and export stages name them and a metrics.json, as in a checkout after
    `dvc pull`."""
    keras.utils.set_random_seed(1)
    model = build_model((28, 28, 1), load_params(REPO_ROOT / "params.yaml").train.model)
    models = root / "models"
    save_model(model, models / "model.json", models / "model.h5")
    export_onnx(model, models / "model.onnx")
    (root / "metrics.json").write_text(json.dumps({"loss": 2.3, "accuracy": 0.1234}))

    def entries(*paths: str) -> list[dict]:
        return [{"path": path, "hash": "md5", "md5": md5(root / path)} for path in paths]

    pair = ("models/model.json", "models/model.h5")
    lock = {"schema": "2.0", "stages": {
        "train": {"cmd": "python -m stages.train", "outs": entries(*pair)},
        "evaluate": {"cmd": "python -m stages.evaluate", "deps": entries(*pair),
                     "outs": entries("metrics.json")},
        "export": {"cmd": "python -m stages.export", "deps": entries(*pair),
                   "outs": entries("models/model.onnx")},
    }}  # fmt: skip
    (root / "dvc.lock").write_text(yaml.safe_dump(lock))
    made = {"model_h5_md5": md5(models / "model.h5"), **numerics.provenance("portable")}
    (models / "provenance.json").write_text(json.dumps(made))
    return models


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    return write_project(tmp_path_factory.mktemp("project"))


@pytest.fixture(scope="module")
def predictor(model_dir):
    return load_engine(model_dir, "onnx")


@pytest.fixture(scope="module")
def client(predictor, model_dir) -> Iterator[TestClient]:
    with TestClient(create_app(predictor, model_card(model_dir, "onnx"))) as client:
        yield client


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


# --- endpoints ---


def test_healthz(client):
    answer = client.get("/healthz")
    assert answer.status_code == 200
    assert answer.json() == {"status": "ok"}


def test_the_page_is_self_contained(client):
    answer = client.get("/")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/html")
    html = answer.text
    assert '<canvas id="pad"' in html and "pointerdown" in html and 'id="clear"' in html
    # Nothing from elsewhere: no absolute URLs at all, and the browser is told so.
    assert "http://" not in html and "https://" not in html and "//cdn" not in html
    assert "@import" not in html and "<link" not in html and "src=" not in html
    assert answer.headers["content-security-policy"].startswith("default-src 'self'")


def test_openapi_is_served_and_docs_need_no_cdn(client):
    spec = client.get("/openapi.json").json()
    for url in PREDICT_URLS:
        body = spec["paths"][url]["post"]["requestBody"]["content"]
        assert set(body) == {"application/json", "multipart/form-data"}
    assert {"/healthz", "/model"} <= set(spec["paths"])
    # Swagger UI and ReDoc would load scripts from a CDN: they are off.
    assert client.get("/docs").status_code == 404
    assert client.get("/redoc").status_code == 404


def test_model_says_which_model_it_serves(client, model_dir):
    card = client.get("/model").json()
    assert card["engine"] == "onnx"
    (served,) = card["files"]
    assert Path(served["path"]).name == "model.onnx"
    assert served["md5"] == served["dvc_lock_md5"] == md5(model_dir / "model.onnx")
    assert served["matches_dvc_lock"] is True
    assert card["dvc_lock"]["matches"] is True
    assert card["metrics"]["accuracy"] == 0.1234
    assert card["metrics"]["note"] == "test-set metrics of the served model"
    keras_card = model_card(model_dir, "keras")
    assert [Path(f["path"]).name for f in keras_card["files"]] == ["model.json", "model.h5"]
    assert all(f["matches_dvc_lock"] for f in keras_card["files"])
    assert card["batching"]["enabled"] is True
    assert card["limits"] == {"max_body_bytes": MAX_BODY_BYTES, "max_instances": MAX_INSTANCES}


def test_model_card_without_dvc_lock_or_metrics(model_dir, tmp_path):
    shutil.copytree(model_dir, tmp_path / "models")
    card = model_card(tmp_path / "models", "keras")
    assert card["dvc_lock"]["matches"] is None
    assert "no dvc.lock" in card["dvc_lock"]["note"]
    assert card["metrics"]["accuracy"] is None
    assert card["provenance"]["made"]["model_h5_md5"] == md5(model_dir / "model.h5")
    assert card["provenance"]["note"].startswith("numerics portable, ")
    (tmp_path / "models" / "provenance.json").unlink()
    assert model_card(tmp_path / "models", "keras")["provenance"]["note"] == (
        "no provenance recorded"
    )
    assert [f["md5"] for f in card["files"]] == [
        md5(model_dir / "model.json"),
        md5(model_dir / "model.h5"),
    ]


def test_model_card_says_when_the_files_are_not_dvc_locks(model_dir, tmp_path):
    shutil.copytree(model_dir, tmp_path / "models")
    lock = yaml.safe_load((model_dir.parent / "dvc.lock").read_text())
    lock["stages"]["train"]["outs"][1]["md5"] = "0" * 32  # model.h5 retrained since
    (tmp_path / "dvc.lock").write_text(yaml.safe_dump(lock))
    card = model_card(tmp_path / "models", "keras")
    assert card["dvc_lock"]["matches"] is False
    assert [f["matches_dvc_lock"] for f in card["files"]] == [True, False]
    assert "differ" in card["dvc_lock"]["note"]
    (tmp_path / "dvc.lock").write_text("stages: [unclosed")
    assert "unreadable" in model_card(tmp_path / "models", "keras")["dvc_lock"]["note"]


def test_the_accuracy_shown_is_the_served_models_own(model_dir, tmp_path):
    """After `dvc repro train` without `evaluate`, metrics.json scores the previous model."""
    shutil.copytree(model_dir, tmp_path / "models")
    lock = yaml.safe_load((model_dir.parent / "dvc.lock").read_text())
    (tmp_path / "metrics.json").write_text((model_dir.parent / "metrics.json").read_text())
    lock["stages"]["evaluate"]["deps"][1]["md5"] = "0" * 32  # evaluate scored older weights
    (tmp_path / "dvc.lock").write_text(yaml.safe_dump(lock))
    for engine in ("onnx", "keras"):
        metrics = model_card(tmp_path / "models", engine)["metrics"]
        assert metrics["accuracy"] is None
        assert metrics["note"].startswith("the served model has not been evaluated")


def test_a_stale_onnx_file_is_refused_in_one_line(model_dir, tmp_path, capfd):
    models = tmp_path / "models"
    shutil.copytree(model_dir, models)
    lock = yaml.safe_load((model_dir.parent / "dvc.lock").read_text())
    lock["stages"]["export"]["deps"][1]["md5"] = "0" * 32  # exported from an older model.h5
    (tmp_path / "dvc.lock").write_text(yaml.safe_dump(lock))
    assert serve_main(["--model-dir", str(models), "--port", str(free_port())]) == 1
    assert capfd.readouterr().err == (
        f"mnist-serve: error: {models / 'model.onnx'}: exported from another model.h5 (dvc.lock's "
        "export stage): run `dvc repro export`, or serve model.json + model.h5 with --engine "
        "keras\n"
    )
    (models / "model.onnx").unlink()
    (tmp_path / "dvc.lock").unlink()
    assert serve_main(["--model-dir", str(models), "--port", str(free_port())]) == 1
    assert capfd.readouterr().err == (
        f"mnist-serve: error: {models / 'model.onnx'}: no such file: make it with `dvc repro "
        "export` (or `dvc pull export`), or serve model.json + model.h5 with --engine keras\n"
    )


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ("--port=99999", "argument --port: 99999: must be from 1 to 65535"),
        ("--max-batch=0", "argument --max-batch: 0: must be from 1 to 4096"),
        ("--threads=-1", "argument --threads/--tf-threads: -1: must be from 0 to 256"),
        ("--engine=torch", "argument --engine: invalid choice: 'torch'"),
    ],
)
def test_bad_options_are_one_line(model_dir, option, message, capfd):
    with pytest.raises(SystemExit) as exit_:
        serve_main(["--model-dir", str(model_dir), option])
    assert exit_.value.code == 2
    err = capfd.readouterr().err.strip().splitlines()
    assert err[-1].startswith(f"mnist-serve: error: {message}"), err


def test_a_model_whose_outputs_are_nan_is_refused_at_start(model_dir, tmp_path, capfd):
    import h5py

    models = tmp_path / "models"
    shutil.copytree(model_dir, models)
    with h5py.File(models / "model.h5", "r+") as h5:
        kernels = []
        h5.visititems(lambda name, item: kernels.append(item) if name.endswith("kernel") else None)
        kernels[-1][...] = np.nan
    assert serve_main(["--model-dir", str(models), "--engine", "keras"]) == 1
    assert capfd.readouterr().err == (
        f"mnist-serve: error: {models / 'model.h5'}: the model gives no finite probabilities "
        "(NaN or infinity: damaged weights?): retrain it (`dvc repro`)\n"
    )


@pytest.mark.parametrize("url", PREDICT_URLS)
def test_instances_are_classified_in_order(client, predictor, url):
    images = digit_images(5)
    answer = client.post(url, json={"instances": images.tolist()})
    assert answer.status_code == 200, answer.text
    got = answer.json()["predictions"]
    want = expected(predictor, images)
    assert len(got) == 5
    for prediction, probabilities in zip(got, want, strict=True):
        assert prediction["digit"] == int(probabilities.argmax())
        assert prediction["probability"] == pytest.approx(probabilities.max(), abs=1e-5)
        np.testing.assert_allclose(prediction["probabilities"], probabilities, atol=1e-5)
        assert sum(prediction["probabilities"]) == pytest.approx(1.0, abs=1e-4)


def test_instances_with_a_channel_axis(client, predictor):
    images = digit_images(2, seed=3)
    answer = client.post("/predict", json={"instances": images[..., None].tolist()})
    assert answer.status_code == 200, answer.text
    got = [p["probabilities"] for p in answer.json()["predictions"]]
    np.testing.assert_allclose(got, expected(predictor, images), atol=1e-5)


@pytest.mark.parametrize(
    ("kind", "dark_on_light", "size"),
    [("PNG", True, (240, 320)), ("JPEG", False, (1000, 700)), ("PNG", False, (28, 28))],
)
def test_an_uploaded_image_is_read_as_mnist_predict_reads_it(
    client, predictor, kind, dark_on_light, size
):
    data = encoded(drawn_digit(size, dark_on_light), kind)
    answer = client.post("/predict", files={"file": (f"digit.{kind.lower()}", data)})
    assert answer.status_code == 200, answer.text
    (prediction,) = answer.json()["predictions"]
    want = expected(predictor, image_from_bytes(data, "digit")[None])[0]
    np.testing.assert_allclose(prediction["probabilities"], want, atol=1e-5)
    assert prediction["digit"] == int(want.argmax())


# --- bad input ---


def png(width: int, height: int, rows: int) -> bytes:
    """A greyscale PNG that says it is width x height; `rows` rows of data are really there."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    packer = zlib.compressobj(9)
    row = b"\0" * (width + 1)  # filter byte + black pixels: compresses ~1000:1
    data = b"".join(packer.compress(row) for _ in range(rows)) + packer.flush()
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")
    )


def instances(value) -> bytes:
    return json.dumps({"instances": value}).encode()


ONE = digit_images(1)[0].tolist()
BAD_JSON = {
    "not JSON": (b"{instances: [", 400, "not JSON"),
    "empty body": (b"", 400, "empty body"),
    "blank body": (b"  \n", 400, "empty body"),
    "not an object": (b"[1, 2]", 422, "instances"),
    "no instances": (b'{"inputs": []}', 422, "instances"),
    "instances not a list": (b'{"instances": "7"}', 422, "instances"),
    "no instance": (instances([]), 422, "empty"),
    "one image not in a list": (instances(ONE), 422, "(28, 28)"),
    "wrong shape": (instances([[[0.5] * 32] * 32] * 3), 422, "32"),
    "ragged": (instances([ONE, ONE[:27]]), 422, "one shape"),
    "strings": (instances([[["0.5"] * 28] * 28]), 422, "numbers"),
    "nulls": (instances([[[None] * 28] * 28]), 422, "numbers"),
    "booleans": (instances([[[True] * 28] * 28]), 422, "numbers"),
    "one boolean among the numbers": (
        instances([[[0.5] * 28] * 27 + [[True] + [0.5] * 27]]),
        422,
        "numbers",
    ),
    "NaN": (instances([[[0.5] * 28] * 28]).replace(b"0.5", b"NaN", 1), 422, "NaN"),
    "Infinity": (instances([[[0.5] * 28] * 28]).replace(b"0.5", b"-Infinity", 1), 422, "Infinity"),
    "overflow to infinity": (instances([[[0.5] * 28] * 28]).replace(b"0.5", b"1e999", 1), 422, ""),
    "over 1": (instances([[[255] * 28] * 28]), 422, ""),
    "negative": (instances([[[-0.5] * 28] * 28]), 422, ""),
    "too many instances": (instances([[[0] * 28] * 28] * (MAX_INSTANCES + 1)), 422, "at most"),
    "nested too deep": (b"[" * 100_000 + b"]" * 100_000, 400, "not JSON"),
}


@pytest.mark.parametrize("case", BAD_JSON, ids=list(BAD_JSON))
def test_bad_json_is_a_4xx_naming_the_problem(client, case):
    body, status, words = BAD_JSON[case]
    answer = client.post("/predict", content=body, headers={"content-type": "application/json"})
    assert answer.status_code == status, answer.text
    detail = answer.json()["detail"]
    assert isinstance(detail, str) and detail and "\n" not in detail
    assert words in detail
    assert "Traceback" not in answer.text


def test_nan_anywhere_is_refused(client):
    image = [[0.0] * 28 for _ in range(28)]
    text = json.dumps({"instances": [image]}).replace("0.0", "NaN", 1)
    answer = client.post("/predict", content=text, headers={"content-type": "application/json"})
    assert answer.status_code == 422
    assert "NaN" in answer.json()["detail"]


BAD_UPLOADS = {
    "not an image": (b"just some text, not a picture", 422, "not"),
    "empty file": (b"", 400, "empty"),
    "truncated PNG": (encoded(drawn_digit(), "PNG")[:200], 422, ""),
    "decompression bomb": (png(30_000, 30_000, rows=4), 422, "pixels"),
}


@pytest.mark.parametrize("case", BAD_UPLOADS, ids=list(BAD_UPLOADS))
def test_bad_uploads_are_a_4xx_naming_the_problem(client, case):
    data, status, words = BAD_UPLOADS[case]
    answer = client.post("/predict", files={"file": ("upload.png", data)})
    assert answer.status_code == status, answer.text
    detail = answer.json()["detail"]
    assert isinstance(detail, str) and detail and words in detail


def test_a_real_bomb_is_refused_quickly(client):
    """A complete 12000x12000 PNG: 700 KB that would decode to 144 MB."""
    data = png(12_000, 12_000, rows=12_000)
    assert len(data) < 1 << 20
    started = time.monotonic()
    answer = client.post("/predict", files={"file": ("bomb.png", data)})
    assert answer.status_code == 422, answer.text
    assert time.monotonic() - started < 5


def test_a_form_without_the_file_field(client):
    answer = client.post("/predict", data={"image": "x"}, files={"other": ("a.png", b"x")})
    assert answer.status_code == 400
    assert "file" in answer.json()["detail"]


def test_another_content_type(client):
    answer = client.post("/predict", content=b"7", headers={"content-type": "text/plain"})
    assert answer.status_code == 415
    assert "application/json" in answer.json()["detail"]


def test_a_body_over_the_limit_is_refused_by_its_length(client):
    body = b"{" + b" " * MAX_BODY_BYTES + b"}"
    answer = client.post("/predict", content=body, headers={"content-type": "application/json"})
    assert answer.status_code == 413
    assert "MiB" in answer.json()["detail"]


def test_a_chunked_body_is_cut_off_at_the_limit(client):
    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit counts the bytes read
        for _ in range(64):
            yield b" " * (256 << 10)  # 16 MiB in all, twice the limit

    answer = client.post("/predict", content=chunks(), headers={"content-type": "application/json"})
    assert answer.status_code == 413
    assert "MiB" in answer.json()["detail"]


def test_bad_requests_do_not_disturb_good_ones(client, predictor):
    images = digit_images(1)
    for body, _, _ in BAD_JSON.values():
        client.post("/predict", content=body, headers={"content-type": "application/json"})
    answer = client.post("/predict", json={"instances": images.tolist()})
    assert answer.status_code == 200
    np.testing.assert_allclose(
        answer.json()["predictions"][0]["probabilities"], expected(predictor, images)[0], atol=1e-5
    )


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.integers()
    | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=30,
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(value=json_values)
def test_no_json_makes_the_server_fail(client, value):
    for body in ({"instances": value}, value):
        answer = client.post("/predict", json=body)
        assert answer.status_code in (200, 400, 422), answer.text
        assert "detail" in answer.json() or "predictions" in answer.json()


def test_a_model_that_does_not_answer_in_time_is_a_503(model_dir):
    def stuck(images: np.ndarray) -> np.ndarray:
        time.sleep(1.0)
        return np.zeros((len(images), 10), np.float32)

    app = create_app(stuck, model_card(model_dir, "onnx"), answer_timeout_s=0.2)
    with TestClient(app) as client:
        answer = client.post("/predict", json={"instances": digit_images(1).tolist()})
    assert answer.status_code == 503
    assert "retry" in answer.json()["detail"]


# --- the batcher ---


class CountingModel:
    """Stands in for the model: slow enough for requests to pile up; remembers its batches."""

    def __init__(self, delay_s: float = 0.02) -> None:
        self.delay_s = delay_s
        self.batches: list[int] = []
        self.thread_ids: set[int] = set()

    def __call__(self, images: np.ndarray) -> np.ndarray:
        self.batches.append(len(images))
        self.thread_ids.add(threading.get_ident())
        time.sleep(self.delay_s)
        # Row i's "probabilities": the image's mean in column 0, so each answer is checkable.
        out = np.zeros((len(images), 10), np.float32)
        out[:, 0] = images.reshape(len(images), -1).mean(axis=1)
        return out


async def _many(batcher: Batcher, count: int) -> list[np.ndarray]:
    images = [np.full((1 + i % 3, 28, 28), i, np.float32) for i in range(count)]
    results = await asyncio.gather(*(batcher.predict(x) for x in images))
    for i, result in enumerate(results):
        assert result.shape == (1 + i % 3, 10)
        assert (result[:, 0] == i).all()  # each request got its own rows back
    return results


def test_concurrent_requests_share_model_calls_off_the_event_loop():
    model = CountingModel()
    batcher = Batcher(model, max_batch=64)
    batcher.start()
    try:
        asyncio.run(_many(batcher, 100))
    finally:
        batcher.stop()
    assert sum(model.batches) == sum(1 + i % 3 for i in range(100))
    assert len(model.batches) < 20  # 100 requests, a handful of calls
    assert max(model.batches) <= 64  # at most max_batch images per call
    assert threading.get_ident() not in model.thread_ids


def test_without_batching_every_request_is_a_call():
    model = CountingModel(delay_s=0.001)
    batcher = Batcher(model, batching=False)
    batcher.start()
    try:
        asyncio.run(_many(batcher, 30))
    finally:
        batcher.stop()
    assert model.batches == [1 + i % 3 for i in range(30)]


def test_a_failing_model_fails_its_requests_and_not_the_worker():
    calls = []

    def flaky(images: np.ndarray) -> np.ndarray:
        calls.append(len(images))
        if len(calls) == 1:
            raise RuntimeError("out of memory")
        return np.zeros((len(images), 10), np.float32)

    batcher = Batcher(flaky)
    batcher.start()

    async def run() -> None:
        with pytest.raises(RuntimeError, match="out of memory"):
            await batcher.predict(np.zeros((1, 28, 28), np.float32))
        assert (await batcher.predict(np.zeros((2, 28, 28), np.float32))).shape == (2, 10)

    try:
        asyncio.run(run())
    finally:
        batcher.stop()


# --- the command ---


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


@pytest.mark.parametrize("kind", ["console script", "module"])
def test_a_model_with_a_lambda_layer_is_refused_in_one_line(model_dir, tmp_path, kind):
    models = tmp_path / "models"
    shutil.copytree(model_dir, models)
    config = json.loads((models / "model.json").read_text())
    lam = keras.layers.Lambda(lambda x: x * 2)
    lam.build((None, 26, 26, 32))
    config["config"]["layers"].insert(2, keras.saving.serialize_keras_object(lam))
    (models / "model.json").write_text(json.dumps(config))
    run = subprocess.run(
        [*serve_command(kind), "--model-dir", str(models), "--port", str(free_port()),
         "--engine", "keras"],
        env=ENV, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == 1
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1, run.stderr
    assert lines[0].startswith(f"mnist-serve: error: {models / 'model.json'}: refused")
    assert "Lambda" in lines[0]
    assert run.stdout == ""


def test_a_missing_model_is_one_line(tmp_path, capfd):
    assert serve_main(["--model-dir", str(tmp_path / "nowhere"), "--engine", "keras"]) == 1
    out, err = capfd.readouterr()
    assert (out, err) == (
        "",
        f"mnist-serve: error: {tmp_path / 'nowhere' / 'model.json'}: cannot read a model from "
        "it (No such file or directory)\n",
    )


# --- the real server (slow: starts a process) ---


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


@pytest.mark.slow
def test_a_server_that_cannot_start_is_reported_with_its_own_line(tmp_path):
    log = tmp_path / "serve.log"
    missing = tmp_path / "nowhere" / "model.onnx"
    args = ["--model-dir", str(missing.parent)]
    with pytest.raises(ServerDidNotStart) as raised, serve_in_background(args, log=log, env=ENV):
        pytest.fail("the block must not run")
    assert str(raised.value).startswith("mnist-serve exited 1: ")
    assert f"mnist-serve: error: {missing}: no such file: make it with" in str(raised.value)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["console script", "module"])
def test_the_real_server_answers_and_stops(model_dir, predictor, kind):
    images = digit_images(3)
    with serving(model_dir, kind=kind) as url:
        assert httpx.get(f"{url}/healthz").json() == {"status": "ok"}
        assert "<canvas" in httpx.get(f"{url}/").text
        answer = httpx.post(
            f"{url}/v1/models/mnist-cnn:predict", json={"instances": images.tolist()}
        )
        got = [p["probabilities"] for p in answer.json()["predictions"]]
        np.testing.assert_allclose(got, expected(predictor, images), atol=1e-5)
        upload = encoded(drawn_digit(), "PNG")
        answer = httpx.post(f"{url}/predict", files={"file": ("seven.png", upload)})
        assert answer.status_code == 200
        assert httpx.get(f"{url}/model").json()["dvc_lock"]["matches"] is True


@pytest.mark.slow
def test_the_real_server_refuses_a_huge_body_before_reading_it(model_dir):
    with serving(model_dir) as url:
        port = int(url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(
                b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Content-Length: 1000000000\r\n\r\n{"
            )  # a gigabyte announced, one byte sent: the answer comes anyway
            head = sock.recv(4096).decode()
        assert head.startswith("HTTP/1.1 413"), head
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(
                b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n"
            )
            chunk = b"100000\r\n" + b" " * (1 << 20) + b"\r\n"  # 1 MiB chunks, no end
            sent, head = 0, ""
            while sent < 64 and not head:
                with contextlib.suppress(OSError):  # closed by the server while we send
                    sock.sendall(chunk)
                sent += 1
                if select.select([sock], [], [], 0.05)[0]:  # an answer before the end
                    head = sock.recv(4096).decode()
        assert head.startswith("HTTP/1.1 413"), head
        assert "connection: close" in head.lower()
        assert sent < 64  # answered while the body was still coming
        assert httpx.get(f"{url}/healthz").status_code == 200  # still serving others


@pytest.mark.slow
def test_the_load_benchmark_runs_end_to_end(model_dir, tmp_path):
    out = tmp_path / "serve.json"
    run = subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / "bench_serve.py"), "--model-dir",
         str(model_dir), "--seconds", "1", "--warmup", "0.5", "--clients", "1,4", "--out",
         str(out)],
        env=ENV, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    document = json.loads(out.read_text())
    assert document["machine"]["nproc"] >= 1 and document["machine"]["cpu"]
    rows = document["results"]
    configs = ["onnx, fast path", "keras, fast path", "before: keras, h11, asyncio"]
    assert [(row["config"], row["clients"]) for row in rows] == [
        (config, clients) for config in configs for clients in (1, 4)
    ]
    assert [(row["instances"], row["clients"]) for row in document["big_requests"]] == [
        (256, 1), (256, 2),
    ]  # fmt: skip
    for row in rows + document["big_requests"]:
        assert row["requests"] > 0 and row["errors"] == 0 and row["batching"]
        assert 0 < row["p50_ms"] <= row["p99_ms"]
        assert row["predictions_per_s"] == round(row["rps"] * row["instances"], 1)
    assert [c["threads"] for c in document["onnx_runtime_alone"]] == [1, 2]
    assert all(c["images_per_s"] > 0 for c in document["onnx_runtime_alone"])
    assert set(document["big_request_ratio"]) == {"vs 1 thread(s)", "vs 2 thread(s)"}


@pytest.mark.slow
def test_request_heads_that_do_not_arrive_in_time_get_a_408_and_are_closed(model_dir):
    """A slowloris: connections that send half a request head, or nothing, are answered 408
    and closed once --head-timeout passes, while the server keeps answering others."""
    with serving(model_dir, "--head-timeout", "1") as url:
        port = int(url.rsplit(":", 1)[1])
        with contextlib.ExitStack() as stack:
            slow = []
            for i in range(21):
                sock = stack.enter_context(socket.create_connection(("127.0.0.1", port)))
                sock.settimeout(15)
                if i:  # the first sends nothing at all
                    sock.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: app")
                slow.append(sock)
            assert httpx.get(f"{url}/healthz").status_code == 200  # not blocked meanwhile
            for sock in slow:
                answer = b""
                while chunk := sock.recv(4096):  # until the server closes it
                    answer += chunk
                head, _, body = answer.partition(b"\r\n\r\n")
                assert head.startswith(b"HTTP/1.1 408"), answer
                assert "did not arrive within 1 s" in json.loads(body)["detail"]
        assert httpx.get(f"{url}/healthz").status_code == 200


def process_memory_mb(pid: int) -> dict[str, float]:
    """The server's resident memory now and at its peak (Linux /proc)."""
    status = Path(f"/proc/{pid}/status").read_text()
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    return {key: int(fields[key].split()[0]) / 1024 for key in ("VmRSS", "VmHWM")}


UPLOAD_PEAK_MB = 800  # docs/serving.md: two decodes at once, whatever arrives together


@pytest.mark.slow
def test_eight_huge_uploads_at_once_stay_in_the_memory_budget_and_give_it_back(model_dir, tmp_path):
    """Eight concurrent 5000x5000 RGBA PNGs (25 Mpixel, the most accepted) are all answered;
    the server's peak memory stays in the documented budget and it returns to what it used
    before. (Measured: 100 MB idle, a 494 MB peak, 105 MB after.)"""
    image = Image.new("RGBA", (5000, 5000), (0, 0, 0, 0))
    ImageDraw.Draw(image).line([(2500, 800), (2500, 4200)], fill=(0, 0, 0, 255), width=500)
    out = io.BytesIO()
    image.save(out, "PNG")  # RGBA, transparent around the stroke
    upload = out.getvalue()
    args = ["--model-dir", str(model_dir)]
    with serve_in_background(args, log=tmp_path / "serve.log", env=ENV) as (url, pid):
        httpx.post(f"{url}/predict", json={"instances": digit_images(1).tolist()})
        before = process_memory_mb(pid)["VmRSS"]
        answers: list[httpx.Response] = []

        def post() -> None:
            files = {"file": ("huge.png", upload)}
            answers.append(httpx.post(f"{url}/predict", files=files, timeout=120))

        threads = [threading.Thread(target=post) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=180)
        assert [a.status_code for a in answers] == [200] * 8
        assert {a.json()["predictions"][0]["digit"] for a in answers} == {
            answers[0].json()["predictions"][0]["digit"]
        }
        memory = process_memory_mb(pid)
        assert memory["VmHWM"] < UPLOAD_PEAK_MB, memory
        assert memory["VmRSS"] < before + 50, (before, memory)


@pytest.mark.slow
def test_both_engines_give_the_same_digits_on_all_test_images(weak_model_dir, real_prepared_dir):
    """ONNX Runtime (the default) and Keras serve the same model: the same digit for each of
    the 10,000 MNIST test images and probabilities within 1e-5, through the engines the server
    runs (mnist_dvc.serving.engines), on a really trained model."""
    from mnist_dvc.prepared import load_split

    images, _labels = load_split(real_prepared_dir, "test")
    images = images.reshape(len(images), 28, 28)
    assert len(images) == 10_000
    onnx, keras_engine = (load_engine(weak_model_dir, e, threads=2) for e in ("onnx", "keras"))
    for start in range(0, len(images), 1000):
        batch = images[start : start + 1000]
        by_onnx, by_keras = onnx(batch), keras_engine(batch)
        np.testing.assert_array_equal(by_onnx.argmax(1), by_keras.argmax(1))
        np.testing.assert_allclose(by_onnx, by_keras, atol=1e-5, rtol=0)
