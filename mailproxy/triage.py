"""Whether the engine may change a message, judged from its bytes alone: the IMAP filter lets mail the
engine cannot change skip it (session rule 10), so this must be sound (never "unchanged" for a message
``Engine.rewrite`` changes or reports on) and much cheaper than the engine (mail without HTML is served
within a small factor of a plain IMAP proxy's time).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator

from mailproxy import mime
from mailproxy.engine import (
    _CALENDARS,
    _EVOLUTION_PARSES,
    _INLINE_MARKERS,
    _MARKDOWN,
    _MARKUP,
    _STYLESHEET,
    _VCARDS,
    RECEIPT_HEADERS,
    _evolution_reading,
)

log = logging.getLogger(__name__)

# What the engine acts on (``Engine._run``): read-receipt fields of the top header, and parts whose
# Content-Type is one of these types. A message with neither comes out of the engine unchanged and
# without findings, so it need not go in.
_RECEIPT_NAMES = tuple(name.encode() for name in RECEIPT_HEADERS)
_MARKUP_SUBTYPES = tuple(sorted({t.partition("/")[2].encode() for t in (*_MARKUP, _STYLESHEET)}))
# With the types a client may read as another (``mime._retyped``): a "?" in the type, or one typed by
# file name; and markdown, vCards, calendars and S/MIME signed data, which Evolution renders
# (``_evolution_kind``).
_MAY_CHANGE_TYPES = (
    *_MARKUP_SUBTYPES,
    b"?",
    b"octet-stream",
    b"x-unknown-content-type",
    b"markdown",
    b"vcard",
    b"directory",
    b"calendar",
    b"ics",
    b"pkcs7",
)
# And message/external-body parts (``Engine._external_bodies``), which it finds in a header block
# however the field is spelled: the word anywhere the other types are looked for is enough.
_EXTERNAL_BODY = b"external-body"
# A Content-Type value's type/subtype: up to the first ";" or the field's end (a line break not
# followed by a blank, the header parser's folding rule; a bare CR, where that parser also breaks,
# only makes this span longer than the parser's).
_TYPE_VALUE = re.compile(rb"(?:[^;\n]|\n[ \t])*")


# The name may have white space before its colon (``mime`` reads such fields, as clients do), or a NUL
# and anything after it (where Evolution's camel ends the name: ``mime._camel_reading``).
_CONTENT_TYPE_NAME = re.compile(rb"content-type(?:[ \t]*|\x00[^:\n]*):")


def _content_types(low: bytes) -> Iterator[bytes]:
    """The type/subtype span of every ``content-type:`` in ``low`` (lower-cased bytes)."""
    found = _CONTENT_TYPE_NAME.search(low)
    while found is not None:
        m = _TYPE_VALUE.match(low, found.end())
        assert m is not None  # the pattern matches the empty string
        yield m.group()
        found = _CONTENT_TYPE_NAME.search(low, m.end())


def may_change(raw: bytes) -> bool:
    """Whether ``Engine.rewrite`` could change ``raw`` or find anything in it, judged from the bytes alone
    (the IMAP filter lets other mail skip the engine).

    False only when the top header names no receipt field, "external-body" is not where types are
    looked for, and no ``Content-Type`` field names a markup or stylesheet type, or a type clients
    may read as another (``mime._retyped``) (in any case, folded or not): the engine's MIME parser
    takes the type
    from exactly those bytes (compat32, no decoding), and a part without the field is text/plain or
    message/rfc822. Only when the top header names a multipart or message type can other header
    blocks matter, and then the whole message is searched. Otherwise the message is parsed: the engine
    also neutralizes parts clients may read otherwise (``mime.Part.ambiguous``) and parts Evolution
    reads as markup or messages by their content (``_evolution_reading``), which text parts' encoded
    bytes mostly rule out (``_no_entity``). Anything else goes to the engine; that costs time only.
    """
    # The top header ends at its first blank line, if not earlier (mime._header_end). A short
    # pattern that is absent costs a scan of everything, hence the bounded second search.
    end = raw.find(b"\n\r\n")
    lf_only = raw.find(b"\n\n", 0, end if end >= 0 else len(raw))
    if lf_only >= 0:
        end = lf_only
    header = raw[: end + 3].lower() if end >= 0 else raw.lower()
    if _renames(header) or mime.k9_type_field(header):  # "content-type(x):" (the engine neutralizes it)
        return True
    nested = snooped = False
    for value in _content_types(header):
        if any(sub in value for sub in _MAY_CHANGE_TYPES):
            return True
        nested = nested or b"multipart" in value or b"message" in value
        snooped = snooped or _snooped(value)
    if not nested:
        return _neutralizes_a_part(raw)
    low = raw.lower()
    # An attached message may hide its types behind a transfer encoding a client decodes (the engine
    # neutralizes such a part: ``mime.Part.ambiguous``).
    if (
        _EXTERNAL_BODY in low
        or any(
            any(sub in value for sub in _MAY_CHANGE_TYPES + _MESSAGE_SUBTYPES)
            for value in _content_types(low)
        )
        or mime.k9_type_field(low)
    ):
        return True
    return _neutralizes_a_part(raw)


def _neutralizes_a_part(raw: bytes) -> bool:
    """Whether the engine neutralizes a part of ``raw``: one clients may read otherwise (``mime`` finds it
    ambiguous: ``Engine._run``), or a leaf Evolution reads as markup or messages (``_evolution_reading``)."""
    try:
        root = mime.parse(raw)
        return any(p.ambiguous for p in root.walk()) or any(
            _read_otherwise(raw, leaf) for leaf in root.leaves()
        )
    except Exception:  # a bug of ours: the engine, which blanks what it cannot read, decides
        log.exception("the check of Evolution's reading failed")
        return True


def _read_otherwise(raw: bytes, leaf: mime.Part) -> bool:
    ctype = leaf.content_type
    if (
        ctype.startswith("text/")
        and ctype not in _TEXT_READ_OTHERWISE
        and _no_entity(raw, leaf.body_start, leaf.end, leaf.cte)
    ):
        return False  # Evolution reads it as text (``engine._evolution_kind``), which holds no MIME part
    return _evolution_reading(raw, leaf) is not None


# Text types ``engine._evolution_kind`` reads otherwise than by ``_embeds_entity``.
_TEXT_READ_OTHERWISE = frozenset({_MARKDOWN, *_VCARDS, *_CALENDARS})
# Each inline block starts with one of these (``engine._INLINE_MARKERS``), its first byte first: that byte
# is looked for with memchr, at a tiny fraction of the cost of the marker's substring scan, which mail
# without the byte is spared.
_FIRST_BYTES = tuple((m[:1], m) for m in _INLINE_MARKERS)
# Quoted-printable escapes of those first bytes ('-', '(' and '%': "=2D", "=28" and "=25"), found by their
# first two bytes ("=20", a space, is the common one).
_ESCAPE_2X = b"=2"
_ESCAPED_FIRST_BYTES = frozenset(b"58Dd")
_ENTITY_NAME = b"content-type:"
# Where quoted-printable decoding may differ from a body's bytes: an escape or soft break, and trailing
# white space, which ``transfer.decode`` drops before a line break.
_QP_SPECIALS = frozenset(b"= \t\r\n")
_EQUALS = ord("=")
_CR = ord("\r")
_HEX = frozenset(b"0123456789abcdefABCDEF")
_BLANKS = frozenset(b" \t")
# Runs of a marker's first byte looked at in a quoted-printable body before it is decoded instead.
_MAX_RUNS = 200


def _no_entity(raw: bytes, start: int, end: int, cte: str) -> bool:
    """True when ``engine._embeds_entity`` surely finds no MIME part in the body ``raw[start:end]`` of a
    text part as ``engine._evolution_kind`` decodes it (``cte``); False when it may (the caller then reads
    it exactly). Looks at the encoded bytes without decoding or copying the body.
    """
    kind = cte.strip().lower()
    if kind == "base64":  # any decoded byte can come from any encoded one
        return False
    head = raw[start : min(start + len(_ENTITY_NAME), end)]
    if kind != "quoted-printable":  # the bytes as they are: exact
        if head.lower() == _ENTITY_NAME:
            return False
        return all(
            raw.find(first, start, end) < 0 or raw.find(m, start, end) < 0 for first, m in _FIRST_BYTES
        )
    # Every decoded byte (binascii's reading, transfer.decode's, or the body itself where that fails) is
    # a byte of the body or the escape "=XX" of one, and nothing else is dropped than soft breaks, bytes
    # after a "=", and white space before a line break. So the body starts with a Content-Type field
    # only if its first bytes are that field, or it starts with a byte decoding may drop or change.
    if any(b in _QP_SPECIALS for b in head):
        if head[:1] in (b"c", b"C") or (head[0] in _QP_SPECIALS and head[:1] not in (b"\r", b"\n")):
            return False
    elif head.lower() == _ENTITY_NAME:
        return False
    return not _escapes_first_byte(raw, start, end) and all(
        _no_qp_marker(raw, start, end, m) for m in _INLINE_MARKERS
    )


def _escapes_first_byte(raw: bytes, start: int, end: int) -> bool:
    """Whether the quoted-printable body ``raw[start:end]`` may hold an escape of a marker's first byte.
    A "2" is rare in most text, so memchr visits each; where there are many (digits, the "=C2" and "=E2"
    of UTF-8 punctuation), the "=2" pairs are searched for instead."""
    pos = raw.find(b"2", start, end)
    for _ in range(_MAX_RUNS):
        if pos < 0:
            return False
        if pos > start and raw[pos - 1] == _EQUALS and pos + 1 < end and raw[pos + 1] in _ESCAPED_FIRST_BYTES:
            return True
        pos = raw.find(b"2", pos + 1, end)
    pos = raw.find(_ESCAPE_2X, max(pos - 1, start), end)
    for _ in range(_MAX_RUNS):
        if pos < 0:
            return False
        if pos + 2 < end and raw[pos + 2] in _ESCAPED_FIRST_BYTES:
            return True
        pos = raw.find(_ESCAPE_2X, pos + 2, end)
    return True


def _no_qp_marker(raw: bytes, start: int, end: int, marker: bytes) -> bool:
    """Whether the quoted-printable body ``raw[start:end]``, without escapes of ``marker``'s first byte,
    surely decodes to no ``marker``: the marker then starts at that byte as it is, and each run of it is
    decoded on (through soft breaks and escapes) to the first other byte, which must not be the marker's
    next one. White space is a byte of its own unless a decoder drops it before a line end (then the line
    break is the next byte) or before a "=", where it is not looked into."""
    first = marker[0]
    lead = len(marker) - len(marker.lstrip(marker[:1]))  # "-----"
    needed = marker[lead]
    pos = raw.find(marker[:1], start, end)
    for _ in range(_MAX_RUNS):
        if pos < 0:
            return True
        run, at = 1, pos + 1
        while at < end:
            byte = raw[at]
            if byte == _EQUALS:
                if raw.startswith(b"\r\n", at + 1) or raw.startswith(b"\n", at + 1):  # a soft break
                    at += 2 + (raw[at + 1] == _CR)
                    continue
                pair = raw[at + 1 : min(at + 3, end)]
                if len(pair) < 2 or not all(b in _HEX for b in pair):
                    return False
                byte, step = int(pair, 16), 3
            elif byte in _BLANKS:
                blank = at
                while blank < end and raw[blank] in _BLANKS:
                    blank += 1
                if blank < end and raw[blank] == _EQUALS:
                    return False
                break
            else:
                step = 1
            if byte != first:
                if run >= lead and byte == needed:
                    return False
                break
            run, at = run + 1, at + step
        pos = raw.find(marker[:1], at, end)
    return False


# Message types the engine neutralizes as leaves (``_MESSAGES``).
_MESSAGE_SUBTYPES = (b"rfc822", b"rfc2822", b"news", b"global", b"mbox")
# The major types Evolution has parsers for (``engine._EVOLUTION_PARSES``): it snoops the others.
_EVOLUTION_PARSES_BYTES = tuple(t.encode() for t in _EVOLUTION_PARSES)


def _snooped(value: bytes) -> bool:
    """Whether a Content-Type ``value`` (lower-cased) names a type Evolution snoops (``_sniffed``)."""
    return not value.strip().startswith(_EVOLUTION_PARSES_BYTES)


def header_may_change(block: bytes) -> bool:
    """Whether ``Engine.rewrite`` could change a header block of a message (or any part of it) that
    includes ``block``: only when it names a receipt field or "external-body" (the only header edits
    are renames of those fields, ``Engine._receipts`` and ``Engine._external_bodies``)."""
    return _renames(block.lower())


def _renames(low: bytes) -> bool:
    return _EXTERNAL_BODY in low or any(name in low for name in _RECEIPT_NAMES)
