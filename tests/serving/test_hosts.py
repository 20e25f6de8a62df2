"""Which Host headers the server answers (mnist_dvc/serving/hosts.py), in-process; the real
server over a socket is in test_server.py."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from mnist_dvc.serving.app import create_app
from mnist_dvc.serving.card import describe_served
from mnist_dvc.serving.hosts import default_hosts, host_name


@pytest.fixture(scope="module")
def local_only(predictor, model_dir):
    app = create_app(
        predictor, describe_served(model_dir, "onnx"), allowed_hosts=default_hosts("127.0.0.1")
    )
    with TestClient(app) as client:
        yield client


@pytest.mark.parametrize("host", ["127.0.0.1:8000", "localhost:8000", "LOCALHOST", "[::1]:8000",
                                  "127.0.0.2:8000", "127.0.0.1"])  # fmt: skip
def test_the_names_of_this_machine_are_answered(local_only, host):
    assert local_only.get("/healthz", headers={"Host": host}).status_code == 200


@pytest.mark.parametrize("host", ["attacker.example:8000", "attacker.example", "10.0.0.5:8000",
                                  "127.0.0.1.attacker.example", "x" * 5000])  # fmt: skip
def test_a_rebound_name_is_refused_before_the_app(local_only, host):
    for path in ("/model", "/healthz"):
        answer = local_only.get(path, headers={"Host": host})
        assert answer.status_code == 400
        detail = answer.json()["detail"]
        assert "names no host this server answers to" in detail and len(detail) < 300
    posted = local_only.post("/predict", json={"instances": []}, headers={"Host": host})
    assert posted.status_code == 400


def test_defaults_follow_the_address_listened_on():
    assert default_hosts("127.0.0.1") == ("localhost", "127.0.0.1", "::1")
    assert default_hosts("192.168.1.5") == ("localhost", "127.0.0.1", "::1", "192.168.1.5")
    assert default_hosts("0.0.0.0") == ("*",) == default_hosts("::")
    assert [host_name(h) for h in ("[::1]:80", "a.b:80", "a.b", "[fe80::1]")] == [
        "::1", "a.b", "a.b", "fe80::1"
    ]  # fmt: skip


def test_model_shows_no_path_of_the_servers_machine(client, model_dir):
    card = client.get("/model").json()
    text = str(card)
    assert str(model_dir.parent) not in text and str(model_dir.resolve().parent) not in text
    assert [entry["path"] for entry in card["files"]] == ["models/model.onnx"]
    assert card["dvc_lock"]["path"] == "dvc.lock"
    assert card["metrics"]["path"] == "metrics.json"
    assert card["provenance"]["path"] == "models/provenance.json"
