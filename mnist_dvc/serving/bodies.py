"""Request bodies and answers: JSON instances, image uploads (decoded as mnist-predict decodes
them: mnist_dvc/image_files.py), and the JSON written back. Every bad body is a ClientError: a
4xx status with one line in {"detail": ...}. (A body over the size limit never gets here:
mnist_dvc/serving/body_limit.py refuses it as it arrives.)

The server's memory is bounded by what is held at once, not by how many requests arrive: a body
waits its turn in a temporary file (in memory up to SPOOL_BYTES, on disk beyond), and the heavy
work, decoding an upload or parsing a large JSON body, runs HEAVY_SLOTS at a time. So the most
memory taken is the model's, HEAVY_SLOTS decodes, and SPOOL_BYTES per connection, which the
server's connection limit bounds (docs/serving.md has the figures).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import re
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from tempfile import SpooledTemporaryFile
from typing import Any, BinaryIO

import numpy as np
import orjson
from fastapi import Request
from starlette.datastructures import UploadFile

from mnist_dvc.digits import InputError
from mnist_dvc.errors import ToolError, describe
from mnist_dvc.image_files import image_from_stream
from mnist_dvc.npy_batches import check_images
from mnist_dvc.prepared import CHANNEL_SHAPES, IMAGE_SHAPE

# Images per JSON request; MAX_BODY_BYTES (mnist_dvc/serving/body_limit.py) holds that many
# written with full float precision (~17 KB each).
MAX_INSTANCES = 256
INSTANCE_SHAPES = (IMAGE_SHAPE, CHANNEL_SHAPES["channels_last"])
# JSON bodies above this are parsed in a thread, so that one big batch does not stall the
# event loop for everybody else; small ones are parsed in place (a thread hop costs more).
PARSE_INLINE_BYTES = 64 << 10
# What a body waiting for its turn may hold in memory; beyond, it is in a temporary file
# (Starlette spools an upload in the same way, at the same size).
SPOOL_BYTES = 1 << 20
MAX_FIELD_BYTES = 64 << 10  # a multipart field that is not the file
# Decodes and large parses at once: each may take its full size decoded (a 25-megapixel RGBA PNG
# is 100 MB, about 200 MB at its peak) before it is reduced (mnist_dvc/image_files.py). A pool of
# its own, so that the work waiting for it holds no thread (and no memory) meanwhile.
HEAVY_SLOTS = 2
HEAVY_WORK = ThreadPoolExecutor(max_workers=HEAVY_SLOTS, thread_name_prefix="mnist-serve-heavy")


class ClientError(ToolError):
    """Bad input from a client: answered with `status` and {"detail": message}."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _refuse_constant(name: str) -> float:
    # Python's json reads NaN, Infinity and -Infinity, which JSON itself does not have.
    raise ClientError(422, f"{name} in the body: instances hold numbers in [0, 1]")


# The most values and arrays MAX_INSTANCES 28x28x1 instances can hold, twice over (room for
# other keys). Parsing costs memory by the value: 8 MiB of `[[1]],` would be 1.4 million lists,
# 300 MB; such a body is refused by counting its commas and brackets first, in milliseconds.
_ROWS, _COLS = IMAGE_SHAPE
MAX_COMMAS = 2 * MAX_INSTANCES * _ROWS * _COLS
MAX_BRACKETS = 2 * MAX_INSTANCES * (1 + _ROWS * (1 + _COLS))


def parse_instances(body: bytes) -> np.ndarray:
    """A JSON body {"instances": [...]} -> (N, 28, 28) float32 in [0, 1], or ClientError."""

    if not body.strip():
        raise ClientError(
            400, 'empty body: send JSON {"instances": [...]} or an image in multipart field file'
        )
    if body.count(b",") > MAX_COMMAS or body.count(b"[") > MAX_BRACKETS:
        raise ClientError(
            422, f"more values than {MAX_INSTANCES} instances of 28x28 hold: at most "
            f"{MAX_INSTANCES} per request (split it)"
        )  # fmt: skip
    try:
        document = orjson.loads(body)  # JSON as the standard has it: no NaN, no Infinity
    except orjson.JSONDecodeError:
        # The slow parser only to say what is wrong: NaN and Infinity by name.
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
    # Strings, booleans, null, objects; and a boolean among numbers, which NumPy would have
    # made 1.0 or 0.0 (a body with no `true` or `false` in it holds none: no walk needed).
    if array.dtype.kind not in "iuf" or (_BOOLEAN.search(body) and _holds_bool(instances)):
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


_BOOLEAN = re.compile(rb"\b(true|false)\b")


def _holds_bool(value: Any) -> bool:
    if isinstance(value, list):
        return any(_holds_bool(item) for item in value)
    return isinstance(value, bool)


async def heavy(function, *args: Any) -> Any:
    """`function(*args)` in one of the HEAVY_SLOTS, off the event loop."""
    return await asyncio.get_running_loop().run_in_executor(HEAVY_WORK, function, *args)


def decode_upload(stream: BinaryIO, name: str) -> np.ndarray:
    """An upload in MNIST's form, read from its temporary file; the memory freed after it
    goes back to the OS (a few milliseconds against the decoding's tens)."""
    try:
        return image_from_stream(stream, name)
    finally:
        _return_memory()


def parse_spooled(body: BinaryIO) -> np.ndarray:
    body.seek(0)
    try:
        return parse_instances(body.read())
    finally:
        _return_memory()


def _return_memory() -> None:
    """Hand freed heap memory back to the OS (glibc keeps it otherwise); nothing elsewhere."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


async def read_upload(request: Request) -> np.ndarray:
    """The image in multipart field `file` -> (1, 28, 28), exactly as mnist-predict reads it."""
    async with uploaded_form(request) as (upload, name, _label):
        return (await decode_uploaded(upload, name))[np.newaxis]


@contextlib.asynccontextmanager
async def uploaded_form(request: Request) -> AsyncIterator[tuple[UploadFile, str, str | None]]:
    """The multipart form, received whole: (its file, a name for messages, field `label`).
    The file waits in Starlette's temporary file (in memory up to SPOOL_BYTES, on disk
    beyond); the form is closed when the block ends."""
    # A field other than the file is held in memory: a label's size at most.
    form = await request.form(max_files=1, max_fields=8, max_part_size=MAX_FIELD_BYTES)
    try:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise ClientError(400, "no file: send the image in multipart form field file")
        # Only a label in messages: the client's file name never reaches the file system.
        name = Path(upload.filename or "upload").name[:80] or "upload"
        if not upload.size:
            raise ClientError(400, f"{name}: empty file")
        label = form.get("label")
        yield upload, name, label if isinstance(label, str) else None
    finally:
        await form.close()


async def decode_uploaded(upload: UploadFile, name: str) -> np.ndarray:
    """An uploaded image in MNIST's form (28, 28), decoded in its turn, from its temporary file."""
    try:
        return await heavy(decode_upload, upload.file, name)
    except InputError as error:  # not an image, a decompression bomb, ...
        raise ClientError(422, str(error)) from None


async def read_images(request: Request) -> np.ndarray:
    """The images a request holds: JSON instances or an uploaded image, or ClientError."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type == "multipart/form-data":
        return await read_upload(request)
    if media_type not in ("", "application/json"):
        raise ClientError(
            415, f"{media_type}: send application/json or multipart/form-data (field file)"
        )
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) <= PARSE_INLINE_BYTES:
        return parse_instances(await request.body())
    with SpooledTemporaryFile(max_size=SPOOL_BYTES) as body:
        async for chunk in request.stream():
            body.write(chunk)
        return await heavy(parse_spooled, body)


def answer(probabilities: np.ndarray) -> bytes:
    """The JSON answer: each image's digit, its probability and all ten, to 6 decimals."""
    rounded = probabilities.astype(np.float64).round(6)
    return orjson.dumps({"predictions": [
        {"digit": digit, "probability": p[digit], "probabilities": p}
        for digit, p in zip(probabilities.argmax(axis=1).tolist(), rounded.tolist(), strict=True)
    ]})  # fmt: skip
