"""Write outputs so that an interrupted or failed run never leaves a half-written one in place.

Each output is built under a hidden name beside its final path (`.model.h5.partial`), on the
same file system, and renamed into place only when every output of the step is complete: a
rename is atomic, and SIGINT/SIGTERM wait until the renames are done. A run killed half-way
leaves at most the hidden files, which the next run of the stage deletes first, and the
previous outputs stay as they were (dvc.yaml marks them `persist`, so DVC does not delete them
before the stage runs either). A stage whose dvc has ended meanwhile renames nothing
(mnist_dvc/stage.py): dvc.lock would not record what it wrote.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mnist_dvc.errors import StageError, describe
from mnist_dvc.stage import raise_if_orphaned


class OutputError(StageError):
    """An output could not be written (read-only folder, full disk, ...)."""


@contextmanager
def atomic_outputs(*finals: Path) -> Iterator[tuple[Path, ...]]:
    """Yield a hidden path beside each final path to write a file or a folder to; on success,
    move them all into place, replacing what was there; on any failure or interruption, remove
    them and keep the old outputs."""
    partials = tuple(final.with_name(f".{final.name}.partial") for final in finals)
    try:
        for final, partial in zip(finals, partials, strict=True):
            final.parent.mkdir(parents=True, exist_ok=True)
            _remove(partial)  # left by a killed run
        yield partials
        for partial in partials:
            _fsync(partial)
        with _signals_held():
            raise_if_orphaned()  # the last moment to keep what dvc.lock records
            for final, partial in zip(finals, partials, strict=True):
                _replace(partial, final)
    except OSError as error:
        raise _output_error(error, finals, partials) from None
    finally:
        for partial in partials:
            _remove(partial)


def _output_error(
    error: OSError, finals: tuple[Path, ...], partials: tuple[Path, ...]
) -> Exception:
    """The error to raise: about the output whose partial the error names; an error about
    another file (an input, say) speaks for itself."""
    # HDF5's errors name their file only in their text: "... name = 'models/.model.h5.partial'".
    named = re.search(r"name = '([^']*)'", str(error))
    filename = error.filename or (named and named.group(1))
    if filename is None:
        names = ", ".join(map(str, finals))
        return OutputError(
            f"{names}: cannot write {'it' if len(finals) == 1 else 'them'}: {describe(error)}"
        )
    for final, partial in zip(finals, partials, strict=True):
        if str(filename).startswith(str(partial)) or str(filename) == str(final):
            return OutputError(f"{final}: cannot write it: {describe(error)}")
    return error


@contextmanager
def atomic_output(final: Path) -> Iterator[Path]:
    """`atomic_outputs` for one output."""
    with atomic_outputs(final) as (partial,):
        yield partial


HELD = (signal.SIGINT, signal.SIGTERM)


@contextmanager
def _signals_held() -> Iterator[None]:
    """Hold SIGINT and SIGTERM back while the outputs are swapped in, so that they change
    together: a signal that arrives meanwhile is delivered right after.

    Python runs its signal handlers in the main thread, whichever thread the kernel gave the
    signal to: blocking the signals in this thread alone (pthread_sigmask) let TensorFlow's
    threads take them and the handler raise between two renames. So the handlers only note a
    signal until the swap is done."""
    if threading.current_thread() is not threading.main_thread():
        yield  # another thread runs no handler, and may not change them
        return
    arrived: list[int] = []

    def note(signum: int, _frame: object) -> None:
        arrived.append(signum)

    # A handler installed outside Python reads as None and cannot be put back: left alone.
    previous = {s: signal.getsignal(s) for s in HELD if signal.getsignal(s) is not None}
    for signum in previous:
        signal.signal(signum, note)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        for signum in dict.fromkeys(arrived):  # once each, in the order they came
            signal.raise_signal(signum)


def _replace(partial: Path, final: Path) -> None:
    if partial.is_dir() and final.exists():
        # A folder cannot be renamed over a non-empty one: move the old one aside first.
        old = final.with_name(f".{final.name}.old")
        _remove(old)
        os.replace(final, old)
        os.replace(partial, final)
        _remove(old)
    else:
        os.replace(partial, final)


def _fsync(path: Path) -> None:
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    for file in files:
        with open(file, "rb") as handle:
            os.fsync(handle.fileno())


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()
