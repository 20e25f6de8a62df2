"""mnist_dvc/commands.py: a command's failure as one redacted line; a deadline that ends the
command's whole process group."""

import os
import signal
import time

import pytest

from mnist_dvc.commands import last_line, run
from mnist_dvc.errors import ToolError
from mnist_dvc.redact import redact
from tests.servers import free_port


def test_a_failure_is_one_redacted_line(tmp_path):
    """git hides a URL's password in its own words; the command line in front of them must
    not show it either (issue 28: `mnist-serve --repo https://user:pw@...`)."""
    url = f"https://user:hunter2@127.0.0.1:{free_port()}/team.git"
    with pytest.raises(ToolError) as failed:
        run(["git", "ls-remote", url], tmp_path, error=ToolError, timeout=60)
    message = str(failed.value)
    assert "hunter2" not in message and "\n" not in message
    assert message.startswith(f"git ls-remote {redact(url)}: ")


def test_a_timeout_ends_the_whole_process_group(tmp_path):
    """At the deadline the program and what it started (git's remote helpers, npm's workers)
    are killed, not only the program: nothing is left running."""
    pidfile = tmp_path / "grandchild"
    script = f"sleep 300 & echo $! > {pidfile}; wait"
    start = time.monotonic()
    with pytest.raises(ToolError, match=r"^sh: timed out after 1 s$"):
        run(["sh", "-c", script], tmp_path, error=ToolError, name="sh", timeout=1)
    assert time.monotonic() - start < 10
    grandchild = int(pidfile.read_text())
    for _ in range(50):
        try:
            os.kill(grandchild, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        os.kill(grandchild, signal.SIGKILL)
        pytest.fail(f"sleep {grandchild} outlived the timeout")


def test_gits_reason_is_told_not_its_advice(tmp_path):
    """`git ls-remote /nowhere` ends with advice after its reason: the message was
    'git ls-remote /nowhere: and the repository exists.' (mnist-serve --repo, mnist-release)."""
    with pytest.raises(ToolError) as failed:
        run(["git", "ls-remote", str(tmp_path / "nowhere")], tmp_path, error=ToolError, timeout=60)
    assert str(failed.value) == (
        f"git ls-remote {tmp_path / 'nowhere'}: fatal: '{tmp_path / 'nowhere'}' does not appear "
        "to be a git repository"
    )


def test_the_last_line_skips_hints_and_keeps_other_tools_last_words():
    rejected = (
        "To /r.git\n ! [rejected] main -> main (fetch first)\nerror: failed to push\nhint: x\n"
    )
    assert last_line(rejected, "none") == "error: failed to push"
    assert last_line("Cloning into 'x'...\nERROR: it failed\n", "none") == "ERROR: it failed"
    assert last_line(b"", "exit status 1") == "exit status 1"
