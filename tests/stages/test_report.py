import hashlib
import json

import numpy as np
import pytest

from mnist_dvc.confusion import confusion_matrix, draw_confusion
from mnist_dvc.model_card import model_card
from mnist_dvc.released import Release, read_release, write_release


def test_confusion_matrix_counts_actual_by_predicted(tmp_path):
    csv = tmp_path / "predictions.csv"
    csv.write_text("actual,predicted\n7,7\n7,1\n2,2\n7,7\n")
    counts = confusion_matrix(csv)
    assert counts.shape == (10, 10) and counts.sum() == 4
    assert (counts[7, 7], counts[7, 1], counts[2, 2]) == (2, 1, 1)


def test_picture_has_a_cell_per_pair():
    counts = np.diag(np.arange(1, 11))
    picture = draw_confusion(counts)
    assert picture.size == (44 * 11, 44 * 11)


def test_card_names_the_files_by_their_md5(tmp_path, committed_params):
    model = tmp_path / "model.h5"
    model.write_bytes(b"weights")
    metrics, per_digit = {"accuracy": 0.5, "loss": 1.25}, {str(d): 0.5 for d in range(10)}
    counts = np.ones((10, 10), np.int64)
    card = model_card(metrics, per_digit, committed_params.train, counts, [model], Release(), None)
    assert f"| `{model}` | `{hashlib.md5(b'weights').hexdigest()}` | 7 |" in card
    assert "Test accuracy **0.5000**, test loss 1.2500 on the 100 MNIST test images." in card
    assert "| `train.optimizer.learning_rate` | 1.0 |" in card
    # the selected architecture's settings only
    assert "| `train.model.arch` | notebook_cnn |" in card
    assert "| `train.model.dense_units` | 128 |" in card
    assert "mnist_convnet" not in card
    assert "Not recorded (models/provenance.json is missing)." in card


def test_card_shows_the_out_of_distribution_score_where_metrics_have_it(tmp_path, committed_params):
    from mnist_dvc.model_card import read_scores

    model = tmp_path / "model.h5"
    model.write_bytes(b"weights")
    metrics = tmp_path / "metrics.json"
    per_digit, counts = {str(d): 0.5 for d in range(10)}, np.ones((10, 10), np.int64)
    metrics.write_text('{"accuracy": 0.99, "loss": 0.03, "ood_accuracy": 0.9455, "ood_loss": 0.2}')
    scores = read_scores(metrics)
    assert scores == {"accuracy": 0.99, "loss": 0.03, "ood_accuracy": 0.9455, "ood_loss": 0.2}
    card = model_card(scores, per_digit, committed_params.train, counts, [model], Release(), None)
    assert "Out of distribution: accuracy **0.9455**, loss 0.2000 on UCI optdigits" in card
    metrics.write_text('{"accuracy": 0.99, "loss": 0.03}')  # a metrics.json from before
    card = model_card(read_scores(metrics), per_digit, committed_params.train, counts, [model],
                      Release(), None)  # fmt: skip
    assert "Out of distribution" not in card


def test_card_says_where_the_model_was_made(tmp_path, committed_params):
    from mnist_dvc import provenance

    model = tmp_path / "model.h5"
    model.write_bytes(b"weights")
    made = provenance.provenance("portable")
    per_digit = {str(d): 0.5 for d in range(10)}
    card = model_card({"accuracy": 0.5, "loss": 1.0}, per_digit, committed_params.train,
                      np.ones((10, 10), np.int64), [model], Release(), made)  # fmt: skip
    line = card.split("## Where it was made\n\n")[1].splitlines()[0]
    assert line.startswith(f"numerics portable, {made['cpu']['model']} (")
    assert f"tensorflow {made['versions']['tensorflow']}" in line


def test_damaged_inputs_are_one_line_errors(tmp_path):
    import pytest

    from mnist_dvc.errors import StageError
    from mnist_dvc.model_card import read_per_digit, read_scores

    bad = tmp_path / "metrics.json"
    for text, reason in [
        ('{"accuracy": ', "not valid JSON: Expecting value (line 1)"),
        ('{"accuracy": "high", "loss": 0.1}', "no accuracy (a number)"),
        ('{"accuracy": 0.9}', "no loss (a number)"),
        ("[" * 100_000, "nested more than 32 levels deep"),
        ('{"accuracy": 0.9, "loss": ' + "[" * 20 + "]" * 20 + "}", "no loss (a number)"),
        ('{"accuracy": 0.9, "loss": 0.1, "ood_accuracy": 0.9}', "no ood_loss (a number)"),
        ('{"accuracy": 0.9, "loss": 0.1, "ood_accuracy": 2, "ood_loss": 0}', "ood_accuracy 2 is"),
    ]:
        bad.write_text(text)
        with pytest.raises(StageError) as error:
            read_scores(bad)
        assert str(error.value).startswith(f"{bad}: {reason}")
    bad.write_text('{"0": 0.5}')
    with pytest.raises(StageError, match=r"metrics\.json: no 1 \(a number\)"):
        read_per_digit(bad)
    csv = tmp_path / "predictions.csv"
    csv.write_text("actual,predicted\n7,12\n")
    with pytest.raises(StageError, match=r"predictions\.csv: line 2: expected two digits 0-9"):
        confusion_matrix(csv)


def test_a_provenance_of_the_wrong_shape_is_one_line(tmp_path):
    import pytest

    from mnist_dvc.records import RecordError, read_provenance

    made = tmp_path / "provenance.json"
    for text, reason in [
        ('{"cpu": "a string"}', "cpu: expected dict, got 'a string'"),
        ('{"cpu": {"flags": "avx2"}}', "cpu.flags: expected a list of names, got 'avx2'"),
        ('{"versions": {"numpy": [1]}}', "versions: holds [1], not what the train stage writes"),
        ('{"threads": [2]}', "threads: expected dict, got [2]"),
        ("[]", "not a JSON object"),
    ]:
        made.write_text(text)
        with pytest.raises(RecordError) as error:
            read_provenance(made)
        assert str(error.value) == f"{made}: {reason}"
    assert read_provenance(tmp_path / "absent.json") is None


def test_card_names_a_release_only_for_its_files(tmp_path):
    released = Release("v1.2.0", "prod", {"models/model.h5": "aa", "models/model.onnx": "bb"})
    path = tmp_path / "release.yaml"
    write_release(released, path)
    assert read_release(path) == released
    assert released.describe({"models/model.h5": "aa"}).startswith(
        "Release **mnist-cnn v1.2.0**, assigned to stage **prod** at release."
    )
    assert released.describe({"models/model.h5": "cc"}) == (
        "Not a release: the model's files differ from mnist-cnn v1.2.0, the last release on "
        "this branch."
    )
    assert Release().describe({"models/model.h5": "aa"}).startswith("Not a release: `make release")
    assert read_release(tmp_path / "absent.yaml") == Release()


def test_a_damaged_release_file_is_one_line(tmp_path):
    import pytest

    from mnist_dvc.errors import StageError

    path = tmp_path / "release.yaml"
    for text in ("- a list\n", "version: [1]\n", "files: {models/model.h5: 3}\n", "a: [\n"):
        path.write_text(text)
        with pytest.raises(StageError, match=r"release\.yaml: "):
            read_release(path)


def _report_inputs(folder, provenance: str, metrics: str) -> None:
    from tests.helpers import write_params

    write_params(folder / "params.yaml")
    (folder / "models").mkdir()
    (folder / "models" / "model.json").write_text("{}")
    (folder / "models" / "model.h5").write_bytes(b"weights")
    (folder / "models" / "provenance.json").write_text(provenance)
    (folder / "reports").mkdir()
    (folder / "metrics.json").write_text(metrics)
    (folder / "reports" / "per_digit.json").write_text(json.dumps({str(d): 0.5 for d in range(10)}))
    (folder / "reports" / "predictions.csv").write_text("actual,predicted\n7,7\n")


@pytest.mark.slow  # the stage in a process of its own, as dvc runs it
@pytest.mark.parametrize(
    ("provenance", "metrics", "said"),
    [
        ('{"cpu": "x86"}', '{"accuracy": 0.5, "loss": 1.0}',
         "models/provenance.json: cpu: expected dict, got 'x86'"),
        ('{"threads": ' + "[" * 5000 + "]" * 5000 + "}", '{"accuracy": 0.5, "loss": 1.0}',
         "models/provenance.json: nested more than 32 levels deep"),
        ("{}", '{"accuracy": [0.5], "loss": 1.0}', "metrics.json: no accuracy (a number)"),
        ("{}", '{"accuracy": 0.5}', "metrics.json: no loss (a number)"),
    ],
    ids=["cpu a string", "nesting", "accuracy a list", "no loss"],
)  # fmt: skip
def test_records_of_the_wrong_shape_end_the_stage_in_one_line(workdir, provenance, metrics, said):
    """They were TypeError and KeyError tracebacks in the model card; nothing is written."""
    from tests.helpers import run_stage_module

    _report_inputs(workdir, provenance, metrics)
    run = run_stage_module("report", workdir)
    assert (run.returncode, run.stdout) == (1, "")
    assert run.stderr == f"report: error: {said}\n"
    assert not (workdir / "reports" / "model.md").exists()
