"""Stage `fetch_ood`: put the out-of-distribution set's file, verified against its pinned
digest, in data/ood_raw.

The set is real handwriting that is not MNIST's (mnist_dvc/optdigits.py); its sources
(ood_sources.yaml) are tried in order, one that fails reported in a line and the next tried,
and the verified file is kept in fetch's download cache, keyed by its digest, as fetch does for
MNIST (mnist_dvc/pinned_fetch.py). A stage of its own, so that nothing before evaluate, train
least of all, depends on it.
"""

from __future__ import annotations

from pathlib import Path

from mnist_dvc import ood_sources, optdigits
from mnist_dvc.errors import StageError
from mnist_dvc.ood import OOD_RAW_DIR
from mnist_dvc.pinned_fetch import Fetcher, default_cache_dir, fetch_pinned
from mnist_dvc.redact import redact

FILE = optdigits.DIGITS


class FetchOodError(StageError):
    """No source gave the file."""


OPTDIGITS = Fetcher(
    stage="fetch_ood",
    what=FILE.name,
    files=(FILE,),
    obtain=lambda source, into, timeout_s: ood_sources.obtain(
        source, into / FILE.name, timeout_s=timeout_s
    ),
    verify=optdigits.verify,
    rejected=(ood_sources.OodSourceError, optdigits.OodDataError),
    error=FetchOodError,
)


def fetch_ood(sources: list[str], out_dir: Path, cache_dir: Path, *, timeout_s: float) -> str:
    """Fill `out_dir` with the verified file; return where it came from."""
    return fetch_pinned(OPTDIGITS, sources, out_dir, cache_dir, timeout_s=timeout_s)


def main() -> None:
    settings = ood_sources.load_ood_sources()
    origin = fetch_ood(
        settings.sources, OOD_RAW_DIR, default_cache_dir(), timeout_s=settings.timeout_s
    )
    print(f"fetch_ood: verified {OOD_RAW_DIR / FILE.name} (from {redact(origin)})")
