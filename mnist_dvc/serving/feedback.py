"""POST /feedback: a drawing and its right digit, kept in the feedback spool (mnist_dvc/spool.py)
for the next version of the drawings data set (`mnist-drawings version`). Off unless mnist-serve
is started with --feedback-dir; then the page asks, after each prediction, whether it was right.

The form is the one /predict takes, plus a field `label` (a digit): the server decodes the
image as /predict does, asks the model for its own prediction and stores both, with the model
that made it. A label that is not a digit, an image with no ink and a body over the limit are
refused as /predict refuses its bad input (4xx, one line), before anything is written.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

from fastapi import Request

from mnist_dvc.serving.batching import Batcher
from mnist_dvc.serving.bodies import HEAVY_SLOTS, ClientError, decode_uploaded, uploaded_form
from mnist_dvc.spool import Spool, SpoolConflict, SpoolError, SpoolFull, check_label

OFF = "feedback is off: start mnist-serve with --feedback-dir DIR to collect labelled drawings"
_MEDIA = "multipart/form-data"


def served_model(card: dict[str, Any]) -> str:
    """What names the served model in a sample: its registered version, or its files' md5."""
    version = (card.get("release") or {}).get("version")
    if version:
        return f"{card['name']}@{version}"
    return "md5:" + ",".join(entry["md5"] for entry in card["files"])


def feedback_slots() -> asyncio.Semaphore:
    """How many feedback requests hold an upload at once: as many as decode at once."""
    return asyncio.Semaphore(HEAVY_SLOTS)


async def take_feedback(
    request: Request,
    spool: Spool | None,
    batcher: Batcher,
    model: str,
    timeout_s: float,
    slots: asyncio.Semaphore,
) -> dict[str, Any]:
    if spool is None:
        raise ClientError(404, OFF)
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != _MEDIA:
        raise ClientError(415, f"{media_type or 'no content type'}: send {_MEDIA} with fields "
                               "file (the image) and label (its digit)")  # fmt: skip
    async with uploaded_form(request) as (upload, name, label_text):
        if label_text is None:
            raise ClientError(422, "no label: send the right digit in form field label")
        try:
            label = check_label(label_text)
        except SpoolError as error:
            raise ClientError(422, str(error)) from None
        # The form is whole (in a temporary file); its upload is held in memory from here until
        # it is stored, in one of `slots` (feedback_slots()): many requests cost no more.
        async with slots:
            raw = await upload.read()
            image = await decode_uploaded(upload, name)
            probabilities = await batcher.predict(image[None], timeout_s=timeout_s)
            prediction = int(probabilities[0].argmax())
            try:  # in a thread of its own: the decoding threads stay free for /predict
                sha, duplicate = await asyncio.to_thread(
                    spool.add, image, raw, label, prediction, model
                )
            except SpoolFull as error:
                raise ClientError(507, str(error)) from None
            except SpoolConflict as error:
                raise ClientError(409, str(error)) from None
            except SpoolError as error:  # the folder gone bad: the server's log says where
                print(f"mnist-serve: POST /feedback: {error}", file=sys.stderr, flush=True)
                raise ClientError(500, "the feedback folder cannot keep the sample: "
                                       "the server's log says why") from None  # fmt: skip
    return {"sha256": sha, "label": label, "prediction": prediction, "duplicate": duplicate}
