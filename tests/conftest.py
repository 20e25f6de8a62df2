"""Shared fixtures: real MNIST (fetched once per machine into the download cache, then through
the real stages), a scratch working directory for stages that write relative paths, and what
several test files train on: one quick `dvc repro` and one weak model, each made once."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from mnist_dvc.params import load_params, load_sources
from stages.fetch import default_cache_dir, fetch
from tests.helpers import (
    REPO_ROOT,
    gzip_files,
    make_repo,
    run_stage_module,
    sh,
    train_in,
    write_params,
)


@pytest.fixture(scope="session")
def committed_params():
    return load_params(REPO_ROOT / "params.yaml")


@pytest.fixture(scope="session")
def real_raw_dir(tmp_path_factory) -> Path:
    """The four real MNIST IDX files, from the committed sources through the real fetch stage."""
    out = tmp_path_factory.mktemp("real") / "raw"
    committed = load_sources(REPO_ROOT / "sources.yaml")
    fetch(committed.sources, out, default_cache_dir(), timeout_s=committed.timeout_s)
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


@pytest.fixture(scope="session")
def real_prepared_dir(real_raw_dir, tmp_path_factory) -> Path:
    """Real MNIST through the preprocess stage (channels_last)."""
    from stages.preprocess import preprocess

    out = tmp_path_factory.mktemp("prepared") / "prepared"
    preprocess(real_raw_dir, out, "channels_last")
    return out


@pytest.fixture(scope="session")
def gz_dir(real_raw_dir, tmp_path_factory) -> Path:
    """The real files gzipped, laid out like the public IDX mirrors."""
    return gzip_files(real_raw_dir, tmp_path_factory.mktemp("gz"))


@pytest.fixture(scope="session")
def weak_model_dir(real_prepared_dir, tmp_path_factory) -> Path:
    """models/ as the train and export stages write it after one epoch on 12,000 images: about
    95 % accurate, in under a minute on two cores (with model.onnx, which mnist-serve serves by
    default). With 4,000 images (81 %) near-ambiguous digits flipped between a PNG and a JPEG
    of the same drawing. Tests must not write into it."""
    work = tmp_path_factory.mktemp("weak-model")
    train_in(work, real_prepared_dir, epochs=1, train_images=12000)
    export = run_stage_module("export", work)
    assert export.returncode == 0, export.stderr[-3000:]
    return work / "models"


QUICK_RUN = {"epochs": 1, "train_images": 2000}  # params.yaml's train section, for speed


@dataclass(frozen=True)
class QuickRun:
    repo: Path  # never changed by a test: each test file works on its own copy
    output: str  # what `dvc repro` printed

    def copy(self, dest: Path, *, commit: bool = True) -> Path:
        """A repository of its own for a test file, as the quick run left it: its outputs
        committed (`commit`), or new in the work tree as `dvc repro` wrote them."""
        shutil.copytree(self.repo, dest, symlinks=True)
        if commit:
            sh("git", "add", "-A", cwd=dest)
            sh("git", "commit", "-qm", "quick run reproduced", cwd=dest)
        return dest


@pytest.fixture(scope="session")
def quick_run(real_raw_dir, tmp_path_factory) -> QuickRun:
    """This work tree in a new repository, a commit that sets QUICK_RUN, then `dvc repro`
    from nothing (the real fetch reads the download cache): made once per session."""
    repo = make_repo(tmp_path_factory.mktemp("quick-run") / "repo")
    write_params(repo / "params.yaml", **QUICK_RUN)
    sh("git", "commit", "-qam", "quick run", cwd=repo)
    return QuickRun(repo, sh("dvc", "repro", cwd=repo).stdout)
