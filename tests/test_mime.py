"""MIME structure with byte offsets: nested multiparts, message/rfc822, malformed input."""

from __future__ import annotations

from email.message import EmailMessage
from email.policy import SMTP

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailproxy import mime

NESTED = (
    b'From: a@example.com\r\nContent-Type: multipart/mixed; boundary="XX"\r\n\r\n'
    b"preamble\r\n--XX\r\nContent-Type: multipart/alternative; boundary=YY\r\n\r\n"
    b"--YY\r\nContent-Type: text/plain\r\n\r\nhello\r\n"
    b"--YY\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
    b"<p>hi</p>\r\n--YY--\r\n"
    b"--XX\r\nContent-Type: message/rfc822\r\n\r\n"
    b"Subject: inner\r\nContent-Type: text/html\r\n\r\n<b>x</b>\r\n"
    b"--XX--\r\nepilogue\r\n"
)


def body(raw: bytes, p: mime.Part) -> bytes:
    return raw[p.body_start : p.end]


def test_nested_parts_and_offsets() -> None:
    root = mime.parse(NESTED)
    parts = {p.number: p for p in root.walk() if not p.children}
    assert body(NESTED, parts["1.1"]) == b"hello"
    html = parts["1.2"]
    assert (html.content_type, html.charset, html.cte) == ("text/html", "utf-8", "quoted-printable")
    assert body(NESTED, html) == b"<p>hi</p>"
    inner = [p for p in root.walk() if p.content_type == "text/html" and p is not html]
    assert len(inner) == 1 and body(NESTED, inner[0]) == b"<b>x</b>"


def test_missing_final_boundary_runs_to_the_end() -> None:
    raw = (
        b"Content-Type: multipart/mixed; boundary=B\r\n\r\n--B\r\nContent-Type: text/html\r\n\r\n<img src=x>"
    )
    [leaf] = mime.parse(raw).leaves()
    assert body(raw, leaf) == b"<img src=x>"


def test_endless_headers_and_no_body() -> None:
    raw = b"Subject: x\r\n" * 10000
    root = mime.parse(raw)
    assert root.body_start == root.end == len(raw)


def test_boundary_that_never_occurs_is_an_opaque_body() -> None:
    raw = b"Content-Type: multipart/mixed; boundary=NOPE\r\n\r\nhello"
    root = mime.parse(raw)
    assert root.children == () and body(raw, root) == b"hello"


def test_hostile_nesting_is_bounded() -> None:
    raw = b""
    for i in range(200):
        raw += f"Content-Type: multipart/mixed; boundary=b{i}\r\n\r\n--b{i}\r\n".encode()
    raw += b"Content-Type: text/html\r\n\r\n<img src=x>\r\n"
    root = mime.parse(raw)
    depth = 0
    node = root
    while node.children:
        node = node.children[0]
        depth += 1
    assert depth <= mime.MAX_DEPTH


def test_lf_only_line_endings() -> None:
    raw = NESTED.replace(b"\r\n", b"\n")
    parts = {p.number: p for p in mime.parse(raw).leaves()}
    assert body(raw, parts["1.1"]) == b"hello"


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.sampled_from(["text/plain", "text/html", "image/png"]), min_size=1, max_size=5),
    st.integers(0, 3),
)
def test_stdlib_built_messages_roundtrip(types: list[str], depth: int) -> None:
    msg = EmailMessage()
    msg["From"] = "a@example.com"
    msg.set_content("plain")
    for i, t in enumerate(types):
        main, sub = t.split("/")
        if main == "text":
            msg.add_attachment(f"<p>part {i}</p>", subtype=sub)
        else:
            msg.add_attachment(b"\x89PNG" * 10, maintype=main, subtype=sub)
    for _ in range(depth):
        outer = EmailMessage()
        outer["From"] = "b@example.com"
        outer.set_content("wrapper")
        outer.add_attachment(msg)
        msg = outer
    raw = msg.as_bytes(policy=SMTP)
    leaves = mime.parse(raw).leaves()
    texts = [body(raw, p) for p in leaves if p.content_type == "text/html"]
    assert len(texts) == len([t for t in types if t == "text/html"])
    assert all(b"<p>part" in t for t in texts)


def types(raw: bytes) -> list[tuple[str, str]]:
    return [(mime.body_number(p), p.content_type) for p in mime.parse(raw).leaves()]


def test_a_boundary_followed_by_other_characters_is_a_delimiter() -> None:
    # Dovecot (BODYSTRUCTURE, BODY[n]) matches the boundary as a prefix of the line; the rest is ignored.
    raw = (
        b"Content-Type: multipart/mixed; boundary=B1\r\n\r\n--B1\r\nContent-Type: text/plain\r\n\r\nhi\r\n"
        b"--B1x\r\nContent-Type: text/html\r\n\r\n<img src=x>\r\n--B1-- trailing\r\n"
        b"--B1\r\nContent-Type: text/html\r\n\r\nafter the close: epilogue\r\n"
    )
    assert types(raw) == [("1", "text/plain"), ("2", "text/html")]
    html = mime.parse(raw).leaves()[1]
    assert body(raw, html) == b"<img src=x>"
    # Thunderbird wants the whole line: to it "--B1x" is text of part 1, so the parts are ambiguous.
    assert mime.parse(raw).ambiguous


@pytest.mark.parametrize(
    ("separator", "close", "ambiguous"),
    [
        (b"--B1", b"--B1--", False),
        (b"--B1 \t", b"--B1-- \t", False),  # trailing white space: a delimiter for every client
        (b"--B1x", b"--B1--", True),
        (b"--B1", b"--B1--x", True),
        (b"--B1", b"--B1-", True),  # for Dovecot "--B1-" delimits; for Thunderbird it is text
    ],
)
def test_delimiters_thunderbird_does_not_take_make_the_multipart_ambiguous(
    separator: bytes, close: bytes, ambiguous: bool
) -> None:
    raw = (
        b"Content-Type: multipart/mixed; boundary=B1\r\n\r\n--B1\r\nContent-Type: text/html\r\n\r\n<p>hi"
        b"\r\n" + separator + b"\r\nContent-Type: text/plain\r\n\r\n<img src=x>\r\n" + close + b"\r\n"
    )
    assert mime.parse(raw).ambiguous is ambiguous


def test_nested_boundaries_that_are_prefixes_of_each_other() -> None:
    # The longest matching boundary wins; an enclosing multipart's delimiter ends the inner one.
    for outer, inner in ((b"B", b"BB"), (b"BB", b"B")):
        raw = (
            b"Content-Type: multipart/mixed; boundary=" + outer + b"\r\n\r\n--" + outer + b"\r\n"
            b"Content-Type: multipart/alternative; boundary=" + inner + b"\r\n\r\n"
            b"--" + inner + b"\r\n\r\nplain\r\n--" + inner + b"\r\nContent-Type: text/html\r\n\r\n<b>\r\n"
            b"--" + outer + b"\r\nContent-Type: image/png\r\n\r\npng\r\n--" + outer + b"--\r\n"
        )
        assert types(raw) == [("1.1", "text/plain"), ("1.2", "text/html"), ("2", "image/png")], (outer, inner)
        assert body(raw, mime.parse(raw).leaves()[1]) == b"<b>"


def test_header_lines_clients_skip_do_not_end_the_header() -> None:
    for odd in (b"a stray line\r\n", b"X-Thing : 1\r\n", b"Content-Type : text/html\r\n", b"\x80bad: 1\r\n"):
        raw = b"From: a@example.com\r\n" + odd + b"Content-Type: text/html\r\n\r\n<img src=x>\r\n"
        assert types(raw) == [("1", "text/html")], odd
    raw = b"Subject: x\r\nContent-Type\t: text/html; charset=utf-8\r\n\r\n<img>"
    root = mime.parse(raw)
    assert (root.content_type, root.charset, root.ambiguous) == ("text/html", "utf-8", False)


def test_headers_clients_may_read_differently_are_ambiguous() -> None:
    lone_cr = b"X-A: 1\rContent-Type: text/plain\r\nContent-Type: text/html\r\n\r\n<img>"
    twice = b"Content-Type: text/plain\r\nContent-Type: text/html\r\n\r\n<img>"
    empty_boundary = (
        b'Content-Type: multipart/mixed; boundary=""\r\n\r\n--\r\nContent-Type: text/html\r\n\r\n<img>'
    )
    encoded_message = b"Content-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n\r\nPGltZz4="
    for raw in (lone_cr, twice, empty_boundary, encoded_message):
        assert mime.parse(raw).ambiguous
    assert not mime.parse(b"Content-Type: text/html\r\nContent-Type: TEXT/HTML\r\n\r\n<img>").ambiguous


def test_parts_beyond_the_limits_are_ambiguous() -> None:
    raw = b"Content-Type: multipart/mixed; boundary=B\r\n\r\n"
    raw += b"--B\r\nContent-Type: text/plain\r\n\r\nx\r\n" * (mime.MAX_PARTS + 5) + b"--B--\r\n"
    assert mime.parse(raw).ambiguous


def test_a_parameter_field_too_long_to_read_makes_its_part_ambiguous() -> None:
    # The stdlib reads parameters in time quadratic in a field's length (email.message._parseparam: a
    # 1 MB Content-Type field took 9 s a read); no mail has such a field, and its part is neutralized.
    body = b"\r\n\r\n<img src=https://t.example/p>\r\n--B--\r\n"
    for field in (b"Content-Type: text/html", b"Content-Disposition: inline"):
        long = field + b"; x=(a)" * 3000
        root = mime.parse(b"Content-Type: multipart/mixed; boundary=B\r\n\r\n--B\r\n" + long + body)
        assert root.children[0].ambiguous, field
        short = field + b"; x=(a)" * 1000
        root = mime.parse(b"Content-Type: multipart/mixed; boundary=B\r\n\r\n--B\r\n" + short + body)
        assert not root.children[0].ambiguous, field


def test_parameters_the_stdlib_cannot_join_are_ambiguous() -> None:
    # RFC 2231 sections the stdlib's parameter reader raises on: "name*" beside "name*0" (TypeError), a
    # section number too long for int() (ValueError). Clients join them each their own way.
    body = b"\r\n\r\n--B\r\nContent-Type: text/html\r\n\r\n<img src=x>\r\n--B--\r\n"
    for params in (
        b"boundary*=B; boundary*0=B",
        b"boundary=B; charset*=a; charset*0=b",
        b"x*" + b"1" * 5000 + b"=y",
        b"boundary*0*=us-ascii\0''B",  # a charset name with a NUL (ValueError)
    ):
        root = mime.parse(b"Content-Type: multipart/mixed; " + params + body)
        assert root.ambiguous and root.content_type == "multipart/mixed", params
        # Read with a lone CR as a line break (Thunderbird), the field is there; read as Dovecot does, not.
        assert mime.parse(b"X-A: 1\rContent-Type: multipart/mixed; " + params + body).ambiguous, params


@pytest.mark.parametrize(
    ("content_type", "ambiguous"),
    [
        (b"=?windows-1252?q?text/html", True),  # Thunderbird keeps what follows the last "?"
        (b'application/octet-stream; name="news.HTML"', True),  # and types octet-stream by file name
        (b"application/octet-stream; name*=utf-8''a%2Eeml", True),
        (b'application/octet-stream\r\nContent-Disposition: attachment; filename="a.svg"', True),
        (b'application/octet-stream; name="report.pdf"', False),
        (b'application/pdf; name="a.html"', False),  # a named type is kept
        (b"text/html", False),
    ],
)
def test_types_thunderbird_reads_otherwise_are_ambiguous(content_type: bytes, ambiguous: bool) -> None:
    raw = b"Content-Type: multipart/mixed; boundary=B\r\n\r\n--B\r\nContent-Type: " + content_type
    raw += b"\r\n\r\n<p>x</p>\r\n--B--\r\n"
    assert mime.parse(raw).children[0].ambiguous is ambiguous


@pytest.mark.parametrize(
    ("field", "cte"),
    [
        (b"base64 (from a gateway)", "base64"),
        (b"Quoted-Printable; x=1", "quoted-printable"),
        (b"base64,x", "base64"),
        (b"", "7bit"),
    ],
)
def test_the_transfer_encoding_is_the_fields_first_token(field: bytes, cte: str) -> None:
    # As Thunderbird and Dovecot read it: a comment or parameter after it does not hide the encoding.
    raw = b"Content-Type: text/html\r\nContent-Transfer-Encoding: " + field + b"\r\n\r\n<p>x</p>\r\n"
    assert mime.parse(raw).cte == cte


@pytest.mark.parametrize(
    ("content_type", "ambiguous"),
    [
        (b"text/html (a comment)", True),  # Thunderbird reads the first token: HTML
        (b"text/html\x00junk", True),  # its C string ends at the NUL: HTML
        (b"multipart/mixed (c); boundary=B", True),
        (b"text/html ; charset=utf-8", False),
        (b"TEXT/HTML", False),
    ],
)
def test_a_type_whose_first_token_reads_otherwise_is_ambiguous(content_type: bytes, ambiguous: bool) -> None:
    raw = b"Content-Type: " + content_type + b"\r\n\r\n<p>x</p>\r\n"
    assert mime.parse(raw).ambiguous is ambiguous
