"""Stage `train`: fit the selected architecture on data/prepared (and data/drawings_train, empty
unless `drawings.train` is true); write models/model.json +
model.h5, models/provenance.json (where and how model.h5 was computed) and the per-epoch logs in
dvclive/.

Seeded and deterministic: the same params, data and library versions give a byte-identical
model.h5, on every x86-64 CPU with AVX2 and FMA and at any thread count under `numerics: portable`
(mnist_dvc/portable/).
Per-epoch loss and accuracy (train and validation) go to DVCLive's folder for `dvc plots`;
dvc.yaml is hand-written, so DVCLive is told not to touch it. The model, its provenance and
the logs replace the previous ones together, only when training has finished.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from dvclive import Live
from dvclive.keras import DVCLiveCallback

from mnist_dvc import mnist, prepared, strict_json
from mnist_dvc.architectures import build_model
from mnist_dvc.atomic import atomic_outputs
from mnist_dvc.feed import batches
from mnist_dvc.model import StopOnNonFiniteLoss, compile_model, make_optimizer, write_model
from mnist_dvc.numerics import training_precision
from mnist_dvc.params import Numerics, TrainParams, load_params
from mnist_dvc.paths import (
    DRAWINGS_TRAIN_DIR,
    MODEL_JSON,
    MODEL_WEIGHTS,
    PREPARED_DIR,
    PROVENANCE,
    TRAIN_LOG_DIR,
)
from mnist_dvc.processor import cpu
from mnist_dvc.provenance import gpus, provenance_of


def train(
    prepared_dir: Path,
    p: TrainParams,
    log_dir: Path | None,
    callbacks: Sequence = (),
    *,
    numerics: Numerics,
    drawings_dir: Path | None = None,
) -> keras.Model:
    """Fit on data/prepared (and the drawings' training split in `drawings_dir`) in
    `p.precision` (float32 or mixed_bfloat16; main() resolves auto),
    with the portable operations (mnist_dvc/portable/) or TensorFlow's own kernels."""
    if p.precision == "auto":  # a caller's slip, not the user's: main() resolves it
        raise ValueError("train(): resolve precision auto with numerics.training_precision first")
    keras.utils.set_random_seed(p.seed)  # Python, NumPy and TensorFlow generators
    tf.config.experimental.enable_op_determinism()

    x_train, y_train = prepared.load_split(prepared_dir, "train", count=p.train_images)
    # A drawings version's training split, after MNIST's (no folder: a run outside dvc repro,
    # where prepare_drawings did not run: none).
    if drawings_dir is not None and drawings_dir.exists():
        x_drawn, y_drawn = prepared.load_split(drawings_dir, "train")
        if len(y_drawn):  # none (drawings.train: false): the arrays, and the bytes, as before
            x_train = np.concatenate([x_train, x_drawn])
            y_train = np.concatenate([y_train, y_drawn])
    x_test, y_test = prepared.load_split(prepared_dir, "test")
    one_hot = keras.utils.to_categorical

    # Under mixed_bfloat16 the layers compute in bfloat16 and keep float32 weights.
    keras.mixed_precision.set_global_policy(p.precision)
    try:
        model = build_model(x_train.shape[1:], p.model)
        if numerics == "portable":
            # Imported here: loading it builds the kernels, which `native` never needs.
            from mnist_dvc.portable.network import PortableModel, compile_portable

            trainer = PortableModel(model)  # the same layers and weights, portable arithmetic
            compile_portable(trainer, make_optimizer(p.optimizer))
        else:
            trainer = model
            compile_model(model, p.optimizer)
        model.summary()

        callbacks = [StopOnNonFiniteLoss(), *callbacks]
        if log_dir is not None:
            live = Live(str(log_dir), dvcyaml=False, save_dvc_exp=False)
            callbacks.append(DVCLiveCallback(live=live))

        # As in the notebook, the test set is the validation data. The batches are the ones
        # fit(x, y) makes, without tf.data's autotuning, which stalled epochs (mnist_dvc/feed.py).
        trainer.fit(
            batches(x_train, one_hot(y_train, mnist.NUM_CLASSES), p.batch_size, shuffle=True),
            epochs=p.epochs,
            shuffle=False,  # `batches` shuffles; fit would only warn that it cannot
            # Keras's animated progress bar in a terminal; one line per epoch in a log file (a
            # queued `dvc exp` or CI), where the bar would write a line per batch.
            verbose=1 if sys.stdout.isatty() else 2,
            validation_data=batches(
                x_test, one_hot(y_test, mnist.NUM_CLASSES), p.batch_size, shuffle=False
            ),
            callbacks=callbacks,
        )
    finally:
        keras.mixed_precision.set_global_policy("float32")
    if p.precision == "float32":
        return model
    # The saved model computes in float32, as evaluate, export and serve expect: the same
    # architecture built under the float32 policy (and with the same layer names: hence the
    # cleared session), with the trained weights, which were float32 all along.
    weights = model.get_weights()
    keras.backend.clear_session()
    float32_model = build_model(x_train.shape[1:], p.model)
    float32_model.set_weights(weights)
    return float32_model


def main() -> None:
    params = load_params()
    precision = training_precision(params.train.precision, params.numerics, cpu(), gpus())
    p = params.train.model_copy(update={"precision": precision})
    outputs = MODEL_JSON, MODEL_WEIGHTS, PROVENANCE, TRAIN_LOG_DIR
    with atomic_outputs(*outputs) as (json_path, h5_path, provenance_path, logs):
        model = train(
            PREPARED_DIR, p, logs, numerics=params.numerics, drawings_dir=DRAWINGS_TRAIN_DIR
        )
        write_model(model, json_path, h5_path)
        made = provenance_of(h5_path, params.numerics, precision, previous=PROVENANCE)
        provenance_path.write_text(strict_json.dumps(made, str(PROVENANCE)))
    print(f"train: wrote {MODEL_JSON}, {MODEL_WEIGHTS}, {PROVENANCE} and {TRAIN_LOG_DIR}/")
