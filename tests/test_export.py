"""The exports are byte-stable: the same model.json + model.h5 give the same bytes in every file
of the SavedModel and in the ONNX file, exported in two processes (as two `dvc repro` runs do)
or twice in one, whatever the process did before; and they still compute Keras's answers."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from tensorflow.core.protobuf import fingerprint_pb2
from tensorflow.python.saved_model.pywrap_saved_model import fingerprinting

from mnist_dvc.architectures import build_model
from mnist_dvc.export import (
    PARITY_TOLERANCE,
    in_batches,
    input_signature,
    keras_runner,
    onnx_runner,
    parity,
    saved_model_runner,
)
from mnist_dvc.model import load_model, write_model
from mnist_dvc.onnx_bytes import canonical_onnx
from mnist_dvc.prepared import CHANNEL_SHAPES
from mnist_dvc.saved_model_bytes import FINGERPRINT_FILE
from tests.helpers import run_python

# Exports the model in argv[1] into each folder that follows, tracing and running the model
# between two exports so that TensorFlow's and tf2onnx's process-wide counters move on.
EXPORT = """
import sys
from pathlib import Path

import numpy as np

from mnist_dvc.export import export_onnx, export_saved_model, keras_runner
from mnist_dvc.model import load_model

source = Path(sys.argv[1])
model = load_model(source / "model.json", source / "model.h5")
for out in map(Path, sys.argv[2:]):
    export_saved_model(model, out / "saved_model")
    export_onnx(model, out / "model.onnx")
    keras_runner(model)(np.zeros((3, 28, 28, 1), np.float32))
"""


def export_in_a_process(source: Path, *outs: Path) -> None:
    run_python(EXPORT, source, *outs)


def contents(folder: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(folder)): path.read_bytes()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def assert_same_bytes(first: Path, second: Path) -> None:
    a, b = contents(first), contents(second)
    assert sorted(a) == sorted(b)
    assert [name for name in a if a[name] != b[name]] == []


@pytest.fixture(scope="module")
def model_dir(committed_params, tmp_path_factory) -> Path:
    """The notebook's model with seeded random weights (biases too, which a freshly built
    model has at zero and tf2onnx would fold away): no training needed."""
    keras.utils.set_random_seed(0)
    model = build_model((28, 28, 1), committed_params.train.model)
    rng = np.random.default_rng(0)
    for weight in model.weights:
        weight.assign(rng.normal(0, 0.05, weight.shape).astype(np.float32))
    folder = tmp_path_factory.mktemp("seeded-model")
    write_model(model, folder / "model.json", folder / "model.h5")
    return folder


@pytest.fixture(scope="module")
def exports(model_dir, tmp_path_factory) -> dict[str, Path]:
    """Process `one` exports once; process `two` exports twice (`two-again` after more work)."""
    out = tmp_path_factory.mktemp("exports")
    export_in_a_process(model_dir, out / "one")
    export_in_a_process(model_dir, out / "two", out / "two-again")
    return {name: out / name for name in ("one", "two", "two-again")}


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_the_input_signature_is_the_one_model_export_derives(committed_params, data_format):
    """export.input_signature, in public terms, is what Keras's own model.export derives from
    the model (a private function): so the exports are what model.export writes."""
    from keras.src.export.export_utils import get_input_signature

    model = build_model(CHANNEL_SHAPES[data_format], committed_params.train.model)
    ours, keras_own = input_signature(model), get_input_signature(model)
    described = [[(s.shape, s.dtype, s.name) for s in specs] for specs in (ours, keras_own)]
    assert described[0] == described[1]


@pytest.mark.slow
def test_two_processes_write_the_same_bytes(exports):
    names = contents(exports["one"])
    assert {"model.onnx", "saved_model/saved_model.pb", f"saved_model/{FINGERPRINT_FILE}"} <= set(
        names
    )
    assert any(name.startswith("saved_model/variables/") for name in names)
    assert_same_bytes(exports["one"], exports["two"])


@pytest.mark.slow
def test_one_process_writes_the_same_bytes_twice(exports):
    assert_same_bytes(exports["two"], exports["two-again"])


@pytest.mark.slow
def test_the_exports_still_compute_what_keras_computes(exports, model_dir):
    model = load_model(model_dir / "model.json", model_dir / "model.h5")
    images = np.random.default_rng(1).random((256, 28, 28, 1), dtype=np.float32)
    expected = in_batches(keras_runner(model), images, 128)
    for run in (
        saved_model_runner(exports["one"] / "saved_model"),  # TF Serving's serving_default
        onnx_runner(exports["one"] / "model.onnx"),
    ):
        found = parity(expected, in_batches(run, images, 128))
        assert found["max_abs_difference"] <= PARITY_TOLERANCE


@pytest.mark.slow
def test_the_fingerprint_describes_the_rewritten_files(exports):
    folder = exports["one"] / "saved_model"
    written = fingerprint_pb2.FingerprintDef.FromString((folder / FINGERPRINT_FILE).read_bytes())
    fresh = fingerprint_pb2.FingerprintDef.FromString(
        fingerprinting.CreateFingerprintDef(str(folder))
    )
    assert written.uuid and written.uuid.isdigit() and written.uuid != fresh.uuid
    written.ClearField("uuid")
    fresh.ClearField("uuid")
    assert written == fresh


@pytest.mark.slow
def test_the_onnx_file_is_already_canonical(exports):
    data = (exports["one"] / "model.onnx").read_bytes()
    again = canonical_onnx(onnx.load_from_string(data))
    assert again.SerializeToString(deterministic=True) == data


def small_graph(names: dict[str, str], order: list[int]) -> onnx.ModelProto:
    """x -> Add(c1) -> Mul(c2) -> y and x -> Relu -> (also into Mul's sum) with two equal
    constants; `names` renames values and nodes, `order` permutes the nodes."""
    n = lambda name: names.get(name, name)  # noqa: E731
    zero = np.zeros(1, np.float32)
    nodes = [
        helper.make_node("Add", ["x", n("c1")], [n("a")], name=n("Add__7")),
        helper.make_node("Relu", ["x"], [n("r")], name=n("Relu__9"), doc_string="from TF"),
        helper.make_node("Mul", [n("a"), n("c2")], [n("m")], name=n("Mul__8")),
        helper.make_node("Sum", [n("m"), n("r")], ["y"], name=n("Sum__3")),
    ]
    graph = helper.make_graph(
        [nodes[i] for i in order],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [n("unk__12"), 1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [n("unk__13"), 1])],
        [
            helper.make_tensor(n("c2"), TensorProto.FLOAT, [1], zero + 2),
            helper.make_tensor(n("c1"), TensorProto.FLOAT, [1], zero),
            helper.make_tensor(n("c0"), TensorProto.FLOAT, [1], zero),  # equal to c1, unused
        ],
        doc_string="converted from __inference___call___182",
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 15)])


@pytest.mark.parametrize(
    ("names", "order"),
    [
        ({"Add__7": "Add__70", "unk__12": "unk__40", "c1": "const__5", "a": "t1"}, [1, 0, 2, 3]),
        ({"c1": "c0", "c0": "c1", "r": "zz", "Relu__9": "R"}, [0, 2, 1, 3]),
        ({"m": "a", "a": "m", "unk__13": "batch"}, [1, 0, 2, 3]),
    ],
)
def test_canonical_onnx_ignores_names_and_node_order(names, order):
    reference = canonical_onnx(small_graph({}, [0, 1, 2, 3]))
    changed = canonical_onnx(small_graph(names, order))
    assert changed.SerializeToString(deterministic=True) == reference.SerializeToString(
        deterministic=True
    )
    graph = reference.graph
    assert [node.name for node in graph.node] == ["Add_0", "Mul_1", "Relu_2", "Sum_3"]
    assert ([v.name for v in graph.input], [v.name for v in graph.output]) == (["x"], ["y"])
    assert graph.doc_string == "" and all(node.doc_string == "" for node in graph.node)
    assert [t.name for t in graph.initializer] == [
        "initializer_0", "initializer_1", "initializer_2",
    ]  # fmt: skip
    dims = [v.type.tensor_type.shape.dim[0].dim_param for v in [*graph.input, *graph.output]]
    assert dims == ["dim_0", "dim_1"]
    onnx.checker.check_model(reference, full_check=True)
