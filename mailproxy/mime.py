"""The MIME structure of a raw message, as byte offsets into it.

The stdlib ``email`` package parses into objects and loses where each part sits in the original bytes, but
the rewriter must edit those bytes in place. This module finds the parts (RFC 2046 boundaries, nested
multiparts, message/rfc822 attachments) and reads each header block into a stdlib ``Message`` (compat32,
lenient in the ways real mail needs), whose methods read the types and parameters.

What matters is to find the parts the reader's client finds: a part we take for text/plain that a client
renders as HTML would reach the reader unfiltered. So boundaries are matched as Dovecot (which IMAP clients
see through BODYSTRUCTURE and BODY[n]) matches them, as prefixes of a line, and header lines clients skip
(no colon, white space before the colon) are skipped instead of ending the header block as they do for the
stdlib. A part whose parts, type or encoding clients may read differently (a delimiter Thunderbird, which
matches whole lines, does not take for one; one after a lone CR, a line break to K-9's mime4j; an
unreadable Content-Type) is marked ``ambiguous``, for the engine to neutralize.

Part numbers follow IMAP (RFC 3501 section 6.4.5): the children of a multipart are 1, 2, ...; a
message/rfc822 part N holds its message's parts as N.1, N.2 (or N.1 alone when that message is not
multipart); a single-part message's body is part 1.

Malformed input never raises: a missing close delimiter ends the multipart at its parent's end, a part
without a blank line is all header, and a boundary parameter that never occurs makes the multipart one
opaque body. Depth and part count are bounded so hostile nesting cannot exhaust memory or the stack.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from email.errors import MessageError
from email.header import decode_header, make_header
from email.message import Message
from email.utils import collapse_rfc2231_value

MAX_DEPTH = 40
MAX_PARTS = 2000
# A header block larger than this is not a header block: treat the rest as body so scanning stays bounded.
MAX_HEADER_BYTES = 1 << 20

_HEADER_END = re.compile(rb"\r?\n\r?\n")


@dataclass(frozen=True, slots=True)
class Part:
    number: str  # IMAP part number ("1", "2.1"); "" for the message itself
    start: int  # first byte of the part's header block
    body_start: int  # first byte after the blank line (== end of headers)
    end: int  # end of the body: the line break before the next delimiter is not part of it
    content_type: str  # lower-cased "type/subtype"
    charset: str | None
    cte: str  # lower-cased Content-Transfer-Encoding, "7bit" when absent
    headers: Message  # the part's headers (compat32: lenient)
    children: tuple[Part, ...] = ()
    # Clients may read this part's type, encoding or structure otherwise, or it was not analysed (the
    # depth and part limits): everything remote in it is to be neutralized.
    ambiguous: bool = False

    @property
    def is_multipart(self) -> bool:
        return self.content_type.startswith("multipart/")

    def walk(self) -> list[Part]:
        out = [self]
        for c in self.children:
            out.extend(c.walk())
        return out

    def leaves(self) -> list[Part]:
        return [p for p in self.walk() if not p.children]


def _header_end(raw: bytes, start: int, end: int) -> tuple[int, int]:
    """(end of the header block, start of the body) of the entity at raw[start:end]."""
    # An entity starting with a blank line has no headers.
    for blank in (b"\r\n", b"\n"):
        if raw.startswith(blank, start):
            return start, start + len(blank)
    m = _HEADER_END.search(raw, start, min(end, start + MAX_HEADER_BYTES))
    if m is None:
        if end - start <= MAX_HEADER_BYTES:
            return end, end  # all header, no body
        return start, start  # not a header block at all
    return m.start(), m.end()


# A field as a client reads it: a name the stdlib parser accepts, white space allowed before the colon,
# and its continuation lines. A line without a colon or with another name is skipped, continuation lines
# and all (it cannot start a match, and its continuation lines start with white space); the stdlib
# parser would end the header block there. Lines end at LF (a CR before it is part of the line break).
_FIELD = re.compile(rb"^([\x21-\x39\x3b-\x7e]+)[ \t]*:[ \t]*([^\r\n]*(?:\r?\n[ \t][^\r\n]*)*)", re.MULTILINE)
_LONE_CR = re.compile(rb"\r(?!\n)")
_TYPE_FIELDS = ("content-type", "content-transfer-encoding")
# The fields whose parameters the stdlib reads (type, boundary, charset, file name), and a length no
# mail's reaches: a longer one makes its part ambiguous, unread.
_PARAMETER_FIELDS = ("content-type", "content-disposition")
_MAX_PARAMETER_FIELD = 16 << 10


def _message(block: bytes) -> tuple[Message, tuple[str, str] | None, bool]:
    """The fields of a header block without a lone CR as the compat32 parser stores them, the first
    Content-Type field, and whether a Content-Type or Content-Transfer-Encoding field is repeated.

    This is what ``email.parser.BytesHeaderParser(policy=compat32)`` makes of the fields alone (several
    times faster): the name as it stands; the value with the white space after the colon and the line
    breaks' CRs dropped, its continuation lines joined with LF; bytes as ASCII with surrogate escapes."""
    headers = Message()
    content_type = None
    seen: list[str] = []
    repeated = False
    for m in _FIELD.finditer(block):
        name = m.group(1).decode("ascii")
        value = m.group(2)
        if b"\n" in value:
            value = value.replace(b"\r\n", b"\n")
        text = value.decode("ascii", "surrogateescape")
        headers.set_raw(name, text)
        low = name.lower()
        if low in _TYPE_FIELDS:
            repeated = repeated or low in seen
            seen.append(low)
            if content_type is None and low == "content-type":
                content_type = (name, text)
    headers.set_payload("")
    return headers, content_type, repeated


def _key(headers: Message) -> tuple[object, ...]:
    return (
        headers.get_content_type(),
        headers.get_param("boundary"),
        str(headers.get("content-transfer-encoding", "")).strip().lower(),
    )


def _parse_headers(block: bytes) -> tuple[Message, tuple[str, str] | None, bool]:
    """The fields of a header block as Dovecot reads them (lines end at LF), its first Content-Type
    field, and whether a client could read its type, encoding or extent otherwise: Thunderbird and K-9
    also end a line at a lone CR, K-9 reads a field named with a comment in it or on a first line led by
    white space, and a second Content-Type or Content-Transfer-Encoding field with another value is not
    read alike by all."""
    lone_cr = b"\r" in block and _LONE_CR.search(block) is not None
    headers, content_type, repeated = _message(_LONE_CR.sub(b" ", block) if lone_cr else block)
    if any(len(v) > _MAX_PARAMETER_FIELD and n.lower() in _PARAMETER_FIELDS for n, v in headers.raw_items()):
        # Not read: the stdlib reads parameters in time quadratic in a field's length (its
        # email.message._parseparam copies the rest of the value at each ";").
        for name in _PARAMETER_FIELDS:
            del headers[name]
        return headers, None, True
    ambiguous = repeated and any(
        len({str(v).split(";")[0].strip().lower() for v in headers.get_all(name, [])}) > 1
        for name in _TYPE_FIELDS
    )
    lines = _LONE_CR.sub(b"\n", block) if lone_cr else block
    ambiguous = ambiguous or k9_type_field(lines)
    if lone_cr and not ambiguous:
        # A blank line there ends the header block for those clients (K-9's mime4j converts each lone
        # CR to CRLF before parsing, EOLConvertingInputStream; MimeEntity.readRawField stops at the
        # first empty line): what follows is their body, header lines to Dovecot.
        if lines.startswith((b"\n", b"\r\n")) or _HEADER_END.search(lines) is not None:
            return headers, content_type, True
        other = _message(lines)[0]
        try:
            ambiguous = _key(other) != _key(headers)
        except UNREADABLE_PARAMS:
            ambiguous = True
    return headers, content_type, ambiguous


# A field K-9 reads and Dovecot does not: the block's first line led by white space (mime4j's
# MimeEntity.readRawField starts a field with the first line whatever it starts with), or a name with a
# comment in it (RawFieldParser.parseField reads the name with parseToken, which skips comments).
_COMMENTED_NAMES = re.compile(rb"\A[ \t][^\r\n]*|(?m:^[^ \t:\r\n][^:\r\n]*\([^\r\n]*)")


def k9_type_field(block: bytes) -> bool:
    """Whether K-9 reads a Content-Type or Content-Transfer-Encoding field in header lines ``block``
    where Dovecot and the stdlib read none: a name with a comment in it, or a first line led by white
    space (or comments nested too deep to read the name)."""
    if not block.startswith((b" ", b"\t")) and b"(" not in block:
        return False
    for line in _COMMENTED_NAMES.findall(block):
        name = _mime4j_name(line)
        if name is None or name in _TYPE_FIELDS:
            return True
    return False


def _mime4j_name(line: bytes) -> str | None:
    """The field name mime4j reads from a header line: what precedes the first colon outside comments,
    the comments dropped, white space around it stripped (lower-cased); None where comments nest too
    deep to read it (``without_comments``)."""
    bare = without_comments(line.decode("latin-1"))
    if bare is None:
        return None
    name, colon, _ = bare.partition(":")
    return name.strip(" \t").lower() if colon and "(" not in name else ""


_COMMENT = re.compile(r"\((?:[^()\\]|\\.)*\)")
# Comments nested deeper than this are not read (no mail nests them so): each level costs a pass over
# the text, and a header line of nested comments would cost passes in proportion to its length.
_MAX_COMMENT_NESTING = 16


def without_comments(text: str) -> str | None:
    """``text`` with its comments dropped, as mime4j's parsers skip them: nested ones, from the innermost
    out (a backslash escapes a character in one; one never closed stays as text); None where they nest
    deeper than ``_MAX_COMMENT_NESTING`` (the caller then takes the text as read otherwise)."""
    for _ in range(_MAX_COMMENT_NESTING + 1):
        if "(" not in text:
            return text
        bare = _COMMENT.sub("", text)
        if bare == text:
            return text
        text = bare
    return None


# Values up to this length are remembered (``_content_type``): longer ones are rare, and would make the
# cache large.
_CACHED_VALUE = 200


def _content_type(name: str, value: str) -> tuple[str, str | None, str | None, bool]:
    """(type/subtype, boundary, charset, whether clients may read the field otherwise: its parameters
    are unreadable, or its first token is another type) as compat32 reads them from a part's first
    Content-Type field."""
    if len(value) > _CACHED_VALUE:
        return _read_content_type(name, value)
    return _cached_content_type(name, value)


# What the stdlib raises on RFC 2231 parameter sections it cannot put together: "name*" beside "name*0"
# (TypeError), a section number too long for int() or a charset name with a NUL (ValueError).
UNREADABLE_PARAMS = (TypeError, ValueError)


def _read_content_type(name: str, value: str) -> tuple[str, str | None, str | None, bool]:
    """See ``_content_type``; the last item also says whether clients may read another type."""
    # The stdlib reads them from the first field of the name alone: a message holding it gives the same.
    headers = Message()
    headers.set_raw(name, value)
    ctype = headers.get_content_type()
    try:
        param = headers.get_param("boundary")
        charset = headers.get_content_charset()
        boundary = collapse_rfc2231_value(param) if param is not None else None
    except UNREADABLE_PARAMS:  # clients read such parameters each in their own way
        return ctype, None, None, True
    # Thunderbird takes the value's first token for the type (up to white space, ";" or a NUL, which
    # ends its C string): "text/html (comment)" or "text/html\0" is HTML to it, not to the stdlib.
    otherwise = _first_token(value.partition("\0")[0]) not in ("", ctype)
    if ctype.startswith("multipart/"):
        otherwise = otherwise or _boundary_read_otherwise(value)
    return ctype, boundary, charset, otherwise


# A quoted string (its content the group), or what an unclosed one runs to.
_QUOTED = re.compile(r'"((?:[^"\\]|\\.)*)"?', re.DOTALL)
_BOUNDARY_PARAM = re.compile(r";[ \t\r\n]*boundary[ \t\r\n]*=[ \t\r\n]*", re.IGNORECASE)
# A boundary value all clients read alike: a quoted string or a token, then the parameter's end.
_PLAIN_BOUNDARY = re.compile(r'(?:""|[^\s;()"\\]+)[ \t\r\n]*(?:;|$)')


def _boundary_read_otherwise(value: str) -> bool:
    """Whether clients may take another boundary from a multipart's Content-Type ``value`` than the
    stdlib (its first "boundary" parameter, comments and white space kept as text). K-9's mime4j
    (FallbackBodyDescriptorBuilder.parseContentType) keeps the last of several "boundary" parameters,
    and its RawFieldParser, like Dovecot, skips comments and joins the words of a value split by white
    space: "boundary=B (c)" is "B" to them and a boundary that never occurs to the stdlib."""
    bare = _QUOTED.sub('""', value)  # quoted strings cannot hide a parameter or a comment
    params = list(_BOUNDARY_PARAM.finditer(bare))
    if "(" in bare or len(params) > 1:
        return True
    return bool(params) and _PLAIN_BOUNDARY.match(bare, params[0].end()) is None


# Most parts of most messages have one of a few Content-Type values ('text/html; charset="utf-8"').
_cached_content_type = functools.lru_cache(maxsize=1024)(_read_content_type)


# Thunderbird (libmime's mime_create) reads a part's type otherwise in two ways that matter: it keeps
# what follows the last "?" of the type ("=?windows-1252?q?text/html" is HTML to it), and it types an
# application/octet-stream part (or one of its unknown type) by its file name ("a.html" is rendered as
# HTML, "a.eml" read as a message). Such parts are ambiguous.
_TYPED_BY_NAME = frozenset({"application/octet-stream", "application/x-unknown-content-type"})
_RENDERED_NAME = re.compile(r"\.(?:s?html?|ehtml|xht(?:ml)?|svgz?|xml|css|eml|mht(?:ml)?)\b", re.IGNORECASE)


def _retyped(value: str, ctype: str, headers: Message) -> bool:
    """Whether Thunderbird may take the part of Content-Type ``value`` for another type than ``ctype``."""
    if "?" in value.split(";", 1)[0]:
        return True
    if ctype not in _TYPED_BY_NAME:
        return False
    try:
        name = filename(headers)
    except UNREADABLE_PARAMS:
        return True
    return name is not None and _RENDERED_NAME.search(name) is not None


def filename(headers: Message) -> str | None:
    """A part's file name as clients read it: its RFC 2231 sections joined (``get_filename``, which
    raises UNREADABLE_PARAMS where it cannot), and RFC 2047 encoded words decoded, as Evolution's
    camel_mime_part_get_filename and Thunderbird decode them ("=?utf-8?q?news.html?=" is "news.html")."""
    name = headers.get_filename()
    if name is None or "=?" not in name:
        return name
    try:
        return str(make_header(decode_header(name)))
    except (MessageError, LookupError, UnicodeError, ValueError):  # (CharsetError: a name not ASCII)
        return name


_TOKEN = re.compile(r"[\t\n\v\f\r ]*([^\t\n\v\f\r ;,(]*)")


def _first_token(value: str) -> str:
    """A field's first token, lower-cased: what Thunderbird reads a Content-Transfer-Encoding as
    ("base64 (x)", "base64; x", "base64,x": MimeHeaders_get stops at white space, ";" and ","), and
    Dovecot too (it skips comments)."""
    m = _TOKEN.match(value)
    assert m is not None  # (everything in it is optional)
    return m.group(1).lower()


# The fields Evolution's camel reads a part's type and transfer encoding from: the first of each name
# (camel-mime-parser.c, header_raw_find), which has no white space before its colon (the name is all
# that precedes it) and may end at a NUL (C strings end there).
_CAMEL_FIELD = re.compile(
    rb"(?im)^(content-type|content-transfer-encoding)(?:\x00[^:\n]*)?:((?:[^\n]|\n[ \t])*)"
)
# A token as camel reads it (camel-mime-utils.c, decode_token): up to white space, a control character
# or a tspecial; bytes above 127 belong to it.
_CAMEL_TOKEN = re.compile(r'[^\x00-\x20\x7f()<>@,;:\\"/\[\]?=]*')
_CAMEL_SPACE = " \t\r\n"
# The encodings camel decodes (camel_transfer_encoding_from_string, camel-data-wrapper.c), and those the
# engine decodes or blanks as uuencoded, by the name they read.
_CAMEL_DECODES = {
    "base64": "base64",
    "quoted-printable": "quoted-printable",
    "x-uuencode": "uu",
    "uuencode": "uu",
}
_DECODES = {
    "base64": "base64",
    "quoted-printable": "quoted-printable",
    **dict.fromkeys(("x-uuencode", "x-uue", "uuencode", "uue", "x-yencode"), "uu"),
}


def _camel_skip(value: str, pos: int) -> int:
    """Past the white space and nested comments at ``pos`` of ``value`` (header_decode_lwsp)."""
    n = len(value)
    while pos < n and (value[pos] in _CAMEL_SPACE or value[pos] == "("):
        if value[pos] != "(":
            pos += 1
            continue
        depth, pos = 1, pos + 1
        while depth and pos < n:
            c = value[pos]
            if c == "\\" and pos + 1 < n:
                pos += 1
            elif c in "()":
                depth += 1 if c == "(" else -1
            pos += 1
    return pos


def _camel_token(value: str, pos: int = 0) -> tuple[str, int]:
    """The token at ``pos`` of ``value`` as camel reads it, white space and comments before it skipped,
    and where it ends."""
    m = _CAMEL_TOKEN.match(value, _camel_skip(value, pos))
    assert m is not None  # (the pattern matches the empty string)
    return m.group(), m.end()


def _camel_param(value: str, pos: int, wanted: str) -> str | None:
    """The parameter ``wanted`` camel reads from the parameters at ``pos`` of a Content-Type ``value``
    (header_decode_param_list: each after a ";", a token or quoted-string value, the list ending at
    anything else; the first of the name), or None; "" where RFC 2231 sections may give it."""
    pos = _camel_skip(value, pos)
    while value.startswith(";", pos):
        name, pos = _camel_token(value, pos + 1)
        pos = _camel_skip(value, pos)
        param = None
        if value.startswith("=", pos):
            start = _camel_skip(value, pos + 1)
            if value.startswith('"', start):
                m = _QUOTED.match(value, start)
                assert m is not None  # (an opening quote is enough)
                param, pos = re.sub(r"\\(.)|\n", r"\1", m.group(1), flags=re.DOTALL), m.end()
            else:
                token, end = _camel_token(value, start)
                if token:
                    param, pos = token, end
        low = name.lower()
        if low.startswith(wanted + "*"):
            return ""
        if low == wanted and param is not None:
            return param
        pos = _camel_skip(value, pos)
    return None


def camel_charset(value: str) -> str | None:
    """The charset Evolution's camel reads from a Content-Type ``value`` (``_camel_param``), or None."""
    _, pos = _camel_token(value)
    pos = _camel_skip(value, pos)
    if value.startswith("/", pos):
        pos = _camel_token(value, pos + 1)[1]
    return _camel_param(value.partition("\0")[0], pos, "charset") or None


def _camel_reading(block: bytes, default_type: str) -> tuple[str, str, str | None]:
    """The type/subtype, transfer encoding and boundary camel reads from a header block (lower-cased;
    "" for no encoding; ``_camel_param``), given the type of a part without one
    (camel_content_type_decode: comments skipped, a type's tokens end at tspecials, "text" alone is
    text/plain)."""
    fields: dict[bytes, str] = {}
    for m in _CAMEL_FIELD.finditer(block):
        fields.setdefault(m.group(1).lower(), m.group(2).decode("latin-1").partition("\0")[0])
    ctype, boundary = default_type, None
    value = fields.get(b"content-type")
    if value is not None:
        kind, pos = _camel_token(value)
        if kind:
            pos = _camel_skip(value, pos)  # the white space and comments before a "/"
            sub = ""
            if value.startswith("/", pos):
                sub, pos = _camel_token(value, pos + 1)
            ctype = f"{kind}/{sub or ('plain' if kind.lower() == 'text' else '')}".lower()
            boundary = _camel_param(value, pos, "boundary")
    return ctype, _camel_token(fields.get(b"content-transfer-encoding", ""))[0].lower(), boundary


# What may follow a delimiter's boundary for mime4j (CharsetUtil.isWhitespace, or the end of the body).
_MIME4J_SPACE = (b"", b" ", b"\t", b"\r", b"\n")
# What C's isspace() takes for white space (Thunderbird strips it from the end of a delimiter line).
_C_SPACE = b" \t\n\v\f\r"
# Up to this many open boundaries, searching for each is faster than searching for "\n--" first.
_FEW_NEEDLES = 4


@dataclass(frozen=True, slots=True)
class _Delimiter:
    line: int  # first byte of the "--boundary" line
    line_end: int  # after its line break: the rest of the line is skipped, as clients do
    level: int  # index of the boundary in the stack of open multiparts
    close: bool  # "--boundary--"


class _Walker:
    """One pass over the message the way Dovecot's parser (lib-mail/message-parser.c) reads it: every
    open multipart's boundary ends a part, and a line is a delimiter when it starts with "--" and a
    boundary; what follows on the line is ignored ("--B1x" is a delimiter of B1, "--B1--x" its close
    delimiter; Thunderbird disagrees, see ``_exact``). When several open boundaries match, the longest
    wins (nested "B" and "BB"); a delimiter of an enclosing multipart ends every part inside it."""

    def __init__(self, raw: bytes) -> None:
        self.raw = raw
        self.count = 0
        # Levels of open multiparts a delimiter line was taken for where Evolution takes it for an inner
        # one's (``delimiter``): their parts are not the same to it.
        self.disputed: set[int] = set()
        # Levels of the open multipart/signed parts, whose boundaries camel's scan does not see.
        self.signed: list[int] = []

    def delimiter(self, pos: int, stack: tuple[bytes, ...], limit: int | None = None) -> _Delimiter | None:
        """The first delimiter line of an open boundary starting at or after ``pos`` (a line start
        counts only after a line break), before ``limit``."""
        raw = self.raw
        if not stack:
            return None
        end = len(raw) if limit is None else limit
        if 0 < pos < end and raw[pos - 1] == 0x0A and self._is_delimiter(pos, stack):
            line = pos
        else:
            line = self._next_line(pos, end, stack) + 1
            if line == 0:
                return None
        best = innermost = -1
        for level, boundary in enumerate(stack):
            if raw.startswith(boundary, line + 2):
                innermost = level
                if best < 0 or len(boundary) >= len(stack[best]):
                    best = level
        if innermost != best:
            # Evolution's camel (camel-mime-parser.c, folder_boundary_check) takes the innermost open
            # boundary that prefixes the line, not the longest: to it "--BB" in a part of boundary "B"
            # inside one of "BB" is a delimiter of "B" ("--BB--" too, no close one), and what follows
            # is a part of the inner multipart, the outer one's epilogue (never parsed) included.
            self.disputed.add(best)
        if self.signed and best >= self.signed[0]:
            # Nor does it see a multipart/signed's boundary (folder_scan_step pushes none for it, and
            # camel-multipart-signed.c parses its body apart): an enclosing boundary that prefixes a line
            # inside it ends the signed part there, its close delimiter included.
            enclosing = [level for level in range(self.signed[0]) if raw.startswith(stack[level], line + 2)]
            if enclosing:
                self.disputed.add(enclosing[-1])
        after = line + 2 + len(stack[best])
        line_end = raw.find(b"\n", line) + 1 or len(raw)
        return _Delimiter(line, line_end, best, raw.startswith(b"--", after))

    def _is_delimiter(self, line: int, stack: tuple[bytes, ...]) -> bool:
        raw = self.raw
        return raw.startswith(b"--", line) and any(raw.startswith(b, line + 2) for b in stack)

    def _next_line(self, pos: int, end: int, stack: tuple[bytes, ...]) -> int:
        """The line break before the first delimiter line of ``stack`` in raw[pos:end], or -1.

        Each boundary is searched for with its line break and dashes: a long needle is found many times
        faster than "\\n--" alone. The search runs over windows that double in size, so that a boundary
        which does not occur for a long while is not looked for past the first delimiter of another one,
        and under many open boundaries a window without any "\\n--" is skipped after one search: the cost
        stays in proportion to the distance covered."""
        raw = self.raw
        needles = {b"\n--" + b for b in stack}
        lo, last, window = pos, end - 3, 1 << 12  # a "\n--" at ``last`` is the last that fits before end
        while lo <= last:
            hi = min(last, lo + window)
            if len(needles) <= _FEW_NEEDLES or raw.find(b"\n--", lo, hi + 3) >= 0:
                # An occurrence starting in [lo, hi]: the needle must end by hi + len(needle).
                hits = [i for n in needles if (i := raw.find(n, lo, hi + len(n))) >= 0]
                if hits:
                    return min(hits)
            lo, window = hi + 1, window * 2
        return -1

    def before(self, d: _Delimiter | None, floor: int) -> int:
        """Where the content before delimiter ``d`` ends: the line break before a delimiter belongs to
        it (RFC 2046 section 5.1.1)."""
        if d is None:
            return len(self.raw)
        end = d.line
        if end > floor and self.raw[end - 1] == 0x0A:
            end -= 2 if end - 1 > floor and self.raw[end - 2] == 0x0D else 1
        return end

    def entity(
        self, start: int, number: str, depth: int, stack: tuple[bytes, ...], default_type: str
    ) -> Part:
        raw = self.raw
        self.count += 1
        hdr_end, body_start = _header_end(raw, start, len(raw))
        # A delimiter line ends a header block that has no blank line before it (the part has no body).
        cut = self.delimiter(start, stack, hdr_end + 1) if stack else None
        if cut is not None:
            hdr_end = body_start = self.before(cut, start)
        headers, field, ambiguous = _parse_headers(raw[start:hdr_end])
        # No blank line within MAX_HEADER_BYTES: not a header block to us, but Evolution's camel limits
        # each field, not the block (CAMEL_MIME_PARSER_MAX_HEADER_SIZE in folder_scan_header), and reads
        # its fields and, after a blank line, its body.
        ambiguous = ambiguous or (cut is None and hdr_end == body_start == start < len(raw))
        if field is None:
            headers.set_default_type(default_type)
            ctype, boundary, charset = default_type, None, None
        else:
            ctype, boundary, charset, unreadable = _content_type(*field)
            ambiguous = ambiguous or unreadable or _retyped(field[1], ctype, headers)
        cte = _first_token(str(headers.get("content-transfer-encoding", ""))) or "7bit"
        # Evolution reads the type and encoding from other bytes than compat32 may (``_camel_reading``);
        # where it reads plain text, it renders nothing.
        theirs, encoding, camel_boundary = _camel_reading(raw[start:hdr_end], default_type)
        ambiguous = ambiguous or theirs not in (ctype, "text/plain")
        # Another boundary is other parts to it (where it reads none, it shows the source as text).
        other_boundary = camel_boundary not in (None, "", boundary)
        if _CAMEL_DECODES.get(encoding) != _DECODES.get(cte):
            if _CAMEL_DECODES.get(encoding) == "uu":
                cte = encoding  # as camel decodes it: only blanking (the engine's reading of it) is safe
            elif _DECODES.get(cte) != "uu":  # (blanked; camel shows its text)
                ambiguous = True
        children: tuple[Part, ...] = ()
        end: int | None = None
        if cut is not None:
            end = body_start
        elif depth >= MAX_DEPTH or self.count >= MAX_PARTS:
            ambiguous = ambiguous or ctype.startswith("multipart/") or ctype == "message/rfc822"
        else:
            if ctype.startswith("multipart/"):
                # Without a boundary, or with an empty one (Dovecot then takes any line starting with
                # "--" for a delimiter), clients do not agree on the parts.
                ambiguous = ambiguous or not boundary
                if boundary is not None:
                    sub = "message/rfc822" if ctype == "multipart/digest" else "text/plain"
                    own = boundary.encode("latin-1", "replace")
                    signed = ctype == "multipart/signed"
                    if signed:
                        self.signed.append(len(stack))
                    children, end, agreed = self.multipart(body_start, own, number, depth, stack, sub)
                    if signed:
                        self.signed.pop()
                    ambiguous = ambiguous or not agreed or self._inside_line(own, body_start, end)
                    if other_boundary and camel_boundary is not None:
                        ambiguous = ambiguous or self._other_lines(camel_boundary, own, body_start, end)
            elif ctype == "message/rfc822":
                if cte in ("7bit", "8bit", "binary"):
                    inner = self.entity(body_start, number, depth + 1, stack, "text/plain")
                    children, end = (inner,), inner.end
                else:  # a client may decode it and show the message; Dovecot parses the encoded bytes
                    ambiguous = True
        if end is None:
            end = self.before(self.delimiter(body_start, stack), body_start)
        return Part(
            number=number,
            start=start,
            body_start=body_start,
            end=end,
            content_type=ctype,
            charset=charset,
            cte=cte,
            headers=headers,
            children=children,
            ambiguous=ambiguous,
        )

    def multipart(
        self,
        body_start: int,
        own: bytes,
        number: str,
        depth: int,
        outer: tuple[bytes, ...],
        default_type: str,
    ) -> tuple[tuple[Part, ...], int, bool]:
        """The children of a multipart whose body starts at ``body_start``, where it ends, and whether
        clients agree on them: they are all there (not cut by the part limit), each delimiter is one
        for Thunderbird too (``_exact``), and Evolution takes none for an inner multipart's."""
        stack = (*outer, own)
        self.disputed.discard(len(outer))
        parts: list[Part] = []
        d = self.delimiter(body_start, stack)  # after the preamble
        agreed = True
        while d is not None and d.level == len(outer) and not d.close and self.count < MAX_PARTS:
            agreed = agreed and self._exact(d, own)
            sub = f"{number}.{len(parts) + 1}" if number else str(len(parts) + 1)
            child = self.entity(d.line_end, sub, depth + 1, stack, default_type)
            parts.append(child)
            d = self.delimiter(child.end, stack)
        if d is not None and d.level == len(outer):
            # The close delimiter, or the part limit: the rest (the epilogue) runs to a delimiter of an
            # enclosing multipart.
            agreed = agreed and d.close and self._exact(d, own)
            end = self.before(self.delimiter(d.line_end, outer), d.line_end)
        else:
            # No close delimiter: an enclosing multipart's delimiter (or the message's end) ends this one.
            end = self.before(d, body_start)
        return tuple(parts), end, agreed and len(outer) not in self.disputed

    def _inside_line(self, boundary: bytes, start: int, end: int) -> bool:
        """Whether "--boundary", then white space, "--" or the end, occurs in raw[start:end] other than
        at a line start: a delimiter K-9 may find where Dovecot finds text. mime4j turns a lone CR into
        a line break (EOLConvertingInputStream), and its MimeBoundaryInputStream.fillBuffer takes a
        boundary at the buffer's read position for one at a line start, and that position is wherever
        the last read chunk ended, mid-line as often as not."""
        raw, needle = self.raw, b"--" + boundary
        at = raw.find(needle, start, end)
        while at >= 0:
            after = raw[at + len(needle) : at + len(needle) + 2]
            if at > start and raw[at - 1] != 0x0A and (after[:1] in _MIME4J_SPACE or after == b"--"):
                return True
            at = raw.find(needle, at + 1, end)
        return False

    def _other_lines(self, theirs: str, own: bytes, start: int, end: int) -> bool:
        """Whether camel, reading boundary ``theirs`` where we read ``own``, finds a delimiter line in
        raw[start:end] that is none of ``own`` (when ``theirs`` is a prefix of ``own``, the usual case of
        an unquoted value cut at a tspecial, only such lines make the readings differ)."""
        needle = b"--" + theirs.encode("latin-1", "replace")
        if not own.startswith(needle[2:]):
            return True
        raw, pos = self.raw, start
        while (pos := raw.find(needle, pos, end)) >= 0:
            if (pos == start or raw[pos - 1] == 0x0A) and not raw.startswith(b"--" + own, pos):
                return True
            pos += 1
        return False

    def _exact(self, d: _Delimiter, boundary: bytes) -> bool:
        """Whether Thunderbird takes delimiter line ``d`` for one too. Its libmime (mimemult.cpp,
        MimeMultipart_check_boundary) wants the whole line, trailing white space aside, to be
        "--boundary" or "--boundary--", where Dovecot and this parser take a prefix: past a line like
        "--B1x" Thunderbird reads on in the part before it, headers of the next one included, and would
        render what we take for another part (a text/plain one, say) as the HTML it follows."""
        line = self.raw[d.line : d.line_end].rstrip(_C_SPACE)
        return line[2:].removesuffix(b"--" if d.close else b"") == boundary


def parse(raw: bytes) -> Part:
    """The part tree of a whole message. The root's number is ""; a single-part root's body is part 1."""
    return _Walker(raw).entity(0, "", 0, (), "text/plain")


def body_number(part: Part) -> str:
    """The IMAP section number that addresses this part's body ("1" for a single-part message's root)."""
    return part.number or "1"
