"""One numerics path for every x86-64 CPU with AVX2 and FMA (mnist_dvc/numerics.py and
mnist_dvc/portable/): a small training under `portable` gives the reference bytes below on every
machine that runs the tests, at whatever thread count the caller's environment asks for;
`native` leaves TensorFlow its own choice."""

from __future__ import annotations

import json
import os
import sys

import pytest

from mnist_dvc import numerics, processor, provenance
from mnist_dvc.digests import file_digest
from mnist_dvc.paths import MODEL_WEIGHTS, PROVENANCE
from tests.helpers import run_stage_module, train_in, write_params

# model.h5 after 1 epoch on the first 2,000 training images, seed 42, numerics portable, through
# the train stage, for every intra-op thread count asked for. First made on a 2-core Intel Xeon
# (AVX-512, AVX_VNNI, AMX; 2026-12-05); docs/reproducibility.md lists every CPU that has run it.
REFERENCE_MD5 = "4a37dc4d4f3da372486e271a048ef780"
SMALL = {"epochs": 1, "train_images": 2000}


def train_small(workdir, prepared, numerics_mode="portable", **env):
    train_in(workdir, prepared, numerics=numerics_mode, env=env, **SMALL)
    return json.loads((workdir / PROVENANCE).read_text())


@pytest.mark.slow
def test_portable_gives_the_same_bytes_whatever_the_thread_count(real_prepared_dir, tmp_path):
    made = {}
    for threads in ("1", "2", "4"):
        work = tmp_path / threads
        work.mkdir()
        made[threads] = train_small(work, real_prepared_dir, TF_NUM_INTRAOP_THREADS=threads)
        assert made[threads]["model_h5_md5"] == file_digest(work / MODEL_WEIGHTS)
        assert made[threads]["numerics"] == "portable"
        assert made[threads]["threads"]["intra_op"] == int(threads)  # as asked: not pinned
        assert made[threads]["environment"] == numerics.PORTABLE_ENVIRONMENT
    assert {m["model_h5_md5"] for m in made.values()} == {REFERENCE_MD5}, made["1"]["cpu"]


@pytest.mark.slow
def test_native_leaves_tensorflow_its_own_choice(real_prepared_dir, workdir):
    made = train_small(workdir, real_prepared_dir, "native", TF_ENABLE_ONEDNN_OPTS="0")
    assert made["numerics"] == "native"
    # All unset but the caller's choice of GPUs, which the shell that started pytest may export.
    kept = {name: os.environ.get(name) for name in numerics.CALLERS_CHOICE}
    assert made["environment"] == {**dict.fromkeys(numerics.PORTABLE_ENVIRONMENT), **kept}
    assert made["model_h5_md5"] == file_digest(workdir / MODEL_WEIGHTS)


def test_configure_sets_and_clears_the_environment(monkeypatch):
    monkeypatch.delitem(sys.modules, "tensorflow", raising=False)
    for name in numerics.PORTABLE_ENVIRONMENT:
        monkeypatch.setenv(name, "from the shell")
    numerics.configure("portable")
    assert {name: numerics.os.environ[name] for name in numerics.PORTABLE_ENVIRONMENT} == (
        numerics.PORTABLE_ENVIRONMENT
    )
    for name in numerics.PORTABLE_ENVIRONMENT:
        monkeypatch.setenv(name, "from the shell")
    numerics.configure("native")
    kept = {name: "from the shell" for name in numerics.CALLERS_CHOICE}  # which GPUs it may use
    assert {
        n: numerics.os.environ.get(n)
        for n in numerics.PORTABLE_ENVIRONMENT
        if n in numerics.os.environ
    } == kept


def test_configure_refuses_once_tensorflow_is_loaded(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorflow", object())
    with pytest.raises(numerics.NumericsError, match="imported before"):
        numerics.configure("portable")


@pytest.mark.parametrize(
    "value", ["-1", "1000000000", "1025", "abc", "2.5", "\u0663", "0" * 30 + "9999"]
)
def test_a_thread_count_tensorflow_cannot_start_is_refused(monkeypatch, value):
    """TensorFlow aborts at -1 (SIGABRT, a C++ stack) and crashes at 10**9 (SIGSEGV); 'abc' it
    ignores, and provenance.py failed on it after a whole training ('a bug in train')."""
    monkeypatch.delitem(sys.modules, "tensorflow", raising=False)
    for name in numerics.THREAD_VARIABLES:
        monkeypatch.setenv(name, value)
        with pytest.raises(numerics.ThreadsError, match=f"^{name} is "):
            numerics.configure("portable")
        monkeypatch.delenv(name)


@pytest.mark.parametrize("value", ["", " ", "0", "1", " 2 ", "1024"])
def test_a_thread_count_tensorflow_can_start_is_taken_and_recorded(monkeypatch, value):
    monkeypatch.delitem(sys.modules, "tensorflow", raising=False)
    monkeypatch.setenv("TF_NUM_INTRAOP_THREADS", value)
    numerics.check_threads()
    recorded = provenance.provenance("portable")["threads"]["intra_op"]
    assert recorded == (int(value) if value.strip() not in ("", "0") else os.cpu_count())


def test_a_stage_refuses_a_bad_thread_count_in_one_line_before_tensorflow(workdir):
    write_params(workdir / "params.yaml")
    done = run_stage_module("train", workdir, TF_NUM_INTRAOP_THREADS="-1")
    assert done.returncode == 1
    assert done.stderr.strip() == (
        "train: error: TF_NUM_INTRAOP_THREADS is '-1': set it to a whole number of threads "
        "from 1 to 1024, or to 0 or unset it for one per core"
    )


def test_provenance_names_the_cpu_and_the_versions():
    made = provenance.provenance("portable")
    assert made["cpu"]["machine"] and made["cpu"]["model"]
    assert set(made["cpu"]["flags"]) <= set(processor.DECIDING_FLAGS)
    assert set(made["versions"]) == {"python", "tensorflow", "keras", "numpy"}


def test_provenance_is_kept_when_a_rerun_reproduces_the_bytes(tmp_path):
    weights, previous = tmp_path / "model.h5", tmp_path / "provenance.json"
    weights.write_bytes(b"weights")
    first = {"model_h5_md5": file_digest(weights), "cpu": {"model": "the first machine"}}
    previous.write_text(json.dumps(first))
    assert provenance.provenance_of(weights, "portable", "float32", previous) == first
    weights.write_bytes(b"other weights")
    made = provenance.provenance_of(weights, "native", "float32", previous)
    assert made["model_h5_md5"] == file_digest(weights) and made["numerics"] == "native"
    previous.write_text("not JSON")
    assert provenance.provenance_of(weights, "native", "float32", previous)["numerics"] == "native"


BF16 = ["avx2", "fma", "avx512f", "avx512_bf16"]


@pytest.mark.parametrize(
    ("requested", "mode", "flags", "gpus", "chosen"),
    [
        ("auto", "portable", BF16, [], "float32"),  # the same bytes on every CPU
        ("auto", "native", BF16, [], "mixed_bfloat16"),
        ("auto", "native", ["avx2", "fma", "amx_tile", "amx_bf16"], [], "mixed_bfloat16"),
        ("auto", "native", ["avx2", "fma", "avx512f"], [], "float32"),
        ("auto", "native", BF16, ["NVIDIA H200"], "float32"),  # the GPU computes, not the CPU
        ("float32", "native", BF16, [], "float32"),
        ("mixed_bfloat16", "native", BF16, [], "mixed_bfloat16"),
        ("mixed_bfloat16", "native", ["avx2", "fma"], ["NVIDIA H200"], "mixed_bfloat16"),
    ],
)
def test_training_precision_chooses_bfloat16_only_where_it_is_computed(
    requested, mode, flags, gpus, chosen
):
    processor = {"model": "a CPU", "flags": flags}
    assert numerics.training_precision(requested, mode, processor, gpus) == chosen


def test_training_precision_refuses_emulated_bfloat16():
    with pytest.raises(numerics.PrecisionError, match=r"^params.yaml: train.precision: .*native"):
        numerics.training_precision("mixed_bfloat16", "portable", {"model": "x", "flags": BF16}, [])
    with pytest.raises(numerics.PrecisionError, match="needs a CPU with AVX512_BF16 or AMX"):
        numerics.training_precision(
            "mixed_bfloat16", "native", {"model": "a CPU", "flags": ["avx2", "fma"]}, []
        )


def test_describe_names_a_precision_other_than_float32_and_the_gpus():
    made = provenance.provenance("native", "mixed_bfloat16")
    assert made["precision"] == "mixed_bfloat16" and made["gpus"] == []
    assert provenance.describe(made).startswith("numerics native, mixed_bfloat16, ")
    float32 = provenance.provenance("portable")
    assert provenance.describe(float32).startswith(f"numerics portable, {float32['cpu']['model']}")
    assert "GPU NVIDIA H200, " in provenance.describe({**made, "gpus": ["NVIDIA H200"]})
