"""The sans-IO session: client bytes and server bytes in, bytes out (no sockets)."""

from __future__ import annotations

import base64
import logging

import pytest

from mailproxy.imap import RemoteProtocolError, RewriteCache, Session
from mailproxy.imap._fetch import MARKER_FIELD

GREETING = b"* OK [CAPABILITY IMAP4rev1 SASL-IR ID IDLE LITERAL+ STARTTLS AUTH=PLAIN] Dovecot ready.\r\n"
MESSAGE = (
    b"From: a@example.com\r\nContent-Type: text/html\r\n\r\n<img src=TRACKER>\r\n" + b"x" * 300 + b"\r\n"
)
REWRITTEN = MESSAGE.replace(b"TRACKER", b"-------")


def rewriter(raw: bytes, user: str | None) -> bytes:
    return raw.replace(b"TRACKER", b"-------")


def lit(data: bytes) -> bytes:
    return b"{%d}\r\n" % len(data) + data


def new_session(**kw: object) -> Session:
    s = Session(rewriter, **kw)  # type: ignore[arg-type]
    out = s.receive_server(GREETING)
    assert out.to_client.startswith(b"* OK [CAPABILITY ")
    return s


def logged_in(**kw: object) -> Session:
    s = new_session(**kw)
    assert s.receive_client(b"a LOGIN bob@example.com secret\r\n").to_server == (
        b"a LOGIN bob@example.com secret\r\n"
    )
    s.receive_server(b"a OK [CAPABILITY IMAP4rev1 IDLE NOTIFY COMPRESS=DEFLATE] Logged in\r\n")
    assert s.user == "bob@example.com"
    s.receive_client(b"b SELECT INBOX\r\n")
    s.receive_server(
        b"* 3 EXISTS\r\n* OK [UIDVALIDITY 77] UIDs valid\r\nb OK [READ-WRITE] Select completed.\r\n"
    )
    assert (s.mailbox, s.uidvalidity) == (b"INBOX", 77)
    return s


def test_greeting_capabilities_are_filtered() -> None:
    s = Session(rewriter)
    out = s.receive_server(GREETING)
    assert (
        out.to_client == b"* OK [CAPABILITY IMAP4rev1 SASL-IR ID IDLE LITERAL+ AUTH=PLAIN] Dovecot ready.\r\n"
    )
    s = Session(rewriter, offer_starttls=True)
    assert s.receive_server(GREETING).to_client.count(b"STARTTLS") == 1
    s = Session(rewriter, login_disabled=True)
    greeting = s.receive_server(GREETING).to_client
    assert b"LOGINDISABLED" in greeting and b"AUTH=PLAIN" not in greeting


def test_post_login_capabilities_are_filtered_everywhere() -> None:
    s = new_session()
    s.receive_client(b"a LOGIN u p\r\n")
    out = s.receive_server(
        b"* CAPABILITY IMAP4rev1 COMPRESS=DEFLATE\r\na OK [CAPABILITY IMAP4rev1 NOTIFY BINARY] Logged in\r\n"
    )
    assert out.to_client == b"* CAPABILITY IMAP4rev1\r\na OK [CAPABILITY IMAP4rev1 BINARY] Logged in\r\n"


def test_non_fetch_traffic_is_byte_identical() -> None:
    s = logged_in()
    client = (
        b'c LIST "" "*"\r\nd STATUS INBOX (MESSAGES UIDNEXT)\r\ne UID SEARCH TEXT {5+}\r\nhello\r\n'
        b'f ENABLE CONDSTORE\r\ng ID ("name" "x")\r\n'
    )
    assert s.receive_client(client).to_server == client
    server = (
        b'* LIST (\\HasNoChildren) "/" INBOX\r\nc OK List completed\r\n'
        b"* STATUS INBOX (MESSAGES 3 UIDNEXT 4)\r\nd OK done\r\n* SEARCH 1 2\r\ne OK done\r\n"
        b"* 1 FETCH (FLAGS (\\Seen) MODSEQ (5))\r\n* 2 EXPUNGE\r\n* ENABLED CONDSTORE\r\nf OK\r\n"
        b'* ID ("name" "Dovecot")\r\ng OK\r\n'
    )
    assert s.receive_server(server).to_client == server


def test_whole_fetch_is_rewritten_and_never_extended() -> None:
    s = logged_in()
    cmd = b"c UID FETCH 1:3 (UID RFC822.SIZE BODY.PEEK[])\r\n"
    assert s.receive_client(cmd).to_server == cmd
    resp = b"* 1 FETCH (UID 5 RFC822.SIZE %d BODY[] " % len(MESSAGE) + lit(MESSAGE) + b")\r\nc OK\r\n"
    out = s.receive_server(resp)
    assert out.to_client == resp.replace(MESSAGE, REWRITTEN)
    assert s.stats.messages_rewritten == 1


def test_chunk_walk_extends_once_then_serves_from_cache() -> None:
    cache = RewriteCache()
    s = logged_in(cache=cache)
    size = len(MESSAGE)
    got = b""
    for n, o in enumerate(range(0, size, 100)):
        cmd = b"t%d UID FETCH 5 (UID RFC822.SIZE BODY.PEEK[]<%d.100>)\r\n" % (n, o)
        sent = s.receive_client(cmd).to_server
        chunk = MESSAGE[o : o + 100]
        if n == 0:
            assert sent == cmd.replace(
                b")\r\n", b" BODY.PEEK[] BODY.PEEK[HEADER.FIELDS (X-MAILPROXY-WHOLE)])\r\n"
            )
            resp = (
                b"* 1 FETCH (UID 5 RFC822.SIZE %d BODY[]<0> " % size
                + lit(chunk)
                + b" BODY[] "
                + lit(MESSAGE)
                + b" BODY[HEADER.FIELDS (X-MAILPROXY-WHOLE)] {2}\r\n\r\n)\r\n"
            )
        else:
            assert sent == cmd
            resp = b"* 1 FETCH (UID 5 RFC822.SIZE %d BODY[]<%d> " % (size, o) + lit(chunk) + b")\r\n"
        out = s.receive_server(resp + b"t%d OK Fetch completed.\r\n" % n).to_client
        expect = (
            b"* 1 FETCH (UID 5 RFC822.SIZE %d BODY[]<%d> " % (size, o)
            + lit(REWRITTEN[o : o + 100])
            + b")\r\n"
        )
        assert out == expect + b"t%d OK Fetch completed.\r\n" % n
        got += REWRITTEN[o : o + 100]
    assert got == REWRITTEN
    assert len(cache) == 1


def test_cache_is_not_trusted_while_a_select_is_in_flight() -> None:
    s = logged_in()
    s.receive_client(b"x UID FETCH 5 (BODY.PEEK[TEXT])\r\n")  # fills nothing: no answer yet
    s.receive_client(b"y SELECT Other\r\n")
    sent = s.receive_client(b"z UID FETCH 5 (BODY.PEEK[]<0.10>)\r\n").to_server
    assert MARKER_FIELD in sent


def test_login_literal_user_and_no_secrets_in_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="mailproxy.imap")
    s = new_session()
    out = s.receive_client(b"a LOGIN {3}\r\n")
    assert out.to_server == b"a LOGIN {3}\r\n"
    assert s.receive_server(b"+ OK\r\n").to_client == b"+ OK\r\n"
    out = s.receive_client(b"bob {9}\r\n")
    assert out.to_server == b"bob {9}\r\n"
    s.receive_server(b"+ OK\r\n")
    assert s.receive_client(b"hunter2xx\r\n").to_server == b"hunter2xx\r\n"
    s.receive_server(b"a OK Logged in\r\n")
    assert s.user == "bob" and s.authenticated
    s2 = new_session()
    s2.receive_client(b'a LOGIN "alice" "pa ss"\r\n')
    s2.receive_server(b"a NO [AUTHENTICATIONFAILED] no\r\n")
    assert s2.user is None and not s2.authenticated
    assert "hunter2" not in caplog.text and "pa ss" not in caplog.text
    assert "LOGIN ***" in caplog.text


def test_authenticate_continuations_pass_raw_and_give_the_user(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="mailproxy.imap")
    s = new_session()
    assert s.receive_client(b"a AUTHENTICATE PLAIN\r\n").to_server == b"a AUTHENTICATE PLAIN\r\n"
    assert s.receive_server(b"+ \r\n").to_client == b"+ \r\n"
    sasl = base64.b64encode(b"\0carol\0s3cr3t-pw") + b"\r\n"
    assert s.receive_client(sasl).to_server == sasl
    s.receive_server(b"a OK Logged in\r\n")
    assert s.user == "carol" and s.stats.commands == 1
    assert "s3cr3t" not in caplog.text and base64.b64encode(b"\0carol\0s3cr3t-pw").decode() not in caplog.text
    # SASL-IR: the initial response is on the command line.
    s = new_session()
    s.receive_client(b"a AUTHENTICATE PLAIN " + base64.b64encode(b"dave\0dave\0pw") + b"\r\n")
    s.receive_server(b"a OK Logged in\r\n")
    assert s.user == "dave"


def test_idle_done_is_not_a_command() -> None:
    s = logged_in()
    assert s.receive_client(b"i IDLE\r\n").to_server == b"i IDLE\r\n"
    assert s.receive_server(b"+ idling\r\n").to_client == b"+ idling\r\n"
    assert s.receive_server(b"* 4 EXISTS\r\n").to_client == b"* 4 EXISTS\r\n"
    n = s.stats.commands
    assert s.receive_client(b"DONE\r\n").to_server == b"DONE\r\n"
    assert s.stats.commands == n
    # The next command may come before the server's tagged OK for IDLE; it is a command again.
    assert MARKER_FIELD in s.receive_client(b"j UID FETCH 9 BODY.PEEK[1]\r\n").to_server
    assert s.receive_server(b"i OK Idle completed.\r\n").to_client == b"i OK Idle completed.\r\n"


def test_refused_commands() -> None:
    s = logged_in()
    out = s.receive_client(b"c COMPRESS DEFLATE\r\n")
    assert out.to_server == b"" and out.to_client.startswith(b"c NO [CANNOT]")
    out = s.receive_client(b"d NOTIFY SET (selected MessageNew (uid body.peek[]))\r\n")
    assert out.to_server == b"" and out.to_client.startswith(b"d NO")
    # A refused command with a non-sync literal: its literal is swallowed, the next command works.
    out = s.receive_client(b"e URLFETCH {5+}\r\nab\r\nc\r\nf NOOP\r\n")
    assert out.to_server == b"f NOOP\r\n" and out.to_client.startswith(b"e NO")
    # With a sync literal the client sends nothing more after the NO.
    out = s.receive_client(b"g CONVERT {5}\r\nh NOOP\r\n")
    assert out.to_server == b"h NOOP\r\n" and out.to_client.startswith(b"g NO")


def test_plaintext_login_refused_on_exposed_listener() -> None:
    s = new_session(login_disabled=True)
    out = s.receive_client(b"a LOGIN u p\r\nb AUTHENTICATE PLAIN\r\n")
    assert out.to_server == b""
    assert out.to_client == (
        b"a NO [PRIVACYREQUIRED] Use STARTTLS or TLS first\r\n"
        b"b NO [PRIVACYREQUIRED] Use STARTTLS or TLS first\r\n"
    )
    s = new_session(login_disabled=True, client_tls=True)
    assert s.receive_client(b"a LOGIN u p\r\n").to_server == b"a LOGIN u p\r\n"


def test_starttls_drops_pipelined_plaintext() -> None:
    s = new_session(offer_starttls=True)
    out = s.receive_client(b"a STARTTLS\r\nb LOGIN evil injected\r\n")
    assert out.to_client == b"a OK Begin TLS negotiation now\r\n"
    assert out.to_server == b"" and out.start_tls
    s.tls_started()
    assert s.client_tls
    out = s.receive_client(b"c CAPABILITY\r\n")
    assert out.to_server == b"c CAPABILITY\r\n"
    out = s.receive_server(b"* CAPABILITY IMAP4rev1 STARTTLS AUTH=PLAIN\r\nc OK\r\n")
    assert b"STARTTLS" not in out.to_client
    # Without a certificate there is no STARTTLS to offer.
    s = new_session()
    out = s.receive_client(b"a STARTTLS\r\n")
    assert out.to_client.startswith(b"a BAD") and not out.start_tls and out.to_server == b""


def test_garbage_from_either_side() -> None:
    s = logged_in()
    junk = b"\x00\xff\xfe garbage {x}\r\n)))(((\r\n* 1 FETCH (((\r\n"
    assert s.receive_client(junk).to_server == junk
    assert s.receive_server(junk).to_client == junk
    with pytest.raises(RemoteProtocolError):
        Session(rewriter, max_line=64).receive_client(b"x" * 100)
    with pytest.raises(RemoteProtocolError):
        Session(rewriter, max_line=4).receive_server(b"x" * 100)


def test_split_delivery_gives_the_same_output() -> None:
    cmd = b"c UID FETCH 5 (UID BODY.PEEK[])\r\n"
    resp = b"* 1 FETCH (UID 5 BODY[] " + lit(MESSAGE) + b")\r\nc OK\r\n"
    for step in (1, 3, 64):
        s = logged_in()
        s.receive_client(cmd)
        out = b"".join(s.receive_server(resp[i : i + step]).to_client for i in range(0, len(resp), step))
        assert out == resp.replace(MESSAGE, REWRITTEN)


def test_large_response_streams_unmodified() -> None:
    s = logged_in(max_literal=64)
    resp = b"* 1 FETCH (UID 5 BODY[] " + lit(MESSAGE) + b")\r\nc OK\r\n"
    s.receive_client(b"c UID FETCH 5 BODY.PEEK[]\r\n")
    out = b"".join(s.receive_server(resp[i : i + 100]).to_client for i in range(0, len(resp), 100))
    assert out == resp and s.stats.streamed == 1
