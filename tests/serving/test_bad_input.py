"""Every kind of bad input to the API in-process gets its 4xx and a one-line
`detail`, never a 5xx, and does not disturb good requests."""

from __future__ import annotations

import json
import struct
import time
import zlib
from collections.abc import Iterator

import numpy as np
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mnist_dvc.serving.app import create_app
from mnist_dvc.serving.bodies import MAX_INSTANCES
from mnist_dvc.serving.body_limit import MAX_BODY_BYTES
from mnist_dvc.serving.card import describe_served
from tests.serving.helpers import (
    digit_images,
    drawn_digit,
    encoded,
    expected,
)


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
    # no digit, as a uniform upload or .npy image (mnist_dvc/digits.py: one rule)
    "uniform": (instances([ONE, [[0.5] * 28] * 28]), 422, "instances[1]: no ink"),
    "too many instances": (instances([[[0] * 28] * 28] * (MAX_INSTANCES + 1)), 422, "at most"),
    "nested too deep": (b"[" * 100_000 + b"]" * 100_000, 400, "not JSON"),
    # 8 MiB of these would take 300 MB to parse: refused by counting first
    "more arrays than instances hold": (
        b'{"instances": [' + b"[[1]]," * 500_000 + b"[[1]]]}",
        422,
        "more values than 256 instances of 28x28 hold",
    ),
    "more values than instances hold": (
        b'{"instances": [[' + b"1," * 500_000 + b"1]]}",
        422,
        "more values than 256 instances of 28x28 hold",
    ),
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


def test_a_large_field_beside_the_file_is_refused(client):
    """Only the file waits in a temporary file; another field is held in memory: 64 KiB."""
    data = {"note": "x" * (65 << 10)}
    answer = client.post("/predict", data=data, files={"file": ("a.png", b"x")})
    assert answer.status_code == 400
    assert answer.json()["detail"] == "Part exceeded maximum size of 64KB."


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

    app = create_app(stuck, describe_served(model_dir, "onnx"), answer_timeout_s=0.2)
    with TestClient(app) as client:
        answer = client.post("/predict", json={"instances": digit_images(1).tolist()})
    assert answer.status_code == 503
    assert "retry" in answer.json()["detail"]


@pytest.mark.parametrize("mode", ["1", "P", "I;16"])
def test_a_large_bilevel_palette_or_16_bit_upload_is_read(client, mode):
    """2048 px or more in these modes were a 422 "image has wrong mode", as in mnist-predict."""
    from tests.test_predict import drawn_seven

    answer = client.post("/predict", files={"file": ("seven.png", drawn_seven(2048, mode))})
    assert answer.status_code == 200, answer.text
