"""How TensorFlow computes: the one place that chooses (where a model was made is recorded by
mnist_dvc/provenance.py).

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
TensorFlow's default is every core), once `check_threads` has found it a count TensorFlow can
start: TensorFlow itself aborts on a negative one (SIGABRT) and crashes on a huge one (SIGSEGV).

`train.precision` is chosen here too (`training_precision`): `auto` trains in float32 under
`portable`, and under `native` in mixed_bfloat16 where the CPU has bfloat16 instructions
(AVX512_BF16 or AMX), 1.63-1.82x float32's speed there. Elsewhere TensorFlow emulates bfloat16 at
about 0.13x float32's speed, so `mixed_bfloat16` is refused where it would be emulated.

TensorFlow reads these settings when it loads, so `configure` runs before it is imported: for the
stages that compute with TensorFlow, their start-up in stages/__main__.py does it.
"""

from __future__ import annotations

import os
import sys

from mnist_dvc.errors import ProjectError, StageError
from mnist_dvc.params import Numerics, Precision, load_params
from mnist_dvc.quoting import quote

# What `portable` sets in the environment before TensorFlow loads. The arithmetic itself is in
# mnist_dvc/portable/; these keep TensorFlow's CPU-specific paths out of the rest of the step.
PORTABLE_ENVIRONMENT = {
    "TF_ENABLE_ONEDNN_OPTS": "0",  # TensorFlow's own kernels for pooling and the like, not oneDNN's
    "CUDA_VISIBLE_DEVICES": "",  # no GPU: its kernels are another computation
}
# What `native` leaves as the caller set it: which GPUs TensorFlow may use.
CALLERS_CHOICE = ("CUDA_VISIBLE_DEVICES",)
# The thread counts TensorFlow reads from the environment when it loads, and the most either
# may ask for: TensorFlow starts them all at once, and at 10**9 it crashes.
THREAD_VARIABLES = ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS")
MAX_THREADS = 1024
# The flags of a CPU that computes bfloat16 in hardware.
BFLOAT16_FLAGS = ("avx512_bf16", "amx_bf16")


class NumericsError(ProjectError):
    """The numerics cannot be chosen any more: TensorFlow was imported first."""


class ThreadsError(ProjectError):
    """TF_NUM_INTRAOP_THREADS or TF_NUM_INTEROP_THREADS is not a count TensorFlow can start."""


def check_threads() -> None:
    """Raise ThreadsError unless each of THREAD_VARIABLES is unset, empty, or a whole number from
    0 (TensorFlow's default: one per core) to MAX_THREADS; what every command that loads
    TensorFlow runs before it does (TensorFlow would abort at -1, crash at 10**9, and ignore
    'abc', which provenance.py would then fail to record after a whole training)."""
    for name in THREAD_VARIABLES:
        text = os.environ.get(name, "").strip()
        if text and not (text.isascii() and text.isdigit() and int(text[:99]) <= MAX_THREADS):
            raise ThreadsError(
                f"{name} is {quote(os.environ[name])}: set it to a whole number of threads from "
                f"1 to {MAX_THREADS}, or to 0 or unset it for one per core"
            )


class PrecisionError(StageError):
    """`train.precision` asks for bfloat16 where this CPU or the numerics cannot compute it."""


def configure(mode: Numerics) -> None:
    """Choose TensorFlow's kernels for `mode`; must run before TensorFlow is imported."""
    if "tensorflow" in sys.modules:
        raise NumericsError("TensorFlow was imported before the numerics were chosen")
    check_threads()
    for name, value in PORTABLE_ENVIRONMENT.items():
        if mode == "portable":
            os.environ[name] = value
        elif name not in CALLERS_CHOICE:  # native: TensorFlow's choice, whatever the shell set
            os.environ.pop(name, None)


def training_precision(
    requested: Precision, mode: Numerics, processor: dict, gpus: list[str]
) -> str:
    """The Keras dtype policy `train` computes in, for `train.precision` under `mode` on the CPU
    `processor` describes (provenance.cpu(): its model and flags) with the GPUs TensorFlow
    computes on (provenance.gpus()); raise PrecisionError where bfloat16 would be emulated. On a
    GPU, `auto` is float32: whether the GPU's bfloat16 is faster for this model has not been
    measured."""
    hardware = [flag for flag in BFLOAT16_FLAGS if flag in processor["flags"]]
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
                f"AMX, and this one ({processor['model']}) has neither: TensorFlow would emulate "
                "bfloat16 at about 0.13x float32's speed; use float32 or auto"
            )
    return requested


def configure_from_params() -> None:
    """`configure` with the numerics params.yaml chooses: what a stage that computes with
    TensorFlow runs before its module loads (stages/__main__.py)."""
    configure(load_params().numerics)
