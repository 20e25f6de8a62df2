"""`make bench`: how fast this repository trains against the notebook run unported and against
the machine's limit, and how accurate it is against the notebook across seeds.

    python scripts/bench.py [--seeds | --full] [--out benchmarks/bench.json]

Every figure comes from this one run, side by side, each measurement in a fresh process (no
TensorFlow state carried from one to the next), one at a time: on a 2-core machine two at once
would measure each other. The quick run (about 15 minutes here) measures speed on a subset.
`--seeds` runs only the fidelity study and adds it to --out: the full default run (12 epochs,
60000 images) with seeds 1, 2 and 3 for the project and for the notebook on tf-keras, taking
turns (about 100 minutes here). `--full` runs both, and 12 epochs of mixed_bfloat16 (about
2.5 hours more on a CPU without bf16 instructions). The seeds are fixed here, before any
result: none is chosen by its score. Needs the prepared data (`dvc repro preprocess`) and, for
the notebook, tf-keras (`make setup-bench`). Prints a table and writes the numbers to --out.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
WORKER = [sys.executable, str(Path(__file__).resolve())]
QUICK = {"train_images": 12000, "epochs": 3}  # throughput: first epoch apart, then 2 steady
SCALING = (7500, 15000, 30000, 60000)  # 1/8, 1/4, 1/2 and all of the training images
SEEDS = (1, 2, 3)
NOTEBOOK = {"accuracy": 0.9926, "loss": 0.0236}  # what the notebook printed
MATMUL_N = 2048
PREPARED = ROOT / "data" / "prepared"


# Workers: each runs in its own process and prints one line `BENCH {json}`.


def count_flops(model) -> dict[str, float]:
    """Floating-point operations per image, counted from the model's layers: 2 per
    multiply-add of each convolution and dense layer (pooling, dropout and activations are a
    rounding error). Backward costs twice the forward (gradients for the inputs and for the
    weights), except that the first layer needs no gradient for its input."""
    per_layer = []
    for layer in model.layers:
        if hasattr(layer, "kernel"):  # Conv2D and Dense: output positions x weights per output
            shape = layer.output.shape[1:]
            channels_first = getattr(layer, "data_format", None) == "channels_first"
            positions = int(np.prod(shape[1:] if channels_first else shape[:-1]))
            per_layer.append(2 * positions * int(np.prod(layer.kernel.shape)))
    forward = sum(per_layer)
    return {"forward": forward, "train": 3 * forward - per_layer[0]}


def worker_matmul(data: Path) -> dict:
    """The matrix-multiply peak in GFLOP/s for each precision, and the FLOPs per image of the
    model params.yaml selects."""
    import tensorflow as tf

    from mnist_dvc import prepared
    from mnist_dvc.architectures import build_model

    x = prepared.load_split(data, "train", count=1)[0]
    result: dict = {
        "flops_per_image": count_flops(
            build_model(x.shape[1:], quick_params(1, 1, 42, "float32").model)
        )
    }
    for dtype in ("float32", "bfloat16"):
        a = tf.random.uniform((MATMUL_N, MATMUL_N), dtype=tf.float32)
        a = tf.cast(a, dtype)
        matmul = tf.function(lambda x: tf.matmul(x, x))
        matmul(a).numpy()  # trace and warm up
        best = float("inf")
        for _ in range(5):
            start = time.perf_counter()
            for _ in range(5):
                out = matmul(a)
            out.numpy()
            best = min(best, (time.perf_counter() - start) / 5)
        result[dtype] = 2 * MATMUL_N**3 / best / 1e9
    return result


def quick_params(train_images: int, epochs: int, seed: int, precision: str):
    from mnist_dvc.params import load_params

    params = load_params(ROOT / "params.yaml").train
    return params.model_copy(
        update={
            "train_images": train_images,
            "epochs": epochs,
            "seed": seed,
            "precision": precision,
        }
    )


def worker_train(data: Path, train_images: int, epochs: int, seed: int, precision: str) -> dict:
    """The train stage's own code (stages/train.py), timed per epoch, then scored on the test
    set as the evaluate stage scores it."""
    import keras

    from benchmarks.notebook import epoch_timer
    from mnist_dvc import mnist, prepared
    from stages.train import train

    timer = epoch_timer(keras)
    p = quick_params(train_images, epochs, seed, precision)
    model = train(data, p, log_dir=None, callbacks=[timer])
    x_test, y_test = prepared.load_split(data, "test")
    model.compile(loss="categorical_crossentropy", metrics=["accuracy"])
    loss, accuracy = model.evaluate(
        x_test, keras.utils.to_categorical(y_test, mnist.NUM_CLASSES), batch_size=1000, verbose=0
    )
    return {"epoch_s": timer.seconds, "loss": float(loss), "accuracy": float(accuracy)}


def _compiled_model(data: Path, train_images: int):
    import keras

    from mnist_dvc import mnist, prepared
    from mnist_dvc.architectures import build_model
    from mnist_dvc.model import compile_model

    p = quick_params(train_images, 1, 42, "float32")
    keras.utils.set_random_seed(p.seed)
    x, y = prepared.load_split(data, "train", count=train_images)
    model = build_model(x.shape[1:], p.model)
    compile_model(model, p.optimizer)
    return model, x, keras.utils.to_categorical(y, mnist.NUM_CLASSES), p.batch_size


def worker_scaling(data: Path) -> dict:
    """Seconds for one epoch (no validation) on each training-set size, one model, traced once
    on a warm-up epoch first; and the seconds of one validation pass."""
    import keras

    from mnist_dvc import mnist, prepared

    model, x, y, batch = _compiled_model(data, max(SCALING))
    model.fit(x[:1280], y[:1280], batch_size=batch, epochs=1, verbose=0)
    seconds = {}
    for n in SCALING:
        start = time.perf_counter()
        model.fit(x[:n], y[:n], batch_size=batch, epochs=1, verbose=0)
        seconds[n] = time.perf_counter() - start
    # What each epoch of the train stage adds: a validation pass over the test set.
    x_test, y_test = prepared.load_split(data, "test")
    one_hot = keras.utils.to_categorical(y_test, mnist.NUM_CLASSES)
    model.evaluate(x_test[:1000], one_hot[:1000], batch_size=batch, verbose=0)
    start = time.perf_counter()
    model.evaluate(x_test, one_hot, batch_size=batch, verbose=0)
    return {"epoch_s": seconds, "validation_s": time.perf_counter() - start}


def worker_threads(data: Path, images: int) -> dict:
    """Images/s of one epoch (no validation) after a warm-up, with TF_NUM_INTRAOP_THREADS as
    the environment sets it."""
    model, x, y, batch = _compiled_model(data, images)
    model.fit(x[:1280], y[:1280], batch_size=batch, epochs=1, verbose=0)
    start = time.perf_counter()
    model.fit(x, y, batch_size=batch, epochs=1, verbose=0)
    return {"images_per_s": images / (time.perf_counter() - start)}


def worker_profile(data: Path, images: int) -> dict:
    """Where a training step's time goes, at the stage's batch size: each layer's forward pass,
    the backward pass, the optimizer's update and Keras's `fit` loop around them; and `fit`
    fed from NumPy arrays (what the stage does) against a tf.data pipeline."""
    import keras
    import tensorflow as tf

    model, x, y, batch = _compiled_model(data, images)
    xb, yb = tf.constant(x[:batch]), tf.constant(y[:batch])
    loss_fn, optimizer = keras.losses.get(model.loss), model.optimizer
    optimizer.build(model.trainable_variables)

    def best_ms(fn, repeats: int = 30) -> float:
        fn()  # trace
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            out = fn()
            tf.nest.map_structure(lambda t: t.numpy() if hasattr(t, "numpy") else t, out)
            times.append(time.perf_counter() - start)
        return 1000 * statistics.median(times)

    layer_ms = {}
    inputs = xb
    for layer in model.layers:
        call = tf.function(lambda t, layer=layer: layer(t, training=True))
        layer_ms[f"{layer.name} ({type(layer).__name__})"] = best_ms(
            lambda t=inputs, call=call: call(t)
        )
        inputs = call(inputs)

    @tf.function
    def forward():
        return loss_fn(yb, model(xb, training=True))

    @tf.function
    def forward_backward():
        with tf.GradientTape() as tape:
            loss = loss_fn(yb, model(xb, training=True))
        return tape.gradient(loss, model.trainable_variables)

    grads = forward_backward()

    @tf.function
    def update():
        optimizer.apply(grads, model.trainable_variables)
        return tf.constant(0)

    # A fit of k steps and one of 2k: the difference is k steps without fit's set-up cost.
    # The two feeds take turns, three rounds, median: this machine's noise is larger than
    # their difference in any one round.
    k = images // batch // 2

    def arrays(n):
        return x[:n], y[:n], batch

    def pipeline(n):
        dataset = tf.data.Dataset.from_tensor_slices((x[:n], y[:n]))
        return (dataset.batch(batch).prefetch(tf.data.AUTOTUNE),)

    def fit_s(make_input, steps: int) -> float:
        start = time.perf_counter()
        model.fit(*make_input(steps * batch), epochs=1, verbose=0)
        return time.perf_counter() - start

    first_fit_s = fit_s(arrays, 1)  # traces the train function
    fit_s(pipeline, 1)  # a dataset traces it again
    per_step: dict[str, list[float]] = {"numpy": [], "tf_data": []}
    for _ in range(3):
        for name, feed in (("numpy", arrays), ("tf_data", pipeline)):
            per_step[name].append(1000 * (fit_s(feed, 2 * k) - fit_s(feed, k)) / k)
    numpy_ms = statistics.median(per_step["numpy"])
    tf_data_ms = statistics.median(per_step["tf_data"])
    forward_ms = best_ms(forward)
    forward_backward_ms = best_ms(forward_backward)
    update_ms = best_ms(update)
    return {
        "batch": batch,
        "layer_forward_ms": layer_ms,
        "forward_ms": forward_ms,
        "backward_ms": forward_backward_ms - forward_ms,
        "optimizer_update_ms": update_ms,
        "fit_step_numpy_ms": numpy_ms,
        "fit_step_tf_data_ms": tf_data_ms,
        "fit_first_call_s": first_fit_s,
        "fit_loop_overhead_ms": numpy_ms - forward_backward_ms - update_ms,
    }


WORKERS = {
    "matmul": lambda a: worker_matmul(a.data),
    "train": lambda a: worker_train(a.data, a.train_images, a.epochs, a.seed, a.precision),
    "scaling": lambda a: worker_scaling(a.data),
    "threads": lambda a: worker_threads(a.data, a.train_images),
    "profile": lambda a: worker_profile(a.data, a.train_images),
}


# The driver


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
):
    """One training in a fresh process: the project's train stage code (under params.yaml's
    numerics unless told), or the notebook (under TensorFlow's own kernels unless told)."""
    common = ["--seed", str(seed), "--train-images", str(train_images), "--epochs", str(epochs)]
    if numerics_mode:
        common += ["--numerics", numerics_mode]
    if kind == "project":
        return worker("train", *common, "--precision", precision)
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
        "project, mixed_bfloat16": steady(
            training_run("project", 42, n, epochs, "mixed_bfloat16"), n
        ),
    }
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
            timings[stage] = run([*python, f"stages.{stage}"], clone)
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


def mixed_precision_study() -> dict:
    return summary((42,), [training_run("project", 42, 60000, 12, "mixed_bfloat16")])


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


# The portable numerics' cost: the project and the notebook on tf-keras, each under both.
NUMERICS_RUNS = {
    "project, portable": ("project", "portable"),
    "project, native": ("project", "native"),
    "notebook on tf-keras, native": ("tf-keras", "native"),
    "notebook on tf-keras, portable": ("tf-keras", "portable"),
}
NUMERICS_ROUNDS = 2


def numerics_study() -> dict:
    """Training throughput under each numerics, in turns over NUMERICS_ROUNDS rounds so that a
    change in the machine's load falls on every kind alike; the median round of each."""
    n, epochs = QUICK["train_images"], QUICK["epochs"]
    rounds: dict[str, list[dict]] = {name: [] for name in NUMERICS_RUNS}
    for _ in range(NUMERICS_ROUNDS):
        for name, (kind, mode) in NUMERICS_RUNS.items():
            rounds[name].append(steady(training_run(kind, 42, n, epochs, numerics_mode=mode), n))
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
            "--numerics",
            "native",  # portable pins the threads
            TF_NUM_INTRAOP_THREADS=str(threads),
            OMP_NUM_THREADS=str(threads),
        )["images_per_s"]
        for threads in (1, 2)
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


def numerics_report(study: dict) -> list[str]:
    n, e = QUICK["train_images"], QUICK["epochs"]
    lines = [
        f"numerics ({n} images x {e} epochs, median of {NUMERICS_ROUNDS} rounds in turns)",
        f"{'run':32} {'images/s':>9} {'vs notebook, native':>20} {'each round':>16}",
    ]
    for name, row in study.items():
        rounds = " ".join(f"{rate:.0f}" for rate in row["each_round"])
        lines.append(
            f"{name:32} {row['images_per_s']:9.0f} {row['vs_notebook_native']:20.2f} {rounds:>16}"
        )
    portable, native = study["project, portable"], study["project, native"]
    cost = 1 - portable["images_per_s"] / native["images_per_s"]
    lines.append(f"the portable path costs the project {cost:.0%} of native's speed here")
    return lines


def report(results: dict) -> str:
    lines = []
    peak = results["matmul_gflop_s"]
    lines.append(
        f"matmul peak ({MATMUL_N}x{MATMUL_N}, TensorFlow): float32 "
        f"{peak['float32']:.0f} GFLOP/s, bfloat16 {peak['bfloat16']:.0f} GFLOP/s; "
        f"training step {results['flops_per_image']['train'] / 1e6:.1f} MFLOP/image"
    )
    lines.append("")
    n, e = QUICK["train_images"], QUICK["epochs"]
    lines.append(f"training throughput ({n} images x {e} epochs, validation on 10000 each epoch)")
    lines.append(
        f"{'run':26} {'1st epoch s':>11} {'steady s':>9} {'images/s':>9} "
        f"{'ratio':>6} {'GFLOP/s':>8} {'of peak':>8} {'RSS MB':>7}"
    )
    runs = results["throughput"]
    base = runs["project train stage"]["images_per_s"]
    for name, row in runs.items():
        lines.append(
            f"{name:26} {row['first_epoch_s']:11.1f} {row['steady_epoch_s']:9.1f} "
            f"{row['images_per_s']:9.0f} {row['images_per_s'] / base:6.2f} "
            f"{row['gflop_s']:8.1f} {row['of_fp32_peak']:8.0%} "
            f"{row['peak_rss_mb']:7.0f}"
        )
    if "numerics" in results:
        lines.append("")
        lines.extend(numerics_report(results["numerics"]))
    lines.append("")
    lines.append(
        "scaling (one epoch, no validation): "
        + ", ".join(
            f"{n} images {s:.1f} s ({s / int(n) * 1e3:.2f} ms/image)"
            for n, s in results["scaling"]["epoch_s"].items()
        )
    )
    threads = results["intra_op_threads"]
    lines.append(
        "intra-op threads (native kernels): "
        + ", ".join(f"{t}: {r:.0f} images/s" for t, r in threads.items())
    )
    prof = results["profile"]
    lines.append(
        f"one training step, batch {prof['batch']} (ms): forward {prof['forward_ms']:.1f}"
        f", backward {prof['backward_ms']:.1f}, optimizer {prof['optimizer_update_ms']:.1f}"
        f", fit loop {prof['fit_loop_overhead_ms']:.1f}; fit step from NumPy "
        f"{prof['fit_step_numpy_ms']:.1f}, from tf.data {prof['fit_step_tf_data_ms']:.1f}"
    )
    lines.append(
        "  forward per layer (ms): "
        + ", ".join(
            f"{name.split(' ')[0]} {ms:.2f}" for name, ms in prof["layer_forward_ms"].items()
        )
    )
    lines.append("")
    lines.append(f"{'everything but training':32} {'wall s':>7} {'peak RSS MB':>11}")
    for name, row in results["stages"].items():
        if "skipped" in row:
            lines.append(f"{name:32} skipped: {row['skipped']}")
        else:
            lines.append(f"{name:32} {row['wall_s']:7.2f} {row['peak_rss_mb']:11.0f}")
    share = results["share_of_pipeline"]
    lines.append(
        f"everything but training: {share['other_s']:.0f} s of an estimated "
        f"{share['pipeline_s']:.0f} s full default pipeline ({share['share']:.1%}; "
        f"training estimated as 12 x {share['epoch_60000_s']:.0f} s, an epoch and a validation)"
    )
    if "seeds" in results:
        lines.append("")
        lines.append(
            f"{'12 epochs, 60000 images':26} {'seeds':>7} {'accuracy mean':>13} "
            f"{'min':>7} {'max':>7} {'loss mean':>9} {'min':>7} {'max':>7}"
        )
        for name, row in results["seeds"].items():
            lines.append(
                f"{name:26} {','.join(map(str, row['seeds'])):>7} "
                f"{row['accuracy_mean']:13.4f} {row['accuracy_min']:7.4f} "
                f"{row['accuracy_max']:7.4f} {row['loss_mean']:9.4f} "
                f"{row['loss_min']:7.4f} {row['loss_max']:7.4f}"
            )
        lines.append(
            f"{'notebook, as printed':26} {'?':>7} {NOTEBOOK['accuracy']:13.4f} "
            f"{'':7} {'':7} {NOTEBOOK['loss']:9.4f}"
        )
    return "\n".join(lines)


def main() -> None:
    parse = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    which = parse.add_mutually_exclusive_group()
    which.add_argument(
        "--seeds", action="store_true", help="only the 12-epoch seed study, added to --out"
    )
    which.add_argument(
        "--full", action="store_true", help="add the seed study and 12 epochs of mixed_bfloat16"
    )
    which.add_argument(
        "--numerics-only",
        action="store_true",
        help="only the portable-against-native study, added to --out",
    )
    parse.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "bench.json")
    parse.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    parse.add_argument("--seed", type=int, default=42, help=argparse.SUPPRESS)
    parse.add_argument(
        "--train-images", type=int, default=QUICK["train_images"], help=argparse.SUPPRESS
    )
    parse.add_argument("--epochs", type=int, default=QUICK["epochs"], help=argparse.SUPPRESS)
    parse.add_argument("--precision", default="float32", help=argparse.SUPPRESS)
    parse.add_argument("--data", type=Path, default=PREPARED, help=argparse.SUPPRESS)
    parse.add_argument("--numerics", help=argparse.SUPPRESS)
    args = parse.parse_args()
    if args.worker:
        # Before TensorFlow loads: the train stage's own numerics unless the driver says.
        from mnist_dvc import numerics
        from mnist_dvc.params import load_params

        numerics.configure(args.numerics or load_params(ROOT / "params.yaml").numerics)
        print("BENCH " + json.dumps(WORKERS[args.worker](args)), flush=True)
        return
    if not (PREPARED / "x_train.npy").exists():
        sys.exit("bench: no data/prepared: run `dvc repro preprocess` (or `dvc pull`) first")
    alone = args.seeds or args.numerics_only  # one study, beside an earlier run's figures
    dvc_status = [sys.executable, "-m", "dvc", "status", "-q"]
    status = None if alone else subprocess.run(dvc_status, cwd=ROOT)
    if status and status.returncode != 0:  # the stage timings need HEAD's outputs in the cache
        sys.exit(
            "bench: the pipeline is not up to date (`dvc status`): run `dvc repro` (or "
            "`dvc pull`) and commit, then bench"
        )
    started = time.perf_counter()
    machine = {
        "cpus": os.cpu_count(),
        "processor": platform.processor(),
        "load_average_at_start": os.getloadavg(),
    }
    if alone:
        if not args.out.exists():
            sys.exit(
                f"bench: --seeds and --numerics-only add to {args.out}: run `make bench` first"
            )
        results = json.loads(args.out.read_text())
        study = "seeds" if args.seeds else "numerics"
        results[study] = seed_study() if args.seeds else numerics_study()
        results[f"{study}_run"] = {
            **machine,
            "load_average_at_end": os.getloadavg(),
            "wall_s": time.perf_counter() - started,
        }
    else:
        results = {"machine": machine, **speed_study()}
        if args.full:
            results["seeds"] = seed_study()
            results["seeds"]["project, mixed_bfloat16"] = mixed_precision_study()
        results["machine"]["load_average_at_end"] = os.getloadavg()
        results["wall_s"] = time.perf_counter() - started
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(report(results))
    print(f"bench: wrote {args.out} in {(time.perf_counter() - started) / 60:.1f} min")


if __name__ == "__main__":
    main()
