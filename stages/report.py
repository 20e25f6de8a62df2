"""Stage `report`: the model card, reports/model.md, and its confusion matrix,
reports/confusion.png (what the card shows: mnist_dvc/model_card.py).
"""

from __future__ import annotations

from mnist_dvc import records
from mnist_dvc.atomic import atomic_outputs
from mnist_dvc.confusion import confusion_matrix, draw_confusion
from mnist_dvc.model_card import model_card, read_per_digit, read_scores
from mnist_dvc.params import load_params
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
from mnist_dvc.released import read_release


def main() -> None:
    params = load_params().train
    metrics, per_digit = read_scores(METRICS), read_per_digit(PER_DIGIT)
    counts = confusion_matrix(PREDICTIONS)
    files = [MODEL_JSON, MODEL_WEIGHTS]
    provenance = records.read_provenance(PROVENANCE)  # checked: the card describes it
    card = model_card(metrics, per_digit, params, counts, files, read_release(), provenance)
    with atomic_outputs(REPORT_CONFUSION, REPORT) as (png, markdown):
        draw_confusion(counts).save(png, format="PNG")
        markdown.write_text(card)
    print(f"report: wrote {REPORT} and {REPORT_CONFUSION}")
