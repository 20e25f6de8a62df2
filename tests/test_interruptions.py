"""SIGKILL in the middle of each stage, and a second `dvc repro` while one runs: nothing
half-written is left where an output belongs, DVC notices, and the next run completes."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from mnist_dvc import mnist
from tests.helpers import ENV, make_repo, serve_mirror, sh, write_params

QUICK = {"epochs": 1, "train_images": 2000}


@pytest.fixture(scope="module")
def repo(tmp_path_factory, real_raw_dir) -> Path:
    """A repository where a quick `dvc repro` has run; every test leaves it up to date."""
    repo = make_repo(tmp_path_factory.mktemp("repo"))
    write_params(repo / "params.yaml", **QUICK)
    sh("git", "commit", "-qam", "quick run", cwd=repo)
    sh("dvc", "repro", cwd=repo)
    return repo


def start(cwd: Path, *args: str, **env: str) -> tuple[subprocess.Popen, Path]:
    """Start a command in its own process group, its output going to a log file."""
    log = cwd.parent / f"{cwd.name}-{time.monotonic_ns()}.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            args, cwd=cwd, env={**ENV, "PYTHONUNBUFFERED": "1", **env},
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    return proc, log


def wait_for(condition: Callable[[], bool], proc: subprocess.Popen, log: Path, limit_s=300):
    deadline = time.monotonic() + limit_s
    while not condition():
        if proc.poll() is not None:
            pytest.fail(f"finished before the moment to interrupt it:\n{log.read_text()[-3000:]}")
        if time.monotonic() > deadline:
            os.killpg(proc.pid, signal.SIGKILL)
            pytest.fail(f"waited {limit_s} s in vain:\n{log.read_text()[-3000:]}")
        time.sleep(0.01)


def kill(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGKILL)  # dvc and the stage under it
    proc.wait(timeout=60)


def has_data(folder: Path) -> bool:
    return folder.is_dir() and any(p.is_file() and p.stat().st_size for p in folder.rglob("*"))


def locked_md5(repo: Path, stage: str, path: str) -> str:
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    return next(out["md5"] for out in lock["stages"][stage]["outs"] if out["path"] == path)


def finish_and_check(repo: Path, stage: str) -> None:
    status = sh("dvc", "status", cwd=repo).stdout
    assert f"{stage}:" in status and "changed" in status, status
    # DVC may restore the output from its cache rather than run the stage again.
    sh("dvc", "repro", cwd=repo)
    assert "up to date" in sh("dvc", "status", cwd=repo).stdout
    untracked = sh("git", "status", "--porcelain", "--untracked-files=all", cwd=repo).stdout
    assert "??" not in untracked, untracked  # what a killed stage leaves is hidden and ignored
    sh("dvc", "repro", "-f", stage, cwd=repo)
    assert not list(repo.rglob("*.partial")), "the stage's next run removes what was left"


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}


def test_kill_train_mid_epoch(repo):
    before = snapshot(repo / "models")
    write_params(repo / "params.yaml", epochs=3, train_images=6000)
    proc, log = start(repo, "dvc", "repro")
    wait_for(lambda: "Epoch 2/3" in log.read_text(), proc, log)
    time.sleep(0.5)  # well inside the second epoch
    kill(proc)
    after = snapshot(repo / "models")
    assert after in (before, {".gitignore": before[".gitignore"]}), sorted(after)
    finish_and_check(repo, "train")
    assert (repo / "models" / "model.h5").is_file()


def test_kill_preprocess_while_it_writes(repo):
    before = locked_md5(repo, "preprocess", "data/prepared")
    proc, log = start(repo, "dvc", "repro", "-f", "preprocess")
    wait_for(lambda: has_data(repo / "data" / ".prepared.partial"), proc, log)
    kill(proc)
    assert not (repo / "data" / "prepared").exists()  # DVC removed it; nothing half-made there
    finish_and_check(repo, "preprocess")
    assert locked_md5(repo, "preprocess", "data/prepared") == before


def test_kill_fetch_while_it_downloads(repo, gz_dir, tmp_path):
    params = repo / "params.yaml"
    committed = params.read_text()
    empty_cache = tmp_path / "cache"
    with serve_mirror(gz_dir) as url:
        edited = yaml.safe_load(committed)
        edited["fetch"]["sources"] = [f"{url}/throttled/"]
        params.write_text(yaml.safe_dump(edited, sort_keys=False))
        proc, log = start(repo, "dvc", "repro", "fetch", MNIST_CACHE_DIR=str(empty_cache))
        wait_for(lambda: has_data(repo / "data" / ".raw.partial"), proc, log)
        kill(proc)
    assert not (repo / "data" / "raw").exists()
    assert not any(empty_cache.iterdir()) if empty_cache.exists() else True
    params.write_text(committed)
    finish_and_check(repo, "fetch")
    for file in mnist.FILES:
        mnist.verify(repo / "data" / "raw" / file.name, file)


def test_a_second_repro_is_refused_while_one_runs(repo):
    before = locked_md5(repo, "train", "models/model.h5")
    proc, log = start(repo, "dvc", "repro", "-f", "train")
    wait_for(lambda: "Running stage 'train'" in log.read_text(), proc, log)
    second = sh("dvc", "repro", cwd=repo, check=False)
    assert second.returncode != 0
    # DVC's read/write lock on the outputs names the run that holds them.
    assert "is busy, it is being blocked by" in second.stderr, second.stderr
    assert f"(PID {proc.pid})" in second.stderr
    assert proc.wait(timeout=600) == 0, log.read_text()[-3000:]
    assert locked_md5(repo, "train", "models/model.h5") == before
    assert "up to date" in sh("dvc", "status", cwd=repo).stdout
