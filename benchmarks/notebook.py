"""The notebook's training cell, unported (Keras 2, on tf-keras) or ported literally to Keras 3:
the two anchors `make bench` runs beside the project's train stage.

    python benchmarks/notebook.py --keras tf_keras --seed 1 [--train-images N] [--epochs E]
                                  [--loss keras-2.2] [--numerics portable]

The cell is the notebook's (../shared/seed), as written: no DVCLive, no atomic writes, no
params validation. Only what cannot run as written changes: MNIST comes from data/raw (the
notebook's `mnist.load_data()` downloads from a host these machines cannot reach; the arrays
are the same), a seed is set (the notebook set none), and the epochs are timed. Adadelta gets
`learning_rate=1.0`: the notebook's `Adadelta()` ran on Keras 2.2 ("Train on 60000 samples"),
whose default was 1.0; tf-keras (Keras 2.3 and later) and Keras 3 default to 0.001, with which
this model barely learns in 12 epochs.
`--loss keras-2.2` computes the loss as the notebook's Keras 2.2 did (see `keras22_crossentropy`)
instead of as tf-keras and Keras 3 do today: a difference the seed study could not rule out.
`--numerics portable` runs it on the project's portable kernels (mnist_dvc/numerics.py) instead
of TensorFlow's own choice for this CPU, what a user of the notebook gets.
Prints one line `BENCH {json}`: seconds per epoch, test loss and accuracy.
"""

from __future__ import annotations

import argparse
import importlib
import json
import time
from pathlib import Path
from typing import get_args

from mnist_dvc import mnist, numerics
from mnist_dvc.params import Numerics
from mnist_dvc.paths import RAW_DIR


def load_data(raw_dir: Path):
    """What `keras.datasets.mnist.load_data()` returns, from the fetch stage's verified IDX
    files, read and checked as the preprocess stage reads them."""
    from stages.preprocess import load_split

    train = load_split(raw_dir / mnist.TRAIN_IMAGES.name, raw_dir / mnist.TRAIN_LABELS.name,
                       mnist.NUM_TRAIN)  # fmt: skip
    test = load_split(raw_dir / mnist.TEST_IMAGES.name, raw_dir / mnist.TEST_LABELS.name,
                      mnist.NUM_TEST)  # fmt: skip
    return train, test


def main() -> None:
    parse = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parse.add_argument("--keras", choices=["tf_keras", "keras3"], required=True)
    parse.add_argument("--seed", type=int, required=True)
    parse.add_argument("--train-images", type=int, default=60000)
    parse.add_argument("--epochs", type=int, default=12)
    parse.add_argument("--raw", type=Path, default=RAW_DIR, help="the fetch stage's IDX files")
    parse.add_argument(
        "--loss",
        choices=["today", "keras-2.2"],
        default="today",
        help="keras-2.2: the probabilities clipped before the log, as the notebook computed it",
    )
    parse.add_argument("--numerics", choices=get_args(Numerics), default="native")
    args = parse.parse_args()
    numerics.configure(args.numerics)  # before TensorFlow loads

    keras = importlib.import_module("tf_keras" if args.keras == "tf_keras" else "keras")
    keras.utils.set_random_seed(args.seed)
    from tensorflow.config.experimental import enable_op_determinism

    enable_op_determinism()  # as the project's train stage runs; the same speed here
    Sequential = keras.models.Sequential
    Dense, Dropout, Flatten = keras.layers.Dense, keras.layers.Dropout, keras.layers.Flatten
    Conv2D, MaxPooling2D = keras.layers.Conv2D, keras.layers.MaxPooling2D

    # The notebook's cells from here on.
    batch_size = 128
    num_classes = 10
    epochs = args.epochs
    img_rows, img_cols = 28, 28
    (x_train, y_train), (x_test, y_test) = load_data(args.raw)
    x_train, y_train = x_train[: args.train_images], y_train[: args.train_images]
    x_train = x_train.reshape(x_train.shape[0], img_rows, img_cols, 1)
    x_test = x_test.reshape(x_test.shape[0], img_rows, img_cols, 1)
    input_shape = (img_rows, img_cols, 1)
    x_train = x_train.astype("float32")
    x_test = x_test.astype("float32")
    x_train /= 255
    x_test /= 255
    y_train = keras.utils.to_categorical(y_train, num_classes)
    y_test = keras.utils.to_categorical(y_test, num_classes)

    model = Sequential()
    model.add(Conv2D(32, kernel_size=(3, 3), activation="relu", input_shape=input_shape))
    model.add(Conv2D(64, (3, 3), activation="relu"))
    model.add(MaxPooling2D(pool_size=(2, 2)))
    model.add(Dropout(0.25))
    model.add(Flatten())
    model.add(Dense(128, activation="relu"))
    model.add(Dropout(0.5))
    model.add(Dense(num_classes, activation="softmax"))
    loss = keras.losses.categorical_crossentropy  # the notebook's
    if args.loss == "keras-2.2":
        loss = keras22_crossentropy
    model.compile(
        loss=loss,
        optimizer=keras.optimizers.Adadelta(learning_rate=1.0),
        metrics=["accuracy"],
    )

    timer = epoch_timer(keras)
    model.fit(
        x_train,
        y_train,
        batch_size=batch_size,
        epochs=epochs,
        verbose=2,
        validation_data=(x_test, y_test),
        callbacks=[timer],
    )
    score = model.evaluate(x_test, y_test, verbose=0)
    print(
        "BENCH "
        + json.dumps(
            {"epoch_s": timer.seconds, "loss": float(score[0]), "accuracy": float(score[1])}
        )
    )


def keras22_crossentropy(y_true, y_pred):
    """categorical_crossentropy as Keras 2.2's TensorFlow backend computed it: from the
    softmax's probabilities, clipped to [1e-7, 1 - 1e-7] before the log. tf-keras and Keras 3
    take the softmax's input (logits) instead, so nothing is clipped: an image's loss is not
    capped at -log(1e-7) = 16.1, and one the model already gets right with p > 1 - 1e-7 still
    has a gradient."""
    import tensorflow as tf

    epsilon = 1e-7  # Keras's K.epsilon()
    y_pred = y_pred / tf.reduce_sum(y_pred, axis=-1, keepdims=True)
    y_pred = tf.clip_by_value(y_pred, epsilon, 1.0 - epsilon)
    return -tf.reduce_sum(y_true * tf.math.log(y_pred), axis=-1)


def epoch_timer(keras):
    """A callback recording each epoch's seconds, for whichever Keras is running."""

    class Timer(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.seconds: list[float] = []

        def on_epoch_begin(self, epoch, logs=None) -> None:
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None) -> None:
            self.seconds.append(time.perf_counter() - self.start)

    return Timer()


if __name__ == "__main__":
    main()
