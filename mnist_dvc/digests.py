"""Digests of files, read in chunks (never the whole file in memory): md5 as DVC records it in
dvc.lock, sha256 as MNIST's files are pinned. Only a regular file of at most `limit` bytes is
hashed (mnist_dvc/files.py): a symlink to /dev/zero would otherwise be hashed forever."""

from __future__ import annotations

import hashlib
from pathlib import Path

from mnist_dvc.files import MAX_HASHED_BYTES, chunks


def file_digest(path: Path, algorithm: str = "md5", limit: int = MAX_HASHED_BYTES) -> str:
    """The hex digest of the regular file at `path`; FileRefused (an OSError) for anything
    else, or for more than `limit` bytes."""
    digest = hashlib.new(algorithm)
    for chunk in chunks(path, limit):
        digest.update(chunk)
    return digest.hexdigest()
