"""Stage `train`: fit the notebook's CNN on data/prepared; write models/model.json + model.h5.

Seeded and deterministic: the same params, data and library versions give a byte-identical
model.h5. Per-epoch loss and accuracy (train and validation) go to DVCLive's folder for
`dvc plots`; dvc.yaml is hand-written, so DVCLive is told not to touch it.
"""

from __future__ import annotations

import sys
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from dvclive import Live
from dvclive.keras import DVCLiveCallback

from stages import mnist
from stages.errors import run_stage
from stages.model import build_model, compile_model, save_model
from stages.params import TrainParams, load_params
from stages.paths import MODEL_JSON, MODEL_WEIGHTS, PREPARED_DIR, TRAIN_LOG_DIR


def train(prepared_dir: Path, p: TrainParams, log_dir: Path | None) -> keras.Model:
    keras.utils.set_random_seed(p.seed)  # Python, NumPy and TensorFlow generators
    tf.config.experimental.enable_op_determinism()

    x_train = np.load(prepared_dir / "x_train.npy", mmap_mode="r")[: p.train_images]
    y_train = np.load(prepared_dir / "y_train.npy")[: p.train_images]
    x_test = np.load(prepared_dir / "x_test.npy")
    y_test = np.load(prepared_dir / "y_test.npy")
    one_hot = keras.utils.to_categorical

    model = build_model(x_train.shape[1:], p.model)
    compile_model(model, p.optimizer)
    model.summary()

    callbacks = []
    if log_dir is not None:
        live = Live(str(log_dir), dvcyaml=False, save_dvc_exp=False)
        callbacks.append(DVCLiveCallback(live=live))

    # As in the notebook, the test set is the validation data.
    model.fit(
        np.asarray(x_train),
        one_hot(y_train, mnist.NUM_CLASSES),
        batch_size=p.batch_size,
        epochs=p.epochs,
        # Keras's animated progress bar in a terminal; one line per epoch in a log file (a
        # queued `dvc exp` or CI), where the bar would write a line per batch.
        verbose=1 if sys.stdout.isatty() else 2,
        validation_data=(x_test, one_hot(y_test, mnist.NUM_CLASSES)),
        callbacks=callbacks,
    )
    return model


def main() -> None:
    params = load_params().train
    model = train(PREPARED_DIR, params, TRAIN_LOG_DIR)
    save_model(model, MODEL_JSON, MODEL_WEIGHTS)
    print(f"train: wrote {MODEL_JSON} and {MODEL_WEIGHTS}")


if __name__ == "__main__":
    run_stage("train", main)
