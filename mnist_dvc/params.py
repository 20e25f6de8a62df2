"""params.yaml: the one place that knows what every hyperparameter may be (sources.yaml, where
MNIST comes from, is mnist_dvc/sources.py's).

Every stage that has params calls `load_params()` before it does any work, so a typo or a bad
value anywhere in the file stops the pipeline at once with one line that names the dotted key
(mnist_dvc/settings.py reads the file). Every number has an upper bound, with its reason beside
it: a small file must not ask for a training that cannot run. The sizes of the network and its
batches are checked against this machine's memory (mnist_dvc/sizing.py) before TensorFlow
loads.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, model_validator

from mnist_dvc import mnist, sizing
from mnist_dvc.paths import PARAMS
from mnist_dvc.settings import ParamsError, Section, load_settings

# How TensorFlow computes (mnist_dvc/numerics.py), and the precision `train` computes in.
Numerics = Literal["portable", "native"]
Precision = Literal["auto", "float32", "mixed_bfloat16"]


# TensorFlow holds the optimizer's settings in float32: a larger number becomes infinity, and a
# positive one below float32's smallest normal number flushes to 0 (a learning rate of 0
# trains nothing; an epsilon of 0 divides by 0).
FLOAT32_MAX = 3.4028234663852886e38
FLOAT32_TINY = 1.1754943508222875e-38


def _in_float32(value: float) -> float:
    if value > FLOAT32_MAX:
        raise ValueError(
            f"{value:g} is more than float32, in which TensorFlow holds it, can (at most "
            f"{FLOAT32_MAX:.4g})"
        )
    if value < FLOAT32_TINY:
        raise ValueError(
            f"{value:g} is below float32's smallest normal number ({FLOAT32_TINY:.4g}): "
            "TensorFlow would hold it as 0, or lose its precision"
        )
    return value


PositiveFloat32 = Annotated[float, Field(gt=0), AfterValidator(_in_float32)]
Fraction = Annotated[float, Field(ge=0.0, lt=1.0)]
# A layer's size: bounded as a number at 2**31 - 1, far past what any machine holds, so that a
# refusal quotes a short one; sizing.py decides what fits this machine, naming the key.
Units = Annotated[int, Field(ge=1, le=2**31 - 1)]
KernelSize = Annotated[int, Field(ge=1, le=13)]
PoolSize = Annotated[int, Field(ge=1, le=12)]
# Ten thousand epochs of the notebook's network take about five months here (43-55 s each);
# Keras's epoch counters overflow at 2**63 (an integer of 1e20 was an OverflowError).
MAX_EPOCHS = 10_000


class PreprocessParams(Section):
    data_format: Literal["channels_last", "channels_first"]


# The optimizers `train.optimizer.name` may name, and their classes in keras.optimizers.
OPTIMIZERS = {"adadelta": "Adadelta", "rmsprop": "RMSprop"}


class OptimizerParams(Section):
    # Both optimizers take the same three settings; Adadelta's are the notebook's effective ones.
    name: Literal[tuple(OPTIMIZERS)]  # type: ignore[valid-type]
    learning_rate: PositiveFloat32
    rho: Annotated[float, Field(gt=0.0, lt=1.0)]
    epsilon: PositiveFloat32


class NotebookCnnParams(Section):
    """The notebook's network: two convolutions, one max-pooling, dropout, a dense layer."""

    conv1_filters: Units
    conv2_filters: Units
    kernel_size: KernelSize
    pool_size: PoolSize
    conv_dropout: Fraction
    dense_units: Units
    dense_dropout: Fraction


class MnistConvnetParams(Section):
    """keras.io's "Simple MNIST convnet": convolution and max-pooling twice, dropout, softmax."""

    conv1_filters: Units
    conv2_filters: Units
    kernel_size: KernelSize
    pool_size: Annotated[int, Field(ge=1, le=5)]
    dropout: Fraction


class ModelParams(Section):
    # Which architecture to build; each has its settings in the section of its name, so
    # `dvc exp run -S train.model.arch=mnist_convnet` switches without touching the others.
    arch: Literal["notebook_cnn", "mnist_convnet"]
    notebook_cnn: NotebookCnnParams
    mnist_convnet: MnistConvnetParams

    @property
    def settings(self) -> NotebookCnnParams | MnistConvnetParams:
        """The settings of the selected architecture."""
        return getattr(self, self.arch)


class TrainParams(Section):
    seed: Annotated[int, Field(ge=0, lt=2**32)]
    epochs: Annotated[int, Field(ge=1, le=MAX_EPOCHS)]
    # One batch holds at most the whole training set; what fits in memory: sizing.py.
    batch_size: Annotated[int, Field(ge=1, le=mnist.NUM_TRAIN)]
    # Quick-run knob: train on the first N training images only.
    train_images: Annotated[int, Field(ge=1, le=mnist.NUM_TRAIN)]
    # auto (float32, or mixed_bfloat16 under numerics: native on a CPU with bfloat16
    # instructions), float32, or mixed_bfloat16: bfloat16 compute, float32 weights (training
    # only; the saved model computes in float32). mnist_dvc/numerics.training_precision.
    precision: Precision
    optimizer: OptimizerParams
    model: ModelParams


class EvaluateParams(Section):
    # One batch holds at most the whole test set; what fits in memory: sizing.py.
    batch_size: Annotated[int, Field(ge=1, le=mnist.NUM_TEST)]


def _drawings_version(value: str) -> str:
    if value != "none" and not re.fullmatch(r"v\d{1,9}\.\d{1,9}\.\d{1,9}", value):
        shown = value if len(value) <= 40 else value[:40] + "..."
        raise ValueError(
            f"{shown!r} is neither none nor a version such as v1.0.0 "
            "(`gto show mnist-drawings` lists them)"
        )
    return value


class DrawingsParams(Section):
    """Which version of the drawings data set (mnist_dvc/drawings.py) the pipeline reads."""

    # none, or a registered mnist-drawings version: evaluate scores its holdout split.
    version: Annotated[str, AfterValidator(_drawings_version)]
    # true: train adds the version's training split to MNIST's (false: the committed bytes).
    train: bool

    @model_validator(mode="after")
    def _needs_a_version(self) -> DrawingsParams:
        if self.train and self.version == "none":
            raise ValueError("train is true, and version is none: name a version (v1.0.0)")
        return self


class Params(Section):
    # Which arithmetic (mnist_dvc/numerics.py): portable, the same bytes on every x86-64 CPU
    # with AVX2 and FMA; or native, TensorFlow's own kernels, for speed.
    numerics: Numerics
    preprocess: PreprocessParams
    train: TrainParams
    evaluate: EvaluateParams
    drawings: DrawingsParams


def load_params(path: Path = PARAMS) -> Params:
    """Read and validate params.yaml, and check that this machine can hold the network and
    batches it asks for; raise ParamsError with one line on any problem."""
    params = load_settings(path, Params)
    try:
        check_size(params)
    except sizing.SizeError as error:
        raise ParamsError(f"{path}: {error.key}: {error}") from None
    return params


def check_size(params: Params) -> None:
    """sizing.SizeError, its key dotted from the top, for a network whose layers leave no
    pixels, or whose training or evaluation asks for more memory than this machine has."""
    model, arch = params.train.model, params.train.model.arch
    settings = model.settings.model_dump()
    prefix = f"train.model.{arch}."
    batches = {
        "train.batch_size": params.train.batch_size,
        "evaluate.batch_size": params.evaluate.batch_size,
    }
    images = {"train": params.train.train_images, "test": mnist.NUM_TEST}
    try:
        sizing.check_memory(arch, settings, batches, images)
    except sizing.SizeError as error:
        key = error.key if error.key in batches else prefix + error.key
        raise sizing.SizeError(key, str(error)) from None
