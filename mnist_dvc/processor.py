"""The processor as TensorFlow sees it: its model and the CPU flags that decide TensorFlow's
kernels (and whether the portable kernels can run). Only the standard library."""

from __future__ import annotations

import platform

# CPU features that decide TensorFlow's kernels (/proc/cpuinfo's names).
DECIDING_FLAGS = (
    "avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_tile", "amx_bf16"
)  # fmt: skip


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
