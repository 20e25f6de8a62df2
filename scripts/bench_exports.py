"""Inference speed of the model and its exports, side by side in one run: Keras, the TensorFlow
SavedModel and the ONNX file in onnxruntime, in images/s at batch 1 and batch 1000 on the MNIST
test images. Writes benchmarks/exports.json and prints a table.

    python scripts/bench_exports.py [--seconds 5]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

from mnist_dvc import prepared
from mnist_dvc.export import keras_runner, onnx_runner, saved_model_runner
from mnist_dvc.model import load_model
from mnist_dvc.paths import MODEL_JSON, MODEL_ONNX, MODEL_WEIGHTS, PREPARED_DIR, SAVED_MODEL_DIR

OUT = Path("benchmarks/exports.json")


def images_per_second(run, images, batch: int, seconds: float) -> float:
    run(images[:batch])  # warm up: tracing, allocation
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        offset = (done * batch) % (len(images) - batch)
        run(images[offset : offset + batch])
        done += 1
    return done * batch / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="per measurement")
    args = parser.parse_args()
    x_test, _ = prepared.load_split(PREPARED_DIR, "test")
    runners = {
        "keras": keras_runner(load_model(MODEL_JSON, MODEL_WEIGHTS)),
        "saved_model": saved_model_runner(SAVED_MODEL_DIR),
        "onnx (onnxruntime)": onnx_runner(MODEL_ONNX),
    }
    rows = []
    for name, run in runners.items():
        row = {"runtime": name}
        for batch in (1, 1000):
            row[f"batch_{batch}"] = round(images_per_second(run, x_test, batch, args.seconds))
        rows.append(row)
    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(json.dumps({"machine": machine, "images_per_second": rows}, indent=2) + "\n")
    print(f"{'runtime':<20} {'batch 1':>10} {'batch 1000':>12}   images/s ({machine})")
    for row in rows:
        print(f"{row['runtime']:<20} {row['batch_1']:>10} {row['batch_1000']:>12}")


if __name__ == "__main__":
    main()
