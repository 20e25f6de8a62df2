"""Load test for mnist-serve: requests/s and p50/p99 latency at 1, 8 and 64 concurrent clients,
each posting one 28x28 image as JSON ({"instances": [image]}) over a kept-alive connection, for
three configurations side by side in one run (CONFIGS): ONNX Runtime on the fast HTTP path
(the default), Keras on the fast path, and the configuration before them (Keras on uvicorn's
defaults: the h11 parser and asyncio's loop). Then requests of 256 instances against ONNX
Runtime's own speed on batches of 256, measured here too. Writes benchmarks/serve.json.

    python scripts/bench_serve.py --model-dir models      # starts each server itself
    python scripts/bench_serve.py --url http://127.0.0.1:8000   # a server already running

The clients are raw asyncio HTTP/1.1 in one process (an HTTP library's per-request cost would
be the load generator's bottleneck on a 2-core machine, not the server's). The CPU seconds the
server and the load generator used are recorded too, to show where the time went.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import shlex
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np

from mnist_dvc.serving.background import ServerDidNotStart, serve_in_background

REPO_ROOT = Path(__file__).resolve().parent.parent
Window = tuple[float, float]  # perf_counter times: measuring starts, clients stop
TARGET = {"clients": 64, "predictions_per_s": 1000, "p99_ms": 150}


@dataclass
class Level:
    clients: int
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    answered: int = 0  # warm-up included: what the CPU seconds were spent on


CONFIGS = {
    "onnx, fast path": [],
    "keras, fast path": ["--engine", "keras"],
    "before: keras, h11, asyncio": ["--engine", "keras", "--http", "h11", "--loop", "asyncio"],
}
BIG = 256  # instances per request for the batch comparison


def stroke_images(count: int, seed: int = 0) -> np.ndarray:
    """28x28 images of strokes, values rounded to 3 decimals as a client would send them."""
    rng = np.random.default_rng(seed)
    images = np.zeros((count, 28, 28), np.float32)
    for image in images:
        top, left = rng.integers(4, 10, size=2)
        image[top : top + 16, left : left + 3] = rng.random(3)
        image[top : top + 3, left : left + 12] = 1.0
    return np.round(images, 3)


def request_bodies(host: str, count: int = 32, per_request: int = 1) -> list[bytes]:
    """Kept-alive POST /predict requests of `per_request` images each (about 2.6 KB of JSON
    per image)."""
    images = stroke_images(count * per_request).reshape(count, per_request, 28, 28)
    requests = []
    for instances in images:
        body = json.dumps({"instances": instances.tolist()}).encode()
        head = (
            f"POST /predict HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        requests.append(head + body)
    return requests


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = dict(line.lower().split(":", 1) for line in lines[1:] if ":" in line)
    await reader.readexactly(int(headers["content-length"]))
    return status


async def _client(
    host: str, port: int, requests: list[bytes], offset: int, window: Window, level: Level
) -> None:
    """One client: a request, wait for its answer, the next, until the window ends."""
    start, end = window
    reader, writer = await asyncio.open_connection(host, port)
    try:
        i = offset
        while (now := time.perf_counter()) < end:
            writer.write(requests[i % len(requests)])
            i += 1
            try:
                status = await _read_response(reader)
            except (asyncio.IncompleteReadError, ConnectionError):
                level.errors += 1
                writer.close()
                reader, writer = await asyncio.open_connection(host, port)
                continue
            done = time.perf_counter()
            level.answered += 1
            if done >= start:  # requests that end in the warm-up do not count
                if status == 200:
                    level.latencies.append(done - now)
                else:
                    level.errors += 1
    finally:
        writer.close()


async def run_level(
    url: str, clients: int, seconds: float, warmup: float, per_request: int = 1
) -> Level:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    requests = request_bodies(parts.netloc, count=8 if per_request > 1 else 32,
                              per_request=per_request)  # fmt: skip
    level = Level(clients)
    start = time.perf_counter() + warmup
    window = (start, start + seconds)
    await asyncio.gather(*(_client(host, port, requests, i, window, level) for i in range(clients)))
    return level


def summary(level: Level, seconds: float) -> dict:
    latencies = np.array(level.latencies) * 1000
    ok = len(latencies)
    return {
        "clients": level.clients,
        "requests": ok,
        "errors": level.errors,
        "rps": round(ok / seconds, 1),
        "p50_ms": round(float(np.percentile(latencies, 50)), 2) if ok else None,
        "p99_ms": round(float(np.percentile(latencies, 99)), 2) if ok else None,
    }


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as answer:
        return json.load(answer)


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process (Linux /proc), threads included."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@contextmanager
def server(model_dir: Path, options: list[str]) -> Iterator[tuple[str, int]]:
    """mnist-serve on a free port until the block ends, stopped by its PID."""
    args = ["--model-dir", str(model_dir), *options]
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as tmp:
        try:
            with serve_in_background(args, log=Path(tmp) / "serve.log") as running:
                yield running
        except ServerDidNotStart as error:
            sys.exit(f"bench: {error}")


def bench(
    url: str,
    pid: int | None,
    levels: list[int],
    seconds: float,
    warmup: float,
    config: str,
    per_request: int = 1,
) -> list:
    rows = []
    for clients in levels:
        before = get_json(f"{url}/model")["batching"]
        server_cpu, own_cpu = cpu_seconds(pid) if pid else None, own_cpu_seconds()
        level = asyncio.run(run_level(url, clients, seconds, warmup, per_request))
        after = get_json(f"{url}/model")["batching"]
        row = {"config": config, "batching": after["enabled"], "instances": per_request,
               **summary(level, seconds)}  # fmt: skip
        row["predictions_per_s"] = round(row["rps"] * per_request, 1)
        # Other programs on the machine take CPU from both sides: say how busy it was.
        row["load_average_1min"] = round(os.getloadavg()[0], 2)
        calls = after["model_calls"] - before["model_calls"]
        row["images_per_model_call"] = (
            round((after["images"] - before["images"]) / calls, 1) if calls else None
        )
        # Over warm-up + measurement: the share of one core each process kept busy, and the
        # server's CPU time per answer (what 1000 answers/s would need, whatever else runs).
        row["load_generator_cpu"] = round((own_cpu_seconds() - own_cpu) / (seconds + warmup), 2)
        if pid:
            used = cpu_seconds(pid) - server_cpu
            row["server_cpu"] = round(used / (seconds + warmup), 2)
            row["server_cpu_ms_per_request"] = round(1000 * used / max(level.answered, 1), 3)
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def onnx_runtime_speed(model_dir: Path, threads: int, seconds: float) -> dict:
    """Images/s of ONNX Runtime itself on batches of BIG, with the server's engine code and
    `threads` threads per operation: the ceiling for the HTTP path."""
    from mnist_dvc.serving.engines import load_engine

    run = load_engine(model_dir, "onnx", threads=threads)
    batch = stroke_images(BIG)
    run(batch)
    calls, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        run(batch)
        calls += 1
    elapsed = time.perf_counter() - start
    return {"threads": threads, "batch": BIG, "images_per_s": round(calls * BIG / elapsed, 1)}


def machine() -> dict:
    names = [
        line for line in Path("/proc/cpuinfo").read_text().splitlines() if "model name" in line
    ]
    cpu = names[0].split(":", 1)[1].strip() if names else platform.processor()
    import tensorflow as tf

    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu": cpu,
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "load_generator": "this script, one asyncio process on the same machine",
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--model-dir", type=Path, help="start mnist-serve on this model, twice")
    where.add_argument("--url", help="bench a server already running (one configuration)")
    parser.add_argument("--clients", default="1,8,64", help="concurrency levels (default 1,8,64)")
    parser.add_argument("--seconds", type=float, default=10.0, help="measured per level")
    parser.add_argument("--warmup", type=float, default=2.0, help="unmeasured, before each level")
    parser.add_argument("--server-args", default="", help="more mnist-serve options, quoted")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "benchmarks" / "serve.json")
    args = parser.parse_args(argv)
    levels = [int(n) for n in args.clients.split(",")]

    results, big, ceiling = [], [], []
    timing = (args.seconds, args.warmup)
    if args.url:
        results += bench(args.url.rstrip("/"), None, levels, *timing, "given")
    else:
        extra = shlex.split(args.server_args)
        for config, options in CONFIGS.items():
            with server(args.model_dir, [*options, *extra]) as (url, pid):
                results += bench(url, pid, levels, *timing, config)
                if config == "onnx, fast path":  # requests of BIG instances, 1 and 2 clients
                    big += bench(url, pid, [1, 2], *timing, config, per_request=BIG)
        ceiling = [onnx_runtime_speed(args.model_dir, threads, args.seconds) for threads in (1, 2)]
        print(json.dumps(ceiling), flush=True)
    document = {
        "machine": machine(),
        "request": 'POST /predict, JSON {"instances": [one 28x28 image]}, kept-alive connection',
        "server_args": args.server_args,
        "seconds_per_level": args.seconds,
        "warmup_seconds": args.warmup,
        "target": TARGET,
        "results": results,
        "big_requests": big,
        "onnx_runtime_alone": ceiling,
    }
    if big and ceiling:
        best = max(row["predictions_per_s"] for row in big)
        document["big_request_ratio"] = {
            f"vs {c['threads']} thread(s)": round(best / c["images_per_s"], 3) for c in ceiling
        }
        print(f"bench: {BIG}-instance requests at {best:.0f} images/s: "
              f"{document['big_request_ratio']} of ONNX Runtime alone", flush=True)  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(document, indent=2) + "\n")
    print(f"bench: wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
