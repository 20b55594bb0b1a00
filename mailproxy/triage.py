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
from mailproxy.engine import RECEIPT_HEADERS
from mailproxy.readings import (
    CALENDARS,
    INLINE_MARKERS,
    MARKDOWN,
    MARKUP,
    STYLESHEET,
    VCARDS,
    leaf_reading,
    opens_files,
    untyped_texts,
)

log = logging.getLogger(__name__)

# What the engine acts on (``Engine._run``): read-receipt fields of the top header, and parts whose
# Content-Type is one of these types. A message with neither comes out of the engine unchanged and
# without findings, so it need not go in.
_RECEIPT_NAMES = tuple(name.encode() for name in RECEIPT_HEADERS)
_MARKUP_SUBTYPES = tuple(sorted({t.partition("/")[2].encode() for t in (*MARKUP, STYLESHEET)}))
# With the types a client may read as another (``mime._retyped``): a "?" in the type, or one typed by
# file name; and markdown, vCards, calendars and S/MIME signed data, which Evolution renders
# (``readings.leaf_reading``).
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
    takes the type from exactly those bytes (compat32, no decoding), and a part without the field is
    text/plain or message/rfc822. Only when the top header names a multipart or message type can other header
    blocks matter, and then the whole message is searched. Otherwise the message is parsed: the engine
    also neutralizes parts clients may read otherwise (``mime.Part.ambiguous``) and parts Evolution
    reads as markup or messages by their content (``leaf_reading``), which text parts' encoded
    bytes mostly rule out (``_no_entity``), and untyped text with files Thunderbird renders by name
    (a scan for their begin lines in such text only). Anything else goes to the engine; that costs
    time only.
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
    nested = False
    for value in _content_types(header):
        if any(sub in value for sub in _MAY_CHANGE_TYPES):
            return True
        nested = nested or b"multipart" in value or b"message" in value
    if not nested:
        return _neutralizes_a_part(raw)
    low = raw.lower()
    # An attached message may hide its types behind a transfer encoding a client decodes (the engine
    # neutralizes such a part: ``mime.Part.ambiguous``).
    if (
        _EXTERNAL_BODY in low
        or any(any(sub in value for sub in _NESTED_MAY_CHANGE_TYPES) for value in _content_types(low))
        or mime.k9_type_field(low)
    ):
        return True
    return _neutralizes_a_part(raw)


def _neutralizes_a_part(raw: bytes) -> bool:
    """Whether the engine neutralizes a part of ``raw``: one clients may read otherwise (``mime`` finds it
    ambiguous: ``Engine._run``), or a leaf clients read as markup or messages (``leaf_reading``)."""
    try:
        root = mime.parse(raw)
        untyped = {id(part) for part in untyped_texts(root)}
        return any(p.ambiguous for p in root.walk()) or any(
            _read_otherwise(raw, leaf, id(leaf) in untyped) for leaf in root.leaves()
        )
    except Exception:  # a bug of ours: the engine, which blanks what it cannot read, decides
        log.exception("the check of how clients read the message's parts failed")
        return True


def _read_otherwise(raw: bytes, leaf: mime.Part, untyped: bool) -> bool:
    ctype = leaf.content_type
    if untyped and opens_files(raw, leaf.body_start, leaf.end):
        return True  # Thunderbird renders the files in untyped text by their names (``leaf_reading``)
    if (
        ctype.startswith("text/")
        and ctype not in _TEXT_READ_OTHERWISE
        and _no_entity(raw, leaf.body_start, leaf.end, leaf.cte)
    ):
        return False  # Evolution reads it as text (``readings.leaf_reading``), which holds no MIME part
    return leaf_reading(raw, leaf) is not None


# Text types ``readings.leaf_reading`` reads otherwise than by ``readings.evolution.embeds_entity``.
_TEXT_READ_OTHERWISE = frozenset({MARKDOWN, *VCARDS, *CALENDARS})
# Quoted-printable escapes of the inline blocks' first bytes ('-', '(' and '%': "=2D", "=28" and "=25")
# without their "=": a pattern starting with a literal byte is scanned for at C speed, and "=" is common
# in quoted-printable text.
_ESCAPE_2X = re.compile(rb"2[58Dd]")
_ENTITY_NAME = b"content-type:"
# Where quoted-printable decoding may differ from a body's bytes: an escape or soft break, and trailing
# white space, which ``transfer.decode`` drops before a line break.
_QP_SPECIALS = frozenset(b"= \t\r\n")
_EQUALS = ord("=")
_CR = ord("\r")
_HEX = frozenset(b"0123456789abcdefABCDEF")
_BLANKS = frozenset(b" \t")
# Runs of a marker's first byte (``readings.INLINE_MARKERS``) looked at one by one, after memchr found them
# (a tiny fraction of the cost of a substring scan), before the caller scans or decodes instead.
_MAX_RUNS = 8


def _no_entity(raw: bytes, start: int, end: int, cte: str) -> bool:
    """True when ``readings.evolution.embeds_entity`` surely finds no MIME part in the body
    ``raw[start:end]`` of a text part as ``readings.leaf_reading`` decodes it (``cte``); False when it may
    (the caller then reads it exactly). Looks at the encoded bytes without decoding or copying the body.
    """
    kind = cte.strip().lower()
    if kind == "base64":  # any decoded byte can come from any encoded one
        return False
    head = raw[start : min(start + len(_ENTITY_NAME), end)]
    if kind != "quoted-printable":  # the bytes as they are: exact
        if head.lower() == _ENTITY_NAME:
            return False
        return all(
            _no_marker(raw, start, end, m, False) or raw.find(m, start, end) < 0 for m in INLINE_MARKERS
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
        _no_marker(raw, start, end, m, True) for m in INLINE_MARKERS
    )


def _escapes_first_byte(raw: bytes, start: int, end: int) -> bool:
    """Whether the quoted-printable body ``raw[start:end]`` may hold an escape of a marker's first byte."""
    return any(
        m.start() > start and raw[m.start() - 1] == _EQUALS for m in _ESCAPE_2X.finditer(raw, start, end)
    )


def _no_marker(raw: bytes, start: int, end: int, marker: bytes, qp: bool) -> bool:
    """Whether the body ``raw[start:end]`` surely decodes to no ``marker``, as it is or, if ``qp``, as
    quoted-printable without escapes of the marker's first byte: the marker then starts at that byte as it
    is, and each run of it is decoded on (through soft breaks and escapes) to the first other byte, which
    must not be the marker's next one. White space is a byte of its own unless a decoder drops it before
    a line end (then the line break is the next byte) or before a "=", where it is not looked into.

    memchr finds the first runs. In a body with many (hyphens), the marker itself is looked for in a
    body as it is, and in quoted-printable a pattern finds the runs followed by anything but a byte that
    ends them: the first of those in a decoded run starts it (only the first byte's runs as they are can
    come before it), and is decoded on from the start of its run, once per run."""
    first = marker[:1]
    pos = raw.find(first, start, end)
    for _ in range(_MAX_RUNS):
        if pos < 0:
            return True
        at = _run_end(raw, pos, end, marker, qp)
        if at < 0:
            return False
        pos = raw.find(first, at, end)
    if not qp:
        return raw.find(marker, pos, end) < 0
    read_to = pos
    for m in _QP_RUN_GOES_ON[marker].finditer(raw, pos, end):
        if m.start() < read_to:
            # Inside a run already read to its end: walking back from here finds that run's start, or a
            # start after an escape or soft break in it, whose reading ends at the same byte.
            continue
        run = m.start()
        while run > start and raw[run - 1] == marker[0]:
            run -= 1
        read_to = _run_end(raw, run, end, marker, qp)
        if read_to < 0:
            return False
    return True


def _run_end(raw: bytes, pos: int, end: int, marker: bytes, qp: bool) -> int:
    """Where the run of ``marker``'s first byte at ``pos`` ends (``_no_marker``), or -1 where the marker
    may start in it."""
    first = marker[0]
    lead = len(marker) - len(marker.lstrip(marker[:1]))  # "-----"
    needed = marker[lead]
    run, at = 1, pos + 1
    while at < end:
        byte = raw[at]
        if qp and byte == _EQUALS:
            if raw.startswith(b"\r\n", at + 1) or raw.startswith(b"\n", at + 1):  # a soft break
                at += 2 + (raw[at + 1] == _CR)
                continue
            pair = raw[at + 1 : min(at + 3, end)]
            if len(pair) < 2 or not all(b in _HEX for b in pair):
                return -1
            byte, step = int(pair, 16), 3
        elif qp and byte in _BLANKS:
            blank = at
            while blank < end and raw[blank] in _BLANKS:
                blank += 1
            return -1 if blank < end and raw[blank] == _EQUALS else at
        else:
            step = 1
        if byte != first:
            return -1 if run >= lead and byte == needed else at
        run, at = run + 1, at + step
    return at


# A marker's first byte followed by what may go on with it in quoted-printable: the byte again, a "=", the
# marker's next byte, or white space before a "=".
_QP_RUN_GOES_ON = {
    m: re.compile(re.escape(m[:1]) + rb"(?:[" + re.escape(m[:1] + m.lstrip(m[:1])[:1]) + rb"=]|[ \t]+=)")
    for m in INLINE_MARKERS
}


# Message types the engine neutralizes as leaves (``readings.evolution.MESSAGES`` and ``MBOX``).
_MESSAGE_SUBTYPES = (b"rfc822", b"rfc2822", b"news", b"global", b"mbox")
# What may change a part inside a multipart or message (joined once, not per Content-Type field).
_NESTED_MAY_CHANGE_TYPES = _MAY_CHANGE_TYPES + _MESSAGE_SUBTYPES


def header_may_change(block: bytes) -> bool:
    """Whether ``Engine.rewrite`` could change a header block of a message (or any part of it) that
    includes ``block``: only when it names a receipt field or "external-body" (the only header edits
    are renames of those fields, ``Engine._receipts`` and ``Engine._external_bodies``)."""
    return _renames(block.lower())


def _renames(low: bytes) -> bool:
    return _EXTERNAL_BODY in low or any(name in low for name in _RECEIPT_NAMES)
