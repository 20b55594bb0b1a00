"""A local web server for the end-to-end tests that records every request it receives, over HTTP or
over HTTPS with a trustme certificate: what a sender's image server would learn about the reader.

By default every path answers with a small PNG (coloured by `Recorder.colours`, grey otherwise) and
a cookie, which a client that keeps cookies would send back; `Recorder.routes` overrides single
paths (pages, redirects). Both servers of a test may share one Recorder: each request records the
scheme it came in on.
"""

from __future__ import annotations

import ssl
import struct
import threading
import zlib
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Final

import trustme

GREY: Final = (128, 128, 128)
# Hosts the HTTPS server's certificate is valid for.
TLS_NAMES: Final = ("localhost", "127.0.0.1")

Headers = dict[str, list[str]]


def png(rgb: tuple[int, int, int]) -> bytes:
    """A 1x1 PNG of one colour (a page stretches it to the size it wants)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)  # 1x1, 8-bit RGB
    pixels = zlib.compress(b"\x00" + bytes(rgb))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


@dataclass(frozen=True)
class Reply:
    status: int = 200
    headers: Sequence[tuple[str, str]] = ()
    body: bytes = b""


@dataclass(frozen=True)
class Request:
    scheme: str  # "http" or "https"
    path: str
    headers: Headers  # lower-case name -> every value sent


@dataclass
class Recorder:
    """Every request the servers received, and how they answer."""

    # Path suffix -> colour of the PNG served there, so a screenshot shows which image is which.
    colours: Mapping[str, tuple[int, int, int]] = field(default_factory=dict)
    # The Set-Cookie headers of every default reply.
    cookies: Sequence[str] = ("session=SECRET; Path=/",)
    routes: dict[str, Reply] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def reply(self, path: str) -> Reply:
        with self.lock:
            route = self.routes.get(path)
        if route is not None:
            return route
        colour = next((c for suffix, c in self.colours.items() if path.endswith(suffix)), GREY)
        return self._ok("image/png", png(colour))

    def page(self, path: str, html: str) -> None:
        """Serve `html` at `path` (with the cookie, like an image)."""
        reply = self._ok("text/html; charset=utf-8", html.encode("utf-8"))
        with self.lock:
            self.routes[path] = reply

    def _ok(self, kind: str, body: bytes) -> Reply:
        headers = [("Content-Type", kind), ("Cache-Control", "no-store")]
        return Reply(200, headers + [("Set-Cookie", c) for c in self.cookies], body)

    def paths(self) -> list[str]:
        with self.lock:
            return [r.path for r in self.requests]

    def headers_of(self, path: str) -> Headers:
        """The headers of the last request for `path`."""
        with self.lock:
            matches = [r.headers for r in self.requests if r.path == path]
        assert matches, f"{path} never reached the server; it saw {self.paths()}"
        return matches[-1]

    def under(self, prefix: str) -> dict[str, list[Request]]:
        """Path without `prefix` -> each request for it, for the paths under `prefix`/."""
        out: dict[str, list[Request]] = {}
        with self.lock:
            for r in self.requests:
                if r.path.startswith(prefix + "/"):
                    out.setdefault(r.path[len(prefix) :], []).append(r)
        return out


class _Server(ThreadingHTTPServer):
    def __init__(self, host: str, recorder: Recorder, tls: ssl.SSLContext | None) -> None:
        self.recorder = recorder
        self.tls = tls
        self.scheme = "http" if tls is None else "https"
        super().__init__((host, 0), _Handler)

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def finish_request(self, request: Any, client_address: Any) -> None:
        if self.tls is None:
            super().finish_request(request, client_address)
            return
        # The handshake runs in the connection's own thread, not in the accepting one, where a
        # client that never completes it would stall every other connection.
        try:
            conn = self.tls.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            return  # a client that does not trust the certificate: it never sends a request
        with conn:
            super().finish_request(conn, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def do_GET(self) -> None:
        recorder = self.server.recorder
        headers: Headers = {}
        for name, value in self.headers.items():
            headers.setdefault(name.lower(), []).append(value)
        with recorder.lock:
            recorder.requests.append(Request(self.server.scheme, self.path, headers))
        reply = recorder.reply(self.path)
        self.send_response(reply.status)
        for name, value in reply.headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        self.wfile.write(reply.body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@dataclass(frozen=True)
class Servers:
    """A running plain HTTP server and an HTTPS one, sharing one Recorder."""

    recorder: Recorder
    http_port: int
    https_port: int
    ca: trustme.CA  # the HTTPS certificate's issuer, for clients (and mitmproxy) to trust

    def origin(self, scheme: str, host: str = "127.0.0.1") -> str:
        return f"{scheme}://{host}:{self.http_port if scheme == 'http' else self.https_port}"


def server_tls(ca: trustme.CA, names: Sequence[str] = TLS_NAMES) -> ssl.SSLContext:
    """A server-side context with a certificate from `ca` for `names`."""
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(*names).configure_cert(tls)
    return tls


@contextmanager
def serving(recorder: Recorder, host: str = "127.0.0.1", tls: ssl.SSLContext | None = None) -> Iterator[int]:
    """One recording server on `host` (HTTPS with `tls`), for the block; yields its port."""
    server = _Server(host, recorder, tls)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.port
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def http_and_https(recorder: Recorder, host: str = "127.0.0.1") -> Iterator[Servers]:
    """A plain HTTP and an HTTPS recording server on `host`, the latter with a certificate from a
    fresh trustme CA."""
    ca = trustme.CA()
    with serving(recorder, host) as http_port, serving(recorder, host, server_tls(ca)) as https_port:
        yield Servers(recorder, http_port, https_port, ca)
