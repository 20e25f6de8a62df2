"""How TensorFlow computes: the one place that chooses, and the record of where a model was made.

params.yaml's `numerics` chooses:
- `portable` (the default): every sum of a training or scoring step in one order fixed by this
  project's code (mnist_dvc/portable/: the contractions in compiled kernels, the rest exactly
  rounded operations), so that every x86-64 CPU with AVX2 and FMA computes the same bytes, at
  any thread count. TensorFlow's own kernels would not: their matrix products cut their sums
  by the CPU's cache sizes, its ISA and the thread count, and its softmax and some gradients
  use approximate reciprocals whose bits differ between CPU vendors (docs/reproducibility.md).
  The GPU is hidden: its kernels are another computation.
- `native`: TensorFlow's own kernels, chosen by CPUID, and the GPUs the caller's
  CUDA_VISIBLE_DEVICES allows (all, unset): other bytes on other CPUs.

Both use the intra-op threads the caller's environment asks for (TF_NUM_INTRAOP_THREADS;
TensorFlow's default is every core).

`train.precision` is chosen here too (`training_precision`): `auto` trains in float32 under
`portable`, and under `native` in mixed_bfloat16 where the CPU has bfloat16 instructions
(AVX512_BF16 or AMX), 1.63-1.82x float32's speed there. Elsewhere TensorFlow emulates bfloat16 at
about 0.13x float32's speed, so `mixed_bfloat16` is refused where it would be emulated.

TensorFlow reads these settings when it loads, so `configure` runs before it is imported
(mnist_dvc/stage.py does this for the stages). Only the standard library is used here.
"""

from __future__ import annotations

import json
import os
import platform
import sys
from importlib import metadata
from pathlib import Path
from typing import Literal

from mnist_dvc.digests import file_digest
from mnist_dvc.errors import ProjectError, StageError
from mnist_dvc.files import read_text_limited

Numerics = Literal["portable", "native"]
Precision = Literal["auto", "float32", "mixed_bfloat16"]

# What `portable` sets in the environment before TensorFlow loads. The arithmetic itself is in
# mnist_dvc/portable/; these keep TensorFlow's CPU-specific paths out of the rest of the step.
PORTABLE_ENVIRONMENT = {
    "TF_ENABLE_ONEDNN_OPTS": "0",  # TensorFlow's own kernels for pooling and the like, not oneDNN's
    "CUDA_VISIBLE_DEVICES": "",  # no GPU: its kernels are another computation
}
# What `native` leaves as the caller set it: which GPUs TensorFlow may use.
CALLERS_CHOICE = ("CUDA_VISIBLE_DEVICES",)
# CPU features that decide TensorFlow's kernels (/proc/cpuinfo's names).
DECIDING_FLAGS = (
    "avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_tile", "amx_bf16"
)  # fmt: skip
# The flags of a CPU that computes bfloat16 in hardware.
BFLOAT16_FLAGS = ("avx512_bf16", "amx_bf16")
VERSIONS_RECORDED = ("tensorflow", "keras", "numpy")


class NumericsError(ProjectError):
    """The numerics cannot be chosen any more: TensorFlow was imported first."""


class PrecisionError(StageError):
    """`train.precision` asks for bfloat16 where this CPU or the numerics cannot compute it."""


def configure(mode: Numerics) -> None:
    """Choose TensorFlow's kernels for `mode`; must run before TensorFlow is imported."""
    if "tensorflow" in sys.modules:
        raise NumericsError("TensorFlow was imported before the numerics were chosen")
    for name, value in PORTABLE_ENVIRONMENT.items():
        if mode == "portable":
            os.environ[name] = value
        elif name not in CALLERS_CHOICE:  # native: TensorFlow's choice, whatever the shell set
            os.environ.pop(name, None)


def cpu() -> dict:
    """The processor as TensorFlow sees it: architecture, model name, the deciding flags."""
    model, flags = platform.processor() or "unknown", set()
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                key, _, value = line.partition(":")
                if key.strip() == "model name":
                    model = value.strip()
                elif key.strip() == "flags":
                    flags = set(value.split())
                    break
    except OSError:  # not Linux: the model name from platform is what there is
        pass
    return {
        "machine": platform.machine(),
        "model": model,
        "flags": [flag for flag in DECIDING_FLAGS if flag in flags],
    }


def training_precision(
    requested: Precision, mode: Numerics, flags: list[str], gpus: list[str]
) -> str:
    """The Keras dtype policy `train` computes in, for `train.precision` under `mode` on a CPU
    with `flags` (cpu()["flags"]) and the GPUs TensorFlow computes on (gpus()); raise
    PrecisionError where bfloat16 would be emulated. On a GPU, `auto` is float32: whether the
    GPU's bfloat16 is faster for this model has not been measured."""
    hardware = [flag for flag in BFLOAT16_FLAGS if flag in flags]
    if requested == "auto":
        return "mixed_bfloat16" if mode == "native" and hardware and not gpus else "float32"
    if requested == "mixed_bfloat16":
        if mode != "native":
            fix = "set numerics: native, or" if hardware else "this CPU has no AVX512_BF16 or AMX:"
            raise PrecisionError(
                "params.yaml: train.precision: mixed_bfloat16 needs `numerics: native` "
                "(portable computes in float32 only, in its own fixed-order kernels); "
                f"{fix} use train.precision: float32 or auto"
            )
        if not hardware and not gpus:
            raise PrecisionError(
                "params.yaml: train.precision: mixed_bfloat16 needs a CPU with AVX512_BF16 or "
                f"AMX, and this one ({cpu()['model']}) has neither: TensorFlow would emulate "
                "bfloat16 at about 0.13x float32's speed; use float32 or auto"
            )
    return requested


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
            "intra_op": int(os.environ.get("TF_NUM_INTRAOP_THREADS") or cores),
            "inter_op": int(os.environ.get("TF_NUM_INTEROP_THREADS") or cores),
        },
        "versions": {
            "python": platform.python_version(),
            **{name: metadata.version(name) for name in VERSIONS_RECORDED},
        },
    }


def provenance_of(weights: Path, mode: Numerics, precision: str, previous: Path) -> dict:
    """The provenance of the freshly written `weights`, with their md5. If `previous` (the
    provenance in place) records these very bytes, it is kept as it is: it names the machine
    that first made them, and a rerun elsewhere that reproduced them changes no output."""
    md5 = file_digest(weights)
    recorded = read_provenance(previous)
    if recorded is not None and recorded.get("model_h5_md5") == md5:
        return recorded
    return {"model_h5_md5": md5, **provenance(mode, precision)}


def read_provenance(path: Path) -> dict | None:
    """The provenance recorded at `path`, or None where there is none (or not a JSON object)."""
    try:
        made = json.loads(read_text_limited(path))
    except (OSError, ValueError, RecursionError):
        return None
    return made if isinstance(made, dict) else None


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
