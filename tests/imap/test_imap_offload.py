"""Rewrites off the event loop: the sans-IO session hands a ``RewriteJob`` out and resumes on
``rewrite_done``; through the asyncio shell, other sessions are served while a message is
rewritten."""

from __future__ import annotations

import imaplib
import re
import threading
import time
from typing import Any

import pytest
from imap_support import CRASH, PASSWORD, USER, CrashingEngine, Dovecot, MakeProxy

from mailproxy.engine import Engine, neutralize_message
from mailproxy.imap import EngineRewriter, LocalProtocolError, RewriteJob, Session

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
    out = s.receive_client(b"d NOOP\r\n")
    # A job is handed out once: an Output after it does not name it again (the shell would run it
    # twice).
    assert out.to_server == b"" and out.rewrite is None
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


def message(n: int) -> bytes:
    return MESSAGE.replace(b"x" * 200, b"%03d" % n + b"x" * 197)


def pipelined_session(max_jobs: int) -> Session:
    s = Session(rewriter, defer_rewrites=True, max_jobs=max_jobs)
    s.receive_server(GREETING)
    s.receive_client(b"a LOGIN bob@example.com secret\r\n")
    s.receive_server(b"a OK Logged in\r\n")
    return s


def test_jobs_of_one_fetch_run_side_by_side_and_the_output_keeps_server_order() -> None:
    s = pipelined_session(max_jobs=3)
    s.receive_client(b"c FETCH 1:4 BODY.PEEK[]\r\n")
    stream = b"".join(fetch(n, n, message(n)) for n in range(1, 5)) + b"c OK Fetch completed.\r\n"
    out = s.receive_server(stream)
    # Three jobs at once; the fourth message and the tagged reply wait.
    assert [j.whole for j in out.rewrites] == [message(1), message(2), message(3)]
    assert out.to_client == b"" and not s.wants_server_data
    jobs = list(out.rewrites)
    # Results in any order: nothing overtakes the first held response.
    out = s.rewrite_done(rewriter(message(3), None), jobs[2])
    assert out.to_client == b"" and [j.whole for j in out.rewrites] == [message(4)]
    jobs += out.rewrites
    assert s.receive_client(b"d NOOP\r\n").to_server == b""  # client bytes wait too
    out = s.rewrite_done(rewriter(message(1), None), jobs[0])
    assert out.to_client == fetch(1, 1, rewriter(message(1), None))
    out = s.rewrite_done(rewriter(message(4), None), jobs[3])
    assert out.to_client == b""
    out = s.rewrite_done(rewriter(message(2), None), jobs[1])
    assert (
        out.to_client
        == b"".join(fetch(n, n, rewriter(message(n), None)) for n in (2, 3, 4)) + b"c OK Fetch completed.\r\n"
    )
    assert out.to_server == b"d NOOP\r\n"
    assert not s.rewrite_pending and s.wants_server_data
    assert s.stats.fetch_responses == 4 and s.stats.messages_rewritten == 4


def test_a_tagged_reply_behind_held_responses_changes_nothing_until_they_are_out() -> None:
    s = pipelined_session(max_jobs=4)
    s.receive_client(b"b SELECT INBOX\r\n")
    s.receive_server(b"* OK [UIDVALIDITY 5] ok\r\nb OK Select completed.\r\n")
    s.receive_client(b"c FETCH 1 BODY.PEEK[]\r\n")
    s.receive_client(b"d SELECT Other\r\n")
    out = s.receive_server(
        fetch(1, 1, message(1))
        + b"c OK Fetch completed.\r\n* OK [UIDVALIDITY 9] ok\r\nd OK Select completed.\r\n"
    )
    assert len(out.rewrites) == 1
    # The tagged reply stops reading: the untagged one after it is not even looked at yet.
    assert not s.wants_server_data and s.mailbox == b"INBOX" and s.uidvalidity == 5
    out = s.rewrite_done(rewriter(message(1), None))
    assert out.to_client.endswith(b"d OK Select completed.\r\n")
    assert s.mailbox == b"Other" and s.uidvalidity == 9


def test_messages_needing_no_job_behind_a_held_one_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    import mailproxy.imap._session as session_module

    monkeypatch.setattr(session_module, "_MAX_HELD_BYTES", 2000)
    plain = b"From: a@example.com\r\nContent-Type: text/plain\r\n\r\n" + b"y" * 600 + b"\r\n"
    s = Session(rewriter, defer_rewrites=True, max_jobs=2, may_change=lambda raw: b"html" in raw)
    s.receive_server(GREETING)
    stream = fetch(1, 1, message(1)) + b"".join(fetch(n, n, plain) for n in range(2, 12))
    out = s.receive_server(stream)
    assert len(out.rewrites) == 1 and out.to_client == b""
    assert not s.wants_server_data  # about 2000 bytes held: the rest stays unread
    out = s.rewrite_done(rewriter(message(1), None))
    assert out.to_client == fetch(1, 1, rewriter(message(1), None)) + b"".join(
        fetch(n, n, plain) for n in range(2, 12)
    )


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


def test_worker_processes_rewrite_like_the_engine_and_a_dead_one_ends_only_its_session(
    make_proxy: MakeProxy, dovecot: Dovecot
) -> None:
    recorded: list[str | None] = []
    # Workers build a CrashingEngine; this process's rewrite thread uses the plain engine.
    rewriter = EngineRewriter(Engine(), lambda result, user: recorded.append(user), factory=CrashingEngine)
    p = make_proxy(rewriter, rewrite_workers=2)
    assert p.proxy.max_jobs == 3  # one more job than workers per session
    engine = Engine()

    def whole_mailbox(c: imaplib.IMAP4) -> list[bytes]:
        typ, data = c.uid("FETCH", "1:*", "(BODY.PEEK[])")
        assert typ == "OK"
        return sorted(part[1] for part in data if isinstance(part, tuple))

    reader = imaplib.IMAP4("127.0.0.1", p.port, timeout=60)
    reader.login(USER, PASSWORD)
    reader.select("INBOX", readonly=True)
    expected = sorted(engine.rewrite(m, user=USER).data for m in dovecot.messages.values())
    assert whole_mailbox(reader) == expected
    assert recorded and set(recorded) == {USER}  # results come back to this process's tracking log

    crash = (
        b"From: a@example.com\r\nSubject: crash\r\nContent-Type: text/html\r\n\r\n<p>"
        + CRASH
        + b' <img src="https://pixel.mailchimp.com/o.gif"></p>\r\n'
    )
    direct = imaplib.IMAP4("127.0.0.1", dovecot.port, timeout=10)
    direct.login(USER, PASSWORD)
    direct.create("Crash")
    direct.append("Crash", None, None, dovecot.messages["big newsletter"])
    direct.append("Crash", None, None, crash)
    direct.logout()
    victim = imaplib.IMAP4("127.0.0.1", p.port, timeout=60)
    victim.login(USER, PASSWORD)
    victim.select("Crash", readonly=True)
    # Alone, a message is rewritten in this process (no worker round trip)...
    typ, data = victim.uid("FETCH", "2", "(BODY.PEEK[])")
    assert typ == "OK" and data[0][1] == engine.rewrite(crash, user=USER).data  # type: ignore[index]
    # ...behind another one it goes to a worker, which dies in the middle of it: the messages the
    # dead pool held are delivered neutralized (same sizes, nothing loads), the session goes on,
    # the others too, and later rewrites get new workers.
    typ, data = victim.uid("FETCH", "1:2", "(BODY.PEEK[])")
    assert typ == "OK"
    bodies = {int(re.search(rb"UID (\d+)", p[0]).group(1)): p[1] for p in data if isinstance(p, tuple)}  # type: ignore[union-attr]
    assert bodies[2] == neutralize_message(crash)
    assert len(bodies[1]) == len(dovecot.messages["big newsletter"])
    assert b"https://pixel.mailchimp.com" not in bodies[2]
    assert victim.noop()[0] == "OK"
    victim.logout()
    assert reader.noop()[0] == "OK"
    assert whole_mailbox(reader) == expected
    reader.logout()
