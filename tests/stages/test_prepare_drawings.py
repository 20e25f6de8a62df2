"""Stage `prepare_drawings` without a version (fast): empty arrays in the chosen layout, which
train and evaluate read as "no drawings". A real version, read at its tag, is tested through
`dvc repro` in tests/registry/test_drawings.py."""

from __future__ import annotations

import pytest

from mnist_dvc import prepared
from mnist_dvc.params import DrawingsParams
from stages.prepare_drawings import select


@pytest.mark.parametrize(
    ("data_format", "shape"),
    [("channels_last", (0, 28, 28, 1)), ("channels_first", (0, 1, 28, 28))],
)
def test_no_version_gives_empty_arrays_in_the_layout(tmp_path, data_format, shape):
    train, holdout = select(tmp_path, DrawingsParams(version="none", train=False), data_format)
    for images, labels in (train, holdout):
        assert images.shape == shape and images.dtype.name == "float32"
        assert labels.shape == (0,) and labels.dtype.name == "uint8"
        prepared.save_split(tmp_path, "train", images, labels)
        assert len(prepared.load_split(tmp_path, "train")[1]) == 0
