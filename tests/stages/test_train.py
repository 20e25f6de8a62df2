"""The train stage as DVC runs it: a fresh process reading params.yaml and data/prepared."""

import csv
import json

import keras
import numpy as np
import pytest

from mnist_dvc import numerics, processor
from mnist_dvc.paths import MODEL_JSON, MODEL_WEIGHTS
from tests.helpers import run_python, run_stage_module, train_in, write_params

pytestmark = pytest.mark.slow  # runs stages, dvc, servers or a browser

QUICK = {"epochs": 2, "train_images": 1024}


def _quick_run(workdir, prepared):
    return train_in(workdir, prepared, **QUICK)


def test_train_is_deterministic_to_the_byte(real_prepared_dir, workdir):
    _quick_run(workdir, real_prepared_dir)
    first = (workdir / MODEL_WEIGHTS).read_bytes(), (workdir / MODEL_JSON).read_text()
    _quick_run(workdir, real_prepared_dir)
    second = (workdir / MODEL_WEIGHTS).read_bytes(), (workdir / MODEL_JSON).read_text()
    assert first == second


def test_train_writes_the_model_and_the_epoch_logs(real_prepared_dir, workdir):
    run = _quick_run(workdir, real_prepared_dir)
    assert "Epoch 2/2" in run.stdout  # Keras's own progress output stays visible
    assert sorted(p.name for p in (workdir / "models").iterdir()) == [
        "model.h5",
        "model.json",
        "provenance.json",
    ]
    model = keras.models.model_from_json((workdir / MODEL_JSON).read_text())
    model.load_weights(str(workdir / MODEL_WEIGHTS))
    assert model.count_params() == 1_199_882
    logs = workdir / "dvclive" / "plots" / "metrics"
    for split in ("train", "eval"):
        for metric in ("loss", "accuracy"):
            with open(logs / split / f"{metric}.tsv") as tsv:
                rows = list(csv.DictReader(tsv, delimiter="\t"))
            assert [row["step"] for row in rows] == ["0", "1"]
    summary = json.loads((workdir / "dvclive" / "metrics.json").read_text())
    assert summary["eval"]["accuracy"] > 0.5  # 1024 images, 2 epochs: far above chance
    assert not (workdir / "dvc.yaml").exists()  # DVCLive left dvc.yaml alone
    assert not list(workdir.rglob("*.partial"))


def test_bad_params_stop_train_before_it_starts(real_prepared_dir, workdir):
    write_params(workdir / "params.yaml", epochs="twelve")
    run = run_stage_module("train", workdir)
    assert run.returncode == 1
    assert run.stderr.strip().splitlines()[-1] == (
        "train: error: params.yaml: train.epochs: input should be a valid integer (got 'twelve')"
    )
    assert not (workdir / "models").exists()


def test_mixed_bfloat16_trains_and_saves_a_float32_model(real_prepared_dir, tmp_path):
    # train() itself, in a fresh process: the stage refuses bfloat16 on a CPU that would
    # emulate it (as most test machines would), and the saved model's dtypes are the same
    # wherever the layers computed. 1,000 test images: emulated bfloat16 validates slowly.
    small = tmp_path / "prepared"
    small.mkdir()
    for array, count in (("x_train", 1024), ("y_train", 1024), ("x_test", 1000), ("y_test", 1000)):
        np.save(small / f"{array}.npy", np.load(real_prepared_dir / f"{array}.npy")[:count])
    script = (
        "import sys; from pathlib import Path; from stages.train import train; "
        "from mnist_dvc.model import write_model; from mnist_dvc.params import load_params; "
        "p = load_params().train.model_copy(update={'train_images': 1024, 'epochs': 1, "
        "'precision': 'mixed_bfloat16'}); "
        "m = train(Path(sys.argv[1]), p, log_dir=None, numerics='native'); "
        "write_model(m, Path(sys.argv[2]) / 'model.json', Path(sys.argv[2]) / 'model.h5')"
    )
    run_python(script, small, tmp_path)
    saved = json.loads((tmp_path / "model.json").read_text())
    dtypes = [layer["config"].get("dtype") for layer in saved["config"]["layers"]]
    # a layer's dtype policy, or the input layer's plain dtype
    policies = {d["config"]["name"] if isinstance(d, dict) else d for d in dtypes if d}
    assert policies == {"float32"}  # evaluate, export and serve compute in float32
    names = [layer["config"]["name"] for layer in saved["config"]["layers"]]
    assert "dense_1" in names and "dense_3" not in names  # named as a float32 run names them


def _refusal(run) -> str:
    assert run.returncode == 1
    return run.stderr.strip().splitlines()[-1]


def test_the_stage_refuses_bfloat16_where_it_would_be_emulated(workdir):
    # portable computes in AVX2 code on every CPU: refused before anything is read or written
    write_params(workdir / "params.yaml", **QUICK, precision="mixed_bfloat16")
    assert _refusal(run_stage_module("train", workdir)).startswith(
        "train: error: params.yaml: train.precision: mixed_bfloat16 needs `numerics: native`"
    )
    assert not (workdir / "models").exists()
    if set(numerics.BFLOAT16_FLAGS) & set(processor.cpu()["flags"]):
        return  # a bf16 CPU trains it under native (not refused: docs/performance.md)
    write_params(workdir / "params.yaml", numerics="native", **QUICK, precision="mixed_bfloat16")
    assert _refusal(run_stage_module("train", workdir)).startswith(
        "train: error: params.yaml: train.precision: mixed_bfloat16 needs a CPU with AVX512"
    )
    assert not (workdir / "models").exists()


def test_a_precision_that_is_not_one_is_refused(workdir):
    write_params(workdir / "params.yaml", **QUICK, precision="float16")
    run = run_stage_module("train", workdir)
    assert run.returncode == 1
    assert "train: error: params.yaml: train.precision: " in run.stderr


@pytest.mark.parametrize(
    ("train", "said"),
    [
        ({"batch_size": 10**9}, "train.batch_size: input should be less than or equal to 60000 "
         "(got 1000000000)"),
        ({"epochs": 10**20}, "train.epochs: input should be less than or equal to 10000 (got "
         "100000000000000000000)"),
        ({"model": {"arch": "notebook_cnn", "notebook_cnn": {
            "conv1_filters": 32, "conv2_filters": 64, "kernel_size": 3, "pool_size": 2,
            "conv_dropout": 0.25, "dense_units": 10**8, "dense_dropout": 0.5},
            "mnist_convnet": {"conv1_filters": 32, "conv2_filters": 64, "kernel_size": 3,
                              "pool_size": 2, "dropout": 0.5}}},
         "train.model.notebook_cnn.dense_units: 100,000,000 needs about 15.0 TB of memory, "
         "more than the "),
    ],
    ids=["batch of 1e9", "epochs of 1e20", "dense_units of 1e8"],
)  # fmt: skip
def test_a_training_that_cannot_run_is_refused_before_tensorflow_starts(workdir, train, said):
    """They ended in std::bad_alloc (SIGABRT, exit -6), an OverflowError and an out-of-memory
    kill: now one line, exit status 1, before TensorFlow loads (none of its lines)."""
    write_params(workdir / "params.yaml", **train)
    run = run_stage_module("train", workdir)
    assert (run.returncode, run.stdout) == (1, "")
    assert run.stderr.startswith(f"train: error: params.yaml: {said}"), run.stderr
    assert run.stderr.count("\n") == 1  # TensorFlow, loaded, would have said more
    assert not (workdir / "models").exists()
