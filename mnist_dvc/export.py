"""The model for runtimes without Keras: a TensorFlow SavedModel (what TF Serving serves) and an
ONNX file (onnxruntime, and the many runtimes that read ONNX), with a check that both give
Keras's answers.

Both are exported from the loaded model.json + model.h5 by Keras's own export code, and the same
model gives the same bytes in every run, file by file, so that dvc.lock changes only when the
model does. Left to themselves TensorFlow and tf2onnx write a few things that depend on the
process rather than the model: mnist_dvc/saved_model_bytes.py and mnist_dvc/onnx_bytes.py say
what and pin it. Python's hash seed is not the cause: two runs with PYTHONHASHSEED=0 wrote
different ONNX files before these fixes, and the fixes need no fixed seed. The bytes do depend
on the model object: the same files loaded twice in one process get other Keras names for the
seed generators (`seed_generator_2`) unless `keras.backend.clear_session()` runs first, as it
does in effect in every new process.

What they compute is checked too: on the whole test set, probabilities within PARITY_TOLERANCE of
Keras's and the same predicted digits.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import keras
import numpy as np
import onnx
import onnxruntime
import tensorflow as tf

from mnist_dvc import onnx_bytes, saved_model_bytes
from mnist_dvc.errors import ExportError
from mnist_dvc.private_apis import write_fingerprint

PARITY_TOLERANCE = 1e-5  # the largest difference in any probability that counts as the same
SERVING_SIGNATURE = "serving_default"  # what TF Serving calls by default
SERVING_ENDPOINT = "serve"  # the endpoint `model.export` writes; serving_default is its alias

Runner = Callable[[np.ndarray], np.ndarray]  # images (N, ...) float32 -> probabilities (N, 10)

__all__ = ["ExportError"]  # raised here, defined with the project's other errors


def input_signature(model: keras.Model) -> list[keras.InputSpec]:
    """The input signature `model.export` derives from a model of one input, in public terms:
    the input's name, dtype and shape with any batch size. The same one here keeps the exports
    what `model.export` writes (the names and shapes are in their bytes)."""
    (given,) = model.inputs
    return [keras.InputSpec(shape=(None, *given.shape[1:]), dtype=given.dtype, name=given.name)]


def export_saved_model(model: keras.Model, path: Path) -> None:
    """What `model.export(path, format="tf_saved_model")` writes, with the same bytes every
    time for the same model (the module's docstring says what is pinned)."""
    archive = keras.export.ExportArchive()
    serve = archive.track_and_add_endpoint(SERVING_ENDPOINT, model, input_signature(model))
    traced = serve.get_concrete_function()
    traced.set_variables(saved_model_bytes.sorted_variables(model, traced.variables))
    with saved_model_bytes.pinned_seed_states(model):
        archive.write_out(str(path), verbose=False)
    if saved_model_bytes.renumber_saved_model(path / saved_model_bytes.SAVED_MODEL_FILE):
        write_fingerprint(str(path))  # of the rewritten saved_model.pb
    saved_model_bytes.pin_fingerprint_uuid(path / saved_model_bytes.FINGERPRINT_FILE)


def export_onnx(model: keras.Model, path: Path) -> None:
    """What `model.export(path, format="onnx")` writes, in canonical form (`canonical_onnx`)."""
    model.export(str(path), format="onnx", input_signature=input_signature(model), verbose=False)
    exported = onnx_bytes.canonical_onnx(onnx.load(str(path)))
    path.write_bytes(exported.SerializeToString(deterministic=True))


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


def report_of(found: dict) -> dict:
    """What reports/exports.json records of a parity check that passed: the tolerance met and
    the digits, the same on every CPU."""
    return {"within": PARITY_TOLERANCE, "digits_identical": found["digits_identical"]}


def check_parity(name: str, path: Path, found: dict) -> None:
    difference = found["max_abs_difference"]
    if not math.isfinite(difference):  # NaN compares as "not too large": say it
        raise ExportError(
            f"{path}: the {name} export or the Keras model computes numbers that are not "
            "finite: the model cannot be exported (retrain it: `dvc repro train`)"
        )
    if difference > PARITY_TOLERANCE or not found["digits_identical"]:
        raise ExportError(
            f"{path}: the {name} export differs from the Keras model: largest probability "
            f"difference {found['max_abs_difference']:.2e} (allowed {PARITY_TOLERANCE:.0e}), "
            f"digits identical: {found['digits_identical']}"
        )
