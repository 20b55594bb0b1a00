"""Helpers shared by the IMAP integration tests and their fixtures (conftest.py)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import quopri
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trustme

# The Dovecot launcher is shared with the benchmarks; the tests import these names from here.
from bench.dovecot import DOVECOT as DOVECOT
from bench.dovecot import PASSWORD as PASSWORD
from bench.dovecot import free_port as free_port
from bench.dovecot import wait_port as wait_port
from mailproxy.imap import ImapProxy, ProxySettings, Rewriter

USER = "testuser@example.com"
TRACKER = b"pixel.mailchimp.com"
LOGO = b"cdn.example.org/images/logo.png"


def _html(words: int) -> bytes:
    return (
        b"<html><body><p>Hello reader, here is the news of the week.</p>\r\n"
        b'<img src="https://cdn.example.org/images/logo.png" width="200" height="60" '
        b'alt="Logo">\r\n'
        + b"<p>Lorem ipsum dolor sit amet, consectetur adipiscing elit.</p>\r\n"
        * words
        + b'<img src="https://pixel.mailchimp.com/open.gif?u=abc123&id=42" '
        b'width="1" height="1" alt="">\r\n'
        b"</body></html>\r\n"
    )


def _crlf(data: bytes) -> bytes:
    return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def _headers(subject: str, extra: str = "") -> bytes:
    return (
        f"From: News <news@shop.example.org>\r\nTo: {USER}\r\nSubject: {subject}\r\n"
        f"Date: Mon, 06 Jan 2025 10:00:00 +0000\r\nMessage-ID: <{subject.replace(' ', '.')}@x>\r\n"
        f"MIME-Version: 1.0\r\n{extra}"
    ).encode()


def build_messages() -> dict[str, bytes]:
    qp = _crlf(quopri.encodestring(_html(20)))
    b64 = _crlf(base64.encodebytes(_html(10)))
    big = _crlf(quopri.encodestring(_html(4000)))  # about 260 KB: a real chunk walk
    inner = _headers("inner", "Content-Type: text/html; charset=utf-8\r\n") + b"\r\n" + _html(3)
    return {
        "qp alternative": _headers("qp alternative", "Content-Type: multipart/alternative; boundary=B1\r\n")
        + b"\r\n--B1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nHello reader.\r\n"
        b"--B1\r\nContent-Type: text/html; charset=utf-8\r\n"
        b"Content-Transfer-Encoding: quoted-printable\r\n"
        b"\r\n" + qp + b"\r\n--B1--\r\n",
        "base64 html": _headers(
            "base64 html",
            "Content-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n",
        )
        + b"\r\n"
        + b64,
        "plain text": _headers("plain text", "Content-Type: text/plain\r\n")
        + b"\r\nJust text, see https://pixel.mailchimp.com/open.gif in words.\r\n",
        "big newsletter": _headers(
            "big newsletter",
            "Content-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n",
        )
        + b"\r\n"
        + big,
        "forwarded": _headers("forwarded", "Content-Type: multipart/mixed; boundary=B2\r\n")
        + b"\r\n--B2\r\nContent-Type: text/plain\r\n\r\nSee attached.\r\n"
        b"--B2\r\nContent-Type: message/rfc822\r\n\r\n" + inner + b"\r\n--B2--\r\n",
    }


@dataclass
class Dovecot:
    dir: Path
    port: int
    tls_port: int
    ca: trustme.CA
    ca_file: Path
    messages: dict[str, bytes]
    home: Path
    log: Path = field(default_factory=Path)


class ProxyThread:
    """An ImapProxy on its own event loop in a daemon thread."""

    def __init__(self, settings: ProxySettings, rewriter: Rewriter) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.proxy = ImapProxy(settings, rewriter)

    def call(self, coro: Any, timeout: float = 30) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def start(self) -> ProxyThread:
        self.thread.start()
        self.call(self.proxy.start())
        return self

    @property
    def port(self) -> int:
        return self.proxy.address[1]

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self.call(self.proxy.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


MakeProxy = Callable[..., ProxyThread]

CRASH = b"CRASH-THE-WORKER"


class CrashingEngine:
    """The engine, except that it kills its process on a message naming ``CRASH`` (built in a
    rewrite worker process from this picklable class, for the fault test)."""

    def __init__(self) -> None:
        from mailproxy.engine import Engine

        self._engine = Engine()

    def rewrite(self, raw: bytes, *, recipients: Any = (), user: str | None = None) -> Any:
        if CRASH in raw:
            os._exit(3)
        return self._engine.rewrite(raw, recipients=recipients, user=user)
