"""mnist_dvc.files and digests: only a regular file of at most its limit is read or hashed,
judged before a byte is read; anything else is a FileRefused naming the file."""

from __future__ import annotations

import hashlib
import os
import threading

import pytest

from mnist_dvc.digests import file_digest
from mnist_dvc.errors import describe
from mnist_dvc.files import FileRefused, read_limited, read_text_limited


@pytest.fixture
def odd(tmp_path):
    """A symlink to /dev/zero, a named pipe and a folder, by name."""
    paths = {kind: tmp_path / kind.replace(" ", "-") for kind in ("device", "pipe", "folder")}
    paths["device"].symlink_to("/dev/zero")
    os.mkfifo(paths["pipe"])
    paths["folder"].mkdir()
    return paths


@pytest.mark.parametrize(
    ("kind", "what"),
    [("device", "a character device"), ("pipe", "a named pipe"), ("folder", "a folder")],
)
@pytest.mark.parametrize("read", [read_limited, file_digest])
def test_what_is_not_a_regular_file_is_refused_at_once(odd, kind, what, read):
    done = threading.Event()
    errors = []

    def attempt():  # in a thread: a read that blocks or never ends must fail the test, not hang it
        try:
            read(odd[kind])
        except FileRefused as error:
            errors.append(error)
        done.set()

    threading.Thread(target=attempt, daemon=True).start()
    assert done.wait(10), f"{read.__name__} of {what} did not return"
    (error,) = errors
    assert error.filename == str(odd[kind])
    assert describe(error) == f"not a regular file ({what})"


def test_a_file_over_its_limit_is_refused_unread(tmp_path):
    big = tmp_path / "params.yaml"
    with open(big, "wb") as file:
        file.truncate(10 << 30)  # 10 GiB, sparse
    with pytest.raises(FileRefused) as refused:
        read_limited(big)
    assert describe(refused.value) == (
        "10,737,418,240 bytes, larger than such a file can be (at most 1,048,576)"
    )
    with pytest.raises(FileRefused):
        file_digest(big, limit=1 << 20)


def test_a_regular_file_reads_as_it_is(tmp_path):
    path = tmp_path / "metrics.json"
    path.write_text('{"accuracy": 0.99}')
    assert read_text_limited(path) == '{"accuracy": 0.99}'
    assert file_digest(path) == hashlib.md5(b'{"accuracy": 0.99}').hexdigest()
    with pytest.raises(FileNotFoundError):
        read_limited(tmp_path / "missing")
