"""Helpers the tests share: synthetic IDX data, quick-run params, running stages and `dvc`
the way a user does, a throwaway git repository of this work tree, and a local HTTP mirror."""

from __future__ import annotations

import base64
import contextlib
import gzip
import http.server
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import psutil
import pytest
import yaml

from mnist_dvc import mnist

REPO_ROOT = Path(__file__).resolve().parent.parent

# `python` in dvc.yaml must be this environment's interpreter, as after the README's set-up.
ENV = {
    **os.environ,
    "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    "DVC_NO_ANALYTICS": "1",
}


def missing_prerequisite(message: str) -> None:
    """Skip a test whose system prerequisite is missing; under CI=true that is a failure."""
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def small_mnist_arrays(count: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Random uint8 images and labels shaped like MNIST's."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(count, mnist.IMAGE_ROWS, mnist.IMAGE_COLS), dtype=np.uint8)
    labels = rng.integers(0, mnist.NUM_CLASSES, size=count, dtype=np.uint8)
    return images, labels


def write_params(path: Path, *, numerics: str | None = None, **train_overrides) -> Path:
    """The committed params.yaml with some `train` values replaced (quick runs), and another
    `numerics` if given."""
    params = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
    params["train"].update(train_overrides)
    if numerics is not None:
        params["numerics"] = numerics
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


def write_sources(path: Path, sources: list[str], timeout_s: float | None = None) -> Path:
    """The committed sources.yaml with another list of sources (and another timeout)."""
    settings = yaml.safe_load((REPO_ROOT / "sources.yaml").read_text())
    settings["sources"] = sources
    if timeout_s is not None:
        settings["timeout_s"] = timeout_s
    path.write_text(yaml.safe_dump(settings, sort_keys=False))
    return path


def run_python(code: str, *args: object) -> subprocess.CompletedProcess:
    """`python -c code args...` with this checkout importable, in a fresh process (TensorFlow's
    process-wide state starts anew); it must succeed."""
    run = subprocess.run(
        [sys.executable, "-c", code, *map(str, args)],
        cwd=REPO_ROOT,
        env={**ENV, "PYTHONPATH": str(REPO_ROOT)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    return run


def run_stage_module(name: str, cwd: Path, **env: str) -> subprocess.CompletedProcess:
    """`python -m stages <name>` of this checkout in `cwd`, as dvc.yaml runs it."""
    return subprocess.run(
        [sys.executable, "-m", "stages", name],
        cwd=cwd,
        env={**ENV, "PYTHONPATH": str(REPO_ROOT), **env},
        capture_output=True,
        text=True,
        timeout=600,
    )


def train_in(
    work: Path,
    prepared: Path,
    *,
    numerics: str | None = None,
    env: dict[str, str] | None = None,
    **train_overrides,
) -> subprocess.CompletedProcess:
    """The train stage run in `work` on `prepared` (linked as work/data/prepared) with
    params.yaml's train section overridden (and `numerics`, and more environment, if given);
    it must succeed. The model is in work/models."""
    (work / "data").mkdir(exist_ok=True)
    if not (work / "data" / "prepared").exists():
        (work / "data" / "prepared").symlink_to(prepared)
    write_params(work / "params.yaml", numerics=numerics, **train_overrides)
    run = run_stage_module("train", work, **(env or {}))
    assert run.returncode == 0, run.stderr[-3000:]
    return run


def sh(*args: str, cwd: Path, check: bool = True, **env: str) -> subprocess.CompletedProcess:
    run = subprocess.run(
        args, cwd=cwd, env={**ENV, **env}, capture_output=True, text=True, timeout=900
    )
    if check and run.returncode != 0:
        output = f"{run.stdout[-3000:]}\n{run.stderr[-3000:]}"
        pytest.fail(f"{' '.join(args)} failed ({run.returncode}):\n{output}")
    return run


def make_repo(dest: Path) -> Path:
    """A new git repository holding this work tree's files as git sees them (a clone of the
    working state, uncommitted edits included)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO_ROOT, capture_output=True, text=True, check=True,
    ).stdout.split("\0")  # fmt: skip
    for name in filter(None, listed):
        if (REPO_ROOT / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO_ROOT / name, dest / name)
    sh("git", "init", "-q", "-b", "main", cwd=dest)
    sh("git", "config", "user.email", "test@example.com", cwd=dest)
    sh("git", "config", "user.name", "test", cwd=dest)
    sh("git", "add", "-A", cwd=dest)
    sh("git", "commit", "-qm", "copy of the work tree", cwd=dest)
    return dest


def stop_queue_workers(repo: Path, grace_s: float = 15.0) -> None:
    """Terminate, then kill, each queue worker still running, by the PID DVC recorded for it
    in .dvc/tmp/exps/celery/dvc-exp-worker-N.pid (where that PID is still a queue worker)."""
    workers = []
    for pidfile in (repo / ".dvc" / "tmp" / "exps" / "celery").glob("dvc-exp-worker-*.pid"):
        with contextlib.suppress(OSError, ValueError, psutil.Error):
            worker = psutil.Process(int(pidfile.read_text().strip()))
            if "queue-worker" in worker.cmdline():
                workers.append(worker)
    for worker in workers:
        with contextlib.suppress(psutil.NoSuchProcess):
            worker.terminate()
    _, alive = psutil.wait_procs(workers, timeout=grace_s)
    for worker in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            worker.kill()


def gzip_files(raw_dir: Path, dest: Path) -> Path:
    """The four IDX files gzipped, laid out like the public mirrors."""
    dest.mkdir(parents=True, exist_ok=True)
    for file in mnist.FILES:
        with (
            open(raw_dir / file.name, "rb") as src,
            gzip.open(dest / f"{file.name}.gz", "wb", compresslevel=1) as out,
        ):
            shutil.copyfileobj(src, out)
    return dest


HANG_S = 15.0  # how long /slow/ keeps a client waiting before it gives up


MIRROR_CREDENTIALS = ("mnist-user", "s3cr:et/pw")  # what /auth/ asks for, in basic auth
DRIP_S = 0.5  # /drip/ and /drip-head/ send one byte this often
DRIP_BYTES = 120  # and stop after this many (a minute): a client that stays is not a test


class _Mirror(http.server.BaseHTTPRequestHandler):
    """/good/<file>: the file; /throttled/<file>: the same, 64 KiB every 50 ms; /auth/<file>:
    the same with MIRROR_CREDENTIALS only (401 otherwise); /html/...: an HTML error page;
    /wrong/...: gzip of the wrong bytes; /slow/...: no answer; /huge/...: a body of 1 GiB
    announced, none sent; /drip/<file>: the file's head, then its body one byte every DRIP_S;
    /drip-head/...: the response's head itself one byte every DRIP_S; /moved/<port>/<rest>: a
    302 to http://127.0.0.1:<port>/<rest>; /moved-to-ftp/...: a 302 to an ftp URL; else 404.
    Every request's path and Authorization header go to `log`."""

    gz_dir: Path
    log: list[tuple[str, str | None]]

    def do_GET(self):
        self.log.append((self.path, self.headers.get("Authorization")))
        kind, _, name = self.path.strip("/").partition("/")
        if kind in ("moved", "moved-to-ftp"):
            port, _, rest = name.partition("/")
            where = f"http://127.0.0.1:{port}/{rest}" if kind == "moved" else "ftp://h/x.gz"
            self.send_response(302)
            self.send_header("Location", where)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if kind == "drip-head":
            self._drip(b"HTTP/1.1 200 OK\r\nContent-Type: application/gzip\r\nX-Pad: " + b"." * 200)
            return
        if kind == "auth":
            expected = base64.b64encode(":".join(MIRROR_CREDENTIALS).encode()).decode()
            if self.headers.get("Authorization") != f"Basic {expected}":
                self.send_error(401)
                return
            kind = "good"
        if kind == "huge":
            self.send_response(200)
            self.send_header("Content-Type", "application/gzip")
            self.send_header("Content-Length", str(1 << 30))
            self.end_headers()
            return
        if kind == "drip" and (self.gz_dir / name).is_file():
            self.send_response(200)
            self.send_header("Content-Type", "application/gzip")
            self.send_header("Content-Length", str((self.gz_dir / name).stat().st_size))
            self.end_headers()
            self._drip((self.gz_dir / name).read_bytes())
            return
        if kind in ("good", "throttled") and (self.gz_dir / name).is_file():
            body, content_type = (self.gz_dir / name).read_bytes(), "application/gzip"
        elif kind == "html":
            body, content_type = b"<html><body>Quota exceeded</body></html>", "text/html"
        elif kind == "wrong":
            body, content_type = gzip.compress(b"\0\0\x08\x03not mnist"), "application/gzip"
        elif kind == "slow":
            time.sleep(HANG_S)
            return
        else:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        step = 1 << 16 if kind == "throttled" else len(body)
        for start in range(0, len(body), step):
            self.wfile.write(body[start : start + step])
            if kind == "throttled":
                time.sleep(0.05)

    def _drip(self, data: bytes) -> None:
        """`data` one byte at a time, DRIP_BYTES of it at most, until the client goes."""
        try:
            for byte in data[:DRIP_BYTES]:
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
                time.sleep(DRIP_S)
        except OSError:  # the client gave up: what the test wants
            pass

    def log_message(self, *args):
        pass


@contextmanager
def serve_mirror(gz_dir: Path, log: list[tuple[str, str | None]] | None = None) -> Iterator[str]:
    """An HTTP server on 127.0.0.1 serving `gz_dir` as _Mirror says, each request's path and
    Authorization header appended to `log`; stopped on exit."""
    handler = type("Handler", (_Mirror,), {"gz_dir": gz_dir, "log": [] if log is None else log})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
