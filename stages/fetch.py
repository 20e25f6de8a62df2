"""Stage `fetch`: put the four MNIST IDX files, verified against their pinned digests, in data/raw.

Sources (sources.yaml) are tried in order; one that fails is reported in a line
and the next is tried. Verified files are kept in a download cache keyed by digest
(`$MNIST_CACHE_DIR`, default `~/.cache/mnist-dvc`), so a second fetch downloads nothing.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from mnist_dvc import mnist
from mnist_dvc.atomic import atomic_output
from mnist_dvc.errors import StageError
from mnist_dvc.paths import RAW_DIR, user_cache
from mnist_dvc.redact import redact
from mnist_dvc.sources import SourceError, load_sources, obtain


class FetchError(StageError):
    """No source gave the data."""


def default_cache_dir() -> Path:
    if "MNIST_CACHE_DIR" in os.environ:
        return Path(os.environ["MNIST_CACHE_DIR"]).expanduser()
    return user_cache()


def fetch(sources: list[str], out_dir: Path, cache_dir: Path, *, timeout_s: float) -> str:
    """Fill `out_dir` with the verified files; return where they came from."""
    with atomic_output(out_dir) as ready:
        ready.mkdir()
        origin = _take_from_cache(cache_dir, ready)
        if origin is None:
            origin = _download_first(sources, ready, timeout_s=timeout_s)
            _add_to_cache(ready, cache_dir)
    return origin


def _take_from_cache(cache_dir: Path, into: Path) -> str | None:
    cached = [cache_dir / file.sha256 for file in mnist.FILES]
    if not all(path.is_file() for path in cached):
        return None
    for file, path in zip(mnist.FILES, cached, strict=True):
        try:
            mnist.verify(path, file)
        except mnist.DigestError:
            path.unlink()  # a damaged cache entry: drop it and download again
            return None
        shutil.copyfile(path, into / file.name)
    return f"download cache {cache_dir}"


def _download_first(sources: list[str], into: Path, *, timeout_s: float) -> str:
    failures = []
    attempt = into / ".attempt"
    for source in sources:
        shutil.rmtree(attempt, ignore_errors=True)
        attempt.mkdir()
        try:
            obtain(source, attempt, timeout_s=timeout_s)
            _verify(attempt)
        except SourceError as error:
            print(f"fetch: skipped {redact(source)}: {error}", file=sys.stderr)
            failures.append(f"{redact(source)} ({error})")
            continue
        for file in mnist.FILES:
            os.replace(attempt / file.name, into / file.name)
        shutil.rmtree(attempt)
        return source
    raise FetchError("no source gave MNIST: " + "; ".join(failures))


def _verify(folder: Path) -> None:
    for file in mnist.FILES:
        path = folder / file.name
        if not path.is_file():
            raise SourceError(f"{file.name} missing")
        try:
            mnist.verify(path, file)
        except mnist.DigestError as error:
            raise SourceError(str(error).removeprefix(f"{folder}/")) from None


def _add_to_cache(folder: Path, cache_dir: Path) -> None:
    for file in mnist.FILES:
        with atomic_output(cache_dir / file.sha256) as partial:
            shutil.copyfile(folder / file.name, partial)


def main() -> None:
    params = load_sources()
    origin = fetch(params.sources, RAW_DIR, default_cache_dir(), timeout_s=params.timeout_s)
    print(f"fetch: {len(mnist.FILES)} verified IDX files in {RAW_DIR} (from {redact(origin)})")
