"""FETCH planning and response rewriting, bytes in and bytes out, with a stand-in rewriter."""

from __future__ import annotations

import base64
import email

import pytest

from mailproxy.imap import FetchContext, plan_fetch, rewrite_fetch
from mailproxy.imap._fetch import MARKER_FIELD, parse_item

HTML_QP = b'<p>hi <img src=3D"https://t.example/TRACKER.gif"></p>\r\n'
HTML_B64 = base64.encodebytes(b"<p>b64 <img src='https://t.example/TRACKER'></p>").replace(b"\n", b"\r\n")
MESSAGE = (
    b"From: a@example.com\r\n"
    b"To: b@example.com\r\n"
    b"Content-Type: multipart/alternative; boundary=XX\r\n"
    b"\r\n"
    b"--XX\r\n"
    b"Content-Type: text/plain\r\n"
    b"\r\n"
    b"plain TRACKER text is left alone by nobody\r\n"
    b"--XX\r\n"
    b"Content-Type: text/html\r\n"
    b"Content-Transfer-Encoding: quoted-printable\r\n"
    b"\r\n" + HTML_QP + b"--XX\r\n"
    b"Content-Type: text/html\r\n"
    b"Content-Transfer-Encoding: base64\r\n"
    b"\r\n" + HTML_B64 + b"--XX--\r\n"
)


def fake_rewrite(raw: bytes) -> bytes:
    return raw.replace(b"TRACKER", b"-------").replace(base64.b64encode(b"TRACKER")[:8], b"LS0tLS0t")


# base64 of "TRACKER" does not align in HTML_B64, so the stand-in rewrites the decoded form instead.
def rewrite_b64_aware(raw: bytes) -> bytes:
    out = fake_rewrite(raw)
    enc = HTML_B64
    dec = base64.b64decode(enc)
    new = base64.encodebytes(dec.replace(b"TRACKER", b"-------")).replace(b"\n", b"\r\n")
    return out.replace(enc, new)


REWRITTEN = rewrite_b64_aware(MESSAGE)


def ctx(cache: dict[int, bytes] | None = None) -> FetchContext:
    store = cache if cache is not None else {}
    return FetchContext(rewrite=rewrite_b64_aware, lookup=store.get, store=store.__setitem__)


def lit(data: bytes, eight: bool = False) -> bytes:
    return (b"~" if eight else b"") + b"{%d}\r\n" % len(data) + data


def section(msg: bytes, start_marker: bytes, end_marker: bytes) -> bytes:
    i = msg.index(start_marker) + len(start_marker)
    return msg[i : msg.index(end_marker, i)]


def test_parse_item() -> None:
    it = parse_item(b"BODY.PEEK[1.2.TEXT]<10.20>")
    assert it is not None and (it.kind, it.path, it.suffix, it.origin) == (
        b"BODY",
        (1, 2),
        b"TEXT",
        10,
    )
    it = parse_item(b"RFC822.TEXT")
    assert it is not None and (it.kind, it.suffix, it.sectioned) == (b"BODY", b"TEXT", True)
    it = parse_item(b"BODY[HEADER.FIELDS (FROM TO)]")
    assert it is not None and it.suffix.startswith(b"HEADER.FIELDS")
    assert parse_item(b"FLAGS") is not None and parse_item(b"FLAGS").sectioned is False  # type: ignore[union-attr]
    assert parse_item(b"BODY[") is None


@pytest.mark.parametrize(
    ("line", "extended"),
    [
        (b"a UID FETCH 5 (UID BODY.PEEK[])\r\n", False),
        (b"a FETCH 1:* (FLAGS RFC822.SIZE)\r\n", False),
        (b"a FETCH 1 (BODY.PEEK[HEADER.FIELDS (FROM)])\r\n", False),  # a listing: never
        (b"a FETCH 1:* (RFC822.HEADER)\r\n", False),
        (b"a FETCH 1 (BODY.PEEK[2.MIME])\r\n", True),  # the engine may rename a field in it
        (b"a FETCH 1 (BODY.PEEK[2.HEADER.FIELDS (TO)])\r\n", True),
        (b"a FETCH 1 (BODY.PEEK[HEADER]<0.100>)\r\n", True),
        (b"a FETCH 1 RFC822\r\n", False),
        (b"a FETCH 1 ALL\r\n", False),
        (b"a UID FETCH 5 (UID BODY.PEEK[]<0.65536>)\r\n", True),
        (b"a FETCH 3 BODY.PEEK[TEXT]\r\n", True),
        (b"a FETCH 3 (BODY[2] BODY[])\r\n", False),  # the whole is there already
        (b"a UID FETCH 1:4 (BINARY.PEEK[2])\r\n", True),
        (b"a FETCH 1 (RFC822.TEXT) (CHANGEDSINCE 5)\r\n", True),
    ],
)
def test_plan_extends_only_when_needed(line: bytes, extended: bool) -> None:
    rest = line.split(b"FETCH ", 1)[1]
    plan = plan_fetch(line, rest, uid_command=b"UID" in line, cached=lambda uid: False)
    assert plan.extended is extended
    if extended:
        assert plan.line.count(b"(") >= line.count(b"(") and b"BODY.PEEK[] " in plan.line
        assert MARKER_FIELD in plan.line
        assert plan.line.endswith(b"\r\n")
    else:
        assert plan.line == line


def test_plan_shapes() -> None:
    line = b"t UID FETCH 5 (UID BODY.PEEK[]<0.65536>)\r\n"
    plan = plan_fetch(line, line[12:], uid_command=True, cached=lambda uid: False)
    assert plan.line == (
        b"t UID FETCH 5 (UID BODY.PEEK[]<0.65536> BODY.PEEK[] "
        b"BODY.PEEK[HEADER.FIELDS (X-MAILPROXY-WHOLE)])\r\n"
    )
    assert plan.uid == 5
    line = b"t FETCH 3 BODY.PEEK[TEXT]\r\n"
    plan = plan_fetch(line, line[8:], uid_command=False, cached=lambda uid: False)
    assert (
        plan.line == b"t FETCH 3 (BODY.PEEK[TEXT] BODY.PEEK[] "
        b"BODY.PEEK[HEADER.FIELDS (X-MAILPROXY-WHOLE)])\r\n"
    )
    line = b"t FETCH 1 (RFC822.TEXT) (CHANGEDSINCE 5)\r\n"
    plan = plan_fetch(line, line[8:], uid_command=False, cached=lambda uid: False)
    assert plan.line.endswith(b"(X-MAILPROXY-WHOLE)]) (CHANGEDSINCE 5)\r\n")


def test_plan_uses_the_cache_for_one_uid_only() -> None:
    line = b"t UID FETCH 5 (BODY.PEEK[]<65536.65536>)\r\n"
    asked: list[int] = []

    def cached(uid: int) -> bool:
        asked.append(uid)
        return True

    assert plan_fetch(line, line[12:], uid_command=True, cached=cached).line == line
    assert asked == [5]
    line = b"t UID FETCH 5:6 (BODY.PEEK[]<0.10>)\r\n"
    assert plan_fetch(line, line[12:], uid_command=True, cached=cached).extended


def test_plan_garbage_goes_unchanged() -> None:
    for line in (
        b"t FETCH\r\n",
        b"t FETCH 1 (BODY[\r\n",
        b"t FETCH 1 (((\r\n",
        b"t FETCH 1 {5}\r\n",
    ):
        rest = line[8:]
        assert plan_fetch(line, rest, uid_command=False, cached=lambda u: False).line == line


def test_whole_body_is_rewritten_wherever_it_sits() -> None:
    resp = b"* 1 FETCH (FLAGS (\\Seen) UID 9 BODY[] " + lit(MESSAGE) + b" RFC822.SIZE %d)\r\n" % len(MESSAGE)
    out = rewrite_fetch(resp, ctx())
    assert out == resp.replace(MESSAGE, REWRITTEN)
    assert b"TRACKER" not in out
    resp2 = b"* 1 FETCH (RFC822 " + lit(MESSAGE) + b")\r\n"
    assert rewrite_fetch(resp2, ctx()) == resp2.replace(MESSAGE, REWRITTEN)


def test_nothing_to_do_returns_none() -> None:
    assert rewrite_fetch(b"* 1 FETCH (FLAGS (\\Seen))\r\n", ctx()) is None
    clean = b"From: a\r\n\r\nhello\r\n"
    assert rewrite_fetch(b"* 1 FETCH (BODY[] " + lit(clean) + b")\r\n", ctx()) is None
    assert rewrite_fetch(b"* 1 FETCH (BODY[] NIL)\r\n", ctx()) is None
    assert rewrite_fetch(b"* 1 EXISTS\r\n", ctx()) is None


def test_garbage_is_passed_through() -> None:
    for resp in (
        b"* 1 FETCH (BODY[] {99}\r\nshort)\r\n",
        b"* 1 FETCH (BODY[] \r\n",
        b"* 1 FETCH (UID)\r\n",
        b"* 1 FETCH (BODY[HEADER.FIELDS (A)] (((\r\n",
    ):
        assert rewrite_fetch(resp, ctx()) is None


def ours(*items: bytes) -> bytes:
    marker = b"BODY[HEADER.FIELDS (X-MAILPROXY-WHOLE)] {2}\r\n\r\n"
    return b"* 4 FETCH (" + b" ".join(items) + b" BODY[] " + lit(MESSAGE) + b" " + marker + b")\r\n"


def test_partial_chunks_come_from_the_rewritten_whole_and_extras_are_stripped() -> None:
    cache: dict[int, bytes] = {}
    size = len(MESSAGE)
    pieces = []
    for o in range(0, size + 50, 50):
        original = MESSAGE[o : o + 50]
        if o == 0:
            resp = ours(b"UID 9", b"BODY[]<0> " + lit(original))
        else:
            resp = b"* 4 FETCH (UID 9 BODY[]<%d> " % o + lit(original) + b")\r\n"
        out = rewrite_fetch(resp, ctx(cache))
        expect = b"* 4 FETCH (UID 9 BODY[]<%d> " % o + lit(REWRITTEN[o : o + 50]) + b")\r\n"
        if original == REWRITTEN[o : o + 50] and o:
            assert out is None
            out = resp
        assert out == expect
        pieces.append(REWRITTEN[o : o + 50])
    assert b"".join(pieces) == REWRITTEN
    assert cache == {9: REWRITTEN}


def test_text_and_part_sections() -> None:
    text = MESSAGE[MESSAGE.index(b"\r\n\r\n") + 4 :]
    out = rewrite_fetch(ours(b"BODY[TEXT] " + lit(text)), ctx())
    rtext = REWRITTEN[REWRITTEN.index(b"\r\n\r\n") + 4 :]
    assert out == b"* 4 FETCH (BODY[TEXT] " + lit(rtext) + b")\r\n"
    part2 = section(MESSAGE, b"quoted-printable\r\n\r\n", b"\r\n--XX")
    out = rewrite_fetch(ours(b"BODY[2] " + lit(part2)), ctx())
    assert out == b"* 4 FETCH (BODY[2] " + lit(part2.replace(b"TRACKER", b"-------")) + b")\r\n"
    part3 = section(MESSAGE, b"base64\r\n\r\n", b"\r\n--XX--")
    out = rewrite_fetch(ours(b"BODY[3]<4> " + lit(part3[4:20])), ctx())
    rpart3 = section(REWRITTEN, b"base64\r\n\r\n", b"\r\n--XX--")
    assert out == b"* 4 FETCH (BODY[3]<4> " + lit(rpart3[4:20]) + b")\r\n"
    # The plain part is untouched by the rewriter: no change, but the extras still go.
    part1 = b"plain TRACKER text is left alone by nobody"
    out = rewrite_fetch(ours(b"BODY[1] " + lit(part1)), fake_ctx_identity())
    assert out == b"* 4 FETCH (BODY[1] " + lit(part1) + b")\r\n"


def fake_ctx_identity() -> FetchContext:
    return FetchContext(rewrite=lambda raw: raw, lookup=lambda uid: None, store=lambda uid, d: None)


def test_binary_sections_are_decoded_rewritten_content() -> None:
    decoded = base64.b64decode(section(MESSAGE, b"base64\r\n\r\n", b"\r\n--XX--"))
    out = rewrite_fetch(ours(b"BINARY[3] " + lit(decoded, eight=True)), ctx())
    assert out == b"* 4 FETCH (BINARY[3] " + lit(decoded.replace(b"TRACKER", b"-------"), True) + b")\r\n"
    # QP decoded: =3D becomes "=".
    qp = b'<p>hi <img src="https://t.example/TRACKER.gif"></p>'
    out = rewrite_fetch(ours(b"BINARY[2]<3> " + lit(qp[3:], eight=True)), ctx())
    assert out == b"* 4 FETCH (BINARY[2]<3> " + lit(qp[3:].replace(b"TRACKER", b"-------"), True) + b")\r\n"


def test_section_that_does_not_match_is_neutralized_and_counted() -> None:
    c = ctx()
    other = b"something else: <img src='https://t.example/x.gif'>"
    out = rewrite_fetch(ours(b"BODY[2] " + lit(other)), c)
    assert out == b"* 4 FETCH (BODY[2] " + lit(other.replace(b"https", b"xttps")) + b")\r\n"
    assert c.unrewritten == 1
    c = ctx()
    # No whole message and nothing cached: the section is neutralized, counted.
    text = b"TRACKER https://t.example/TRACKER.gif"
    resp = b"* 4 FETCH (UID 3 BODY[TEXT] " + lit(text) + b")\r\n"
    assert rewrite_fetch(resp, c) == resp.replace(b"https", b"xttps")
    assert c.unrewritten == 1


def test_headers_served_from_the_whole_only_when_at_hand() -> None:
    header = MESSAGE[: MESSAGE.index(b"\r\n\r\n") + 4]
    c = FetchContext(
        rewrite=lambda raw: raw.replace(b"To:", b"TO:"),
        lookup=lambda uid: None,
        store=lambda u, d: None,
    )
    out = rewrite_fetch(b"* 1 FETCH (BODY[HEADER] " + lit(header) + b" BODY[] " + lit(MESSAGE) + b")\r\n", c)
    assert out is not None and out.count(b"TO:") == 2
    out = rewrite_fetch(b"* 1 FETCH (BODY[HEADER] " + lit(header) + b")\r\n", c)
    assert out is None


def test_quoted_and_nil_bodies() -> None:
    out = rewrite_fetch(b'* 1 FETCH (BODY[] "a TRACKER b")\r\n', ctx())
    assert out == b"* 1 FETCH (BODY[] {11}\r\na ------- b)\r\n"
    out = rewrite_fetch(ours(b"BODY[TEXT] NIL"), ctx())
    assert out == b"* 4 FETCH (BODY[TEXT] NIL)\r\n"


def test_response_of_only_extras_disappears() -> None:
    assert rewrite_fetch(ours(), ctx()) == b""


def test_length_changing_rewriter_is_refused() -> None:
    c = FetchContext(rewrite=lambda raw: raw + b"x", lookup=lambda u: None, store=lambda u, d: None)
    resp = b"* 1 FETCH (BODY[] " + lit(MESSAGE) + b")\r\n"
    # Neither its output nor the message unfiltered: the message neutralized, base64 part included.
    out = rewrite_fetch(resp, c)
    assert out is not None and len(out) == len(resp) and c.unrewritten == 1
    body = out[out.index(b"}\r\n") + 3 : -3]
    html = [p.get_payload(decode=True) for p in email.message_from_bytes(body).walk()][2:]
    assert [b"xttps://t.example/TRACKER" in h for h in html] == [True, True]
