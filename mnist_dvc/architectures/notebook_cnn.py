"""The notebook's CNN (the default): two 3x3 convolutions, 2x2 max-pooling, dropout, a dense
layer of 128, dropout, softmax. 1,199,882 weights."""

from __future__ import annotations

import keras
from keras import layers

from mnist_dvc import mnist
from mnist_dvc.params import NotebookCnnParams
from mnist_dvc.prepared import data_format_of


def build(input_shape: tuple[int, int, int], p: NotebookCnnParams) -> keras.Sequential:
    data_format = data_format_of(input_shape)  # wherever preprocess put the channel axis
    kernel, pool = (p.kernel_size, p.kernel_size), (p.pool_size, p.pool_size)
    return keras.Sequential(
        [
            keras.Input(shape=input_shape),
            layers.Conv2D(p.conv1_filters, kernel, activation="relu", data_format=data_format),
            layers.Conv2D(p.conv2_filters, kernel, activation="relu", data_format=data_format),
            layers.MaxPooling2D(pool, data_format=data_format),
            layers.Dropout(p.conv_dropout),
            layers.Flatten(data_format=data_format),
            layers.Dense(p.dense_units, activation="relu"),
            layers.Dropout(p.dense_dropout),
            # float32 even under a mixed precision policy: a bfloat16 softmax loses the small
            # probabilities the loss needs
            layers.Dense(mnist.NUM_CLASSES, activation="softmax", dtype="float32"),
        ]
    )
