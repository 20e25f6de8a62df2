"""Digests of files, read in chunks (never the whole file in memory): md5 as DVC records it in
dvc.lock, sha256 as MNIST's files are pinned."""

from __future__ import annotations

import hashlib
from pathlib import Path


def file_digest(path: Path, algorithm: str = "md5") -> str:
    """The hex digest of the file at `path`."""
    with open(path, "rb") as file:
        return hashlib.file_digest(file, algorithm).hexdigest()
