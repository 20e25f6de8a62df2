import re

import pytest
import yaml

from stages.params import ParamsError, load_params
from tests.helpers import REPO_ROOT


def test_committed_params_are_the_notebooks(committed_params):
    train = committed_params.train
    assert (train.epochs, train.batch_size, train.train_images) == (12, 128, 60000)
    assert train.optimizer.name == "adadelta"
    assert (train.optimizer.learning_rate, train.optimizer.rho) == (1.0, 0.95)
    assert train.optimizer.epsilon == 1e-7
    assert (train.model.conv_dropout, train.model.dense_dropout) == (0.25, 0.5)


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
        (_set("train.model.dense_dropout", 1.5), r"train\.model\.dense_dropout: .*less than 1"),
        (_set("train.batch_size", -1), r"train\.batch_size: .*greater than or equal to 1"),
        (_set("train.train_images", 70000), r"train\.train_images: .*less than or equal to 60000"),
        (_rename("train.optimizer.learning_rate", "learning_rte"), r"train\.optimizer\."),
        (_set("train.optimizer.name", "adam"), r"train\.optimizer\.name: input should be 'adad"),
        (_set("preprocess.data_format", "nhwc"), r"preprocess\.data_format: input should be"),
        (_set("fetch.sources", []), r"fetch\.sources: .*at least 1"),
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
