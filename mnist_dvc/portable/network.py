"""A Keras model of the standard layers, trained and run with the portable operations.

`PortableModel` wraps the Sequential model an architecture builds and computes its forward pass
layer by layer: Conv2D and Dense through the fixed-order kernels (mnist_dvc/portable/ops.py),
their bias and relu fused in; the layers that only move or select numbers (pooling, dropout,
flatten) as Keras does, max pooling in a faster kernel of the same result. The
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


def _relu(layer: keras.layers.Layer, last: bool) -> bool:
    """Whether the layer's activation is relu (computed with its sum); False for a linear layer
    and for the last layer's softmax (see the top); PortableError for anything else."""
    name = keras.activations.serialize(layer.activation)
    if last and name == "softmax":
        return False
    if not last and name in ("linear", "relu"):
        return name == "relu"
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


def _channels_last(layer: keras.layers.Layer, x: tf.Tensor, compute: Callable) -> tf.Tensor:
    """compute(x) on NHWC images, the kernels' layout: channels moved last and back (exact)."""
    if getattr(layer, "data_format", None) != "channels_first":
        return compute(x)
    return tf.transpose(compute(tf.transpose(x, (0, 2, 3, 1))), (0, 3, 1, 2))


def _conv2d(layer: keras.layers.Conv2D, x: tf.Tensor, relu: bool) -> tf.Tensor:
    bias = layer.bias if layer.use_bias else None
    return _channels_last(layer, x, lambda t: ops.conv2d(t, layer.kernel, bias, relu))


def _dense(layer: keras.layers.Dense, x: tf.Tensor, relu: bool) -> tf.Tensor:
    return ops.matmul(x, layer.kernel, layer.bias if layer.use_bias else None, relu)


def _max_pooling2d(layer: keras.layers.MaxPooling2D, x: tf.Tensor, training: bool) -> tf.Tensor:
    (size, width), (stride, across) = layer.pool_size, layer.strides
    if size != width or stride != across or layer.padding != "valid":
        return layer(x, training=training)  # exact in TensorFlow too, only slower
    return _channels_last(layer, x, lambda t: ops.max_pool(t, size, stride))


# The layers that compute sums: each with its portable contraction, bias and relu fused.
COMPUTING: dict[type, Callable[[keras.layers.Layer, tf.Tensor, bool], tf.Tensor]] = {
    keras.layers.Conv2D: _conv2d,
    keras.layers.Dense: _dense,
}
# The layers that only move or select numbers, or multiply by a seeded mask: run as Keras runs
# them, but for max pooling's faster kernel.
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
            _relu(layer, last)


def apply_layer(layer: keras.layers.Layer, x: tf.Tensor, training: bool, last: bool) -> tf.Tensor:
    """One layer of a model `check` accepted, computed portably (the last one's softmax left
    out: see the top)."""
    compute = COMPUTING.get(type(layer))
    if compute is not None:
        return compute(layer, x, _relu(layer, last))
    if isinstance(layer, keras.layers.MaxPooling2D):
        return _max_pooling2d(layer, x, training)
    return layer(x, training=training)


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
