"""mnist_dvc/serving/protocol.py in-process, driven as uvicorn drives it but without a socket: a
request's head over the limit is answered 431, a head or a body past its deadline 408, and the
server's half of the connection is shut; what the client still sends is dropped until the
connection closes. It subclasses uvicorn's private HttpToolsProtocol, so an upgrade that
changes what the subclass relies on fails here, in a second (tests/serving/test_server.py
checks the same over real sockets, slowly)."""

from __future__ import annotations

import asyncio

from uvicorn.config import Config
from uvicorn.server import ServerState

from mnist_dvc.serving.protocol import with_limits

DEADLINE_S = 0.05


class Transport(asyncio.Transport):
    """What the protocol writes, and whether it closed the connection."""

    def __init__(self) -> None:
        super().__init__()
        self.written = bytearray()
        self.closed = False
        self.shut = False  # write_eof: the server's half is shut, the client's still open

    def get_extra_info(self, name: str, default: object = None) -> object:
        return default

    def write(self, data: bytes) -> None:
        self.written += data

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        self.shut = True

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


async def waits_for_the_body(_scope, receive, _send) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


def answers(
    chunks: list[bytes], wait_s: float, later: list[bytes] = (), linger_s: float = 10.0
) -> tuple[bytes, Transport]:
    """What one connection is answered after `chunks` arrive and `wait_s` more seconds pass
    (then `later` arrives, and as long again passes), and its transport."""

    async def connection() -> tuple[bytes, bool]:
        config = Config(
            app=waits_for_the_body,
            http=type("P", (with_limits(DEADLINE_S, DEADLINE_S),), {"linger_s": linger_s}),
            log_config=None,
            lifespan="off",
        )
        config.load()
        protocol = config.http_protocol_class(
            config=config,
            server_state=ServerState(),
            app_state={},
            _loop=asyncio.get_running_loop(),
        )
        transport = Transport()
        protocol.connection_made(transport)
        for chunk in chunks:
            protocol.data_received(chunk)
        await asyncio.sleep(wait_s)
        if later:
            for chunk in later:
                protocol.data_received(chunk)
            await asyncio.sleep(wait_s)
        protocol.connection_lost(None)
        await asyncio.sleep(0)  # the app sees the disconnection and ends
        return bytes(transport.written), transport

    return asyncio.run(connection())


def test_a_head_over_the_limit_is_431_and_closed():
    head = b"GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + b"a" * (40 << 10)
    written, transport = answers([head], 0)
    assert written.startswith(b"HTTP/1.1 431 Request Header Fields Too Large\r\n")
    assert transport.shut  # the server's half; the client reads the refusal, then ends
    assert written.endswith(b'{"detail":"the request\'s line and headers are over 32 KiB"}')


def test_a_late_head_is_408_and_closed():
    written, transport = answers([b"GET / HTTP/1.1\r\nHost: a\r\n"], 4 * DEADLINE_S)
    assert written.startswith(b"HTTP/1.1 408 Request Timeout\r\n") and transport.shut
    assert b"line and headers did not arrive within 0.05 s" in written


def test_a_late_body_is_408_and_closed():
    head = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n"
    written, transport = answers([head, b"12345"], 4 * DEADLINE_S)
    assert written.startswith(b"HTTP/1.1 408 Request Timeout\r\n") and transport.shut
    assert b"body did not arrive within 0.05 s" in written


def test_what_a_refused_client_still_sends_is_dropped_until_the_linger_ends():
    """Closing with unread data would send a reset that can destroy the refusal unread."""
    head = b"GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + b"a" * (40 << 10)
    again = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"  # parsed, it would be answered
    written, transport = answers([head], DEADLINE_S, later=[b"a" * 4096, again], linger_s=0.02)
    assert written.count(b"HTTP/1.1 ") == 1 and written.startswith(b"HTTP/1.1 431 ")
    assert transport.closed  # at the end of the linger, though the client never ended
