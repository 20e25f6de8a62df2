"""HTTP(S) downloads with a total deadline, whose credentials stay with the server they are for.

The deadline covers the whole exchange: connecting, the response's head and every byte of its
body, across redirects. A socket timeout alone bounds only each wait for data, so a server that
sends one byte a second would hold a download for days; here a timer shuts the connection's
socket down when the time is up, whatever the download is waiting for, and the time left is
checked between reads. (Name resolution is the system resolver's, with its own timeouts.)

Credentials (`https://user:password@host/...`, sent as HTTP basic authentication) go to the
URL's own scheme, host and port only: a redirect elsewhere is followed without them. Redirects
go to http and https URLs only, at most five, and the body of a redirect is never read.
"""

from __future__ import annotations

import base64
import http.client
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import BinaryIO
from urllib.parse import ParseResult, unquote, urlparse, urlunparse

from mnist_dvc.errors import ProjectError, describe
from mnist_dvc.quoting import quote
from mnist_dvc.redact import redact

MAX_REDIRECTS = 5
BLOCK = 1 << 16  # bytes per read: the deadline is checked between reads
DEFAULT_PORTS = {"http": 80, "https": 443}


class Deadline:
    """A total time limit for one download, enforced on every socket it opens."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.end = time.monotonic() + seconds
        self.expired = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()

    def left(self) -> float:
        """The seconds left; TimeoutError once there are none."""
        left = self.end - time.monotonic()
        if left <= 0:
            self.expired = True
            raise TimeoutError
        return left

    def watch(self, sock: socket.socket) -> None:
        """Shut `sock` down when the deadline passes. A duplicate is kept, not `sock` itself:
        TLS takes the socket's descriptor over from the object that connected it."""
        with self._lock:
            self._sockets.append(sock.dup())
            if self.expired:
                _shut(self._sockets[-1])

    @contextmanager
    def enforced(self) -> Iterator[None]:
        """Within the block, the deadline shuts down every watched socket when it passes."""
        timer = threading.Timer(max(self.end - time.monotonic(), 0), self._expire)
        timer.daemon = True
        timer.start()
        try:
            yield
        finally:
            timer.cancel()
            with self._lock:
                for sock in self._sockets:
                    sock.close()
                self._sockets.clear()

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            for sock in self._sockets:
                _shut(sock)


URL_SCHEMES = ("http", "https", "file")  # what a source may be, besides a plain path


def check_location(source: str) -> None:
    """Raise ValueError, in a settings file's words, unless `source` is a plain path or an
    https, http or file URL that can be opened: a path with a NUL byte (open() refuses it) and a
    port that is not a number are refused when the settings are read, not mid-fetch."""
    parsed = urlparse(source)
    if parsed.scheme not in ("", *URL_SCHEMES):
        raise ValueError(f"use an https, http or file URL or a path (got {quote(source)})")
    if parsed.scheme in ("", "file") and "\x00" in unquote(source):
        raise ValueError(f"a path cannot hold a NUL byte (got {quote(source)})")
    try:
        parsed.port  # noqa: B018 (it raises for a port that is not a number)
    except ValueError:
        port = f"its port is not a number from 0 to 65535 (got {quote(source)})"
        raise ValueError(port) from None


def _shut(sock: socket.socket) -> None:
    # A read blocked on the connection (plain or TLS) returns at once.
    with suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


def download(
    url: str, dest: Path, *, timeout_s: float, at_most: int, error: type[ProjectError]
) -> None:
    """Copy the http(s) `url` to `dest` within `timeout_s` seconds in all, refusing a body of
    more than `at_most` bytes or an HTML page; `error` with one line (the file's name and the
    reason, credentials never shown) when it cannot."""
    parsed = urlparse(url)
    name = Path(parsed.path).name or redact(url)
    deadline = Deadline(timeout_s)
    try:
        with (
            deadline.enforced(),
            _opener(deadline).open(_request(parsed), timeout=deadline.left()) as response,
        ):
            _check_head(response, name, at_most, error)
            with open(dest, "wb") as out:
                _copy(response, out, at_most, name, deadline, error)
    except urllib.error.HTTPError as failed:
        failed.close()
        raise error(f"{name}: HTTP {failed.code} {failed.reason}") from None
    except (OSError, http.client.HTTPException) as failed:  # URLError is an OSError
        if deadline.expired or isinstance(failed, TimeoutError):
            raise error(f"{name}: timed out after {timeout_s:g} s") from None
        reason = getattr(failed, "reason", failed)
        text = describe(reason) if isinstance(reason, BaseException) else str(reason)
        raise error(redact(f"{name}: {text}")) from None
    except ValueError as failed:  # a URL (or a redirect's) whose port is not a number
        raise error(redact(f"{name}: not a URL that can be fetched: {describe(failed)}")) from None


def _check_head(response, name: str, at_most: int, error: type[ProjectError]) -> None:
    if response.headers.get_content_type() == "text/html":
        raise error(f"{name}: got an HTML page, not data")
    length = response.headers.get("Content-Length")
    if length and length.isdigit() and int(length) > at_most:
        raise error(f"{name}: {length} bytes, larger than the file can be (at most {at_most})")


def _copy(
    response, out: BinaryIO, limit: int, name: str, deadline: Deadline, error: type[ProjectError]
) -> None:
    copied = 0
    while True:
        deadline.left()
        block = response.read1(BLOCK)  # what one read gives: a trickle cannot fill a block
        if not block:
            break
        copied += len(block)
        if copied > limit:
            raise error(f"{name}: more than {limit} bytes, larger than the file can be")
        out.write(block)
    if deadline.expired:  # the timer shut the socket: the end of the data was not its end
        raise TimeoutError
    if response.length:  # http.client takes a body cut short of its Content-Length as ended
        expected = copied + response.length
        raise error(f"{name}: the connection closed after {copied} of {expected} bytes")


def _request(parsed: ParseResult) -> urllib.request.Request:
    """The request for a URL, its credentials (if any) as HTTP basic authentication: urllib
    itself reads `user:password@` as part of the host name."""
    request = urllib.request.Request(urlunparse(_without_userinfo(parsed)))
    if parsed.username is not None:
        pair = f"{unquote(parsed.username)}:{unquote(parsed.password or '')}".encode()
        request.add_header("Authorization", "Basic " + base64.b64encode(pair).decode())
    return request


def _without_userinfo(parsed: ParseResult) -> ParseResult:
    host = parsed.hostname or ""
    if ":" in host:  # an IPv6 address
        host = f"[{host}]"
    return parsed._replace(netloc=host + (f":{parsed.port}" if parsed.port else ""))


def _origin(url: str) -> tuple[str, str, int | None]:
    parsed = urlparse(url)
    scheme = parsed.scheme.lower()
    return scheme, (parsed.hostname or "").lower(), parsed.port or DEFAULT_PORTS.get(scheme)


def _opener(deadline: Deadline) -> urllib.request.OpenerDirector:
    """urllib with proxies from the environment, http and https only (no ftp, file or data
    URL, whatever a redirect names), every connection under `deadline`."""
    opener = urllib.request.OpenerDirector()
    for handler in (
        urllib.request.ProxyHandler(),
        urllib.request.UnknownHandler(),
        _HTTPHandler(deadline),
        _HTTPSHandler(deadline),
        urllib.request.HTTPDefaultErrorHandler(),
        _Redirects(deadline),
        urllib.request.HTTPErrorProcessor(),
    ):
        opener.add_handler(handler)
    return opener


class _Redirects(urllib.request.HTTPRedirectHandler):
    """Redirects followed with the time left, to http(s) only, credentials kept to their
    origin; a redirect's body is not read (an endless one would never end)."""

    max_redirections = MAX_REDIRECTS

    def __init__(self, deadline: Deadline) -> None:
        self.deadline = deadline

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        fp.close()
        moved = urlparse(newurl)
        if moved.scheme.lower() not in DEFAULT_PORTS:
            raise urllib.error.URLError(
                f"redirected to {redact(newurl)}: only http and https URLs are followed"
            )
        new = super().redirect_request(
            req, fp, code, msg, headers, urlunparse(_without_userinfo(moved))
        )
        if new is not None and _origin(new.full_url) != _origin(req.full_url):
            new.remove_header("Authorization")  # for this server only, not the next
        req.timeout = self.deadline.left()  # urllib opens the next URL with the time left
        return new


def _watched(cls: type[http.client.HTTPConnection]) -> type[http.client.HTTPConnection]:
    """`cls` whose sockets are under a deadline from the moment they connect: a TLS handshake
    that trickles is cut off too."""

    class Watched(cls):
        def __init__(self, host: str, *, deadline: Deadline, **kwargs) -> None:
            super().__init__(host, **kwargs)

            def connect(*args, **options) -> socket.socket:
                sock = socket.create_connection(*args, **options)
                deadline.watch(sock)
                return sock

            self._create_connection = connect

    return Watched


_WatchedHTTPConnection = _watched(http.client.HTTPConnection)
_WatchedHTTPSConnection = _watched(http.client.HTTPSConnection)


class _HTTPHandler(urllib.request.HTTPHandler):
    def __init__(self, deadline: Deadline) -> None:
        super().__init__()
        self.deadline = deadline

    def http_open(self, req):
        return self.do_open(_WatchedHTTPConnection, req, deadline=self.deadline)


class _HTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, deadline: Deadline) -> None:
        super().__init__()
        self.deadline = deadline

    def https_open(self, req):
        return self.do_open(_WatchedHTTPSConnection, req, deadline=self.deadline)
