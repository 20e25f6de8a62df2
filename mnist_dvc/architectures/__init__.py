"""The architectures `train.model.arch` selects from, one module each, and their table.

A new one: a module here with a `build(input_shape, settings)` function, its settings class and
section in mnist_dvc/params.py (`ModelParams`) and params.yaml, and a row in BUILDERS.
"""

from __future__ import annotations

from collections.abc import Callable

import keras

from mnist_dvc.architectures import mnist_convnet, notebook_cnn
from mnist_dvc.params import ModelParams

BUILDERS: dict[str, Callable[..., keras.Sequential]] = {
    "notebook_cnn": notebook_cnn.build,
    "mnist_convnet": mnist_convnet.build,
}


def build_model(input_shape: tuple[int, int, int], p: ModelParams) -> keras.Sequential:
    """The selected architecture for images shaped `input_shape` (channel axis included)."""
    return BUILDERS[p.arch](input_shape, p.settings)
