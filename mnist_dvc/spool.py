"""The feedback spool: drawings that users labelled on the page (or through POST /feedback),
waiting to become the next version of the drawings data set (`mnist-drawings version`).

One sample is one folder named by its content hash, the SHA-256 of its 28x28 input as float32:
    <spool>/<sha256>/input.npy    the 28x28 float32 image in [0, 1] the model was given
    <spool>/<sha256>/upload       the bytes the client uploaded (PNG, JPEG, ...), as they came
    <spool>/<sha256>/sample.json  label, the model's prediction and the model that made it

A sample is written in a hidden folder beside the others, then renamed into place: a rename is
atomic, so a reader sees a whole sample or none, and a crash leaves only a hidden folder,
which the next write removes. The same drawing twice is one sample (the rename finds its
name taken). The spool holds at most `max_samples` samples and `max_bytes` bytes: one more is
refused, and nothing is written. Writers in other processes take turns through a lock file.
The spool lies outside anything DVC tracks; a version copies what it takes from it.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mnist_dvc.errors import StageError, describe
from mnist_dvc.prepared import IMAGE_SHAPE

MAX_SAMPLES = 10_000
MAX_BYTES = 256 << 20
INPUT, UPLOAD, META = "input.npy", "upload", "sample.json"
_LOCK = ".lock"
_PARTIAL = ".partial-"
_HASH_CHARS = frozenset("0123456789abcdef")


class SpoolError(StageError):
    """The spool cannot take or give a sample; one line naming the folder."""


class SpoolFull(SpoolError):
    """The spool holds its most samples or bytes already."""


class SpoolConflict(SpoolError):
    """The drawing is in the spool already, with another label."""


@dataclass(frozen=True)
class Sample:
    sha256: str
    label: int
    prediction: int | None
    model: str | None
    image: np.ndarray  # (28, 28) float32 in [0, 1]


def content_hash(image: np.ndarray) -> str:
    """The SHA-256 of a 28x28 image as float32: the name of a sample everywhere."""
    return hashlib.sha256(np.ascontiguousarray(image, np.float32).tobytes()).hexdigest()


def check_label(label: object) -> int:
    """A digit label, 0-9, from an int or its one-character text; SpoolError otherwise."""
    text = str(label).strip()
    if isinstance(label, bool) or len(text) != 1 or text not in "0123456789":  # ASCII only
        shown = text if len(text) <= 20 else text[:20] + "..."
        raise SpoolError(f"label {shown!r} is not a digit from 0 to 9")
    return int(text)


class Spool:
    def __init__(self, folder: Path, max_samples: int = MAX_SAMPLES, max_bytes: int = MAX_BYTES):
        self.folder = folder
        self.max_samples = max_samples
        self.max_bytes = max_bytes

    def open(self) -> Spool:
        """Create the folder if need be; SpoolError if it cannot be written."""
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            with self._locked():
                pass
        except OSError as error:
            raise SpoolError(f"feedback folder {self.folder}: {describe(error)}") from None
        return self

    def add(
        self, image: np.ndarray, upload: bytes, label: int, prediction: int, model: str
    ) -> tuple[str, bool]:
        """(the sample's hash, whether it was already there). SpoolFull when it is full, with
        nothing written; SpoolError (a different label for the same drawing) likewise."""
        if image.shape != IMAGE_SHAPE:
            raise ValueError(f"a spooled image is {IMAGE_SHAPE}, got {image.shape}")
        sha = content_hash(image)
        meta = {"sha256": sha, "label": label, "prediction": prediction, "model": model,
                "upload_sha256": hashlib.sha256(upload).hexdigest()}  # fmt: skip
        try:
            with self._locked():
                final = self.folder / sha
                if final.is_dir():
                    return sha, self._same_label(final, label)
                self._remove_partials()
                count, size = self._usage()
                needed = len(upload) + image.nbytes + len(json.dumps(meta)) + 256  # ~ on disk
                if count >= self.max_samples or size + needed > self.max_bytes:
                    raise SpoolFull(
                        f"the feedback folder is full ({count} samples, {size} bytes; at most "
                        f"{self.max_samples} and {self.max_bytes}): version it with "
                        "`mnist-drawings version --clear`"
                    )
                partial = Path(tempfile.mkdtemp(prefix=_PARTIAL, dir=self.folder))
                try:
                    np.save(partial / INPUT, np.asarray(image, np.float32))
                    (partial / UPLOAD).write_bytes(upload)
                    (partial / META).write_text(json.dumps(meta, indent=1) + "\n")
                    _fsync_folder(partial)
                    os.rename(partial, final)
                    _fsync_folder(self.folder)
                except BaseException:
                    shutil.rmtree(partial, ignore_errors=True)
                    raise
        except OSError as error:
            raise SpoolError(f"feedback folder {self.folder}: {describe(error)}") from None
        return sha, False

    def samples(self) -> list[Sample]:
        """Every whole sample, by hash; SpoolError naming the first damaged one."""
        if not self.folder.is_dir():
            raise SpoolError(f"{self.folder}: no such feedback folder")
        return [read_sample(path) for path in sorted(self._sample_dirs())]

    def _same_label(self, existing: Path, label: int) -> bool:
        known = read_sample(existing).label
        if known != label:
            raise SpoolConflict(
                f"this drawing is in the feedback folder already, labelled {known}: "
                "a drawing has one label"
            )
        return True

    def _sample_dirs(self) -> Iterator[Path]:
        for path in self.folder.iterdir():
            if len(path.name) == 64 and set(path.name) <= _HASH_CHARS and path.is_dir():
                yield path

    def _usage(self) -> tuple[int, int]:
        count = size = 0
        for path in self._sample_dirs():
            count += 1
            size += sum(entry.stat().st_size for entry in path.iterdir())
        return count, size

    def _remove_partials(self) -> None:
        for path in self.folder.glob(f"{_PARTIAL}*"):
            shutil.rmtree(path, ignore_errors=True)

    def remove(self, hashes: set[str]) -> int:
        """Remove these samples (the ones a version now holds); how many were here."""
        removed = 0
        try:
            with self._locked():
                for path in self._sample_dirs():
                    if path.name in hashes:
                        shutil.rmtree(path)
                        removed += 1
        except OSError as error:
            raise SpoolError(f"feedback folder {self.folder}: {describe(error)}") from None
        return removed

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.folder.mkdir(parents=True, exist_ok=True)  # removed by hand while serving
        with open(self.folder / _LOCK, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)


def read_sample(folder: Path) -> Sample:
    """One sample folder, checked: its image is 28x28 float32 in [0, 1] whose hash is the
    folder's name, its label a digit."""
    try:
        meta = json.loads((folder / META).read_text())
        image = np.load(folder / INPUT, allow_pickle=False)
        label = check_label(meta["label"])
    except (OSError, ValueError, KeyError, TypeError, SpoolError) as error:
        raise SpoolError(f"{folder}: a damaged sample ({describe(error)})") from None
    if (
        image.shape != IMAGE_SHAPE
        or image.dtype != np.float32
        or content_hash(image) != folder.name
    ):
        raise SpoolError(f"{folder}: a damaged sample (its image is not the one it is named by)")
    prediction = meta.get("prediction")
    model = meta.get("model")
    return Sample(
        folder.name,
        label,
        prediction if isinstance(prediction, int) else None,
        model if isinstance(model, str) else None,
        image,
    )


def _fsync_folder(folder: Path) -> None:
    for path in [*folder.iterdir(), folder] if folder.name.startswith(_PARTIAL) else [folder]:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        except OSError as error:  # a file system that cannot sync a folder
            if error.errno not in (errno.EINVAL, errno.EBADF):
                raise
        finally:
            os.close(fd)
