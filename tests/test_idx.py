import struct

import numpy as np
import pytest

from mnist_dvc.idx import IdxError, idx_bytes, read_idx, write_idx
from tests.helpers import small_mnist_arrays


def test_round_trip(tmp_path):
    images, labels = small_mnist_arrays(7)
    write_idx(tmp_path / "images", images)
    write_idx(tmp_path / "labels", labels)
    np.testing.assert_array_equal(read_idx(tmp_path / "images", ndim=3, shape=(28, 28)), images)
    np.testing.assert_array_equal(read_idx(tmp_path / "labels", ndim=1), labels)


def test_header_layout_is_the_canonical_one():
    images, _ = small_mnist_arrays(3)
    assert idx_bytes(images)[:16] == struct.pack(">IIII", 0x00000803, 3, 28, 28)


def test_reads_real_mnist(real_raw_dir):
    images = read_idx(real_raw_dir / "train-images-idx3-ubyte", ndim=3, shape=(28, 28))
    labels = read_idx(real_raw_dir / "t10k-labels-idx1-ubyte", ndim=1)
    assert images.shape == (60000, 28, 28)
    assert labels[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]


def _damage(path, how):
    data = bytearray(path.read_bytes())
    if how == "magic":
        data[2:4] = b"\x08\x01"
    elif how == "dims":
        data[8:12] = struct.pack(">I", 27)
    elif how == "truncated":
        del data[-100:]
    elif how == "trailing":
        data += b"\0"
    elif how == "empty":
        data = bytearray(b"\0\0")
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    ("how", "message"),
    [
        ("magic", "wrong magic number 0x00000801, expected 0x00000803"),
        ("dims", "wrong dimensions 27x28, expected 28x28"),
        ("truncated", "the file is truncated or has trailing bytes"),
        ("trailing", "the file is truncated or has trailing bytes"),
        ("empty", "too short for an IDX header"),
    ],
)
def test_bad_files_are_named_and_explained(tmp_path, how, message):
    path = tmp_path / "images"
    write_idx(path, small_mnist_arrays(5)[0])
    _damage(path, how)
    with pytest.raises(IdxError) as error:
        read_idx(path, ndim=3, shape=(28, 28))
    assert str(path) in str(error.value)
    assert message in str(error.value)
    assert "\n" not in str(error.value)


def test_only_uint8_is_written():
    with pytest.raises(TypeError):
        idx_bytes(np.zeros((2, 2), dtype=np.float32))
