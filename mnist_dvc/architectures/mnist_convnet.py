"""keras.io's "Simple MNIST convnet" (the example Keras itself ships): convolution and
max-pooling twice, dropout, softmax; no hidden dense layer. 34,826 weights, about a third of
the notebook's training cost per image."""

from __future__ import annotations

import keras
from keras import layers

from mnist_dvc import mnist
from mnist_dvc.params import MnistConvnetParams
from mnist_dvc.prepared import data_format_of


def build(input_shape: tuple[int, int, int], p: MnistConvnetParams) -> keras.Sequential:
    data_format = data_format_of(input_shape)
    kernel, pool = (p.kernel_size, p.kernel_size), (p.pool_size, p.pool_size)
    return keras.Sequential(
        [
            keras.Input(shape=input_shape),
            layers.Conv2D(p.conv1_filters, kernel, activation="relu", data_format=data_format),
            layers.MaxPooling2D(pool, data_format=data_format),
            layers.Conv2D(p.conv2_filters, kernel, activation="relu", data_format=data_format),
            layers.MaxPooling2D(pool, data_format=data_format),
            layers.Flatten(data_format=data_format),
            layers.Dropout(p.dropout),
            # float32 even under a mixed precision policy: a bfloat16 softmax loses the small
            # probabilities the loss needs
            layers.Dense(mnist.NUM_CLASSES, activation="softmax", dtype="float32"),
        ]
    )
