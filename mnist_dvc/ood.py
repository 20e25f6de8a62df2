"""The out-of-distribution set as the rest of the pipeline sees it: where its files are, and its
scores' keys in metrics.json, read back for the model card, mnist-verify and mnist-serve's
/model.

Real handwriting that is not MNIST's (UCI's optdigits, mnist_dvc/optdigits.py) scored by the
same model shows the error MNIST's own test set hides. Its scores sit in metrics.json beside
MNIST's under keys of their own, so that `dvc metrics show` and `dvc metrics diff` list both,
and MNIST's two keys stay as every reader of metrics.json knows them. A small module of its
own: the stages and tools that only read these names do not depend on how the set is fetched
or prepared.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from mnist_dvc.documents import DocumentError, load_json

OOD_SOURCES = Path("ood_sources.yaml")  # where fetch_ood may get the set (configuration)
OOD_RAW_DIR = Path("data/ood_raw")  # fetch_ood: the verified file, as it was published
OOD_PREPARED_DIR = Path("data/ood_prepared")  # prepare_ood: x_test.npy, y_test.npy
OOD_SPLIT = "test"  # its arrays are named as MNIST's test split (mnist_dvc/prepared.py)

ACCURACY = "ood_accuracy"
LOSS = "ood_loss"
NAME = "UCI optdigits"  # how the card, /model and mnist-verify name the set


@dataclass(frozen=True)
class OodScores:
    accuracy: float  # 0-1
    loss: float


def parse_scores(data: str | bytes) -> OodScores | None:
    """The out-of-distribution scores in metrics.json, or None for a metrics.json from before
    they were written (neither key); DocumentError for a key that is there but not a score."""
    document = load_json(data)
    if not isinstance(document, dict) or (ACCURACY not in document and LOSS not in document):
        return None
    return OodScores(_number(document, ACCURACY, 1.0), _number(document, LOSS, math.inf))


def _number(document: dict, key: str, high: float) -> float:
    value = document.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise DocumentError(f"no {key} (a number)")
    if not 0 <= value <= high:
        raise DocumentError(f"{key} {value} is not between 0 and {high:g}")
    return float(value)
