"""Run a command so that it dies with the process that started it.

    python -m mnist_dvc.sweep.guard PARENT_PID -- COMMAND...

A sweep task runs `dvc exp run` through this guard. When the task's Ray worker dies (its node
went down, or the driver was stopped), nothing in the worker can clean up; the kernel then
sends this guard SIGTERM (Linux's parent-death signal), and the guard ends the command's whole
process group: DVC and the stage it runs, which would otherwise go on training in a clone that
nobody will push. The stages take SIGTERM as an interruption and clean up their partial files.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time

PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
GRACE_S = 10.0  # how long the group gets to clean up after SIGTERM before SIGKILL


def die_with_parent(parent: int) -> bool:
    """Ask for SIGTERM when the parent dies; False if it is already gone."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    # The parent may have died before prctl: then this process already has another parent.
    return os.getppid() == parent


def end_group(pgid: int, child: subprocess.Popen | None) -> None:
    """SIGTERM to the command's process group; SIGKILL to whatever is left after GRACE_S."""
    try:
        os.killpg(pgid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + GRACE_S
    while time.monotonic() < deadline:
        if child is not None:
            child.poll()  # reap it: a zombie would still count as a member of the group
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) < 3 or args[1] != "--" or not args[0].isdigit():
        print(
            "sweep_guard: usage: python -m mnist_dvc.sweep.guard PARENT_PID -- COMMAND...",
            file=sys.stderr,
        )
        return 2
    started: list[subprocess.Popen] = []

    def stop(signum: int, _frame: object) -> None:
        if started:
            end_group(started[0].pid, started[0])
        os._exit(128 + signum)

    # Handlers first: a signal that comes before the command starts must not orphan it.
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, stop)
    if not die_with_parent(int(args[0])):
        return 143
    # Its own session: one killpg reaches DVC and every stage process it starts.
    child = subprocess.Popen(args[2:], start_new_session=True)
    started.append(child)
    return child.wait()


if __name__ == "__main__":
    sys.exit(main())
