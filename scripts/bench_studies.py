"""The benchmark's studies, as the driver (scripts/bench.py) runs them: each measurement a
worker (scripts/bench_workers.py) or a command in a fresh process, one at a time.

The speed study (the matmul peak, training throughput against the notebook, scaling, threads,
the profile of a step, the numerics study and everything but training), the numerics study
(portable against native), the seed study (12 epochs on all images, seeds fixed here) and
mixed precision. Each returns the dict that goes into benchmarks/bench.json.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_workers import QUICK, ROOT

from mnist_dvc.numerics import BFLOAT16_FLAGS
from mnist_dvc.processor import cpu

BFLOAT16_CPU = bool(set(BFLOAT16_FLAGS) & set(cpu()["flags"]))
WORKER = [sys.executable, str(Path(__file__).resolve().parent / "bench.py")]
SEEDS = (1, 2, 3)


def run(args: list[str], cwd: Path = ROOT, **env: str) -> dict:
    """Run a command to its end: wall seconds, peak resident memory (of that process, from the
    kernel's accounting at exit) and, for a worker, its BENCH result. Output goes to a log."""
    with tempfile.TemporaryFile("w+") as log:
        start = time.perf_counter()
        proc = subprocess.Popen(
            args,
            cwd=cwd,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONPATH": str(ROOT), **env},
        )
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - start
        log.seek(0)
        output = log.read()
    if proc.returncode != 0:
        sys.exit(f"bench: {' '.join(map(str, args))} failed ({proc.returncode}):\n{output[-3000:]}")
    result = {"wall_s": wall, "peak_rss_mb": usage.ru_maxrss / 1024}
    for line in output.splitlines():
        if line.startswith("BENCH "):
            result.update(json.loads(line[6:]))
    return result


def worker(kind: str, *options: str, **env: str) -> dict:
    print(f"bench: {kind} {' '.join(options)}", flush=True)
    return run([*WORKER, "--worker", kind, *options], **env)


def training_run(
    kind: str,
    seed: int,
    train_images: int,
    epochs: int,
    precision="float32",
    numerics_mode: str | None = None,
    settings: dict[str, str] | None = None,
):
    """One training in a fresh process: the project's train stage code (under params.yaml's
    numerics unless told, with `settings` set in the environment after them), or the notebook
    (under TensorFlow's own kernels unless told)."""
    common = ["--seed", str(seed), "--train-images", str(train_images), "--epochs", str(epochs)]
    if numerics_mode:
        common += ["--numerics", numerics_mode]
    if kind == "project":
        overrides = [f"--tf-setting={name}={value}" for name, value in (settings or {}).items()]
        return worker("train", *common, "--precision", precision, *overrides)
    assert not settings, "settings are for the project's runs"
    print(f"bench: notebook on {kind} {' '.join(common)}", flush=True)
    keras = "tf_keras" if kind == "tf-keras" else "keras3"
    return run(
        [sys.executable, str(ROOT / "benchmarks" / "notebook.py"), "--keras", keras, *common]
    )


def steady(result: dict, train_images: int) -> dict:
    first, *rest = result["epoch_s"]
    rate = train_images / statistics.mean(rest) if rest else None
    return {
        "first_epoch_s": first,
        "steady_epoch_s": statistics.mean(rest) if rest else None,
        "images_per_s": rate,
        "peak_rss_mb": result["peak_rss_mb"],
        "accuracy": result["accuracy"],
        "loss": result["loss"],
    }


def throughput(peak_fp32: float, flops: dict) -> dict:
    """images/s: training images per second of epoch wall time, the epoch's validation on the
    10000 test images included (as the notebook and the train stage run); GFLOP/s counts the
    validation's forward passes too."""
    n, epochs = QUICK["train_images"], QUICK["epochs"]
    runs = {
        "project train stage": steady(training_run("project", 42, n, epochs), n),
        "Keras 3 literal port": steady(training_run("keras3", 42, n, epochs), n),
        "notebook on tf-keras": steady(training_run("tf-keras", 42, n, epochs), n),
    }
    if BFLOAT16_CPU:  # elsewhere `train` refuses it: emulated, it ran at 0.13x float32
        for precision in ("float32", "mixed_bfloat16"):
            run = training_run("project", 42, n, epochs, precision, numerics_mode="native")
            runs[f"project, native, {precision}"] = steady(run, n)
    epoch_flops = n * flops["train"] + 10000 * flops["forward"]
    for row in runs.values():
        row["gflop_s"] = epoch_flops / row["steady_epoch_s"] / 1e9
        row["of_fp32_peak"] = row["gflop_s"] / peak_fp32
    return runs


def stage_timings() -> dict:
    """Everything but training, in a clone of HEAD whose outputs come from this checkout's DVC
    cache: each stage as DVC runs it, `dvc repro` and `dvc status` with nothing to do, and
    `dvc pull` of the model from a local remote into a clone with an empty cache."""
    timings: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="mnist-bench-") as tmp:
        tmp = Path(tmp)
        clone = tmp / "clone"
        subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
        dvc = [sys.executable, "-m", "dvc"]
        cache = subprocess.run(
            [*dvc, "cache", "dir"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        subprocess.run([*dvc, "cache", "dir", "--local", str(cache)], cwd=clone, check=True)
        subprocess.run([*dvc, "checkout", "-q"], cwd=clone, check=True)
        # Nothing to do first, while the outputs are the committed ones.
        timings["dvc status"] = run([*dvc, "status"], clone)
        if subprocess.run([*dvc, "status", "-q"], cwd=clone).returncode == 0:
            timings["dvc repro (nothing to do)"] = run([*dvc, "repro"], clone)
        else:  # it would train: measured only where HEAD's dvc.lock matches its code
            timings["dvc repro (nothing to do)"] = {"skipped": "HEAD's pipeline is not up to date"}
        python = [sys.executable, "-m"]
        timings["fetch (download cache)"] = run([*python, "stages.fetch"], clone)
        timings["fetch (no download cache)"] = run(
            [*python, "stages.fetch"], clone, MNIST_CACHE_DIR=str(tmp / "empty-cache")
        )
        for stage in ("preprocess", "evaluate", "report", "export"):
            timings[stage] = run([*python, "stages", stage], clone)
        remote = tmp / "remote"
        subprocess.run(
            [*dvc, "remote", "add", "-f", "--local", "bench", str(remote)], cwd=clone, check=True
        )
        model = ["models/model.json", "models/model.h5"]
        subprocess.run([*dvc, "push", "-q", "-r", "bench", *model], cwd=clone, check=True)
        puller = tmp / "puller"
        subprocess.run(["git", "clone", "-q", str(ROOT), str(puller)], check=True)
        subprocess.run(
            [*dvc, "remote", "add", "-f", "--local", "bench", str(remote)], cwd=puller, check=True
        )
        timings["dvc pull (model, local remote)"] = run(
            [*dvc, "pull", "-r", "bench", *model], puller
        )
    return timings


def seed_study() -> dict:
    """The project's train stage and the notebook on tf-keras, 12 epochs on all images, for
    each seed, taking turns so that a change in the machine's load falls on both alike."""
    runs: dict[str, list[dict]] = {"project": [], "tf-keras": []}
    for seed in SEEDS:
        for kind, done in runs.items():
            done.append(training_run(kind, seed, 60000, 12))
            print(
                f"bench: {kind} seed {seed}: accuracy {done[-1]['accuracy']:.4f}, "
                f"loss {done[-1]['loss']:.4f}",
                flush=True,
            )
    return {kind: summary(SEEDS, done) for kind, done in runs.items()}


def mixed_precision_study() -> dict | None:
    """12 epochs of `numerics: native` + mixed_bfloat16 where the CPU computes bfloat16."""
    if not BFLOAT16_CPU:
        print("bench: no 12-epoch mixed_bfloat16 run: this CPU has no AVX512_BF16 or AMX")
        return None
    run = training_run("project", 42, 60000, 12, "mixed_bfloat16", numerics_mode="native")
    return summary((42,), [run])


def summary(seeds: tuple[int, ...], runs: list[dict]) -> dict:
    acc, loss = [r["accuracy"] for r in runs], [r["loss"] for r in runs]
    return {
        "seeds": list(seeds),
        "accuracy": acc,
        "loss": loss,
        "accuracy_mean": statistics.mean(acc),
        "accuracy_min": min(acc),
        "accuracy_max": max(acc),
        "loss_mean": statistics.mean(loss),
        "loss_min": min(loss),
        "loss_max": max(loss),
        "steady_epoch_s": statistics.mean(s for r in runs for s in r["epoch_s"][1:]),
    }


# The portable numerics' cost: the project under each numerics; the project as `portable` was
# before the fixed-order kernels (TensorFlow's kernels with oneDNN's sgemm capped at AVX2 and 2
# threads: other bytes on other CPUs, its own bar not to fall below); and the notebook on
# tf-keras with TensorFlow's default kernels, the baseline of every ratio.
BEFORE = {"TF_ENABLE_ONEDNN_OPTS": "0", "ONEDNN_MAX_CPU_ISA": "AVX2", "TF_NUM_INTRAOP_THREADS": "2"}
NUMERICS_RUNS = {
    "project, portable": ("project", "portable", {}),
    "project, portable before (TF kernels, AVX2, 2 threads)": ("project", "native", BEFORE),
    "project, native": ("project", "native", {}),
    "notebook on tf-keras, native": ("tf-keras", "native", {}),
}
NUMERICS_ROUNDS = 2


def numerics_study() -> dict:
    """Training throughput under each numerics, in turns over NUMERICS_ROUNDS rounds so that a
    change in the machine's load falls on every kind alike; the median round of each."""
    n, epochs = QUICK["train_images"], QUICK["epochs"]
    rounds: dict[str, list[dict]] = {name: [] for name in NUMERICS_RUNS}
    for _ in range(NUMERICS_ROUNDS):
        for name, (kind, mode, settings) in NUMERICS_RUNS.items():
            run = training_run(kind, 42, n, epochs, numerics_mode=mode, settings=settings)
            rounds[name].append(steady(run, n))
    base = statistics.median(r["images_per_s"] for r in rounds["notebook on tf-keras, native"])
    study = {}
    for name, done in rounds.items():
        rate = statistics.median(r["images_per_s"] for r in done)
        study[name] = {
            "images_per_s": rate,
            "each_round": [r["images_per_s"] for r in done],
            "vs_notebook_native": rate / base,
            "accuracy": done[0]["accuracy"],
        }
    return study


def speed_study() -> dict:
    results: dict = {}
    matmul = worker("matmul")
    results["flops_per_image"] = matmul["flops_per_image"]
    results["matmul_gflop_s"] = {k: matmul[k] for k in ("float32", "bfloat16")}
    results["throughput"] = throughput(matmul["float32"], matmul["flops_per_image"])
    results["scaling"] = worker("scaling")
    results["intra_op_threads"] = {
        threads: worker(
            "threads",
            "--train-images",
            "7500",
            TF_NUM_INTRAOP_THREADS=str(threads),
            OMP_NUM_THREADS=str(threads),
        )["images_per_s"]
        for threads in sorted({1, 2, os.cpu_count() or 1})
    }
    results["profile"] = worker("profile", "--train-images", "3840")
    results["numerics"] = numerics_study()
    results["stages"] = stage_timings()
    # The train stage's 12 epochs, each one epoch on all images and a validation pass.
    epoch_60000 = results["scaling"]["epoch_s"]["60000"] + results["scaling"]["validation_s"]
    other = sum(
        row["wall_s"]
        for name, row in results["stages"].items()
        if name.split(" ")[0] in ("fetch", "preprocess", "evaluate", "report", "export")
        and name != "fetch (no download cache)"
    )
    pipeline = other + 12 * epoch_60000
    results["share_of_pipeline"] = {
        "other_s": other,
        "epoch_60000_s": epoch_60000,
        "pipeline_s": pipeline,
        "share": other / pipeline,
    }
    return results
