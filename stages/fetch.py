"""Stage `fetch`: put the four MNIST IDX files, verified against their pinned digests, in data/raw.

Sources (sources.yaml) are tried in order; one that fails is reported in a line
and the next is tried. Verified files are kept in a download cache keyed by digest
(`$MNIST_CACHE_DIR`, default `~/.cache/mnist-dvc`), so a second fetch downloads nothing
(mnist_dvc/pinned_fetch.py).
"""

from __future__ import annotations

from pathlib import Path

from mnist_dvc import mnist, sources
from mnist_dvc.errors import StageError
from mnist_dvc.paths import RAW_DIR
from mnist_dvc.pinned_fetch import Fetcher, default_cache_dir, fetch_pinned
from mnist_dvc.redact import redact


class FetchError(StageError):
    """No source gave the data."""


MNIST = Fetcher(
    stage="fetch",
    what="MNIST",
    files=mnist.FILES,
    obtain=lambda source, into, timeout_s: sources.obtain(source, into, timeout_s=timeout_s),
    verify=mnist.verify,
    rejected=(sources.SourceError, mnist.DigestError),
    error=FetchError,
)


def fetch(sources: list[str], out_dir: Path, cache_dir: Path, *, timeout_s: float) -> str:
    """Fill `out_dir` with the verified files; return where they came from."""
    return fetch_pinned(MNIST, sources, out_dir, cache_dir, timeout_s=timeout_s)


def main() -> None:
    params = sources.load_sources()
    origin = fetch(params.sources, RAW_DIR, default_cache_dir(), timeout_s=params.timeout_s)
    print(f"fetch: {len(mnist.FILES)} verified IDX files in {RAW_DIR} (from {redact(origin)})")
