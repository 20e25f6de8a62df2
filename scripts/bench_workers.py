"""The benchmark's measurements, each run in a fresh process by the studies: `python
scripts/bench.py --worker KIND [options]` runs one of WORKERS and prints one line, `BENCH {json}`.

The matrix-multiply peak and the model's FLOPs per image (matmul), a training run of the train
stage's own code scored as evaluate scores it (train), an epoch's seconds against the training
set's size (scaling), images/s under the environment's intra-op threads (threads), and where a
training step's time goes (profile). TensorFlow is imported inside each worker, after
scripts/bench.py has configured the numerics.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
QUICK = {"train_images": 12000, "epochs": 3}  # throughput: first epoch apart, then 2 steady
SCALING = (7500, 15000, 30000, 60000)  # 1/8, 1/4, 1/2 and all of the training images
MATMUL_N = 2048
PREPARED = ROOT / "data" / "prepared"


def count_flops(model) -> dict[str, float]:
    """Floating-point operations per image, counted from the model's layers: 2 per
    multiply-add of each convolution and dense layer (pooling, dropout and activations are a
    rounding error). Backward costs twice the forward (gradients for the inputs and for the
    weights), except that the first layer needs no gradient for its input."""
    per_layer = []
    for layer in model.layers:
        if hasattr(layer, "kernel"):  # Conv2D and Dense: output positions x weights per output
            shape = layer.output.shape[1:]
            channels_first = getattr(layer, "data_format", None) == "channels_first"
            positions = int(np.prod(shape[1:] if channels_first else shape[:-1]))
            per_layer.append(2 * positions * int(np.prod(layer.kernel.shape)))
    forward = sum(per_layer)
    return {"forward": forward, "train": 3 * forward - per_layer[0]}


def worker_matmul(data: Path) -> dict:
    """The matrix-multiply peak in GFLOP/s for each precision, and the FLOPs per image of the
    model params.yaml selects."""
    import tensorflow as tf

    from mnist_dvc import prepared
    from mnist_dvc.architectures import build_model

    x = prepared.load_split(data, "train", count=1)[0]
    result: dict = {
        "flops_per_image": count_flops(
            build_model(x.shape[1:], quick_params(1, 1, 42, "float32").model)
        )
    }
    for dtype in ("float32", "bfloat16"):
        a = tf.random.uniform((MATMUL_N, MATMUL_N), dtype=tf.float32)
        a = tf.cast(a, dtype)
        matmul = tf.function(lambda x: tf.matmul(x, x))
        matmul(a).numpy()  # trace and warm up
        best = float("inf")
        for _ in range(5):
            start = time.perf_counter()
            for _ in range(5):
                out = matmul(a)
            out.numpy()
            best = min(best, (time.perf_counter() - start) / 5)
        result[dtype] = 2 * MATMUL_N**3 / best / 1e9
    return result


def quick_params(train_images: int, epochs: int, seed: int, precision: str):
    from mnist_dvc.params import load_params

    params = load_params(ROOT / "params.yaml").train
    return params.model_copy(
        update={
            "train_images": train_images,
            "epochs": epochs,
            "seed": seed,
            "precision": precision,
        }
    )


def worker_train(
    data: Path, train_images: int, epochs: int, seed: int, precision: str, numerics: str
) -> dict:
    """The train stage's own code (stages/train.py), timed per epoch, then scored on the test
    set as the evaluate stage scores it."""
    import keras

    from benchmarks.notebook import epoch_timer
    from mnist_dvc import prepared
    from mnist_dvc.model import predict_probabilities
    from stages.evaluate import score
    from stages.train import train

    timer = epoch_timer(keras)
    p = quick_params(train_images, epochs, seed, precision)
    model = train(data, p, log_dir=None, callbacks=[timer], numerics=numerics)
    x_test, y_test = prepared.load_split(data, "test")
    metrics, _ = score(predict_probabilities(model, x_test, 1000, numerics), y_test)
    return {"epoch_s": timer.seconds, "loss": metrics["loss"], "accuracy": metrics["accuracy"]}


def _compiled_model(data: Path, train_images: int, numerics: str):
    """The model as `train` compiles it under `numerics` (portable: the PortableModel that
    trains the Keras model's layers)."""
    import keras

    from mnist_dvc import mnist, prepared
    from mnist_dvc.architectures import build_model
    from mnist_dvc.model import compile_model, make_optimizer

    p = quick_params(train_images, 1, 42, "float32")
    keras.utils.set_random_seed(p.seed)
    x, y = prepared.load_split(data, "train", count=train_images)
    model = build_model(x.shape[1:], p.model)
    if numerics == "portable":
        from mnist_dvc.portable.network import PortableModel, compile_portable

        model = PortableModel(model)
        compile_portable(model, make_optimizer(p.optimizer))
    else:
        compile_model(model, p.optimizer)
    return model, x, keras.utils.to_categorical(y, mnist.NUM_CLASSES), p.batch_size


def worker_scaling(data: Path, numerics: str) -> dict:
    """Seconds for one epoch (no validation) on each training-set size, one model, traced once
    on a warm-up epoch first; and the seconds of one validation pass."""
    import keras

    from mnist_dvc import mnist, prepared

    model, x, y, batch = _compiled_model(data, max(SCALING), numerics)
    model.fit(x[:1280], y[:1280], batch_size=batch, epochs=1, verbose=0)
    seconds = {}
    for n in SCALING:
        start = time.perf_counter()
        model.fit(x[:n], y[:n], batch_size=batch, epochs=1, verbose=0)
        seconds[n] = time.perf_counter() - start
    # What each epoch of the train stage adds: a validation pass over the test set.
    x_test, y_test = prepared.load_split(data, "test")
    one_hot = keras.utils.to_categorical(y_test, mnist.NUM_CLASSES)
    model.evaluate(x_test[:1000], one_hot[:1000], batch_size=batch, verbose=0)
    start = time.perf_counter()
    model.evaluate(x_test, one_hot, batch_size=batch, verbose=0)
    return {"epoch_s": seconds, "validation_s": time.perf_counter() - start}


def worker_threads(data: Path, images: int, numerics: str) -> dict:
    """Images/s of one epoch (no validation) after a warm-up, with TF_NUM_INTRAOP_THREADS as
    the environment sets it."""
    model, x, y, batch = _compiled_model(data, images, numerics)
    model.fit(x[:1280], y[:1280], batch_size=batch, epochs=1, verbose=0)
    start = time.perf_counter()
    model.fit(x, y, batch_size=batch, epochs=1, verbose=0)
    return {"images_per_s": images / (time.perf_counter() - start)}


def worker_profile(data: Path, images: int, numerics: str) -> dict:
    """Where a training step's time goes, at the stage's batch size: each layer's forward pass,
    the backward pass, the optimizer's update and Keras's `fit` loop around them; and `fit`
    fed from NumPy arrays (Keras's own pipeline with tf.data's autotuning, as the stage fed it
    before mnist_dvc/feed.py) against a hand-made tf.data pipeline. Each figure of `fit` is
    the difference of two whole calls, so it includes the wait at the end of each."""
    import keras
    import tensorflow as tf

    model, x, y, batch = _compiled_model(data, images, numerics)
    xb, yb = tf.constant(x[:batch]), tf.constant(y[:batch])
    loss_fn, optimizer = keras.losses.get(model.loss), model.optimizer
    optimizer.build(model.trainable_variables)

    def best_ms(fn, repeats: int = 30) -> float:
        fn()  # trace
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            out = fn()
            tf.nest.map_structure(lambda t: t.numpy() if hasattr(t, "numpy") else t, out)
            times.append(time.perf_counter() - start)
        return 1000 * statistics.median(times)

    layer_ms = {}
    inputs = xb
    layers = model.inner.layers if numerics == "portable" else model.layers
    for index, layer in enumerate(layers):
        if numerics == "portable":
            from mnist_dvc.portable.network import apply_layer

            last = index == len(layers) - 1
            call = tf.function(lambda t, layer=layer, last=last: apply_layer(layer, t, True, last))
        else:
            call = tf.function(lambda t, layer=layer: layer(t, training=True))
        layer_ms[f"{layer.name} ({type(layer).__name__})"] = best_ms(
            lambda t=inputs, call=call: call(t)
        )
        inputs = call(inputs)

    @tf.function
    def forward():
        return loss_fn(yb, model(xb, training=True))

    @tf.function
    def forward_backward():
        with tf.GradientTape() as tape:
            loss = loss_fn(yb, model(xb, training=True))
        return tape.gradient(loss, model.trainable_variables)

    grads = forward_backward()

    @tf.function
    def update():
        optimizer.apply(grads, model.trainable_variables)
        return tf.constant(0)

    # A fit of k steps and one of 2k: the difference is k steps without fit's set-up cost.
    # The two feeds take turns, three rounds, median: this machine's noise is larger than
    # their difference in any one round.
    k = images // batch // 2

    def arrays(n):
        return x[:n], y[:n], batch

    def pipeline(n):
        dataset = tf.data.Dataset.from_tensor_slices((x[:n], y[:n]))
        return (dataset.batch(batch).prefetch(tf.data.AUTOTUNE),)

    def fit_s(make_input, steps: int) -> float:
        start = time.perf_counter()
        model.fit(*make_input(steps * batch), epochs=1, verbose=0)
        return time.perf_counter() - start

    first_fit_s = fit_s(arrays, 1)  # traces the train function
    fit_s(pipeline, 1)  # a dataset traces it again
    per_step: dict[str, list[float]] = {"numpy": [], "tf_data": []}
    for _ in range(3):
        for name, feed in (("numpy", arrays), ("tf_data", pipeline)):
            per_step[name].append(1000 * (fit_s(feed, 2 * k) - fit_s(feed, k)) / k)
    numpy_ms = statistics.median(per_step["numpy"])
    tf_data_ms = statistics.median(per_step["tf_data"])
    forward_ms = best_ms(forward)
    forward_backward_ms = best_ms(forward_backward)
    update_ms = best_ms(update)
    return {
        "batch": batch,
        "layer_forward_ms": layer_ms,
        "forward_ms": forward_ms,
        "backward_ms": forward_backward_ms - forward_ms,
        "optimizer_update_ms": update_ms,
        "fit_step_numpy_ms": numpy_ms,
        "fit_step_tf_data_ms": tf_data_ms,
        "fit_first_call_s": first_fit_s,
        "fit_loop_overhead_ms": numpy_ms - forward_backward_ms - update_ms,
    }


WORKERS = {
    "matmul": lambda a: worker_matmul(a.data),
    "train": lambda a: worker_train(
        a.data, a.train_images, a.epochs, a.seed, a.precision, a.numerics
    ),
    "scaling": lambda a: worker_scaling(a.data, a.numerics),
    "threads": lambda a: worker_threads(a.data, a.train_images, a.numerics),
    "profile": lambda a: worker_profile(a.data, a.train_images, a.numerics),
}
