"""MIME structure with byte offsets: nested multiparts, message/rfc822, malformed input."""

from __future__ import annotations

from email.message import EmailMessage
from email.policy import SMTP

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
