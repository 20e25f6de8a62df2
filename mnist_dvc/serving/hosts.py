"""Which Host headers mnist-serve answers: a defence against DNS rebinding.

A web page on any site can make the visitor's browser send requests to a name its owner
controls, then point that name at 127.0.0.1: the browser sees one origin and lets the page read
the answers of a server that listens on the visitor's own machine (GET /model, POST /predict).
Such a request still carries the attacker's name in its Host header, so a server that answers
only the names it is reached by refuses it: by default, when it listens on a loopback address,
`localhost`, `127.0.0.1` and `[::1]` (any port); when it listens on another address, that
address and the loopback names; on every address (0.0.0.0, ::), any name, unless
`--allowed-host` lists them. Anything else is answered 400 before the app sees it.
"""

from __future__ import annotations

import ipaddress

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
WILDCARDS = ("0.0.0.0", "::", "")
ANY = "*"
MAX_SHOWN = 60  # characters of a refused Host header quoted in the answer


def default_hosts(listen: str) -> tuple[str, ...]:
    """The names a server listening on `listen` answers by default (see the module's doc)."""
    if listen in WILDCARDS:
        return (ANY,)
    return tuple(dict.fromkeys((*LOOPBACK_NAMES, listen.strip("[]").lower())))


def host_name(header: str) -> str:
    """The name in a Host header, without its port: `[::1]:8000` -> `::1`."""
    header = header.strip().lower()
    if header.startswith("["):  # an IPv6 address, bracketed
        return header[1:].partition("]")[0]
    name, _, port = header.rpartition(":")
    if name and port.isdigit():
        return name
    return header


def _is_loopback(name: str) -> bool:
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


class TrustedHosts:
    """ASGI middleware: 400 for a request whose Host header names none of `allowed`."""

    def __init__(self, app: ASGIApp, allowed: tuple[str, ...]) -> None:
        self.app = app
        self.allowed = frozenset(name.strip("[]").lower() for name in allowed)
        # 127.0.0.2 and the rest of 127/8 are this machine too, when 127.0.0.1 is allowed.
        self.any_loopback = "127.0.0.1" in self.allowed

    def allows(self, header: str | None) -> bool:
        if ANY in self.allowed:
            return True
        if header is None:  # HTTP/1.0 without a Host: no browser sends that
            return False
        name = host_name(header)
        return name in self.allowed or (self.any_loopback and _is_loopback(name))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        raw = dict(scope["headers"]).get(b"host")
        header = None if raw is None else raw.decode("latin-1")
        if self.allows(header):
            await self.app(scope, receive, send)
            return
        shown = "no Host header" if header is None else f"the Host header {header[:MAX_SHOWN]!r}"
        detail = (
            f"{shown} names no host this server answers to (DNS rebinding?); start mnist-serve "
            "with --allowed-host NAME for each name it is reached by"
        )
        await JSONResponse({"detail": detail}, 400, headers={"Connection": "close"})(
            scope, receive, send
        )
