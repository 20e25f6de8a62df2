"""Every endpoint in-process (FastAPI's TestClient on an untrained model built here):
the page, the OpenAPI docs, the model card and what it says, the options, the
predictions for instances and uploads."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from mnist_dvc.image_files import image_from_bytes
from mnist_dvc.serving.bodies import MAX_INSTANCES
from mnist_dvc.serving.body_limit import MAX_BODY_BYTES
from mnist_dvc.serving.card import describe_served
from mnist_dvc.serving.cli import main as serve_main
from mnist_dvc.serving.engines import DEFAULT_ENGINE, ENGINES, load_engine
from tests.servers import free_port
from tests.serving.helpers import (
    PREDICT_URLS,
    digit_images,
    drawn_digit,
    encoded,
    expected,
    md5,
)


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
    assert card["metrics"]["ood_accuracy"] == 0.0987 and card["metrics"]["ood_loss"] == 3.1
    assert card["metrics"]["note"] == "test-set metrics of the served model"
    keras_card = describe_served(model_dir, "keras")
    assert [Path(f["path"]).name for f in keras_card["files"]] == ["model.json", "model.h5"]
    assert all(f["matches_dvc_lock"] for f in keras_card["files"])
    assert card["batching"]["enabled"] is True
    assert card["limits"] == {"max_body_bytes": MAX_BODY_BYTES, "max_instances": MAX_INSTANCES}


def test_model_card_without_dvc_lock_or_metrics(model_dir, tmp_path):
    shutil.copytree(model_dir, tmp_path / "models")
    card = describe_served(tmp_path / "models", "keras")
    assert card["dvc_lock"]["matches"] is None
    assert "no dvc.lock" in card["dvc_lock"]["note"]
    assert card["metrics"]["accuracy"] is None
    assert card["provenance"]["made"]["model_h5_md5"] == md5(model_dir / "model.h5")
    assert card["provenance"]["note"].startswith("numerics portable, ")
    (tmp_path / "models" / "provenance.json").unlink()
    assert describe_served(tmp_path / "models", "keras")["provenance"]["note"] == (
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
    card = describe_served(tmp_path / "models", "keras")
    assert card["dvc_lock"]["matches"] is False
    assert [f["matches_dvc_lock"] for f in card["files"]] == [True, False]
    assert "differ" in card["dvc_lock"]["note"]
    (tmp_path / "dvc.lock").write_text("stages: [unclosed")
    assert "unreadable" in describe_served(tmp_path / "models", "keras")["dvc_lock"]["note"]


def test_records_of_the_wrong_shape_are_said_not_fatal(model_dir, tmp_path):
    """A provenance.json or metrics.json that is not the pipeline's (another type, nested
    deeper than any record) was a traceback at start-up: now /model says so, in one line."""
    shutil.copytree(model_dir, tmp_path / "models")
    lock = yaml.safe_load((model_dir.parent / "dvc.lock").read_text())
    for provenance, metrics, said in [
        ('{"cpu": "x86"}', '{"accuracy": "high", "loss": 1}', "no accuracy (a number)"),
        ("[" * 50_000 + "]" * 50_000, "[" * 50_000 + "]" * 50_000, "nested more than 32 levels"),
    ]:
        (tmp_path / "models" / "provenance.json").write_text(provenance)
        (tmp_path / "metrics.json").write_text(metrics)
        lock["stages"]["evaluate"]["outs"][0]["md5"] = md5(tmp_path / "metrics.json")
        (tmp_path / "dvc.lock").write_text(yaml.safe_dump(lock))
        card = describe_served(tmp_path / "models", "keras")
        assert card["metrics"]["accuracy"] is None
        assert card["metrics"]["note"].startswith(f"metrics.json: {said}"), card["metrics"]
        assert card["provenance"]["made"] is None
        assert card["provenance"]["note"].startswith("models/provenance.json: ")
        assert str(tmp_path) not in json.dumps(card)


def test_every_engine_of_the_table_serves_the_same_model(model_dir):
    """One row per engine: each loads its own files and computes what the others do."""
    images = np.random.default_rng(0).random((4, 28, 28), dtype=np.float32)
    computed = {name: load_engine(model_dir, name)(images) for name in ENGINES}
    for name, engine in ENGINES.items():
        card = describe_served(model_dir, name)
        assert [Path(f["path"]).name for f in card["files"]] == list(engine.files)
        np.testing.assert_allclose(computed[name], computed[DEFAULT_ENGINE], atol=1e-5)


def test_the_accuracy_shown_is_the_served_models_own(model_dir, tmp_path):
    """After `dvc repro train` without `evaluate`, metrics.json scores the previous model."""
    shutil.copytree(model_dir, tmp_path / "models")
    lock = yaml.safe_load((model_dir.parent / "dvc.lock").read_text())
    (tmp_path / "metrics.json").write_text((model_dir.parent / "metrics.json").read_text())
    lock["stages"]["evaluate"]["deps"][1]["md5"] = "0" * 32  # evaluate scored older weights
    (tmp_path / "dvc.lock").write_text(yaml.safe_dump(lock))
    for engine in ENGINES:
        metrics = describe_served(tmp_path / "models", engine)["metrics"]
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
    assert serve_main(["--model-dir", str(model_dir), option]) == 2
    err = capfd.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"mnist-serve: error: {message}"), err


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
