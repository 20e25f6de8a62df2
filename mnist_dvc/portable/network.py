"""A Keras model of the standard layers, trained and run with the portable operations.

`PortableModel` wraps the Sequential model an architecture builds and computes its forward pass
layer by layer: Conv2D and Dense through the fixed-order kernels (mnist_dvc/portable/ops.py),
the layers that only move or select numbers (pooling, dropout, flatten) as Keras does. The
weights stay the wrapped model's own, so what is saved (model.json + model.h5) is the
notebook's standard layers, which any Keras loads. The last layer's softmax is left out of
`call`: the loss takes the logits (its gradient then needs no reciprocal), and `predict`
applies the exact softmax.
"""

from __future__ import annotations

from collections.abc import Callable

import keras
import numpy as np
import tensorflow as tf

from mnist_dvc import mnist
from mnist_dvc.errors import StageError
from mnist_dvc.portable import ops


class PortableError(StageError):
    """The model has a layer or a setting the portable operations do not compute."""


def _activation(layer: keras.layers.Layer, x: tf.Tensor, last: bool) -> tf.Tensor:
    name = keras.activations.serialize(layer.activation)
    if last and name == "softmax":  # left to the loss and to `predict`: see the top
        return x
    if not last and name in ("linear", "relu"):
        return tf.nn.relu(x) if name == "relu" else x
    raise PortableError(
        f"numerics: portable computes relu or linear layers and a final softmax; layer "
        f"{layer.name} uses {name} (set numerics: native)"
    )


def _check_conv2d(layer: keras.layers.Conv2D) -> None:
    if (
        tuple(layer.strides) != (1, 1)
        or tuple(layer.dilation_rate) != (1, 1)
        or layer.padding != "valid"
        or layer.groups != 1
    ):
        raise PortableError(
            f"numerics: portable computes stride-1 'valid' convolutions; layer {layer.name} is "
            "another kind (set numerics: native)"
        )


def _conv2d(layer: keras.layers.Conv2D, x: tf.Tensor) -> tf.Tensor:
    channels_first = layer.data_format == "channels_first"
    if channels_first:  # the kernels take NHWC: move the channels last and back (exact)
        x = tf.transpose(x, (0, 2, 3, 1))
    y = ops.conv2d(x, layer.kernel)
    if layer.use_bias:
        y = ops.add_bias(y, layer.bias)
    return tf.transpose(y, (0, 3, 1, 2)) if channels_first else y


def _dense(layer: keras.layers.Dense, x: tf.Tensor) -> tf.Tensor:
    y = ops.matmul(x, layer.kernel)
    return ops.add_bias(y, layer.bias) if layer.use_bias else y


# The layers that compute: each with its portable contraction, then its activation.
COMPUTING: dict[type, Callable[[keras.layers.Layer, tf.Tensor], tf.Tensor]] = {
    keras.layers.Conv2D: _conv2d,
    keras.layers.Dense: _dense,
}
# The layers that only move or select numbers, or multiply by a seeded mask: run as they are.
EXACT = (keras.layers.MaxPooling2D, keras.layers.Dropout, keras.layers.Flatten)


def check(model: keras.Sequential) -> None:
    """Raise PortableError, naming the layer, if the portable operations cannot compute `model`
    (before any training starts)."""
    layers = model.layers
    for index, layer in enumerate(layers):
        last = index == len(layers) - 1
        if type(layer) not in COMPUTING and not (isinstance(layer, EXACT) and not last):
            raise PortableError(
                f"numerics: portable has no fixed-order version of layer {layer.name} "
                f"({type(layer).__name__}{', last' if last else ''}); set numerics: native"
            )
        if type(layer) in COMPUTING:
            if layer.dtype_policy.compute_dtype != "float32":
                raise PortableError("numerics: portable computes in float32 only")
            if isinstance(layer, keras.layers.Conv2D):
                _check_conv2d(layer)
            elif len(layer.input.shape) != 2:
                raise PortableError(
                    f"numerics: portable computes dense layers on flat inputs; layer "
                    f"{layer.name} takes {len(layer.input.shape) - 1} axes (set numerics: native)"
                )
            _activation(layer, tf.zeros(()), last)


def apply_layer(layer: keras.layers.Layer, x: tf.Tensor, training: bool, last: bool) -> tf.Tensor:
    """One layer of a model `check` accepted, computed portably (the last one's softmax left
    out: see the top)."""
    compute = COMPUTING.get(type(layer))
    if compute is None:
        return layer(x, training=training)
    return _activation(layer, compute(layer, x), last)


class PortableModel(keras.Model):
    """`inner`'s layers, computed with the portable operations; call() returns the logits."""

    def __init__(self, inner: keras.Sequential) -> None:
        check(inner)
        super().__init__()
        self.inner = inner

    def layer_outputs(self, x: tf.Tensor, training: bool = False) -> list[tf.Tensor]:
        """Each layer's output in turn; the last is the logits."""
        layers, outputs = self.inner.layers, []
        for index, layer in enumerate(layers):
            x = apply_layer(layer, x, training, last=index == len(layers) - 1)
            outputs.append(x)
        return outputs

    def call(self, x: tf.Tensor, training: bool = False) -> tf.Tensor:
        return self.layer_outputs(x, training)[-1]


def compile_portable(model: PortableModel, optimizer: keras.optimizers.Optimizer) -> None:
    """Compile for `fit` as compile_model does the Keras model: the same optimizer, Keras's
    cross-entropy (from the logits, portably) and accuracy. TensorFlow's graph rewrites are
    limited first: its arithmetic optimizer turns x / sqrt(y) (in Adadelta and RMSprop) into
    x * rsqrt(y), an approximate instruction whose bits differ between CPU vendors."""
    tf.config.optimizer.set_experimental_options({"arithmetic_optimization": False})
    model.compile(loss=ops.crossentropy, optimizer=optimizer, metrics=["accuracy"])


def predict(model: keras.Model, images: np.ndarray, batch_size: int) -> np.ndarray:
    """The probabilities `model.predict` gives, computed with the portable operations."""
    tf.config.optimizer.set_experimental_options({"arithmetic_optimization": False})
    portable = PortableModel(model)
    probabilities = tf.function(lambda x: ops.softmax(portable(x, training=False)))
    batches = [
        probabilities(tf.constant(images[start : start + batch_size])).numpy()
        for start in range(0, len(images), batch_size)
    ]
    return np.concatenate(batches) if batches else np.zeros((0, mnist.NUM_CLASSES), np.float32)
