"""The operations of a training step under `numerics: portable`, each rounded the same way on
every CPU and at any thread count.

Contractions (dense layers, convolutions and their gradients, bias gradients) run in the
compiled kernels (kernels.cc), whose sums have one order fixed by the source; the bias and the
relu that follow a layer's sum are applied there too, as TensorFlow rounds them, and max pooling
is there for speed (TensorFlow's MaxPoolGrad searches every window again). Everything else
is either exactly rounded element by element (add, multiply, divide, sqrt, max, select...) or a
short sum along the last axis (the ten classes), which TensorFlow computes in one thread with
one code path. What TensorFlow would otherwise compute with a CPU-specific approximate
reciprocal is written out: the softmax divides, and the cross-entropy's gradient is the exact
`p - y` that Keras's cross-entropy from logits has, with no `1/p` in between.
`tests/test_portable.py` lists every op of the traced training step against the ones allowed.
"""

from __future__ import annotations

import tensorflow as tf

from mnist_dvc.portable.build import load

_kernels = load()


NO_BIAS = tf.zeros((0,))  # the kernels' bias input when there is none


def matmul(
    a: tf.Tensor, b: tf.Tensor, bias: tf.Tensor | None = None, relu: bool = False
) -> tf.Tensor:
    """a @ b for matrices, in the kernels' fixed order; then + bias and relu where given."""
    return _kernels.portable_mat_mul(a, b, NO_BIAS if bias is None else bias, relu=relu)


def conv2d(
    images: tf.Tensor, kernel: tf.Tensor, bias: tf.Tensor | None = None, relu: bool = False
) -> tf.Tensor:
    """A stride-1 "valid" convolution, images NHWC and kernel HWIO, as tf.nn.conv2d; then + bias
    and relu where given."""
    return _kernels.portable_conv2d(images, kernel, NO_BIAS if bias is None else bias, relu=relu)


def max_pool(images: tf.Tensor, size: int, stride: int) -> tf.Tensor:
    """Square "valid" max pooling of NHWC images, with TensorFlow's choice among ties."""
    return _kernels.portable_max_pool(images, size=size, stride=stride)[0]


def softmax(logits: tf.Tensor) -> tf.Tensor:
    """exp(z - max z) / sum: a true division (tf.nn.softmax multiplies by an approximate
    reciprocal, whose bits differ from one CPU vendor to another)."""
    e = tf.exp(logits - tf.reduce_max(logits, axis=-1, keepdims=True))
    return e / tf.reduce_sum(e, axis=-1, keepdims=True)


def crossentropy(y_true: tf.Tensor, logits: tf.Tensor) -> tf.Tensor:
    """The categorical cross-entropy Keras trains the softmax layer with, per example: from the
    logits (Keras takes them from its softmax output), log(sum exp(z - max)) + max - z_y, not
    clipped. Its gradient is the exact p - y, with p the dividing softmax: no reciprocal."""
    y_true = tf.cast(y_true, logits.dtype)  # one-hot labels may come as float64

    @tf.custom_gradient
    def loss(z: tf.Tensor) -> tf.Tensor:
        top = tf.reduce_max(z, axis=-1, keepdims=True)
        e = tf.exp(z - top)
        total = tf.reduce_sum(e, axis=-1, keepdims=True)

        def gradient(upstream: tf.Tensor) -> tf.Tensor:
            return upstream[:, None] * (e / total - y_true)

        return tf.reduce_sum(y_true * (tf.math.log(total) + top - z), axis=-1), gradient

    return loss(logits)


def _before_activation(op: tf.Operation, upstream: tf.Tensor) -> tf.Tensor:
    """The gradient before the op's relu, if it has one: TensorFlow's own ReluGrad (a select)."""
    if op.get_attr("relu"):
        return tf.raw_ops.ReluGrad(gradients=upstream, features=op.outputs[0])
    return upstream


def _bias_gradient(bias: tf.Tensor, upstream: tf.Tensor) -> tf.Tensor | None:
    # Summed in the kernels' order: TensorFlow's BiasAddGrad splits its sum by the thread count.
    return None if bias.shape[0] == 0 else _kernels.portable_column_sum(upstream)


@tf.RegisterGradient("PortableMatMul")
def _matmul_gradient(op: tf.Operation, upstream: tf.Tensor) -> tuple:
    a, b, bias = op.inputs  # the product a @ b was computed without transposes (`matmul`)
    upstream = _before_activation(op, upstream)
    return (
        _kernels.portable_mat_mul(upstream, b, NO_BIAS, transpose_b=True),
        _kernels.portable_mat_mul(a, upstream, NO_BIAS, transpose_a=True),
        _bias_gradient(bias, upstream),
    )


@tf.RegisterGradient("PortableConv2D")
def _conv2d_gradient(op: tf.Operation, upstream: tf.Tensor) -> tuple:
    # Inside a tf.function (Keras's train step) a gradient nobody reads, such as the first
    # layer's input gradient, is pruned before it runs.
    images, kernel, bias = op.inputs
    upstream = _before_activation(op, upstream)
    return (
        _kernels.portable_conv2d_backprop_input(tf.shape(images), kernel, upstream),
        _kernels.portable_conv2d_backprop_filter(images, tf.shape(kernel), upstream),
        _bias_gradient(bias, upstream),
    )


@tf.RegisterGradient("PortableMaxPool")
def _max_pool_gradient(op: tf.Operation, upstream: tf.Tensor, _argmax_grad: object) -> tf.Tensor:
    return _kernels.portable_max_pool_grad(upstream, op.outputs[1], tf.shape(op.inputs[0]))
