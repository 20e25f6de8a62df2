"""How stages run: the locked environment is checked before anything else, a user error or an
interruption ends in one line, and outputs are swapped in whole even when a signal comes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from importlib import metadata
from pathlib import Path

import pytest

from mnist_dvc import atomic
from mnist_dvc.atomic import atomic_outputs
from mnist_dvc.errors import StageError
from mnist_dvc.stage import Interrupted, environment_problems, run_stage
from tests.helpers import ENV, REPO_ROOT, run_stage_module


@pytest.fixture(autouse=True)
def _keep_pytests_signal_handlers():
    """run_stage installs its own handlers (a stage process exits right after)."""
    saved = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    yield
    for signum, handler in saved.items():
        signal.signal(signum, handler)


def test_this_environment_is_the_locked_one():
    assert environment_problems(REPO_ROOT / "requirements.lock") == []


def test_a_different_or_missing_package_is_named(tmp_path):
    lock = tmp_path / "requirements.lock"
    numpy = metadata.version("numpy")
    lock.write_text(f"# a comment\nnumpy=={numpy}\nkeras==2.15.0\nno-such-package-anywhere==1.0\n")
    assert environment_problems(lock) == [
        f"keras {metadata.version('keras')}, locked 2.15.0",
        "no-such-package-anywhere missing",
    ]


def test_a_missing_lock_file_is_a_problem(tmp_path):
    assert environment_problems(tmp_path / "nope.lock") == [
        f"{tmp_path / 'nope.lock'}: No such file or directory"
    ]


def test_user_errors_and_os_errors_end_in_one_line(capsys):
    def refuse():
        raise StageError("params.yaml: train.epochs: input should be greater than 0 (got 0)")

    with pytest.raises(SystemExit) as exit_:
        run_stage("train", refuse)
    assert exit_.value.code == "train: error: params.yaml: train.epochs: input should be " + (
        "greater than 0 (got 0)"
    )

    def full_disk():
        raise OSError(28, "No space left on device", "models/.model.h5.partial")

    with pytest.raises(SystemExit) as exit_:
        run_stage("train", full_disk)
    assert exit_.value.code == "train: error: models/.model.h5.partial: No space left on device"


def test_ctrl_c_ends_in_one_line_and_status_130(capsys):
    def interrupted():
        raise KeyboardInterrupt

    with pytest.raises(SystemExit) as exit_:
        run_stage("train", interrupted)
    assert exit_.value.code == 130
    assert capsys.readouterr().err == "train: interrupted\n"


@pytest.mark.slow  # a fresh Python loads TensorFlow
def test_importing_a_stage_module_changes_nothing_in_the_importer(tmp_path):
    """Tests and benchmarks import stage modules: that installs no signal handler, checks no
    lock, chooses no numerics and watches no dvc (only `python -m stages.<name>` does). The
    handlers are compared with the importer's own, whatever they were: a process started in the
    background of a non-interactive shell has SIGINT ignored, not Python's default handler."""
    code = (
        "import os, signal, threading\n"
        "from mnist_dvc.numerics import PORTABLE_ENVIRONMENT\n"
        "def state():\n"
        "    return ([signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)],\n"
        "            {name: os.environ.get(name) for name in PORTABLE_ENVIRONMENT},\n"
        "            sorted(thread.name for thread in threading.enumerate()))\n"
        "before = state()\n"
        "import stages.evaluate\n"
        "after = state()\n"
        "print(after == before or f'{before} became {after}')"
    )
    run = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300,
        env={**ENV, "PYTHONPATH": str(REPO_ROOT), "DVC_STAGE": "evaluate"},  # as if under dvc
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.split() == ["True"]


def test_a_stage_refuses_bad_params_before_tensorflow_loads(tmp_path):
    """The one line comes before any of TensorFlow's start-up messages."""
    (tmp_path / "params.yaml").write_text(
        (REPO_ROOT / "params.yaml").read_text().replace("numerics: portable", "numerics: fast")
    )
    run = run_stage_module("evaluate", tmp_path)
    assert run.returncode == 1
    assert run.stderr.splitlines() == [
        "evaluate: error: params.yaml: numerics: input should be 'portable' or 'native' "
        "(got 'fast')"
    ]


def test_a_signal_during_the_swap_comes_after_every_output_is_in_place(tmp_path, monkeypatch):
    """As in a stage: other threads (TensorFlow's) that do not block SIGTERM, and a handler
    that raises. The signal comes between two renames; it must take effect after the last."""

    def interrupt(signum: int, _frame: object) -> None:
        raise Interrupted(signum)

    signal.signal(signal.SIGTERM, interrupt)
    idle = threading.Event()
    threading.Thread(target=idle.wait, daemon=True).start()
    replace = atomic._replace

    def replace_then_signal(partial: Path, final: Path) -> None:
        replace(partial, final)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.1)  # the handler's moment, were it not held

    monkeypatch.setattr(atomic, "_replace", replace_then_signal)
    finals = [tmp_path / name for name in ("model.json", "model.h5", "provenance.json")]
    try:
        with pytest.raises(Interrupted), atomic_outputs(*finals) as partials:
            for partial in partials:
                partial.write_text("new")
    finally:
        idle.set()
    assert [final.read_text() for final in finals] == ["new"] * 3
