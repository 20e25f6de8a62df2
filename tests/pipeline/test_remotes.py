"""Push a trained model to real storage, pull only the model into a fresh clone, use it.

One remote of each kind: the default local folder (in .dvc/config), S3 on Ceph's RADOS
Gateway and SSH on OpenSSH's sshd, both started on 127.0.0.1 by tests/servers.py."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from stages.evaluate import evaluate
from tests.helpers import sh
from tests.servers import ceph_rgw, free_port, sshd

pytestmark = pytest.mark.slow  # runs stages, dvc, servers or a browser

MODEL_FILES = ("models/model.json", "models/model.h5")


@pytest.fixture(scope="module")
def origin(quick_run, tmp_path_factory) -> Path:
    """A repository with a quick run reproduced and committed, as a team member leaves it."""
    return quick_run.copy(tmp_path_factory.mktemp("team") / "origin")


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    with ceph_rgw(tmp_path_factory.mktemp("ceph")) as server:
        yield server


@pytest.fixture(scope="module")
def ssh(tmp_path_factory):
    with sshd(tmp_path_factory.mktemp("sshd")) as server:
        yield server


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def state(repo: Path) -> dict[str, str]:
    """Every file of the work tree and the DVC cache, with its md5 (git's own files aside)."""
    return {
        str(p.relative_to(repo)): md5(p)
        for p in sorted(repo.rglob("*"))
        if p.is_file() and ".git" not in p.relative_to(repo).parts[:1]
        and "tmp" not in p.relative_to(repo).parts[:2]
    }  # fmt: skip


def clone(origin: Path, dest: Path) -> Path:
    sh("git", "clone", "-q", str(origin), str(dest), cwd=origin.parent)
    return dest


def round_trip(origin: Path, dest: Path, remote: str, configure_clone: Callable[[Path], None],
               real_prepared_dir: Path) -> None:  # fmt: skip
    """Push from `origin`; pull only the model into a fresh clone; check it."""
    sh("dvc", "push", "-r", remote, *MODEL_FILES, cwd=origin)
    fresh = clone(origin, dest)
    configure_clone(fresh)
    assert not (fresh / ".dvc" / "cache").exists()  # nothing local: all comes from the remote
    pulled = sh("dvc", "pull", "-r", remote, "train", cwd=fresh)
    assert "2 files fetched" in pulled.stdout or "2 files added" in pulled.stdout, pulled.stdout
    # (a) byte-identical to what was pushed, and to what dvc.lock records
    lock = yaml.safe_load((fresh / "dvc.lock").read_text())
    locked = {o["path"]: o["md5"] for o in lock["stages"]["train"]["outs"]}
    for name in MODEL_FILES:
        assert (fresh / name).read_bytes() == (origin / name).read_bytes()
        assert md5(fresh / name) == locked[name]
    # (b) no stage ran: no data was fetched or made, no training logs were rewritten
    assert not (fresh / "data" / "raw").exists() and not (fresh / "data" / "prepared").exists()
    assert sh("git", "status", "--porcelain", cwd=fresh).stdout == ""
    # (c) the pulled model scores exactly what the committed metrics.json says
    committed = json.loads((fresh / "metrics.json").read_text())
    metrics, _, _, _ = evaluate(
        real_prepared_dir, fresh / MODEL_FILES[0], fresh / MODEL_FILES[1], 1000, "portable"
    )
    assert metrics["accuracy"] == committed["accuracy"]


def test_default_local_remote(origin, real_prepared_dir):
    storage = origin.parent / "mnist-dvc-storage"  # .dvc/config: beside the clone
    assert "local" in sh("dvc", "remote", "default", cwd=origin).stdout
    round_trip(origin, origin.parent / "local-clone", "local", lambda repo: None,
               real_prepared_dir)  # fmt: skip
    assert any(storage.rglob("*"))
    # One version of the model without a clone: `dvc get` reads the repository's remote.
    rev = sh("git", "rev-parse", "HEAD", cwd=origin).stdout.strip()
    got = origin.parent / "got-model.h5"
    sh("dvc", "get", str(origin), "models/model.h5", "--rev", rev, "-o", str(got),
       cwd=origin.parent)  # fmt: skip
    assert got.read_bytes() == (origin / "models" / "model.h5").read_bytes()


def _add_s3(repo: Path, s3, bucket: str, name: str = "s3") -> None:
    sh("dvc", "remote", "add", "-f", name, f"s3://{bucket}/dvc", cwd=repo)
    sh("dvc", "remote", "modify", name, "endpointurl", s3.endpoint, cwd=repo)
    _s3_credentials(repo, s3, name)


def _s3_credentials(repo: Path, s3, name: str = "s3", secret: str | None = None) -> None:
    sh("dvc", "remote", "modify", "--local", name, "access_key_id", s3.access_key, cwd=repo)
    sh("dvc", "remote", "modify", "--local", name, "secret_access_key", secret or s3.secret_key,
       cwd=repo)  # fmt: skip


def test_s3_remote_on_ceph(origin, s3, real_prepared_dir):
    s3.make_bucket("models")
    _add_s3(origin, s3, "models")
    # Credentials stay out of git: they are in .dvc/config.local, which DVC ignores for git.
    assert s3.secret_key not in (origin / ".dvc" / "config").read_text()
    assert s3.secret_key in (origin / ".dvc" / "config.local").read_text()
    sh("git", "commit", "-qam", "S3 remote", cwd=origin)
    round_trip(origin, origin.parent / "s3-clone", "s3", lambda repo: _s3_credentials(repo, s3),
               real_prepared_dir)  # fmt: skip


def _add_ssh(repo: Path, ssh, folder: Path, name: str = "ssh") -> None:
    sh("dvc", "remote", "add", "-f", name, f"{ssh.url_prefix}{folder}", cwd=repo)
    _ssh_key(repo, ssh, name)


def _ssh_key(repo: Path, ssh, name: str = "ssh", keyfile: Path | None = None) -> None:
    sh("dvc", "remote", "modify", "--local", name, "keyfile", str(keyfile or ssh.keyfile),
       cwd=repo)  # fmt: skip


def test_ssh_remote_on_sshd(origin, ssh, real_prepared_dir, tmp_path):
    storage = tmp_path / "ssh-storage"
    storage.mkdir()
    _add_ssh(origin, ssh, storage)
    sh("git", "commit", "-qam", "SSH remote", cwd=origin)
    round_trip(origin, origin.parent / "ssh-clone", "ssh", lambda repo: _ssh_key(repo, ssh),
               real_prepared_dir)  # fmt: skip
    assert any(p.is_file() for p in storage.rglob("*"))


# Failures: each gives a clear error and leaves the work tree and the cache as they were.


def _fails_cleanly(repo: Path, *command: str) -> str:
    before = state(repo)
    run = sh(*command, cwd=repo, check=False)
    assert run.returncode != 0, run.stdout
    assert state(repo) == before
    return run.stderr


@pytest.fixture
def fresh_clone(origin, tmp_path) -> Path:
    return clone(origin, tmp_path / "clone")


def _says_denied(error: str) -> bool:
    # S3 words it per call: 403 Forbidden (HEAD) or SignatureDoesNotMatch (LIST).
    return any(word in error for word in ("Forbidden", "403", "SignatureDoesNotMatch"))


def test_s3_wrong_credentials(origin, fresh_clone, s3):
    s3.make_bucket("creds")
    _add_s3(origin, s3, "creds", name="creds")
    _s3_credentials(origin, s3, "creds", secret="not-the-secret")
    error = _fails_cleanly(origin, "dvc", "push", "-r", "creds", *MODEL_FILES)
    assert "ERROR" in error and _says_denied(error), error
    _add_s3(fresh_clone, s3, "models", name="s3")
    _s3_credentials(fresh_clone, s3, "s3", secret="not-the-secret")
    error = _fails_cleanly(fresh_clone, "dvc", "pull", "-r", "s3", "train")
    assert "ERROR" in error and _says_denied(error), error


def test_s3_missing_bucket(origin, s3):
    _add_s3(origin, s3, "no-such-bucket", name="nobucket")
    error = _fails_cleanly(origin, "dvc", "push", "-r", "nobucket", *MODEL_FILES)
    assert "NoSuchBucket" in error or "does not exist" in error, error


def test_ssh_wrong_key(origin, ssh, tmp_path):
    stranger = tmp_path / "stranger_key"
    sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(stranger), cwd=tmp_path)
    _add_ssh(origin, ssh, tmp_path / "store", name="badkey")
    _ssh_key(origin, ssh, "badkey", keyfile=stranger)
    error = _fails_cleanly(origin, "dvc", "push", "-r", "badkey", *MODEL_FILES)
    assert "ERROR" in error and "ermission denied" in error, error


def test_stopped_ssh_server(origin, tmp_path):
    with sshd(tmp_path / "sshd") as server:
        _add_ssh(origin, server, tmp_path / "store", name="stopped")
        server.stop()
        error = _fails_cleanly(origin, "dvc", "push", "-r", "stopped", *MODEL_FILES)
    assert "ERROR" in error and "Connect call failed" in error, error  # ECONNREFUSED


def test_stopped_s3_server(origin, tmp_path):
    sh("dvc", "remote", "add", "-f", "gone", "s3://models/dvc", cwd=origin)
    sh("dvc", "remote", "modify", "gone", "endpointurl", f"http://127.0.0.1:{free_port()}",
       cwd=origin)  # fmt: skip
    sh("dvc", "remote", "modify", "--local", "gone", "access_key_id", "x", cwd=origin)
    sh("dvc", "remote", "modify", "--local", "gone", "secret_access_key", "y", cwd=origin)
    error = _fails_cleanly(origin, "dvc", "push", "-r", "gone", *MODEL_FILES)
    assert "ERROR" in error and "connect" in error.lower(), error
