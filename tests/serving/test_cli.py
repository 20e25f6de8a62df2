"""`mnist-serve` refuses what it cannot serve in one line on stderr, exit status 1."""

from __future__ import annotations

import json
import shutil
import subprocess

import keras
import pytest

from mnist_dvc.serving.cli import main as serve_main
from tests.helpers import ENV
from tests.servers import free_port
from tests.serving.helpers import (
    serve_command,
)


@pytest.mark.slow  # starts mnist-serve processes
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


@pytest.mark.slow  # starts mnist-serve, which runs git
def test_a_repository_password_is_never_printed(tmp_path):
    """Issue 28: `mnist-serve --stage prod --repo https://user:pw@...` where git ls-remote
    fails: git hides the password in its own words, and so must the line around them."""
    repo = f"https://user:hunter2@127.0.0.1:{free_port()}/team.git"
    run = subprocess.run(
        [*serve_command("console script"), "--stage", "prod", "--repo", repo,
         "--cache-dir", str(tmp_path / "cache"), "--port", str(free_port())],
        env=ENV, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == 1
    assert "hunter2" not in run.stdout + run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1, run.stderr
    assert lines[0].startswith(
        f"mnist-serve: error: git ls-remote {repo.replace('hunter2', '***')}: "
    ), lines[0]
