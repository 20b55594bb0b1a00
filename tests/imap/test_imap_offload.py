"""Rewrites off the event loop: the sans-IO session hands a ``RewriteJob`` out and resumes on
``rewrite_done``; through the asyncio shell, other sessions are served while a message is
rewritten."""

from __future__ import annotations

import imaplib
import threading
import time
from typing import Any

import pytest
from imap_support import PASSWORD, USER, Dovecot, MakeProxy

from mailproxy.imap import LocalProtocolError, RewriteJob, Session

GREETING = b"* OK [CAPABILITY IMAP4rev1 IDLE LITERAL+] ready.\r\n"
MESSAGE = b"Content-Type: text/html\r\n\r\n<img src=TRACKER>\r\n" + b"x" * 200 + b"\r\n"
REWRITTEN = MESSAGE.replace(b"TRACKER", b"-------")


def rewriter(raw: bytes, user: str | None) -> bytes:
    return raw.replace(b"TRACKER", b"-------")


def fetch(n: int, uid: int, body: bytes) -> bytes:
    return b"* %d FETCH (UID %d BODY[] {%d}\r\n%s)\r\n" % (n, uid, len(body), body)


def deferred_session() -> Session:
    s = Session(rewriter, defer_rewrites=True)
    s.receive_server(GREETING)
    s.receive_client(b"a LOGIN bob@example.com secret\r\n")
    s.receive_server(b"a OK Logged in\r\n")
    s.receive_client(b"b SELECT INBOX\r\n")
    s.receive_server(b"* OK [UIDVALIDITY 5] ok\r\nb OK Select completed.\r\n")
    return s


def test_rewrite_is_handed_out_and_the_stream_resumes_in_order() -> None:
    s = deferred_session()
    s.receive_client(b"c UID FETCH 1:2 BODY.PEEK[]\r\n")
    out = s.receive_server(b"* 1 FLAGS (\\Seen)\r\n" + fetch(1, 1, MESSAGE) + fetch(2, 2, MESSAGE))
    # What came before the FETCH goes out at once; the FETCH waits for its rewrite.
    assert out.to_client == b"* 1 FLAGS (\\Seen)\r\n"
    assert out.rewrite == RewriteJob(MESSAGE, "bob@example.com")
    assert s.rewrite_pending
    # Meanwhile bytes from both sides are only buffered: nothing overtakes the held response.
    assert s.receive_server(b"c OK Fetch completed.\r\n").to_client == b""
    assert s.receive_client(b"d NOOP\r\n").to_server == b""
    out = s.rewrite_done(REWRITTEN)
    assert out.to_client == fetch(1, 1, REWRITTEN)
    assert out.rewrite == RewriteJob(MESSAGE, "bob@example.com")  # the second message
    out = s.rewrite_done(REWRITTEN)
    assert out.rewrite is None and not s.rewrite_pending
    assert out.to_client == fetch(2, 2, REWRITTEN) + b"c OK Fetch completed.\r\n"
    assert out.to_server == b"d NOOP\r\n"
    assert s.stats.fetch_responses == 2 and s.stats.messages_rewritten == 2


def test_without_defer_the_session_rewrites_inline() -> None:
    s = Session(rewriter)
    s.receive_server(GREETING)
    out = s.receive_server(fetch(1, 1, MESSAGE))
    assert out.rewrite is None and out.to_client == fetch(1, 1, REWRITTEN)


def test_a_fetch_without_a_body_needs_no_job() -> None:
    s = deferred_session()
    out = s.receive_server(b"* 1 FETCH (UID 1 FLAGS (\\Seen))\r\n")
    assert out.rewrite is None and out.to_client == b"* 1 FETCH (UID 1 FLAGS (\\Seen))\r\n"


def test_rewrite_done_without_a_job_is_a_local_error() -> None:
    s = deferred_session()
    with pytest.raises(LocalProtocolError):
        s.rewrite_done(b"x")


def test_other_sessions_are_served_while_a_message_is_rewritten(
    make_proxy: MakeProxy, dovecot: Dovecot
) -> None:
    started, release = threading.Event(), threading.Event()
    from mailproxy.engine import Engine
    from mailproxy.imap import EngineRewriter

    real = EngineRewriter(Engine())

    def slow(raw: bytes, user: str | None) -> bytes:
        # A stand-in for a large message: blocks its worker thread until the test lets it go.
        started.set()
        release.wait(20)
        return real(raw, user)

    p = make_proxy(slow)
    other = imaplib.IMAP4("127.0.0.1", p.port, timeout=10)
    other.login(USER, PASSWORD)
    result: dict[str, tuple[str, list[Any]]] = {}

    def fetch_big() -> None:
        c = imaplib.IMAP4("127.0.0.1", p.port, timeout=30)
        c.login(USER, PASSWORD)
        c.select("INBOX", readonly=True)
        result["fetch"] = c.uid("FETCH", "1", "(BODY.PEEK[])")
        c.logout()

    t = threading.Thread(target=fetch_big)
    t.start()
    try:
        assert started.wait(10), "the rewrite never started"
        t0 = time.monotonic()
        assert other.noop()[0] == "OK"
        assert other.select("INBOX", readonly=True)[0] == "OK"
        elapsed = time.monotonic() - t0
        assert not release.is_set() and "fetch" not in result  # still rewriting
        assert elapsed < 2
    finally:
        release.set()
        t.join(30)
    typ, data = result["fetch"]
    assert typ == "OK"
    body = data[0][1]
    first = next(iter(dovecot.messages.values()))
    assert len(body) == len(first) and body == real(first, USER)
    other.logout()
