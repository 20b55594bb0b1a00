"""The cheap check that lets most mail without HTML skip the engine (``mailproxy.triage.may_change``,
session rule 10): it must never say "unchanged" for a message the engine would change or report on."""

from __future__ import annotations

import base64
import binascii
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from imap_support import build_messages

from bench.corpus import generate
from mailproxy import mime
from mailproxy.engine import Engine
from mailproxy.imap import RewriteJob, Session
from mailproxy.triage import may_change

HEAD = b"From: News <news@shop.example.org>\r\nTo: reader@example.org\r\nSubject: s\r\nMIME-Version: 1.0\r\n"
PIXEL = b'<img src="https://pixel.mailchimp.com/open.gif?u=1" width="1" height="1">\r\n'
TEXT = b"Read more at https://shop.example.org/p/1 today.\r\n"


# Without MIME-Version nor Content-Type, a body is untyped text to Thunderbird (mimemsg.cpp, mimeunty.cpp).
UNTYPED_HEAD = HEAD.replace(b"MIME-Version: 1.0\r\n", b"")


def uuencoded(data: bytes) -> bytes:
    lines = [binascii.b2a_uu(data[i : i + 45], backtick=True).rstrip(b"\n") for i in range(0, len(data), 45)]
    return b"\r\n".join([b"begin 644 news.html", *lines, b"`", b"end"]) + b"\r\n"


def yencoded(data: bytes) -> bytes:
    out = b"".join(bytes((c,)) if c not in b"\0\r\n=" else b"=" + bytes(((c + 64) & 255,)) for c in data)
    return b"=ybegin line=128 size=%d name=news.html\r\n%s\r\n=yend size=%d\r\n" % (len(data), out, len(data))


def multipart(kind: bytes, *parts: bytes) -> bytes:
    body = b"".join(b"--B\r\n" + p + b"\r\n" for p in parts)
    return HEAD + b"Content-Type: multipart/" + kind + b"; boundary=B\r\n\r\n" + body + b"--B--\r\n"


CASES: dict[str, tuple[bytes, bool]] = {
    "no content-type": (HEAD + b"\r\n" + TEXT, False),
    "text/plain": (HEAD + b"Content-Type: text/plain\r\n\r\n" + TEXT, False),
    # Evolution's text/plain parser renders a body starting with a Content-Type field as that part.
    "plain body naming html": (
        HEAD + b"Content-Type: text/plain\r\n\r\nContent-Type: text/html\r\n\r\n" + PIXEL,
        True,
    ),
    "plain body naming html later": (
        HEAD + b"Content-Type: text/plain\r\n\r\nhi\r\nContent-Type: text/html\r\n\r\n" + PIXEL,
        False,
    ),
    "receipt field in the body only": (
        HEAD + b"Content-Type: text/plain\r\n\r\nDisposition-Notification-To: a@b.example\r\n",
        False,
    ),
    "bare LF lines": ((HEAD + b"Content-Type: text/plain\r\n\r\n" + TEXT).replace(b"\r\n", b"\n"), False),
    "mixed without markup": (
        multipart(
            b"mixed",
            b"Content-Type: text/plain\r\n\r\n" + TEXT,
            b"Content-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK",
        ),
        False,
    ),
    # Parts a client may read otherwise, which the engine neutralizes: a line holding the boundary (K-9
    # takes it for a delimiter), a lone CR before one (K-9 and Thunderbird end a line there).
    "boundary inside a line": (
        multipart(b"mixed", b"Content-Type: text/plain\r\n\r\nx --B\r\n" + PIXEL),
        True,
    ),
    "lone CR before a delimiter": (
        multipart(b"mixed", b"Content-Type: text/plain\r\n\r\na\r--B\r\n" + PIXEL),
        True,
    ),
    # Thunderbird renders a uuencoded or yEncoded file in untyped text by its name: news.html is HTML.
    "untyped text with a uuencoded file": (UNTYPED_HEAD + b"\r\n" + TEXT + uuencoded(PIXEL), True),
    "untyped text with a yEncoded file": (UNTYPED_HEAD + b"\r\n" + TEXT + yencoded(PIXEL), True),
    "untyped text": (UNTYPED_HEAD + b"\r\n" + TEXT + b"begin at 9\r\n", False),
    "mime text with a uuencoded file": (HEAD + b"\r\n" + TEXT + uuencoded(PIXEL), False),
    "html": (HEAD + b"Content-Type: text/html\r\n\r\n" + PIXEL, True),
    "upper case": (HEAD + b"CONTENT-TYPE: TEXT/HTML\r\n\r\n" + PIXEL, True),
    "folded type": (HEAD + b"Content-Type:\r\n text/html;\r\n charset=utf-8\r\n\r\n" + PIXEL, True),
    "bare LF html": ((HEAD + b"Content-Type: text/html\r\n\r\n" + PIXEL).replace(b"\r\n", b"\n"), True),
    "alternative": (
        multipart(
            b"alternative",
            b"Content-Type: text/plain\r\n\r\n" + TEXT,
            b"Content-Type: text/html; charset=utf-8\r\n\r\n" + PIXEL,
        ),
        True,
    ),
    "svg attachment": (multipart(b"mixed", b"Content-Type: image/svg+xml\r\n\r\n<svg>" + PIXEL), True),
    "stylesheet": (
        multipart(b"related", b"Content-Type: text/css\r\n\r\nbody{background:url(https://t.example/p)}"),
        True,
    ),
    "forwarded html": (
        HEAD + b"Content-Type: message/rfc822\r\n\r\n" + HEAD + b"Content-Type: text/html\r\n\r\n" + PIXEL,
        True,
    ),
    "external body": (
        multipart(
            b"mixed",
            b"Content-Type: text/plain\r\n\r\n" + TEXT,
            b'Content-Type: message/external-body; access-type=URL; URL="https://t.example/f.pdf"\r\n\r\n'
            b"Content-Type: application/pdf\r\n",
        ),
        True,
    ),
    "external body on top, blank before the colon": (
        HEAD + b"Content-Type : message/external-body; access-type=anon-ftp; site=t.example; name=f\r\n\r\n",
        True,
    ),
    "read receipt": (
        HEAD
        + b"Disposition-Notification-To: news@shop.example.org\r\nContent-Type: text/plain\r\n\r\n"
        + TEXT,
        True,
    ),
}


@pytest.mark.parametrize("name", CASES)
def test_verdict(name: str) -> None:
    raw, expected = CASES[name]
    assert may_change(raw) is expected


@pytest.mark.parametrize("name", [n for n, (_, changes) in CASES.items() if changes])
def test_every_case_said_to_change_is_one_the_engine_acts_on(name: str) -> None:
    # Keeps the cases honest: each "True" case really is one the check must not miss.
    result = Engine().rewrite(CASES[name][0])
    assert result.findings or result.receipts_neutralized or result.failsafe_parts


def _corpus() -> list[bytes]:
    samples = Path(mime.__file__).parent / "samples"
    html = generate(30, seed=7, html_kb=(16, 24), recipient="reader@example.org")
    return (
        [p.read_bytes() for p in sorted(samples.glob("*.eml"))]
        + list(build_messages().values())
        + html
        + [raw for raw, _ in CASES.values()]
    )


def test_the_check_is_sound_on_every_message_at_hand() -> None:
    engine = Engine()
    skipped = 0
    for raw in _corpus():
        if may_change(raw):
            continue
        skipped += 1
        result = engine.rewrite(raw)
        assert result.data == raw and not result.findings and not result.receipts_neutralized
    assert skipped >= 5


def test_the_session_passes_such_a_message_on_without_a_job_or_a_rewriter_call() -> None:
    calls: list[bytes] = []

    def rewriter(raw: bytes, user: str | None) -> bytes:
        calls.append(raw)
        return raw

    plain, html = CASES["text/plain"][0], CASES["html"][0]
    s = Session(rewriter, defer_rewrites=True, may_change=may_change)
    s.receive_server(b"* OK ready\r\n")
    out = s.receive_server(
        b"* 1 FETCH (UID 1 BODY[] {%d}\r\n%s)\r\n" % (len(plain), plain)
        + b"* 2 FETCH (UID 2 BODY[] {%d}\r\n%s)\r\n" % (len(html), html)
    )
    assert out.to_client == b"* 1 FETCH (UID 1 BODY[] {%d}\r\n%s)\r\n" % (len(plain), plain)
    assert out.rewrite == RewriteJob(html, None)
    assert calls == []


def test_a_long_run_of_hyphens_is_read_once(monkeypatch: pytest.MonkeyPatch) -> None:
    # Past the first runs, a pattern finds where a run may go on into a marker ("--" anywhere in a run
    # of hyphens), and the run is decoded on from its start: once per run, not once per match (a run of
    # n hyphens was read n/2 times, quadratic work in the body's length).
    import mailproxy.triage as triage

    calls: list[int] = []
    run_end = triage._run_end

    def counted(raw: bytes, pos: int, end: int, marker: bytes, qp: bool) -> int:
        calls.append(pos)
        return run_end(raw, pos, end, marker, qp)

    monkeypatch.setattr(triage, "_run_end", counted)
    body = b"-x " * 9 + b"-" * 2000 + b"x\r\n"
    raw = HEAD + b"Content-Type: text/plain\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n" + body
    assert not may_change(raw)
    assert len(calls) <= 10


# Pieces of text that make the triage's shortcuts work hard: the starts of the inline blocks Evolution cuts
# text at, Content-Type lines it then parses as a part, HTML with a pixel, and the bytes the quick scans
# look for ("-", "(", "%", "2", "=").
PIECES = [
    b"news ",
    b"caf\xc3\xa9 ",
    b"\r\n",
    b"\n",
    b"\r",
    b" ",
    b"-",
    b"--",
    b"-- \r\n",
    b"(",
    b"%",
    b"2",
    b"=",
    b"B",
    b"T",
    b"!",
    b"-----BEGIN PGP SIGNED MESSAGE-----\r\n",
    b"-----BEGIN PGP MESSAGE-----\r\n",
    b"(This file must be converted with BinHex 4.0)\r\n",
    b"%!PS-Adobe-3.0\r\n",
    b"Content-Type: text/html\r\n\r\n",
    b"content-type: message/rfc822\r\n\r\nContent-Type: text/html\r\n\r\n",
    PIXEL,
    b"\r\n" + uuencoded(PIXEL),
    b"\r\n" + yencoded(PIXEL),
]


@st.composite
def quoted_printable(draw: st.DrawFn, data: bytes) -> bytes:
    """``data`` quoted-printable encoded, with some other bytes escaped and soft breaks put anywhere."""
    out = bytearray()
    for byte in data:
        if byte in b"\r\n" or (32 < byte < 127 and byte != 61 and draw(st.integers(0, 7)) != 0):
            out.append(byte)
        else:
            out += b"=%02X" % byte if draw(st.booleans()) else b"=%02x" % byte
        if draw(st.integers(0, 11)) == 0:
            out += draw(st.sampled_from([b"=\r\n", b"=\n", b" =\r\n", b"=\r\n=\r\n"]))
    return bytes(out)


@st.composite
def messages(draw: st.DrawFn) -> bytes:
    text = b"".join(draw(st.lists(st.sampled_from(PIECES), max_size=24)))
    cte = draw(st.sampled_from([b"7bit", b"quoted-printable", b"base64", None]))
    if cte == b"quoted-printable":
        body = draw(st.sampled_from([binascii.b2a_qp(text), draw(quoted_printable(text))]))
    elif cte == b"base64":
        body = base64.encodebytes(text).replace(b"\n", b"\r\n")
    else:
        body = text
    ctype = draw(st.sampled_from([b"text/plain; charset=utf-8", b"application/pdf", b"text", None]))
    fields = (b"Content-Type: " + ctype + b"\r\n" if ctype else b"") + (
        b"Content-Transfer-Encoding: " + cte + b"\r\n" if cte else b""
    )
    # Fields clients may read otherwise: a second encoding, a comment, a lone CR.
    fields += draw(
        st.sampled_from(
            [b"", b"", b"Content-Transfer-Encoding: base64\r\n", b"Content-Transfer-Encoding: (x) base64\r\n"]
            + [b"X-Note: a\rb\r\n", b"Content-Type: text/html\r\n"]
        )
    )
    if draw(st.booleans()):
        return draw(st.sampled_from([HEAD, UNTYPED_HEAD])) + fields + b"\r\n" + body
    pdf = b"Content-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK"
    return multipart(b"mixed", fields + b"\r\n" + body, pdf)


ENGINE = Engine()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(messages())
def test_a_message_said_not_to_change_comes_out_of_the_engine_unchanged(raw: bytes) -> None:
    if not may_change(raw):
        result = ENGINE.rewrite(raw)
        assert result.data == raw and not result.findings and not result.receipts_neutralized
        assert not result.failsafe_parts
