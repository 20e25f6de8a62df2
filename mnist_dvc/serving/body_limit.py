"""The request body's size limit, as ASGI middleware: a body over MAX_BODY_BYTES is answered 413
before it is read, at once by its Content-Length, or, for a chunked body, as soon as the bytes
read pass the limit; the connection is then closed, so the rest is never read.
"""

from __future__ import annotations

from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# A request body: an upload of a phone photo fits; a JSON batch of MAX_INSTANCES images
# (mnist_dvc/serving/bodies.py) written with full float precision (~17 KB each) fits too.
MAX_BODY_BYTES = 8 << 20


class BodyTooLarge(Exception):
    """A chunked body passed the limit as it was read: the app answers it 413."""


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
