"""End to end: `dvc repro` in a temporary git repository holding this work tree, with a quick
run's params, then every output checked, then the no-op and forced re-runs."""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np
import pytest
import yaml

from mnist_dvc import mnist, optdigits, prepared
from mnist_dvc.ood import OOD_PREPARED_DIR, OOD_RAW_DIR, OOD_SPLIT
from mnist_dvc.paths import DRAWINGS_HOLDOUT_DIR, DRAWINGS_TRAIN_DIR
from stages.__main__ import STAGES
from tests.helpers import sh

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def repro(quick_run, tmp_path_factory):
    """A quick `dvc repro` from nothing; the real fetch reads the download cache."""
    repo = quick_run.copy(tmp_path_factory.mktemp("pipeline") / "repo", commit=False)
    return repo, quick_run.output


def test_every_stage_ran(repro):
    _, output = repro
    for stage in ("fetch", "preprocess", "fetch_ood", "prepare_ood", "train", "evaluate",
                  "report", "export"):  # fmt: skip
        assert f"Running stage '{stage}'" in output


def test_raw_and_prepared_data(repro):
    repo, _ = repro
    for file in mnist.FILES:
        mnist.verify(repo / "data" / "raw" / file.name, file)
    x_train = np.load(repo / "data" / "prepared" / "x_train.npy", mmap_mode="r")
    assert x_train.shape == (60000, 28, 28, 1) and x_train.dtype == np.float32


def test_the_model_loads_as_a_consumer_does_and_scores_what_metrics_json_says(repro):
    repo, _ = repro
    model = keras.models.model_from_json((repo / "models" / "model.json").read_text())
    model.load_weights(str(repo / "models" / "model.h5"))
    x_test = np.load(repo / "data" / "prepared" / "x_test.npy")
    y_test = np.load(repo / "data" / "prepared" / "y_test.npy")
    predicted = model.predict(x_test, batch_size=1000, verbose=0).argmax(axis=1)
    metrics = json.loads((repo / "metrics.json").read_text())
    assert metrics["accuracy"] == round(float((predicted == y_test).mean()), 6)
    assert 0.8 < metrics["accuracy"] < 1.0  # 2000 images, one epoch
    assert metrics["loss"] > 0


def test_metrics_params_and_plots_are_wired_for_dvc(repro):
    repo, _ = repro
    shown = json.loads(sh("dvc", "metrics", "show", "--json", cwd=repo).stdout)
    workspace = shown[""]["data"]
    # The headline only: test accuracy and loss, in that order, then the same on real
    # handwriting that is not MNIST's (per-digit accuracy and DVCLive's per-epoch numbers are
    # in reports/ and dvclive/, not in every table).
    assert list(workspace) == ["metrics.json"]
    assert list(workspace["metrics.json"]["data"]) == ["accuracy", "loss", "ood_accuracy",
                                                       "ood_loss"]  # fmt: skip
    assert workspace["metrics.json"]["data"]["accuracy"] > 0.8
    assert "eval" in json.loads((repo / "dvclive" / "metrics.json").read_text())
    params = json.loads(sh("dvc", "params", "diff", "HEAD~1", "--json", cwd=repo).stdout)
    assert set(params["params.yaml"]) == {"train.epochs", "train.train_images"}
    # Metrics and the plots' data are small and tracked by git (cache: false); models are not.
    for tracked in ("metrics.json", "reports/predictions.csv", "dvclive/metrics.json"):
        assert sh("git", "check-ignore", "-q", tracked, cwd=repo, check=False).returncode == 1
    assert sh("git", "check-ignore", "-q", "models/model.h5", cwd=repo, check=False).returncode == 0
    assert not list(repo.rglob("*.partial"))


def test_the_out_of_distribution_set_is_fetched_prepared_and_scored(repro):
    """UCI's optdigits, from scikit-learn's wheel, in MNIST's form, scored by evaluate beside
    MNIST's test set: in metrics.json, in the model card."""
    repo, output = repro
    optdigits.verify(repo / "data" / "ood_raw" / optdigits.DIGITS.name)
    images, labels = prepared.load_split(repo / "data" / "ood_prepared", "test")
    assert images.shape == (optdigits.COUNT, 28, 28, 1) and len(labels) == optdigits.COUNT
    metrics = json.loads((repo / "metrics.json").read_text())
    # One epoch on 2,000 images: worse on other writers' digits than on MNIST's own.
    assert 0.3 < metrics["ood_accuracy"] < metrics["accuracy"] and metrics["ood_loss"] > 0
    assert f"UCI optdigits accuracy {metrics['ood_accuracy']:.4f}" in output
    card = (repo / "reports" / "model.md").read_text()
    assert f"Out of distribution: accuracy **{metrics['ood_accuracy']:.4f}**" in card
    for ignored in ("data/ood_raw", "data/ood_prepared"):  # DVC's, not git's
        assert sh("git", "check-ignore", "-q", ignored, cwd=repo, check=False).returncode == 0


def test_repro_again_is_a_no_op_and_forced_train_gives_the_same_bytes(repro):
    repo, _ = repro
    assert "up to date" in sh("dvc", "status", cwd=repo).stdout
    again = sh("dvc", "repro", cwd=repo)
    assert "Running stage" not in again.stdout
    locked = yaml.safe_load((repo / "dvc.lock").read_text())
    locked_h5 = next(
        o["md5"] for o in locked["stages"]["train"]["outs"] if o["path"] == "models/model.h5"
    )
    forced = sh("dvc", "repro", "-f", "train", cwd=repo)
    assert "Running stage 'train'" in forced.stdout
    relocked = yaml.safe_load((repo / "dvc.lock").read_text())
    assert (
        next(
            o["md5"] for o in relocked["stages"]["train"]["outs"] if o["path"] == "models/model.h5"
        )
        == locked_h5
    )
    assert "up to date" in sh("dvc", "status", cwd=repo).stdout


def test_every_json_output_is_strict_json(repro):
    """No NaN or Infinity, which Python's json would write and other tools reject."""
    repo, _ = repro

    def refuse(constant: str) -> None:
        raise ValueError(f"not JSON: {constant}")

    outputs = ["metrics.json", "reports/per_digit.json", "reports/exports.json",
               "models/provenance.json", "dvclive/metrics.json"]  # fmt: skip
    for path in outputs:
        json.loads((repo / path).read_text(), parse_constant=refuse)


def test_outputs_go_only_where_dvc_yaml_says(repro):
    repo, _ = repro
    new = sh("git", "status", "--porcelain", "--untracked-files=all", "--ignored", cwd=repo).stdout
    paths = {line[3:] for line in new.splitlines()}
    logs = {f"dvclive/plots/metrics/{split}/{name}.tsv" for split in ("train", "eval")
            for name in ("loss", "accuracy")}  # fmt: skip
    declared = logs | {
        "dvc.lock", "metrics.json", "reports/predictions.csv", "models/model.json",
        "reports/per_digit.json",
        "reports/model.md", "reports/confusion.png",
        "models/model.h5", "models/provenance.json", "dvclive/metrics.json", "models/model.onnx",
        "reports/exports.json",
        *(str(p.relative_to(repo)) for p in (repo / "models" / "saved_model").rglob("*")
          if p.is_file()),
        *(f"data/raw/{file.name}" for file in mnist.FILES),
        *(str(path) for path in prepared.all_files(Path("data/prepared"))),
        str(OOD_RAW_DIR / optdigits.DIGITS.name),
        *(str(path) for path in prepared.files(OOD_PREPARED_DIR, OOD_SPLIT)),
        *(str(path) for path in prepared.files(DRAWINGS_TRAIN_DIR, "train")),
        *(str(path) for path in prepared.files(DRAWINGS_HOLDOUT_DIR, "holdout")),
    }  # fmt: skip
    dvc_bookkeeping = {p for p in paths if p.startswith(".dvc/") or p.endswith(".gitignore")}
    # An output whose bytes are the committed ones (reports/exports.json: the checks met) is
    # not new; nothing may appear outside the declared outputs.
    assert paths - dvc_bookkeeping <= declared
    assert {"dvc.lock", "models/model.h5", "metrics.json"} <= paths


def test_the_exports_compute_what_keras_computes(repro):
    repo, _ = repro
    checked = json.loads((repo / "reports" / "exports.json").read_text())
    assert checked["test_images"] == 10000
    for export in ("saved_model", "onnx"):
        assert checked[export] == {"within": 1e-5, "digits_identical": True}
    # and a consumer without Keras gets the same digits from the ONNX file
    import onnxruntime

    session = onnxruntime.InferenceSession(str(repo / "models" / "model.onnx"))
    x_test = np.load(repo / "data" / "prepared" / "x_test.npy")[:500]
    model = keras.models.model_from_json((repo / "models" / "model.json").read_text())
    model.load_weights(str(repo / "models" / "model.h5"))
    onnx_out = session.run(None, {session.get_inputs()[0].name: x_test})[0]
    np.testing.assert_allclose(onnx_out, model.predict(x_test, verbose=0), atol=1e-5)


def stages_with_changed_dep(repo, path: str) -> set[str]:
    status = json.loads(sh("dvc", "status", "--json", cwd=repo).stdout)
    return {
        stage
        for stage, changes in status.items()
        for change in changes
        if isinstance(change, dict) and path in change.get("changed deps", {})
    }


@pytest.mark.parametrize(
    ("path", "old", "new", "expected"),
    [
        # Code: a line without a comment, changed as a developer would.
        ("mnist_dvc/prepared.py", 'SPLITS = ("train", "test")', 'SPLITS = ("train", "test",)',
         {"preprocess", "prepare_ood", "prepare_drawings", "train", "evaluate", "export"}),
        ("mnist_dvc/sources.py", "def _is_local(", "def _is_local_source(",
         {"fetch"}),
        # Module boundaries are cache boundaries: the source policy is fetch's alone, and a
        # docstring of a module only the report stage imports reruns only the report.
        ("mnist_dvc/sources.py", "MAX_TIMEOUT_S = 86_400.0", "MAX_TIMEOUT_S = 86400.0",
         {"fetch"}),
        ("mnist_dvc/released.py", '"""release.yaml: which release', '"""release.yaml: the release',
         {"report"}),
        ("mnist_dvc/numerics.py", "def configure_from_params() -> None:",
         "def configure_from_params() -> None:  # TensorFlow's stages", {"train", "evaluate",
         "export", "report"}),
        ("mnist_dvc/mnist.py", "NUM_TEST = 10000", "NUM_TEST = 10_000",
         {"check_params", "fetch", "preprocess", "fetch_ood", "prepare_ood", "prepare_drawings",
          "train", "evaluate", "report", "export"}),
        # The out-of-distribution set's code and sources: never train's.
        ("mnist_dvc/optdigits.py", "COUNT = 1797", "COUNT = 1_797", {"fetch_ood", "prepare_ood"}),
        ("mnist_dvc/ood_sources.py", "MAX_GZIPPED = 1 << 20", "MAX_GZIPPED = 1 << 21",
         {"fetch_ood"}),
        ("ood_sources.yaml", "timeout_s: 300.0", "timeout_s: 301.0", {"fetch_ood"}),
        ("stages/prepare_ood.py", "def to_mnist_form(", "def to_mnist_form_(", {"prepare_ood"}),
        ("mnist_dvc/ood.py", 'NAME = "UCI optdigits"', 'NAME = "UCI optdigits "',
         {"fetch_ood", "prepare_ood", "evaluate", "report"}),
        ("mnist_dvc/architectures/mnist_convnet.py", "    data_format = ", "    data_format=",
         {"train"}),
        # The stages' package versions: every stage whose results they can change (fetch's
        # are pinned by their digests). The other roles' locks are no stage's dependency.
        ("requirements.lock", "numpy==", "numpy===",
         {"preprocess", "prepare_ood", "prepare_drawings", "train", "evaluate", "report",
          "export"}),
        ("requirements.lock", "tensorflow==", "tensorflow===",
         {"preprocess", "prepare_ood", "prepare_drawings", "train", "evaluate", "report",
          "export"}),
        # The drawings' format and the version command: prepare_drawings reads one, no stage
        # runs the other.
        ("mnist_dvc/drawings.py", "HOLDOUT_EVERY = 5", "HOLDOUT_EVERY = 5  # 20 %",
         {"prepare_drawings"}),
        ("mnist_dvc/registry/datasets.py", "ADD_TIMEOUT_S = 600.0", "ADD_TIMEOUT_S = 601.0",
         set()),
        ("requirements-serve.lock", "uvicorn==", "uvicorn===", set()),
        ("requirements-dev.lock", "pytest==", "pytest===", set()),
    ],
)  # fmt: skip
def test_dvc_status_reports_a_change_for_exactly_the_stages_that_run_it(
    repro, path, old, new, expected
):
    repo, _ = repro
    file = repo / path
    original = file.read_text()
    assert old in original
    file.write_text(original.replace(old, new, 1))
    try:
        assert stages_with_changed_dep(repo, path) == expected
        if not expected:  # no stage depends on it: the whole pipeline stays up to date
            assert "up to date" in sh("dvc", "status", cwd=repo).stdout
    finally:
        file.write_text(original)
    assert "up to date" in sh("dvc", "status", cwd=repo).stdout


def test_an_experiment_switches_the_architecture(repro):
    """(Last in this file: it leaves the experiment's results in the work tree.)"""
    repo, _ = repro
    sh("dvc", "exp", "run", "-S", "train.model.arch=mnist_convnet", "-n", "convnet", cwd=repo)
    diff = json.loads(sh("dvc", "params", "diff", "--json", cwd=repo).stdout)
    assert diff["params.yaml"]["train.model.arch"] == {
        "old": "notebook_cnn",
        "new": "mnist_convnet",
    }
    layers = json.loads((repo / "models" / "model.json").read_text())["config"]["layers"]
    assert [layer["class_name"] for layer in layers].count("MaxPooling2D") == 2
    metrics = json.loads((repo / "metrics.json").read_text())
    assert metrics["accuracy"] > 0.5  # one epoch on 2,000 images: a third of the way


def test_the_numerics_setting_marks_the_stages_that_compute_with_tensorflow(repro):
    repo, _ = repro
    params = repo / "params.yaml"
    original = params.read_text()
    params.write_text(original.replace("numerics: portable", "numerics: native", 1))
    try:
        status = json.loads(sh("dvc", "status", "--json", cwd=repo).stdout)
        marked = {
            stage
            for stage, changes in status.items()
            for change in changes
            if isinstance(change, dict)
            and "numerics" in change.get("changed deps", {}).get("params.yaml", {})
        }
        tensorflow_stages = {name for name, start_up in STAGES.items() if start_up}
        assert marked == tensorflow_stages == {"train", "evaluate", "export"}
        diff = sh("dvc", "params", "diff", "--json", cwd=repo).stdout
        assert json.loads(diff)["params.yaml"]["numerics"] == {"old": "portable", "new": "native"}
    finally:
        params.write_text(original)
    assert "up to date" in sh("dvc", "status", cwd=repo).stdout
