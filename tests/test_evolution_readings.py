"""Messages GNOME Evolution reads otherwise than mailproxy.mime (which follows Dovecot) and the engine do,
in ways that would let HTML (or anything remote) reach its WebKit view unfiltered. Each case names the
evolution-data-server (camel) or Evolution (em-format) function whose reading it follows; the engine must
leave nothing remote in what Evolution would render.
"""

from __future__ import annotations

import base64
import binascii
import quopri
import re
from collections.abc import Iterator

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.serialization import pkcs7

from mailproxy import mime
from mailproxy.engine import Engine
from mailproxy.triage import may_change

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


_BASE64_RUN = re.compile(rb"(?:[A-Za-z0-9+/]{8,}={0,2}\r?\n)+")


def readings(data: bytes, depth: int = 4) -> Iterator[bytes]:
    """``data``, and what base64 runs and quoted-printable in it decode to, nested ``depth`` deep: what
    a client that decodes parts inside parts may read."""
    yield data
    if depth:
        yield from readings(quopri.decodestring(data), depth - 1)
        for run in _BASE64_RUN.finditer(data):
            try:
                decoded = base64.b64decode(run.group())
            except binascii.Error:  # words that only look like base64
                continue
            yield from readings(decoded, depth - 1)


def leaks(data: bytes) -> bool:
    return any(TRACKER.encode() in r for r in readings(data))


def body_of(data: bytes) -> bytes:
    return data.split(b"\r\n\r\n", 1)[1]


@pytest.mark.parametrize(
    "content_type",
    [
        b"(ad) text/html",  # camel_content_type_decode skips comments before a token
        b"text/html=1",  # a token ends at a tspecial
        b"text/html\x01",  # or a control character
        b"text/ (x) html",
    ],
)
def test_a_type_camel_reads_as_html_is_neutralized(content_type: bytes) -> None:
    raw = HEAD + b"Content-Type: " + content_type + b"\r\n\r\n" + BEACON + b"\r\n"
    assert mime.parse(raw).ambiguous
    assert TRACKER.encode() not in rewritten(raw)


def test_a_type_field_named_up_to_a_nul_is_read_by_camel() -> None:
    # camel-mime-parser.c, header_raw_find compares the name as a C string: "Content-Type\0x" is
    # Content-Type to it; Dovecot and the stdlib skip the line and read text/plain.
    raw = HEAD + b"Content-Type\x00x: text/html\r\n\r\n" + BEACON + b"\r\n"
    assert mime.parse(raw).ambiguous
    assert TRACKER.encode() not in rewritten(raw)


@pytest.mark.parametrize("cte", [b"(x) base64", b"base64:x", b"base64=", b'base64"'])
def test_an_encoding_camel_reads_as_base64_is_neutralized(cte: bytes) -> None:
    # camel_content_transfer_encoding_decode: comments skipped, the token ends at a tspecial. Read as
    # the bytes they are, these parts showed the engine base64 text and nothing to rewrite.
    raw = (
        HEAD
        + b"Content-Type: text/html\r\nContent-Transfer-Encoding: "
        + cte
        + b"\r\n\r\n"
        + base64.encodebytes(BEACON).replace(b"\n", b"\r\n")
    )
    assert mime.parse(raw).ambiguous
    assert TRACKER.encode() not in base64.b64decode(body_of(rewritten(raw)))


def test_an_encoding_camel_reads_as_uuencode_is_blanked() -> None:
    uu = b"".join(
        binascii.b2a_uu(BEACON[i : i + 45]).replace(b"\n", b"\r\n") for i in range(0, len(BEACON), 45)
    )
    raw = (
        HEAD + b"Content-Type: text/html\r\nContent-Transfer-Encoding: x-uuencode=1\r\n\r\n"
        b"begin 644 a.html\r\n" + uu + b"`\r\nend\r\n"
    )
    assert not body_of(rewritten(raw)).strip()


def test_encodings_read_alike_stay_as_they_are() -> None:
    for cte in (b"base64", b"BASE64 (x)", b"quoted-printable", b"7bit", b"8bit; x"):
        raw = HEAD + b"Content-Type: text/html\r\nContent-Transfer-Encoding: " + cte + b"\r\n\r\nx\r\n"
        assert not mime.parse(raw).ambiguous, cte


def b64(data: bytes) -> bytes:
    return base64.encodebytes(data).replace(b"\n", b"\r\n")


HTML_ENTITY = b"Content-Type: text/html\r\nContent-Transfer-Encoding: base64\r\n\r\n" + b64(BEACON)


def mixed(*parts: bytes) -> bytes:
    body = b"".join(b"--B\r\n" + p + b"\r\n" for p in parts)
    return HEAD + b"Content-Type: multipart/mixed; boundary=B\r\n\r\n" + body + b"--B--\r\n"


def test_plain_text_starting_with_a_content_type_is_a_part_to_evolution() -> None:
    # e-mail-parser-text-plain.c runs e-mail-inline-filter.c, whose construct_part_from_stream parses a
    # text piece starting with "Content-Type:" as a MIME part and renders it: HTML in a plain message.
    raw = HEAD + b"\r\nContent-Type: text/html\r\n\r\n" + BEACON + b"\r\n"
    assert may_change(raw)
    assert not leaks(rewritten(raw))


def test_a_part_inside_an_encoded_plain_part_is_neutralized_too() -> None:
    raw = mixed(b"Content-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\n" + b64(HTML_ENTITY))
    assert leaks(raw) and may_change(raw)
    assert not leaks(rewritten(raw))


def test_a_part_after_an_inline_pgp_block_is_neutralized() -> None:
    # The inline filter cuts the text at the block's end; the piece after it starts a part.
    pgp = b"-----BEGIN PGP SIGNED MESSAGE-----\r\nHash: SHA256\r\n\r\nhi\r\n-----BEGIN PGP SIGNATURE-----\r\n"
    pgp += b"abc\r\n-----END PGP SIGNATURE-----\r\n"
    raw = mixed(b"Content-Type: text/plain\r\n\r\n" + pgp + b"Content-Type: text/html\r\n\r\n" + BEACON)
    assert not leaks(rewritten(raw))


def test_plain_text_evolution_reads_as_text_is_left_alone() -> None:
    raw = HEAD + b"Content-Type: text/plain\r\n\r\nSee https://shop.example/deals\r\nContent-Type: none\r\n"
    assert not may_change(raw) and ENGINE.rewrite(raw).data == raw


@pytest.mark.parametrize(
    ("headers", "content"),
    [
        # e_mail_part_snoop_type: g_content_type_guess finds HTML by shared-mime-info's magic...
        (b"Content-Type: application/octet-stream", b"<html><body>" + BEACON),
        (b"Content-Type: application/x-anything", b"<!DOCTYPE html>" + BEACON),
        # ...or by the file name, whatever the type Evolution has no parser for
        (b'Content-Type: application/pdf; name="news.html"', BEACON),
        (b'Content-Type: video/mp4\r\nContent-Disposition: inline; filename="a.htm"', BEACON),
    ],
)
def test_a_part_evolution_snoops_as_html_is_neutralized(headers: bytes, content: bytes) -> None:
    raw = mixed(headers + b"\r\nContent-Transfer-Encoding: base64\r\n\r\n" + b64(content))
    assert may_change(raw)
    assert not leaks(rewritten(raw))


@pytest.mark.parametrize(
    ("headers", "content"),
    [
        # a message by its magic ("Received:", "From:", "Subject: " at the start) or name
        (b"Content-Type: application/octet-stream", b"Received: from x\r\n" + HTML_ENTITY),
        (b'Content-Type: application/zip; name="fwd.eml"', b"To: a@example.org\r\n" + HTML_ENTITY),
        # e-mail-parser-application-mbox.c: a mailbox, each message rendered inline
        (b"Content-Type: application/mbox", b"From a Mon\r\nX: 1\r\n\r\nhi\r\nFrom b Tue\r\n" + HTML_ENTITY),
        # message/news (e-mail-parser-message-rfc822.c), and an encoded message/rfc822 whose HTML part
        # is encoded too, beyond what the neutralizer decodes
        (b"Content-Type: message/news", b"Path: x\r\n" + HTML_ENTITY),
        (b"Content-Type: message/rfc822", b"Subject: x\r\n" + HTML_ENTITY),
    ],
)
def test_messages_evolution_decodes_and_renders_are_neutralized_inside(
    headers: bytes, content: bytes
) -> None:
    raw = mixed(headers + b"\r\nContent-Transfer-Encoding: base64\r\n\r\n" + b64(content))
    assert leaks(raw) and may_change(raw)
    out = rewritten(raw)
    assert not leaks(out)
    assert any(b"<p>Hi</p>" in r for r in readings(out))  # neutralized, not blanked


def test_attachments_evolution_shows_as_attachments_are_left_alone() -> None:
    raw = mixed(
        b'Content-Type: application/pdf; name="a.pdf"\r\nContent-Transfer-Encoding: base64\r\n\r\n'
        + b64(b"%PDF-1.4 https://example.org/")
    )
    assert ENGINE.rewrite(raw).data == raw and not ENGINE.rewrite(raw).failsafe_parts


def test_a_signed_part_ends_at_an_enclosing_boundary_to_evolution() -> None:
    # camel's scan pushes no boundary for multipart/signed (folder_scan_step), whose body
    # camel-multipart-signed.c parses apart: "--BB" there is a delimiter of the enclosing "B", and the
    # HTML after "--BB--", the signed part's epilogue to Dovecot, an enclosing part to Evolution.
    raw = mixed(
        b'Content-Type: multipart/signed; boundary=BB; protocol="application/pgp-signature"\r\n\r\n'
        b"--BB\r\nContent-Type: text/plain\r\n\r\nsigned\r\n--BB\r\nContent-Type: application/pgp-signature"
        b"\r\n\r\nsig\r\n--BB--\r\nContent-Type: text/html\r\n\r\n" + BEACON
    )
    assert mime.parse(raw).ambiguous
    assert not leaks(rewritten(raw))


def test_a_signed_part_of_another_boundary_stays_unambiguous() -> None:
    raw = mixed(
        b'Content-Type: multipart/signed; boundary=S; protocol="application/pgp-signature"\r\n\r\n'
        b"--S\r\nContent-Type: text/html\r\n\r\n"
        + BEACON
        + b"\r\n--S\r\nContent-Type: application/pgp-signature"
        b"\r\n\r\nsig\r\n--S--\r\n"
    )
    assert not mime.parse(raw).ambiguous


@pytest.mark.parametrize(
    "image", [b"![](" + TRACKER.encode() + b")", b"![][p]\r\n\r\n[p]: " + TRACKER.encode()]
)
def test_markdown_evolution_renders_with_remote_images_is_neutralized(image: bytes) -> None:
    # e-mail-formatter-text-markdown.c renders text/markdown with cmark_markdown_to_html: an image loads.
    # With its URL broken it loads nothing, and the reader keeps the text.
    raw = mixed(b"Content-Type: text/markdown; charset=utf-8\r\n\r\n# Deals\r\n\r\n" + image + b"\r\n")
    assert may_change(raw)
    out = rewritten(raw)
    assert b"# Deals" in out and not leaks(out)


@pytest.mark.parametrize(
    "image",
    [
        # cmark reads backslash escapes and character references in a destination, the neutralizer not
        b"![](" + TRACKER.replace("https://", "https\\://").encode() + b")",
        b"![](" + TRACKER.replace("https://", "https&colon;//").encode() + b")",
    ],
)
def test_markdown_with_remote_images_the_neutralizer_cannot_break_is_blanked(image: bytes) -> None:
    raw = mixed(b"Content-Type: text/markdown; charset=utf-8\r\n\r\n# Deals\r\n\r\n" + image + b"\r\n")
    assert may_change(raw)
    out = rewritten(raw)
    assert b"# Deals" not in out and not leaks(out)


def test_markdown_with_links_only_is_left_alone() -> None:
    raw = mixed(b"Content-Type: text/markdown\r\n\r\n# Deals\r\n\r\n[shop](https://shop.example/deals)\r\n")
    assert ENGINE.rewrite(raw).data == raw


def test_an_attachment_named_like_markdown_is_read_as_markdown() -> None:
    raw = mixed(
        b'Content-Type: application/octet-stream; name="notes.md"\r\n\r\n![](' + TRACKER.encode() + b")"
    )
    assert not leaks(rewritten(raw))


@pytest.mark.parametrize("boundary", [b"a?b", b"a=_b", b"a/b"])
def test_a_boundary_camel_cuts_at_a_tspecial_is_ambiguous(boundary: bytes) -> None:
    # camel-mime-utils.c, header_decode_param_list reads an unquoted value as a token: "a?b" is "a" to
    # it, and "--a" a delimiter that starts an HTML part inside what Dovecot reads as plain text.
    raw = (
        HEAD + b"Content-Type: multipart/mixed; boundary=" + boundary + b"\r\n\r\n"
        b"--" + boundary + b"\r\nContent-Type: text/plain\r\n\r\nhi\r\n"
        b"--a\r\nContent-Type: text/html\r\n\r\n" + BEACON + b"\r\n--" + boundary + b"--\r\n"
    )
    assert mime.parse(raw).ambiguous
    assert not leaks(rewritten(raw))


def test_boundaries_camel_reads_alike_stay_unambiguous() -> None:
    for value in (b'"a?b"', b"abc", b'"a=_b"; charset=x', b" abc ;x=1"):
        raw = HEAD + b"Content-Type: multipart/mixed; boundary=" + value + b"\r\n\r\n--x\r\n\r\nhi\r\n"
        assert not mime.parse(raw).ambiguous, value


def test_a_header_block_beyond_our_limit_is_still_one_to_evolution() -> None:
    # camel limits each field to CAMEL_MIME_PARSER_MAX_HEADER_SIZE (folder_scan_header), not the block:
    # after a long field, it reads the Content-Type and the HTML body that mime takes for plain text.
    raw = HEAD + b"X-Long: " + b"x" * mime.MAX_HEADER_BYTES + b"\r\nContent-Type: text/html\r\n\r\n" + BEACON
    assert mime.parse(raw).ambiguous
    assert not leaks(rewritten(raw))


VCARD = b"BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Shop\r\nURL:https://shop.example/\r\n"


@pytest.mark.parametrize(
    "line",
    [
        b"PHOTO;VALUE=uri:" + TRACKER.encode(),
        # folded (RFC 6350 section 3.2), or in a vCard 2.1 quoted-printable value
        b"item1.LOGO;VALUE=uri:" + TRACKER[:20].encode() + b"\r\n " + TRACKER[20:].encode(),
        b"PHOTO;VALUE=URL;ENCODING=QUOTED-PRINTABLE:" + TRACKER.replace("https", "htt=\r\nps").encode(),
    ],
)
def test_a_vcard_evolution_renders_with_a_remote_picture_is_neutralized(line: bytes) -> None:
    # Evolution's vcard-inline module renders text/vcard with eab_contact_formatter_format_contact: a
    # picture given by URI becomes an <img> of it. With the URI broken it loads nothing, and the reader
    # keeps the card.
    raw = mixed(b"Content-Type: text/vcard\r\n\r\n" + VCARD + line + b"\r\nEND:VCARD")
    assert may_change(raw)
    out = rewritten(raw)
    assert b"FN:Shop" in out and not leaks(out)


@pytest.mark.parametrize(
    "line",
    [
        # a backslash the neutralizer reads as a byte and the card's reader drops
        b"PHOTO;VALUE=uri:ht\\tps://news.example/p.gif",
        # eab-contact-formatter.c writes the parts of an address into the HTML as they are
        b'ADR:;;<img src="' + TRACKER.encode() + b'">;;;;',
    ],
)
def test_a_vcard_with_remote_content_the_neutralizer_cannot_break_is_blanked(line: bytes) -> None:
    raw = mixed(b"Content-Type: text/vcard\r\n\r\n" + VCARD + line + b"\r\nEND:VCARD")
    assert may_change(raw)
    out = rewritten(raw)
    assert b"FN:Shop" not in out and not leaks(out) and b"news.example" not in out


def test_a_vcard_with_links_only_is_left_alone() -> None:
    raw = mixed(b"Content-Type: text/x-vcard\r\n\r\n" + VCARD + b"END:VCARD")
    assert ENGINE.rewrite(raw).data == raw


def test_an_attachment_evolution_snoops_as_a_vcard_is_read_as_one() -> None:
    card = VCARD + b"PHOTO;VALUE=uri:" + TRACKER.encode() + b"\r\nEND:VCARD"
    for headers in (
        b"Content-Type: application/octet-stream",
        b'Content-Type: application/x-foo; name="a.vcf"',
    ):
        raw = mixed(headers + b"\r\nContent-Transfer-Encoding: base64\r\n\r\n" + b64(card))
        assert not leaks(rewritten(raw)), headers


def calendar(*lines: bytes) -> bytes:
    head = b"BEGIN:VCALENDAR\r\nMETHOD:REQUEST\r\nBEGIN:VEVENT\r\nUID:1\r\nSUMMARY:Sale\r\n"
    return head + b"".join(line + b"\r\n" for line in lines) + b"END:VEVENT\r\nEND:VCALENDAR\r\n"


PIXEL_TAG = b'<img src="' + TRACKER.encode() + b'">'


@pytest.mark.parametrize(
    "line",
    [
        # itip-view.c, itip_view_init_view: an X-ALT-DESC in text/html is written into the view as it is,
        b"X-ALT-DESC;FMTTYPE=text/html:<html><body>Hi" + PIXEL_TAG + b"</body></html>",
        # and so is a DESCRIPTION holding one of the tags Google writes
        b"DESCRIPTION:Join us<br>" + PIXEL_TAG,
    ],
)
def test_a_calendar_evolution_renders_with_remote_content_is_neutralized(line: bytes) -> None:
    raw = mixed(b"Content-Type: text/calendar; method=REQUEST\r\n\r\n" + calendar(line))
    assert may_change(raw)
    out = rewritten(raw)
    assert not leaks(out) and b"SUMMARY:Sale" in out  # the invitation itself stays


def test_a_calendar_url_folded_out_of_sight_blanks_the_calendar() -> None:
    folded = b'X-ALT-DESC;FMTTYPE=text/html:<img src="htt\r\n ps://' + TRACKER[8:].encode() + b'">'
    raw = mixed(b"Content-Type: application/ics\r\n\r\n" + calendar(folded))
    assert b"SUMMARY:Sale" not in rewritten(raw)


def test_an_inline_calendar_attachment_in_html_is_neutralized() -> None:
    # e-mail-parser-itip.c shows inline ATTACH data as a part of its FMTTYPE
    attach = b"ATTACH;FMTTYPE=text/html;ENCODING=BASE64;VALUE=BINARY:" + base64.b64encode(BEACON)
    raw = mixed(b'Content-Type: application/octet-stream; name="invite.ics"\r\n\r\n' + calendar(attach))
    assert not leaks(rewritten(raw))


def test_a_calendar_with_links_only_is_left_alone() -> None:
    line = b'X-ALT-DESC;FMTTYPE=text/html:<a href="https://meet.example/j/1">Join</a>'
    raw = mixed(
        b"Content-Type: text/calendar\r\n\r\n" + calendar(line, b"DESCRIPTION:Join https://meet.example/j/1")
    )
    assert ENGINE.rewrite(raw).data == raw


def test_a_charset_camel_cuts_at_a_tspecial_is_read_as_it_reads_it() -> None:
    # header_decode_param_list: an unquoted "ibm037?x" is "ibm037", which glibc decodes as EBCDIC; the
    # engine read the unknown label as bytes, in which the EBCDIC markup spells nothing.
    html = f'<p>Hi</p><img src="{TRACKER}" width=1 height=1>'.encode("cp037")
    raw = (
        HEAD
        + b"Content-Type: text/html; charset=ibm037?x\r\nContent-Transfer-Encoding: binary\r\n\r\n"
        + html
    )
    out = rewritten(raw)
    assert TRACKER not in out[len(HEAD) :].decode("cp037")


@pytest.mark.parametrize(
    "name", [b'"=?utf-8?q?news.html?="', b'"=?utf-8?b?' + base64.b64encode(b"news.html") + b'?="']
)
def test_a_file_name_in_encoded_words_is_read_decoded(name: bytes) -> None:
    # camel_mime_part_get_filename decodes RFC 2047 words: "news.html" is HTML to e_mail_part_snoop_type.
    raw = mixed(b"Content-Type: application/octet-stream; name=" + name + b"\r\n\r\n" + BEACON)
    assert not leaks(rewritten(raw))


def test_a_file_name_in_encoded_words_of_an_unreadable_charset_is_read_as_it_is() -> None:
    # The stdlib raises CharsetError (no ValueError) for a charset name that is not ASCII.
    name = b'"=?ut\xfff-8?q?news.html?="'
    raw = mixed(b"Content-Type: application/octet-stream; name=" + name + b"\r\n\r\n" + BEACON)
    read = mime.filename(mime.parse(raw).children[0].headers)
    assert read is not None and read.endswith("?q?news.html?=")
    assert may_change(raw)
    rewritten(raw)


def test_a_part_inside_an_inline_pgp_signed_text_is_neutralized() -> None:
    # e-mail-parser-inlinepgp-signed.c makes the signed text a text/plain part, which the text/plain
    # parser reads again: signed text starting with a Content-Type field is that MIME part.
    signed = (
        b"-----BEGIN PGP SIGNED MESSAGE-----\r\nHash: SHA256\r\n\r\nContent-Type: text/html\r\n\r\n" + BEACON
    )
    signed += b"\r\n-----BEGIN PGP SIGNATURE-----\r\n\r\nabc\r\n-----END PGP SIGNATURE-----\r\n"
    raw = mixed(b"Content-Type: text/plain\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n" + signed)
    assert may_change(raw)
    assert not leaks(rewritten(raw))


def test_an_unquoted_boundary_camel_cuts_but_reads_alike_stays_unambiguous() -> None:
    # camel reads "----=_Next" as "----": the same parts, unless a line starts with "------" and no more.
    part = b"------=_Next\r\nContent-Type: text/plain\r\n\r\nhi\r\n"
    raw = HEAD + b"Content-Type: multipart/mixed; boundary=----=_Next\r\n\r\n" + part + b"------=_Next--\r\n"
    assert not mime.parse(raw).ambiguous
    assert mime.parse(raw.replace(b"hi\r\n", b"hi\r\n------ Forwarded ------\r\n")).ambiguous


def test_html_magic_evolution_does_not_read_leaves_an_attachment_alone() -> None:
    # shared-mime-info finds "<!--" only at the start: an XML file with a comment is no HTML to it.
    xml = b'<?xml version="1.0"?>\r\n<!-- generated -->\r\n<a xmlns="http://example.org/ns"/>\r\n'
    raw = mixed(b"Content-Type: application/x-config\r\n\r\n" + xml)
    assert ENGINE.rewrite(raw).data == raw


def test_a_bug_in_reading_a_part_as_evolution_does_blanks_it(monkeypatch: pytest.MonkeyPatch) -> None:
    from mailproxy.readings import evolution

    def raise_(*_: object) -> None:
        raise RuntimeError("bug")

    raw = mixed(b"Content-Type: text/plain\r\n\r\nContent-Type: text/html\r\n\r\n" + BEACON)
    monkeypatch.setattr(evolution, "embeds_entity", raise_)
    assert may_change(raw)  # the engine decides
    out = ENGINE.rewrite(raw).data
    assert len(out) == len(raw) and b"Content-Type: text/html" not in out and not leaks(out)


def der(tag: int, *contents: bytes) -> bytes:
    body = b"".join(contents)
    size = len(body).to_bytes(2, "big")
    return bytes([tag]) + (bytes([len(body)]) if len(body) < 0x80 else b"\x82" + size) + body


def signed_data(content: bytes, *, indefinite: bool = False) -> bytes:
    """A ContentInfo of signed data (RFC 5652) holding ``content``, signed by cryptography's PKCS #7
    builder (DER); or as streaming signers write BER (openssl smime -stream: indefinite lengths, the
    content in pieces), with no signature, which no client needs to render it."""
    if not indefinite:
        issued = trustme.CA().issue_cert("shop.example")
        key = serialization.load_pem_private_key(issued.private_key_pem.bytes(), None)
        cert = x509.load_pem_x509_certificate(issued.cert_chain_pems[0].bytes())
        builder = pkcs7.PKCS7SignatureBuilder().set_data(content)
        return builder.add_signer(cert, key, hashes.SHA256()).sign(serialization.Encoding.DER, [])
    signed_oid, data_oid = bytes.fromhex("06092a864886f70d010702"), bytes.fromhex("06092a864886f70d010701")
    pieces = b"".join(der(0x04, content[i : i + 100]) for i in range(0, len(content), 100))
    econtent = b"\xa0\x80\x24\x80" + pieces + b"\x00\x00\x00\x00"
    encap = b"\x30\x80" + data_oid + econtent + b"\x00\x00"
    inner = b"\x30\x80" + der(0x02, b"\x01") + der(0x31) + encap + der(0x31) + b"\x00\x00"
    return b"\x30\x80" + signed_oid + b"\xa0\x80" + inner + b"\x00\x00\x00\x00"


@pytest.mark.parametrize("indefinite", [False, True])
def test_s_mime_signed_data_with_a_tracker_is_blanked(indefinite: bool) -> None:
    # e-mail-parser-application-smime.c unwraps signed data (camel_cipher_context_decrypt_sync) and
    # renders the entity inside, out of the neutralizer's sight in the DER.
    pkcs7 = signed_data(HTML_ENTITY, indefinite=indefinite)
    raw = (
        HEAD + b'Content-Type: application/pkcs7-mime; smime-type=signed-data; name="smime.p7m"\r\n'
        b"Content-Transfer-Encoding: base64\r\n\r\n" + b64(pkcs7)
    )
    assert may_change(raw)
    out = rewritten(raw)
    assert not body_of(out).strip()


def test_s_mime_signed_data_nested_deeper_than_messages_may_be_is_blanked() -> None:
    # Each level of signed data holding an ambiguous entity was read twice (for what loads in it, then
    # neutralized to see whether that changes anything): 2^n readings; inside more than 4 such parts,
    # signed data is now blanked.
    entity = b"Content-Type: text/plain\r\n\r\nhello\r\n"
    for _ in range(5):
        entity = (
            b"Content-Type(x): text/plain\r\nContent-Type: application/pkcs7-mime\r\n"
            b"Content-Transfer-Encoding: binary\r\n\r\n" + signed_data(entity, indefinite=True)
        )
    raw = mixed(entity.removeprefix(b"Content-Type(x): text/plain\r\n"))
    assert ENGINE.rewrite(raw).failsafe_parts == ["1"]
    assert b"hello" in raw and b"hello" not in rewritten(raw)


def test_s_mime_signed_data_without_remote_content_is_left_alone() -> None:
    content = (
        b'Content-Type: text/html\r\n\r\n<p>Hi, see <a href="https://shop.example/">the shop</a></p>\r\n'
    )
    raw = HEAD + b"Content-Type: application/x-pkcs7-mime\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    raw += b64(signed_data(content))
    assert ENGINE.rewrite(raw).data == raw
