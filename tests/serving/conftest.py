"""The served model of the serving tests, built once per module: files, engine, in-process app."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from mnist_dvc.serving.app import create_app
from mnist_dvc.serving.card import describe_served
from mnist_dvc.serving.engines import load_engine
from tests.serving.helpers import (
    write_project,
)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    return write_project(tmp_path_factory.mktemp("project"))


@pytest.fixture(scope="module")
def predictor(model_dir):
    return load_engine(model_dir, "onnx")


@pytest.fixture(scope="module")
def client(predictor, model_dir) -> Iterator[TestClient]:
    with TestClient(create_app(predictor, describe_served(model_dir, "onnx"))) as client:
        yield client
