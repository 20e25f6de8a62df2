"""The readers of JSON, YAML and CSV documents (mnist_dvc/documents.py and every reader built on
it: params.yaml, sources.yaml, dvc.lock, release.yaml, dvc.yaml, metrics.json, per_digit.json,
provenance.json, predictions.csv), fed random and adversarial documents: nesting, aliases,
sizes, types, encodings. Through the error boundary each ends as a stage or a console script
ends: a result, or one short line and a non-zero exit that is a refusal (1 or 2), never a bug
(70) or a traceback; within a time and a memory bound."""

from __future__ import annotations

import contextlib
import io
import json
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mnist_dvc import documents, dvc_lock, records
from mnist_dvc.confusion import confusion_matrix
from mnist_dvc.documents import DocumentError, load_digit_pairs, load_json, load_yaml
from mnist_dvc.model_card import read_per_digit, read_scores
from mnist_dvc.params import load_params
from mnist_dvc.paths import METRICS, PARAMS, PREDICTIONS, PROVENANCE
from mnist_dvc.registry.checks import artifact_path
from mnist_dvc.released import read_release
from mnist_dvc.sources import load_sources
from mnist_dvc.stage import run_stage
from mnist_dvc.tool import run_tool
from mnist_dvc.verify import results

SETTINGS = {"deadline": None, "suppress_health_check": list(HealthCheck)}
SECONDS = 10.0  # per document, whatever it holds (a 1 MiB YAML file parses in about 3 s here)
PEAK_BYTES = 256 << 20  # Python's allocations while one document is read


# ---------------------------------------------------------------------------------- the bombs


def alias_bomb(levels: int, fan_out: int = 9, key: str = "sources") -> str:
    """A few hundred bytes of YAML that stand for fan_out**levels strings."""
    lines = [f"a0: &a0 [{', '.join(['lol'] * fan_out)}]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * fan_out)}]" for i in range(1, levels)]
    return "\n".join(lines) + f"\n{key}: *a{levels - 1}\ntimeout_s: 60.0\n"


def test_an_alias_bomb_is_measured_without_expanding_it():
    text = alias_bomb(9)  # 9**9: 387 million strings in about 400 bytes
    assert len(text) < 600
    start = time.monotonic()
    with pytest.raises(DocumentError, match="more than 100,000 values once its aliases"):
        load_yaml(text)
    assert time.monotonic() - start < 1
    # a0: 1 + 9 strings; a1: 1 + 9 a0s; a2: 1 + 9 a1s; the mapping: itself, 5 keys, its values
    a0, a1, a2 = 10, 1 + 9 * 10, 1 + 9 * 91
    assert documents.measure(yaml.compose(alias_bomb(3))) == (1 + 5 + a0 + a1 + 2 * a2 + 1, 5)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("[" * 200_000, "nested more than 32 levels deep"),
        ("a:\n" + "".join(" " * i + "b:\n" for i in range(1, 40)), "nested more than 32"),
        ("a: &a [*a]", "an alias refers to the node that holds it (a loop)"),
        ("a: &a {b: *a}", "an alias refers to the node that holds it (a loop)"),
        ("a: *nowhere", "not valid YAML: found undefined alias"),
        ("a: !!python/object:os.system x", "not valid YAML: could not determine a constructor"),
        ("a: 2020-02-30", "not valid YAML: day is out of range for month"),
        ("{[1]: 2}", "not valid YAML: found unhashable key"),
        (
            "a: 1\n---\nb: 2\n",
            "not valid YAML: expected a single document in the stream, but "
            "found another document (line 2)",
        ),
        ("a: \x00", "not valid YAML: special characters are not allowed"),
    ],
)
def test_hostile_yaml_is_one_short_reason(text, reason):
    with pytest.raises(DocumentError) as error:
        load_yaml(text)
    assert reason.removeprefix("not valid YAML: ") in str(error.value), str(error.value)
    assert "\n" not in str(error.value) and len(str(error.value)) < 200


def test_yaml_1_2_as_dvc_reads_it():
    text = "a: 1e-07\nb: yes\nc: 010\nd: 0o17\ne: 2020-01-01\nf: on\n"
    assert load_yaml(text, version="1.2") == {
        "a": 1e-07, "b": "yes", "c": 10, "d": 15, "e": "2020-01-01", "f": "on"
    }  # fmt: skip
    assert load_yaml(text)["a"] == "1e-07" and load_yaml(text)["c"] == 8  # PyYAML's 1.1


def test_deep_nesting_is_refused_where_libyaml_crashed():
    """libyaml's composer (PyYAML's CSafeLoader, which dvc_lock used) died with SIGSEGV on this."""
    with pytest.raises(dvc_lock.LockError, match="nested more than 32 levels deep"):
        dvc_lock.parse("stages: " + "[" * 100_000, strict=True)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"[" * 100_000, "nested more than 32 levels deep"),
        (b"[" * 40 + b"]" * 40, "nested more than 32 levels deep"),
        (b"[" + b"0," * 200_000 + b"0]", "more than 100,000 values"),
        (b'{"a": NaN}', "NaN is not a number JSON allows"),
        (b'{"a": 1e999}', "'1e999' is too large a number"),
        (b"1" * 5000, "not valid JSON: Exceeds the limit"),
        (b"\xff\xfe\x00", "not valid JSON: "),
    ],
)
def test_hostile_json_is_one_short_reason(data, reason):
    with pytest.raises(DocumentError) as error:
        load_json(data)
    assert str(error.value).startswith(reason), str(error.value)
    assert "\n" not in str(error.value) and len(str(error.value)) < 200


@pytest.mark.slow  # a few seconds of parsing, several times that under tracemalloc
def test_the_largest_settings_file_is_read_within_the_bounds(tmp_path):
    """A settings file of the most bytes one may have (1 MiB: mnist_dvc/files.py), as one huge
    scalar and as many small ones: refused, or read, in seconds (about 3 s here)."""
    for text in (
        "train:\n  seed: 0x" + "f" * ((1 << 20) - 20) + "\n",
        "".join(f"k{i}: {i}\n" for i in range(100_000))[: 1 << 20],
    ):
        path = written(tmp_path, "params.yaml", text.encode())
        for traced in (False, True):
            ends_in_one_line(lambda path=path: load_params(path), stage=True, traced=traced)


# ------------------------------------------------------------------- random and adversarial

SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=20)
)
TREES = st.recursive(
    SCALARS,
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5)
    ),
    max_leaves=30,
)
KEYS = st.sampled_from(
    ["numerics", "train", "preprocess", "evaluate", "seed", "epochs", "batch_size", "sources",
     "timeout_s", "stages", "outs", "deps", "params", "path", "md5", "accuracy", "loss", "cpu",
     "flags", "threads", "versions", "version", "files", "artifacts", "0", "9"]
)  # fmt: skip
SHAPED = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(KEYS, children, max_size=6),
    max_leaves=40,
)


def yaml_texts() -> st.SearchStrategy[str]:
    dumped = st.one_of(TREES, SHAPED).map(
        lambda tree: yaml.safe_dump(tree, default_flow_style=None, allow_unicode=True)
    )
    return st.one_of(
        dumped,
        st.text(max_size=300),
        st.builds(alias_bomb, st.integers(1, 12), st.integers(1, 12), KEYS),
        st.integers(1, 50_000).map(lambda n: "a: " + "[" * n + "]" * n),
        st.integers(1, 50_000).map(lambda n: "a: " + "{b: " * n + "}" * n),
        st.sampled_from(["a: &a [*a]", "<<: *x", "a: !!binary AAA", "a: !!set {1, 2}", "? [1]"]),
        st.integers(0, 1 << 14).map(lambda n: "train:\n  seed: 0x" + "f" * n),
        st.integers(0, 1 << 14).map(lambda n: "x: '" + "y" * n + "'"),
        st.builds(
            lambda tree, key, value: yaml.safe_dump({**tree, key: value}),
            st.fixed_dictionaries({}),
            KEYS,
            TREES,
        ),
    )


def encoded(texts: st.SearchStrategy[str]) -> st.SearchStrategy[bytes]:
    """The texts in encodings a reader may meet: UTF-8, UTF-16 with its BOM, Latin-1, and
    damaged bytes."""
    return st.one_of(
        texts.map(lambda t: t.encode("utf-8", "surrogatepass")),
        texts.map(lambda t: t.encode("utf-16", "surrogatepass")),
        texts.map(lambda t: t.encode("latin-1", "replace")),
        st.tuples(texts, st.binary(max_size=20)).map(
            lambda p: p[0].encode("utf-8", "replace") + p[1]
        ),
        st.binary(max_size=300),
    )


def json_texts() -> st.SearchStrategy[bytes]:
    dumped = st.one_of(TREES, SHAPED).map(lambda tree: json.dumps(tree))
    return st.one_of(
        encoded(dumped),
        st.integers(1, 100_000).map(lambda n: b"[" * n + b"]" * n),
        st.integers(1, 100_000).map(lambda n: b'{"a":' * n + b"1" + b"}" * n),
        st.sampled_from([b"NaN", b'{"accuracy": Infinity}', b"1e999", b"-0", b'"\\ud800"']),
        st.integers(1, 20_000).map(lambda n: b"9" * n),
        st.integers(1, 300_000).map(lambda n: b"[" + b"0," * n + b"0]"),
    )


def csv_texts() -> st.SearchStrategy[bytes]:
    rows = st.lists(
        st.tuples(st.sampled_from("0123456789x -"), st.sampled_from('0123456789x ,"')),
        max_size=20,
    ).map(lambda pairs: "".join(f"{a},{b}\n" for a, b in pairs))
    headed = st.tuples(st.sampled_from(["actual,predicted\n", "actual,predicted\r\n", "", "a,b\n"]),
                       rows).map("".join)  # fmt: skip
    return st.one_of(
        encoded(headed),
        encoded(st.text(max_size=300)),
        st.integers(1, 1 << 20).map(lambda n: b"actual,predicted\n" + b"7" * n),
        st.just(b"actual,predicted\n7,\x007\n"),
        st.integers(1, 5000).map(lambda n: b'actual,predicted\n"' + b"7" * n),
    )


# ------------------------------------------------------------------ through the error boundary


def ends_in_one_line(work: Callable[[], object], *, stage: bool, traced: bool = True) -> None:
    """`work` run as a stage (run_stage) or a console script (run_tool) runs it: it succeeds,
    or ends with one short line on stderr and a refusal's exit status, within SECONDS and
    (`traced`: measured with tracemalloc, which slows it down several times) PEAK_BYTES."""
    stderr = io.StringIO()
    if traced:
        tracemalloc.start()
    start = time.monotonic()
    try:
        with contextlib.redirect_stderr(stderr):
            if stage:
                try:
                    run_stage("reader", work)
                    status = 0
                except SystemExit as ended:
                    status = ended.code
            else:
                status = run_tool("mnist-reader", lambda _argv: _succeeds(work), [])
        elapsed = time.monotonic() - start
        peak = tracemalloc.get_traced_memory()[1] if traced else 0
    finally:
        tracemalloc.stop()
    said = stderr.getvalue()
    assert elapsed < SECONDS * (5 if traced else 1) and peak < PEAK_BYTES, (elapsed, peak)
    if status == 0:
        assert said == ""
        return
    assert status in (1, 2), said  # a refusal: 70 would be a bug, 130 an interruption
    assert said.count("\n") == 1 and said.endswith("\n"), said
    assert said.startswith(("reader: error: ", "mnist-reader: error: ")), said
    assert "Traceback" not in said and len(said) < 400, said


def _succeeds(work: Callable[[], object]) -> int:
    work()
    return 0


def written(folder: Path, name: str, data: bytes) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("documents")


# Each reader, as the stage or console script that uses it runs it (True: a stage).
YAML_READERS = {
    "params.yaml": (lambda path: load_params(path), True),
    "sources.yaml": (lambda path: load_sources(path), True),
    "dvc.lock": (lambda path: dvc_lock.read(path), True),  # mnist-serve's and the release's
    "dvc.lock, strictly": (lambda path: dvc_lock.read(path, strict=True), False),  # mnist-verify
    "release.yaml": (lambda path: read_release(path), True),
    "dvc.yaml": (lambda path: artifact_path(path.parent), False),  # mnist-release
    "params.yaml, mnist-verify": (
        lambda path: results.parse_results(_sides(path.read_bytes(), params=True), "HEAD", "c0"),
        False,
    ),
}


@settings(max_examples=200, **SETTINGS)
@given(encoded(yaml_texts()) | yaml_texts().map(str.encode), st.sampled_from(sorted(YAML_READERS)))
def test_every_yaml_reader_answers_any_document_in_one_line(folder, data, reader):
    read, stage = YAML_READERS[reader]
    name = "dvc.yaml" if reader == "dvc.yaml" else reader.partition(",")[0]
    path = written(folder, name, data)
    ends_in_one_line(lambda: read(path), stage=stage)


def _sides(data: bytes, *, params: bool = False, metrics: bool = False,
           predictions: bool = False, provenance: bool = False) -> dict:  # fmt: skip
    """What mnist-verify parses of one side, the document under test in one file's place."""
    lock = {"stages": {"train": {"outs": [{"path": "models/model.h5", "md5": "ab"}]}}}
    return {
        results.LOCK: yaml.safe_dump(lock).encode(),
        PARAMS: data if params else b"train: {seed: 1}\n",
        METRICS: data if metrics else b'{"accuracy": 0.5, "loss": 0.1}',
        PREDICTIONS: data if predictions else b"actual,predicted\n7,7\n",
        PROVENANCE: data if provenance else None,
    }


JSON_READERS = {
    "metrics.json": (read_scores, True),
    "per_digit.json": (read_per_digit, True),
    "provenance.json": (records.read_provenance, True),
    "metrics.json, mnist-verify": (
        lambda path: results.parse_results(_sides(path.read_bytes(), metrics=True), "HEAD", "c0"),
        False,
    ),
    "provenance.json, mnist-verify": (
        lambda path: results.parse_results(
            _sides(path.read_bytes(), provenance=True), "HEAD", "c0"
        ),
        False,
    ),
}


@settings(max_examples=200, **SETTINGS)
@given(json_texts(), st.sampled_from(sorted(JSON_READERS)))
def test_every_json_reader_answers_any_document_in_one_line(folder, data, reader):
    read, stage = JSON_READERS[reader]
    path = written(folder, reader.partition(",")[0], data)
    ends_in_one_line(lambda: read(path), stage=stage)


@settings(max_examples=150, **SETTINGS)
@given(csv_texts())
def test_every_csv_reader_answers_any_document_in_one_line(folder, data):
    predictions = written(folder, "predictions.csv", data)
    ends_in_one_line(lambda: confusion_matrix(predictions), stage=True)
    ends_in_one_line(lambda: results.parse_results(_sides(data, predictions=True), "HEAD", "c0"),
                     stage=False)  # fmt: skip
    try:
        pairs = load_digit_pairs(data)
    except DocumentError as error:
        assert "\n" not in str(error) and len(str(error)) < 200
    else:
        assert pairs and all(0 <= a <= 9 and 0 <= p <= 9 for a, p in pairs)
