"""How every stage runs: in the locked environment, with TensorFlow's kernels chosen by
params.yaml, and with user errors and interruptions reported in one line, never a traceback.

`stages/__init__.py` calls `begin()` before a stage module imports anything heavy, so a wrong
interpreter, a bad params.yaml or a Ctrl-C during TensorFlow's import also ends in one line,
and TensorFlow loads with the numerics chosen (mnist_dvc/numerics.py). `begin()` acts only when
a stage runs as `python -m stages.<name>`: tests and benchmarks that import a stage module get
no signal handlers and no checks. Only the standard library is imported here, so that this
works on any Python that finds the checkout.
"""

from __future__ import annotations

import os
import re
import signal
import sys
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

from mnist_dvc.errors import StageError, describe

PYTHON = (3, 11)  # the Python requirements.lock was made for
# The stages that compute with TensorFlow: each lists `numerics` among its params in dvc.yaml,
# and TensorFlow loads in them with the numerics params.yaml chooses.
TENSORFLOW_STAGES = ("train", "evaluate", "export")
EXIT_STATUS = {signal.SIGINT: 130, signal.SIGTERM: 143}  # 128 + signal number, as shells do


class Interrupted(BaseException):
    """SIGINT or SIGTERM arrived while the stage was working (a BaseException, like Ctrl-C's
    KeyboardInterrupt, so that no `except Exception` swallows it)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def stage_name() -> str:
    """`train` for `python -m stages.train` (known before the stage module has loaded)."""
    argv = sys.orig_argv
    if "-m" in argv[:-1]:
        return argv[argv.index("-m") + 1].rpartition(".")[2]
    return Path(argv[-1]).stem


def run_as_stage() -> bool:
    """Whether this process is `python -m stages.<name>` and the stages package is being
    loaded for it (Python sets argv[0] to "-m" only while it finds the module to run)."""
    argv = sys.orig_argv
    return (
        sys.argv[0] == "-m"
        and "-m" in argv[:-1]
        and argv[argv.index("-m") + 1].startswith("stages.")
    )


def begin(lock: Path) -> None:
    """Before a stage imports anything: quit quietly on a signal, refuse an interpreter whose
    packages are not the versions in `lock` (the checkout's requirements.lock) and, in a stage
    that computes with TensorFlow, refuse a bad params.yaml and choose the numerics."""
    name = stage_name()

    def quit_now(signum: int, _frame: object) -> None:
        # Nothing has been written yet: leave at once, in one line.
        print(f"{name}: interrupted", file=sys.stderr)
        os._exit(EXIT_STATUS[signal.Signals(signum)])

    for signum in EXIT_STATUS:
        signal.signal(signum, quit_now)
    problems = environment_problems(lock)
    if problems:
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        sys.exit(
            f"{name}: error: {sys.executable} is not the environment in {lock.name}: "
            f"{'; '.join(problems[:3])}{more}. Run `make setup`, then "
            "`source .venv/bin/activate` (or call .venv/bin/dvc with .venv/bin first on PATH)"
        )
    if name in TENSORFLOW_STAGES:
        # The locked packages are there now: the params' validation can be imported.
        from mnist_dvc import numerics
        from mnist_dvc.params import load_params

        try:
            numerics.configure(load_params().numerics)
        except StageError as error:
            sys.exit(f"{name}: error: {error}")


def environment_problems(lock: Path) -> list[str]:
    """How the running interpreter differs from the lock file: one short phrase per package."""
    problems = []
    if sys.version_info[:2] != PYTHON:
        problems.append(f"Python {sys.version_info[0]}.{sys.version_info[1]}, locked 3.11")
    installed = {
        _normalized(dist.metadata["Name"] or ""): dist.version for dist in metadata.distributions()
    }
    try:
        lines = lock.read_text().splitlines()
    except OSError as error:
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
    exit status 1; SIGINT and SIGTERM in `<stage>: interrupted` and 130 or 143, after the
    half-written outputs are cleaned away (the old outputs stay in place)."""

    def interrupt(signum: int, _frame: object) -> None:
        raise Interrupted(signum)

    for signum in EXIT_STATUS:
        signal.signal(signum, interrupt)
    try:
        work()
    except StageError as error:
        sys.exit(f"{name}: error: {error}")
    except OSError as error:
        where = f"{error.filename}: " if error.filename else ""
        sys.exit(f"{name}: error: {where}{describe(error)}")
    except (KeyboardInterrupt, Interrupted) as error:
        signum = getattr(error, "signum", signal.SIGINT)
        for each in EXIT_STATUS:  # a second signal during the exit changes nothing
            signal.signal(each, signal.SIG_IGN)
        print(f"{name}: interrupted", file=sys.stderr)
        sys.exit(EXIT_STATUS[signal.Signals(signum)])
