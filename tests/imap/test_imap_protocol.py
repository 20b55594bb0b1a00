"""Framing of both directions, fed whole and split at every byte."""

from __future__ import annotations

import pytest

from mailproxy.imap import (
    NEED_DATA,
    ClientReader,
    CommandLine,
    LiteralData,
    RemoteProtocolError,
    Response,
    ResponseChunk,
    ServerReader,
    filter_capability_list,
)
from mailproxy.imap._protocol import (
    ParseError,
    filter_capabilities,
    first_astring,
    literal_at_end,
    scan_value,
    split_command,
    strip_capability_code,
)


def client_events(chunks: list[bytes]) -> list[CommandLine | LiteralData]:
    r = ClientReader(max_line=1000)
    out: list[CommandLine | LiteralData] = []
    for c in chunks:
        r.receive_data(c)
        while (ev := r.next_event()) is not NEED_DATA:
            out.append(ev)
    return out


def merged_client(chunks: list[bytes]) -> list[tuple[str, bytes]]:
    """Events with literal slices merged, so any split gives the same list."""
    out: list[tuple[str, bytes]] = []
    for ev in client_events(chunks):
        if isinstance(ev, LiteralData):
            if out and out[-1][0] == "lit" and not out[-1][1].endswith(b"<END>"):
                out[-1] = ("lit", out[-1][1] + ev.data + (b"<END>" if ev.last else b""))
            else:
                out.append(("lit", ev.data + (b"<END>" if ev.last else b"")))
        else:
            out.append(("line" if ev.first else "cont", ev.data))
    return out


CLIENT_STREAM = (
    b'a1 LOGIN {4}\r\nuser {6+}\r\nse\r\ncr "x"\r\na2 APPEND INBOX ~{12}\r\nb3 NOOP\r\n{0}\r\na3 NOOP\r\n'
)


def test_client_literals_are_counted_not_parsed() -> None:
    got = merged_client([CLIENT_STREAM])
    assert got == [
        ("line", b"a1 LOGIN {4}\r\n"),
        ("lit", b"user<END>"),
        ("cont", b" {6+}\r\n"),
        ("lit", b"se\r\ncr<END>"),
        ("cont", b' "x"\r\n'),
        ("line", b"a2 APPEND INBOX ~{12}\r\n"),
        ("lit", b"b3 NOOP\r\n{0}<END>"),  # a literal that looks like a command stays a literal
        ("cont", b"\r\n"),
        ("line", b"a3 NOOP\r\n"),
    ]


def test_client_split_at_every_byte_gives_the_same_events() -> None:
    whole = merged_client([CLIENT_STREAM])
    for i in range(1, len(CLIENT_STREAM)):
        assert merged_client([CLIENT_STREAM[:i], CLIENT_STREAM[i:]]) == whole, i
    assert merged_client([bytes([b]) for b in CLIENT_STREAM]) == whole


def test_client_line_is_released_before_its_sync_literal() -> None:
    # The client waits for "+" before sending the literal: the line must come out on its own.
    evs = client_events([b"a LOGIN {5}\r\n"])
    assert evs == [CommandLine(data=b"a LOGIN {5}\r\n", first=True, literal=5, sync=True)]
    evs = client_events([b"a LOGIN {5+}\r\n"])
    assert evs[0].literal == 5 and not evs[0].sync  # type: ignore[union-attr]


def test_client_zero_literal() -> None:
    assert merged_client([b"a X {0}\r\n\r\n"]) == [("line", b"a X {0}\r\n"), ("cont", b"\r\n")]


def test_client_overlong_line_is_an_error() -> None:
    r = ClientReader(max_line=100)
    r.receive_data(b"a" * 101)
    with pytest.raises(RemoteProtocolError):
        r.next_event()
    r = ClientReader(max_line=100)
    r.receive_data(b"a" * 50)
    assert r.next_event() is NEED_DATA


def test_client_discard_and_cancel() -> None:
    r = ClientReader()
    r.receive_data(b"a STARTTLS\r\nb LOGIN x y\r\n")
    assert isinstance(r.next_event(), CommandLine)
    r.discard_buffer()
    assert r.next_event() is NEED_DATA
    r.receive_data(b"c X {3}\r\n")
    assert isinstance(r.next_event(), CommandLine)
    r.cancel_literal()
    r.receive_data(b"d NOOP\r\n")
    ev = r.next_event()
    assert isinstance(ev, CommandLine) and ev.first and ev.data == b"d NOOP\r\n"


def server_events(chunks: list[bytes], max_literal: int = 1000) -> list[Response | ResponseChunk]:
    r = ServerReader(max_line=1000, max_literal=max_literal)
    out: list[Response | ResponseChunk] = []
    for c in chunks:
        r.receive_data(c)
        while (ev := r.next_event()) is not NEED_DATA:
            out.append(ev)
    return out


SERVER_STREAM = (
    b"* OK [CAPABILITY IMAP4rev1] hi\r\n"
    b"+ go\r\n"
    b'* 1 FETCH (UID 7 BODY[] {15}\r\nab\r\n* 2 FETCH\r\n ENVELOPE ("x" {3}\r\n)\r\n NIL))\r\n'
    b"* 2 FETCH (BINARY[1] ~{0}\r\n)\r\n"
    b"a1 OK done\r\n"
)


def test_server_responses_include_their_literals() -> None:
    got = server_events([SERVER_STREAM])
    assert [e.data for e in got] == [
        b"* OK [CAPABILITY IMAP4rev1] hi\r\n",
        b"+ go\r\n",
        b'* 1 FETCH (UID 7 BODY[] {15}\r\nab\r\n* 2 FETCH\r\n ENVELOPE ("x" {3}\r\n)\r\n NIL))\r\n',
        b"* 2 FETCH (BINARY[1] ~{0}\r\n)\r\n",
        b"a1 OK done\r\n",
    ]
    assert [getattr(e, "kind", None) for e in got] == ["*", "+", "*", "*", "tagged"]
    assert got[-1] == Response(data=b"a1 OK done\r\n", kind="tagged", tag=b"a1")


def test_server_split_at_every_byte() -> None:
    whole = [e.data for e in server_events([SERVER_STREAM])]
    for i in range(1, len(SERVER_STREAM)):
        assert [e.data for e in server_events([SERVER_STREAM[:i], SERVER_STREAM[i:]])] == whole, i
    # one octet at a time: every line and literal announcement spans many received chunks
    assert [e.data for e in server_events([bytes([c]) for c in SERVER_STREAM])] == whole


def test_server_large_literal_streams() -> None:
    body = b"x" * 5000
    stream = b"* 1 FETCH (BODY[] {5000}\r\n" + body + b" UID 3)\r\na OK\r\n"
    for step in (1, 7, 4096, len(stream)):
        chunks = [stream[i : i + step] for i in range(0, len(stream), step)]
        evs = server_events(chunks, max_literal=100)
        streamed = [e for e in evs if isinstance(e, ResponseChunk)]
        assert b"".join(e.data for e in streamed) == stream[: -len(b"a OK\r\n")]
        assert streamed[0].first and streamed[-1].last
        assert not any(e.first for e in streamed[1:]) and not any(e.last for e in streamed[:-1])
        assert evs[-1] == Response(data=b"a OK\r\n", kind="tagged", tag=b"a")
        # A streamed response never holds more than the limit plus a read in memory.
        assert all(len(e.data) <= max(step, 100) + 64 for e in streamed[1:-1])


def test_server_overlong_line_and_bad_literal() -> None:
    r = ServerReader(max_line=50)
    r.receive_data(b"* " + b"x" * 60)
    with pytest.raises(RemoteProtocolError):
        r.next_event()
    r = ServerReader()
    r.receive_data(b"* 1 FETCH (BODY[] {99999999999999999999}\r\n")
    with pytest.raises(RemoteProtocolError):
        r.next_event()


def test_literal_at_end() -> None:
    assert literal_at_end(b"a LOGIN {12}\r\n") == (12, True)
    assert literal_at_end(b"a LOGIN {12+}\r\n") == (12, False)
    assert literal_at_end(b"a APPEND x ~{3}\r\n") == (3, True)
    assert literal_at_end(b"a LOGIN {12} x\r\n") is None
    assert literal_at_end(b'a LOGIN "{12}\r\n') == (
        12,
        True,
    )  # framing is byte-based, as servers do


def test_split_command_and_astring() -> None:
    assert split_command(b"a1 uid fetch 1:* (FLAGS)\r\n") == (b"a1", b"UID FETCH", b"1:* (FLAGS)")
    assert split_command(b"a1 NOOP\r\n") == (b"a1", b"NOOP", b"")
    assert split_command(b"garbage\r\n") == (b"garbage", b"", b"")
    assert first_astring(b'"us\\"er" pw') == (b'us"er', 8)
    assert first_astring(b"user pw") == (b"user", 4)
    assert first_astring(b"{4}") == (None, 0)
    with pytest.raises(ParseError):
        first_astring(b'"open')


def test_scan_value() -> None:
    data = b'(a "b)" {3}\r\n)x)) BODY[HEADER.FIELDS (A B)]<0> ~{2}\r\nxy'
    assert scan_value(data, 0) == data.index(b" BODY")
    i = data.index(b"BODY")
    assert data[i : scan_value(data, i)] == b"BODY[HEADER.FIELDS (A B)]<0>"
    with pytest.raises(ParseError):
        scan_value(b"(a (b)", 0)
    with pytest.raises(ParseError):
        scan_value(b"{10}\r\nabc", 0)


def test_capability_filter() -> None:
    caps = b"IMAP4rev1 SASL-IR COMPRESS=DEFLATE NOTIFY STARTTLS AUTH=PLAIN IDLE URLAUTH".split()
    assert filter_capability_list(caps) == [b"IMAP4rev1", b"SASL-IR", b"AUTH=PLAIN", b"IDLE"]
    assert filter_capability_list(caps, add_starttls=True)[-1] == b"STARTTLS"
    assert filter_capability_list(caps, login_disabled=True) == [
        b"IMAP4rev1",
        b"SASL-IR",
        b"IDLE",
        b"LOGINDISABLED",
    ]
    greeting = b"* OK [CAPABILITY IMAP4rev1 STARTTLS AUTH=PLAIN] Dovecot ready.\r\n"
    assert filter_capabilities(greeting) == b"* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] Dovecot ready.\r\n"
    tagged = b"a OK [CAPABILITY IMAP4rev1 NOTIFY COMPRESS=DEFLATE BINARY] Logged in\r\n"
    assert filter_capabilities(tagged) == b"a OK [CAPABILITY IMAP4rev1 BINARY] Logged in\r\n"
    untagged = b"* CAPABILITY IMAP4rev1 COMPRESS=DEFLATE IDLE\r\n"
    assert filter_capabilities(untagged) == b"* CAPABILITY IMAP4rev1 IDLE\r\n"
    other = b"* OK [UIDVALIDITY 3] CAPABILITY COMPRESS=DEFLATE in text\r\n"
    assert filter_capabilities(other) == other
    assert strip_capability_code(greeting) == b"* OK Dovecot ready.\r\n"
