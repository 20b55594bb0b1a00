"""mailproxy.mime finds the parts Dovecot finds (what IMAP clients see through BODYSTRUCTURE and
BODY[n]): same part numbers, types and body sizes, for odd boundary lines (a boundary followed by other
characters, nested boundaries that are prefixes of each other, missing or repeated close delimiters)
and odd header lines (no colon, white space before the colon). A part we read as text/plain where a
client sees text/html would reach the reader unfiltered."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from imap_support import USER, Dovecot
from imapclient import IMAPClient

from bench.dovecot import PASSWORD
from mailproxy import mime

MAILBOX = "MimeAgreement"
Leaf = tuple[str, str, int]  # IMAP part number, type/subtype, body size


@pytest.fixture(scope="module")
def server(dovecot: Dovecot) -> Iterator[IMAPClient]:
    c = IMAPClient("127.0.0.1", dovecot.port, ssl=False)
    c.login(USER, PASSWORD)
    if c.folder_exists(MAILBOX):
        c.delete_folder(MAILBOX)
    c.create_folder(MAILBOX)
    c.select_folder(MAILBOX)
    yield c
    c.logout()


def dovecot_leaves(c: IMAPClient, raw: bytes) -> list[Leaf]:
    c.append(MAILBOX, raw)
    [uid] = c.search("ALL")
    bs = c.fetch([uid], ["BODYSTRUCTURE"])[uid][b"BODYSTRUCTURE"]
    c.delete_messages([uid])
    c.expunge()
    out: list[Leaf] = []

    def walk(body: Any, number: str) -> None:
        if isinstance(body[0], list):  # multipart: the children, then the subtype
            for i, child in enumerate(body[0], 1):
                walk(child, f"{number}.{i}" if number else str(i))
            return
        out.append((number or "1", f"{body[0].decode()}/{body[1].decode()}".lower(), body[6]))

    walk(bs, "")
    return out


def our_leaves(raw: bytes) -> list[Leaf]:
    out: list[Leaf] = []
    for p in mime.parse(raw).leaves():
        if p.is_multipart:  # no parts: Dovecot lists one empty text/plain part in it
            out.append((f"{p.number}.1" if p.number else "1", "text/plain", 0))
        else:
            out.append((mime.body_number(p), p.content_type, p.end - p.body_start))
    return out


HEAD = b"From: a@example.com\r\nSubject: s\r\nMIME-Version: 1.0\r\n"
CASES = {
    "boundary followed by other characters": b"Content-Type: multipart/mixed; boundary=B1\r\n\r\n"
    b"--B1\r\nContent-Type: text/plain\r\n\r\nhi\r\n--B1x\r\nContent-Type: text/html\r\n\r\n<img>\r\n"
    b"--B1--\r\n",
    "close delimiter followed by other characters": b"Content-Type: multipart/mixed; boundary=B1\r\n\r\n"
    b"--B1\r\nContent-Type: text/plain\r\n\r\nhi\r\n--B1--x\r\n"
    b"--B1\r\nContent-Type: text/html\r\n\r\n<b>\r\n",
    "inner boundary longer": b"Content-Type: multipart/mixed; boundary=B\r\n\r\n"
    b"--B\r\nContent-Type: multipart/alternative; boundary=BB\r\n\r\n--BB\r\n\r\nx\r\n"
    b"--BB\r\nContent-Type: text/html\r\n\r\n<b>\r\n--B\r\nContent-Type: image/png\r\n\r\nxx\r\n--B--\r\n",
    "inner boundary shorter": b"Content-Type: multipart/mixed; boundary=BB\r\n\r\n"
    b"--BB\r\nContent-Type: multipart/alternative; boundary=B\r\n\r\n--B\r\n\r\nx\r\n"
    b"--B\r\nContent-Type: text/html\r\n\r\n<b>\r\n--B--\r\n--BB\r\nContent-Type: image/png\r\n\r\nxx\r\n",
    "empty boundary": b'Content-Type: multipart/mixed; boundary=""\r\n\r\n'
    b"--\r\nContent-Type: text/plain\r\n\r\nhi\r\n--x\r\nContent-Type: text/html\r\n\r\n<img>\r\n----\r\n",
    "header line without a colon": b"a stray line\r\nContent-Type: text/html\r\n\r\n<img>\r\n",
    "space before the colon": b"X-Thing : 1\r\nContent-Type : text/html\r\n\r\n<img>\r\n",
    "part headers cut by a delimiter": b"Content-Type: multipart/mixed; boundary=B\r\n\r\n"
    b"--B\r\nContent-Type: text/plain\r\n--B\r\nno colon\r\nContent-Type: text/html\r\n\r\n<b>\r\n--B--\r\n",
}


@pytest.mark.parametrize("body", CASES.values(), ids=CASES.keys())
def test_fixed_cases_agree_with_dovecot(server: IMAPClient, body: bytes) -> None:
    raw = HEAD + body
    assert our_leaves(raw) == dovecot_leaves(server, raw)


BOUNDARIES = ["B", "B1", "BB", "B1x", "C"]
SUFFIXES = [b"", b"x", b" ", b"\t", b"--", b"--x", b"-", b"---"]
TYPES = [b"text/plain", b"text/html", b"image/png"]
ODD_HEADERS = [b"", b"no colon here\r\n", b"X-Odd : v\r\n", b"X-Cont: a\r\n b\r\n"]


@st.composite
def entity(draw: st.DrawFn, depth: int = 0) -> bytes:
    odd = draw(st.sampled_from(ODD_HEADERS))
    if depth < 2 and draw(st.booleans()):
        boundary = draw(st.sampled_from(BOUNDARIES)).encode()
        ct = b"Content-Type" + draw(st.sampled_from([b"", b" "]))
        out = odd + ct + b": multipart/mixed; boundary=" + boundary + b"\r\n\r\n"
        out += draw(st.sampled_from([b"", b"preamble\r\n", b"--" + boundary + b"zz preamble\r\n"]))
        for _ in range(draw(st.integers(1, 3))):
            tail = draw(st.sampled_from(SUFFIXES[:4]))
            other = draw(st.sampled_from(BOUNDARIES)).encode()  # sometimes a stray one
            marker = boundary if draw(st.integers(0, 4)) else other
            out += b"--" + marker + tail + b"\r\n" + draw(entity(depth + 1)) + b"\r\n"
        if draw(st.booleans()):
            out += b"--" + boundary + draw(st.sampled_from(SUFFIXES[4:])) + b"\r\n"
            out += draw(st.sampled_from([b"", b"epilogue\r\n"]))
        return out
    ctype = draw(st.sampled_from(TYPES))
    blank = draw(st.sampled_from([b"\r\n", b""]))  # a part may lack its blank line
    return odd + b"Content-Type: " + ctype + b"\r\n" + blank + b"<p>body</p>"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(entity())
def test_random_structures_agree_with_dovecot(server: IMAPClient, body: bytes) -> None:
    raw = HEAD + body + b"\r\n"
    assert our_leaves(raw) == dovecot_leaves(server, raw)
