"""Shared fixtures: real MNIST (fetched once per machine into the download cache, then through
the real stages), a scratch working directory for stages that write relative paths, and what
several test files train on: one quick `dvc repro` and one weak model, each made once per test
run, also when pytest-xdist runs the tests in several processes (`make test`)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from filelock import FileLock

from mnist_dvc.params import load_params
from mnist_dvc.pinned_fetch import default_cache_dir
from mnist_dvc.sources import load_sources
from stages.fetch import fetch
from tests.helpers import (
    REPO_ROOT,
    gzip_files,
    make_repo,
    run_stage_module,
    sh,
    train_in,
    write_params,
)

# Test files that share a build beyond their own module, run in one pytest-xdist process.
SHARED_SCOPES = {  # the registry's two files: one registry (tests/registry/test_registry.py)
    "tests/registry/test_http_remote.py": "tests/registry",
    "tests/registry/test_registry.py": "tests/registry",
}


# The longest test files first, in the order measured per file (docs/testing.md), so that the
# two processes end together: xdist's own order (most tests first) left the long files with few
# tests to the end, where one process ran them alone.
LONGEST_FIRST = (
    "tests/sweep/test_sweep.py",
    "tests/registry",
    "tests/pipeline/test_compare.py",
    "tests/pipeline/test_interruptions.py",
    "tests/verify/test_verify.py",
    "tests/scripts/test_bench.py",
    "tests/pipeline/test_remotes.py",
    "tests/pipeline/test_pipeline.py",
    "tests/test_predict.py",
    "tests/test_numerics.py",
    "tests/serving/test_browser.py",
    "tests/serving/test_server.py",
    "tests/stages/test_train.py",
)


def scope_of(path: str) -> str:
    return SHARED_SCOPES.get(path, path)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the files in LONGEST_FIRST's order, then the rest as collected; each file's tests
    keep their order."""
    rank = {scope: index for index, scope in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(scope_of(item.nodeid.split("::")[0]), len(rank)))


def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object | None:
    """Under `--dist loadfile` (make test, make check) each test file runs in one process, so
    that its module fixtures are built once, and the files of SHARED_SCOPES run in one process,
    in the order of the collection (LONGEST_FIRST). (`--dist loadgroup` would group with
    markers, but pytest-xdist 3.8 cannot group under pytest 9, which no longer reads the test
    ids it rewrites.)"""
    if config.getvalue("dist") != "loadfile":
        return None  # another --dist asked for on the command line: xdist's own
    from xdist.scheduler import LoadFileScheduling

    config.option.loadscopereorder = False  # xdist's reorder: the files with most tests first

    class ByFile(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return scope_of(super()._split_scope(nodeid))

    return ByFile(config, log)


def built_once(factory: pytest.TempPathFactory, name: str, build: Callable[[Path], None]) -> Path:
    """A folder that `build` fills once per test run. Under pytest-xdist the first process to
    ask builds it in the run's shared temporary folder, and the others wait for it."""
    if "PYTEST_XDIST_WORKER" not in os.environ:
        folder = factory.mktemp(name)
        build(folder)
        return folder
    shared = factory.getbasetemp().parent
    folder, done = shared / name, shared / f"{name}.done"
    with FileLock(shared / f"{name}.lock"):
        if not done.exists():
            shutil.rmtree(folder, ignore_errors=True)  # what a failed build left
            folder.mkdir()
            build(folder)
            done.touch()
    return folder


@pytest.fixture(scope="session")
def committed_params():
    return load_params(REPO_ROOT / "params.yaml")


@pytest.fixture(scope="session")
def real_raw_dir(tmp_path_factory) -> Path:
    """The four real MNIST IDX files, from the committed sources through the real fetch stage."""
    out = tmp_path_factory.mktemp("real") / "raw"
    return _fetched(fetch, load_sources(REPO_ROOT / "sources.yaml"), out)


def _fetched(fetch_stage: Callable, committed, out: Path) -> Path:
    """`out` filled by a fetch stage's function from the committed settings, through the
    machine's download cache."""
    cache = default_cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    # One process at a time: on a cold cache two would download into the same partial files.
    with FileLock(cache / ".tests.lock"):
        fetch_stage(committed.sources, out, cache, timeout_s=committed.timeout_s)
    return out


@pytest.fixture(scope="session")
def real_ood_raw_dir(tmp_path_factory) -> Path:
    """The out-of-distribution set's real file (UCI optdigits), from the committed
    ood_sources.yaml through the real fetch_ood stage and the same download cache."""
    from mnist_dvc.ood_sources import load_ood_sources
    from stages.fetch_ood import fetch_ood

    out = tmp_path_factory.mktemp("real-ood") / "ood_raw"
    return _fetched(fetch_ood, load_ood_sources(REPO_ROOT / "ood_sources.yaml"), out)


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

    def build(work: Path) -> None:
        train_in(work, real_prepared_dir, epochs=1, train_images=12000)
        export = run_stage_module("export", work)
        assert export.returncode == 0, export.stderr[-3000:]

    return built_once(tmp_path_factory, "weak-model", build) / "models"


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

    def build(folder: Path) -> None:
        repo = make_repo(folder / "repo")
        write_params(repo / "params.yaml", **QUICK_RUN)
        sh("git", "commit", "-qam", "quick run", cwd=repo)
        (folder / "repro.out").write_text(sh("dvc", "repro", cwd=repo).stdout)

    folder = built_once(tmp_path_factory, "quick-run", build)
    return QuickRun(folder / "repo", (folder / "repro.out").read_text())
