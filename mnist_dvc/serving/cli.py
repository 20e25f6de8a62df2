"""The mnist-serve console script.

    mnist-serve [--engine onnx|keras] [--host 127.0.0.1] [--port 8000] [--model-dir models]
                [--no-batching] [--max-batch 64] [--threads 1] [--allowed-host NAME ...]
                [--feedback-dir DIR]
    mnist-serve --rev v1.2.0 | --stage prod  [--repo PATH-OR-GIT-URL] [--cache-dir DIR]

--rev and --stage serve a version from the registry (GTO tags, `make release`): downloaded with
DVC's artifact download into a cache folder once, then served from there (serving/fetched.py).

GET /                          the drawing page (self-contained: nothing from other sites)
POST /predict                  {"instances": [28x28 arrays in [0, 1], ...]} or an image upload
POST /v1/models/mnist-cnn:predict   the same, at TensorFlow Serving's address
POST /feedback                 an image upload and its right digit (field label), kept in
                               --feedback-dir for `mnist-drawings version`; 404 without it
GET /model                     which model: the engine, md5s of the files, dvc.lock's md5s,
                               the test accuracy, where it was made
GET /healthz                   {"status": "ok"} once the model is loaded
GET /openapi.json              the API's description (/docs is off: Swagger UI needs a CDN)

Only requests whose Host header names this server are answered (--allowed-host; a page on
another site cannot read /model or call /predict through DNS rebinding: serving/hosts.py).

The model is loaded once, safely: a model.json with a Lambda layer or a foreign class, an ONNX
file exported from another model, or a model that gives no finite probabilities is refused in
one line and the server does not start. So is every bad option.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# Fewer of TensorFlow's C++ log lines (info and warnings) while serving.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from mnist_dvc import spool
from mnist_dvc.errors import StageError, ToolError, describe
from mnist_dvc.paths import MODEL_JSON
from mnist_dvc.serving.app import MAX_BATCH, create_app
from mnist_dvc.serving.card import describe_served, stale_export
from mnist_dvc.serving.engines import DEFAULT_ENGINE, ENGINES, load_engine
from mnist_dvc.serving.fetched import default_cache, fetch
from mnist_dvc.serving.hosts import default_hosts
from mnist_dvc.serving.protocol import BODY_TIMEOUT_S, HEAD_TIMEOUT_S, with_limits
from mnist_dvc.tool import ToolParser, run_tool, whole_number

THREADS = 1  # per operation: on a 2-core machine the event loop needs the other core
# Connections served at once; one more is answered 503 and closed. With at most SPOOL_BYTES of a
# body each in memory, they bound the server's memory (docs/serving.md).
MAX_CONNECTIONS = 128


@contextmanager
def quiet_stderr() -> Iterator[None]:
    """Hold back what is written to file descriptor 2 inside the block: TensorFlow's C++ side
    prints lines about CUDA and CPU features as it loads, which would bury the one line that a
    refused model gets. If the block fails other than with a StageError, the held-back text is
    written out after all, in case it explains the failure."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        explained = False
        try:
            yield
            explained = True
        except StageError:
            explained = True
            raise
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            if not explained:
                held.seek(0)
                sys.stderr.buffer.write(held.read())
                sys.stderr.flush()


def seconds(text: str) -> float:
    """An argparse type: a number of seconds from 0.1 to 3600."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not 0.1 <= value <= 3600:  # NaN fails this too
        raise argparse.ArgumentTypeError(f"{text}: must be from 0.1 to 3600 seconds")
    return value


def parser() -> argparse.ArgumentParser:
    parse = ToolParser(
        prog="mnist-serve",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parse.add_argument(
        "--engine",
        choices=tuple(ENGINES),
        default=DEFAULT_ENGINE,
        help="; ".join(
            f"{name}: {engine.summary}{' (default)' if name == DEFAULT_ENGINE else ''}"
            for name, engine in ENGINES.items()
        ),
    )
    parse.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parse.add_argument(
        "--allowed-host",
        action="append",
        metavar="NAME",
        help="a name the server is reached by, as the Host header says it (repeat it; '*' for "
        "any). Default: localhost, 127.0.0.1 and ::1, and --host unless it is 0.0.0.0 or ::, "
        "which allow any. Other names are answered 400: a DNS-rebinding page cannot use it",
    )
    parse.add_argument("--port", type=whole_number(1, 65535), default=8000)
    parse.add_argument(
        "--model-dir",
        type=Path,
        help="folder with model.onnx, model.json and model.h5 (default: models)",
    )
    registry = parse.add_mutually_exclusive_group()
    registry.add_argument("--rev", metavar="VERSION", help="serve this registered version")
    registry.add_argument("--stage", help="serve the version in this stage (dev, staging, prod)")
    parse.add_argument(
        "--repo",
        default=".",
        help="the repository --rev or --stage read the registry from: a path or a git URL "
        "(default: this one)",
    )
    parse.add_argument(
        "--cache-dir",
        type=Path,
        help=f"where registered versions are downloaded to (default: {default_cache()})",
    )
    parse.add_argument(
        "--no-batching", action="store_true", help="one model call per request (to compare)"
    )
    parse.add_argument(
        "--max-batch",
        type=whole_number(1, 4096),
        default=MAX_BATCH,
        help=f"images per model call when batching (default {MAX_BATCH})",
    )
    parse.add_argument(
        "--threads",
        "--tf-threads",
        type=whole_number(0, 256),
        default=THREADS,
        help="the engine's threads per operation; 0: one per core (default %(default)s: the "
        "event loop needs a core of its own)",
    )
    parse.add_argument(
        "--head-timeout",
        type=seconds,
        default=HEAD_TIMEOUT_S,
        help="seconds a connection has to send a request's line and headers (default "
        "%(default)g); a late one gets a 408 and is closed",
    )
    parse.add_argument(
        "--body-timeout",
        type=seconds,
        default=BODY_TIMEOUT_S,
        help="seconds a request's body has to arrive, after its headers (default "
        "%(default)g); a late one gets a 408 and is closed",
    )
    parse.add_argument(
        "--max-connections",
        type=whole_number(1, 65536),
        default=MAX_CONNECTIONS,
        help="connections served at once (default %(default)s); a request on one more is "
        "answered 503",
    )
    parse.add_argument(
        "--http",
        choices=("httptools", "h11"),
        default="httptools",
        help="HTTP parser: httptools (default, with the deadlines and the head's size limit) "
        "or h11, uvicorn's pure-Python one, without the deadlines (to compare: "
        "scripts/bench_serve.py)",
    )
    parse.add_argument(
        "--loop",
        choices=("uvloop", "asyncio"),
        default="uvloop",
        help="event loop: uvloop (default) or asyncio's own (to compare)",
    )
    parse.add_argument(
        "--feedback-dir",
        type=Path,
        help='turn on POST /feedback and the page\'s "right digit" buttons: labelled drawings '
        "are kept in this folder for `mnist-drawings version` (default: off)",
    )
    parse.add_argument(
        "--feedback-max-samples",
        type=whole_number(1, 10_000_000),
        default=spool.MAX_SAMPLES,
        help="samples the feedback folder holds at most (default %(default)s); one more: 507",
    )
    parse.add_argument(
        "--feedback-max-mb",
        type=whole_number(1, 1 << 20),
        default=spool.MAX_BYTES >> 20,
        help="MiB the feedback folder holds at most (default %(default)s)",
    )
    parse.add_argument("--access-log", action="store_true", help="log every request")
    return parse


def main(argv: list[str] | None = None) -> int:
    """The console script, inside the one error boundary (mnist_dvc/tool.py)."""
    return run_tool("mnist-serve", serve, argv)


def serve(argv: list[str] | None) -> int:
    parse = parser()
    args = parse.parse_args(argv)
    from_registry = args.rev is not None or args.stage is not None
    if from_registry and args.model_dir is not None:
        parse.error("--model-dir serves a folder; --rev and --stage a registered version")
    release = None
    if from_registry:
        cache = args.cache_dir or default_cache()
        fetched = fetch(args.repo, args.rev, args.stage, cache)
        args.model_dir, release = fetched.model_dir, fetched.release()
        print(f"mnist-serve: {release['note']}: {fetched.model_dir}", file=sys.stderr)
    args.model_dir = args.model_dir or MODEL_JSON.parent
    try:
        with quiet_stderr():
            if stale := stale_export(args.model_dir, args.engine):
                raise StageError(stale)
            predictor = load_engine(args.model_dir, args.engine, threads=args.threads or None)
            card = describe_served(args.model_dir, args.engine, release)
    except OSError as error:  # the files vanished between loading and hashing
        raise ToolError(f"{args.model_dir}: {describe(error)}") from None
    try:  # the port, before the minutes of a start are spent
        import socket

        with socket.create_server((args.host, args.port)):
            pass
    except OSError as error:
        raise ToolError(f"cannot listen on {args.host}:{args.port}: {describe(error)}") from None

    import uvicorn

    allowed = tuple(args.allowed_host or default_hosts(args.host))
    feedback = None
    if args.feedback_dir is not None:
        feedback = spool.Spool(
            args.feedback_dir, args.feedback_max_samples, args.feedback_max_mb << 20
        ).open()
    app = create_app(predictor, card, batching=not args.no_batching, max_batch=args.max_batch,
                     allowed_hosts=allowed, feedback=feedback)  # fmt: skip
    accuracy = card["metrics"]["accuracy"]
    files = ", ".join(f"{Path(f['path']).name} md5 {f['md5'][:8]}" for f in card["files"])
    print(
        f"mnist-serve: {args.engine} engine, {args.model_dir}: {files}; {card['dvc_lock']['note']}"
        f"; test accuracy {accuracy if accuracy is not None else 'not evaluated'}; batching "
        f"{'off' if args.no_batching else 'on'} -> http://{args.host}:{args.port}/",
        file=sys.stderr,
        flush=True,
    )
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        access_log=args.access_log,
        log_level="info",
        timeout_graceful_shutdown=5,
        http=with_limits(args.head_timeout, args.body_timeout)
        if args.http == "httptools"
        else "h11",
        limit_concurrency=args.max_connections,
        loop=args.loop,
        timeout_keep_alive=5,
    )
    return 0
