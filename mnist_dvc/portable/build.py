"""kernels.cc compiled against the installed TensorFlow, once per machine: the shared library
`numerics: portable` computes with.

The library is built on first use into `~/.cache/mnist-dvc/kernels` (under `$XDG_CACHE_HOME`
where set), named by a digest of the source, the compiler flags and TensorFlow's version, so
that every checkout, test repository and sweep task on the machine shares one build (about
10 s), and an edit to the source or an upgrade builds a new one. Builds in parallel processes
are safe: each writes a file of its own and renames it into place.

What the library computes does not depend on the compiler: the arithmetic is written with
intrinsics, in an order the source fixes, and `-ffp-contract=off` forbids the compiler to fuse
a multiply and an add on its own.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import tempfile
from pathlib import Path
from types import ModuleType

from mnist_dvc.commands import run
from mnist_dvc.errors import StageError
from mnist_dvc.paths import user_cache
from mnist_dvc.processor import cpu

SOURCE = Path(__file__).with_name("kernels.cc")
FLAGS = ("-shared", "-fPIC", "-O2", "-ffp-contract=off", "-w")
BUILD_TIMEOUT_S = 300  # about 10 s here


class KernelBuildError(StageError):
    """The kernels of `numerics: portable` cannot be compiled or loaded on this machine."""


def cache_dir() -> Path:
    """Where built libraries are kept."""
    return user_cache("kernels")


def load() -> ModuleType:
    """The compiled ops as a Python module (tf.load_op_library), built first where needed."""
    import tensorflow as tf

    found = cpu()
    if not {"avx2", "fma"} <= set(found["flags"]):
        raise KernelBuildError(
            f"numerics: portable computes with AVX2 and FMA instructions, and this CPU "
            f"({found['model']}, {found['machine']}) lacks them: set numerics: native"
        )

    compiler = os.environ.get("CXX") or "g++"
    command = [compiler, *FLAGS, *tf.sysconfig.get_compile_flags()]
    link = tf.sysconfig.get_link_flags()
    key = hashlib.sha256(
        "\0".join([SOURCE.read_text(), tf.__version__, *command[1:], *link]).encode()
    ).hexdigest()[:16]
    library = cache_dir() / f"kernels-{key}.so"
    if not library.is_file():
        _build(command, link, library)
    try:
        return tf.load_op_library(str(library))
    except Exception as error:  # tf.errors.NotFoundError: a library of another TensorFlow
        raise KernelBuildError(f"{library}: cannot be loaded ({error}); delete it") from None


def _build(command: list[str], link: list[str], library: Path) -> None:
    if shutil.which(command[0]) is None:
        raise KernelBuildError(
            f"numerics: portable compiles {SOURCE.name} with a C++ compiler, and {command[0]} "
            "is not installed: install g++ (Debian: apt-get install g++), or set numerics: native"
        )
    library.parent.mkdir(parents=True, exist_ok=True)
    fd, partial = tempfile.mkstemp(dir=library.parent, prefix=f".{library.name}.", suffix=".tmp")
    os.close(fd)
    try:
        print(f"compiling {SOURCE.name} into {library}", file=sys.stderr)
        run(
            [*command, str(SOURCE), "-o", partial, *link],
            error=KernelBuildError,
            name=f"compiling {SOURCE}",
            timeout=BUILD_TIMEOUT_S,
        )
        os.replace(partial, library)
    finally:
        Path(partial).unlink(missing_ok=True)
