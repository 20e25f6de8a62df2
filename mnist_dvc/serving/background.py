"""mnist-serve in a child process for the length of a `with` block: what the load benchmark and
the tests need, and a notebook or a script can use too.

    with serve_in_background(["--model-dir", "models"], log=Path("serve.log")) as (url, pid):
        urllib.request.urlopen(f"{url}/healthz")

The server listens on a free port of 127.0.0.1 and is stopped by its PID (SIGTERM, then
SIGKILL) however the block ends.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

MODULE = (sys.executable, "-m", "mnist_dvc.serving")
STOP_TIMEOUT_S = 20


class ServerDidNotStart(RuntimeError):
    """mnist-serve exited or did not answer in time; the message ends with its log's tail."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/healthz", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


@contextmanager
def serve_in_background(
    args: Sequence[str],
    *,
    log: Path,
    command: Sequence[str] = MODULE,
    env: Mapping[str, str] | None = None,
    start_timeout_s: float = 120,
) -> Iterator[tuple[str, int]]:
    """Run `command` (mnist-serve) with `args` and a free `--port`, its output going to `log`;
    yield its URL and PID once GET /healthz answers."""
    port = free_port()
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*command, *args, "--port", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=None if env is None else dict(env),
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + start_timeout_s
        while not answers(url):
            if proc.poll() is not None:
                raise ServerDidNotStart(f"mnist-serve exited {proc.returncode}: {tail(log)}")
            if time.monotonic() > deadline:
                raise ServerDidNotStart(
                    f"mnist-serve did not answer in {start_timeout_s:.0f} s: {tail(log)}"
                )
            time.sleep(0.25)
        yield url, proc.pid
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(timeout=STOP_TIMEOUT_S)


def tail(log: Path, chars: int = 2000) -> str:
    return log.read_text(errors="replace")[-chars:]
