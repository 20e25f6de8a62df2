"""How a sweep task runs a command: through the guard (mnist_dvc/sweep/guard.py, so that it dies
with the task's worker), in the task's environment, with a deadline, its output (stdout and
stderr together) kept in a file and read back when it ends.

Only the standard library and mnist_dvc.commands at the top: a Ray worker imports it with
mnist_dvc/sweep/task.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from mnist_dvc.commands import NO_PROMPTS

# The most one git or DVC call to a remote may take (a clone, a pull of the prepared data, a
# push): a server that stops answering fails the task, which Ray then retries.
REMOTE_TIMEOUT_S = 1800.0
TIMED_OUT = 124  # the exit status a timed-out command is given, as timeout(1) does


def task_env(cpus: int) -> dict[str, str]:
    """The environment of the commands: this interpreter's `python` and `dvc` first on PATH
    (dvc.yaml runs `python -m stages ...`), and TensorFlow's threads as many as the CPUs the
    task holds, so that experiments side by side on one node never share a core. Under
    `numerics: portable` the thread count changes no bit (mnist_dvc/portable/), so a task's
    model has the bytes `dvc exp run` gives anywhere."""
    threads = str(cpus)
    return {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "DVC_NO_ANALYTICS": "1",
        **NO_PROMPTS,
        "TF_NUM_INTRAOP_THREADS": threads,
        "TF_NUM_INTEROP_THREADS": threads,
        "OMP_NUM_THREADS": threads,
    }


def guarded(
    cmd: list[str],
    cwd: Path,
    env: dict[str, str] | None = None,
    timeout: float | None = REMOTE_TIMEOUT_S,
) -> tuple[int, str]:
    """A command through mnist_dvc.sweep.guard (it dies with this process), its output in a
    file (DVC and TensorFlow write a lot) that is read back afterwards. After `timeout`
    seconds the guard ends it (exit status TIMED_OUT, its output's last line saying so)."""
    guard = [sys.executable, "-m", "mnist_dvc.sweep.guard", str(os.getpid()), "--"]
    with tempfile.TemporaryFile("w+", errors="replace") as log:
        proc = subprocess.Popen(
            [*guard, *cmd],
            cwd=cwd,
            env=env or task_env(1),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            code = proc.wait(timeout=timeout)
        except BaseException as error:
            proc.terminate()  # the guard then ends the command's whole process group
            proc.wait()
            if not isinstance(error, subprocess.TimeoutExpired):
                raise
            code = TIMED_OUT
            print(f"\ntimed out after {timeout:g} s", file=log)
        log.seek(0)
        return code, log.read()


def dvc(*args: str) -> list[str]:
    return [sys.executable, "-m", "dvc", *args]
