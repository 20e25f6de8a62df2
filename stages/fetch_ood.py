"""Stage `fetch_ood`: put the out-of-distribution set's file, verified against its pinned
digest, in data/ood_raw.

The set is real handwriting that is not MNIST's (mnist_dvc/optdigits.py); its sources
(ood_sources.yaml) are tried in order, one that fails reported in a line and the next tried,
as fetch does for MNIST. The verified file is kept in the same download cache, keyed by its
digest (`$MNIST_CACHE_DIR`, default `~/.cache/mnist-dvc`), so a second fetch downloads nothing.
A stage of its own, so that nothing before evaluate, train least of all, depends on it.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from mnist_dvc import optdigits
from mnist_dvc.atomic import atomic_output
from mnist_dvc.errors import StageError
from mnist_dvc.ood import OOD_RAW_DIR
from mnist_dvc.ood_sources import OodSourceError, load_ood_sources, obtain
from mnist_dvc.paths import user_cache
from mnist_dvc.redact import redact

FILE = optdigits.DIGITS


class FetchOodError(StageError):
    """No source gave the file."""


def default_cache_dir() -> Path:
    # fetch's download cache (stages/fetch.py), not imported from there: fetch_ood would then
    # depend on MNIST's sources.
    if "MNIST_CACHE_DIR" in os.environ:
        return Path(os.environ["MNIST_CACHE_DIR"]).expanduser()
    return user_cache()


def fetch_ood(sources: list[str], out_dir: Path, cache_dir: Path, *, timeout_s: float) -> str:
    """Fill `out_dir` with the verified file; return where it came from."""
    with atomic_output(out_dir) as ready:
        ready.mkdir()
        dest = ready / FILE.name
        origin = _take_from_cache(cache_dir / FILE.sha256, dest)
        if origin is None:
            origin = _first_that_gives(sources, dest, timeout_s=timeout_s)
            with atomic_output(cache_dir / FILE.sha256) as partial:
                shutil.copyfile(dest, partial)
    return origin


def _take_from_cache(cached: Path, dest: Path) -> str | None:
    if not cached.is_file():
        return None
    try:
        optdigits.verify(cached)
    except optdigits.OodDataError:
        cached.unlink()  # a damaged cache entry: drop it and fetch again
        return None
    shutil.copyfile(cached, dest)
    return f"download cache {cached.parent}"


def _first_that_gives(sources: list[str], dest: Path, *, timeout_s: float) -> str:
    failures = []
    attempt = dest.parent / ".attempt"
    for source in sources:
        shutil.rmtree(attempt, ignore_errors=True)
        attempt.mkdir()
        try:
            obtain(source, attempt / FILE.name, timeout_s=timeout_s)
            optdigits.verify(attempt / FILE.name)
        except (OodSourceError, optdigits.OodDataError) as error:
            reason = str(error).removeprefix(f"{attempt}/")
            print(f"fetch_ood: skipped {redact(source)}: {reason}", file=sys.stderr)
            failures.append(f"{redact(source)} ({reason})")
            continue
        os.replace(attempt / FILE.name, dest)
        shutil.rmtree(attempt)
        return source
    raise FetchOodError(f"no source gave {FILE.name}: " + "; ".join(failures))


def main() -> None:
    settings = load_ood_sources()
    origin = fetch_ood(
        settings.sources, OOD_RAW_DIR, default_cache_dir(), timeout_s=settings.timeout_s
    )
    print(f"fetch_ood: verified {OOD_RAW_DIR / FILE.name} (from {redact(origin)})")
