"""`numerics: portable` (mnist_dvc/portable/): the kernels compute what TensorFlow computes, in
their own fixed order; the training step holds no operation whose rounding a CPU chooses; the
fingerprints of the computation are the committed ones at every thread count."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from mnist_dvc.architectures import build_model
from mnist_dvc.model import make_optimizer
from mnist_dvc.params import load_params
from mnist_dvc.portable import build, ops
from mnist_dvc.portable.network import PortableError, PortableModel, compile_portable, predict
from tests.helpers import ENV, REPO_ROOT

MATRIX = json.loads((REPO_ROOT / "benchmarks" / "numerics_matrix.json").read_text())
RNG = np.random.default_rng(0)


def random(*shape: int) -> np.ndarray:
    return RNG.standard_normal(shape, dtype=np.float32)


def relative_error(found, exact) -> float:
    found, exact = np.asarray(found, np.float64), np.asarray(exact, np.float64)
    return float(np.abs(found - exact).max() / max(np.abs(exact).max(), 1e-30))


@pytest.mark.parametrize(
    ("m", "k", "n"),
    [(128, 9216, 128), (7, 5, 3), (13, 300, 10), (1, 1, 1), (96, 4097, 17), (6, 0, 16)],
)
def test_matmul_and_its_gradients_compute_the_product(m, k, n):
    # Shapes at and across every block edge: the 6x16 tile, a K chunk (4096), an empty K.
    a, b, upstream = random(m, k), random(k, n), random(m, n)
    av, bv = tf.constant(a), tf.constant(b)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch([av, bv])
        product = ops.matmul(av, bv)
    da, db = tape.gradient(product, [av, bv], output_gradients=tf.constant(upstream))
    a64, b64, up64 = (x.astype(np.float64) for x in (a, b, upstream))
    assert product.shape == (m, n)
    assert relative_error(product, a64 @ b64) < 1e-5 or k == 0
    if k:
        assert relative_error(da, up64 @ b64.T) < 1e-5
        assert relative_error(db, a64.T @ up64) < 1e-5
    else:
        assert not np.asarray(product).any()


@pytest.mark.parametrize(
    "shape", [(128, 28, 28, 1, 3, 3, 32), (16, 26, 26, 32, 3, 3, 64), (3, 9, 7, 5, 2, 3, 7)]
)
def test_conv2d_and_its_gradients_compute_tensorflows(shape):
    batch, height, width, channels, kh, kw, filters = shape
    images, kernel = (
        tf.constant(random(batch, height, width, channels)),
        tf.constant(random(kh, kw, channels, filters)),
    )
    with tf.GradientTape(persistent=True) as tape:
        tape.watch([images, kernel])
        ours = ops.conv2d(images, kernel)
        theirs = tf.nn.conv2d(images, kernel, 1, "VALID")
    upstream = tf.constant(random(*theirs.shape))
    ours_grads = tape.gradient(ours, [images, kernel], output_gradients=upstream)
    theirs_grads = tape.gradient(theirs, [images, kernel], output_gradients=upstream)
    assert relative_error(ours, theirs) < 1e-5
    for mine, reference in zip(ours_grads, theirs_grads, strict=True):
        assert relative_error(mine, reference) < 1e-5


@pytest.mark.parametrize("kind", ["dense", "conv2d"])
def test_bias_and_relu_are_tensorflows_bits_and_their_gradients_sum_in_order(kind):
    # Fused into the kernels: the same bits as the contraction, then TensorFlow's add and relu.
    if kind == "dense":
        x, w, bias = (
            tf.constant(random(40, 30)),
            tf.Variable(random(30, 33)),
            tf.Variable(random(33)),
        )
        contract = ops.matmul
    else:
        x, w, bias = (tf.constant(random(4, 9, 8, 3)), tf.Variable(random(3, 3, 3, 33)),
                      tf.Variable(random(33)))  # fmt: skip
        contract = ops.conv2d
    with tf.GradientTape(persistent=True) as tape:
        fused = contract(x, w, bias, relu=True)
        apart = tf.nn.relu(contract(x, w) + bias)
    assert np.array_equal(fused.numpy().view(np.uint32), apart.numpy().view(np.uint32))
    upstream = tf.constant(random(*fused.shape))
    db = tape.gradient(fused, bias, output_gradients=upstream)
    masked = np.where(apart.numpy() > 0, upstream.numpy(), 0).astype(np.float64)
    assert relative_error(db, masked.reshape(-1, 33).sum(axis=0)) < 1e-5
    dw_fused = tape.gradient(fused, w, output_gradients=upstream)
    dw_apart = tape.gradient(apart, w, output_gradients=upstream)
    assert np.array_equal(dw_fused, dw_apart)


def test_max_pool_and_its_gradient_are_tensorflows():
    # Ties (relu's zeros, repeated values) go where TensorFlow's MaxPoolGrad sends them.
    x = tf.constant(np.round(np.maximum(random(8, 24, 24, 5), 0) * 2) / 2)
    upstream = tf.constant(random(8, 12, 12, 5))
    for size, stride in ((2, 2), (3, 2), (3, 3)):
        with tf.GradientTape(persistent=True) as tape:
            tape.watch(x)
            ours = ops.max_pool(x, size, stride)
            theirs = tf.nn.max_pool2d(x, size, stride, "VALID")
        up = upstream[:, : theirs.shape[1], : theirs.shape[2]]
        assert np.array_equal(ours, theirs)
        ours_grad = tape.gradient(ours, x, output_gradients=up)
        theirs_grad = tape.gradient(theirs, x, output_gradients=up)
        assert np.array_equal(
            ours_grad.numpy().view(np.uint32), theirs_grad.numpy().view(np.uint32)
        )


def test_softmax_and_crossentropy_are_kerass_without_a_reciprocal():
    # Keras trains a softmax layer's cross-entropy from its logits (`_keras_logits`), unclipped.
    logits = random(64, 10) * 8
    logits[0] = [40, 0, 0, 0, 0, 0, 0, 0, 0, 0]  # nearly certain and right
    logits[1] = [-40, 0, 0, 0, 0, 0, 0, 0, 0, 0]  # nearly certain and wrong: loss about 42
    labels = keras.utils.to_categorical(np.arange(64) % 10, 10).astype(np.float32)
    labels[:2] = keras.utils.to_categorical([0, 0], 10)
    z = tf.constant(logits)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(z)
        ours = ops.crossentropy(labels, z)
        theirs = keras.losses.categorical_crossentropy(
            labels, keras.activations.softmax(z)
        )  # as a Dense(activation="softmax") layer's output reaches Keras's loss
    assert relative_error(ops.softmax(z), tf.nn.softmax(z)) < 1e-6
    assert relative_error(ours, theirs) < 1e-5 and float(ours[1]) > 40
    assert relative_error(tape.gradient(ours, z), tape.gradient(theirs, z)) < 1e-5


@pytest.mark.parametrize(
    ("arch", "data_format"),
    [("notebook_cnn", "channels_last"), ("mnist_convnet", "channels_last"),
     ("notebook_cnn", "channels_first")],
)  # fmt: skip
def test_the_portable_forward_pass_is_the_keras_models(arch, data_format):
    shape = (1, 28, 28) if data_format == "channels_first" else (28, 28, 1)
    p = load_params().train.model.model_copy(update={"arch": arch})
    keras.utils.set_random_seed(1)
    model = build_model(shape, p)
    images = np.random.default_rng(2).random((50, *shape), dtype=np.float32)
    ours = predict(model, images, batch_size=32)
    assert relative_error(ours, model.predict(images, verbose=0)) < 1e-5
    assert predict(model, images[:0], batch_size=32).shape == (0, 10)


def test_layers_without_a_portable_version_are_refused_in_one_line():
    def notebook(**conv):
        layers = keras.layers
        return keras.Sequential(
            [keras.Input((28, 28, 1)), layers.Conv2D(4, 3, **conv), layers.Flatten(),
             layers.Dense(10, activation="softmax")]
        )  # fmt: skip

    PortableModel(notebook(activation="relu"))
    refusals = {
        "stride-1 'valid' convolutions": notebook(strides=2),
        "relu or linear layers and a final softmax": notebook(activation="tanh"),
    }
    for message, model in refusals.items():
        with pytest.raises(PortableError, match=message) as refused:
            PortableModel(model)
        assert "\n" not in str(refused.value) and "numerics: native" in str(refused.value)
    batch_norm = keras.Sequential([keras.Input((4,)), keras.layers.BatchNormalization()])
    with pytest.raises(PortableError, match="BatchNormalization"):
        PortableModel(batch_norm)


def test_the_training_step_has_only_exactly_rounded_operations():
    """Every op of the traced step is exactly rounded, data movement, or a contraction of the
    kernels; a sum that TensorFlow computes stays within one short axis (its code path is then
    one thread's, whatever the thread count)."""
    exact = {
        "AddV2", "ArgMax", "AssignAddVariableOp", "AssignVariableOp", "Bitcast", "BitwiseAnd",
        "BroadcastTo", "Cast", "Const", "DivNoNan", "Equal", "Exp", "Fill", "FloorMod",
        "Greater", "GreaterEqual", "Identity", "IdentityN", "Less", "Log", "LogicalAnd", "Max",
        "MaxPool", "MaxPoolGrad", "Maximum", "Minimum", "Mul", "Neg", "NoOp", "Placeholder",
        "Prod", "Range", "ReadVariableOp", "RealDiv", "Relu", "ReluGrad", "Reshape", "SelectV2",
        "Sqrt", "Square", "StatelessRandomGetKeyCounter", "StatelessRandomUniformV2",
        "StridedSlice", "Sub", "Sum", "Tile",
        "PortableColumnSum", "PortableConv2D", "PortableConv2DBackpropFilter",
        "PortableConv2DBackpropInput", "PortableMatMul", "PortableMaxPool", "PortableMaxPoolGrad",
    }  # fmt: skip
    p = load_params().train
    keras.utils.set_random_seed(42)
    portable = PortableModel(build_model((28, 28, 1), p.model))
    compile_portable(portable, make_optimizer(p.optimizer))
    x, y = np.zeros((128, 28, 28, 1), np.float32), np.zeros((128, 10), np.float32)
    portable.fit(x, y, batch_size=128, epochs=1, verbose=0)  # builds the optimizer's slots
    step = tf.function(lambda x, y: portable.train_step((x, y)))
    graph = step.get_concrete_function(tf.TensorSpec(x.shape), tf.TensorSpec(y.shape)).graph
    operations = live_operations(graph)
    assert not graph.as_graph_def().library.function, "no nested function hides an op"
    assert {op.type for op in operations} - exact == set()
    for op in operations:
        if op.type in ("Sum", "Prod") and op.inputs[0].dtype.is_floating:
            shape = op.inputs[0].shape.as_list()
            axes = tf.get_static_value(op.inputs[1])
            extent = int(np.prod([shape[a] for a in np.atleast_1d(axes)]))
            assert extent <= 128, (op.name, shape, axes)


def live_operations(graph: tf.Graph) -> list[tf.Operation]:
    """The operations the step runs: those its outputs and its state updates depend on. (The
    rest, such as the gradient of dropout's constant scale, are pruned before it runs.)"""
    todo = [t.op for t in graph.outputs] + list(graph.control_outputs)
    live: dict[str, tf.Operation] = {}
    while todo:
        op = todo.pop()
        if op.name not in live:
            live[op.name] = op
            todo.extend(t.op for t in op.inputs)
            todo.extend(op.control_inputs)
    return list(live.values())


def test_a_missing_compiler_is_one_line(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setenv("CXX", "no-such-compiler")
    with pytest.raises(build.KernelBuildError, match=r"^numerics: portable compiles .*g\+\+"):
        build.load()


def fingerprints_at(prepared, threads: int) -> dict[str, str]:
    images = str(MATRIX["images"])
    run = subprocess.run(
        [sys.executable, "-m", "mnist_dvc.portable.fingerprint", str(prepared), "--images", images],
        cwd=REPO_ROOT,
        env={**ENV, "TF_NUM_INTRAOP_THREADS": str(threads), "TF_CPP_MIN_LOG_LEVEL": "3"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    (line,) = [line for line in run.stdout.splitlines() if line.startswith("FINGERPRINTS ")]
    return json.loads(line.removeprefix("FINGERPRINTS "))


@pytest.mark.slow
@pytest.mark.parametrize("threads", [1, 2, 4])
def test_the_fingerprints_are_the_committed_ones_at_any_thread_count(real_prepared_dir, threads):
    # Every CPU CI lands on adds evidence: the committed ones came from other CPUs (the matrix).
    committed = next(iter(MATRIX["columns"].values()))
    found = fingerprints_at(real_prepared_dir, threads)
    differs = [name for name in committed if found.get(name) != committed[name]]
    assert not differs, f"first different: {differs[0]} ({threads} of {os.cpu_count()} cores)"
