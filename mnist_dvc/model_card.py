"""The model card, reports/model.md: what shows a reviewer which model version this is without
running anything. Its params, test metrics (and its score on real handwriting that is not
MNIST's, where metrics.json has it: mnist_dvc/ood.py), accuracy per digit, the confusion
matrix (a picture beside it: mnist_dvc/confusion.py), the md5 of model.json and model.h5 (the
hashes dvc.lock records), where it was made (models/provenance.json) and, for a release
commit, its version (release.yaml, written by `make release`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mnist_dvc import ood, records
from mnist_dvc.digests import file_digest
from mnist_dvc.params import TrainParams
from mnist_dvc.paths import PROVENANCE, REPORT_CONFUSION
from mnist_dvc.provenance import describe as describe_provenance
from mnist_dvc.released import Release


def read_scores(path: Path) -> dict[str, float]:
    """metrics.json as the evaluate stage wrote it: {"accuracy": ..., "loss": ...}, and
    "ood_accuracy" and "ood_loss" where it has them; a RecordError (one line naming the file)
    for anything else (mnist_dvc/records.py)."""
    scores = vars(records.read_record(path, records.parse_metrics))
    found = records.read_record(path, ood.parse_scores)
    if found is not None:
        scores |= {ood.ACCURACY: found.accuracy, ood.LOSS: found.loss}
    return scores


def read_per_digit(path: Path) -> dict[str, float]:
    """reports/per_digit.json: the accuracy of each digit "0"-"9"."""
    return records.read_record(path, records.parse_per_digit)


def model_card(
    metrics: dict,
    per_digit: dict,
    params: TrainParams,
    counts: np.ndarray,
    files: list[Path],
    release: Release,
    provenance: dict | None,
) -> str:
    """The card's markdown, for the model whose `files` (model.json, model.h5) scored
    `metrics` and `per_digit` and whose predictions counted to `counts`."""
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
        *_out_of_distribution(metrics),
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


def _out_of_distribution(metrics: dict) -> list[str]:
    """The score on real handwriting that is not MNIST's, if the metrics hold it: the error
    that MNIST's test set hides."""
    if ood.ACCURACY not in metrics:
        return []
    return [
        f"Out of distribution: accuracy **{metrics[ood.ACCURACY]:.4f}**, loss "
        f"{metrics[ood.LOSS]:.4f} on {ood.NAME}, real handwritten digits by other writers than "
        f"MNIST's, in MNIST's form (`{ood.ACCURACY}`, `{ood.LOSS}` in metrics.json).",
        "",
    ]


def _flatten(tree: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat
