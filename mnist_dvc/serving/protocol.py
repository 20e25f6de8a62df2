"""uvicorn's httptools protocol with deadlines for each request's head and body, and a limit on
the head's size.

uvicorn times out a kept-alive connection that stays silent between requests, but not one that
sends its request line and headers slowly, or not at all after connecting (twenty such
connections, a "slowloris", stayed open for as long as their clients liked), nor one that sends
its body one byte at a time, and it reads headers of any size (four connections sent 50-67 MB
of headers each). Here:
- every connection must finish a request's head within `head_timeout_s` of connecting, or of
  the first byte of its next request;
- the body must then arrive whole within `body_timeout_s` of the head;
- the head may have at most MAX_HEAD_BYTES: past them the connection is answered 431 and
  closed, before the parser has kept more than one more read's worth.
A late request gets a 408 with a JSON `detail`, as every refusal does, unless an answer is
already under way; either way the connection is closed. It is closed as nginx's "lingering
close" does: the answer is sent, then the server's half is shut and what the client still sends
is read and dropped for up to `linger_s`, since closing a socket with unread data sends a reset
that can destroy the answer before the client reads it. (The body's size is limited by the
app, mnist_dvc/serving/body_limit.py, and the answer by the model's timeout.)
"""

from __future__ import annotations

import asyncio

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

HEAD_TIMEOUT_S = 10.0
BODY_TIMEOUT_S = 60.0  # the largest body, 8 MiB, at 140 KB/s
MAX_HEAD_BYTES = 32 << 10  # a browser's request line and headers, cookies and all, are a few KB
LINGER_S = 2.0  # a refused client has this long to read the answer and stop sending

REASONS = {408: "Request Timeout", 431: "Request Header Fields Too Large"}


def _refusal(status: int, detail: str) -> bytes:
    body = orjson.dumps({"detail": detail})
    head = (
        f"HTTP/1.1 {status} {REASONS[status]}\r\ncontent-type: application/json\r\n"
        f"connection: close\r\ncontent-length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


class DeadlineProtocol(HttpToolsProtocol):
    """HttpToolsProtocol that closes a connection whose request head or body is late, or whose
    head is too large."""

    head_timeout_s = HEAD_TIMEOUT_S
    body_timeout_s = BODY_TIMEOUT_S
    max_head_bytes = MAX_HEAD_BYTES
    linger_s = LINGER_S
    _deadline: asyncio.TimerHandle | None = None
    _in_head = True  # between a request's first byte (or the connection's) and its headers' end
    _head_bytes = 0
    _lingering = False  # refused: what arrives is dropped until the client ends or LINGER_S

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm(self.head_timeout_s, "line and headers")

    def data_received(self, data: bytes) -> None:
        if self._lingering:
            return
        in_head = self._in_head
        super().data_received(data)
        # Counted after parsing, so that a read holding the head's end and some body counts
        # as the head done; a head that goes on is cut off within a read of the limit.
        if in_head and self._in_head and not self.transport.is_closing():
            self._head_bytes += len(data)
            if self._head_bytes > self.max_head_bytes:
                limit = f"{self.max_head_bytes >> 10} KiB"
                self._refuse(431, f"the request's line and headers are over {limit}")

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head, self._head_bytes = True, 0
        self._arm(self.head_timeout_s, "line and headers")  # the next request of a connection

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._arm(self.body_timeout_s, "body")
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._disarm()
        self._in_head, self._head_bytes = True, 0
        super().on_message_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self, seconds: float, what: str) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, self._late, seconds, what)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _late(self, seconds: float, what: str) -> None:
        self._deadline = None
        self._refuse(408, f"the request's {what} did not arrive within {seconds:g} s")

    def _refuse(self, status: int, detail: str) -> None:
        self._disarm()
        if self.transport.is_closing():
            return
        cycle = self.cycle
        if cycle is not None and cycle.response_started and not cycle.response_complete:
            self.transport.close()  # in the middle of an answer: no room for a refusal
            return
        self.transport.write(_refusal(status, detail))
        if not self.transport.can_write_eof():
            self.transport.close()
            return
        self.transport.write_eof()  # the refusal is whole; the client's EOF closes the rest
        self._lingering = True
        if cycle is not None and not cycle.response_complete:
            # The app may still be working on the request: as if the client had gone (what
            # connection_lost does), its answer is dropped and it reads a disconnect.
            cycle.disconnected = True
            cycle.message_event.set()
        self._deadline = self.loop.call_later(self.linger_s, self.transport.close)


def with_limits(
    head_timeout_s: float = HEAD_TIMEOUT_S, body_timeout_s: float = BODY_TIMEOUT_S
) -> type[DeadlineProtocol]:
    """The protocol class for uvicorn's `http=` with these deadlines."""
    return type(
        "DeadlineProtocol",
        (DeadlineProtocol,),
        {"head_timeout_s": head_timeout_s, "body_timeout_s": body_timeout_s},
    )
