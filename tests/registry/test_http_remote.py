"""Public, read-only distribution: the local DVC remote's folder published (`make publish`) to a
folder that a real nginx serves read-only on 127.0.0.1, used as an `http` remote by consumers
without credentials: `dvc artifacts get`, `dvc pull` in a clone, `dvc.api.open`; and what they
see when the server is down or a file is missing. nginx runs from its own config in a temporary
folder, as a child process stopped by its PID."""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from mnist_dvc.released import ARTIFACT
from tests.helpers import sh
from tests.registry.test_registry import (
    ARTIFACTS,
    V1,
    V2,
    Registry,
    expected_tree,
    locked_outputs,
    shared_registry,
    tree,
)
from tests.servers import answers, free_port, require, wait_until

pytestmark = pytest.mark.slow  # runs dvc repro (shared registry), git and nginx

NGINX = "/usr/sbin/nginx"
PREFIX = "mnist-dvc"  # the URL path the remote's folder is served under


@dataclass
class Nginx:
    url: str  # http://127.0.0.1:PORT/mnist-dvc: the `http` remote's URL
    folder: Path  # its config, logs and pid file
    process: subprocess.Popen

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()  # the master stops its workers, then exits
            self.process.wait(timeout=15)

    def requests(self) -> str:
        return (self.folder / "access.log").read_text()


def _config(folder: Path, served: Path, port: int) -> str:
    temp = folder / "temp"
    # Run as root (CI), nginx's workers would be `nobody`, who cannot read pytest's 0700 folders.
    user = "user root;" if os.geteuid() == 0 else ""
    return f"""daemon off;
{user}
worker_processes 1;
pid {folder}/nginx.pid;
error_log {folder}/error.log;
events {{ worker_connections 64; }}
http {{
    access_log {folder}/access.log;
    client_body_temp_path {temp}/body;
    proxy_temp_path {temp}/proxy;
    fastcgi_temp_path {temp}/fastcgi;
    uwsgi_temp_path {temp}/uwsgi;
    scgi_temp_path {temp}/scgi;
    default_type application/octet-stream;
    server {{
        listen 127.0.0.1:{port};
        location /{PREFIX}/ {{
            alias {served}/;
            limit_except GET {{ deny all; }}  # GET and HEAD only: read-only
        }}
    }}
}}
"""


@contextmanager
def nginx(served: Path, folder: Path) -> Iterator[Nginx]:
    require((NGINX,), "nginx")
    (folder / "temp").mkdir(parents=True, exist_ok=True)
    port = free_port()
    conf = folder / "nginx.conf"
    conf.write_text(_config(folder, served, port))
    command = [NGINX, "-p", str(folder), "-e", str(folder / "error.log"), "-c", str(conf)]
    with open(folder / "nginx.out", "w") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    server = Nginx(f"http://127.0.0.1:{port}/{PREFIX}", folder, process)
    try:
        wait_until(lambda: answers(port) or process.poll() is not None, "nginx", limit_s=30)
        assert process.poll() is None, (folder / "nginx.out").read_text()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def registry(tmp_path_factory, real_raw_dir) -> Registry:
    return shared_registry(tmp_path_factory)


@pytest.fixture(scope="module")
def published(registry, tmp_path_factory) -> Path:
    """The local remote copied by `make publish` to the web server's folder."""
    dest = tmp_path_factory.mktemp("www") / PREFIX
    run = sh("make", "-s", "publish", f"DEST={dest}", "REMOTE=store", cwd=registry.producer)
    assert "copied" in run.stdout and "dvc remote add public" in run.stdout, run.stdout
    return dest


@pytest.fixture(scope="module")
def server(published, tmp_path_factory) -> Iterator[Nginx]:
    with nginx(published, tmp_path_factory.mktemp("nginx")) as running:
        yield running


def public(server: Nginx) -> tuple[str, ...]:
    """How a consumer names the public remote: `--remote public` alone once the project commits
    `dvc remote add public URL`; `--remote-config url=...` sets or overrides its URL."""
    return ("--remote", "public", "--remote-config", f"url={server.url}")


def get(registry: Registry, dest: Path, server: Nginx, *how: str) -> subprocess.CompletedProcess:
    """`dvc artifacts get` over HTTP, from an empty folder outside any clone, no credentials."""
    return sh("dvc", "artifacts", "get", str(registry.origin), ARTIFACT, *how, *public(server),
              "-o", str(dest), cwd=dest.parent, check=False, AWS_ACCESS_KEY_ID="",
              AWS_SECRET_ACCESS_KEY="")  # fmt: skip


def object_path(digest: str) -> str:
    return f"files/md5/{digest[:2]}/{digest[2:]}"


def test_publish_copies_the_content_addressed_tree(registry, published):
    assert tree(published) == tree(registry.storage)
    again = sh("make", "-s", "publish", f"DEST={published}", "REMOTE=store", cwd=registry.producer)
    assert "copied 0 new files" in again.stdout  # names are md5s: nothing is ever replaced
    assert not list(published.rglob(".*.partial"))


def test_anyone_gets_each_version_over_http(registry, server, tmp_path):
    for version in (V1, V2):
        dest = tmp_path / version
        run = get(registry, dest, server, f"--rev={version}")
        assert run.returncode == 0, run.stderr
        assert tree(dest) == expected_tree(registry, f"{ARTIFACT}@{version}")
        # ...and the bytes came from nginx:
        h5 = locked_outputs(registry.origin, f"{ARTIFACT}@{version}", registry.path)
        assert f"GET /{PREFIX}/{object_path(h5['models/model.h5'])} " in server.requests()


def test_dvc_pull_and_dvc_api_open_over_http(registry, server, tmp_path):
    clone = tmp_path / "clone"
    sh("git", "clone", "-q", "--branch", f"{ARTIFACT}@{V1}", str(registry.origin), str(clone),
       cwd=tmp_path)  # fmt: skip
    sh("dvc", "remote", "add", "public", server.url, cwd=clone)
    locked = locked_outputs(clone, "HEAD", registry.path)
    sh("dvc", "pull", "-r", "public", *locked, cwd=clone)
    for name in ("models/model.json", "models/model.h5"):
        assert tree(clone / "models")[name.removeprefix("models/")] == locked[name]
    code = (
        "import dvc.api, hashlib, sys\n"
        "with dvc.api.open('models/model.h5', repo=sys.argv[1], rev=sys.argv[2], mode='rb',\n"
        "                  remote='public', remote_config={'url': sys.argv[3]}) as f:\n"
        "    print(hashlib.md5(f.read()).hexdigest())\n"
    )
    rev = f"{ARTIFACT}@{V2}"
    run = sh(sys.executable, "-c", code, str(registry.origin), rev, server.url, cwd=tmp_path)
    locked = locked_outputs(registry.origin, rev, registry.path)
    assert run.stdout.strip() == locked["models/model.h5"]


def test_the_server_refuses_writes(registry, server, published, tmp_path):
    for method in ("PUT", "POST", "DELETE"):
        request = urllib.request.Request(f"{server.url}/files/md5/00/x", b"x", method=method)
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=10)
        assert refused.value.code == 403
    before = tree(published)
    clone = tmp_path / "clone"
    sh("git", "clone", "-q", str(registry.origin), str(clone), cwd=tmp_path)
    (clone / "extra.txt").write_text("not the team's\n")
    sh("dvc", "add", "-q", "extra.txt", cwd=clone)
    sh("dvc", "remote", "add", "public", server.url, cwd=clone)
    run = sh("dvc", "push", "-r", "public", "extra.txt", cwd=clone, check=False)
    assert run.returncode != 0 and "403, message='Forbidden'" in run.stderr, run.stderr
    assert tree(published) == before


def dvc_error(run: subprocess.CompletedProcess) -> str:
    """DVC's error line. `dvc artifacts get` first says it tried Studio (not configured here:
    harmless), then the reason."""
    assert run.returncode != 0, run.stdout
    studio = "via Studio - No studio config"
    errors = [line for line in run.stderr.splitlines()
              if line.startswith("ERROR:") and studio not in line]  # fmt: skip
    assert len(errors) == 1, run.stderr
    return errors[0]


def nothing_half_written(dest: Path, expected: dict[str, str]) -> None:
    """Whatever DVC left in `dest` is whole (each file has the bytes the version records), and
    the weights it could not get are not there at all."""
    left = tree(dest) if dest.exists() else {}
    assert all(expected.get(name) == digest for name, digest in left.items()), left
    assert "model.h5" not in left


def consumer_failures(registry: Registry, server: Nginx, tmp_path: Path) -> dict[str, str]:
    """What each way of getting v1 says, and that nothing half-written is left."""
    rev = f"{ARTIFACT}@{V1}"
    expected = expected_tree(registry, rev)
    dest = tmp_path / "got"
    said = {"artifacts get": dvc_error(get(registry, dest, server, f"--rev={V1}"))}
    nothing_half_written(dest, expected)
    clone = tmp_path / "clone"
    sh("git", "clone", "-q", "--branch", rev, str(registry.origin), str(clone), cwd=tmp_path)
    sh("dvc", "remote", "add", "--local", "public", server.url, cwd=clone)
    pull = sh("dvc", "pull", "-r", "public", "models/model.h5", cwd=clone, check=False)
    said["pull"] = dvc_error(pull)
    assert not (clone / "models" / "model.h5").exists()
    assert sh("git", "status", "--porcelain", cwd=clone).stdout == ""
    code = (
        "import dvc.api, sys\n"
        "try:\n"
        "    dvc.api.read('models/model.h5', repo=sys.argv[1], rev=sys.argv[2], mode='rb',\n"
        "                 remote='public', remote_config={'url': sys.argv[3]})\n"
        "except Exception as error:\n"
        "    print(type(error).__name__, error)\n"
    )
    api = sh(sys.executable, "-c", code, str(registry.origin), rev, server.url, cwd=tmp_path)
    said["api"] = api.stdout.strip()
    said["pull (all)"] = pull.stderr.strip()
    return said


def keep(name: str, said: dict[str, str]) -> None:
    """The messages as consumers see them, for the README (test-artifacts/ is git-ignored)."""
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / name).write_text("".join(f"## {way}\n{text}\n\n" for way, text in said.items()))


def test_a_file_missing_on_the_server(registry, server, published, tmp_path):
    digest = locked_outputs(registry.origin, f"{ARTIFACT}@{V1}", registry.path)["models/model.h5"]
    obj = published / object_path(digest)
    obj.rename(obj.with_name("aside"))
    try:
        said = consumer_failures(registry, server, tmp_path)
    finally:
        obj.with_name("aside").rename(obj)
    keep("http-file-missing.txt", said)
    assert said["artifacts get"] == (
        f"ERROR: failed to get '{ARTIFACT}' from '{registry.origin}' - Failed to download "
        f"artifact '{ARTIFACT}' via DVC remote: [Errno 2] No storage files available: "
        "'models/model.h5'"
    )
    assert said["pull"] == (
        "ERROR: failed to pull data from the cloud - Checkout failed for following targets:"
    )
    assert said["api"].startswith("PathMissingError The path 'models/model.h5' does not exist")
    assert f'GET /{PREFIX}/{object_path(digest)} HTTP/1.1" 404' in server.requests()


def test_the_server_is_down(registry, published, tmp_path):
    with nginx(published, tmp_path / "nginx") as stopped:
        stopped.stop()
        assert not (stopped.folder / "nginx.pid").exists()  # the master removed it on exit
        said = consumer_failures(registry, stopped, tmp_path)
    keep("http-server-down.txt", said)
    # DVC names the refused connection where it reads a folder's listing first (the exports'
    # models/saved_model/), and a missing file where the artifact has files only.
    line = said["artifacts get"]
    assert "[Errno 111] Connect call failed" in line or "No storage files available" in line
    assert said["pull"].startswith("ERROR: failed to pull data from the cloud")
    assert said["api"].startswith("PathMissingError")
