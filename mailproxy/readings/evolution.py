"""Evolution's readings of parts the engine reads as text or attachments (Evolution 3, its camel
library and e-mail-parser modules): the MIME part its text/plain parser finds after an inline block,
the type it snoops for a part it has no parser for (by content or file name), and the markdown, vCards
and calendars it renders with remote content. ``mailproxy.readings.parts`` decides by these rules what a
leaf is to Evolution.
"""

from __future__ import annotations

import binascii
import html
import re

from mailproxy import mime
from mailproxy.readings.charsets import label_of
from mailproxy.readings.common import decode_leniently, loads_remote
from mailproxy.rewrite import safety

# Parts a client decodes and parses as messages: message/rfc822 that mime leaves unparsed (in a transfer
# encoding), message/news (Evolution's e-mail-parser-message-rfc822.c), message/global and
# message/rfc2822 (camel-mime-parser.c parses them as messages), and mailboxes (e-mail-parser-
# application-mbox.c: the decoded body split at its "From " lines, each message rendered inline).
MESSAGES = frozenset({"message/rfc822", "message/news", "message/global", "message/rfc2822"})
MBOX = "application/mbox"
MBOX_FROM = re.compile(rb"(?m)^From ")
# Evolution's text/plain parser (e-mail-parser-text-plain.c, with e-mail-inline-filter.c) cuts a text
# part at inline PGP, BinHex and PostScript blocks, and parses a piece that starts with "Content-Type:"
# as a MIME part (construct_part_from_stream), which it renders whatever its type: HTML in "plain text".
_INLINE_BLOCK = re.compile(
    rb"(?m)^(?:\(This file must be converted with BinHex 4\.0\)|%!PS-Adobe-"
    rb"|-----BEGIN PGP (?:SIGNED )?MESSAGE-----)"
)
_ENTITY_LINE = re.compile(rb"(?im)^content-type:")
# The major types Evolution has parsers for; a part of another type (most application/*, audio/* and
# video/* types) is parsed as the type e_mail_part_snoop_type guesses from its decoded content
# (g_content_type_guess: shared-mime-info's magic for text/html and message/rfc822 or message/news)
# and its file name (e-mail-parser-multipart-mixed.c, e_mail_parser_wrap_as_attachment).
EVOLUTION_PARSES = ("text/", "image/", "multipart/", "message/")
# shared-mime-info's text/html magic: some strings anywhere in the first 256 bytes, some at the start only.
_SNIFFED_HTML = re.compile(rb"(?i)<(?:!doctype html|html|head|script|title)|\A<(?:body|h1|!--)")
_SNIFFED_MESSAGE = re.compile(
    rb"#! rnews|N#! rnews|Forward to|From:|Pipe to|Received:|Relay-Version:|Return-[Pp]ath:|Subject: "
    rb"|Article|Path:|Xref:"
)
_SNIFF_BYTES = 256 + 16  # shared-mime-info looks at offsets 0 to 256
_NAMED_HTML = re.compile(r"(?i)\.html?\s*$")
_NAMED_MESSAGE = re.compile(r"(?i)\.(?:eml|mbox)\s*$")
_NAMED_MARKDOWN = re.compile(r"(?i)\.(?:md|mkd|markdown)\s*$")
_NAMED_VCARD = re.compile(r"(?i)\.(?:vcf|vcard)\s*$")
_NAMED_CALENDAR = re.compile(r"(?i)\.(?:ics|ifb|vcs)\s*$")


# Evolution renders text/markdown with cmark (e-mail-formatter-text-markdown.c, cmark_markdown_to_html),
# whose images load from their URLs however a backslash escape or a character reference spells them.
MARKDOWN = "text/markdown"
_MARKDOWN_ESCAPE = re.compile(r"\\([!-/:-@\[-`{-~])")


# Evolution renders vCards (its vcard-inline module: text/vcard, text/x-vcard, text/directory) with
# eab-contact-formatter.c, which writes a picture given by URI (PHOTO or LOGO) as an <img> of that URI,
# and some values (the parts of an address) into the HTML as they are.
VCARDS = frozenset({"text/vcard", "text/x-vcard", "text/directory"})
# A line break that folds a vCard's or a calendar's line (RFC 6350, RFC 5545 section 3.1).
_FOLD = re.compile(rb"\r?\n[ \t]")
_VCARD_PICTURE = re.compile(r"(?im)^(?:[\w-]+\.)?(?:photo|logo)[;:](.*)$")
_VCARD_MARKUP = re.compile(r"<[a-zA-Z!/?]")


def vcard_loads(decoded: bytes) -> bool:
    """Whether a vCard, unfolded and read with and without quoted-printable (vCard 2.1), has a picture
    with a remote URI or markup, backslash escapes dropped."""
    unfolded = _FOLD.sub(b"", decoded)
    for reading in (unfolded, binascii.a2b_qp(unfolded)):
        text = reading.decode("latin-1").replace("\\", "")
        if _VCARD_MARKUP.search(text) or any(
            safety.break_everything(m.group(1)) for m in _VCARD_PICTURE.finditer(text)
        ):
            return True
    return False


# Evolution renders calendars (its itip-formatter module: text/calendar, application/ics) in its own view:
# itip-view.c (itip_view_init_view) writes an X-ALT-DESC given as text/html, and a DESCRIPTION holding
# one of a few tags, into it as HTML, and e-mail-parser-itip.c shows inline ATTACH data as a part of its
# FMTTYPE.
CALENDARS = frozenset({"text/calendar", "application/ics"})
_ICAL_TEXT = re.compile(r"(?im)^(?:[\w-]+\.)?(x-alt-desc|description|attach)((?:;[^:\n]*)?):(.*)$")
_ICAL_ESCAPE = re.compile(r"\\(.)")
_GOOGLE_HTML = re.compile(r"(?i)<(?:html|body|br|span|b|i|u|ul|li)>|</a>|&nbsp;")


def calendar_loads(decoded: bytes) -> bool:
    """Whether a calendar, unfolded, has an HTML description or inline attachment that loads something
    remote (links aside)."""
    text = _FOLD.sub(b"", decoded).decode("latin-1")
    for m in _ICAL_TEXT.finditer(text):
        name, params, value = m.group(1).lower(), m.group(2), m.group(3)
        if name == "attach":
            if "binary" not in params.lower():
                continue
            try:
                value = binascii.a2b_base64(value).decode("latin-1")
            except binascii.Error:
                continue
        else:
            value = _ICAL_ESCAPE.sub(lambda e: "\n" if e.group(1) in "nN" else e.group(1), value)
            html = "text/html" in params.lower() if name == "x-alt-desc" else _GOOGLE_HTML.search(value)
            if not html:
                continue
        if loads_remote(value):
            return True
    return False


def markdown_loads(decoded: bytes, charset: str | None) -> bool:
    """Whether markdown ``decoded`` (read as bytes or in its charset) has an image and spells a remote
    URL once its escapes and character references are read."""
    for codec in ("latin-1", label_of(charset) or "latin-1"):
        try:
            text = decoded.decode(codec, "replace")
        except (LookupError, ValueError):  # a label Python does not know (as bytes above)
            continue
        if "![" in text and safety.break_everything(html.unescape(_MARKDOWN_ESCAPE.sub(r"\1", text))):
            return True
    return False


def embeds_entity(decoded: bytes) -> bool:
    """Whether Evolution's text/plain parser finds a MIME part in a text part's ``decoded`` body: one
    starting the body, or (loosely) a line after an inline block."""
    if decoded[:13].lower() == b"content-type:":
        return True
    return _inline_block(decoded) and _ENTITY_LINE.search(decoded) is not None


# What every inline block starts with: looked for first, at C speed (the line-anchored pattern is tried
# at every line start).
INLINE_MARKERS = (b"-----BEGIN PGP ", b"(This file must be converted with BinHex", b"%!PS-Adobe-")


def _inline_block(data: bytes) -> bool:
    return any(m in data for m in INLINE_MARKERS) and _INLINE_BLOCK.search(data) is not None


def sniffed(encoded: bytes, part: mime.Part) -> str | None:
    """What Evolution takes a part of a type it has no parser for for, by its file name or the first bytes
    of its content: "markup", "messages", "vcard", "calendar" or "markdown"; else None."""
    try:
        name = mime.filename(part.headers) or ""
    except mime.UNREADABLE_PARAMS:
        name = ""
    # The first bytes decoded from a prefix of the body (a prefix of base64 lines decodes to one).
    head = decode_leniently(encoded[:1024].rpartition(b"\n")[0] or encoded[:1024], part)[:_SNIFF_BYTES]
    if _SNIFFED_MESSAGE.match(head) or _NAMED_MESSAGE.search(name):
        return "messages"
    if _SNIFFED_HTML.search(head) or _NAMED_HTML.search(name):
        return "markup"
    if head[:11].upper() == b"BEGIN:VCARD" or _NAMED_VCARD.search(name):
        return "vcard"
    if head[:15].upper() == b"BEGIN:VCALENDAR" or _NAMED_CALENDAR.search(name):
        return "calendar"
    return "markdown" if _NAMED_MARKDOWN.search(name) else None
