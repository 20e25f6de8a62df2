"""mnist_dvc/sweep/guarded.py without Ray: a task's remote calls end at their deadline, with
whatever they started, and say so in their last line."""

from __future__ import annotations

import os
import signal
import time

import pytest

from mnist_dvc.sweep.guarded import TIMED_OUT, guarded


@pytest.mark.slow  # the guard gives the group up to 10 s to end
def test_a_remote_call_past_its_deadline_is_ended_with_its_process_group(tmp_path):
    pidfile = tmp_path / "grandchild"
    start = time.monotonic()
    code, output = guarded(
        ["sh", "-c", f"sleep 300 & echo $! > {pidfile}; wait"], tmp_path, timeout=1
    )
    assert time.monotonic() - start < 20  # 1 s, then the guard's grace for the group
    assert code == TIMED_OUT
    assert output.strip().splitlines()[-1] == "timed out after 1 s"
    grandchild = int(pidfile.read_text())
    for _ in range(100):
        try:
            os.kill(grandchild, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    os.kill(grandchild, signal.SIGKILL)
    raise AssertionError(f"sleep {grandchild} outlived the deadline")
