"""Classify handwritten digits with a trained (or pulled) model: models/model.json + model.h5.

    mnist-predict digit.png scan.jpg batch.npy [--json] [--model-dir models]

Every input gets an answer: a prediction (one line per image: the digit and its probability),
or one line on stderr that names the input (`path`, or `path[i]` for an image of a batch) and
says what is wrong; the other inputs are still classified, and the exit status is then 1.
`--json` always prints one JSON document, `{"predictions": [...], "errors": [...]}`, also when
the model cannot be loaded or the command line is wrong (mnist_dvc/tool.py). What is accepted
as an input is mnist_dvc/inputs.py's job (a file: an image, mnist_dvc/image_files.py, or a .npy
batch, mnist_dvc/npy_batches.py), and how an image becomes MNIST's form mnist_dvc/digits.py's.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mnist_dvc.digits import Loaded
from mnist_dvc.errors import StageError, describe
from mnist_dvc.inputs import load_inputs
from mnist_dvc.paths import MODEL_JSON, MODEL_WEIGHTS
from mnist_dvc.prepared import data_format_of, with_channel
from mnist_dvc.redact import redact
from mnist_dvc.tool import ToolParser, run_tool

NAME = "mnist-predict"


class CannotClassify(StageError):
    """The model was loaded but cannot classify the images here."""


def load_model(json_path: Path, weights: Path):
    """mnist_dvc/model.py's safe loader, imported only now: a usage error or a missing input
    is told without TensorFlow's start-up (seconds, and its lines on stderr)."""
    from mnist_dvc.numerics import check_threads

    check_threads()  # before TensorFlow loads: it aborts or crashes on some counts
    from mnist_dvc.model import load_model as load

    return load(json_path, weights)


@dataclass
class Prediction:
    input: str
    digit: int
    probability: float
    probabilities: list[float]


def predict(model, named_images: list[tuple[str, np.ndarray]]) -> list[Prediction]:
    """One prediction per image. Raises CannotClassify if the model cannot classify them here."""
    if not named_images:
        return []
    names, images = zip(*named_images, strict=True)
    batch = with_channel(np.stack(images), data_format_of(model.input_shape[1:]))
    try:
        probabilities = model.predict(batch, verbose=0)
    except Exception as error:  # e.g. TensorFlow runs channels_first convolutions on GPUs only
        raise CannotClassify(f"the model cannot classify here: {describe(error)}") from None
    if not np.isfinite(probabilities).all():
        raise CannotClassify("the model gives NaN or infinite probabilities (damaged weights?)")
    return [
        Prediction(name, int(p.argmax()), float(p.max()), [round(float(x), 6) for x in p])
        for name, p in zip(names, probabilities, strict=True)
    ]


def report(predictions: list[Prediction], errors: list[StageError], as_json: bool) -> int:
    """Print the answers; the exit status: 1 if anything was wrong."""
    for error in errors:
        print(redact(f"{NAME}: error: {error}"), file=sys.stderr)
    if as_json:
        document = {
            "predictions": [vars(prediction) for prediction in predictions],
            "errors": [redact(str(error)) for error in errors],
        }
        print(json.dumps(document, indent=2))
    else:
        for prediction in predictions:
            print(f"{prediction.input}: {prediction.digit} ({prediction.probability:.4f})")
    return 1 if errors else 0


def main(argv: list[str] | None = None) -> int:
    """The console script, inside the one error boundary (mnist_dvc/tool.py)."""
    return run_tool(NAME, classify, argv, json_error=json_error)


def json_error(message: str) -> dict:
    return {"predictions": [], "errors": [message]}


def classify(argv: list[str] | None) -> int:
    parser = ToolParser(
        prog=NAME, description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("inputs", nargs="+", type=Path, help="images or .npy batches")
    parser.add_argument("--model-dir", type=Path, default=MODEL_JSON.parent)
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    args = parser.parse_args(argv)

    json_path, weights = args.model_dir / MODEL_JSON.name, args.model_dir / MODEL_WEIGHTS.name
    try:
        model = load_model(json_path, weights)
    except StageError as error:  # model.py's ModelError: the model cannot be used
        return report([], [error], args.json)
    loaded = Loaded()
    for path in args.inputs:
        loaded.extend(load_inputs(path))
    try:
        predictions = predict(model, loaded.images)
    except CannotClassify as error:
        failure = CannotClassify(f"{json_path}: {error}")
        return report([], [*loaded.errors, failure], args.json)
    return report(predictions, loaded.errors, args.json)


if __name__ == "__main__":
    sys.exit(main())
