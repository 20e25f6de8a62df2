"""POST /feedback in-process (FastAPI's TestClient): what a sample keeps, the 4xx of bad input
with nothing written, duplicates, a full spool; the spool itself under concurrent writers."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from mnist_dvc.serving.app import create_app
from mnist_dvc.serving.body_limit import MAX_BODY_BYTES
from mnist_dvc.serving.card import describe_served
from mnist_dvc.spool import INPUT, META, UPLOAD, Spool, SpoolFull, content_hash
from tests.serving.helpers import digit_images, drawn_digit, encoded


@pytest.fixture
def spool_dir(tmp_path) -> Path:
    return tmp_path / "feedback"


@pytest.fixture
def feedback_client(predictor, model_dir, spool_dir):
    spool = Spool(spool_dir, max_samples=3).open()
    app = create_app(predictor, describe_served(model_dir, "onnx"), feedback=spool)
    with TestClient(app) as client:
        yield client


def post(client, image: bytes, label: str | None = "7", name: str = "seven.png"):
    data = {} if label is None else {"label": label}
    return client.post("/feedback", files={"file": (name, image, "image/png")}, data=data)


def samples(spool_dir: Path) -> list[Path]:
    return sorted(p for p in spool_dir.iterdir() if not p.name.startswith("."))


def test_off_without_a_folder(client):
    answer = post(client, encoded(drawn_digit(), "PNG"))
    assert answer.status_code == 404
    assert "--feedback-dir" in answer.json()["detail"]
    assert client.get("/model").json()["feedback"] is False


def test_a_sample_keeps_the_input_the_upload_the_label_and_the_model(feedback_client, spool_dir):
    png = encoded(drawn_digit(), "PNG")
    answer = post(feedback_client, png, "7")
    assert answer.status_code == 201, answer.text
    kept = answer.json()
    assert kept["label"] == 7 and kept["duplicate"] is False
    assert 0 <= kept["prediction"] <= 9
    (folder,) = samples(spool_dir)
    assert folder.name == kept["sha256"]
    image = np.load(folder / INPUT)
    assert image.shape == (28, 28) and image.dtype == np.float32
    assert content_hash(image) == folder.name
    assert (folder / UPLOAD).read_bytes() == png
    meta = json.loads((folder / META).read_text())
    assert meta["label"] == 7 and meta["prediction"] == kept["prediction"]
    assert meta["model"].startswith("md5:")
    assert feedback_client.get("/model").json()["feedback"] is True
    # The same drawing again: one sample, answered 200.
    again = post(feedback_client, png, "7")
    assert again.status_code == 200 and again.json()["duplicate"] is True
    assert len(samples(spool_dir)) == 1
    # ... and with another label: a conflict, the first label kept.
    other = post(feedback_client, png, "1")
    assert other.status_code == 409 and "labelled 7" in other.json()["detail"]


@pytest.mark.parametrize(
    ("label", "words"),
    [
        ("x", "not a digit"),
        ("10", "not a digit"),
        ("", "not a digit"),
        (None, "no label"),
        ("-1", "not a digit"),
        ("٣", "not a digit"),
    ],
)
def test_a_label_that_is_not_a_digit_is_422(feedback_client, spool_dir, label, words):
    answer = post(feedback_client, encoded(drawn_digit(), "PNG"), label)
    assert answer.status_code == 422
    assert words in answer.json()["detail"]
    assert samples(spool_dir) == []


def test_bad_bodies_write_nothing(feedback_client, spool_dir):
    blank = encoded(drawn_digit().point(lambda _: 200), "PNG")
    assert post(feedback_client, blank).status_code == 422
    assert post(feedback_client, b"not an image").status_code == 422
    assert feedback_client.post("/feedback", json={"instances": [], "label": 7}).status_code == 415
    huge = feedback_client.post(
        "/feedback", files={"file": ("big.png", b"\0" * (MAX_BODY_BYTES + 1))}, data={"label": "7"}
    )
    assert huge.status_code == 413
    assert samples(spool_dir) == []


def test_a_full_spool_is_507_and_keeps_what_it_holds(feedback_client, spool_dir):
    for number, image in enumerate(digit_images(3, seed=5)):
        upload = encoded(_picture(image), "PNG")
        assert post(feedback_client, upload, str(number)).status_code == 201
    answer = post(feedback_client, encoded(drawn_digit(), "PNG"))
    assert answer.status_code == 507 and "full" in answer.json()["detail"]
    assert len(samples(spool_dir)) == 3


def _picture(image: np.ndarray):
    from PIL import Image

    return Image.fromarray((image * 255).astype(np.uint8)).resize((140, 140))


def test_concurrent_writers_respect_the_bounds_and_leave_no_partial(tmp_path):
    spool = Spool(tmp_path / "spool", max_samples=10).open()
    images = digit_images(40, seed=9)
    results: list[object] = []

    def write(start: int) -> None:
        for image in images[start::4]:
            try:
                results.append(spool.add(image, b"x" * 100, 3, 3, "m"))
            except SpoolFull as error:
                results.append(error)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    kept = [r for r in results if isinstance(r, tuple)]
    assert len(kept) == 10 and len(results) == 40
    assert sorted(s.sha256 for s in spool.samples()) == sorted(sha for sha, _ in kept)
    assert [p.name for p in (tmp_path / "spool").iterdir() if p.name.startswith(".partial")] == []


def test_the_same_drawing_from_many_writers_is_one_sample(tmp_path):
    spool = Spool(tmp_path / "spool").open()
    image = digit_images(1)[0]
    results: list[tuple[str, bool]] = []
    threads = [
        threading.Thread(target=lambda: results.append(spool.add(image, b"png", 4, 4, "m")))
        for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(duplicate for _, duplicate in results) == [False] + [True] * 7
    assert len(spool.samples()) == 1


def test_a_sample_written_half_way_is_never_read(tmp_path):
    spool = Spool(tmp_path / "spool").open()
    spool.add(digit_images(1)[0], b"png", 4, 4, "m")
    (tmp_path / "spool" / ".partial-crashed").mkdir()  # a write killed half-way
    (tmp_path / "spool" / ".partial-crashed" / INPUT).write_bytes(b"half")
    assert len(spool.samples()) == 1
    spool.add(digit_images(2)[1], b"png", 5, 5, "m")  # the next write clears it away
    assert not (tmp_path / "spool" / ".partial-crashed").exists()


def test_a_damaged_sample_is_500_without_the_servers_paths(predictor, model_dir, tmp_path):
    """A folder named "labelled" must not turn a damaged sample into a 409, and the client is
    told nothing of the server's folders."""
    spool_dir = tmp_path / "labelled"
    spool = Spool(spool_dir).open()
    app = create_app(predictor, describe_served(model_dir, "onnx"), feedback=spool)
    png = encoded(drawn_digit(), "PNG")
    with TestClient(app) as client:
        assert post(client, png).status_code == 201
        (folder,) = samples(spool_dir)
        (folder / META).write_text("{not json")
        answer = post(client, png)
    assert answer.status_code == 500
    assert str(tmp_path) not in answer.text and "server's log" in answer.json()["detail"]


def test_a_spool_folder_removed_while_serving_is_made_again(feedback_client, spool_dir):
    import shutil

    shutil.rmtree(spool_dir)
    assert post(feedback_client, encoded(drawn_digit(), "PNG")).status_code == 201
    assert len(samples(spool_dir)) == 1
