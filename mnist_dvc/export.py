"""The model for runtimes without Keras: a TensorFlow SavedModel (what TF Serving serves) and an
ONNX file (onnxruntime, and the many runtimes that read ONNX), with a check that both give
Keras's answers.

Both are exported from the loaded model.json + model.h5 by Keras's own `model.export`. Their
bytes are not reproducible (TensorFlow and tf2onnx name graph nodes afresh on every export),
so what is checked is what they compute: on the whole test set, probabilities within
PARITY_TOLERANCE of Keras's and the same predicted digits.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import keras
import numpy as np
import onnxruntime
import tensorflow as tf

from mnist_dvc.errors import StageError

PARITY_TOLERANCE = 1e-5  # the largest difference in any probability that counts as the same
SERVING_SIGNATURE = "serving_default"  # what TF Serving calls by default

Runner = Callable[[np.ndarray], np.ndarray]  # images (N, ...) float32 -> probabilities (N, 10)


class ExportError(StageError):
    """An export does not compute what the Keras model computes."""


def export_saved_model(model: keras.Model, path: Path) -> None:
    model.export(str(path), format="tf_saved_model", verbose=False)


def export_onnx(model: keras.Model, path: Path) -> None:
    model.export(str(path), format="onnx", verbose=False)


def keras_runner(model: keras.Model) -> Runner:
    predict = tf.function(lambda x: model(x, training=False))
    return lambda images: predict(tf.constant(images)).numpy()


def saved_model_runner(path: Path) -> Runner:
    signature = tf.saved_model.load(str(path)).signatures[SERVING_SIGNATURE]
    (name,) = signature.structured_input_signature[1]
    return lambda images: next(iter(signature(**{name: tf.constant(images)}).values())).numpy()


def onnx_runner(path: Path) -> Runner:
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda images: session.run(None, {name: images})[0]


def in_batches(run: Runner, images: np.ndarray, batch_size: int) -> np.ndarray:
    return np.concatenate(
        [run(images[start : start + batch_size]) for start in range(0, len(images), batch_size)]
    )


def parity(expected: np.ndarray, actual: np.ndarray) -> dict:
    """How far an export's probabilities are from Keras's, and whether the digits agree."""
    return {
        "max_abs_difference": float(np.abs(expected - actual).max()),
        "digits_identical": bool((expected.argmax(axis=1) == actual.argmax(axis=1)).all()),
    }


def check_parity(name: str, path: Path, found: dict) -> None:
    if found["max_abs_difference"] > PARITY_TOLERANCE or not found["digits_identical"]:
        raise ExportError(
            f"{path}: the {name} export differs from the Keras model: largest probability "
            f"difference {found['max_abs_difference']:.2e} (allowed {PARITY_TOLERANCE:.0e}), "
            f"digits identical: {found['digits_identical']}"
        )
