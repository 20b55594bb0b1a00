"""Length-preserving edits through transfer encodings (mailproxy.rewrite.transfer)."""

from __future__ import annotations

import base64
import binascii
import email.base64mime
import email.quoprimime
import quopri
import random
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailproxy.errors import MailproxyError
from mailproxy.rewrite import transfer
from mailproxy.rewrite.transfer import Edit, TransferError, apply_edits, decode, same_shape

QP = "quoted-printable"

# --- an independent reference quoted-printable decoder --------------------------------------------
# Written line by line from RFC 2045, unlike the module's regex tokenizer, and returning for every
# decoded byte the encoded range that produced it (the module's covering-range convention: trailing
# whitespace before a hard break travels with the break's first byte).

_HEX = b"0123456789ABCDEFabcdef"


def ref_qp(enc: bytes) -> tuple[bytes, list[tuple[int, int]]]:
    out = bytearray()
    where: list[tuple[int, int]] = []
    n = len(enc)
    ls = 0
    while ls < n:
        lf = enc.find(b"\n", ls)
        le = n if lf < 0 else lf
        ce = le - 1 if lf >= 0 and le > ls and enc[le - 1] == 13 else le
        stripped = ce
        while stripped > ls and enc[stripped - 1] in b" \t":
            stripped -= 1
        soft = stripped > ls and enc[stripped - 1] == 61
        body_end = stripped - 1 if soft else stripped
        j = ls
        while j < body_end:
            if enc[j] == 61 and j + 3 <= body_end and enc[j + 1] in _HEX and enc[j + 2] in _HEX:
                out.append(int(enc[j + 1 : j + 3], 16))
                where.append((j, j + 3))
                j += 3
            else:
                out.append(enc[j])
                where.append((j, j + 1))
                j += 1
        if lf >= 0 and not soft:
            if ce < le:  # CRLF
                out += b"\r\n"
                where += [(stripped, le), (le, le + 1)]
            else:
                out += b"\n"
                where.append((stripped, le + 1))
        ls = le + 1
    return bytes(out), where


def breaks(span: bytes) -> bytes:
    return bytes(c for c in span if c in b"\r\n")


def expected_pattern(old: bytes, edits: list[Edit]) -> re.Pattern[bytes]:
    """What the padding rule promises: content, any number of spaces, the span's CR/LF, the rest."""
    parts: list[bytes] = []
    pos = 0
    for e in sorted(edits, key=lambda e: e.start):
        parts += [re.escape(old[pos : e.start]), re.escape(e.content), b" *"]
        parts.append(re.escape(breaks(old[e.start : e.end])))
        pos = e.end
    parts.append(re.escape(old[pos:]))
    return re.compile(b"".join(parts), re.DOTALL)


def check_qp_result(enc: bytes, out: bytes, edits: list[Edit]) -> None:
    assert same_shape(enc, out)
    old, where = ref_qp(enc)
    new, _ = ref_qp(out)
    assert decode(out, QP) == new
    assert expected_pattern(old, edits).fullmatch(new)
    # Bytes outside the encoded ranges covering the edits are untouched.
    allowed = bytearray(len(enc))
    for e in edits:
        if e.end > e.start:
            a, b = where[e.start][0], where[e.end - 1][1]
            allowed[a:b] = b"\x01" * (b - a)
    for i, (x, y) in enumerate(zip(enc, out, strict=True)):
        assert x == y or allowed[i], f"byte {i} changed outside the edited ranges"


def lines_of(data: bytes) -> list[bytes]:
    return [line[:-1] if line.endswith(b"\r") else line for line in data.split(b"\n")]


# --- Edit, same_shape -----------------------------------------------------------------------------


def test_transfer_error_is_a_mailproxy_error() -> None:
    assert issubclass(TransferError, MailproxyError)


@pytest.mark.parametrize(
    ("start", "end", "content"),
    [(-1, 3, b""), (5, 4, b""), (0, 2, b"abc"), (0, 5, b"a\nb"), (0, 5, b"a\rb"), (0, 5, "abc")],
)
def test_edit_rejects_bad_values(start: int, end: int, content: object) -> None:
    with pytest.raises(TransferError):
        Edit(start, end, content)  # type: ignore[arg-type]


def test_edit_accepts_valid_values() -> None:
    e = Edit(2, 6, b"ab")
    assert (e.start, e.end, e.content) == (2, 6, b"ab")
    assert Edit(3, 3, b"").end == 3


def test_same_shape() -> None:
    assert same_shape(b"ab\ncd", b"xy\nzw")
    assert not same_shape(b"ab\ncd", b"ab\n\nd")  # same length, one more line
    assert not same_shape(b"ab\ncd", b"ab\ncde")


# --- decode ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("cte", ["7bit", "8bit", "binary", "x-unknown", "", " 7BIT "])
def test_decode_identity_encodings(cte: str) -> None:
    assert decode(b"a=3D\r\nb  \r\n", cte) == b"a=3D\r\nb  \r\n"


@pytest.mark.parametrize(
    ("enc", "dec"),
    [
        (b"a=3Db=3dc\r\nd", b"a=b=c\r\nd"),  # escapes, either case; CRLF kept
        (b"ab=\r\ncd=\nef", b"abcdef"),  # soft breaks, CRLF and LF
        (b"ab= \t\r\ncd", b"abcd"),  # transport padding after a soft break "="
        (b"ab  \t\r\ncd \nef  ", b"ab\r\ncd\nef"),  # trailing whitespace dropped
        (b"a b=20\r\n", b"a b \r\n"),  # an escaped space survives
        (b"a=ZZb=4", b"a=ZZb=4"),  # invalid escapes kept literally
        (b"abc=", b"abc"),  # "=" at the end: a soft break
        (b"a\rb=0D=0A", b"a\rb\r\n"),  # lone CR literal; escaped CRLF
        (b"=3=\r\nDb", b"=3Db"),  # an invalid "=" is not completed across a soft break
        (b"", b""),
    ],
)
def test_decode_quoted_printable(enc: bytes, dec: bytes) -> None:
    assert decode(enc, QP) == dec
    assert decode(enc, " Quoted-Printable ") == dec


_QP_NOISE = st.binary(max_size=0) | st.lists(
    st.sampled_from([b"=", b"3", b"D", b"d", b"Z", b" ", b"\t", b"\r", b"\n", b"\r\n", b"a", b"\xff"]),
    max_size=60,
).map(b"".join)


@given(_QP_NOISE)
def test_decode_qp_matches_reference(enc: bytes) -> None:
    assert decode(enc, QP) == ref_qp(enc)[0]


@pytest.mark.parametrize(
    ("enc", "dec"),
    [
        (b"QUJD\r\nREVG\r\n", b"ABCDEF"),
        (b"QU JD\n\tREVG", b"ABCDEF"),  # whitespace anywhere
        (b"QUJD!!REVG", b"ABCDEF"),  # garbage skipped
        (b"QUI=", b"AB"),
        (b"QUI", b"AB"),  # missing padding
        (b"QUJDRE", b"ABCD"),
        (b"QUJDR", b"ABC"),  # a lone final character carries no byte
        (b"QQ==QUJD", b"A"),  # decoding stops at the end padding, like binascii
    ],
)
def test_decode_base64_lenient(enc: bytes, dec: bytes) -> None:
    assert decode(enc, "base64") == dec


@given(st.binary(max_size=40))
def test_decode_base64_never_crashes(enc: bytes) -> None:
    assert isinstance(decode(enc, "base64"), bytes)


def test_decode_rejects_non_bytes() -> None:
    with pytest.raises(TransferError):
        decode("text", QP)  # type: ignore[arg-type]
    assert decode(bytearray(b"a=3D"), QP) == b"a="  # type: ignore[arg-type]


# --- 7bit / 8bit / binary -------------------------------------------------------------------------


@pytest.mark.parametrize("cte", ["7bit", "8bit", "binary", "x-uuencode"])
def test_plain_splice(cte: str) -> None:
    body = b'<img src="http://t.example/o?u=1">\r\n<p>\r\n'
    s = body.index(b"http")
    e = body.index(b'"', s)
    out = apply_edits(body, cte, [Edit(s, e, b"http://k.example/a")])
    assert out == b'<img src="http://k.example/a    ">\r\n<p>\r\n'


def test_plain_span_with_line_breaks_keeps_them_in_order_at_the_end() -> None:
    body = b"<img\r\nsrc=x\nwidth=1>tail"
    out = apply_edits(body, "7bit", [Edit(0, body.index(b"tail"), b"")])
    assert out == b" " * 17 + b"\r\n\n" + b"tail"
    assert same_shape(body, out)


def test_plain_edits_unsorted_and_empty_ones() -> None:
    body = b"0123456789"
    out = apply_edits(body, "7bit", [Edit(6, 9, b"x"), Edit(4, 4, b""), Edit(0, 3, b"ab")])
    assert out == b"ab 345x  9"
    assert apply_edits(body, "7bit", []) is body


@pytest.mark.parametrize(
    "edits",
    [
        [Edit(0, 5, b""), Edit(4, 6, b"")],  # overlapping
        [Edit(8, 12, b"")],  # past the end
        [Edit(0, 3, b"abc")],  # content + the span's line break do not fit
        ["not an edit"],
    ],
)
def test_plain_bad_edits(edits: list[Edit]) -> None:
    with pytest.raises(TransferError):
        apply_edits(b"ab\ncdefgh", "7bit", edits)


# --- base64 ---------------------------------------------------------------------------------------

HTML = (
    b"<html><body><p>Hello</p>\r\n"
    b'<img src="https://tracker.example.com/open/0123456789abcdef?u=42&amp;m=7" width="1">\r\n'
    b"<p>Bye</p></body></html>\r\n"
)


def wrap(data: bytes, width: int, eol: bytes, final_eol: bool = True) -> bytes:
    lines = [data[i : i + width] for i in range(0, len(data), width)]
    return eol.join(lines) + (eol if final_eol else b"")


@pytest.mark.parametrize(
    ("width", "eol", "final"), [(76, b"\r\n", True), (64, b"\n", True), (60, b"\r\n", False)]
)
def test_base64_edit_keeps_layout(width: int, eol: bytes, final: bool) -> None:
    enc = wrap(base64.b64encode(HTML), width, eol, final)
    s = HTML.index(b"https")
    e = HTML.index(b'"', s)
    out = apply_edits(enc, "base64", [Edit(s, e, b"https://k.example/x.png")])
    assert same_shape(enc, out)
    assert [len(x) for x in out.split(eol)] == [len(x) for x in enc.split(eol)]
    new = base64.b64decode(out)
    assert new == HTML[:s] + b"https://k.example/x.png" + b" " * (e - s - 23) + HTML[e:]
    # Only the 4-character groups covering the edit changed.
    stream_old, stream_new = enc.replace(eol, b""), out.replace(eol, b"")
    first = next(i for i in range(len(stream_old)) if stream_old[i] != stream_new[i])
    last = max(i for i in range(len(stream_old)) if stream_old[i] != stream_new[i])
    assert first >= s // 3 * 4 and last < -(-e // 3) * 4


def test_base64_span_with_line_break_and_edit_at_both_ends() -> None:
    enc = base64.encodebytes(HTML)
    n = len(HTML)
    out = apply_edits(enc, "base64", [Edit(0, 30, b"<x>"), Edit(n - 10, n, b"")])
    new = base64.b64decode(out)
    assert new[:30] == b"<x>" + b" " * 25 + b"\r\n"
    assert new[-10:] == b" " * 8 + b"\r\n"
    assert new[30:-10] == HTML[30:-10]


def test_base64_odd_whitespace_is_kept_in_place() -> None:
    enc = b"PGh0 bWw+\r\n\tPGJvZHk+PC9ib2R5\r\nPjwvaHRtbD4=\r\n"
    dec = decode(enc, "base64")
    assert dec == b"<html><body></body></html>"
    out = apply_edits(enc, "base64", [Edit(6, 12, b"<b>")])
    assert [m.span() for m in re.finditer(rb"\s", out)] == [m.span() for m in re.finditer(rb"\s", enc)]
    assert base64.b64decode(out) == b"<html><b>   </body></html>"


@pytest.mark.parametrize(
    "enc",
    [
        b"QUJD\r\nRE\r\n",  # not whole groups
        b"QQ==\r\nQUJD\r\n",  # padding mid-stream
        b"QUI=QUJD",
    ],
)
def test_base64_not_canonical(enc: bytes) -> None:
    with pytest.raises(TransferError):
        apply_edits(enc, "base64", [Edit(0, 1, b"")])


def test_base64_edit_out_of_range() -> None:
    with pytest.raises(TransferError):
        apply_edits(b"QUJD\r\n", "base64", [Edit(1, 4, b"")])


# --- quoted-printable unit cases ------------------------------------------------------------------


def qp_edit(enc: bytes, old: bytes, new: bytes, occurrence: int = 0) -> tuple[bytes, Edit]:
    dec = decode(enc, QP)
    s = -1
    for _ in range(occurrence + 1):
        s = dec.index(old, s + 1)
    edit = Edit(s, s + len(old), new)
    out = apply_edits(enc, QP, [edit])
    check_qp_result(enc, out, [edit])
    return out, edit


def test_qp_soft_break_inside_the_url() -> None:
    enc = quopri.encodestring(HTML.replace(b"\r\n", b"\n") * 2).replace(b"\n", b"\r\n")
    url = b"https://tracker.example.com/open/0123456789abcdef?u=42&amp;m=7"
    assert url not in enc  # it is cut by a soft break and escaped
    out, _ = qp_edit(enc, url, b"")
    assert quopri.decodestring(out).count(b'src="' + b" " * len(url)) == 1
    assert all(len(line) <= 76 for line in lines_of(out))


def test_qp_escapes_in_range_free_room() -> None:
    enc = b'<a href=3D"x?a=3Db=3Dc">\r\n'
    out, _ = qp_edit(enc, b"x?a=b=c", b"x")
    # 11 encoded bytes for 7 decoded ones, as before: "x", 4 spaces and 2 "=20" escapes, so the decoded
    # length stays too (an IMAP BINARY fetch of the part keeps its announced size).
    assert len(out) == len(enc) and out.count(b"=20") == 2 and not out.endswith(b' ">\r\n')
    assert quopri.decodestring(out) == b'<a href="x' + b" " * 6 + b'">\r\n'


def test_qp_content_needing_escapes() -> None:
    enc = b'<a href=3D"http://t.example/o?a=3D1&b=3D2">\r\n'
    out, _ = qp_edit(enc, b"http://t.example/o?a=1&b=2", b"http://t.example/o?a=1")
    assert b"o?a=3D1 " in out


@pytest.mark.parametrize("eol", [b"\r\n", b"\n"])
def test_qp_range_spanning_hard_line_breaks(eol: bytes) -> None:
    enc = eol.join([b"<p>one</p><img", b'src=3D"http://t.example/o"', b"width=3D1>two", b""])
    out, edit = qp_edit(enc, b'<img\r\nsrc="http://t.example/o"\r\nwidth=1>'.replace(b"\r\n", eol), b"")
    new = decode(out, QP)
    assert new.startswith(b"<p>one</p>   ")
    assert new.endswith(eol + eol + b"two" + eol)
    assert out.count(eol) == enc.count(eol)
    assert decode(out, QP) == quopri.decodestring(out)


def test_qp_lines_at_exactly_76() -> None:
    line = b"x" * 30 + b'<img src=3D"http://t.example/' + b"o" * 14 + b'">'
    line = line[:75] + b"="
    assert len(line) == 76
    enc = line + b"\r\n" + b"y" * 75 + b"=\r\n" + b"tail\r\n"
    out, _ = qp_edit(enc, b"http://t.example/" + b"o" * 14, b"http://k/")
    assert all(len(x) <= 76 for x in lines_of(out))
    assert out.endswith(b"y" * 75 + b"=\r\ntail\r\n")


def test_qp_gap_before_an_escape_is_filled_to_keep_76() -> None:
    # The "=3D" of the new content does not fit the first line; without filling the 2-byte gap
    # (escaping an earlier literal) the second line would end at 78 characters.
    first = b"hello \t " + b"x" * 67 + b"="
    second = b"x" * 23 + b" <a href=3D'https://shop.example/p?utm_source=3Dx'>S="
    enc = first + b"\r\n" + second + b"\r\nhop</a>\r\n"
    dec = decode(enc, QP)
    s = 26
    e = dec.index(b"'")
    edit = Edit(s, e, b"x" * 39 + b" <a href=")
    out = apply_edits(enc, QP, [edit])
    check_qp_result(enc, out, [edit])
    assert [len(x) for x in lines_of(out)] == [76, 76, 7, 0]
    assert b"hre=66=\r\n=3D" in out


def test_qp_edit_at_start_and_end_of_body() -> None:
    enc = b"<img src=3Dx>abc<img src=3Dy>"
    dec = decode(enc, QP)
    edits = [Edit(0, 11, b""), Edit(len(dec) - 11, len(dec), b"")]
    out = apply_edits(enc, QP, edits)
    check_qp_result(enc, out, edits)
    # No space may end the body (decoders drop it): the last one is escaped.
    assert out.endswith(b"=20")
    assert decode(out, QP) == quopri.decodestring(out)


def test_qp_empty_content_before_hard_break_uses_escaped_space() -> None:
    out, _ = qp_edit(b"text<img src=3Dx>\r\nmore\r\n", b"<img src=x>", b"")
    assert out == b"text" + b" " * 10 + b"=20\r\nmore\r\n"  # 13 encoded bytes, 11 spaces


def test_qp_short_content_before_hard_break_escapes_content() -> None:
    # Two free bytes before a line end: a literal space would be dropped, "=20" is too long.
    out, _ = qp_edit(b"a url(xy)\r\n", b"url(xy)", b"none")
    assert out == b"a none=20\r\n"
    out, _ = qp_edit(b"a url(x)\r\n", b"url(x)", b"none")
    assert out == b"a non=65\r\n"


def test_qp_one_free_byte_before_hard_break_is_refused() -> None:
    with pytest.raises(TransferError):
        apply_edits(b"a url()\r\nb", QP, [Edit(2, 7, b"none")])


def test_qp_trailing_whitespace_lines() -> None:
    enc = b"line one   \r\n<img src=3Dx>  \t\r\n  \r\nend"
    assert decode(enc, QP) == b"line one\r\n<img src=x>\r\n\r\nend"
    out, _ = qp_edit(enc, b"<img src=x>\r\n", b"")
    # The range takes the dropped whitespace with it: 18 bytes, 13 spaces + "=20" + CRLF.
    assert out == b"line one   \r\n" + b" " * 13 + b"=20\r\n  \r\nend"
    out, _ = qp_edit(enc, b"one\r\n<img", b"")
    assert out == b"line " + b" " * 7 + b"=20\r\n src=3Dx>  \t\r\n  \r\nend"


def test_qp_spare_soft_breaks_follow_the_padding() -> None:
    enc = b"<p>" + b"=\r\n".join([b"a" * 70, b"b" * 70, b"c" * 10]) + b"</p>\r\n"
    out, _ = qp_edit(enc, b"a" * 70 + b"b" * 70 + b"c" * 10, b"short")
    assert out.count(b"=\r\n") == 2
    assert decode(out, QP) == b"<p>short" + b" " * 145 + b"</p>\r\n"


def test_qp_adjacent_edits() -> None:
    enc = b"<img src=3Dx><img src=3Dy>\r\nz"
    edits = [Edit(0, 11, b""), Edit(11, 22, b"")]
    out = apply_edits(enc, QP, edits)
    check_qp_result(enc, out, edits)
    assert decode(out, QP) == quopri.decodestring(out)


@pytest.mark.parametrize(
    ("enc", "edit"),
    [
        (b"a=ZZ<img src=3Dx>=", Edit(4, 15, b"")),  # broken escapes around the edit
        (b"abc=", Edit(0, 3, b"x")),
        (b"ab=4<img>", Edit(4, 9, b"")),
        (b"ab", Edit(1, 5, b"")),  # out of range
    ],
)
def test_qp_malformed_input_never_crashes(enc: bytes, edit: Edit) -> None:
    try:
        out = apply_edits(enc, QP, [edit])
    except TransferError:
        return
    check_qp_result(enc, out, [edit])


def test_qp_invalid_equals_before_range_is_caught() -> None:
    # "=4" then a range whose new first bytes would complete "=4x" into an escape.
    enc = b"x=4Zzz"
    try:
        out = apply_edits(enc, QP, [Edit(3, 6, b"1")])
    except TransferError:
        return
    check_qp_result(enc, out, [Edit(3, 6, b"1")])


# --- property tests -------------------------------------------------------------------------------

_WORDS = [
    b"hello",
    b"the",
    b"=",
    b"caf\xe9",
    b"\t",
    b"  ",
    b'<img src="https://t.example.com/o/abc123.gif?u=42&amp;m=7" width="1">',
    b"<a href='https://shop.example/p?utm_source=x'>Shop</a>",
    b"background:url(https://t.example/b.png);",
    b"<p>",
    b"</p>",
    b"x" * 90,
]


@st.composite
def bodies(draw: st.DrawFn) -> bytes:
    eol = draw(st.sampled_from([b"\r\n", b"\n"]))
    lines = draw(
        st.lists(st.lists(st.sampled_from(_WORDS), max_size=8).map(b" ".join), min_size=1, max_size=8)
    )
    return eol.join(lines) + draw(st.sampled_from([eol, b""]))


def hand_qp(data: bytes, rnd: random.Random) -> bytes:
    """A quoted-printable encoder with its own quirks: random width, extra escapes, LF or CRLF."""
    width = rnd.randint(8, 76)
    out: list[bytes] = []
    for raw in re.split(rb"(\r\n|\n)", data):
        if raw in (b"\r\n", b"\n"):
            out.append(raw)
            continue
        eol = b"\r\n" if b"\r\n" in data else b"\n"
        cur = 0
        for i, c in enumerate(raw):
            must = c == 61 or c > 126 or (c < 32 and c != 9)
            last_ws = c in b" \t" and i == len(raw) - 1
            atom = f"={c:02X}".encode() if must or last_ws or rnd.random() < 0.1 else bytes((c,))
            if cur + len(atom) > width - 1:
                out.append(b"=" + eol)
                cur = 0
            out.append(atom)
            cur += len(atom)
    return b"".join(out)


@st.composite
def qp_cases(draw: st.DrawFn) -> bytes:
    body = draw(bodies())
    how = draw(st.sampled_from(["quopri", "email", "hand"]))
    if how == "quopri":
        return quopri.encodestring(body)
    if how == "email":
        eol = draw(st.sampled_from(["\r\n", "\n"]))
        width = draw(st.integers(min_value=4, max_value=76))
        return email.quoprimime.body_encode(body.decode("latin-1"), width, eol).encode("latin-1")
    return hand_qp(body, random.Random(draw(st.integers())))


@st.composite
def edits_for(draw: st.DrawFn, dec: bytes) -> list[Edit]:
    if not dec:
        return []
    cuts = sorted(draw(st.lists(st.integers(0, len(dec)), max_size=12, unique=True)))
    edits: list[Edit] = []
    for s, e in zip(cuts[::2], cuts[1::2], strict=False):
        if e <= s:
            continue
        text = bytes(c for c in dec[s:e] if c not in b"\r\n")
        keep = draw(st.lists(st.booleans(), min_size=len(text), max_size=len(text)))
        edits.append(Edit(s, e, bytes(c for c, k in zip(text, keep, strict=True) if k)))
    return draw(st.permutations(edits))


def touches_line_end(dec: bytes, e: Edit) -> bool:
    return e.end == len(dec) or dec[e.end] in b"\r\n" or bool(breaks(dec[e.start : e.end]))


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.data())
def test_qp_property(data: st.DataObject) -> None:
    enc = data.draw(qp_cases())
    dec = decode(enc, QP)
    assert dec == quopri.decodestring(enc)  # real decoders agree on what the encoders produced
    edits = data.draw(edits_for(dec))
    try:
        out = apply_edits(enc, QP, edits)
    except TransferError:
        # Only a space that would end a line can make a shortening not fit.
        assert any(touches_line_end(dec, e) for e in edits)
        return
    check_qp_result(enc, out, edits)
    assert decode(out, QP) == quopri.decodestring(out)
    # Lines stay within 76 unless a span reaches a line end: there the text after a hard break must
    # move before it, or a space may not end the line and the only room left is on a full line.
    if all(len(x) <= 76 for x in lines_of(enc)) and not any(touches_line_end(dec, e) for e in edits):
        assert all(len(x) <= 76 for x in lines_of(out))


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_qp_property_with_transport_padding(data: st.DataObject) -> None:
    """Bodies with trailing whitespace (dropped by the decoder) after soft and hard breaks."""
    enc = data.draw(qp_cases())
    rnd = random.Random(data.draw(st.integers()))
    enc = re.sub(rb"(?=\r\n)|(?<!\r)(?=\n)", lambda m: b" \t"[: rnd.randint(0, 2)], enc)
    dec = decode(enc, QP)
    edits = data.draw(edits_for(dec))
    try:
        out = apply_edits(enc, QP, edits)
    except TransferError:
        assert any(touches_line_end(dec, e) for e in edits)
        return
    check_qp_result(enc, out, edits)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_qp_random_noise_never_crashes(data: st.DataObject) -> None:
    enc = data.draw(_QP_NOISE)
    edits = data.draw(edits_for(decode(enc, QP)))
    try:
        out = apply_edits(enc, QP, edits)
    except TransferError:
        return
    check_qp_result(enc, out, edits)


@settings(max_examples=400, deadline=None)
@given(st.data())
def test_qp_range_scan_by_line_ends_agrees_with_tokenizing(data: st.DataObject) -> None:
    """The scan of an encoded range looks only at line ends when it can; it finds the soft breaks and
    line-break items that tokenizing the range finds, wherever the range starts and ends."""
    enc = data.draw(_QP_NOISE.map(lambda x: x + b"\n") | qp_cases())
    if not enc:
        return
    a = data.draw(st.integers(0, len(enc) - 1))
    b = data.draw(st.integers(a + 1, len(enc)))
    nl = enc.find(b"\n", b)
    stop = b if enc[b - 1 : b] == b"\n" else len(enc) if nl < 0 else nl + 1
    assert transfer._scan_range(enc, a, b) == transfer._scan_range_tokens(enc, a, b, stop)


@st.composite
def b64_cases(draw: st.DrawFn) -> bytes:
    body = draw(bodies())
    how = draw(st.sampled_from(["encodebytes", "email", "wrap"]))
    if how == "encodebytes":
        return base64.encodebytes(body)
    if how == "email":
        # A multiple of 4: other widths make email encode each line on its own, with padding
        # mid-stream, which decoders stop at (and apply_edits refuses, tested above).
        width = 4 * draw(st.integers(min_value=1, max_value=30))
        return email.base64mime.body_encode(body, width, "\r\n").encode("ascii")
    width = draw(st.integers(min_value=1, max_value=100))
    eol = draw(st.sampled_from([b"\r\n", b"\n"]))
    return wrap(base64.b64encode(body), width, eol, draw(st.booleans()))


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_base64_property(data: st.DataObject) -> None:
    enc = data.draw(b64_cases())
    dec = decode(enc, "base64")
    assert dec == base64.b64decode(enc)
    edits = data.draw(edits_for(dec))
    out = apply_edits(enc, "base64", edits)
    assert same_shape(enc, out)
    assert [len(x) for x in out.split(b"\n")] == [len(x) for x in enc.split(b"\n")]
    new = base64.b64decode(out)
    assert decode(out, "base64") == new
    assert len(new) == len(dec)
    assert expected_pattern(dec, edits).fullmatch(new)
    # Outside the groups covering the edits, not a byte moved.
    for i, (x, y) in enumerate(zip(enc.replace(b"\r\n", b"\n"), out.replace(b"\r\n", b"\n"), strict=True)):
        if x != y:
            q = len(re.sub(rb"[^A-Za-z0-9+/=]", b"", enc.replace(b"\r\n", b"\n")[:i])) // 4
            assert any(e.start // 3 <= q < -(-e.end // 3) for e in edits)


@settings(max_examples=300, deadline=None)
@given(b64_cases(), st.lists(st.sampled_from([b" ", b"\r\n", b"\n", b"\r", b"*"]), max_size=3), st.data())
def test_base64_runs_of_fixed_width_lines_are_measured_right(
    enc: bytes, junk: list[bytes], data: st.DataObject
) -> None:
    """Lines of one width are measured instead of scanned: the same runs of base64 characters, and a
    stray byte anywhere falls back to scanning."""
    for piece in junk:
        at = data.draw(st.integers(0, len(enc)))
        enc = enc[:at] + piece + enc[at:]
    stream = enc.translate(None, transfer._B64_NOT_STREAM)
    assert transfer._b64_runs(enc, len(stream)) == [m.span() for m in transfer._B64_RUN.finditer(enc)]


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=60), st.data())
def test_base64_garbage_never_crashes(enc: bytes, data: st.DataObject) -> None:
    dec = decode(enc, "base64")
    edits = data.draw(edits_for(dec))
    try:
        out = apply_edits(enc, "base64", edits)
    except TransferError:
        return
    assert same_shape(enc, out)
    assert expected_pattern(dec, edits).fullmatch(decode(out, "base64"))


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_plain_property(data: st.DataObject) -> None:
    body = data.draw(bodies())
    edits = data.draw(edits_for(body))
    out = apply_edits(body, "8bit", edits)
    assert same_shape(body, out)
    assert expected_pattern(body, edits).fullmatch(out)


# --- performance ----------------------------------------------------------------------------------


def test_qp_150k_body_with_50_edits() -> None:
    # A realistic size and edit count; its speed is measured in bench/rewrite.py, not here.
    rnd = random.Random(7)
    chunks: list[bytes] = []
    size = 0
    while size < 150_000:
        chunks.append(rnd.choice(_WORDS[5:]) + b"\r\n" * rnd.randint(0, 1))
        size += len(chunks[-1])
    body = b"".join(chunks)
    enc = quopri.encodestring(body.replace(b"\r\n", b"\n")).replace(b"\n", b"\r\n")
    dec = decode(enc, QP)
    starts = [m.start() for m in re.finditer(rb"https://t\.example\.com/o/abc123\.gif\?u=42&amp;m=7", dec)]
    edits = [Edit(s, s + 45, b"") for s in starts[:: max(1, len(starts) // 50)]][:50]
    assert len(edits) == 50
    out = apply_edits(enc, QP, edits)
    check_qp_result(enc, out, edits)
    binascii.a2b_qp(out)  # decodable by the stdlib too
