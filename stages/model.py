"""The notebook's CNN, and how it is saved and loaded: model.json (architecture) + model.h5
(weights in the legacy H5 layout that Keras 2's `model.save_weights("model.h5")` wrote).
"""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import keras
from keras import layers

# Keras 3 writes `.h5` weights only through its legacy saving module (its public
# `save_weights` insists on `.weights.h5`, a different layout); loading goes through the public
# `load_weights`, exactly as a consumer of the notebook's files does.
from keras.src.legacy.saving.legacy_h5_format import save_weights_to_hdf5_group

from stages import mnist
from stages.atomic import atomic_output
from stages.errors import StageError
from stages.params import ModelParams, OptimizerParams

OPTIMIZERS = {"adadelta": keras.optimizers.Adadelta, "rmsprop": keras.optimizers.RMSprop}


class ModelError(StageError):
    """model.json or model.h5 cannot be used."""


def build_model(input_shape: tuple[int, int, int], p: ModelParams) -> keras.Sequential:
    """The notebook's architecture; the channel axis is wherever preprocess put it."""
    data_format = "channels_first" if input_shape[0] == 1 else "channels_last"
    kernel, pool = (p.kernel_size, p.kernel_size), (p.pool_size, p.pool_size)
    return keras.Sequential(
        [
            keras.Input(shape=input_shape),
            layers.Conv2D(p.conv1_filters, kernel, activation="relu", data_format=data_format),
            layers.Conv2D(p.conv2_filters, kernel, activation="relu", data_format=data_format),
            layers.MaxPooling2D(pool, data_format=data_format),
            layers.Dropout(p.conv_dropout),
            layers.Flatten(data_format=data_format),
            layers.Dense(p.dense_units, activation="relu"),
            layers.Dropout(p.dense_dropout),
            layers.Dense(mnist.NUM_CLASSES, activation="softmax"),
        ]
    )


def compile_model(model: keras.Model, p: OptimizerParams) -> None:
    # Keras 3's Adadelta defaults to learning_rate=0.001, Keras 2's (the notebook's) to 1.0:
    # every setting is passed explicitly so that params.yaml alone decides.
    optimizer = OPTIMIZERS[p.name](learning_rate=p.learning_rate, rho=p.rho, epsilon=p.epsilon)
    model.compile(loss="categorical_crossentropy", optimizer=optimizer, metrics=["accuracy"])


def save_model(model: keras.Model, json_path: Path, weights_path: Path) -> None:
    """Write model.json and model.h5 so that neither is ever seen half-written."""
    # The weights land first (the inner block ends first): a model.json in place means the
    # pair is complete.
    with atomic_output(json_path) as json_partial, atomic_output(weights_path) as h5_partial:
        json_partial.write_text(model.to_json())
        with h5py.File(h5_partial, "w") as h5:
            save_weights_to_hdf5_group(h5, model)


def load_model(json_path: Path, weights_path: Path) -> keras.Model:
    """Load the pair as a consumer would, refusing code that Keras's safe mode refuses."""
    try:
        config = json_path.read_text()
        json.loads(config)
    except (OSError, ValueError) as error:
        raise ModelError(f"{json_path}: cannot read a model from it ({error})") from None
    try:
        model = keras.models.model_from_json(config)
    except Exception as error:  # Keras raises ValueError, TypeError, ... for foreign configs
        raise ModelError(
            f"{json_path}: refused to build the model: {_first_line(error)} "
            "(only Keras's own layers load; Lambda layers and custom classes are code)"
        ) from None
    if not weights_path.is_file():
        raise ModelError(f"{weights_path}: no such file")
    try:
        model.load_weights(weights_path)
    except Exception as error:  # h5py's OSError, Keras's ValueError for mismatched shapes
        raise ModelError(
            f"{weights_path}: weights do not fit {json_path}: {_first_line(error)}"
        ) from None
    return model


def _first_line(error: Exception) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]
