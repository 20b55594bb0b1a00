"""Messages GNOME Evolution reads otherwise than mailproxy.mime (which follows Dovecot) and the engine do,
in ways that would let HTML (or anything remote) reach its WebKit view unfiltered. Each case names the
evolution-data-server (camel) or Evolution (em-format) function whose reading it follows; the engine must
leave nothing remote in what Evolution would render.
"""

from __future__ import annotations

from mailproxy import mime
from mailproxy.engine import Engine, may_change

TRACKER = "https://news.us5.list-manage.com/track/open.php?u=0123456789abcdef012345678&id=abcdef0123"
BEACON = b'<p>Hi</p><img src="' + TRACKER.encode() + b'" width=1 height=1>'
HEAD = b"From: Shop <news@shop.example>\r\nTo: alice@example.org\r\nSubject: Deals\r\nMIME-Version: 1.0\r\n"
ENGINE = Engine()


def rewritten(raw: bytes) -> bytes:
    """The message as the IMAP filter delivers it: through the engine when ``may_change`` says so."""
    if not may_change(raw):
        return raw
    out = ENGINE.rewrite(raw).data
    assert len(out) == len(raw) and out.count(b"\n") == raw.count(b"\n")
    return out


def test_a_delimiter_of_an_outer_boundary_is_an_inner_one_to_evolution() -> None:
    # camel-mime-parser.c, folder_boundary_check: the innermost open boundary that prefixes the line
    # wins ("B" before "BB"), where Dovecot takes the longest. "--BB--" is then no close delimiter but
    # one of "B", and the HTML after it, the outer multipart's epilogue to Dovecot, is a part to Evolution.
    raw = (
        HEAD + b"Content-Type: multipart/mixed; boundary=BB\r\n\r\n"
        b"--BB\r\nContent-Type: multipart/mixed; boundary=B\r\n\r\n"
        b"--B\r\nContent-Type: text/plain\r\n\r\nhi\r\n"
        b"--BB--\r\nContent-Type: text/html\r\n\r\n" + BEACON + b"\r\n"
    )
    assert mime.parse(raw).ambiguous
    assert TRACKER.encode() not in rewritten(raw)


def test_nested_boundaries_evolution_reads_alike_stay_unambiguous() -> None:
    raw = (
        HEAD + b"Content-Type: multipart/mixed; boundary=B\r\n\r\n"
        b"--B\r\nContent-Type: multipart/alternative; boundary=BB\r\n\r\n"
        b"--BB\r\nContent-Type: text/plain\r\n\r\nhi\r\n--BB\r\nContent-Type: text/html\r\n\r\n"
        + BEACON
        + b"\r\n--BB--\r\n--B--\r\n"
    )
    assert not mime.parse(raw).walk()[1].ambiguous and not mime.parse(raw).ambiguous
