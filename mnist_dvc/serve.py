"""Serve the trained model: a page to draw a digit on, and a JSON API in TensorFlow Serving's
REST form.

    mnist-serve [--host 127.0.0.1] [--port 8000] [--model-dir models] [--no-batching]

GET /                          the drawing page (self-contained: nothing from other sites)
POST /predict                  {"instances": [28x28 arrays in [0, 1], ...]} or an image upload
POST /v1/models/mnist-cnn:predict   the same, at TensorFlow Serving's address
GET /model                     which model: md5s of the files, dvc.lock's md5s, test accuracy
GET /healthz                   {"status": "ok"} once the model is loaded
GET /openapi.json              the API's description (/docs is off: Swagger UI needs a CDN)

The model is loaded once, safely (mnist_dvc.model.load_model): a model.json with a Lambda
layer or a foreign class is refused in one line and the server does not start. Requests are
batched into one model call by mnist_dvc.batching, which runs the model off the event loop.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from importlib import resources
from pathlib import Path
from typing import Any

# Fewer of TensorFlow's C++ log lines (info and warnings) while serving.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import yaml
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, Field
from starlette.datastructures import UploadFile
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mnist_dvc import mnist, numerics
from mnist_dvc.batching import Batcher
from mnist_dvc.digests import file_digest
from mnist_dvc.errors import StageError, describe
from mnist_dvc.paths import METRICS, MODEL_JSON, MODEL_WEIGHTS, PROVENANCE

# mnist_dvc.predict and mnist_dvc.model import TensorFlow: they are imported where used, so that
# `mnist-serve` can hold back TensorFlow's start-up lines (see quiet_stderr).

MODEL_NAME = "mnist-cnn"
# A request body: an upload of a phone photo fits; a JSON batch of MAX_INSTANCES images
# written with full float precision (~17 KB each) fits too.
MAX_BODY_BYTES = 8 << 20
MAX_INSTANCES = 256
INSTANCE_SHAPES = ((mnist.IMAGE_ROWS, mnist.IMAGE_COLS), (mnist.IMAGE_ROWS, mnist.IMAGE_COLS, 1))
TF_THREADS = 1  # per operation: on a 2-core machine the event loop needs the other core
MAX_BATCH = 64  # images per model call when batching: where a bigger batch stopped paying
# JSON bodies above this are parsed in a thread, so that one big batch does not stall the
# event loop for everybody else; small ones are parsed in place (a thread hop costs more).
PARSE_INLINE_BYTES = 64 << 10
ANSWER_TIMEOUT_S = 60.0  # a request the model has not answered by then gets a 503

Predictor = Callable[[np.ndarray], np.ndarray]


class ClientError(Exception):
    """Bad input from a client: answered with `status` and {"detail": message}."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


# --- what the API looks like (for /openapi.json; answers are written without these models) ---


class PredictRequest(BaseModel):
    instances: list[list[list[float]]] = Field(
        description="28x28 arrays of numbers in [0, 1] (28x28x1 ones too), "
        f"at most {MAX_INSTANCES}",
        min_length=1,
        max_length=MAX_INSTANCES,
    )


class Prediction(BaseModel):
    digit: int
    probability: float
    probabilities: list[float]


class PredictResponse(BaseModel):
    predictions: list[Prediction]


class ErrorBody(BaseModel):
    detail: str


_UPLOAD_SCHEMA = {
    "type": "object",
    "properties": {"file": {"type": "string", "format": "binary"}},
    "required": ["file"],
}
_PREDICT_OPENAPI = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": PredictRequest.model_json_schema()},
            "multipart/form-data": {"schema": _UPLOAD_SCHEMA},
        },
    }
}
_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": why}
    for status, why in {
        400: "an empty body, a body that is not JSON, a form without field `file`",
        413: "a body over the size limit",
        415: "neither JSON nor multipart/form-data",
        422: "not an image, a decompression bomb, wrong shape, values outside [0, 1], NaN, "
        "too many instances",
        503: "the model did not answer in time",
    }.items()
}


# --- the model ---


def model_function(model: Any) -> Predictor:
    """(N, 28, 28) float32 -> (N, 10) probabilities, as one traced TensorFlow graph.

    `model.predict` builds a data pipeline on every call (milliseconds) and an eager call
    dispatches layer by layer; a graph traced once for any batch size costs ~2.5 ms for one
    image on this project's 2-core machine."""
    import tensorflow as tf

    from mnist_dvc.prepared import data_format_of, with_channel

    image_shape = tuple(model.input_shape[1:])
    data_format = data_format_of(image_shape)
    spec = tf.TensorSpec((None, *image_shape), tf.float32)
    graph = tf.function(lambda x: model(x, training=False), input_signature=[spec])

    def run(images: np.ndarray) -> np.ndarray:
        return graph(with_channel(images, data_format)).numpy()

    run(np.zeros((1, mnist.IMAGE_ROWS, mnist.IMAGE_COLS), np.float32))  # trace it now
    return run


def load_served_model(model_dir: Path, *, threads: int | None = None) -> Predictor:
    """Load models/model.json + model.h5 safely; raise ModelError in one line if refused.
    `threads`: TensorFlow's threads per operation (None: TensorFlow's default, one per core)."""
    from mnist_dvc.model import load_model

    if threads:
        # Only possible before TensorFlow's runtime starts, i.e. before the model is built.
        import tensorflow as tf

        with contextlib.suppress(RuntimeError):  # already running here: it keeps its own
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(threads)
    model = load_model(model_dir / MODEL_JSON.name, model_dir / MODEL_WEIGHTS.name)
    return model_function(model)


# --- which model: md5s, dvc.lock, metrics.json ---


def model_card(model_dir: Path) -> dict[str, Any]:
    """What GET /model says: the served files' md5s, whether they are the ones dvc.lock records
    (the project is the model folder's parent, as models/ is in this repository), the test
    accuracy from metrics.json and where the model was made (models/provenance.json). A
    missing or unreadable dvc.lock or metrics.json is said, not fatal: the server may serve a
    model copied anywhere."""
    project = model_dir.resolve().parent
    files = [model_dir / MODEL_JSON.name, model_dir / MODEL_WEIGHTS.name]
    recorded, lock_note = _dvc_lock_md5s(project / "dvc.lock")
    entries = []
    for path in files:
        md5 = file_digest(path)
        locked = recorded.get(path.resolve())
        entries.append(
            {
                "path": str(path),
                "md5": md5,
                "dvc_lock_md5": locked,
                "matches_dvc_lock": None if locked is None else locked == md5,
            }
        )
    matches: bool | None = None
    if all(entry["dvc_lock_md5"] for entry in entries):
        matches = all(entry["matches_dvc_lock"] for entry in entries)
        lock_note = (
            "the served files are the ones dvc.lock records"
            if matches
            else "the served files differ from dvc.lock's: not the model the pipeline made "
            "(run `dvc pull train` or `dvc repro`)"
        )
    elif lock_note is None:
        lock_note = "dvc.lock records no md5 for these files"
    return {
        "name": MODEL_NAME,
        "files": entries,
        "dvc_lock": {"path": str(project / "dvc.lock"), "matches": matches, "note": lock_note},
        "metrics": _metrics(project / METRICS.name, matches),
        "provenance": _provenance(model_dir / PROVENANCE.name, entries[1]["md5"]),
    }


def _provenance(path: Path, weights_md5: str) -> dict[str, Any]:
    """Where the served model.h5 was made, from the train stage's record beside it, if that
    record is of these very weights."""
    made = numerics.read_provenance(path)
    if made is None:
        return {"path": str(path), "made": None, "note": "no provenance recorded"}
    if made.get("model_h5_md5") != weights_md5:
        return {"path": str(path), "made": None, "note": "recorded for other weights"}
    return {"path": str(path), "made": made, "note": numerics.describe(made)}


def _dvc_lock_md5s(lock: Path) -> tuple[dict[Path, str], str | None]:
    """{resolved path: md5} of every stage output in dvc.lock, and a note if it is unusable."""
    try:
        document = yaml.safe_load(lock.read_text())
    except FileNotFoundError:
        return {}, f"no dvc.lock in {lock.parent}: cannot say which pipeline run made the model"
    except (OSError, yaml.YAMLError, RecursionError) as error:
        return {}, f"{lock}: unreadable ({describe(error)})"
    recorded: dict[Path, str] = {}
    stages = document.get("stages") if isinstance(document, dict) else None
    for stage in (stages or {}).values():
        for out in (stage or {}).get("outs") or []:
            if isinstance(out, dict) and isinstance(out.get("path"), str) and out.get("md5"):
                recorded[(lock.parent / out["path"]).resolve()] = str(out["md5"])
    return recorded, None


def _metrics(path: Path, matches_lock: bool | None) -> dict[str, Any]:
    try:
        document = json.loads(path.read_text())
    except FileNotFoundError:
        return {"path": str(path), "accuracy": None, "loss": None, "note": "no metrics.json"}
    except (OSError, ValueError) as error:
        return {"path": str(path), "accuracy": None, "loss": None, "note": describe(error)}
    if not isinstance(document, dict):
        document = {}
    values = {key: document.get(key) for key in ("accuracy", "loss")}
    note = (
        "test-set metrics of this model (evaluate stage)"
        if matches_lock
        else "metrics.json's numbers belong to the model in dvc.lock, which may not be this one"
    )
    return {"path": str(path), **values, "note": note}


# --- request bodies ---


class BodyTooLarge(Exception):
    pass


class LimitBody:
    """Refuse a body over `max_bytes` before reading it all: at once by its Content-Length,
    or, for a chunked body, as soon as the bytes read pass the limit."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and not length.isdigit():
            await JSONResponse({"detail": "Content-Length is not a number"}, 400)(
                scope, receive, send
            )
            return
        if length is not None and int(length) > self.max_bytes:
            await too_large_response(self.max_bytes)(scope, receive, send)
            return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:
                raise BodyTooLarge
            return message

        await self.app(scope, limited, send)


def too_large_response(max_bytes: int) -> JSONResponse:
    # Connection: close, or the server would go on reading (and dropping) the rest of the body.
    return JSONResponse(
        {"detail": f"request body over {max_bytes >> 20} MiB: send a smaller image or fewer "
         "instances"},
        413,
        headers={"Connection": "close"},
    )  # fmt: skip


def _refuse_constant(name: str) -> float:
    # Python's json reads NaN, Infinity and -Infinity, which JSON itself does not have.
    raise ClientError(422, f"{name} in the body: instances hold numbers in [0, 1]")


def parse_instances(body: bytes) -> np.ndarray:
    """A JSON body {"instances": [...]} -> (N, 28, 28) float32 in [0, 1], or ClientError."""
    from mnist_dvc.inputs import InputError, check_images

    if not body.strip():
        raise ClientError(
            400, 'empty body: send JSON {"instances": [...]} or an image in multipart field file'
        )
    try:
        document = json.loads(body, parse_constant=_refuse_constant)
    except (ValueError, RecursionError) as error:  # JSONDecodeError, UnicodeDecodeError
        raise ClientError(400, f"body is not JSON: {describe(error)}") from None
    if not isinstance(document, dict) or not isinstance(document.get("instances"), list):
        raise ClientError(422, 'expected a JSON object {"instances": [28x28 arrays, ...]}')
    instances = document["instances"]
    if not instances:
        raise ClientError(422, "instances is empty: send at least one 28x28 array")
    if len(instances) > MAX_INSTANCES:
        raise ClientError(
            422, f"{len(instances)} instances: at most {MAX_INSTANCES} per request (split it)"
        )
    try:
        array = np.asarray(instances)
    except (ValueError, TypeError, OverflowError):  # ragged lists, huge integers
        raise ClientError(422, "instances are not arrays of numbers all of one shape") from None
    if array.dtype.kind not in "iuf":  # strings, booleans, null, objects
        raise ClientError(422, "instances hold something other than numbers")
    # (28, 28) alone would be 28 instances of 28 numbers: each instance is an image.
    if array.shape[1:] not in INSTANCE_SHAPES:
        raise ClientError(
            422, f"instances shaped {array.shape}: each instance is a 28x28 (or 28x28x1) array"
        )
    # Integers are numbers too, but 0-255 pixel values are refused, not guessed: [0, 1] only.
    try:
        return check_images(array.astype(np.float64), "instances")
    except InputError as error:
        pixels = np.isfinite(array).all() and array.max() > 1
        hint = " (pixel values 0-255? divide them by 255)" if pixels else ""
        raise ClientError(422, f"{error}{hint}") from None


async def read_upload(request: Request) -> np.ndarray:
    """The image in multipart field `file` -> (1, 28, 28), exactly as mnist-predict reads it."""
    from mnist_dvc.inputs import InputError, image_from_bytes

    form = await request.form(max_files=1, max_fields=8, max_part_size=MAX_BODY_BYTES)
    try:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise ClientError(400, "no file: send the image in multipart form field file")
        data = await upload.read()
        # Only a label in messages: the client's file name never reaches the file system.
        name = Path(upload.filename or "upload").name[:80] or "upload"
    finally:
        await form.close()
    if not data:
        raise ClientError(400, f"{name}: empty file")
    try:
        # Decoding a large image takes a while: off the event loop.
        image = await asyncio.to_thread(image_from_bytes, data, name)
    except InputError as error:  # not an image, a decompression bomb, ...
        raise ClientError(422, str(error)) from None
    return image[np.newaxis]


async def read_images(request: Request) -> np.ndarray:
    """The images a request holds: JSON instances or an uploaded image, or ClientError."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type == "multipart/form-data":
        return await read_upload(request)
    if media_type not in ("", "application/json"):
        raise ClientError(
            415, f"{media_type}: send application/json or multipart/form-data (field file)"
        )
    body = await request.body()
    if len(body) > PARSE_INLINE_BYTES:
        return await asyncio.to_thread(parse_instances, body)
    return parse_instances(body)


def predictions(probabilities: np.ndarray) -> list[dict[str, Any]]:
    return [
        {
            "digit": int(p.argmax()),
            "probability": round(float(p.max()), 6),
            "probabilities": [round(float(x), 6) for x in p],
        }
        for p in probabilities
    ]


# --- the app ---


def page() -> str:
    return (resources.files("mnist_dvc") / "static" / "index.html").read_text(encoding="utf-8")


# The page inlines its script and style and loads nothing else; the browser is told so.
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'unsafe-inline'; "
    "style-src 'unsafe-inline'; img-src 'self' data: blob:; connect-src 'self'",
    "X-Content-Type-Options": "nosniff",
}


def create_app(
    predictor: Predictor,
    card: dict[str, Any],
    *,
    batching: bool = True,
    max_batch: int = MAX_BATCH,
    max_body_bytes: int = MAX_BODY_BYTES,
    answer_timeout_s: float = ANSWER_TIMEOUT_S,
) -> FastAPI:
    batcher = Batcher(predictor, max_batch=max_batch, batching=batching)
    html = page()

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        batcher.start()
        try:
            yield
        finally:
            batcher.stop()

    app = FastAPI(
        title="MNIST digit classifier",
        version="1",
        description="The pipeline's trained model (models/model.json + model.h5).",
        docs_url=None,  # Swagger UI and ReDoc load scripts from a CDN: /openapi.json only
        redoc_url=None,
        lifespan=lifespan,
    )
    app.add_middleware(LimitBody, max_bytes=max_body_bytes)

    @app.exception_handler(ClientError)
    async def client_error(_request: Request, error: ClientError) -> JSONResponse:
        return JSONResponse({"detail": error.message}, error.status)

    @app.exception_handler(TimeoutError)
    async def overloaded(_request: Request, _error: TimeoutError) -> JSONResponse:
        return JSONResponse({"detail": "the model did not answer in time: retry later"}, 503)

    @app.exception_handler(BodyTooLarge)
    async def too_large(_request: Request, _error: BodyTooLarge) -> JSONResponse:
        return too_large_response(max_body_bytes)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index() -> HTMLResponse:
        return HTMLResponse(html, headers=PAGE_HEADERS)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/model")
    async def model_info() -> dict[str, Any]:
        counters = {"model_calls": batcher.calls, "images": batcher.images}
        return {
            **card,
            "batching": {"enabled": batching, "max_batch": batcher.max_batch, **counters},
            "limits": {"max_body_bytes": max_body_bytes, "max_instances": MAX_INSTANCES},
        }

    async def predict(request: Request) -> Response:
        images = await read_images(request)
        probabilities = await batcher.predict(images, timeout_s=answer_timeout_s)
        body = json.dumps({"predictions": predictions(probabilities)})
        return Response(body, media_type="application/json")

    for path in ("/predict", f"/v1/models/{MODEL_NAME}:predict"):
        app.add_api_route(
            path,
            predict,
            methods=["POST"],
            summary="Classify 28x28 instances (JSON) or one uploaded PNG/JPEG image",
            responses={200: {"model": PredictResponse}, **_ERRORS},
            openapi_extra=_PREDICT_OPENAPI,
        )
    return app


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="mnist-serve",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument(
        "--model-dir",
        type=Path,
        default=MODEL_JSON.parent,
        help="folder with model.json and model.h5 (default: models)",
    )
    parser.add_argument(
        "--no-batching", action="store_true", help="one model call per request (to compare)"
    )
    parser.add_argument(
        "--max-batch",
        type=int,
        default=MAX_BATCH,
        help=f"images per model call when batching (default {MAX_BATCH})",
    )
    parser.add_argument(
        "--tf-threads",
        type=int,
        default=TF_THREADS,
        help="TensorFlow threads per operation; 0: one per core (default %(default)s: the "
        "event loop needs a core of its own)",
    )
    parser.add_argument("--access-log", action="store_true", help="log every request")
    args = parser.parse_args(argv)

    try:
        with quiet_stderr():
            predictor = load_served_model(args.model_dir, threads=args.tf_threads or None)
            card = model_card(args.model_dir)
    except StageError as error:
        print(f"mnist-serve: error: {error}", file=sys.stderr)
        return 1
    except OSError as error:  # the files vanished between loading and hashing
        print(f"mnist-serve: error: {args.model_dir}: {describe(error)}", file=sys.stderr)
        return 1

    import uvicorn

    app = create_app(
        predictor,
        card,
        batching=not args.no_batching,
        max_batch=args.max_batch,
    )
    accuracy = card["metrics"]["accuracy"]
    print(
        f"mnist-serve: {args.model_dir}/{MODEL_JSON.name} md5 {card['files'][0]['md5'][:8]}, "
        f"{card['files'][1]['md5'][:8]}; {card['dvc_lock']['note']}; test accuracy "
        f"{accuracy if accuracy is not None else 'unknown'}; batching "
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
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
