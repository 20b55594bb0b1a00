"""Messages K-9 Mail / Thunderbird for Android reads otherwise than mime.py and the engine.

K-9 fetches a message whole (BODY.PEEK[] below its download limit), parses it with Apache mime4j
(MimeMessage.parse: EOLConvertingInputStream, MimeStreamParser with FallbackBodyDescriptorBuilder) and
picks what to render with its own code (MessageExtractor, MessageViewInfoExtractor), which reads types
and charsets with its own header parser (MimeParameterDecoder). Each test builds a message where that
reading finds markup the engine did not see, and checks that what K-9 would render loads nothing.
"""

from __future__ import annotations

import base64
import binascii
import quopri
import re

import pytest

from mailproxy import mime
from mailproxy.engine import Engine
from mailproxy.rewrite.transfer import Edit
from mailproxy.triage import may_change

ENGINE = Engine()
HOST = b"tracker.example"
PIXEL = b'<p>Hi</p><img src="https://tracker.example/open.gif?u=42" width=1 height=1>'
HEAD = b"From: Shop <news@shop.example>\r\nMIME-Version: 1.0\r\n"


def _k9_lines(raw: bytes) -> bytes:
    """The message as mime4j's EOLConvertingInputStream hands it to K-9's parser: a lone CR (or LF)
    becomes CRLF."""
    return re.sub(rb"\r(?!\n)|(?<!\r)\n", b"\r\n", raw)


def _rewrite(raw: bytes) -> bytes:
    assert may_change(raw)
    out = ENGINE.rewrite(raw).data
    assert len(out) == len(raw) and out.count(b"\n") == raw.count(b"\n")
    return out


def _loads_tracker(data: bytes) -> bool:
    return b"https://" + HOST in data


# -- structure: lone CRs and boundary parameters ---------------------------------------------------


def test_a_delimiter_after_a_lone_cr_is_a_delimiter_to_k9() -> None:
    """mime4j's EOLConvertingInputStream turns a lone CR into CRLF before MimeBoundaryInputStream looks
    for "--boundary" at line starts: "\\r--B" starts a part for K-9 (here a text/html one inside what
    Dovecot and mime.py read as one text/plain part)."""
    raw = (
        HEAD + b"Content-Type: multipart/mixed; boundary=B\r\n\r\n"
        b"--B\r\nContent-Type: text/plain\r\n\r\nhello\r--B\rContent-Type: text/html\r\r"
        + PIXEL
        + b"\r\n--B--\r\n"
    )
    k9 = mime.parse(_k9_lines(raw))
    assert [p.content_type for p in k9.children] == ["text/plain", "text/html"]
    assert mime.parse(raw).ambiguous
    out = _rewrite(raw)
    assert not _loads_tracker(out) and not _loads_tracker(_k9_lines(out))


def test_a_boundary_inside_a_line_is_ambiguous() -> None:
    """MimeBoundaryInputStream.fillBuffer takes "--boundary" followed by white space for a delimiter when
    a LF precedes it or when it starts at the buffer's read position, and that position is wherever the
    reader's last chunk ended (4 KiB refills, the last boundary's length held back): a line holding
    "--B " mid-way is a delimiter to K-9 when the refills fall there, text to Dovecot."""
    line = b"x" * 70 + b"--B \r\nContent-Type: text/html\r\n\r\n" + PIXEL + b"\r\n"
    raw = HEAD + b"Content-Type: multipart/mixed; boundary=B\r\n\r\n--B\r\n\r\n" + line + b"--B--\r\n"
    at = raw.index(b"x--B ") + 1
    aligned = mime.parse(raw[:at] + b"\n" + raw[at:])  # what K-9 reads when its read position is there
    assert [p.content_type for p in aligned.children] == ["text/plain", "text/html"]
    assert mime.parse(raw).ambiguous
    assert not _loads_tracker(_rewrite(raw))
    for fine in (b"x--Bx", b"x--B-", b"\n--B "):
        assert not mime.parse(raw.replace(b"x--B ", fine)).ambiguous, fine


def test_a_header_block_ended_by_lone_crs_is_ambiguous() -> None:
    """MimeEntity.readRawField ends the header block at the first empty line after EOL conversion:
    "X: y\\r\\r" ends it for K-9 (and Thunderbird), and the markup after it is the HTML body, which
    Dovecot and mime.py read as header lines. Such a part is neutralized, its header block too."""
    raw = HEAD + b"Content-Type: text/html\r\nX-Note: y\r\r" + PIXEL + b"\r\n\r\n<p>after</p>\r\n"
    k9 = mime.parse(_k9_lines(raw))
    assert k9.content_type == "text/html" and PIXEL in _k9_lines(raw)[k9.body_start : k9.end]
    root = mime.parse(raw)
    assert root.ambiguous and PIXEL not in raw[root.body_start :]
    assert not _loads_tracker(_rewrite(raw))


def test_a_lone_cr_that_ends_no_header_block_is_left_alone() -> None:
    raw = HEAD + b"Content-Type: text/html\r\nX-Note: a\rb\r\n\r\n<p>hi</p>\r\n"
    assert not mime.parse(raw).ambiguous


FIELDS_K9_READS = {
    # MimeEntity.readRawField starts the first field with the block's first line, white space or not,
    # and RawFieldParser.parseField reads the name with parseToken, which skips white space...
    "first header line led by a space": b" Content-Type: text/html\r\n",
    # ...and comments: "Content-Type(x)" is Content-Type to K-9, no field Dovecot or the stdlib knows.
    "comment in the name": b"Content-Type(x): text/html\r\n",
    "comment with a colon in the name": b"Content(a:b)-Type: text/html\r\n",
    "comment before the colon": b"Content-Type (x) : text/html\r\n",
}


def test_fields_only_k9_reads_make_the_part_ambiguous() -> None:
    for name, field in FIELDS_K9_READS.items():
        raw = (
            HEAD
            + b"Content-Type: multipart/mixed; boundary=B\r\n\r\n--B\r\n"
            + field
            + b"X-Note: 1\r\n\r\n"
            + PIXEL
            + b"\r\n--B--\r\n"
        )
        part = mime.parse(raw).children[0]
        assert part.ambiguous and part.content_type == "text/plain", name
        assert not _loads_tracker(_rewrite(raw)), name
        single = field + HEAD + b"\r\n" + PIXEL + b"\r\n"  # first in its header block
        assert mime.parse(single).ambiguous and not _loads_tracker(_rewrite(single)), name


def test_comments_in_field_values_are_left_alone() -> None:
    raw = HEAD + b"Received: from a (b)\r\n\tby c (d)\r\nX-Note (x): 1\r\nContent-Type: text/plain\r\n\r\nhi"
    assert not mime.parse(raw).ambiguous


def test_comments_nested_too_deep_to_read_make_the_part_neutralized() -> None:
    # Comments are removed from the innermost out, a pass over the text per level: deeper than any mail
    # nests them, the name or charset is not read and the part is taken as read otherwise.
    nest = b"(" * 10_000 + b")" * 10_000
    named = HEAD + b"X-Note" + nest + b": a\r\nContent-Type: text/plain\r\n\r\nhello\r\n"
    assert mime.parse(named).ambiguous
    charset = HEAD + b"Content-Type: text/html; charset=utf-8 " + nest + b"\r\n\r\n" + PIXEL + b"\r\n"
    assert ENGINE.rewrite(charset).failsafe_parts == ["1"]
    assert not _loads_tracker(_rewrite(charset))
    shallow = b"(" * 16 + b")" * 16
    assert not mime.parse(named.replace(nest, shallow)).ambiguous
    assert ENGINE.rewrite(charset.replace(nest, shallow)).failsafe_parts == []


BOUNDARY_PARAMETERS = {
    # FallbackBodyDescriptorBuilder.parseContentType puts the parameters in a HashMap: the last wins.
    "two boundary parameters": (b'boundary="B"; boundary="C"', b"C"),
    # RawFieldParser.parseValue skips comments and joins words split by white space.
    "comment after the boundary": (b"boundary=C (note)", b"C"),
    "comment before the boundary": (b"boundary=(note)C", b"C"),
}


def _hidden_html(params: bytes, k9_boundary: bytes) -> bytes:
    """A multipart whose parts, found with K-9's boundary, include a text/html one; with the stdlib's
    boundary (the first parameter, the comment kept) that HTML is a preamble or a text/plain part."""
    return (
        HEAD + b"Content-Type: multipart/mixed; " + params + b"\r\n\r\n"
        b"--B\r\nContent-Type: text/plain\r\n\r\nhi\r\n"
        b"--" + k9_boundary + b"\r\nContent-Type: text/html\r\n\r\n" + PIXEL + b"\r\n"
        b"--" + k9_boundary + b"--\r\n--B--\r\n"
    )


def test_boundary_parameters_k9_reads_otherwise_make_the_multipart_ambiguous() -> None:
    for name, (params, k9_boundary) in BOUNDARY_PARAMETERS.items():
        raw = _hidden_html(params, k9_boundary)
        root = mime.parse(raw)
        assert root.ambiguous, name
        assert all(p.content_type != "text/html" for p in root.walk()), name  # unseen by the stdlib reading
        assert not _loads_tracker(_rewrite(raw)), name


def test_plain_boundary_parameters_are_not_ambiguous() -> None:
    for params in (b"boundary=B", b'boundary="B"', b"boundary = B ; charset=x", b'boundary="(B) x"'):
        raw = HEAD + b"Content-Type: multipart/mixed; " + params + b"\r\n\r\n--B\r\n\r\nx\r\n--B--\r\n"
        assert not mime.parse(raw).ambiguous, params


# -- what K-9 renders as HTML, and how it decodes it -----------------------------------------------


def test_application_pgp_is_rendered_as_html_by_k9() -> None:
    """MessageExtractor.isPartTextualBody takes application/pgp (mutt's old inline PGP) for a textual
    body and findViewablesAndAttachments makes every textual part but text/plain an Html viewable, which
    MessageViewInfoExtractor.buildHtml hands to the WebView as it is."""
    for body in (
        HEAD + b"Content-Type: application/pgp; x-action=sign\r\n\r\n" + PIXEL + b"\r\n",
        HEAD + b"Content-Type: multipart/mixed; boundary=B\r\n\r\n--B\r\n"
        b"Content-Type: application/pgp\r\n\r\n" + PIXEL + b"\r\n--B--\r\n",
    ):
        assert _loads_tracker(body)
        out = _rewrite(body)
        assert not _loads_tracker(out) and b"<p>Hi</p>" in out


def _b64(data: bytes) -> bytes:
    return base64.encodebytes(data).replace(b"\n", b"\r\n")


def _html_part(content_type: bytes, body: bytes) -> bytes:
    return (
        HEAD
        + b"Content-Type: "
        + content_type
        + b"\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        + _b64(body)
    )


def _body(out: bytes) -> bytes:
    root = mime.parse(out)
    return base64.b64decode(out[root.body_start : root.end])


def test_a_meta_charset_k9_reads_is_checked() -> None:
    """MessageExtractor.getTextFromTextPart: a text/html part without a charset parameter takes the
    charset from '<meta http-equiv="Content-Type" content="text/html; charset=...">' in its first 256
    bytes, and CharsetSupport.readToString decodes the body with any charset Java knows (here UTF-7,
    whose "+ADw-" is "<"): the engine read ASCII and found nothing."""
    meta = b'<meta http-equiv="Content-Type" content="text/html; charset=utf-7">'
    hidden = PIXEL.replace(b"<", b"+ADw-").replace(b">", b"+AD4-").replace(b"https:", b"htt+AHA-s:")
    raw = _html_part(b"text/html", meta + hidden)
    assert _body(raw)[len(meta) :].decode("utf-7") == PIXEL.decode()
    assert b"<img" not in _body(raw) and not _loads_tracker(_body(raw))
    result = ENGINE.rewrite(raw)
    assert result.failsafe_parts == ["1"]
    assert "tracker.example" not in _body(result.data).decode("utf-7", "replace")


UTF16_READINGS = {
    # Java's UTF-16 decoder reads a body without a byte-order mark as big-endian; WHATWG, Thunderbird
    # and the engine as little-endian.
    "utf-16 without a byte-order mark": (b"text/html; charset=utf-16", "utf-16-be"),
    # MimeParameterDecoder skips comments: the stdlib keeps "(x)utf-16" and reads bytes.
    "charset after a comment": (b"text/html; charset=(x)utf-16le", "utf-16-le"),
    # PartExtensions.charset drops a charset given twice with two values; the <meta> then names it.
    "meta charset, utf-16": (b"text/html", "utf-16-le"),
}


def test_utf16_readings_k9_makes_are_checked() -> None:
    meta = b'<meta http-equiv="Content-Type" content="text/html; charset=utf-16le">'.ljust(256)
    for name, (content_type, codec) in UTF16_READINGS.items():
        body = PIXEL.decode().encode(codec)
        if content_type == b"text/html":
            body = meta + body
        raw = _html_part(content_type, body)
        result = ENGINE.rewrite(raw)
        assert result.failsafe_parts == ["1"], name
        assert "tracker.example" not in _body(result.data)[-len(body) :].decode(codec, "replace"), name


def test_utf16_in_its_own_byte_order_is_still_edited() -> None:
    for codec, bom in (("utf-16-le", b"\xff\xfe"), ("utf-16-be", b"\xfe\xff")):
        body = bom + PIXEL.decode().encode(codec)
        result = ENGINE.rewrite(_html_part(b"text/html; charset=utf-16", body))
        assert result.failsafe_parts == [] and result.findings, codec
        text = _body(result.data)[2:].decode(codec)
        assert "tracker.example" not in text and "<p>Hi</p>" in text


def test_quoted_printable_soft_breaks_k9_reads_are_checked() -> None:
    """mime4j's QuotedPrintableInputStream takes "=" followed by any run of Character.isWhitespace
    bytes (VT, FF, FS to US as well as space and tab) up to the line break for a soft line break; the
    engine reads "=\\x0c" as text, and "htt=\\x0c\\r\\nps://" spelled a URL to K-9 only (also with a lone CR
    for the line break, which EOLConvertingInputStream makes CRLF first)."""
    for odd in (b"\x0c\r\n", b" \x0b\r\n", b"\x1f\t\r\n", b"\x0c\r"):
        raw = (
            HEAD + b"Content-Type: text/html\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
            b'<p>Hi</p><img src=3D"htt=' + odd + b'ps://tracker.example/open.gif?u=3D42">\r\n'
        )
        k9 = quopri.decodestring(re.sub(rb"=[\s\x1c-\x1f]*\r\n?", b"", raw))
        assert _loads_tracker(k9)
        result = ENGINE.rewrite(raw)
        assert result.failsafe_parts == ["1"], odd
        assert b"tracker" not in result.data and len(result.data) == len(raw)


ICU_LABELS = {
    # Android's Java charsets are ICU's converters under all their aliases (NativeConverter.charsetForName);
    # ICU always builds EBCDIC code pages 37 and 1047, and its UTF-7 converters are algorithmic. Python
    # knows none of these labels: the engine (and Thunderbird) read the bytes.
    "ibm-37": PIXEL.decode().encode("cp037"),
    "cp1047": PIXEL.decode().encode("cp037"),  # the markup characters are the same in both code pages
    "windows-65000": PIXEL.replace(b"<", b"+ADw-").replace(b">", b"+AD4-").replace(b'"', b"+ACI-"),
    "imap-mailbox-name": PIXEL.replace(b"<", b"&ADw-").replace(b">", b"&AD4-").replace(b'"', b"&ACI-"),
}


def test_markup_under_labels_only_icu_knows_is_blanked() -> None:
    for label, body in ICU_LABELS.items():
        assert b"<img" not in body, label
        raw = _html_part(b"text/html; charset=" + label.encode(), body)
        result = ENGINE.rewrite(raw)
        assert result.failsafe_parts == ["1"], label
        assert _body(result.data).strip() == b"", label


def test_text_under_unknown_labels_is_rewritten_as_bytes() -> None:
    body = PIXEL + b'<a href="https://shop.example/?q=a+b&amp;c">C++ &nbsp;</a>'
    for label in (b"x-unknown", b"iso-8859-8-i", b"ibm-37; x=1"):
        result = ENGINE.rewrite(_html_part(b"text/html; charset=" + label, body))
        assert result.failsafe_parts == [] and result.findings, label
        assert not _loads_tracker(_body(result.data)) and b"shop.example" in _body(result.data), label


def test_a_charset_behind_a_comment_is_read_as_k9_reads_it() -> None:
    """MimeParameterDecoder skips comments ("charset=(x)ibm-37" is ibm-37 to K-9); the stdlib keeps
    "(x)ibm-37", a label no codec has, and the engine read the EBCDIC body as bytes."""
    for label, body in (("(x)ibm-37", ICU_LABELS["ibm-37"]), ("(x)utf-7", ICU_LABELS["windows-65000"])):
        raw = _html_part(b"text/html; charset=" + label.encode(), body)
        result = ENGINE.rewrite(raw)
        assert result.failsafe_parts == ["1"] and _body(result.data).strip() == b"", label


def test_a_charset_given_many_times_is_read_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each charset label K-9 may read is a reading of the whole body: one per codec, not one per
    parameter (a header of repeated parameters made work in proportion to its length times the body's)."""
    from mailproxy.rewrite import safety

    scans: list[int] = []
    break_everything = safety.break_everything

    def counted(text: str) -> list[Edit]:
        scans.append(len(text))
        return break_everything(text)

    monkeypatch.setattr(safety, "break_everything", counted)
    raw = _html_part(b"text/html" + b"; charset=utf-32" * 50, b"<p>Hi</p>")
    assert ENGINE.rewrite(raw).failsafe_parts == []
    assert len(scans) <= 5


def test_clearsigned_html_is_neutralized() -> None:
    """MessageViewInfoExtractor.getTextFromPart hands K-9's WebView only what OpenPgpUtils.
    extractClearsignedMessage keeps of a part starting with the clearsign armor: the text after its
    first blank line, up to the signature. Markup opened in the armor's header lines ("<textarea>",
    "<!--") hid the pixel from the engine's reading of the whole part."""
    for opener in (b"<textarea>", b"<!--", b'<img alt="'):
        body = (
            b"-----BEGIN PGP SIGNED MESSAGE-----\r\nHash: SHA256 " + opener + b"\r\n\r\n" + PIXEL + b"\r\n"
            b"-----BEGIN PGP SIGNATURE-----\r\n\r\niQEz\r\n-----END PGP SIGNATURE-----\r\n"
        )
        raw = HEAD + b"Content-Type: text/html\r\n\r\n" + body
        k9 = body[body.index(b"\r\n\r\n") + 4 : body.index(b"-----BEGIN PGP SIGNATURE")]
        assert k9.startswith(PIXEL)
        result = ENGINE.rewrite(raw)
        assert result.failsafe_parts == ["1"] and not _loads_tracker(result.data), opener
        assert b"<p>Hi</p>" in result.data


def _k9_document(raw: bytes, parts: list[mime.Part]) -> str:
    """K-9's document of several textual parts (MessageViewInfoExtractor.extractTextFromViewables and
    buildHtml): each part's HTML, a plain text part escaped in a <pre> (EmailTextToHtml: "&", "<" and
    ">" escaped, line breaks as <br>), a divider paragraph before every part but the first."""
    divider = '<p style="margin-top: 2.5em; margin-bottom: 1em; border-bottom: 1px solid #000"></p>'
    html = []
    for part in parts:
        text = raw[part.body_start : part.end].decode("latin-1")
        if part.content_type == "text/plain":
            text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            text = '<pre class="k9mail">' + text.replace("\r", "").replace("\n", "<br>") + "</pre>"
        html.append(text)
    return divider.join(html)


OPEN_ENDS = {
    # The plain text after an HTML part ending inside a tag closes its quote and adds attributes.
    "inside an attribute": (
        b"<p>Hi</p><img alt='",
        b"text/plain",
        b"' src='https://tracker.example/open.gif'\r\n",
    ),
    # An HTML part ending in an open <style>: the next part is CSS.
    "open style element": (
        b"<p>Hi</p><style>",
        b"text/plain",
        b"x{} body{background:url(https://tracker.example/open.gif)}\r\n",
    ),
}


def test_parts_k9_joins_after_an_open_end_are_neutralized() -> None:
    from mailproxy.rewrite import safety

    for name, (first, kind, second) in OPEN_ENDS.items():
        raw = (
            HEAD + b"Content-Type: multipart/mixed; boundary=B\r\n\r\n"
            b"--B\r\nContent-Type: text/html\r\n\r\n" + first + b"\r\n"
            b"--B\r\nContent-Type: " + kind + b"\r\n\r\n" + second + b"\r\n--B--\r\n"
        )
        urls = [s.url for s in safety.loading_urls(_k9_document(raw, mime.parse(raw).children))]
        assert "https://tracker.example/open.gif" in urls, name
        result = ENGINE.rewrite(raw)
        assert result.failsafe_parts == ["2"], name
        urls = [s.url for s in safety.loading_urls(_k9_document(result.data, mime.parse(raw).children))]
        assert not any("tracker.example" in url and url.startswith("https") for url in urls), name


def test_parts_k9_joins_after_a_closed_end_are_left_alone() -> None:
    raw = (
        HEAD + b"Content-Type: multipart/mixed; boundary=B\r\n\r\n"
        b"--B\r\nContent-Type: text/html\r\n\r\n<p>Hi</p><style>p{}</style><svg></svg>\r\n"
        b"--B\r\nContent-Type: text/plain\r\n\r\nsee https://shop.example/\r\n--B--\r\n"
    )
    result = ENGINE.rewrite(raw)
    assert result.failsafe_parts == [] and result.data == raw


def _qp_html(body: bytes) -> bytes:
    return HEAD + b"Content-Type: text/html\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n" + body


def test_a_double_equals_sign_k9_reads_as_one_is_checked() -> None:
    """mime4j's QuotedPrintableInputStream reads "==" as "=" and the bytes after it as text (Python's
    a2b_qp too); the engine keeps both signs, as Thunderbird does: 'src=="https://..."' was a relative
    URL to it and an image K-9 loaded."""
    raw = _qp_html(b'<p>Hi</p><img src=="https://tracker.example/open.gif?u=3D42" width=3D1>\r\n')
    assert _loads_tracker(binascii.a2b_qp(raw)) and b'src="https://' in binascii.a2b_qp(raw)
    result = ENGINE.rewrite(raw)
    assert result.failsafe_parts == ["1"] and not _loads_tracker(result.data)


def test_a_double_equals_sign_that_loads_nothing_new_is_left_alone() -> None:
    raw = _qp_html(b'<p>Hi</p><img src=3D"data:image/gif;base64,R0lGOD==">' + PIXEL + b"\r\n")
    result = ENGINE.rewrite(raw)
    assert result.failsafe_parts == [] and result.findings and not _loads_tracker(result.data)


def test_a_malformed_escape_k9_reads_with_the_bytes_after_it_is_checked() -> None:
    """mime4j's QuotedPrintableInputStream takes "=" and the two bytes after it for text when they are
    no hex pair, whatever they are: in "=G=3E" the "3E" is text to K-9, where the engine (and
    Thunderbird) decode '>' and end the tag before its src attribute."""
    raw = _qp_html(b'<p>Hi</p><img x=G=3E src=3D"https://tracker.example/open.gif?u=3D42" width=3D1>\r\n')
    result = ENGINE.rewrite(raw)
    assert result.failsafe_parts == ["1"] and not _loads_tracker(result.data)
    for fine in (b'<a href=3D"https://shop.example/?a=b&c=3Dd">x</a>\r\n', b"<p>1 = 2</p>=\r\n"):
        assert ENGINE.rewrite(_qp_html(fine)).failsafe_parts == [], fine
