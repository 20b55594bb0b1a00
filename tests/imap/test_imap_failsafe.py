"""Invariant 3 in the IMAP filter: a body it cannot serve from the rewritten message reaches the client
neutralized, never unfiltered. Each case is produced with real commands against the real Dovecot
where Dovecot can produce it, and with the server's bytes scripted where it cannot."""

from __future__ import annotations

import base64
import email
import imaplib
import logging
import quopri
import random
import re
import socket
from collections.abc import Iterator

import pytest
from imap_support import PASSWORD, USER, Dovecot, MakeProxy

from mailproxy.imap import Session
from mailproxy.imap._fetch import MARKER_FIELD

pytestmark = pytest.mark.slow

TRACKER_URL = b"https://pixel.mailchimp.com/open.gif?u=abc123&id=42"
HTML = (
    b"<html><body><p>Hello reader.</p>\r\n"
    b'<img src="https://cdn.example.org/images/logo.png" width="200" height="60" alt="Logo">\r\n'
    + b"<p>Lorem ipsum dolor sit amet, consectetur adipiscing elit.</p>\r\n" * 8
    + b'<img src="'
    + TRACKER_URL
    + b'" width="1" height="1" alt="">\r\n</body></html>\r\n'
)
# What a client could load: a scheme, or a protocol-relative reference in an attribute or url().
LIVE = re.compile(rb"(?i)(?:https?|ftp|wss?):|[\"'=(]//")


def header(subject: str, content_type: str) -> bytes:
    return (
        f"From: News <news@shop.example.org>\r\nTo: {USER}\r\nSubject: {subject}\r\n"
        f"MIME-Version: 1.0\r\nContent-Type: {content_type}\r\n"
    ).encode()


QP_HTML = quopri.encodestring(HTML).replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
QP_MESSAGE = (
    header("qp html", "text/html; charset=utf-8")
    + b"Content-Transfer-Encoding: quoted-printable\r\n\r\n"
    + QP_HTML
)


def put(dovecot: Dovecot, mailbox: str, *messages: bytes) -> None:
    """A fresh mailbox holding ``messages``, written through Dovecot itself."""
    c = imaplib.IMAP4("127.0.0.1", dovecot.port)
    c.login(USER, PASSWORD)
    c.delete(mailbox)  # left over from an earlier run, or absent
    assert c.create(mailbox)[0] == "OK"
    for m in messages:
        assert c.append(mailbox, None, None, m)[0] == "OK"
    c.logout()


class Wire:
    """A raw IMAP connection: bytes as they cross the socket, responses with their literals."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=15)
        self.file = self.sock.makefile("rb")
        assert self.file.readline().startswith(b"* OK")

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def response(self) -> bytes:
        out = b""
        while True:
            line = self.file.readline()
            if not line:
                raise EOFError("connection closed")
            out += line
            m = re.search(rb"~?\{([0-9]+)\}\r\n\Z", line)
            if m is None:
                return out
            out += self.file.read(int(m.group(1)))

    def until(self, tag: bytes) -> list[bytes]:
        """Responses up to the tagged one (included)."""
        got = []
        while True:
            got.append(self.response())
            if got[-1].startswith(tag + b" "):
                assert got[-1].startswith(tag + b" OK"), got[-1]
                return got

    def open(self, mailbox: str) -> None:
        self.send(b"l LOGIN " + USER.encode() + b" " + PASSWORD.encode() + b"\r\n")
        self.until(b"l")
        self.send(b"s EXAMINE " + mailbox.encode() + b"\r\n")
        self.until(b"s")

    def close(self) -> None:
        self.file.close()
        self.sock.close()


@pytest.fixture
def wire(request: pytest.FixtureRequest) -> Iterator[list[Wire]]:
    opened: list[Wire] = []
    yield opened
    for w in opened:
        w.close()


def literal(response: bytes, item: bytes) -> bytes:
    """The literal of ``item`` (exact name as echoed) in one FETCH response."""
    m = re.search(re.escape(item) + rb" ~?\{([0-9]+)\}\r\n", response)
    assert m is not None, (item, response[:200])
    return response[m.end() : m.end() + int(m.group(1))]


def qp_text(body: bytes) -> bytes:
    return quopri.decodestring(body)


# -- 1. bodies the filter cannot serve from the rewritten message ---------------------------------


@pytest.mark.parametrize("sync", [True, False])
def test_fetch_with_a_literal_in_the_command_is_neutralized(
    make_proxy: MakeProxy, dovecot: Dovecot, wire: list[Wire], sync: bool, caplog: pytest.LogCaptureFixture
) -> None:
    put(dovecot, "FsLiteral", QP_MESSAGE)
    direct = Wire(dovecot.port)
    via = Wire(make_proxy().port)
    wire += [direct, via]
    caplog.set_level(logging.INFO, "mailproxy.imap")
    got = []
    for w in (direct, via):
        w.open("FsLiteral")
        # A header list with a literal in it (Dovecot accepts one anywhere a string goes): the proxy
        # forwards such a command as it comes, so it cannot add the whole message to it.
        if sync:
            w.send(b"f FETCH 1 (BODY.PEEK[HEADER.FIELDS ({7}\r\n")
            assert w.response().startswith(b"+ ")
            w.send(b"Subject)] BODY.PEEK[TEXT])\r\n")
        else:
            w.send(b"f FETCH 1 (BODY.PEEK[HEADER.FIELDS ({7+}\r\nSubject)] BODY.PEEK[TEXT])\r\n")
        resp = w.until(b"f")
        assert len(resp) == 2
        got.append(resp[0])
    original, seen = (literal(r, b"BODY[TEXT]") for r in got)
    assert original == QP_HTML and TRACKER_URL in qp_text(original)
    assert len(seen) == len(original) and seen.count(b"\r\n") == original.count(b"\r\n")
    assert not LIVE.search(qp_text(seen)), qp_text(seen)
    # Only the references changed, one byte each.
    assert sum(a != b for a, b in zip(original, seen, strict=True)) == 2
    # The header section is not a body: byte for byte.
    assert literal(got[0], b'BODY[HEADER.FIELDS ("SUBJECT")]') == literal(
        got[1], b'BODY[HEADER.FIELDS ("SUBJECT")]'
    )
    assert "FETCH section without its whole message: neutralized" in caplog.text


MULTIPART = (
    header("encoded message", "multipart/mixed; boundary=B1")
    + b"\r\n--B1\r\nContent-Type: text/plain\r\n\r\nHello.\r\n"
    # Dovecot parses the encoded bytes of an attached message as a message; the filter's MIME parser
    # does not (a client may decode them first), so the two number the parts differently.
    + b"--B1\r\nContent-Type: message/rfc822\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
    + b"Content-Type: text/html\r\n\r\n"
    + HTML
    + b"--B1--\r\n"
)


def test_part_numbered_differently_by_the_server_is_neutralized(
    make_proxy: MakeProxy, dovecot: Dovecot
) -> None:
    put(dovecot, "FsNumbering", MULTIPART)
    got = []
    for port in (dovecot.port, make_proxy().port):
        c = imaplib.IMAP4("127.0.0.1", port)
        c.login(USER, PASSWORD)
        c.select("FsNumbering", readonly=True)
        typ, data = c.fetch("1", "(BODY.PEEK[2.1] BODY.PEEK[2.1]<40.100>)")
        assert typ == "OK"
        got.append({part[0].split()[-2].lstrip(b"("): part[1] for part in data if isinstance(part, tuple)})
        c.logout()
    direct, via = got
    # Dovecot's part 2.1 is one the filter does not see.
    assert direct[b"BODY[2.1]"] == HTML.removesuffix(b"\r\n")
    for item in (b"BODY[2.1]", b"BODY[2.1]<40>"):
        assert len(via[item]) == len(direct[item])
        assert not LIVE.search(via[item]), via[item]


# -- the same, where Dovecot cannot be made to produce it: the server's bytes scripted --------------


def rewriter(raw: bytes, user: str | None) -> bytes:
    return raw.replace(TRACKER_URL, b" " * len(TRACKER_URL))


def session() -> Session:
    s = Session(rewriter)
    s.receive_server(b"* OK ready\r\n")
    s.receive_client(b"a LOGIN u p\r\n")
    s.receive_server(b"a OK Logged in\r\n")
    s.receive_client(b"b SELECT INBOX\r\n")
    s.receive_server(b"* OK [UIDVALIDITY 5] x\r\nb OK done\r\n")
    return s


def lit(data: bytes) -> bytes:
    return b"{%d}\r\n" % len(data) + data


def test_body_items_split_over_several_responses() -> None:
    s = session()
    sent = s.receive_client(b"f UID FETCH 9 (BODY.PEEK[TEXT])\r\n").to_server
    assert MARKER_FIELD in sent
    text = HTML
    whole = b"Content-Type: text/html\r\n\r\n" + text
    # The server may answer the items of one message in several FETCH responses (RFC 3501 7.4.2).
    out = s.receive_server(
        b"* 1 FETCH (UID 9 BODY[TEXT] " + lit(text) + b")\r\n"
        b"* 1 FETCH (UID 9 BODY[] "
        + lit(whole)
        + b" BODY[HEADER.FIELDS ("
        + MARKER_FIELD
        + b")] "
        + lit(b"\r\n")
        + b")\r\nf OK done\r\n"
    ).to_client
    first, second, done = out.split(b")\r\n")[0], out.split(b")\r\n")[1], out.split(b")\r\n")[2]
    seen = literal(first + b")\r\n", b"BODY[TEXT]")
    assert len(seen) == len(text) and not LIVE.search(seen)
    assert second == b"* 1 FETCH (UID 9" and done == b"f OK done\r\n"  # the extras are gone
    assert s.stats.unrewritten == 1


def test_unparsable_fetch_response_is_neutralized_whole() -> None:
    s = session()
    s.receive_client(b"f FETCH 1 (BODY.PEEK[])\r\n")
    body = b'<img src="' + TRACKER_URL + b'">'
    # Frames as a response, but "BAD{" is no FETCH item.
    resp = b"* 1 FETCH (BODY[] " + lit(body) + b" BAD{)\r\n"
    out = s.receive_server(resp).to_client
    assert len(out) == len(resp) and not LIVE.search(out)
    assert out == resp.replace(b"https:", b"xttps:")
    assert s.stats.unrewritten == 1


def test_length_changing_rewriter_gets_the_message_neutralized() -> None:
    s = Session(lambda raw, user: raw + b"!")
    s.receive_server(b"* OK ready\r\n")
    s.receive_client(b"f FETCH 1 (BODY.PEEK[])\r\n")
    whole = b"Content-Type: text/html\r\n\r\n" + HTML
    resp = b"* 1 FETCH (BODY[] " + lit(whole) + b")\r\n"
    out = s.receive_server(resp).to_client
    assert len(out) == len(resp) and not LIVE.search(out) and s.stats.unrewritten == 1


# -- 2. header sections: the same bytes as in the rewritten message --------------------------------

EXTERNAL = b'message/external-body; access-type=URL;\r\n URL="' + TRACKER_URL + b'"'
RECEIPTS = (
    header("receipts and external bodies", "multipart/mixed; boundary=B1")
    .replace(b"MIME-Version", b"Disposition-Notification-To: news@shop.example.org\r\nMIME-Version")
    .replace(b"Subject", b"Return-Receipt-To: news@shop.example.org\r\nSubject")
    + b"\r\n--B1\r\nContent-Type: text/plain\r\n\r\nHello.\r\n"
    + b"--B1\r\nContent-Type: "
    + EXTERNAL
    + b"\r\n\r\nContent-Type: image/gif\r\n\r\n"
    + b"--B1\r\nContent-Type: message/rfc822\r\n\r\n"
    + b"Subject: attached\r\nDisposition-Notification-To: x@shop.example.org\r\n"
    + b"Content-Type: "
    + EXTERNAL
    + b"\r\n\r\nContent-Type: text/html\r\n\r\n"
    + b"\r\n--B1--\r\n"
)
HEADER_ITEMS = [
    "BODY.PEEK[HEADER]",
    "RFC822.HEADER",
    "BODY.PEEK[HEADER]<30.120>",
    "BODY.PEEK[HEADER.FIELDS (Subject Disposition-Notification-To Return-Receipt-To)]",
    "BODY.PEEK[HEADER.FIELDS.NOT (From To)]",
    "BODY.PEEK[2.MIME]",
    "BODY.PEEK[3.MIME]",
    "BODY.PEEK[3.HEADER]",
    "BODY.PEEK[3.HEADER.FIELDS (CONTENT-TYPE)]",
]


def sections(c: imaplib.IMAP4, items: str) -> dict[bytes, bytes]:
    typ, data = c.fetch("1", f"({items})")
    assert typ == "OK", data
    out = {}
    for part in data:
        if isinstance(part, tuple):
            name = re.search(rb"([A-Z0-9.]+(?:\[[^\]]*\])?(?:<[0-9]+>)?) \{[0-9]+\}\Z", part[0])
            assert name is not None, part[0]
            out[name.group(1)] = part[1]
    return out


def test_header_sections_equal_those_of_the_rewritten_message(
    make_proxy: MakeProxy, dovecot: Dovecot
) -> None:
    put(dovecot, "FsHeaders", RECEIPTS)
    via = imaplib.IMAP4("127.0.0.1", make_proxy().port)
    via.login(USER, PASSWORD)
    via.select("FsHeaders", readonly=True)
    rewritten = sections(via, "BODY.PEEK[]")[b"BODY[]"]
    via.logout()
    assert len(rewritten) == len(RECEIPTS) and rewritten.count(b"X-Mailproxy-") == 4
    # What a client sees of each section is what the server would send if it held the rewritten
    # message: Dovecot itself says so.
    put(dovecot, "FsHeadersRewritten", rewritten)
    direct = imaplib.IMAP4("127.0.0.1", dovecot.port)
    direct.login(USER, PASSWORD)
    direct.select("FsHeadersRewritten", readonly=True)
    expect = sections(direct, " ".join(HEADER_ITEMS))
    direct.logout()
    assert len(expect) == len(HEADER_ITEMS)
    # Each section alone (a header listing, a part's MIME header), then all of them with the whole
    # message, each time through a new proxy (nothing cached).
    for items in [*HEADER_ITEMS, " ".join(HEADER_ITEMS) + " BODY.PEEK[]"]:
        c = imaplib.IMAP4("127.0.0.1", make_proxy().port)
        c.login(USER, PASSWORD)
        c.select("FsHeaders", readonly=True)
        got = sections(c, items)
        c.logout()
        got.pop(b"BODY[]", None)
        assert got == {name: expect[name] for name in got}, items


def test_header_sections_without_their_message_go_through_the_rewriter_one_at_a_time() -> None:
    from mailproxy.engine import Engine
    from mailproxy.triage import header_may_change

    engine = Engine()
    s = Session(
        lambda raw, user: engine.rewrite(raw, user=user).data,
        defer_rewrites=True,
        header_may_change=header_may_change,
    )
    s.receive_server(b"* OK ready\r\n")
    line = (
        b"f FETCH 1 (BODY.PEEK[HEADER.FIELDS (Disposition-Notification-To)] "
        b"BODY.PEEK[HEADER.FIELDS (Subject Return-Receipt-To)] BODY.PEEK[HEADER.FIELDS (From)])\r\n"
    )
    assert s.receive_client(line).to_server == line  # a listing: not extended
    first = b"Disposition-Notification-To: a@shop.example\r\n\r\n"
    second = b"Return-Receipt-To: a@shop.example\r\nSubject: hi\r\n\r\n"
    third = b"From: a@shop.example\r\n\r\n"
    resp = (
        b"* 1 FETCH (BODY[HEADER.FIELDS (DISPOSITION-NOTIFICATION-TO)] "
        + lit(first)
        + b" BODY[HEADER.FIELDS (SUBJECT RETURN-RECEIPT-TO)] "
        + lit(second)
        + b" BODY[HEADER.FIELDS (FROM)] "
        + lit(third)
        + b")\r\nf OK done\r\n"
    )
    out = s.receive_server(resp)
    jobs = []
    while out.rewrites:  # each section that names a receipt field is one job, handed out in turn
        (job,) = out.rewrites
        jobs.append(job.whole)
        out = s.rewrite_done(engine.rewrite(job.whole).data, job)
    assert jobs == [first, second]
    # The renamed fields are no longer among those asked for: gone, as from the rewritten message.
    assert out.to_client == (
        b"* 1 FETCH (BODY[HEADER.FIELDS (DISPOSITION-NOTIFICATION-TO)] {2}\r\n\r\n"
        b" BODY[HEADER.FIELDS (SUBJECT RETURN-RECEIPT-TO)] {15}\r\nSubject: hi\r\n\r\n"
        b" BODY[HEADER.FIELDS (FROM)] " + lit(third) + b")\r\nf OK done\r\n"
    )


# -- 3. messages above max_literal: base64 parts neutralized while streaming ------------------------


def test_oversized_message_with_base64_html_is_neutralized_while_streaming(
    make_proxy: MakeProxy, dovecot: Dovecot, caplog: pytest.LogCaptureFixture
) -> None:
    attachment = random.Random(3).randbytes(3 << 20)
    big = (
        header("huge base64", "multipart/mixed; boundary=B1")
        + b"\r\n--B1\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        + base64.encodebytes(HTML).replace(b"\n", b"\r\n")
        + b"--B1\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        + base64.encodebytes(attachment).replace(b"\n", b"\r\n")
        + b"--B1--\r\n"
    )
    put(dovecot, "FsHuge", big)
    caplog.set_level(logging.WARNING, "mailproxy.imap")
    c = imaplib.IMAP4("127.0.0.1", make_proxy(max_literal=1 << 20).port)
    c.login(USER, PASSWORD)
    c.select("FsHuge", readonly=True)
    got = sections(c, "RFC822.SIZE BODY.PEEK[]")[b"BODY[]"]
    assert c.noop()[0] == "OK"
    c.logout()
    assert "above the buffering limit streamed through the URL neutralizer" in caplog.text
    assert len(got) == len(big) and got.count(b"\r\n") == big.count(b"\r\n")
    html, data = (
        p.get_payload(decode=True) for p in email.message_from_bytes(got).walk() if not p.is_multipart()
    )
    assert data == attachment  # the binary attachment: not a byte changed
    assert len(html) == len(HTML) and not LIVE.search(html), html
    # Two references, one byte each, changed through the encoding: the rest of the text is intact.
    assert sum(a != b for a, b in zip(html, HTML, strict=True)) == 2
