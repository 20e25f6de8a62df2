"""`make numerics-matrix`: does the portable training computation give the same bits on this CPU
at every thread count, and under other CPU models?

    python scripts/numerics_matrix.py [--threads 1,2,4,8] [--emulate MODEL,...]
                                      [--emulated-threads 2] [--images 1024] [--out FILE]

Each column is one run of `python -m mnist_dvc.portable.fingerprint` (the fingerprints of every
layer's forward pass and gradients, the loss, an optimizer update, a `fit` step and a short
`fit`), in a fresh process: natively with each thread count, then under qemu's user-mode
emulator (Debian's qemu-user) for each CPU model given, which runs the same TensorFlow and the
same compiled kernels under that model's CPUID, cache sizes included. An emulated column takes
10-30 minutes here, most of it TensorFlow's import; `--emulate ''` skips them. Prints the table,
fingerprint by fingerprint, and the first fingerprint on which the columns differ; writes the
columns and this machine's CPU to --out (benchmarks/numerics_matrix.json). Needs the prepared
data (`dvc repro preprocess`).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mnist_dvc.processor import cpu  # noqa: E402

EMULATED = ("Haswell", "Cascadelake-Server", "EPYC-Rome", "EPYC-Milan")
TIMEOUT_S = {"native": 600, "emulated": 5400}
OUT = ROOT / "benchmarks" / "numerics_matrix.json"


def caches() -> dict[str, str]:
    """This CPU's cache sizes per core, from the kernel (L1d 48K, L2 2048K, ...)."""
    found = {}
    for index in sorted(Path("/sys/devices/system/cpu/cpu0/cache").glob("index*")):
        try:
            level, kind, size = (
                (index / name).read_text().strip() for name in ("level", "type", "size")
            )
        except OSError:
            continue
        if kind != "Instruction":
            found[f"L{level}{'d' if kind == 'Data' else ''}"] = size
    return found


def fingerprint(prefix: list[str], threads: int, images: int, timeout: int) -> dict[str, str]:
    command = [*prefix, sys.executable, "-m", "mnist_dvc.portable.fingerprint"]
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "TF_NUM_INTRAOP_THREADS": str(threads),
        "TF_CPP_MIN_LOG_LEVEL": "3",
    }
    try:
        done = subprocess.run(
            [*command, "--images", str(images)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        sys.exit(f"numerics-matrix: {' '.join(command)} timed out after {timeout} s")
    for line in done.stdout.splitlines():
        if line.startswith("FINGERPRINTS "):
            return json.loads(line.removeprefix("FINGERPRINTS "))
    reason = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
    sys.exit(f"numerics-matrix: {' '.join(command)} failed: {reason}")


def first_difference(columns: dict[str, dict[str, str]]) -> str | None:
    names = next(iter(columns.values()))
    for name in names:
        if len({column.get(name) for column in columns.values()}) > 1:
            return name
    return None


def table(columns: dict[str, dict[str, str]]) -> str:
    heads = list(columns)
    lines = [
        "| fingerprint | " + " | ".join(heads) + " | same |",
        "| --- | " + " | ".join("---" for _ in heads) + " | --- |",
    ]
    for name in next(iter(columns.values())):
        cells = [columns[head].get(name, "-")[:8] for head in heads]
        same = "yes" if len(set(cells)) == 1 else "NO"
        lines.append(f"| {name} | {' | '.join(cells)} | {same} |")
    return "\n".join(lines)


def main() -> None:
    parse = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parse.add_argument("--threads", default="1,2,4,8", help="native thread counts")
    parse.add_argument("--emulate", default=",".join(EMULATED), help="qemu CPU models")
    parse.add_argument("--emulated-threads", type=int, default=2)
    parse.add_argument("--images", type=int, default=1024, help="for the short training run")
    parse.add_argument("--out", type=Path, default=OUT)
    parse.add_argument(
        "--keep", action="store_true", help="keep --out's other columns (from an earlier run)"
    )
    args = parse.parse_args()
    models = [model for model in args.emulate.split(",") if model]
    if models and shutil.which("qemu-x86_64") is None:
        sys.exit("numerics-matrix: qemu-x86_64 not found: apt-get install qemu-user")
    columns: dict[str, dict[str, str]] = {}
    if args.keep and args.out.is_file():
        columns.update(json.loads(args.out.read_text())["columns"])
    for threads in (int(t) for t in args.threads.split(",") if t):
        print(f"numerics-matrix: native, {threads} threads", flush=True)
        columns[f"native {threads}t"] = fingerprint([], threads, args.images, TIMEOUT_S["native"])
    for model in models:
        print(f"numerics-matrix: emulated {model}, {args.emulated_threads} threads", flush=True)
        prefix = ["qemu-x86_64", "-cpu", model]
        columns[f"{model} {args.emulated_threads}t"] = fingerprint(
            prefix, args.emulated_threads, args.images, TIMEOUT_S["emulated"]
        )
    machine = {**cpu(), "caches": caches(), "cores": os.cpu_count()}
    differs = first_difference(columns)
    found = {"machine": machine, "images": args.images, "columns": columns}
    args.out.write_text(json.dumps({**found, "first_difference": differs}, indent=2) + "\n")
    flags, sizes = " ".join(machine["flags"]), machine["caches"]
    print(f"this machine: {machine['model']}, {flags}, caches {sizes}")
    print(table(columns))
    if differs:
        sys.exit(f"numerics-matrix: the columns differ first at {differs}")
    print(f"numerics-matrix: all {len(columns)} columns agree on every fingerprint")


if __name__ == "__main__":
    main()
