"""Stage `evaluate`: score models/model.json + model.h5 on the test set, as a consumer loads them.

Writes metrics.json (test loss and accuracy, the notebook's two numbers, and accuracy per
digit) and reports/predictions.csv (actual and predicted digit per test image), from which
`dvc plots` draws the confusion matrix.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from stages import mnist
from stages.atomic import atomic_output
from stages.errors import run_stage
from stages.model import load_model
from stages.params import load_params
from stages.paths import METRICS, MODEL_JSON, MODEL_WEIGHTS, PREDICTIONS, PREPARED_DIR


def score(probabilities: np.ndarray, labels: np.ndarray) -> dict:
    """Categorical cross-entropy (clipped as Keras does), accuracy, and accuracy per class."""
    epsilon = 1e-7
    picked = np.clip(probabilities[np.arange(len(labels)), labels], epsilon, 1 - epsilon)
    predicted = probabilities.argmax(axis=1)
    correct = predicted == labels
    return {
        "loss": round(float(-np.log(picked.astype(np.float64)).mean()), 6),
        "accuracy": round(float(correct.mean()), 6),
        "per_class_accuracy": {
            str(digit): round(float(correct[labels == digit].mean()), 6)
            for digit in range(mnist.NUM_CLASSES)
            if (labels == digit).any()
        },
    }


def write_outputs(metrics: dict, labels: np.ndarray, predicted: np.ndarray) -> None:
    rows = "".join(f"{a},{p}\n" for a, p in zip(labels, predicted, strict=True))
    with atomic_output(METRICS) as metrics_partial, atomic_output(PREDICTIONS) as csv_partial:
        metrics_partial.write_text(json.dumps(metrics, indent=2) + "\n")
        csv_partial.write_text("actual,predicted\n" + rows)


def evaluate(
    prepared_dir: Path, json_path: Path, weights_path: Path, batch_size: int
) -> tuple[dict, np.ndarray, np.ndarray]:
    """Return (metrics, labels, predicted digits) for the model on the test set."""
    model = load_model(json_path, weights_path)
    x_test = np.load(prepared_dir / "x_test.npy")
    y_test = np.load(prepared_dir / "y_test.npy").astype(np.int64)
    probabilities = model.predict(x_test, batch_size=batch_size, verbose=0)
    return score(probabilities, y_test), y_test, probabilities.argmax(axis=1)


def main() -> None:
    params = load_params().evaluate
    metrics, labels, predicted = evaluate(
        PREPARED_DIR, MODEL_JSON, MODEL_WEIGHTS, params.batch_size
    )
    write_outputs(metrics, labels, predicted)
    print(f"evaluate: test loss {metrics['loss']:.4f}, test accuracy {metrics['accuracy']:.4f}")


if __name__ == "__main__":
    run_stage("evaluate", main)
