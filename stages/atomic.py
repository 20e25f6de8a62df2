"""Write outputs so that an interrupted run never leaves a half-written one in place.

Each stage builds its outputs in a private staging folder under `.partial/` (same file system
as the repository, ignored by git) and moves each finished output into place with a rename,
which is atomic. A run killed half-way leaves only the staging folder behind, and the next
run of the same stage deletes it before it starts.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

STAGING_ROOT = Path(".partial")


@contextmanager
def staging(name: str) -> Iterator[Path]:
    """Yield an empty folder `.partial/<name>`; it is removed on exit, success or not."""
    folder = STAGING_ROOT / name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def publish(staged: Path, final: Path) -> None:
    """Move a finished file or folder into place, replacing whatever was there."""
    _fsync_tree(staged)
    final.parent.mkdir(parents=True, exist_ok=True)
    if staged.is_dir() and final.exists():
        # A folder cannot be renamed over a non-empty one: move the old one aside first.
        old = staged.with_name(staged.name + ".old")
        os.replace(final, old)
        os.replace(staged, final)
        shutil.rmtree(old)
    else:
        os.replace(staged, final)


def _fsync_tree(path: Path) -> None:
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    for file in files:
        with open(file, "rb") as handle:
            os.fsync(handle.fileno())
