"""Responses above ``max_literal``: streamed through the length-preserving URL neutralizer, never
passed through unfiltered (invariant 3)."""

from __future__ import annotations

import base64
import email
import imaplib
import logging
import random
import re

import pytest
from imap_support import PASSWORD, USER, Dovecot, MakeProxy

from mailproxy.imap import Session
from mailproxy.rewrite import streams
from mailproxy.rewrite.neutralize import StreamNeutralizer, neutralize_section

HTML = (
    b'<p>Hi</p><img src="https://pixel.example.net/o.gif?u=1" width=1>'
    b"<a href='HTTP://shop.example.org/x'>x</a><div style=\"background:url(//cdn.example/b.png)\">"
    b"<img src=//t.example/p.gif> see http:plain and Https:mixed\r\n"
)


def neutralize(data: bytes, step: int) -> tuple[bytes, int]:
    n = StreamNeutralizer()
    out = b"".join(n.feed(data[i : i + step]) for i in range(0, len(data), step))
    return out + n.feed(b"", last=True), n.edits


@pytest.mark.parametrize("step", [1, 2, 3, 5, 8, 9, 64, 100_000])
def test_every_scheme_is_broken_whatever_the_chunking(step: int) -> None:
    data = HTML * 20
    out, edits = neutralize(data, step)
    assert len(out) == len(data)
    assert out == neutralize(data, len(data))[0]  # chunk boundaries change nothing
    low = out.lower()
    assert b"http:" not in low and b"https:" not in low
    assert b"=//" not in out and b"(//" not in out and b"'//" not in out and b'"//' not in out
    assert edits == 6 * 20
    # only the first byte of each reference changed
    assert out.count(b"xttps://pixel.example.net") == 20 and out.count(b"=_/t.example") == 20


def test_text_without_references_and_base64_pass_unchanged() -> None:
    b64 = base64.encodebytes(bytes(range(256)) * 64).replace(b"\n", b"\r\n")
    assert b"//" in b64 or b"/" in b64
    data = b"plain words, no links here: just text.\r\n" * 10 + b64 + b"//\r\n"
    out, edits = neutralize(data, 7)
    assert (out, edits) == (data, 0)


def test_empty_and_tiny_feeds() -> None:
    n = StreamNeutralizer()
    assert n.feed(b"") == b""
    assert n.feed(b"h") + n.feed(b"ttp:", last=True) == b"xttp:"
    assert n.feed(b"", last=True) == b""


@pytest.mark.parametrize(
    ("body", "expect"),
    [
        # quoted-printable: a scheme split by a soft line break, escaped letters and slashes
        (b'<img src=3D"ht=\r\ntps://t.example/p.gif">', b'<img src=3D"xt=\r\ntps://t.example/p.gif">'),
        (b"<img src=3D//t.example/p.gif>", b"<img src=3D_/t.example/p.gif>"),
        (
            b'<img src=3D"=68ttps://t/p" style=3D"background:url(=2F=2Ft/b)">',
            b'<img src=3D"=78ttps://t/p" style=3D"background:url(=5F=2Ft/b)">',
        ),
        # the same bytes as 7bit: "=" then a line break before a protocol-relative reference
        (b"<img src=\r\n//t.example/p.gif>", b"<img src=\r\n_/t.example/p.gif>"),
        # character references and CSS escapes that could spell a scheme
        (
            b"<img src='&#104;ttps://t/p'><b style='x:\\75rl(y)'>",
            b"<img src='_#104;ttps://t/p'><b style='x:_75rl(y)'>",
        ),
        (b"FTP://t/x wss://t/y", b"xTP://t/x xss://t/y"),
        # base64 lines are never edited, even when one starts with "//"
        (b"PGh0bWw+\r\n//8AAAAAAAAA\r\n", b"PGh0bWw+\r\n//8AAAAAAAAA\r\n"),
        # binary content (an image fetched with BINARY) is left alone
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x01 https://t/ &#",) * 2,
        # ... but HTML salted with control bytes to look binary is still read as the markup it is
        (
            b"\x01\x02\x03\x04<img\x01src='https://t/p.gif'>\x01\x02\x03\x04\x05",
            b"\x01\x02\x03\x04<img\x01src='xttps://t/p.gif'>\x01\x02\x03\x04\x05",
        ),
    ],
)
def test_section_neutralizer_reads_bodies_as_clients_decode_them(body: bytes, expect: bytes) -> None:
    out, edits = neutralize_section(body)
    assert out == expect and len(out) == len(body)
    assert (edits == 0) == (out == body)
    n = StreamNeutralizer()  # byte by byte through the streaming form: the same
    assert b"".join(n.feed(body[i : i + 1]) for i in range(len(body))) + n.feed(b"", last=True) == expect


def test_decoded_sections_take_equals_signs_literally() -> None:
    body = b"<img src=3D//t.example/p.gif>"  # decoded content: "=3D" means "=3D", not "="
    assert neutralize_section(body, decoded=True) == (body, 0)


@pytest.mark.parametrize(
    ("chunk", "expect"),
    [
        (b"see h", b"see x"),  # "h|ttps://" cut after its first letter
        (b"ttps://t/p.gif", b"ttps:_/t/p.gif"),  # ...and the rest of it
        (b'<img src="htt', b'<img src="xtt'),
        (b"//t/p.gif>", b"_/t/p.gif>"),
        (b"<img src=/", b"<img src=_"),
        (b"#104;ttps://t &", b"_104;ttps://t _"),
        (b"nothing cut here", b"nothing cut here"),
    ],
)
def test_partial_chunks_break_references_cut_at_their_ends(chunk: bytes, expect: bytes) -> None:
    assert neutralize_section(chunk, origin=100)[0] == expect


def b64_lines(data: bytes, width: int, eol: bytes) -> bytes:
    s = base64.b64encode(data)
    return eol.join(s[i : i + width] for i in range(0, len(s), width)) + eol


@pytest.mark.parametrize("width", [76, 64, 58, 4, 77])
@pytest.mark.parametrize("eol", [b"\r\n", b"\n"])
def test_base64_text_is_neutralized_through_its_encoding(width: int, eol: bytes) -> None:
    html = (
        b"<html><body>"
        + b"<p>Lorem ipsum dolor sit amet.</p>\r\n" * 30
        + b'<img src="https://pixel.example.net/o.gif?u=1">'
        + b"<div style='background:url(//t.example/b.png)'>&#104;ttps://a</div>" * 3
        + b"</body></html>\r\n"
    )
    image = bytes(random.Random(width).randrange(256) for _ in range(20_000))
    msg = (
        b"Content-Type: multipart/mixed; boundary=B\r\n\r\n--B\r\nContent-Type: text/html\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\n"
        + b64_lines(html, width, eol)
        + b"--B\r\nContent-Type: image/png\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        + b64_lines(image, width, eol)
        + b"--B--\r\n"
    )
    whole, edits = neutralize_section(msg)
    assert len(whole) == len(msg) and edits == 7
    text, picture = (
        p.get_payload(decode=True) for p in email.message_from_bytes(whole).walk() if not p.is_multipart()
    )
    assert len(text) == len(html) and sum(a != b for a, b in zip(text, html, strict=True)) == 7
    assert not re.search(rb"(?i)https?:|[\"'=(]//|&#", text)
    assert picture == image  # binary: not a byte changed
    rng = random.Random(width * 7)
    for _ in range(10):  # any chunking gives the same bytes, holding back only a few lines
        n = StreamNeutralizer()
        out, i = [], 0
        while i < len(msg):
            k = rng.choice([1, 3, 7, 64, 100, 1000, 5000])
            out.append(n.feed(msg[i : i + k]))
            assert len(n._buf) < 600
            i += k
        assert b"".join(out) + n.feed(b"", last=True) == whole


def test_partial_chunks_of_base64_text_whatever_their_alignment() -> None:
    html = b"<p>" + b"Lorem ipsum dolor sit amet. " * 8 + b'<img src="https://t.example/p.gif"></p>\r\n'
    full = b64_lines(html * 4, 76, b"\r\n")
    expect, edits = neutralize_section(full)
    assert edits == 4
    for origin in range(1, 300, 7):
        chunk = full[origin : origin + 400]
        out, _ = neutralize_section(chunk, origin=origin)
        changed = {i for i, (a, b) in enumerate(zip(out, chunk, strict=True)) if a != b}
        wanted = {i for i, b in enumerate(chunk) if expect[origin + i] != b}
        # Nothing the whole section keeps is changed; every reference away from the ends is broken.
        assert changed <= wanted and {i for i in wanted if 12 <= i < len(chunk) - 12} <= changed
        assert changed, origin


def test_base64_streams_back_to_back() -> None:
    one = b64_lines(b"<img src='https://a.example/p'>", 76, b"\r\n")
    assert one.endswith(b"=\r\n")
    out, edits = neutralize_section(one * 2)  # padding ends a stream; the next one starts afresh
    assert edits == 2 and len(out) == 2 * len(one)
    assert (
        base64.b64decode(out[: len(one)])
        == base64.b64decode(out[len(one) :])
        == (b"<img src='xttps://a.example/p'>")
    )


@pytest.mark.parametrize("eol", [b"\r\n", b"\n"])
def test_base64_streams_joined_inside_a_line(eol: bytes) -> None:
    # Mailers that encode in pieces and join the results put padding inside a line; lenient clients
    # decode on past it (rewrite.streams), so the streams after it are neutralized too.
    first = base64.b64encode(b"<p>Hello!</p>")
    second = base64.b64encode(b"<img src='https://a.example/p'>")
    third = base64.b64encode(b"<div style='background:url(//t.example/b.png)'>!</div>")
    assert first.endswith(b"=") and second.endswith(b"=")
    body = first + second + eol + third + eol + first + eol
    n = StreamNeutralizer(text=True)
    out = b"".join(n.feed(body[i : i + 5]) for i in range(0, len(body), 5)) + n.feed(b"", last=True)
    assert (out, n.edits) == neutralize_section(body, text=True)
    assert n.edits == 2 and len(out) == len(body) and out.count(b"\n") == body.count(b"\n")
    assert streams.decode(out, "base64") == (
        b"<p>Hello!</p><img src='xttps://a.example/p'>"
        b"<div style='background:url(_/t.example/b.png)'>!</div><p>Hello!</p>"
    )


def session(max_literal: int) -> Session:
    s = Session(lambda raw, user: raw, max_literal=max_literal)
    s.receive_server(b"* OK ready.\r\n")
    return s


def test_session_neutralizes_an_oversized_fetch(caplog: pytest.LogCaptureFixture) -> None:
    body = b"Content-Type: text/html\r\n\r\n" + HTML * 50
    resp = b"* 1 FETCH (UID 7 BODY[] {%d}\r\n%s)\r\na OK done\r\n" % (len(body), body)
    s = session(max_literal=1000)
    s.receive_client(b"a UID FETCH 7 BODY.PEEK[]\r\n")
    caplog.set_level(logging.WARNING, "mailproxy.imap._session")
    out = b"".join(s.receive_server(resp[i : i + 777]).to_client for i in range(0, len(resp), 777))
    assert len(out) == len(resp)
    assert out.startswith(b"* 1 FETCH (UID 7 BODY[] {%d}\r\n" % len(body))
    assert out.endswith(b")\r\na OK done\r\n")
    assert b"https:" not in out.lower() and b"=//" not in out
    assert s.stats.streamed == 1 and s.stats.neutralized == 1
    assert s.stats.neutralized_edits == 6 * 50
    assert "neutralizer (300 reference(s) broken)" in caplog.text


def test_session_keeps_small_fetches_for_the_rewriter_and_other_streams_verbatim() -> None:
    s = session(max_literal=1000)
    small = b"x https://a.example/ y"
    resp = b"* 1 FETCH (BODY[] {%d}\r\n%s)\r\n" % (len(small), small)
    assert s.receive_server(resp).to_client == resp  # the (identity) rewriter's business
    big = b"https://a.example/ " * 100
    other = b"* METADATA INBOX (/private/comment {%d}\r\n%s)\r\n" % (len(big), big)
    assert s.receive_server(other).to_client == other
    assert s.stats.neutralized == 0 and s.stats.streamed == 1


def test_oversized_message_through_the_proxy(make_proxy: MakeProxy, dovecot: Dovecot) -> None:
    html = b"<html><body>" + HTML * 40_000 + b"</body></html>\r\n"  # about 9 MB
    msg = b"Subject: huge\r\nContent-Type: text/html\r\n\r\n" + html
    d = imaplib.IMAP4("127.0.0.1", dovecot.port)
    d.login(USER, PASSWORD)
    d.create("Huge")
    d.append("Huge", None, None, msg)
    d.logout()
    p = make_proxy(max_literal=1 << 20)
    c = imaplib.IMAP4("127.0.0.1", p.port)
    c.login(USER, PASSWORD)
    c.select("Huge", readonly=True)
    typ, data = c.fetch("1", "(RFC822.SIZE BODY.PEEK[])")
    assert typ == "OK"
    head = data[0]
    assert isinstance(head, tuple)
    got = head[1]
    assert len(got) == len(msg) and b"RFC822.SIZE %d" % len(msg) in head[0]
    assert b"https:" not in got.lower() and b"http:" not in got.lower()
    assert got.count(b"xttps://pixel.example.net") == 40_000
    assert c.noop()[0] == "OK"
    c.logout()


def test_random_binary_is_left_alone() -> None:
    # The markup hints that make salted HTML text must not turn binary attachments into text.
    blob = random.Random(11).randbytes(4 * 1024 * 1024)
    out, edits = neutralize_section(blob, decoded=True)
    assert edits == 0 and out == blob


def test_binary_beside_text_does_not_hide_the_text() -> None:
    # An 8bit section: an HTML part, then raw binary (a part sent with Content-Transfer-Encoding:
    # binary). The binary is left alone and the HTML is still read as text.
    html = b"<p>Hello</p>\r\n" * 20 + b"<img src='https://t.example/p.gif'>\r\n" + b"<p>Bye</p>\r\n" * 60
    blob = random.Random(5).randbytes(64 * 1024)
    out, _ = neutralize_section(html + blob, decoded=True)
    assert out[: len(html)] == html.replace(b"https://t.example", b"xttps://t.example")
    assert out[len(html) :] == blob
