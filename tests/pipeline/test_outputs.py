"""Outputs that cannot be written: a read-only models/ and a full disk (a tiny tmpfs) give one
clear line and leave the previous outputs as they were."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.helpers import missing_prerequisite, run_stage_module, train_in, write_params

pytestmark = pytest.mark.slow  # runs stages, dvc, servers or a browser


@contextmanager
def mounted(folder: Path, *options: str) -> Iterator[None]:
    """Mount over `folder` (root only): a tmpfs, or the folder itself bound read-only."""
    if "ro" in options:
        commands = [["mount", "--bind", str(folder), str(folder)],
                    ["mount", "-o", "remount,bind,ro", str(folder)]]  # fmt: skip
    else:
        commands = [["mount", "-t", "tmpfs", "-o", ",".join(options), "tmpfs", str(folder)]]
    for command in commands:
        run = subprocess.run(command, capture_output=True, text=True, check=False)
        if run.returncode != 0:
            subprocess.run(["umount", str(folder)], capture_output=True, check=False)
            missing_prerequisite(f"needs root to mount ({run.stderr.strip()})")
    try:
        yield
    finally:
        subprocess.run(["umount", str(folder)], check=True)


@pytest.fixture
def trained(real_prepared_dir, workdir) -> Path:
    """A work folder with prepared data, quick params and a model from an earlier run."""
    train_in(workdir, real_prepared_dir, epochs=1, train_images=256)
    return workdir


def last_line(run: subprocess.CompletedProcess) -> str:
    return run.stderr.strip().splitlines()[-1]


def test_read_only_models_folder(trained):
    models = trained / "models"
    before = {p.name: p.read_bytes() for p in models.iterdir()}
    with mounted(models, "ro"):
        run = run_stage_module("train", trained)
    assert run.returncode == 1
    assert (
        last_line(run) == "train: error: models/model.json: cannot write it: Read-only file system"
    )
    assert {p.name: p.read_bytes() for p in models.iterdir()} == before


def test_full_disk_under_models(trained):
    models = trained / "models"
    old = {p.name: p.read_bytes() for p in models.iterdir()}
    shutil.rmtree(models)
    models.mkdir()
    # Room for the old model.json and a little more, not for a new model.h5 (4.6 MB).
    with mounted(models, "size=1m"):
        (models / "model.json").write_bytes(old["model.json"])
        run = run_stage_module("train", trained)
        left = {p.name: p.read_bytes() for p in models.iterdir()}
    assert run.returncode == 1
    assert (
        last_line(run) == "train: error: models/model.h5: cannot write it: No space left on device"
    )
    assert left == {"model.json": old["model.json"]}


def test_full_disk_under_data(real_raw_dir, workdir):
    (workdir / "data").mkdir()
    (workdir / "data" / "raw").symlink_to(real_raw_dir)
    write_params(workdir / "params.yaml")
    prepared = workdir / "data" / "prepared"
    with mounted(workdir / "data", "size=50m"):  # the arrays take 220 MB
        (workdir / "data" / "raw").symlink_to(real_raw_dir)
        run = run_stage_module("preprocess", workdir)
        left = sorted(p.name for p in (workdir / "data").iterdir())
    assert run.returncode == 1
    # numpy words it its own way: "Not enough free space to write 188160000 bytes ..."
    assert last_line(run).startswith("preprocess: error: data/prepared: cannot write it: ")
    assert "space" in last_line(run)
    assert left == ["raw"]
    assert not prepared.exists()
