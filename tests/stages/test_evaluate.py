import json

import numpy as np
import pytest

from mnist_dvc.architectures import build_model
from mnist_dvc.model import save_model
from stages.evaluate import evaluate, score, write_outputs


def test_score_by_hand():
    probabilities = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.0, 1.0]], dtype=np.float32)
    labels = np.array([0, 1, 1, 1])
    metrics, per_digit = score(np.pad(probabilities, ((0, 0), (0, 8))), labels)
    expected_loss = -np.mean(np.log([0.9, 0.8, 0.4, 1 - 1e-7]))
    assert metrics["loss"] == pytest.approx(expected_loss, abs=1e-6)
    assert metrics["accuracy"] == 0.75
    assert list(metrics) == ["accuracy", "loss"]  # the headline, in the order tables show it
    assert per_digit["0"] == 1.0
    assert per_digit["1"] == pytest.approx(2 / 3, abs=1e-6)
    assert set(per_digit) == {"0", "1"}  # no test digit of the others


TEST_IMAGES = 2000  # the first 2,000 real test images hold every digit


@pytest.fixture
def small_prepared_dir(real_prepared_dir, tmp_path):
    """The prepared test split's first TEST_IMAGES (evaluate reads only the test split)."""
    for array in ("x_test", "y_test"):
        np.save(
            tmp_path / f"{array}.npy", np.load(real_prepared_dir / f"{array}.npy")[:TEST_IMAGES]
        )
    return tmp_path


@pytest.mark.parametrize("numerics", ["portable", "native"])
def test_evaluate_matches_keras_and_writes_its_files(
    small_prepared_dir, workdir, committed_params, numerics
):
    import keras

    keras.utils.set_random_seed(0)
    model = build_model((28, 28, 1), committed_params.train.model)
    save_model(model, workdir / "models" / "model.json", workdir / "models" / "model.h5")
    json_path, h5_path = workdir / "models" / "model.json", workdir / "models" / "model.h5"
    metrics, per_digit, labels, predicted = evaluate(
        small_prepared_dir, json_path, h5_path, 1000, numerics
    )
    model.compile(loss="categorical_crossentropy", metrics=["accuracy"])
    x_test, y_test = (np.load(small_prepared_dir / f"{a}_test.npy") for a in "xy")
    keras_loss, keras_accuracy = model.evaluate(
        x_test, keras.utils.to_categorical(y_test, 10), batch_size=1000, verbose=0
    )
    assert metrics["accuracy"] == pytest.approx(keras_accuracy, abs=1e-6)
    assert metrics["loss"] == pytest.approx(keras_loss, rel=1e-4)
    assert set(per_digit) == {str(d) for d in range(10)}

    write_outputs(metrics, per_digit, labels, predicted)
    assert json.loads((workdir / "metrics.json").read_text()) == metrics
    assert json.loads((workdir / "reports" / "per_digit.json").read_text()) == per_digit
    rows = (workdir / "reports" / "predictions.csv").read_text().splitlines()
    assert rows[0] == "actual,predicted" and len(rows) == TEST_IMAGES + 1
    assert rows[1].startswith("7,")  # the first test digit is a 7


@pytest.mark.slow  # runs the evaluate and export stages
def test_a_model_with_non_finite_outputs_is_refused_by_evaluate_and_export(
    real_prepared_dir, workdir, committed_params
):
    """Before: evaluate wrote "loss": NaN (not JSON) and export's check printed "largest
    difference nan, digits identical"."""
    import h5py
    import keras

    from tests.helpers import REPO_ROOT, run_stage_module

    keras.utils.set_random_seed(0)
    model = build_model((28, 28, 1), committed_params.train.model)
    weights = workdir / "models" / "model.h5"
    save_model(model, workdir / "models" / "model.json", weights)
    with h5py.File(weights, "r+") as h5:
        kernels = []
        h5.visititems(lambda name, item: kernels.append(item) if name.endswith("kernel") else None)
        kernels[-1][...] = np.nan
    (workdir / "data").mkdir()
    (workdir / "data" / "prepared").symlink_to(real_prepared_dir)
    (workdir / "params.yaml").write_text((REPO_ROOT / "params.yaml").read_text())
    for stage, words in [
        ("evaluate", "models/model.h5: the model's outputs are not finite numbers on 10000 of"),
        ("export", "the model cannot be exported (retrain it: `dvc repro train`)"),
    ]:
        run = run_stage_module(stage, workdir)
        assert run.returncode == 1, run.stderr[-2000:]
        last = run.stderr.strip().splitlines()[-1]
        assert last.startswith(f"{stage}: error: ") and words in last, last
    assert (
        not (workdir / "metrics.json").exists() and not (workdir / "models" / "model.onnx").exists()
    )


def test_the_out_of_distribution_set_is_scored_beside_the_test_set(
    small_prepared_dir, workdir, committed_params, tmp_path_factory
):
    """Any arrays in data/prepared's layout: here MNIST's own, which must score the same."""
    import keras

    from mnist_dvc.prepared import PreparedError

    keras.utils.set_random_seed(0)
    model = build_model((28, 28, 1), committed_params.train.model)
    json_path, h5_path = workdir / "models" / "model.json", workdir / "models" / "model.h5"
    save_model(model, json_path, h5_path)
    metrics, per_digit, _, _ = evaluate(
        small_prepared_dir, json_path, h5_path, 1000, "portable", small_prepared_dir
    )
    assert list(metrics) == ["accuracy", "loss", "ood_accuracy", "ood_loss"]
    assert (metrics["ood_accuracy"], metrics["ood_loss"]) == (metrics["accuracy"], metrics["loss"])
    assert set(per_digit) == {str(d) for d in range(10)}  # MNIST's only
    missing = tmp_path_factory.mktemp("no-ood")
    with pytest.raises(PreparedError, match=r"x_test\.npy: no such file \(run the prepare_ood"):
        evaluate(small_prepared_dir, json_path, h5_path, 1000, "portable", missing)
