"""Responses above ``max_literal``: streamed through the length-preserving URL neutralizer, never
passed through unfiltered (invariant 3)."""

from __future__ import annotations

import base64
import binascii
import email
import imaplib
import logging
import random
import re
import socket

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


# -- encodings Thunderbird decodes that the neutralizer cannot learn from headers --------------------


def uuencoded(data: bytes, name: bytes = b"news.html") -> bytes:
    lines = [b"begin 644 " + name]
    lines += [binascii.b2a_uu(data[i : i + 45], backtick=True).rstrip(b"\n") for i in range(0, len(data), 45)]
    return b"\r\n".join([*lines, b"`", b"end"]) + b"\r\n"


def uudecoded(body: bytes) -> bytes:
    lines = body.split(b"\r\n")
    start = next(i for i, line in enumerate(lines) if line.startswith(b"begin "))
    return b"".join(binascii.a2b_uu(line) for line in lines[start + 1 : lines.index(b"end")])


def yencoded(data: bytes, name: bytes = b"news.html") -> bytes:
    out, lines = bytearray(), []
    for b in data:
        c = (b + 42) & 255
        out += b"=" + bytes(((c + 64) & 255,)) if c in b"\0\r\n=" else bytes((c,))
        if len(out) >= 128:
            lines.append(bytes(out))
            out.clear()
    lines.append(bytes(out))
    head = b"=ybegin line=128 size=%d name=%s\r\n" % (len(data), name)
    return head + b"\r\n".join(lines) + b"\r\n=yend size=%d\r\n" % len(data)


def ydecoded(body: bytes) -> bytes:
    out = bytearray()
    for line in body.split(b"\r\n")[1:]:
        if line.startswith(b"=yend "):
            break
        escaped = False
        for c in line:
            if c == 0x3D and not escaped:
                escaped = True
                continue
            out.append((c - (106 if escaped else 42)) & 255)
            escaped = False
    return bytes(out)


MARKUP = (
    b"<html><body>"
    + b"<p>Lorem ipsum dolor sit amet.</p>\r\n" * 20
    + b'<img src="https://pixel.example.net/o.gif?u=1">'
    + b"<div style='background:url(//t.example/b.png)'>&#104;ttps://a</div></body></html>\r\n"
)


@pytest.mark.parametrize(("encode", "decode"), [(uuencoded, uudecoded), (yencoded, ydecoded)])
def test_uuencoded_and_yencoded_markup_is_neutralized_through_its_encoding(encode, decode) -> None:  # type: ignore[no-untyped-def]
    # Thunderbird decodes both (a part in x-uuencode or x-yencode, or a "begin 644 news.html" in
    # untyped text, which it types by name) and renders the HTML; the neutralizer finds them by their
    # begin lines.
    body = b"Hello,\r\n" + encode(MARKUP) + b"Bye.\r\n"
    out, edits = neutralize_section(body)
    assert len(out) == len(body) and out.count(b"\n") == body.count(b"\n") and edits == 3
    text = decode(out[len(b"Hello,\r\n") :])
    assert len(text) == len(MARKUP) and sum(a != b for a, b in zip(text, MARKUP, strict=True)) == 3
    assert not re.search(rb"(?i)https?:|[\"'=(]//|&#", text)
    rng = random.Random(len(body))
    for _ in range(10):  # any chunking gives the same bytes
        n = StreamNeutralizer()
        got, i = [], 0
        while i < len(body):
            k = rng.choice([1, 3, 7, 64, 100, 1000])
            got.append(n.feed(body[i : i + k]))
            assert len(n._buf) < 2000
            i += k
        assert b"".join(got) + n.feed(b"", last=True) == out


@pytest.mark.parametrize(("encode", "decode"), [(uuencoded, uudecoded), (yencoded, ydecoded)])
def test_uuencoded_and_yencoded_binary_is_left_alone(encode, decode) -> None:  # type: ignore[no-untyped-def]
    # Lines of uuencode are printable: read as text they spell "&#", "=//", "\\1" by chance, which
    # the neutralizer broke in thousands of places of a 2 MB attachment.
    blob = random.Random(7).randbytes(2 << 20)
    body = encode(blob, b"photo.jpg")
    out, edits = neutralize_section(body)
    assert edits == 0 and out == body and decode(out) == blob


def test_uuencode_lines_longer_than_the_decoders_buffer_are_read_in_its_pieces() -> None:
    # Thunderbird's uudecoder reads at most 127 bytes of a line, loses two, and decodes the rest as a
    # line of its own: a line of a valid length character and 125 characters, two bytes, then a
    # uuencoded line of markup.
    tag = binascii.b2a_uu(b"<img src='https://t.example/p'>", backtick=True).rstrip(b"\n")
    long_line = b"M" + b"`" * 124 + b"!!" + tag
    body = b"begin 644 a.html\r\n" + long_line + b"\r\nend\r\n"
    out, edits = neutralize_section(body)
    assert edits == 1
    piece = out[len(b"begin 644 a.html\r\n") + 127 :].split(b"\r\n")[0]
    assert binascii.a2b_uu(piece) == b"<img src='xttps://t.example/p'>"


def test_misplaced_base64_padding_is_zeroed_when_any_reading_spells_a_reference() -> None:
    # "P=AA" decodes to "<" and a NUL for Thunderbird, whose decoder takes groups of four across the
    # body, then the HTML; a reader stream by stream is out of step after it and sees garbage. With no
    # offsets in common to edit by, the run is zeroed: NULs for every reader, lengths kept.
    html = b"<p>Hello reader.</p>" * 30 + b"<img src='https://t.example/p.gif'>" + b"<p>bye</p>" * 30
    enc = b"P=AA" + base64.b64encode(html)
    body = b"\r\n".join(enc[i : i + 76] for i in range(0, len(enc), 76)) + b"\r\n"
    out, edits = neutralize_section(body)
    assert edits == 1 and len(out) == len(body) and out.count(b"\n") == body.count(b"\n")
    assert out.replace(b"A", b"").replace(b"\r\n", b"") == b"=" * body.count(b"=")
    for step in (1, 7, 100, 1000):  # streamed: from the chunk where a reading spells it on
        n = StreamNeutralizer()
        got = b"".join(n.feed(body[i : i + step]) for i in range(0, len(body), step)) + n.feed(b"", last=True)
        chars = got.translate(None, b"\r\n")
        groups = [chars[i : i + 4] for i in range(0, len(chars), 4)]
        thunderbird = b"".join(  # its reading: "=" a zero, and one byte less of its group
            base64.b64decode(g.replace(b"=", b"A"))[: max(1, 3 - g.count(b"="))] for g in groups
        )
        assert not re.search(rb"(?i)https?:", thunderbird), step
    # Text that only looks like such base64 ("key=value" lines) is left alone.
    assert neutralize_section(b"x=1234\r\nwidth=600\r\n") == (b"x=1234\r\nwidth=600\r\n", 0)


def test_partial_chunks_of_base64_text_read_their_last_line() -> None:
    # A partial fetch ends inside a base64 line: its characters were never decoded, and a reference
    # in the last line of a chunk passed.
    html = b"<p>" + b"Lorem ipsum dolor sit amet. " * 8 + b'<img src="https://t.example/p.gif"></p>\r\n'
    full = b64_lines(html * 4, 76, b"\r\n")
    line = full.index(b"\r\n") + 2
    for end in range(len(full) // 2, len(full)):
        chunk = full[line:end]
        out, _ = neutralize_section(chunk, origin=line)
        chars = out.translate(None, b"\r\n")
        text = base64.b64decode(chars[: len(chars) // 4 * 4])
        assert not re.search(rb"(?i)https?://t\.example", text), end


def test_references_cut_by_partial_fetches_of_base64_text_are_broken() -> None:
    # A client fetching a base64 part in chunks reassembles them: a reference cut by a chunk's end
    # (between two bytes, or inside one, its bits in two chunks) must load nothing either way.
    live = re.compile(rb"(?i)(?:https?|ftp|wss?):[/\\][/\\]|[\"'=(]//|&#|\\[0-9a-f]")
    refs = [
        b'<img src="https://t.example/p.gif">',
        b"<b style='background:url(//t.example/b)'>",
        b"&#104;ttps://q",
        b"<i style='x:url(\\68ttps://t/)'>",
        b"<a href='HTTP://shop.example/x'>",
    ]
    rng = random.Random(5)
    for _ in range(300):
        words = [b"Lorem ipsum dolor sit amet. ", b"<p>x</p>\r\n", *refs]
        html = b"".join(rng.choice(words) for _ in range(60))
        body = b64_lines(html, rng.choice([76, 64, 77, 4]), rng.choice([b"\r\n", b"\n"]))
        size = rng.choice([50, 97, 211, 400])
        cuts = [0, *range(rng.randrange(1, size), len(body), size), len(body)]
        got = b"".join(
            neutralize_section(body[a:b], origin=a)[0] for a, b in zip(cuts, cuts[1:], strict=False)
        )
        assert len(got) == len(body) and got.count(b"\n") == body.count(b"\n")
        text = base64.b64decode(got)
        assert not live.search(text), (size, cuts[1], live.search(text))


# -- the same through the proxy, in front of Dovecot --------------------------------------------------

LIVE = re.compile(rb"(?i)(?:https?|ftp|wss?):[/\\][/\\]|[\"'=(]//|&#|\\[0-9a-f]")


def groupwise(body: bytes) -> bytes:
    """base64 as Thunderbird's decoder reads it: groups of four across the body, "=" a zero that
    shortens its group by one byte."""
    chars = bytes(
        c for c in body if c in b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/="
    )
    groups = [chars[i : i + 4] for i in range(0, len(chars) - len(chars) % 4, 4)]
    return b"".join(base64.b64decode(g.replace(b"=", b"A"))[: max(1, 3 - g.count(b"="))] for g in groups)


def append(dovecot: Dovecot, mailbox: str, message: bytes) -> None:
    d = imaplib.IMAP4("127.0.0.1", dovecot.port)
    d.login(USER, PASSWORD)
    d.delete(mailbox)  # left over from an earlier run, or absent
    assert d.create(mailbox)[0] == "OK"
    assert d.append(mailbox, None, None, message)[0] == "OK"
    d.logout()


def test_oversized_message_with_markup_thunderbird_decodes_otherwise(
    make_proxy: MakeProxy, dovecot: Dovecot
) -> None:
    # HTML parts in uuencode and yEnc (which Thunderbird decodes and renders) and in base64 with
    # padding inside a group (which it reads in groups across the body), beside a big attachment:
    # streamed through the neutralizer, which passed their trackers to Thunderbird.
    attachment = random.Random(3).randbytes(3 << 20)
    padded = b"P=AA" + base64.b64encode(MARKUP)
    parts = [
        (b"text/html", b"x-uuencode", uuencoded(MARKUP)),
        (b"text/html", b"x-yencode", yencoded(MARKUP)),
        (
            b"text/html",
            b"base64",
            b"\r\n".join(padded[i : i + 76] for i in range(0, len(padded), 76)) + b"\r\n",
        ),
        (b"application/octet-stream", b"base64", base64.encodebytes(attachment).replace(b"\n", b"\r\n")),
    ]
    msg = b"Subject: encodings\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=B1\r\n\r\n"
    for ctype, cte, body in parts:
        msg += b"--B1\r\nContent-Type: %s\r\nContent-Transfer-Encoding: %s\r\n\r\n%s" % (ctype, cte, body)
    msg += b"--B1--\r\n"
    append(dovecot, "Encodings", msg)
    c = imaplib.IMAP4("127.0.0.1", make_proxy(max_literal=1 << 20).port)
    c.login(USER, PASSWORD)
    c.select("Encodings", readonly=True)
    typ, data = c.fetch("1", "(BODY.PEEK[])")
    assert typ == "OK" and isinstance(data[0], tuple)
    got = data[0][1]
    assert c.noop()[0] == "OK"
    c.logout()
    assert len(got) == len(msg) and got.count(b"\n") == msg.count(b"\n")
    bodies = [p.split(b"\r\n\r\n", 1)[1] for p in got.split(b"--B1")[1:-1]]
    uu, y, b64, blob = bodies
    for text in (uudecoded(uu), ydecoded(y)):
        assert len(text) == len(MARKUP) and sum(a != b for a, b in zip(text, MARKUP, strict=True)) == 3
        assert not LIVE.search(text), text[-200:]
    assert groupwise(b64) == bytes(len(groupwise(padded)))  # zeroed: NULs, as many as before
    assert base64.b64decode(blob) == attachment  # not a byte of the attachment changed


def test_partial_fetches_of_base64_markup_the_filter_cannot_serve(
    make_proxy: MakeProxy, dovecot: Dovecot
) -> None:
    # A FETCH with a literal in it goes to the server as it is, so the filter cannot add the whole
    # message: each chunk of a partial fetch is neutralized alone. A reference cut by a chunk's end,
    # or in the last line of a chunk (never decoded), reached the client whole once reassembled.
    html = b"".join(
        random.Random(9).choice([b"<p>Lorem ipsum dolor sit amet.</p>\r\n", MARKUP]) for _ in range(40)
    )
    body = base64.encodebytes(html).replace(b"\n", b"\r\n")
    append(
        dovecot,
        "Chunks",
        b"Subject: chunks\r\nContent-Type: text/html\r\nContent-Transfer-Encoding: base64\r\n\r\n" + body,
    )
    sock = socket.create_connection(("127.0.0.1", make_proxy().port), timeout=15)
    f = sock.makefile("rb")

    def until(tag: bytes) -> list[bytes]:
        got: list[bytes] = []
        while not got or not got[-1].startswith(tag + b" "):
            line = f.readline()
            m = re.search(rb"\{([0-9]+)\}\r\n\Z", line)
            got.append(line + (f.read(int(m.group(1))) if m else b""))
        assert got[-1].startswith(tag + b" OK"), got[-1]
        return got

    until(b"*")  # the greeting
    sock.sendall(b"l LOGIN %s %s\r\ns EXAMINE Chunks\r\n" % (USER.encode(), PASSWORD.encode()))
    until(b"l")
    until(b"s")
    chunks = []
    for offset in range(0, len(body), 211):
        sock.sendall(
            b"f FETCH 1 (BODY.PEEK[HEADER.FIELDS ({7+}\r\nSubject)] BODY.PEEK[1]<%d.211>)\r\n" % offset
        )
        resp = b"".join(until(b"f"))
        m = re.search(rb"BODY\[1\]<%d> \{([0-9]+)\}\r\n" % offset, resp)
        assert m is not None, resp[:300]
        chunks.append(resp[m.end() : m.end() + int(m.group(1))])
    sock.close()
    got = b"".join(chunks)
    assert len(got) == len(body) and got.count(b"\n") == body.count(b"\n")
    text = base64.b64decode(got)
    assert len(text) == len(html) and text.count(b"<p>") == html.count(b"<p>")
    assert not LIVE.search(text), LIVE.search(text)


@pytest.mark.parametrize("eol", [b"\r\n", b"\n"])
def test_base64_lines_around_a_blank_line_are_one_text(eol: bytes) -> None:
    # Decoders skip blank lines in base64: a reference on both sides of one ("<img src='ht" then
    # "tps://...") is one reference to them, and was two halves of none to the neutralizer.
    html = b"<p>Hello reader.</p><img src='https://t.example/p.gif'><p>Bye.</p>"
    enc = base64.b64encode(html)
    h = html.index(b"https")
    boundary = h // 3 * 3 + 3  # the first group boundary after the "h"
    assert h < boundary < h + 5
    body = enc[: boundary // 3 * 4] + eol + eol + enc[boundary // 3 * 4 :] + eol
    for step in (1, 5, 1000):
        n = StreamNeutralizer()
        out = b"".join(n.feed(body[i : i + step]) for i in range(0, len(body), step)) + n.feed(b"", last=True)
        assert (out, n.edits) == neutralize_section(body)
        assert base64.b64decode(out.replace(eol, b"")) == html.replace(b"https:", b"xttps:"), step


@pytest.mark.parametrize(
    ("chunks", "expect"),
    [
        # Output that ended in a soft line break ("=\r", which shows nothing) left no byte before the
        # next chunk's text: every offset found in it was one too low, so a line break was broken
        # instead of the "&" of "&#" ...
        ([b"=", b"\rU\n&#"], b"=\rU\n_#"),
        # ... or the "=" before "//" was taken for an escape, and the stream raised ValueError.
        ([b"=\r", b"=//h"], b"=\r=_/h"),
    ],
)
def test_chunks_after_a_soft_line_break_that_shows_nothing(chunks: list[bytes], expect: bytes) -> None:
    n = StreamNeutralizer()
    assert b"".join(n.feed(c) for c in chunks) + n.feed(b"", last=True) == expect
    assert neutralize_section(b"".join(chunks))[0] == expect


def test_markup_after_a_begin_line_is_text_whatever_the_chunking() -> None:
    # A "begin " line makes the lines after it uuencode to the neutralizer, where a reference read as
    # text counts only near markup; in an HTML part (which Thunderbird renders as HTML) the markup
    # before the reference may have gone out with an earlier chunk. Here the reference starts where
    # the uudecoder starts a line (127 bytes into the long line, three times), so an output may end
    # right before it.
    rng = random.Random(1)
    line = b"<p>" + b"x" * (127 * 3 - 13) + b'<img src="https://t.example/p.gif">'
    line += bytes(rng.choice(b"abcdefghijklmnopqrstuvwxyz ~_^`!#") for _ in range(1500)) + b"</p>\r\n"
    body = b"begin 644 x.html\r\n" + line
    expect = body.replace(b"https://t.example", b"xttps://t.example")
    assert neutralize_section(body) == (expect, 1)
    ref = body.index(b"https")
    for k in range(ref, ref + 1200, 3):
        n = StreamNeutralizer()
        assert n.feed(body[:k]) + n.feed(body[k:]) + n.feed(b"", last=True) == expect, k


def most_held(head: bytes, unit: bytes, size: int = 600_000, step: int = 16_384) -> int:
    """The most bytes a stream of ``head`` then ``unit`` repeated holds back between chunks."""
    data = head + unit * (size // len(unit))
    n = StreamNeutralizer()
    emitted = most = 0
    for i in range(0, len(data), step):
        emitted += len(n.feed(data[i : i + step]))
        most = max(most, min(i + step, len(data)) - emitted)
    assert emitted + len(n.feed(b"", last=True)) == len(data)
    return most


@pytest.mark.parametrize(
    ("head", "unit"),
    [
        (b"", b"QQ==\r\n"),  # base64 lines of one padded group each
        (b"Q\r\n", b"QUJD\r\n"),  # a line that leaves every later line start inside a group
        (b"QUJD\r\n", b"\r\n"),  # a base64 line, then blank lines that may come before more
        (b"x=\r\n", b"=\r\n"),  # soft line breaks, which show nothing
    ],
)
def test_memory_stays_bounded_whatever_the_stream(head: bytes, unit: bytes) -> None:
    assert most_held(head, unit) < 64 * 1024


def b64(data: bytes) -> bytes:
    return base64.encodebytes(data).replace(b"\n", b"\r\n")


@pytest.mark.parametrize(
    "data",
    [
        b'<img src="ht' + b"=\r\n" * 20_000 + b'tps://t.example/p.gif">\r\n',
        b64(b'<p>x</p><img src="ht') + b"\r\n" * 20_000 + b64(b'tps://t.example/p.gif">'),
        b"Q\r\n" + b64(b'<img src="https://t.example/p.gif">' * 2000),
    ],
)
def test_what_a_bounded_stream_cannot_hold_back_still_loads_nothing(data: bytes) -> None:
    # (The reference goes on after more than the stream holds back, or the run has no group boundary
    # to end the output at: the stream breaks what the output's end may begin, or zeroes the run.)
    out, edits = neutralize(data, 4096)
    assert len(out) == len(data) and out.count(b"\n") == data.count(b"\n") and edits
    assert neutralize_section(out) == (out, 0)


def test_markup_that_went_out_with_an_earlier_chunk_still_makes_a_reference_text() -> None:
    # A reference among control bytes counts as text near markup ('src='), which a chunk boundary
    # may have sent out before the reference is judged (browsers skip the spaces before the URL).
    page = (b'<img src="' + b" " * 100 + b'https://t.example/p.gif">' + b"\x01" * 30 + b"<p>x</p>" * 60) * 40
    for data in (page, b64(page)):
        assert b"https://t.example" not in neutralize_section(data)[0]
        for step in (64, 100, 4096):
            out, edits = neutralize(data, step)
            assert b"https://t.example" not in (out if data is page else base64.b64decode(out)), step
            assert edits == 40
