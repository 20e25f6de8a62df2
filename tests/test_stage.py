"""How stages run: the locked environment is checked before anything else, a user error or an
interruption ends in one line, and a stage whose dvc has ended stops and replaces nothing."""

from __future__ import annotations

import contextlib
import os
import selectors
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from importlib import metadata
from pathlib import Path

import pytest

from mnist_dvc import atomic, stage
from mnist_dvc.atomic import atomic_outputs
from mnist_dvc.errors import StageError
from mnist_dvc.stage import Interrupted, Runner, environment_problems, run_stage
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
    assert exit_.value.code == 1
    assert capsys.readouterr().err == (
        "train: error: params.yaml: train.epochs: input should be greater than 0 (got 0)\n"
    )

    def full_disk():
        raise OSError(28, "No space left on device", "models/.model.h5.partial")

    with pytest.raises(SystemExit) as exit_:
        run_stage("train", full_disk)
    assert exit_.value.code == 1
    assert capsys.readouterr().err == (
        "train: error: models/.model.h5.partial: No space left on device\n"
    )


def test_a_bug_ends_in_one_line_that_says_so(capsys):
    """The last resort of the one error boundary: no traceback even for a mistake of ours."""

    def mistake():
        return {}["accuracy"]

    with pytest.raises(SystemExit) as exit_:
        run_stage("report", mistake)
    assert exit_.value.code == 70
    assert capsys.readouterr().err == (
        "report: error: a bug in report, please report it: KeyError: 'accuracy'\n"
    )


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
    lock, chooses no numerics and watches no dvc (only `python -m stages <name>` does). The
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


# A stand-in for dvc: it runs a stage's cmd as DVC does, through `$SHELL -c` with DVC_STAGE set
# for the command alone, prints its own PID, and waits.
STAND_IN_DVC = """
import os, subprocess, sys
print(os.getpid(), flush=True)
cmd = subprocess.Popen([sys.argv[1], "-c", sys.argv[2]], env={**os.environ, "DVC_STAGE": "train"})
sys.exit(cmd.wait())
"""
# bash execs a lone command, dash (Debian's /bin/sh) stays between dvc and the stage.
SHELLS = [pytest.param(shell, id=Path(shell).name) for shell in ("/bin/bash", "/bin/sh")]


def start_stand_in_dvc(shell: str, stage_code: str) -> subprocess.Popen:
    if not shutil.which(shell):
        pytest.skip(f"no {shell}")
    cmd = f"{shlex.quote(sys.executable)} -c {shlex.quote(stage_code)}"
    env = {k: v for k, v in ENV.items() if k != "DVC_STAGE"}  # dvc itself runs without it
    return subprocess.Popen(
        [sys.executable, "-c", STAND_IN_DVC, shell, cmd], stdout=subprocess.PIPE, text=True,
        env={**env, "PYTHONPATH": str(REPO_ROOT)},
    )  # fmt: skip


def read_lines(proc: subprocess.Popen, count: int, timeout_s: float) -> list[str]:
    """The next `count` lines the processes write to the pipe, or fewer at the deadline."""
    lines: list[str] = []
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + timeout_s
        while len(lines) < count and selector.select(max(0.0, deadline - time.monotonic())):
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line.strip())
    return lines


def stop_by_pid(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize("shell", SHELLS)
def test_a_stage_finds_the_dvc_that_started_it_above_its_shell(shell):
    code = "from mnist_dvc import stage; print(stage.find_runner().pid)"
    dvc = start_stand_in_dvc(shell, code)
    try:
        lines = read_lines(dvc, 2, timeout_s=60)
        assert dvc.wait(timeout=60) == 0
    finally:
        stop_by_pid(dvc.pid)
    assert len(lines) == 2 and lines[0] == lines[1] == str(dvc.pid), lines


def test_a_process_no_dvc_started_is_not_guarded(monkeypatch):
    monkeypatch.delenv("DVC_STAGE", raising=False)
    assert stage.find_runner() is None
    stage.raise_if_orphaned()  # nothing to check: tests and tools write their outputs freely


@pytest.mark.parametrize("shell", SHELLS)
def test_a_stage_stops_within_a_second_when_its_dvc_is_killed(shell):
    """Under bash the kernel's parent-death signal stops it; under dash, whose shell stays
    alive, the watcher does."""
    code = (
        "import os, signal, sys, time\n"
        "from mnist_dvc import stage\n"
        "def stop(signum, frame):\n"
        "    print('stopped', flush=True)\n"
        "    sys.exit(143)\n"
        "signal.signal(signal.SIGTERM, stop)\n"
        "stage.end_with_dvc()\n"
        "print(os.getpid(), flush=True)\n"
        "time.sleep(60)\n"
    )
    dvc = start_stand_in_dvc(shell, code)
    stage_pid = None
    try:
        lines = read_lines(dvc, 2, timeout_s=60)
        assert len(lines) == 2, lines
        stage_pid = int(lines[1])
        dvc.kill()  # dvc alone, as `kill -9 <pid of dvc>` or `dvc queue kill --force` do
        dvc.wait(timeout=10)
        killed = time.monotonic()
        assert read_lines(dvc, 1, timeout_s=10) == ["stopped"]
        assert time.monotonic() - killed < stage.WATCH_INTERVAL_S + 1.5
    finally:
        if stage_pid is not None:
            stop_by_pid(stage_pid)
        stop_by_pid(dvc.pid)


def wait_until(condition, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "waited in vain"
        time.sleep(0.01)


def test_outputs_are_not_swapped_in_once_dvc_has_ended(tmp_path, monkeypatch):
    """Right before the swap, the stage checks that its dvc is still the same live process;
    a dvc that was killed and not yet reaped (a zombie) has ended too."""
    weights, logs = tmp_path / "model.h5", tmp_path / "dvclive"
    dvc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        runner = Runner(dvc.pid, stage._start_time(dvc.pid), os.getppid())
        monkeypatch.setattr(stage, "_runner", runner)
        with atomic_outputs(weights, logs) as (h5, log_dir):  # dvc alive: swapped in
            h5.write_bytes(b"old")
            log_dir.mkdir()
            (log_dir / "metrics.json").write_text("old")
        with pytest.raises(Interrupted), atomic_outputs(weights, logs) as (h5, log_dir):
            h5.write_bytes(b"new")
            log_dir.mkdir()
            (log_dir / "metrics.json").write_text("new")
            dvc.kill()
            wait_until(runner.gone)
    finally:
        dvc.kill()
        dvc.wait(timeout=10)
    assert weights.read_bytes() == b"old"
    assert (logs / "metrics.json").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dvclive", "model.h5"]


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


def test_a_second_signal_during_the_clean_up_changes_nothing(tmp_path, monkeypatch):
    """Killing dvc's whole group sends its stage SIGTERM, then the parent-death signal and the
    watcher's when dvc ends: the first interrupts, the others must not cut the removal of the
    partial outputs short."""
    final = tmp_path / "dvclive"
    final.mkdir()
    (final / "metrics.json").write_text("old")
    remove = atomic._remove
    interrupted = []

    def remove_after_a_second_signal(path: Path) -> None:
        if interrupted:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.1)  # the handler's moment
        remove(path)

    def work() -> None:
        with atomic_outputs(final) as (partial,):
            partial.mkdir()
            (partial / "metrics.json").write_text("new")
            monkeypatch.setattr(atomic, "_remove", remove_after_a_second_signal)
            interrupted.append(True)
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(1)

    with pytest.raises(SystemExit) as exit_:
        run_stage("train", work)
    assert exit_.value.code == 143
    assert (final / "metrics.json").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dvclive"]
