"""Stage `export`: models/model.json + model.h5 -> models/saved_model/ (TensorFlow SavedModel,
servable by TF Serving) and models/model.onnx, each checked on all 10,000 test images against
the Keras model; the check's numbers go to reports/exports.json.
"""

from __future__ import annotations

from pathlib import Path

from mnist_dvc import prepared, strict_json
from mnist_dvc.atomic import atomic_outputs
from mnist_dvc.export import (
    check_parity,
    export_onnx,
    export_saved_model,
    in_batches,
    onnx_runner,
    parity,
    report_of,
    saved_model_runner,
)
from mnist_dvc.model import load_model, predict_probabilities
from mnist_dvc.params import Numerics, load_params
from mnist_dvc.paths import (
    EXPORT_REPORT,
    MODEL_JSON,
    MODEL_ONNX,
    MODEL_WEIGHTS,
    PREPARED_DIR,
    SAVED_MODEL_DIR,
)

BATCH = 1000


def export(json_path: Path, weights_path: Path, prepared_dir: Path, numerics: Numerics) -> None:
    model = load_model(json_path, weights_path)
    x_test, _ = prepared.load_split(prepared_dir, "test")
    # What evaluate computes: the reference the exports must agree with.
    expected = predict_probabilities(model, x_test, BATCH, numerics)
    with atomic_outputs(SAVED_MODEL_DIR, MODEL_ONNX, EXPORT_REPORT) as (saved, onnx, report):
        export_saved_model(model, saved)
        export_onnx(model, onnx)
        found = {
            "saved_model": parity(expected, in_batches(saved_model_runner(saved), x_test, BATCH)),
            "onnx": parity(expected, in_batches(onnx_runner(onnx), x_test, BATCH)),
        }
        check_parity("SavedModel", SAVED_MODEL_DIR, found["saved_model"])
        check_parity("ONNX", MODEL_ONNX, found["onnx"])
        # What the check found, without the differences themselves: ONNX Runtime and
        # TensorFlow choose their kernels by CPU, so the digits of a difference would change
        # from CPU to CPU, and with them this committed file. The log shows them.
        checked = {name: report_of(numbers) for name, numbers in found.items()}
        report.write_text(
            strict_json.dumps({"test_images": len(x_test), **checked}, str(EXPORT_REPORT))
        )
    for name, numbers in found.items():
        print(f"export: {name}: largest difference {numbers['max_abs_difference']:.1e}, "
              f"digits identical on {len(x_test)} test images")  # fmt: skip


def main() -> None:
    export(MODEL_JSON, MODEL_WEIGHTS, PREPARED_DIR, load_params().numerics)
