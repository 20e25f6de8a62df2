"""How the model is compiled, saved and loaded: model.json (architecture) + model.h5 (weights in
the legacy H5 layout that Keras 2's `model.save_weights("model.h5")` wrote). The architectures
themselves are in mnist_dvc/architectures/.
"""

from __future__ import annotations

import math
from pathlib import Path

import h5py
import keras
import numpy as np

from mnist_dvc import mnist
from mnist_dvc.atomic import atomic_outputs
from mnist_dvc.documents import DocumentError, load_json
from mnist_dvc.errors import StageError, describe
from mnist_dvc.files import model_problem, read_text_limited
from mnist_dvc.params import OPTIMIZERS, Numerics, OptimizerParams
from mnist_dvc.prepared import CHANNEL_SHAPES

# Keras 3 writes `.h5` weights in the legacy layout only through a private name; loading goes
# through the public `load_weights`, exactly as a consumer of the notebook's files does.
from mnist_dvc.private_apis import save_weights_to_hdf5_group


class ModelError(StageError):
    """model.json or model.h5 cannot be used."""


def make_optimizer(p: OptimizerParams) -> keras.optimizers.Optimizer:
    # Keras 3's Adadelta defaults to learning_rate=0.001, Keras 2's (the notebook's) to 1.0:
    # every setting is passed explicitly so that params.yaml alone decides.
    optimizer_class = getattr(keras.optimizers, OPTIMIZERS[p.name])
    return optimizer_class(learning_rate=p.learning_rate, rho=p.rho, epsilon=p.epsilon)


def compile_model(model: keras.Model, p: OptimizerParams) -> None:
    """Compile for `fit` with TensorFlow's own kernels (numerics: native)."""
    model.compile(
        loss="categorical_crossentropy", optimizer=make_optimizer(p), metrics=["accuracy"]
    )


class TrainingDiverged(StageError):
    """The loss stopped being a finite number: the weights are garbage from there on."""


class StopOnNonFiniteLoss(keras.callbacks.Callback):
    """Ends `fit` at the first batch whose loss is NaN or infinite, with the one line that says
    where and what to change, instead of training on to a model that predicts nothing (Keras's
    own TerminateOnNaN stops quietly, and the stage would then save that model)."""

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.epoch = epoch + 1

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(loss):
            became = "NaN" if math.isnan(loss) else "infinite"
            raise TrainingDiverged(
                f"the loss became {became} at epoch {self.epoch}, batch {batch + 1}: lower "
                "train.optimizer.learning_rate"
            )


def predict_probabilities(
    model: keras.Model, images: np.ndarray, batch_size: int, numerics: Numerics
) -> np.ndarray:
    """The model's digit probabilities for `images`: computed with the portable operations
    (the same bits on every CPU) or, under `native`, by Keras with TensorFlow's kernels."""
    if numerics == "portable":
        # Imported here: loading it builds the kernels, which `native` never needs.
        from mnist_dvc.portable.network import predict

        return predict(model, images, batch_size)
    return model.predict(images, batch_size=batch_size, verbose=0)


def save_model(model: keras.Model, json_path: Path, weights_path: Path) -> None:
    """Write model.json and model.h5 together, so that neither is ever seen half-written and
    the pair in place always belongs together."""
    with atomic_outputs(json_path, weights_path) as (json_partial, h5_partial):
        write_model(model, json_partial, h5_partial)


def write_model(model: keras.Model, json_path: Path, weights_path: Path) -> None:
    """Write the pair as the notebook did: `model.to_json()` and the legacy H5 weights."""
    json_path.write_text(model.to_json())
    with h5py.File(weights_path, "w") as h5:
        save_weights_to_hdf5_group(h5, model)


def load_model(json_path: Path, weights_path: Path) -> keras.Model:
    """Load the pair as a consumer would, refusing code that Keras's safe mode refuses and
    anything that is not an MNIST classifier, or a file that is not a regular one of a model's
    size (a symlink to /dev/zero); every failure is one line naming the file."""
    for path in (json_path, weights_path):
        if problem := model_problem(path):
            raise ModelError(problem)
    model = _model_from_json(json_path)
    if not weights_path.is_file():
        raise ModelError(f"{weights_path}: no such file")
    try:
        model.load_weights(weights_path)
    except Exception as error:  # h5py's OSError, Keras's ValueError for mismatched shapes
        raise ModelError(
            f"{weights_path}: weights do not fit {json_path}: {describe(error)}"
        ) from None
    return model


def _model_from_json(json_path: Path) -> keras.Model:
    def refuse(why: str) -> ModelError:
        return ModelError(f"{json_path}: {why}")

    try:
        text = read_text_limited(json_path)
        config = load_json(text)  # bounded: nesting and size, as every JSON the project reads
    except OSError as error:
        raise refuse(f"cannot read a model from it ({describe(error)})") from None
    except DocumentError as error:
        raise refuse(f"cannot read a model from it: {error}") from None
    except ValueError as error:  # not UTF-8
        raise refuse(f"cannot read a model from it: not JSON ({describe(error)})") from None
    if not (isinstance(config, dict) and {"class_name", "config"} <= config.keys()):
        raise refuse("JSON, but not a Keras model (model.to_json() writes class_name and config)")
    try:
        model = keras.models.model_from_json(text)
    except Exception as error:  # ValueError, TypeError, RecursionError... for foreign configs
        raise refuse(
            f"refused to build the model: {describe(error)} "
            "(only Keras's own layers load; Lambda layers and custom classes are code)"
        ) from None
    if not isinstance(model, keras.Model):
        raise refuse(f"describes a {type(model).__name__}, not a model")
    try:
        shape_in, shape_out = tuple(model.input_shape[1:]), tuple(model.output_shape[1:])
    except Exception:  # no Input layer, several inputs, ...: Keras raises various errors
        shape_in = shape_out = None
    if shape_in not in CHANNEL_SHAPES.values() or shape_out != (mnist.NUM_CLASSES,):
        raise refuse(
            f"a model from {shape_in} to {shape_out}, not from a 28x28 image to "
            f"{mnist.NUM_CLASSES} digit probabilities"
        )
    last = model.layers[-1] if model.layers else None
    if getattr(getattr(last, "activation", None), "__name__", None) != "softmax" and not (
        isinstance(last, keras.layers.Softmax)
    ):
        raise refuse(
            f"its last layer ({type(last).__name__}) does not end in a softmax: its outputs "
            "are not digit probabilities"
        )
    return model
