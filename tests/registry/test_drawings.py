"""The drawings data set on real git history: a feedback spool of real MNIST test digits made
into two versions by `mnist-drawings version` (DVC-tracked, GTO-tagged), a second repository
that `dvc import`s the first and `dvc update --rev`s to the second, and the pipeline reading a
version through params.yaml: scored on its holdout without retraining, trained on
reproducibly."""

from __future__ import annotations

import hashlib
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import yaml

from mnist_dvc import drawings, mnist, prepared
from mnist_dvc.idx import read_idx
from mnist_dvc.spool import Spool
from tests.helpers import sh

pytestmark = pytest.mark.slow  # git, dvc, gto, and two quick trainings

V1, V2 = "v1.0.0", "v1.1.0"
FIRST, SECOND = 40, 25  # samples in the spool before each version


@dataclass
class Producer:
    repo: Path
    spool: Path
    runs: dict


def drawings_cli(repo: Path, *args: str, check: bool = True):
    script = Path(sys.executable).parent / "mnist-drawings"
    return sh(str(script), *args, cwd=repo, check=check)


def fill(spool: Path, images: np.ndarray, labels: np.ndarray) -> None:
    feedback = Spool(spool).open()
    for image, label in zip(images, labels, strict=True):
        feedback.add((image / 255.0).astype(np.float32), b"upload", int(label), int(label), "m")


@pytest.fixture(scope="module")
def producer(quick_run, real_raw_dir, tmp_path_factory) -> Producer:
    base = tmp_path_factory.mktemp("drawings")
    repo = quick_run.copy(base / "producer")
    images = read_idx(real_raw_dir / mnist.TEST_IMAGES.name, ndim=3)[-(FIRST + SECOND) :]
    labels = read_idx(real_raw_dir / mnist.TEST_LABELS.name, ndim=1)[-(FIRST + SECOND) :]
    # The team's storage, by an absolute path: an importer's temporary clone of the producer
    # would resolve the committed relative one against itself.
    sh("dvc", "remote", "add", "-d", "-f", "store", str(base / "storage"), cwd=repo)
    sh("git", "commit", "-qam", "Data goes to the team's storage", cwd=repo)
    spool = base / "feedback"
    runs = {}
    fill(spool, images[:FIRST], labels[:FIRST])
    runs[V1] = drawings_cli(repo, "version", "--spool", str(spool))
    sh("dvc", "push", "-q", "data/drawings.dvc", cwd=repo)
    fill(spool, images[FIRST:], labels[FIRST:])
    runs[V2] = sh("make", "-s", "drawings", f"SPOOL={spool}", cwd=repo)
    sh("dvc", "push", "-q", "data/drawings.dvc", cwd=repo)
    return Producer(repo, spool, runs)


def version_files(repo: Path, version: str, dest: Path) -> Path:
    drawings.checkout_version(repo, version, dest)
    return dest


def test_two_versions_each_a_tagged_commit(producer):
    assert f"registered mnist-drawings {V1} (tag mnist-drawings@{V1}): {FIRST} samples" in (
        producer.runs[V1].stdout
    )
    assert f"mnist-drawings {V2} (tag mnist-drawings@{V2}): {FIRST + SECOND} samples, " in (
        producer.runs[V2].stdout
    )
    listed = sh("gto", "show", "mnist-drawings", cwd=producer.repo).stdout
    assert V1 in listed and V2 in listed
    status = sh("git", "status", "--porcelain", cwd=producer.repo).stdout
    assert "drawings" not in status, status
    assert sh("dvc", "status", "data/drawings.dvc", cwd=producer.repo).stdout.strip() in (
        "Data and pipelines are up to date.",
        "",
    )


def test_a_version_only_grows_and_a_sample_never_changes_split(producer, tmp_path):
    old = version_files(producer.repo, V1, tmp_path / V1)
    new = version_files(producer.repo, V2, tmp_path / V2)
    old_rows, new_rows = drawings.read_rows(old), drawings.read_rows(new)
    assert len(old_rows) == FIRST and len(new_rows) == FIRST + SECOND
    assert new_rows[:FIRST] == old_rows  # kept, in order, as they were
    assert {row.version for row in new_rows[FIRST:]} == {V2}
    for row in new_rows:
        assert row.split == drawings.split_of(row.sha256)
    for split in drawings.SPLITS:
        (x_old, y_old), (x_new, y_new) = drawings.load(old, split), drawings.load(new, split)
        assert np.array_equal(x_new[: len(x_old)], x_old)
        assert np.array_equal(y_new[: len(y_old)], y_old)
    holdout = sum(row.split == "holdout" for row in new_rows)
    assert 0 < holdout < len(new_rows) / 2


def test_refusals_are_one_line_and_make_nothing(producer, tmp_path):
    before = sh("git", "rev-parse", "HEAD", cwd=producer.repo).stdout
    for args, words in [
        (["--spool", str(producer.spool)], f"all in {V2}"),
        (["--spool", str(producer.spool), "--version", "v1.0.5"], "is not newer than"),
        (["--spool", str(producer.spool), "--version", "1.2"], "a version looks like v1.2.0"),
        (["--spool", str(tmp_path / "none")], "no such feedback folder"),
    ]:
        run = drawings_cli(producer.repo, "version", *args, check=False)
        assert run.returncode == 1, run.stdout + run.stderr
        (line,) = run.stderr.strip().splitlines()
        assert line.startswith("mnist-drawings: error: ") and words in line, line
        assert line.endswith("no version was made")
    assert sh("git", "rev-parse", "HEAD", cwd=producer.repo).stdout == before
    usage = sh("make", "-s", "drawings", cwd=producer.repo, check=False)
    assert usage.returncode != 0 and "make drawings SPOOL=" in usage.stderr


def tree(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in folder.iterdir()}


def test_dvc_import_and_update_between_two_repositories(producer, tmp_path):
    consumer = tmp_path / "consumer"
    consumer.mkdir()
    sh("git", "init", "-q", "-b", "main", cwd=consumer)
    sh("dvc", "init", "-q", cwd=consumer)
    source = str(producer.repo)
    sh("dvc", "import", source, "data/drawings", "-o", "drawings", "--rev",
       f"mnist-drawings@{V1}", cwd=consumer)  # fmt: skip
    assert tree(consumer / "drawings") == tree(version_files(source, V1, tmp_path / "v1"))
    assert len(drawings.read_rows(consumer / "drawings")) == FIRST
    sh("dvc", "update", "--rev", f"mnist-drawings@{V2}", "drawings.dvc", cwd=consumer)
    assert tree(consumer / "drawings") == tree(version_files(source, V2, tmp_path / "v2"))
    locked = yaml.safe_load((consumer / "drawings.dvc").read_text())["deps"][0]["repo"]
    assert locked["rev"] == f"mnist-drawings@{V2}"


def set_drawings(repo: Path, version: str, train: bool) -> None:
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["drawings"] = {"version": version, "train": train}
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def test_the_pipeline_scores_a_version_and_trains_on_it_reproducibly(producer):
    repo = producer.repo
    before = md5(repo / "models" / "model.h5")
    # A version to score, not to learn from: train stays up to date, evaluate adds its holdout.
    set_drawings(repo, V2, train=False)
    sh("dvc", "repro", "prepare_drawings", cwd=repo)
    assert "up to date" in sh("dvc", "status", "train", cwd=repo).stdout
    sh("dvc", "repro", "evaluate", cwd=repo)
    assert md5(repo / "models" / "model.h5") == before
    metrics = yaml.safe_load((repo / "metrics.json").read_text())
    assert 0 <= metrics["drawings_accuracy"] <= 1 and metrics["drawings_loss"] > 0
    shown = sh("dvc", "metrics", "show", cwd=repo).stdout
    assert "drawings_accuracy" in shown and "ood_accuracy" in shown
    # Learning from it: another model, and the same bytes again on a rerun.
    set_drawings(repo, V2, train=True)
    sh("dvc", "repro", "train", cwd=repo)
    first = md5(repo / "models" / "model.h5")
    assert first != before
    sh("dvc", "repro", "--force", "--single-item", "train", cwd=repo)
    assert md5(repo / "models" / "model.h5") == first
    added, _ = prepared.load_split(repo / "data" / "drawings_train", "train")
    rows = drawings.read_rows(version_files(repo, V2, repo.parent / "v2-files"))
    assert len(added) == sum(row.split == "train" for row in rows)
    # The param off again: train runs again (its drawings are empty arrays again) and writes
    # the committed bytes, those of the run before drawings existed.
    set_drawings(repo, "none", train=False)
    sh("dvc", "repro", "train", cwd=repo)
    assert md5(repo / "models" / "model.h5") == before


def test_an_unknown_version_is_one_line(producer):
    repo = producer.repo
    set_drawings(repo, "v9.9.9", train=False)
    try:
        run = sh("dvc", "repro", "prepare_drawings", cwd=repo, check=False)
    finally:
        set_drawings(repo, "none", train=False)
    assert run.returncode != 0
    assert "prepare_drawings: error: drawings.version: v9.9.9 is not a registered" in run.stderr


def test_a_version_that_fails_at_its_tag_leaves_everything_as_it_was(
    producer, monkeypatch, real_raw_dir, tmp_path
):
    from mnist_dvc.registry import datasets
    from mnist_dvc.registry.checks import Refused

    repo = producer.repo
    spool = tmp_path / "more"
    images = read_idx(real_raw_dir / mnist.TEST_IMAGES.name, ndim=3)[:3]
    fill(spool, images, np.array([7, 2, 1]))
    head = sh("git", "rev-parse", "HEAD", cwd=repo).stdout
    status = sh("git", "status", "--porcelain", cwd=repo).stdout  # earlier tests' params edits
    before = tree(repo / "data" / "drawings")

    def refuse(*_args, **_kwargs):
        raise Refused("tag refused for this test")

    monkeypatch.setattr(datasets, "gto_call", refuse)
    monkeypatch.chdir(repo)
    with pytest.raises(Refused, match="tag refused for this test"):
        datasets.make_version(spool, None)
    assert sh("git", "rev-parse", "HEAD", cwd=repo).stdout == head
    assert sh("git", "status", "--porcelain", cwd=repo).stdout == status
    assert "mnist-drawings@v1.2.0" not in sh("git", "tag", cwd=repo).stdout
    assert tree(repo / "data" / "drawings") == before


def test_clear_removes_what_the_version_took(producer, real_raw_dir):
    spool = producer.spool
    images = read_idx(real_raw_dir / mnist.TEST_IMAGES.name, ndim=3)[:2]
    fill(spool, images, np.array([7, 2]))
    run = drawings_cli(producer.repo, "version", "--spool", str(spool), "--clear")
    assert f"{FIRST + SECOND + 2} samples, 2 new" in run.stdout
    assert f"{FIRST + SECOND + 2} removed from {spool}" in run.stdout
    assert Spool(spool).samples() == []
