"""Shared fixtures: real MNIST (fetched once per machine into the download cache), small
synthetic IDX files, and a scratch working directory for stages that write relative paths."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from stages import mnist
from stages.fetch import default_cache_dir, fetch
from stages.params import load_params

REPO_ROOT = Path(__file__).resolve().parent.parent

os.environ.setdefault("DVC_NO_ANALYTICS", "1")


@pytest.fixture(scope="session")
def committed_params():
    return load_params(REPO_ROOT / "params.yaml")


@pytest.fixture(scope="session")
def real_raw_dir(tmp_path_factory, committed_params) -> Path:
    """The four real MNIST IDX files, from the committed sources through the real fetch stage."""
    out = tmp_path_factory.mktemp("real") / "raw"
    old = Path.cwd()
    os.chdir(out.parent)  # fetch stages its work under ./.partial
    try:
        fetch(
            committed_params.fetch.sources,
            out,
            default_cache_dir(),
            timeout_s=committed_params.fetch.timeout_s,
        )
    finally:
        os.chdir(old)
    return out


@pytest.fixture
def workdir(tmp_path, monkeypatch) -> Path:
    """Run the test inside an empty folder, as the stages run inside the repository."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def raw_copy(real_raw_dir, workdir) -> Path:
    """A writable copy of the real raw files, for tests that damage them."""
    copy = workdir / "data" / "raw"
    shutil.copytree(real_raw_dir, copy)
    return copy


def small_mnist_arrays(count: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Random uint8 images and labels shaped like MNIST's."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(count, mnist.IMAGE_ROWS, mnist.IMAGE_COLS), dtype=np.uint8)
    labels = rng.integers(0, mnist.NUM_CLASSES, size=count, dtype=np.uint8)
    return images, labels


@pytest.fixture(scope="session")
def real_prepared_dir(real_raw_dir, tmp_path_factory) -> Path:
    """Real MNIST through the preprocess stage (channels_last)."""
    from stages.preprocess import preprocess

    root = tmp_path_factory.mktemp("prepared")
    old = Path.cwd()
    os.chdir(root)
    try:
        preprocess(real_raw_dir, root / "prepared", "channels_last")
    finally:
        os.chdir(old)
    return root / "prepared"


def write_params(path: Path, **train_overrides) -> Path:
    """The committed params.yaml with some `train` values replaced (quick runs)."""
    import yaml

    params = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
    params["train"].update(train_overrides)
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


def run_stage_module(name: str, cwd: Path, **kwargs):
    """`python -m stages.<name>` in `cwd`, as dvc.yaml runs it."""
    import subprocess
    import sys

    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.run(
        [sys.executable, "-m", f"stages.{name}"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=kwargs.pop("timeout", 600),
        **kwargs,
    )
