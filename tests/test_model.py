import json

import h5py
import keras
import numpy as np
import pytest

from mnist_dvc.architectures import build_model
from mnist_dvc.model import ModelError, compile_model, load_model, save_model
from tests.helpers import run_stage_module, write_params


@pytest.fixture(scope="module")
def model(committed_params):
    model = build_model((28, 28, 1), committed_params.train.model)
    compile_model(model, committed_params.train.optimizer)
    return model


def test_the_notebooks_architecture(model):
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds == [
        "Conv2D", "Conv2D", "MaxPooling2D", "Dropout", "Flatten", "Dense", "Dropout", "Dense",
    ]  # fmt: skip
    conv1, conv2, pool, drop1, _, dense, drop2, out = model.layers
    assert (conv1.filters, conv1.kernel_size, conv1.activation.__name__) == (32, (3, 3), "relu")
    assert (conv2.filters, conv2.kernel_size) == (64, (3, 3))
    assert pool.pool_size == (2, 2)
    assert (drop1.rate, drop2.rate) == (0.25, 0.5)
    assert (dense.units, dense.activation.__name__) == (128, "relu")
    assert (out.units, out.activation.__name__) == (10, "softmax")
    assert model.count_params() == 1_199_882  # the notebook's model, as Keras 2 counted it


def test_adadelta_has_the_notebooks_effective_settings(model):
    optimizer = model.optimizer
    assert isinstance(optimizer, keras.optimizers.Adadelta)
    assert float(optimizer.learning_rate) == 1.0
    assert (optimizer.rho, optimizer.epsilon) == (0.95, 1e-7)
    assert model.loss == "categorical_crossentropy"


def test_channels_first_builds(committed_params):
    model = build_model((1, 28, 28), committed_params.train.model)
    assert model.layers[0].data_format == "channels_first"
    assert model.count_params() == 1_199_882


def test_saved_pair_loads_the_way_the_notebooks_consumers_load_it(model, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    json_path, weights_path = tmp_path / "models" / "model.json", tmp_path / "models" / "model.h5"
    save_model(model, json_path, weights_path)
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == ["model.h5", "model.json"]
    with h5py.File(weights_path) as h5:  # legacy layout: one group per layer at the root
        names = [str(name) for name in h5.attrs["layer_names"]]
        assert names == [layer.name for layer in model.layers]
        assert all(name in h5 for name in names)
    consumer = keras.models.model_from_json(json_path.read_text())
    consumer.load_weights(str(weights_path))
    images = np.random.default_rng(0).random((4, 28, 28, 1), dtype=np.float32)
    np.testing.assert_array_equal(
        consumer.predict(images, verbose=0), model.predict(images, verbose=0)
    )
    np.testing.assert_array_equal(
        load_model(json_path, weights_path).predict(images, verbose=0),
        model.predict(images, verbose=0),
    )


def _with_layer(model, layer_config):
    config = json.loads(model.to_json())
    config["config"]["layers"].insert(2, layer_config)
    return json.dumps(config)


def test_a_lambda_layer_is_refused(model, tmp_path):
    lam = keras.layers.Lambda(lambda x: x * 2)
    lam.build((None, 26, 26, 32))
    path = tmp_path / "model.json"
    path.write_text(_with_layer(model, keras.saving.serialize_keras_object(lam)))
    with pytest.raises(
        ModelError,
        match=r"model\.json: refused to build the model: .*Lambda.*arbitrary code execution",
    ) as error:
        load_model(path, tmp_path / "model.h5")
    assert "\n" not in str(error.value)


def test_a_foreign_layer_class_is_refused(model, tmp_path):
    path = tmp_path / "model.json"
    foreign = {"module": "os", "class_name": "system", "config": {"command": "true"}}
    path.write_text(_with_layer(model, foreign))
    with pytest.raises(ModelError, match="refused to build the model"):
        load_model(path, tmp_path / "model.h5")


def test_weights_that_do_not_fit_are_a_clear_error(model, committed_params, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    model_params = committed_params.train.model
    narrower = model_params.notebook_cnn.model_copy(update={"dense_units": 64})
    smaller = build_model((28, 28, 1), model_params.model_copy(update={"notebook_cnn": narrower}))
    save_model(smaller, tmp_path / "small.json", tmp_path / "small.h5")
    save_model(model, tmp_path / "model.json", tmp_path / "model.h5")
    with pytest.raises(ModelError, match=r"small\.h5: weights do not fit .*model\.json") as error:
        load_model(tmp_path / "model.json", tmp_path / "small.h5")
    assert "\n" not in str(error.value)


def test_missing_or_garbage_files(model, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ModelError, match=r"nope\.json: cannot read"):
        load_model(tmp_path / "nope.json", tmp_path / "nope.h5")
    save_model(model, tmp_path / "model.json", tmp_path / "model.h5")
    (tmp_path / "garbage.h5").write_bytes(b"not hdf5")
    with pytest.raises(ModelError, match=r"garbage\.h5: weights do not fit"):
        load_model(tmp_path / "model.json", tmp_path / "garbage.h5")


# Every model.json gets one line that names it: never a traceback, never a word about model.h5.


def refusal(json_path, text, weights_path):
    json_path.write_text(text)
    with pytest.raises(ModelError) as error:
        load_model(json_path, weights_path)
    message = str(error.value)
    assert message.startswith(f"{json_path}: "), message
    assert "\n" not in message and len(message) < 400 + len(str(json_path)), message
    return message


def nested(depth: int, leaf: object) -> object:
    for _ in range(depth):
        leaf = {"module": "keras", "class_name": "Sequential", "config": leaf}
    return leaf


def test_deeply_nested_model_json_is_one_line(model, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    save_model(model, tmp_path / "good.json", tmp_path / "model.h5")
    json_path, weights_path = tmp_path / "model.json", tmp_path / "model.h5"
    deeper_than_the_parser = "[" * 100_000 + "]" * 100_000
    message = refusal(json_path, deeper_than_the_parser, weights_path)
    assert message.endswith("cannot read a model from it: nested more than 32 levels deep")
    config = json.loads((tmp_path / "good.json").read_text())
    config["config"]["layers"][-1]["config"]["activation"] = json.loads("[" * 900 + "]" * 900)
    assert "nested more than 32 levels" in refusal(json_path, json.dumps(config), weights_path)
    config["config"]["layers"][-1]["config"]["activation"] = json.loads("[" * 20 + "]" * 20)
    assert "refused to build the model" in refusal(json_path, json.dumps(config), weights_path)
    refusal(json_path, json.dumps(nested(200, {"layers": []})), weights_path)


@pytest.mark.parametrize(
    "document",
    [
        [1, 2],
        {"layers": []},
        {"class_name": "Sequential", "config": {}},
        {"module": "keras.layers", "class_name": "Dense", "config": {"units": 10}},
        "model",
    ],
)
def test_json_that_is_not_a_model_names_model_json(document, model, tmp_path, monkeypatch):
    """Even with good weights beside it, the message is about model.json."""
    monkeypatch.chdir(tmp_path)
    save_model(model, tmp_path / "good.json", tmp_path / "model.h5")
    message = refusal(tmp_path / "model.json", json.dumps(document), tmp_path / "model.h5")
    assert "model.h5" not in message


def test_keras_long_reasons_are_cut_short(model, tmp_path):
    """Keras quotes a whole config in the first line of some of its messages."""
    config = json.loads(model.to_json())
    config.pop("module")  # then Keras cannot find Sequential, and says so at length
    message = refusal(tmp_path / "model.json", json.dumps(config), tmp_path / "model.h5")
    assert "..." in message


@pytest.mark.slow  # runs the evaluate stage
def test_evaluate_is_one_line_about_a_nested_model_json(tmp_path):
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "model.json").write_text('{"a": ' * 100_000 + "1" + "}" * 100_000)
    write_params(tmp_path / "params.yaml")
    run = run_stage_module("evaluate", tmp_path)
    assert run.returncode == 1, run.stderr[-2000:]
    assert "Traceback" not in run.stderr
    assert run.stderr.strip().splitlines()[-1] == (
        "evaluate: error: models/model.json: cannot read a model from it: nested more than 32 "
        "levels deep"
    )


def test_a_model_whose_outputs_are_not_probabilities_is_refused(model, tmp_path):
    """A linear last layer gives scores of any size; shown as a "probability" they mislead."""
    config = json.loads(model.to_json())
    config["config"]["layers"][-1]["config"]["activation"] = "linear"
    message = refusal(tmp_path / "model.json", json.dumps(config), tmp_path / "model.h5")
    assert message.endswith(
        "its last layer (Dense) does not end in a softmax: its outputs are not digit probabilities"
    )
