"""Where the pipeline reads and writes, relative to the repository root (dvc.yaml says the same)."""

from __future__ import annotations

from pathlib import Path

from platformdirs import user_cache_path

PARAMS = Path("params.yaml")
SOURCES = Path("sources.yaml")
RELEASE = Path("release.yaml")
RAW_DIR = Path("data/raw")
PREPARED_DIR = Path("data/prepared")
# The drawings data set (mnist-drawings: DVC-tracked, not a stage's output) and what the
# prepare_drawings stage takes of its chosen version for train and for evaluate.
DRAWINGS_DIR = Path("data/drawings")
DRAWINGS_TRAIN_DIR = Path("data/drawings_train")
DRAWINGS_HOLDOUT_DIR = Path("data/drawings_holdout")
MODELS_DIR = Path("models")
MODEL_JSON = MODELS_DIR / "model.json"
MODEL_WEIGHTS = MODELS_DIR / "model.h5"
PROVENANCE = MODELS_DIR / "provenance.json"  # where and how model.h5 was computed
SAVED_MODEL_DIR = MODELS_DIR / "saved_model"
MODEL_ONNX = MODELS_DIR / "model.onnx"
EXPORT_REPORT = Path("reports/exports.json")
TRAIN_LOG_DIR = Path("dvclive")
METRICS = Path("metrics.json")
PREDICTIONS = Path("reports/predictions.csv")
PER_DIGIT = Path("reports/per_digit.json")
REPORT = Path("reports/model.md")
REPORT_CONFUSION = Path("reports/confusion.png")


def user_cache(*parts: str) -> Path:
    """A folder of this project's cache for the user: ~/.cache/mnist-dvc/... on Linux (under
    $XDG_CACHE_HOME where set), as platformdirs places caches."""
    return user_cache_path("mnist-dvc").joinpath(*parts)
