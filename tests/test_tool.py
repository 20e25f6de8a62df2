"""The one error boundary of the console scripts (mnist_dvc/tool.py): in-process for each kind of
end, then every console script as a user runs it, with a usage error, --json and a closed pipe."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest

from mnist_dvc.errors import ToolError, UsageError
from mnist_dvc.tool import ToolParser, run_tool, whole_number
from tests.helpers import REPO_ROOT

BIN = Path(sys.executable).parent
# Every console script of pyproject.toml's [project.scripts], and a --json it takes, if any.
SCRIPTS = {
    "mnist-drawings": False,
    "mnist-predict": True,
    "mnist-serve": False,
    "mnist-release": False,
    "mnist-sweep": False,
    "mnist-verify": True,
}


def ended(capsys, work, argv=None, **options) -> tuple[int, str, str]:
    status = run_tool("mnist-demo", work, argv if argv is not None else [], **options)
    out, err = capsys.readouterr()
    return status, out, err


def test_a_refusal_is_one_line_with_its_exit_status(capsys):
    def refuse(_argv):
        raise ToolError("https://user:secret@host/x is not a local folder")

    assert ended(capsys, refuse) == (
        1,
        "",
        "mnist-demo: error: https://user:***@host/x is not a local folder\n",
    )


def test_a_message_of_several_lines_is_told_in_one(capsys):
    def refuse(_argv):
        raise ToolError("first\nsecond\r\n  third")

    assert ended(capsys, refuse)[2] == "mnist-demo: error: first second third\n"


def test_an_os_error_names_its_file(capsys):
    def missing(_argv):
        raise FileNotFoundError(2, "No such file or directory", "models/model.h5")

    assert ended(capsys, missing)[0::2] == (
        1,
        "mnist-demo: error: models/model.h5: No such file or directory\n",
    )


def test_ctrl_c_and_a_bug_and_memory(capsys):
    def interrupted(_argv):
        raise KeyboardInterrupt

    def bug(_argv):
        raise ZeroDivisionError("division by zero")

    def memory(_argv):
        raise MemoryError

    assert ended(capsys, interrupted)[0::2] == (130, "mnist-demo: interrupted\n")

    def interrupted_while_a_module_loads(_argv):
        # what Ctrl-C in a compiled module's initialization becomes (onnxruntime's)
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt as ctrl_c:
            raise ImportError("initialization failed") from ctrl_c

    assert ended(capsys, interrupted_while_a_module_loads)[0::2] == (
        130,
        "mnist-demo: interrupted\n",
    )  # it was 'a bug in mnist-demo', 70
    assert ended(capsys, bug)[0::2] == (
        70,
        "mnist-demo: error: a bug in mnist-demo, please report it: ZeroDivisionError: "
        "division by zero\n",
    )
    status, _, err = ended(capsys, memory)
    assert status == 1 and err.startswith("mnist-demo: error: out of memory")


def test_a_usage_error_is_one_line_and_json_when_asked(capsys):
    def parse(argv):
        parser = ToolParser(prog="mnist-demo")
        parser.add_argument("--json", action="store_true")
        parser.add_argument("--count", type=whole_number(1, 9))
        parser.parse_args(argv)
        return 0

    status, out, err = ended(capsys, parse, ["--count", "99"])
    assert (status, out) == (2, "")
    assert err == (
        "mnist-demo: error: argument --count: 99: must be from 1 to 9 (see mnist-demo --help)\n"
    )
    status, out, err = ended(capsys, parse, ["--json", "--bogus"], json_error=lambda m: {"e": m})
    assert status == 2 and err.count("\n") == 1
    assert json.loads(out) == {"e": "unrecognized arguments: --bogus (see mnist-demo --help)"}
    assert UsageError.exit_status == 2


def test_a_broken_pipe_is_one_line_and_status_141(capsys):
    def closed(_argv):
        raise BrokenPipeError(32, "Broken pipe")

    assert ended(capsys, closed)[0::2] == (
        141,
        "mnist-demo: error: its output was closed before it was all written (broken pipe)\n",
    )


@pytest.mark.parametrize("script", SCRIPTS)
def test_each_console_script_says_its_own_name_in_one_line(script, tmp_path):
    run = subprocess.run(
        [BIN / script, "--no-such-option", *(["digit.png"] if script == "mnist-predict" else [])],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert (run.returncode, run.stdout) == (2, "")
    assert run.stderr.count("\n") == 1, run.stderr
    assert run.stderr.startswith(f"{script}: error: "), run.stderr  # not `release: error:`
    assert run.stderr.endswith(" --help)\n") and "Traceback" not in run.stderr


@pytest.mark.parametrize("script", [name for name, takes in SCRIPTS.items() if takes])
def test_json_is_printed_even_for_a_usage_error(script, tmp_path):
    run = subprocess.run(
        [BIN / script, "--json", "--no-such-option"], cwd=tmp_path, capture_output=True,
        text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == 2 and run.stderr.count("\n") == 1, run.stderr
    document = json.loads(run.stdout)
    message = run.stderr.removeprefix(f"{script}: error: ").strip()
    assert message in json.dumps(document)


def test_a_closed_pipe_ends_in_one_line_not_a_traceback(tmp_path):
    """`mnist-verify --json | true`: the reader has gone before the answer is written."""
    pipeline = f"'{BIN / 'mnist-verify'}' --json --repo '{tmp_path}' | true; echo done"
    for _ in range(3):  # the reader may or may not be gone in time: either way, no traceback
        run = subprocess.run(["bash", "-c", pipeline], capture_output=True, text=True, timeout=120)
        assert "Traceback" not in run.stderr and "Exception ignored" not in run.stderr
        assert run.stderr.count("\n") <= 1, run.stderr


def test_every_console_script_enters_through_the_launcher():
    """Each imports its command inside a boundary (mnist_dvc/console.py)."""
    entries = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert set(entries) == set(SCRIPTS)
    assert all(target.startswith("mnist_dvc.console:") for target in entries.values()), entries


def test_ctrl_c_while_a_command_loads_is_one_line_not_a_traceback(tmp_path):
    """Ctrl-C in the second a console script spends importing (NumPy, FastAPI) was a
    KeyboardInterrupt traceback from inside some library's import."""
    # Python's own Ctrl-C handler first: a shell that starts a job in the background (`cmd &`)
    # hands it SIGINT ignored, and Python then leaves it ignored.
    (tmp_path / "loading.py").write_text(
        "import os, signal\nsignal.signal(signal.SIGINT, signal.default_int_handler)\n"
        "os.kill(os.getpid(), signal.SIGINT)\ndef main():\n    return 0\n"
    )
    code = "from mnist_dvc import console\nexit(console.launch('mnist-demo', 'loading:main'))"
    run = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTHONPATH": str(tmp_path)},
    )  # fmt: skip
    assert (run.returncode, run.stdout, run.stderr) == (130, "", "mnist-demo: interrupted\n")


def test_sigterm_ends_a_command_as_ctrl_c_does_with_its_cleanup(tmp_path):
    """`kill` ended a console script at once: mnist-sweep left its clone behind, and under Ray
    its driver aborted with a C++ stack (SIGABRT). Now the work unwinds as for Ctrl-C."""
    (tmp_path / "working.py").write_text(
        "import pathlib, time\n"
        "from mnist_dvc.tool import run_tool\n"
        "def work(_argv):\n"
        "    pathlib.Path('started').touch()\n"
        "    try:\n"
        "        time.sleep(60)\n"
        "    finally:\n"
        "        pathlib.Path('cleaned').touch()\n"
        "def main():\n"
        "    return run_tool('mnist-demo', work, [])\n"
    )
    code = "from mnist_dvc import console\nexit(console.launch('mnist-demo', 'working:main'))"
    process = subprocess.Popen(
        [sys.executable, "-c", code], cwd=tmp_path, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(tmp_path)},
    )  # fmt: skip
    try:
        for _ in range(600):
            if (tmp_path / "started").exists():
                break
            time.sleep(0.1)
        process.terminate()
        out, err = process.communicate(timeout=60)
    finally:
        process.kill()
    assert (process.returncode, out, err) == (143, "", "mnist-demo: interrupted\n")
    assert (tmp_path / "cleaned").exists()
