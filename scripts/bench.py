"""`make bench`: how fast this repository trains against the notebook run unported and against
the machine's limit, and how accurate it is against the notebook across seeds.

    python scripts/bench.py [--seeds | --numerics-only | --mixed-only | --full] [--out FILE]

Every figure comes from this one run, side by side, each measurement in a fresh process (no
TensorFlow state carried from one to the next), one at a time: on a 2-core machine two at once
would measure each other. The quick run (about 15 minutes here) measures speed on a subset
and keeps the seed and mixed_bfloat16 studies an earlier run wrote to --out.
`--seeds` runs only the fidelity study and adds it to --out: the full default run (12 epochs,
60000 images) with seeds 1, 2 and 3 for the project and for the notebook on tf-keras, taking
turns (about 100 minutes here). `--full` runs both, and, on a CPU with AVX512_BF16 or AMX, 12
epochs of `numerics: native` with mixed_bfloat16 (which `train` refuses elsewhere), which
`--mixed-only` runs alone (5 minutes here). The seeds are fixed here, before any result: none
is chosen by its score. Needs the prepared data (`dvc repro preprocess`) and, for the notebook,
tf-keras (`make setup-bench`). Prints a table and writes the numbers to --out.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from bench_studies import (
    BFLOAT16_CPU,
    NUMERICS_ROUNDS,
    mixed_precision_study,
    numerics_study,
    seed_study,
    speed_study,
)
from bench_workers import (
    MATMUL_N,
    PREPARED,
    QUICK,
    ROOT,
    WORKERS,
    count_flops,  # noqa: F401 (tests/scripts/test_bench.py imports it from here)
)

from mnist_dvc import processor

MIXED_ROW = "project, native, mixed_bfloat16"  # its row in the seeds table

NOTEBOOK = {"accuracy": 0.9926, "loss": 0.0236}  # what the notebook printed


def numerics_report(study: dict) -> list[str]:
    n, e = QUICK["train_images"], QUICK["epochs"]
    lines = [
        f"numerics ({n} images x {e} epochs, median of {NUMERICS_ROUNDS} rounds in turns)",
        f"{'run':36} {'images/s':>9} {'vs notebook, native':>20} {'each round':>16}",
    ]
    for name, row in study.items():
        rounds = " ".join(f"{rate:.0f}" for rate in row["each_round"])
        lines.append(
            f"{name:36} {row['images_per_s']:9.0f} {row['vs_notebook_native']:20.2f} {rounds:>16}"
        )
    portable, native = study["project, portable"], study["project, native"]
    before = next(row for name, row in study.items() if name.startswith("project, portable before"))
    lines.append(
        f"portable: {portable['images_per_s'] / native['images_per_s']:.2f}x native, "
        f"{portable['images_per_s'] / before['images_per_s']:.2f}x portable before, "
        f"{portable['vs_notebook_native']:.2f}x the notebook on tf-keras"
    )
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
        f"{'run':32} {'1st epoch s':>11} {'steady s':>9} {'images/s':>9} "
        f"{'ratio':>6} {'GFLOP/s':>8} {'of peak':>8} {'RSS MB':>7}"
    )
    runs = results["throughput"]
    base = runs["project train stage"]["images_per_s"]
    for name, row in runs.items():
        lines.append(
            f"{name:32} {row['first_epoch_s']:11.1f} {row['steady_epoch_s']:9.1f} "
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
        "intra-op threads (the params' numerics): "
        + ", ".join(f"{t}: {r:.0f} images/s" for t, r in threads.items())
    )
    prof = results["profile"]
    lines.append(
        f"one training step, batch {prof['batch']} (ms): forward {prof['forward_ms']:.1f}"
        f", backward {prof['backward_ms']:.1f}, optimizer {prof['optimizer_update_ms']:.1f}"
        f", fit loop {prof['fit_loop_overhead_ms']:.1f}; fit step from NumPy arrays "
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
            f"{'12 epochs, 60000 images':32} {'seeds':>7} {'accuracy mean':>13} "
            f"{'min':>7} {'max':>7} {'loss mean':>9} {'min':>7} {'max':>7}"
        )
        for name, row in results["seeds"].items():
            lines.append(
                f"{name:32} {','.join(map(str, row['seeds'])):>7} "
                f"{row['accuracy_mean']:13.4f} {row['accuracy_min']:7.4f} "
                f"{row['accuracy_max']:7.4f} {row['loss_mean']:9.4f} "
                f"{row['loss_min']:7.4f} {row['loss_max']:7.4f}"
            )
        lines.append(
            f"{'notebook, as printed':32} {'?':>7} {NOTEBOOK['accuracy']:13.4f} "
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
    which.add_argument(
        "--mixed-only",
        action="store_true",
        help="only 12 epochs of numerics: native with mixed_bfloat16, added to --out",
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
    # NAME=VALUE set after the numerics, before TensorFlow loads (the numerics study's variants)
    parse.add_argument("--tf-setting", action="append", default=[], help=argparse.SUPPRESS)
    args = parse.parse_args()
    if args.worker:
        # Before TensorFlow loads: the train stage's own numerics unless the driver says.
        from mnist_dvc import numerics
        from mnist_dvc.params import load_params

        args.numerics = args.numerics or load_params(ROOT / "params.yaml").numerics
        numerics.configure(args.numerics)
        os.environ.update(setting.split("=", 1) for setting in args.tf_setting)
        print("BENCH " + json.dumps(WORKERS[args.worker](args)), flush=True)
        return
    if not (PREPARED / "x_train.npy").exists():
        sys.exit("bench: no data/prepared: run `dvc repro preprocess` (or `dvc pull`) first")
    if args.mixed_only and not BFLOAT16_CPU:
        sys.exit(
            "bench: --mixed-only needs a CPU with AVX512_BF16 or AMX, and this one has neither"
        )
    alone = args.seeds or args.numerics_only or args.mixed_only  # beside an earlier run's
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
        "processor": processor.cpu(),  # model name and the flags that choose kernels
        "load_average_at_start": os.getloadavg(),
    }
    if alone:
        if not args.out.exists():
            sys.exit(
                f"bench: --seeds, --numerics-only and --mixed-only add to {args.out}: "
                "run `make bench` first"
            )
        results = json.loads(args.out.read_text())
        if args.mixed_only:
            study = "mixed"
            results.setdefault("seeds", {})[MIXED_ROW] = mixed_precision_study()
        elif args.seeds:  # beside the mixed_bfloat16 row, if there is one
            study = "seeds"
            results["seeds"] = {**results.get("seeds", {}), **seed_study()}
        else:
            study, results["numerics"] = "numerics", numerics_study()
        results[f"{study}_run"] = {
            **machine,
            "load_average_at_end": os.getloadavg(),
            "wall_s": time.perf_counter() - started,
        }
    else:
        # The studies this run does not repeat, read before it, kept with their own records.
        kept = ("seeds", "seeds_run", "mixed_run")
        earlier = json.loads(args.out.read_text()) if args.out.exists() and not args.full else {}
        results = {"machine": machine, **speed_study()}
        results.update({key: earlier[key] for key in kept if key in earlier})
        if args.full:
            results["seeds"] = seed_study()
            mixed = mixed_precision_study()
            if mixed is not None:
                results["seeds"][MIXED_ROW] = mixed
            # Where and when, for a later quick run that keeps them: this run.
            results["seeds_run"] = results["mixed_run"] = {**machine, "in_the_full_run": True}
        results["machine"]["load_average_at_end"] = os.getloadavg()
        results["wall_s"] = time.perf_counter() - started
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(report(results))
    print(f"bench: wrote {args.out} in {(time.perf_counter() - started) / 60:.1f} min")


if __name__ == "__main__":
    main()
