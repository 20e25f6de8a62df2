"""Stage `evaluate`: score models/model.json + model.h5 on the test set, as a consumer loads them,
and on real handwriting that is not MNIST's (data/ood_prepared, mnist_dvc/ood.py).

Writes metrics.json (test accuracy and loss, the notebook's two numbers: the headline that
`dvc metrics` and `dvc exp show` compare; then the out-of-distribution set's, `ood_accuracy`
and `ood_loss`: the error that MNIST's test set hides), reports/per_digit.json (accuracy per
digit) and reports/predictions.csv (actual and predicted digit per test image), from which
`dvc plots` draws the confusion matrix.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mnist_dvc import mnist, ood, prepared, strict_json
from mnist_dvc.atomic import atomic_outputs
from mnist_dvc.errors import StageError
from mnist_dvc.model import load_model, predict_probabilities
from mnist_dvc.params import Numerics, load_params
from mnist_dvc.paths import (
    DRAWINGS_HOLDOUT_DIR,
    METRICS,
    MODEL_JSON,
    MODEL_WEIGHTS,
    PER_DIGIT,
    PREDICTIONS,
    PREPARED_DIR,
)

# The drawings holdout's scores, written only when a version is chosen (drawings.version).
DRAWINGS_ACCURACY, DRAWINGS_LOSS = "drawings_accuracy", "drawings_loss"


def score(probabilities: np.ndarray, labels: np.ndarray) -> tuple[dict, dict]:
    """(accuracy and categorical cross-entropy, clipped as Keras does; accuracy per digit)."""
    epsilon = 1e-7
    picked = np.clip(probabilities[np.arange(len(labels)), labels], epsilon, 1 - epsilon)
    correct = probabilities.argmax(axis=1) == labels
    metrics = {
        "accuracy": round(float(correct.mean()), 6),
        "loss": round(float(-np.log(picked.astype(np.float64)).mean()), 6),
    }
    per_digit = {
        str(digit): round(float(correct[labels == digit].mean()), 6)
        for digit in range(mnist.NUM_CLASSES)
        if (labels == digit).any()
    }
    return metrics, per_digit


def write_outputs(
    metrics: dict, per_digit: dict, labels: np.ndarray, predicted: np.ndarray
) -> None:
    rows = "".join(f"{a},{p}\n" for a, p in zip(labels, predicted, strict=True))
    with atomic_outputs(METRICS, PER_DIGIT, PREDICTIONS) as (metrics_file, digits_file, csv_file):
        metrics_file.write_text(strict_json.dumps(metrics, str(METRICS)))
        digits_file.write_text(strict_json.dumps(per_digit, str(PER_DIGIT)))
        csv_file.write_text("actual,predicted\n" + rows)


def evaluate(
    prepared_dir: Path,
    json_path: Path,
    weights_path: Path,
    batch_size: int,
    numerics: Numerics,
    ood_dir: Path | None = None,
    drawings_dir: Path | None = None,
) -> tuple[dict, dict, np.ndarray, np.ndarray]:
    """(metrics, accuracy per digit, labels, predicted digits) for the model on the test set;
    with `ood_dir`, the metrics hold the out-of-distribution set's accuracy and loss too, and
    with a `drawings_dir` that holds a holdout split, the drawings' (docs/drawings.md)."""
    model = load_model(json_path, weights_path)
    x_test, y_test = prepared.load_split(prepared_dir, "test")
    probabilities = _probabilities(model, x_test, batch_size, numerics, weights_path, "test")
    labels = y_test.astype(np.int64)
    metrics, per_digit = score(probabilities, labels)
    if ood_dir is not None:
        try:
            x_ood, y_ood = prepared.load_split(ood_dir, ood.OOD_SPLIT)
        except prepared.PreparedError as error:  # its message names MNIST's stage
            text = str(error).replace("the preprocess stage", "the prepare_ood stage")
            raise prepared.PreparedError(text) from None
        found, _ = score(
            _probabilities(model, x_ood, batch_size, numerics, weights_path, ood.NAME),
            y_ood.astype(np.int64),
        )
        metrics |= {ood.ACCURACY: found["accuracy"], ood.LOSS: found["loss"]}
    if drawings_dir is not None and drawings_dir.exists():  # none outside dvc repro
        x_drawn, y_drawn = prepared.load_split(drawings_dir, "holdout")
        if len(y_drawn):  # no version chosen: no keys, and metrics.json as before
            found, _ = score(
                _probabilities(model, x_drawn, batch_size, numerics, weights_path, "drawings"),
                y_drawn.astype(np.int64),
            )
            metrics |= {DRAWINGS_ACCURACY: found["accuracy"], DRAWINGS_LOSS: found["loss"]}
    return metrics, per_digit, labels, probabilities.argmax(axis=1)


def _probabilities(
    model, images: np.ndarray, batch_size: int, numerics: Numerics, weights_path: Path, kind: str
) -> np.ndarray:
    probabilities = predict_probabilities(model, images, batch_size, numerics)
    broken = ~np.isfinite(probabilities).all(axis=1)
    if broken.any():
        raise StageError(
            f"{weights_path}: the model's outputs are not finite numbers on {broken.sum()} of "
            f"{len(images)} {kind} images: it cannot be scored (retrain it: `dvc repro train`)"
        )
    return probabilities


def main() -> None:
    params = load_params()
    metrics, per_digit, labels, predicted = evaluate(
        PREPARED_DIR,
        MODEL_JSON,
        MODEL_WEIGHTS,
        params.evaluate.batch_size,
        params.numerics,
        ood.OOD_PREPARED_DIR,
        DRAWINGS_HOLDOUT_DIR,
    )
    write_outputs(metrics, per_digit, labels, predicted)
    drawn = (
        f"; drawings holdout accuracy {metrics[DRAWINGS_ACCURACY]:.4f}"
        if DRAWINGS_ACCURACY in metrics
        else ""
    )
    print(
        f"evaluate: test accuracy {metrics['accuracy']:.4f}, test loss {metrics['loss']:.4f}; "
        f"{ood.NAME} accuracy {metrics[ood.ACCURACY]:.4f}, loss {metrics[ood.LOSS]:.4f}{drawn}"
    )
