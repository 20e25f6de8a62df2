import numpy as np
import pytest

from mnist_dvc import mnist
from mnist_dvc.idx import IdxError, write_idx
from mnist_dvc.mnist import DigestError
from stages.preprocess import load_split, preprocess, scale_images
from tests.helpers import run_stage_module, small_mnist_arrays, write_params


@pytest.mark.parametrize(
    ("data_format", "image_shape"),
    [("channels_last", (28, 28, 1)), ("channels_first", (1, 28, 28))],
)
def test_real_mnist_becomes_float_arrays(real_raw_dir, workdir, data_format, image_shape):
    out = workdir / "data" / "prepared"
    preprocess(real_raw_dir, out, data_format)
    x_train = np.load(out / "x_train.npy", mmap_mode="r")
    x_test = np.load(out / "x_test.npy", mmap_mode="r")
    y_train, y_test = np.load(out / "y_train.npy"), np.load(out / "y_test.npy")
    assert x_train.shape == (60000, *image_shape) and x_test.shape == (10000, *image_shape)
    assert x_train.dtype == np.float32
    assert float(x_train.min()) == 0.0 and float(x_train.max()) == 1.0
    assert y_train[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    counts = np.bincount(y_test, minlength=10).tolist()
    assert counts == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert not list(workdir.rglob("*.partial"))


def test_scaling_matches_the_notebook():
    images, _ = small_mnist_arrays(4)
    notebook = images.reshape(4, 28, 28, 1).astype("float32")
    notebook /= 255
    np.testing.assert_array_equal(scale_images(images, "channels_last"), notebook)


def test_small_split_loads(tmp_path):
    images, labels = small_mnist_arrays(9)
    write_idx(tmp_path / "i", images)
    write_idx(tmp_path / "l", labels)
    got_images, got_labels = load_split(tmp_path / "i", tmp_path / "l", 9)
    np.testing.assert_array_equal(got_images, images)
    np.testing.assert_array_equal(got_labels, labels)


def test_counts_that_disagree_are_named(tmp_path):
    images, labels = small_mnist_arrays(9)
    write_idx(tmp_path / "i", images)
    write_idx(tmp_path / "l", labels[:8])
    with pytest.raises(IdxError, match=r"/i holds 9 images but .*/l holds 8 labels"):
        load_split(tmp_path / "i", tmp_path / "l", 9)


def test_a_label_outside_0_to_9_is_named(tmp_path):
    images, labels = small_mnist_arrays(9)
    labels[3] = 10
    write_idx(tmp_path / "i", images)
    write_idx(tmp_path / "l", labels)
    with pytest.raises(IdxError, match=r"/l: label 10 is not a digit 0-9"):
        load_split(tmp_path / "i", tmp_path / "l", 9)


def _flip_a_pixel(path):
    data = bytearray(path.read_bytes())
    data[5000] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    ("damage", "error", "message"),
    [
        (_flip_a_pixel, DigestError, r"SHA-256 [0-9a-f]{64}, expected ba891046"),
        (lambda p: p.write_bytes(p.read_bytes()[:-784]), IdxError, "truncated"),
        (lambda p: p.write_bytes(b"\0\0\x08\x01" + p.read_bytes()[4:]), IdxError, "magic"),
    ],
)
def test_damaged_raw_data_writes_nothing(raw_copy, workdir, damage, error, message):
    damage(raw_copy / mnist.TRAIN_IMAGES.name)
    out = workdir / "data" / "prepared"
    out.mkdir()
    (out / "x_train.npy").write_text("previous output")
    with pytest.raises(error, match=message) as raised:
        preprocess(raw_copy, out, "channels_last")
    assert str(raw_copy / mnist.TRAIN_IMAGES.name) in str(raised.value)
    assert [p.name for p in out.iterdir()] == ["x_train.npy"]
    assert (out / "x_train.npy").read_text() == "previous output"


def test_the_stage_exits_non_zero_with_one_line(raw_copy, workdir):
    labels = raw_copy / mnist.TEST_LABELS.name
    labels.write_bytes(labels.read_bytes()[:-10])
    write_params(workdir / "params.yaml")
    run = run_stage_module("preprocess", workdir)
    assert run.returncode == 1
    assert run.stderr.strip().splitlines() == [
        "preprocess: error: data/raw/t10k-labels-idx1-ubyte: 9998 bytes, but its header (10000) "
        "needs 10008: the file is truncated or has trailing bytes"
    ]
    assert not (workdir / "data" / "prepared").exists()
