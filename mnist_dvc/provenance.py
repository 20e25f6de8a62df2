"""Where and how a model was computed: `models/provenance.json`, which `train` writes beside
the model and the model card, `mnist-serve`'s `/model` and `mnist-verify` read.

It names the CPU (its model and the flags that decide TensorFlow's kernels), the GPUs, the
numerics and what they set in the environment, the training precision, the thread counts and
the library versions, with the md5 of the model.h5 it describes. A rerun that reproduces those
very bytes keeps the file as it is: it names the machine that first made them
(docs/reproducibility.md).
"""

from __future__ import annotations

import os
import platform
import sys
from importlib import metadata
from pathlib import Path

from mnist_dvc.digests import file_digest
from mnist_dvc.errors import ProjectError
from mnist_dvc.numerics import PORTABLE_ENVIRONMENT, Numerics
from mnist_dvc.processor import DECIDING_FLAGS, cpu
from mnist_dvc.records import read_provenance

VERSIONS_RECORDED = ("tensorflow", "keras", "numpy")


def gpus() -> list[str]:
    """The GPUs TensorFlow computes on, by name: none under `portable`, or before TensorFlow is
    loaded (this module does not load it)."""
    tf = sys.modules.get("tensorflow")
    if tf is None:
        return []
    return [
        tf.config.experimental.get_device_details(device).get("device_name", device.name)
        for device in tf.config.list_physical_devices("GPU")
    ]


def provenance(mode: Numerics, precision: str = "float32") -> dict:
    """Where and how a model is computed: the CPU, the numerics and what they set, the training
    precision, the thread counts and the library versions, as the process that called
    `configure` runs."""
    cores = os.cpu_count()
    return {
        "numerics": mode,
        "precision": precision,
        "cpu": cpu(),
        "gpus": gpus(),
        "environment": {name: os.environ.get(name) for name in PORTABLE_ENVIRONMENT},
        # TensorFlow's default for both is the number of cores
        "threads": {
            "cores": cores,
            "intra_op": _threads("TF_NUM_INTRAOP_THREADS", cores),
            "inter_op": _threads("TF_NUM_INTEROP_THREADS", cores),
        },
        "versions": {
            "python": platform.python_version(),
            **{name: metadata.version(name) for name in VERSIONS_RECORDED},
        },
    }


def _threads(name: str, cores: int | None) -> int | None:
    """The threads TensorFlow starts for `name` (checked by numerics.check_threads): 0, empty
    or unset is one per core."""
    return int(os.environ.get(name, "").strip() or 0) or cores


def provenance_of(weights: Path, mode: Numerics, precision: str, previous: Path) -> dict:
    """The provenance of the freshly written `weights`, with their md5. If `previous` (the
    provenance in place) records these very bytes, it is kept as it is: it names the machine
    that first made them, and a rerun elsewhere that reproduced them changes no output."""
    md5 = file_digest(weights)
    try:
        recorded = read_provenance(previous)
    except ProjectError:  # not a provenance: replaced by the new one
        recorded = None
    if recorded is not None and recorded.get("model_h5_md5") == md5:
        return recorded
    return {"model_h5_md5": md5, **provenance(mode, precision)}


def describe(made: dict) -> str:
    """A provenance in one line: numerics (and a precision other than float32), CPU, threads,
    versions."""
    cpu, threads, versions = made.get("cpu", {}), made.get("threads", {}), made.get("versions", {})
    precision = made.get("precision", "float32")  # recorded since train.precision: auto
    numerics = (
        made.get("numerics") if precision == "float32" else f"{made.get('numerics')}, {precision}"
    )
    return (
        f"numerics {numerics}, {cpu.get('model')} ({cpu.get('machine')}: "
        f"{' '.join(cpu.get('flags', [])) or 'none of ' + ' '.join(DECIDING_FLAGS)}), "
        f"{threads.get('intra_op')} intra-op threads on {threads.get('cores')} cores, "
        + "".join(f"GPU {name}, " for name in made.get("gpus", []))
        + ", ".join(f"{name} {version}" for name, version in versions.items())
    )
