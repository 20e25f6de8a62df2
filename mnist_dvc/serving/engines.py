"""The served model as a function (N, 28, 28) float32 -> (N, 10) probabilities, by one of the
engines in ENGINES, a table with one row per engine (as architectures.BUILDERS has one per
model): the files it serves, its loader, and which dvc.lock stage vouches that evaluate's
scores are its own.

- `onnx` (the default): models/model.onnx, the export stage's file (checked by that stage on
  all 10,000 test images against Keras), in ONNX Runtime. No TensorFlow: the server starts in
  a second and a forward pass costs a fraction of Keras's.
- `keras`: models/model.json + model.h5, loaded safely (mnist_dvc.model.load_model), as one
  traced TensorFlow graph.

Either refuses at start, in one line, a model that gives no finite probabilities.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mnist_dvc import mnist
from mnist_dvc.errors import StageError, describe
from mnist_dvc.files import model_problem
from mnist_dvc.paths import MODEL_JSON, MODEL_ONNX, MODEL_WEIGHTS
from mnist_dvc.prepared import CHANNEL_SHAPES, IMAGE_SHAPE, data_format_of, with_channel

Predictor = Callable[[np.ndarray], np.ndarray]


class EngineError(StageError):
    """The model cannot be served with this engine; the message says what to do."""


def _load_onnx(model_dir: Path, threads: int | None) -> Predictor:
    """models/model.onnx in an ONNX Runtime session."""
    import onnxruntime

    path = model_dir / MODEL_ONNX.name
    if not path.exists():
        raise EngineError(
            f"{path}: no such file: make it with `dvc repro export` (or `dvc pull export`), "
            "or serve model.json + model.h5 with --engine keras"
        )
    options = onnxruntime.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1  # one chain of operations: no parallel branches to run
    try:
        session = onnxruntime.InferenceSession(
            str(path), options, providers=["CPUExecutionProvider"]
        )
    except Exception as error:  # onnxruntime raises its own Fail/InvalidGraph/... errors
        raise EngineError(
            f"{path}: not a model ONNX Runtime can load ({describe(error)})"
        ) from None
    (given,) = session.get_inputs()
    image_shape = tuple(given.shape[1:])
    if image_shape not in CHANNEL_SHAPES.values():
        raise EngineError(f"{path}: takes {given.shape}, not 28x28 images")
    data_format, name = data_format_of(image_shape), given.name

    def run(images: np.ndarray) -> np.ndarray:
        return session.run(None, {name: with_channel(images, data_format)})[0]

    return run


def _load_keras(model_dir: Path, threads: int | None) -> Predictor:
    """models/model.json + model.h5 as one traced TensorFlow graph: `model.predict` builds a
    data pipeline on every call (milliseconds) and an eager call dispatches layer by layer."""
    from mnist_dvc.numerics import check_threads

    check_threads()  # before TensorFlow loads: it aborts or crashes on some counts
    import tensorflow as tf

    from mnist_dvc.model import load_model

    if threads:
        # Only possible before TensorFlow's runtime starts, i.e. before the model is built.
        with contextlib.suppress(RuntimeError):  # already running here: it keeps its own
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(threads)
    model = load_model(model_dir / MODEL_JSON.name, model_dir / MODEL_WEIGHTS.name)
    image_shape = tuple(model.input_shape[1:])
    data_format = data_format_of(image_shape)
    spec = tf.TensorSpec((None, *image_shape), tf.float32)
    graph = tf.function(lambda x: model(x, training=False), input_signature=[spec])

    def run(images: np.ndarray) -> np.ndarray:
        return graph(with_channel(images, data_format)).numpy()

    return run


@dataclass(frozen=True)
class Engine:
    """One way to serve the model (its name is its key in ENGINES)."""

    summary: str  # what it serves, in what: --engine's help
    files: tuple[str, ...]  # the files it serves, in the model folder
    load: Callable[[Path, int | None], Predictor]  # (model folder, threads per operation)
    # The dvc.lock stage that made its files from model.json + model.h5 and checked them
    # against that model: what vouches that the evaluate stage's scores are theirs too. None:
    # it serves the very files the evaluate stage scored.
    exported_by: str | None = None


ENGINES: dict[str, Engine] = {
    "onnx": Engine(
        summary="models/model.onnx in ONNX Runtime",
        files=(MODEL_ONNX.name,),
        load=_load_onnx,
        exported_by="export",
    ),
    "keras": Engine(
        summary="model.json + model.h5",
        files=(MODEL_JSON.name, MODEL_WEIGHTS.name),
        load=_load_keras,
    ),
}
DEFAULT_ENGINE = "onnx"


def served_files(model_dir: Path, engine: str) -> list[Path]:
    """The files an engine serves, in `model_dir`."""
    return [model_dir / name for name in ENGINES[engine].files]


def check_files(model_dir: Path, engine: str) -> None:
    """Refuse a served file that is not a regular file of a model's size before any loader
    opens it (a symlink to /dev/zero, a named pipe); a missing one is the loader's to say."""
    for path in served_files(model_dir, engine):
        if problem := model_problem(path):
            raise EngineError(problem)


def load_engine(model_dir: Path, engine: str, *, threads: int | None = None) -> Predictor:
    """The model in `model_dir` as a function, by the engine named `engine`, traced or
    initialised and tried once. `threads`: threads per operation (None: the engine's default,
    one per core)."""
    check_files(model_dir, engine)
    run = ENGINES[engine].load(model_dir, threads)
    probabilities = run(np.zeros((1, *IMAGE_SHAPE), np.float32))
    if probabilities.shape != (1, mnist.NUM_CLASSES) or not np.isfinite(probabilities).all():
        raise EngineError(
            f"{served_files(model_dir, engine)[-1]}: the model gives no finite probabilities "
            "(NaN or infinity: damaged weights?): retrain it (`dvc repro`)"
        )
    return run
