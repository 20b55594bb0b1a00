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
    _EVOLUTION_PARSES,
    _MARKUP,
    _STYLESHEET,
    RECEIPT_HEADERS,
    _embeds_entity,
    _evolution_reading,
    _inline_block,
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
    blocks matter, and then the whole message is searched. Evolution also reads parts as markup or
    messages by their content (``_evolution_reading``); where bytes cannot rule that out, the message
    is parsed and its parts checked. Anything else goes to the engine; that costs time only.
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
        # Plain text, whose body Evolution may read as a MIME part (``_embeds_entity``), seen through
        # its bytes unless a transfer encoding hides them, or a type Evolution snoops.
        encoding = _ENCODING_VALUE.search(header)
        if snooped or (encoding is not None and encoding.group(1) not in (b"7bit", b"8bit", b"binary")):
            return _evolution_reads(raw)
        return end >= 0 and _embeds_entity(raw[end + (2 if lf_only >= 0 else 3) :])
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
    # Parts Evolution reads as markup or messages where the engine does not: only their decoded bytes
    # tell, and only an encoding, an inline block, a body starting with a Content-Type field or a type
    # Evolution snoops can hide one.
    maybe = b"base64" in low or b"quoted-printable" in low or _inline_block(raw)
    maybe = maybe or re.search(rb"\n\r?\ncontent-type:", low) is not None
    return (maybe or any(_snooped(value) for value in _content_types(low))) and _evolution_reads(raw)


def _evolution_reads(raw: bytes) -> bool:
    """Whether Evolution reads a part of ``raw`` as markup or messages (``_evolution_reading``)."""
    try:
        return any(_evolution_reading(raw, leaf) is not None for leaf in mime.parse(raw).leaves())
    except Exception:  # a bug of ours: the engine, which blanks what it cannot read, decides
        log.exception("the check of Evolution's reading failed")
        return True


# Message types the engine neutralizes as leaves (``_MESSAGES``), and what names a part's encoding.
_MESSAGE_SUBTYPES = (b"rfc822", b"rfc2822", b"news", b"global", b"mbox")
_ENCODING_VALUE = re.compile(rb"content-transfer-encoding[ \t]*:[ \t]*([^\s;(]*)")
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
