"""The benchmark's parts run (`make bench` itself measures; nothing here is timed): the
training FLOPs counted from the layers, and each kind of training run on a tiny subset,
including the notebook unported on tf-keras."""

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from tests.helpers import REPO_ROOT

BENCH = REPO_ROOT / "scripts" / "bench.py"


def bench_line(*args: str) -> dict:
    run = subprocess.run(
        [sys.executable, *map(str, args)], cwd=REPO_ROOT, capture_output=True, text=True,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)}, timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    lines = [line for line in run.stdout.splitlines() if line.startswith("BENCH ")]
    assert len(lines) == 1, run.stdout[-3000:]
    return json.loads(lines[0][6:])


def test_training_flops_are_counted_from_the_layers(committed_params):
    from mnist_dvc.architectures import build_model

    sys.path.insert(0, str(BENCH.parent))
    try:
        from bench import count_flops
    finally:
        sys.path.pop(0)
    for shape in ((28, 28, 1), (1, 28, 28)):  # channels_last and channels_first
        counted = count_flops(build_model(shape, committed_params.train.model))
        # 2 x the multiply-adds: 26*26*32*9 + 24*24*64*288 + 9216*128 + 128*10
        assert counted["forward"] == 2 * (194_688 + 10_616_832 + 1_179_648 + 1_280)
        assert 71e6 < counted["train"] < 72e6  # forward + backward, about 3 x forward


@pytest.mark.slow
@pytest.mark.parametrize(
    "command",
    [
        (BENCH, "--worker", "train", "--train-images", "256", "--epochs", "2"),
        (REPO_ROOT / "benchmarks" / "notebook.py", "--keras", "tf_keras", "--seed", "1",
         "--train-images", "256", "--epochs", "2"),
        (REPO_ROOT / "benchmarks" / "notebook.py", "--keras", "keras3", "--seed", "1",
         "--train-images", "256", "--epochs", "2"),
        (REPO_ROOT / "benchmarks" / "notebook.py", "--keras", "tf_keras", "--seed", "1",
         "--train-images", "256", "--epochs", "2", "--loss", "keras-2.2"),
    ],
    ids=["project", "notebook-tf_keras", "notebook-keras3", "notebook-tf_keras-keras-2.2-loss"],
    # mixed_bfloat16: test_train.py
)  # fmt: skip
def test_each_training_run_reports_its_epochs_and_test_score(
    real_raw_dir, real_prepared_dir, command
):
    data = ("--raw", real_raw_dir) if "--keras" in command else ("--data", real_prepared_dir)
    result = bench_line(*command, *data)
    assert len(result["epoch_s"]) == 2 and all(s > 0 for s in result["epoch_s"])
    # 256 images, 2 epochs of Adadelta at 1.0: well above chance (0.1) on the 10000 test images
    assert 0.3 < result["accuracy"] <= 1 and result["loss"] > 0


def test_keras22_crossentropy_clips_the_probabilities():
    from benchmarks.notebook import keras22_crossentropy

    y_true = np.array([[0, 1, 0], [1, 0, 0], [0, 0, 1]], np.float32)
    y_pred = np.array([[0.1, 0.8, 0.1], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]], np.float32)
    loss = np.asarray(keras22_crossentropy(y_true, y_pred))
    # -log(0.8); a sure mistake costs -log(1e-7), not infinity; a sure hit -log(1 - 1e-7) ~ 0
    np.testing.assert_allclose(loss, [-np.log(0.8), -np.log(1e-7), 0.0], rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_the_profile_splits_a_training_step(real_prepared_dir):
    result = bench_line(BENCH, "--worker", "profile", "--train-images", "512", "--data",
                        real_prepared_dir)  # fmt: skip
    assert list(result["layer_forward_ms"])[:2] == ["conv2d (Conv2D)", "conv2d_1 (Conv2D)"]
    for key in ("forward_ms", "optimizer_update_ms", "fit_first_call_s"):  # timed directly
        assert result[key] > 0, result
    # Differences of two timings: on a tiny, noisy run they may even come out below zero.
    for key in ("backward_ms", "fit_step_numpy_ms", "fit_step_tf_data_ms"):
        assert math.isfinite(result[key]), result
