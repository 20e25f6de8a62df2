"""How every stage runs: in the locked environment, with user errors and interruptions reported
in one line, never a traceback.

`python -m stages <name>` (stages/__main__.py) calls `begin()` before the stage's module imports
anything heavy, so a wrong interpreter or a Ctrl-C during TensorFlow's import also ends in one
line, then runs the stage within `run_stage`. Tests and benchmarks that import a stage module
get no signal handlers and no checks. Only the standard library is imported here, so that this
works on any Python that finds the checkout.

A stage that `dvc` started must not outlive it: `kill <pid of dvc>` (or `dvc queue kill
--force`) ends dvc alone, and a stage that went on would swap in outputs that dvc.lock never
records, over uncommitted ones that no cache keeps. So a stage run by dvc finds that dvc
process when it starts (`find_runner`), asks the kernel for SIGTERM when its parent ends, and
checks twice a second that the dvc is still there: when it is gone the stage is interrupted as
SIGTERM would interrupt it, and right before its outputs are swapped in (mnist_dvc/atomic.py)
it checks once more (`raise_if_orphaned`).
"""

from __future__ import annotations

import os
import re
import signal
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from mnist_dvc.errors import describe
from mnist_dvc.files import read_text_limited
from mnist_dvc.tool import failure

PYTHON = (3, 11)  # the Python requirements.lock was made for
EXIT_STATUS = {signal.SIGINT: 130, signal.SIGTERM: 143}  # 128 + signal number, as shells do
PR_SET_PDEATHSIG = 1  # prctl(2), <linux/prctl.h>: a signal for this process when its parent ends
WATCH_INTERVAL_S = 0.5  # how often a stage run by dvc checks that dvc is still there
MAX_ANCESTORS = 8  # between dvc and the stage: its shell, and a `nice` or `time` in a cmd


class Interrupted(BaseException):
    """SIGINT or SIGTERM arrived while the stage was working (a BaseException, like Ctrl-C's
    KeyboardInterrupt, so that no `except Exception` swallows it)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@dataclass(frozen=True)
class Runner:
    """The `dvc` process that started this stage (`dvc repro`, `dvc exp run`, or the `dvc exp
    exec-run` of a queued experiment), and this stage's parent when it started: that dvc itself
    where DVC's `$SHELL -c` execs the command (bash does), or the shell that waits for it (dash,
    Debian's /bin/sh, does not)."""

    pid: int
    started: int | None  # its start time in clock ticks after boot: a reused PID has another
    parent: int

    def gone(self) -> bool:
        """Whether that dvc has ended (dvc's own parent may not have reaped it yet), or the
        parent between it and this stage has."""
        return (
            self.started is None
            or _start_time(self.pid) != self.started
            or os.getppid() != self.parent
        )


# Set by end_with_dvc() in a stage that dvc started; None everywhere else (tests, tools, by hand).
_runner: Runner | None = None
_stage_done = threading.Event()  # the watcher stops when the stage has ended its work
# Set once the stage has been interrupted: it is cleaning up, and a second signal (the group's
# SIGTERM, then the parent-death one and the watcher's when dvc dies with it) must not cut that
# short and leave its partial outputs behind.
_ending = threading.Event()


def begin(name: str, lock: Path) -> None:
    """Before stage `name` imports anything: quit quietly on a signal, end with the dvc that
    started it, and refuse an interpreter whose packages are not the versions in `lock` (the
    checkout's requirements.lock)."""

    def quit_now(signum: int, _frame: object) -> None:
        # Nothing has been written yet: leave at once, in one line.
        print(f"{name}: interrupted", file=sys.stderr)
        os._exit(EXIT_STATUS[signal.Signals(signum)])

    for signum in EXIT_STATUS:
        signal.signal(signum, quit_now)
    end_with_dvc()
    problems = environment_problems(lock)
    if problems:
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        sys.exit(
            f"{name}: error: {sys.executable} is not the environment in {lock.name}: "
            f"{'; '.join(problems[:3])}{more}. Run `make setup`, then "
            "`source .venv/bin/activate` (or call .venv/bin/dvc with .venv/bin first on PATH)"
        )


def find_runner() -> Runner | None:
    """The dvc process that started this stage: the nearest ancestor whose environment lacks the
    DVC_STAGE that DVC sets for a stage's command alone (the shell between them, and a `nice` or
    `time` in a cmd, inherit it). None where no dvc started the stage, and off Linux.

    If dvc ended in the split second before this runs, init (or a subreaper) has already adopted
    the stage or its shell and is taken for the dvc: that one stage goes unguarded."""
    stage = os.environ.get("DVC_STAGE")
    if stage is None or not sys.platform.startswith("linux"):
        return None
    entry = f"DVC_STAGE={stage}".encode()
    parent = pid = os.getppid()
    for _ in range(MAX_ANCESTORS):
        if not _environment_has(pid, entry):
            break
        fields = _proc_stat(pid)
        if fields is None:
            break
        pid = int(fields[1])
    return Runner(pid, _start_time(pid), parent)


def raise_if_orphaned() -> None:
    """Refuse, as SIGTERM would interrupt the stage, if the dvc that started it has ended: its
    outputs must not change behind dvc.lock's back. Called right before outputs are swapped in;
    nothing happens in a process that no dvc started."""
    if _runner is not None and _runner.gone():
        _ending.set()
        raise Interrupted(signal.SIGTERM)


def end_with_dvc() -> None:
    """In a stage that dvc started: SIGTERM when that dvc ends, from the kernel when the
    stage's parent ends (at once, but only the direct parent: dvc where the shell exec'd the
    command), and from a watcher thread when the dvc has ended (within WATCH_INTERVAL_S, whatever
    is between them); and `raise_if_orphaned` armed. Nothing in a process no dvc started."""
    global _runner
    _runner = find_runner()
    if _runner is None:
        return
    import ctypes  # here: only a stage that dvc started needs it

    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    watcher = threading.Thread(target=_watch, args=(_runner,), name="watch-dvc", daemon=True)
    watcher.start()


def _watch(runner: Runner) -> None:
    # Also catches a parent that ended before prctl above.
    while not _stage_done.wait(WATCH_INTERVAL_S):
        if runner.gone():
            os.kill(os.getpid(), signal.SIGTERM)  # the handlers run in the main thread
            return


def _proc_stat(pid: int) -> list[str] | None:
    """/proc/<pid>/stat's fields from the state on (proc(5)'s field 3 is [0]); None if gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rpartition(")")[2].split()  # after "pid (comm)", whose comm may hold ") "


def _start_time(pid: int) -> int | None:
    """When the process started (clock ticks after boot); None if it has ended."""
    fields = _proc_stat(pid)
    if fields is None or fields[0] in ("Z", "X"):  # a zombie has ended: only its PID is left
        return None
    return int(fields[19])  # proc(5)'s field 22, starttime


def _environment_has(pid: int, entry: bytes) -> bool:
    """Whether the process started with `entry` (NAME=value) in its environment; False where
    that cannot be read (another user's process)."""
    try:
        return entry in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return False


def environment_problems(lock: Path) -> list[str]:
    """How the running interpreter differs from the lock file: one short phrase per package."""
    problems = []
    if sys.version_info[:2] != PYTHON:
        problems.append(f"Python {sys.version_info[0]}.{sys.version_info[1]}, locked 3.11")
    installed = {
        _normalized(dist.metadata["Name"] or ""): dist.version for dist in metadata.distributions()
    }
    try:
        lines = read_text_limited(lock).splitlines()
    except (OSError, ValueError) as error:  # ValueError: not UTF-8
        return [f"{lock}: {describe(error)}"]
    missing = []
    for line in lines:
        name, sep, version = line.partition("==")
        if not sep or line.startswith("#"):
            continue
        have = installed.get(_normalized(name))
        if have is None:
            missing.append(f"{name} missing")
        elif have != version.strip():
            problems.append(f"{name} {have}, locked {version.strip()}")
    return problems + missing  # a different version says more than a missing package


def _normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def run_stage(name: str, work: Callable[[], object]) -> None:
    """Run a stage's `main`: user errors (and OS errors such as a full disk) end in one line and
    exit status 1; SIGINT and SIGTERM (and the end of the dvc that started the stage: see
    `find_runner`) in `<stage>: interrupted` and 130 or 143, after the half-written outputs are
    cleaned away (the old outputs stay in place); anything else, which is a bug, in one line
    that says so and exit status 70. The same lines as the console scripts' (mnist_dvc/tool.py),
    redacted: a URL with credentials never gets printed."""
    _ending.clear()
    for signum in EXIT_STATUS:
        signal.signal(signum, _interrupt)
    try:
        work()
    except Exception as error:
        line, status = failure(name, error)
        print(line, file=sys.stderr)
        sys.exit(status)
    except (KeyboardInterrupt, Interrupted) as error:
        signum = getattr(error, "signum", signal.SIGINT)
        for each in EXIT_STATUS:  # a second signal during the exit changes nothing
            signal.signal(each, signal.SIG_IGN)
        print(f"{name}: interrupted", file=sys.stderr)
        sys.exit(EXIT_STATUS[signal.Signals(signum)])
    finally:
        # The work is over, its outputs in place or not: the watcher's SIGTERM would now only
        # turn an exit into "interrupted".
        _stage_done.set()


def _interrupt(signum: int, _frame: object) -> None:
    """The stage's handler for SIGINT and SIGTERM: the first ends the work; those after it,
    while the stage cleans up, change nothing."""
    if _ending.is_set():
        return
    _ending.set()
    raise Interrupted(signum)
