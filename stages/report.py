"""Stage `report`: a model card, reports/model.md, that shows a reviewer what this model version
is without running anything: its params, test metrics, accuracy per digit, confusion matrix
(reports/confusion.png), the md5 of model.json and model.h5 (the hashes dvc.lock records), where
it was made (models/provenance.json) and, for a release commit, its version (release.yaml,
written by `make release`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from mnist_dvc import documents, mnist, records
from mnist_dvc.atomic import atomic_outputs
from mnist_dvc.digests import file_digest
from mnist_dvc.params import TrainParams, load_params
from mnist_dvc.paths import (
    METRICS,
    MODEL_JSON,
    MODEL_WEIGHTS,
    PER_DIGIT,
    PREDICTIONS,
    PROVENANCE,
    REPORT,
    REPORT_CONFUSION,
)
from mnist_dvc.provenance import describe as describe_provenance
from mnist_dvc.released import Release, read_release

CELL = 44  # pixels per cell of the confusion-matrix picture


def read_scores(path: Path) -> dict[str, float]:
    """metrics.json as the evaluate stage wrote it: {"accuracy": ..., "loss": ...}; a
    RecordError (one line naming the file) for anything else (mnist_dvc/records.py)."""
    return vars(records.read_record(path, records.parse_metrics))


def read_per_digit(path: Path) -> dict[str, float]:
    """reports/per_digit.json: the accuracy of each digit "0"-"9"."""
    return records.read_record(path, records.parse_per_digit)


def confusion_matrix(predictions_csv: Path) -> np.ndarray:
    """counts[actual, predicted] from the evaluate stage's predictions."""
    pairs = records.read_record(predictions_csv, documents.load_digit_pairs)
    counts = np.zeros((mnist.NUM_CLASSES, mnist.NUM_CLASSES), np.int64)
    np.add.at(counts, tuple(np.array(pairs, np.int64).T), 1)
    return counts


def draw_confusion(counts: np.ndarray) -> Image.Image:
    """A heat map, true digit down and predicted digit across, each cell with its count."""
    n = len(counts)
    margin = CELL
    image = Image.new("RGB", (margin + n * CELL, margin + n * CELL), "white")
    draw = ImageDraw.Draw(image)
    shade = np.log1p(counts) / np.log1p(counts.max() or 1)
    for actual in range(n):
        draw.text(
            (margin // 2, margin + actual * CELL + CELL // 2), str(actual), "black", anchor="mm"
        )
        draw.text(
            (margin + actual * CELL + CELL // 2, margin // 2), str(actual), "black", anchor="mm"
        )
        for predicted in range(n):
            level = int(255 * (1 - shade[actual, predicted]))
            box = (margin + predicted * CELL, margin + actual * CELL)
            draw.rectangle([box, (box[0] + CELL - 1, box[1] + CELL - 1)], fill=(level, level, 255))
            ink = "white" if level < 128 else "black"
            centre = (box[0] + CELL // 2, box[1] + CELL // 2)
            draw.text(centre, str(counts[actual, predicted]), ink, anchor="mm")
    return image


def model_card(
    metrics: dict,
    per_digit: dict,
    params: TrainParams,
    counts: np.ndarray,
    files: list[Path],
    release: Release,
    provenance: dict | None,
) -> str:
    md5s = {path.as_posix(): file_digest(path) for path in files}
    chosen = params.model_dump()
    # Only the selected architecture's settings describe this model.
    chosen["model"] = {"arch": params.model.arch, **params.model.settings.model_dump()}
    flat = _flatten(chosen)
    lines = [
        "# MNIST CNN: model card",
        "",
        release.describe(md5s),
        "",
        f"Test accuracy **{metrics['accuracy']:.4f}**, test loss {metrics['loss']:.4f} "
        f"on the {int(counts.sum())} MNIST test images.",
        "",
        "## Files",
        "",
        "| file | md5 (as in dvc.lock) | bytes |",
        "| --- | --- | --- |",
        *(f"| `{path}` | `{md5s[path.as_posix()]}` | {path.stat().st_size} |" for path in files),
        "",
        "## Where it was made",
        "",
        (
            f"{describe_provenance(provenance)} ({PROVENANCE})."
            if provenance
            else f"Not recorded ({PROVENANCE} is missing)."
        ),
        "",
        "## Training params (params.yaml, `train`)",
        "",
        "| param | value |",
        "| --- | --- |",
        *(f"| `train.{key}` | {value} |" for key, value in flat.items()),
        "",
        "## Accuracy per digit",
        "",
        "| digit | accuracy | test images |",
        "| --- | --- | --- |",
        *(
            f"| {digit} | {per_digit[str(digit)]:.4f} | {counts[digit].sum()} |"
            for digit in range(len(counts))
        ),
        "",
        "## Confusion matrix",
        "",
        "True digit down, predicted digit across.",
        "",
        f"![confusion matrix]({REPORT_CONFUSION.name})",
        "",
    ]
    return "\n".join(lines)


def _flatten(tree: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def main() -> None:
    params = load_params().train
    metrics, per_digit = read_scores(METRICS), read_per_digit(PER_DIGIT)
    counts = confusion_matrix(PREDICTIONS)
    files = [MODEL_JSON, MODEL_WEIGHTS]
    provenance = records.read_provenance(PROVENANCE)  # checked: describe_provenance reads it
    card = model_card(metrics, per_digit, params, counts, files, read_release(), provenance)
    with atomic_outputs(REPORT_CONFUSION, REPORT) as (png, markdown):
        draw_confusion(counts).save(png, format="PNG")
        markdown.write_text(card)
    print(f"report: wrote {REPORT} and {REPORT_CONFUSION}")
