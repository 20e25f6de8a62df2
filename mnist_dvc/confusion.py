"""The model card's confusion matrix: counts of each (true digit, predicted digit) pair from the
evaluate stage's reports/predictions.csv, drawn as a heat map (reports/confusion.png).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from mnist_dvc import documents, mnist, records

CELL = 44  # pixels per cell of the picture


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
