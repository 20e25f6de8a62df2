"""Fetching files pinned by their digests: a download cache keyed by digest, then sources tried
in order until one gives every file with its pinned digest. The `fetch` stage (MNIST's four IDX
files, mnist_dvc/sources.py) and `fetch_ood` (UCI optdigits, mnist_dvc/ood_sources.py) are this
with their own files, sources and checks.

The output folder appears whole or not at all (mnist_dvc/atomic.py). A source that fails is
reported in a line and the next is tried; a damaged cache entry is dropped and fetched again.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from mnist_dvc.atomic import OutputError, atomic_output
from mnist_dvc.errors import StageError, describe
from mnist_dvc.paths import user_cache
from mnist_dvc.redact import redact


class Pinned(Protocol):
    """A file by its name in the output folder and the SHA-256 its cache entry is named by."""

    name: str
    sha256: str


@dataclass(frozen=True)
class Fetcher:
    """How one stage gets its files: `obtain(source, folder, timeout_s)` writes them into
    `folder` (scratch space), `verify(path, file)` checks one against its pin; either raises one
    of `rejected` for a source that cannot give them; `error` is raised when none can."""

    stage: str  # prefixes each "skipped" line
    what: str  # "no source gave <what>"
    files: Sequence[Pinned]
    obtain: Callable[[str, Path, float], None]
    verify: Callable[[Path, Pinned], None]
    rejected: tuple[type[Exception], ...]
    error: type[StageError]


def default_cache_dir() -> Path:
    """`$MNIST_CACHE_DIR`, else (unset or empty) the user's cache folder for this project: an
    empty one is not the current folder, where the cache's files would land in the work tree."""
    if os.environ.get("MNIST_CACHE_DIR", "").strip():
        return Path(os.environ["MNIST_CACHE_DIR"]).expanduser()
    return user_cache()


def fetch_pinned(
    fetcher: Fetcher, sources: list[str], out_dir: Path, cache_dir: Path, *, timeout_s: float
) -> str:
    """Fill `out_dir` with the verified files; return where they came from."""
    with atomic_output(out_dir) as ready:
        ready.mkdir()
        origin = _take_from_cache(fetcher, cache_dir, ready)
        if origin is None:
            origin = _first_that_gives(fetcher, sources, ready, timeout_s=timeout_s)
            _keep_in_cache(fetcher, ready, cache_dir)
    return origin


def _keep_in_cache(fetcher: Fetcher, ready: Path, cache_dir: Path) -> None:
    """A copy of each verified file in the cache. A cache that cannot take it (a file where its
    folder should be, a read-only or full disk) costs the next run a download, said in a line,
    not this run the files it has verified."""
    for file in fetcher.files:
        try:
            with atomic_output(cache_dir / file.sha256) as partial:
                shutil.copyfile(ready / file.name, partial)
        except (OSError, OutputError) as error:
            reason = str(error)
            if isinstance(error, OSError):
                reason = (
                    f"{error.filename}: {describe(error)}" if error.filename else describe(error)
                )
            print(
                f"{fetcher.stage}: not kept in the download cache {cache_dir} ({reason}): "
                "the next run downloads again",
                file=sys.stderr,
            )
            return


def _take_from_cache(fetcher: Fetcher, cache_dir: Path, into: Path) -> str | None:
    cached = [cache_dir / file.sha256 for file in fetcher.files]
    if not all(path.is_file() for path in cached):
        return None
    for file, path in zip(fetcher.files, cached, strict=True):
        try:
            fetcher.verify(path, file)
        except (*fetcher.rejected, OSError):  # damaged, unreadable, not a regular file
            with suppress(OSError):  # a read-only cache keeps it: fetched again each time
                path.unlink()  # a damaged cache entry: drop it and fetch again
            return None
        shutil.copyfile(path, into / file.name)
    return f"download cache {cache_dir}"


def _first_that_gives(fetcher: Fetcher, sources: list[str], into: Path, *, timeout_s: float) -> str:
    failures = []
    attempt = into / ".attempt"
    for source in sources:
        shutil.rmtree(attempt, ignore_errors=True)
        attempt.mkdir()
        try:
            fetcher.obtain(source, attempt, timeout_s)
            _verify(fetcher, attempt)
        except fetcher.rejected as error:
            reason = str(error).removeprefix(f"{attempt}/")
            print(f"{fetcher.stage}: skipped {redact(source)}: {reason}", file=sys.stderr)
            failures.append(f"{redact(source)} ({reason})")
            continue
        for file in fetcher.files:
            os.replace(attempt / file.name, into / file.name)
        shutil.rmtree(attempt)
        return source
    raise fetcher.error(f"no source gave {fetcher.what}: " + "; ".join(failures))


def _verify(fetcher: Fetcher, folder: Path) -> None:
    for file in fetcher.files:
        path = folder / file.name
        if not path.is_file():
            raise fetcher.rejected[0](f"{file.name} missing")
        fetcher.verify(path, file)
