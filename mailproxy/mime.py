"""The MIME structure of a raw message, as byte offsets into it.

The stdlib ``email`` package parses into objects and loses where each part sits in the original bytes, but
the rewriter must edit those bytes in place. This module finds the parts (RFC 2046 boundaries, nested
multiparts, message/rfc822 attachments) and leaves header parsing to ``email.parser``, one header block at a
time, which is lenient in the ways real mail needs.

What matters is to find the parts the reader's client finds: a part we take for text/plain that a client
renders as HTML would reach the reader unfiltered. So boundaries are matched as Dovecot (which IMAP clients
see through BODYSTRUCTURE and BODY[n]) and Thunderbird match them, as prefixes of a line, and header lines
those clients skip (no colon, white space before the colon) are skipped instead of ending the header block
as they do for the stdlib. A part whose type or encoding clients may read differently is marked
``ambiguous``, for the engine to neutralize.

Part numbers follow IMAP (RFC 3501 section 6.4.5): the children of a multipart are 1, 2, ...; a
message/rfc822 part N holds its message's parts as N.1, N.2 (or N.1 alone when that message is not
multipart); a single-part message's body is part 1.

Malformed input never raises: a missing close delimiter ends the multipart at its parent's end, a part
without a blank line is all header, and a boundary parameter that never occurs makes the multipart one
opaque body. Depth and part count are bounded so hostile nesting cannot exhaust memory or the stack.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.message import Message
from email.parser import BytesHeaderParser
from email.policy import compat32
from email.utils import collapse_rfc2231_value

MAX_DEPTH = 40
MAX_PARTS = 2000
# A header block larger than this is not a header block: treat the rest as body so scanning stays bounded.
MAX_HEADER_BYTES = 1 << 20

_HEADER_END = re.compile(rb"\r?\n\r?\n")
_parser = BytesHeaderParser(policy=compat32)


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


# A field name the stdlib parser accepts (it ends the header block at any other line); a client
# ignores a line without a colon, or with another name, and reads the fields after it.
_NAME = re.compile(rb"[\x21-\x39\x3b-\x7e]+")
_LF = re.compile(rb"\r?\n")
_ANY_BREAK = re.compile(rb"\r\n|\r|\n")
_LONE_CR = re.compile(rb"\r(?!\n)")


def _fields(lines: list[bytes]) -> bytes:
    """The header lines as "name:value" fields only, as a client reads them: a name may have white space
    before its colon; a field without a colon or a usable name is dropped, continuation lines and all."""
    out: list[bytes] = []
    keep = False
    for line in lines:
        if line[:1] in (b" ", b"\t"):
            if keep:
                out.append(line)
            continue
        name, colon, value = line.partition(b":")
        name = name.rstrip(b" \t")
        keep = bool(colon) and _NAME.fullmatch(name) is not None
        if keep:
            out.append(name + b":" + value)
    return b"\n".join(out) + b"\n"


def _key(headers: Message) -> tuple[object, ...]:
    return (
        headers.get_content_type(),
        headers.get_param("boundary"),
        str(headers.get("content-transfer-encoding", "")).strip().lower(),
    )


def _parse_headers(block: bytes) -> tuple[Message, bool]:
    """The fields of a header block as Dovecot reads them (lines end at LF), and whether a client could
    read its type or encoding otherwise: Thunderbird also ends a line at a lone CR, and a second
    Content-Type or Content-Transfer-Encoding field with another value is not read alike by all."""
    lone_cr = b"\r" in block and _LONE_CR.search(block) is not None
    lines = _LF.split(block)
    headers = _parser.parsebytes(_fields([_LONE_CR.sub(b" ", x) for x in lines] if lone_cr else lines))
    ambiguous = any(
        len({str(v).split(";")[0].strip().lower() for v in headers.get_all(name, [])}) > 1
        for name in ("content-type", "content-transfer-encoding")
    )
    if lone_cr and not ambiguous:
        other = _parser.parsebytes(_fields(_ANY_BREAK.split(block)))
        ambiguous = _key(other) != _key(headers)
    return headers, ambiguous


@dataclass(frozen=True, slots=True)
class _Delimiter:
    line: int  # first byte of the "--boundary" line
    line_end: int  # after its line break: the rest of the line is skipped, as clients do
    level: int  # index of the boundary in the stack of open multiparts
    close: bool  # "--boundary--"


class _Walker:
    """One pass over the message the way Dovecot's parser (lib-mail/message-parser.c) and Thunderbird's
    libmime read it: every open multipart's boundary ends a part, and a line is a delimiter when it
    starts with "--" and a boundary; what follows on the line is ignored ("--B1x" is a delimiter of B1,
    "--B1--x" its close delimiter). When several open boundaries match, the longest wins (nested "B"
    and "BB"); a delimiter of an enclosing multipart ends every part inside it."""

    def __init__(self, raw: bytes) -> None:
        self.raw = raw
        self.count = 0

    def delimiter(self, pos: int, stack: tuple[bytes, ...], limit: int | None = None) -> _Delimiter | None:
        """The first delimiter line of an open boundary starting at or after ``pos`` (a line start
        counts only after a line break), before ``limit``."""
        raw = self.raw
        if not stack:
            return None
        end = len(raw) if limit is None else limit
        line = pos if pos > 0 and raw[pos - 1] == 0x0A else raw.find(b"\n--", pos, end) + 1
        while 0 < line < end:
            if raw.startswith(b"--", line):
                best = -1
                for level, boundary in enumerate(stack):
                    if raw.startswith(boundary, line + 2) and (best < 0 or len(boundary) >= len(stack[best])):
                        best = level
                if best >= 0:
                    after = line + 2 + len(stack[best])
                    line_end = raw.find(b"\n", line) + 1 or len(raw)
                    return _Delimiter(line, line_end, best, raw.startswith(b"--", after))
            line = raw.find(b"\n--", line, end) + 1
        return None

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
        headers, ambiguous = _parse_headers(raw[start:hdr_end])
        if headers.get("content-type") is None:
            headers.set_default_type(default_type)
        ctype = headers.get_content_type()
        cte = str(headers.get("content-transfer-encoding", "7bit")).strip().lower() or "7bit"
        children: tuple[Part, ...] = ()
        end: int | None = None
        if cut is not None:
            end = body_start
        elif depth >= MAX_DEPTH or self.count >= MAX_PARTS:
            ambiguous = ambiguous or ctype.startswith("multipart/") or ctype == "message/rfc822"
        else:
            if ctype.startswith("multipart/"):
                param = headers.get_param("boundary")
                boundary = collapse_rfc2231_value(param) if param is not None else None
                # Without a boundary, or with an empty one (Dovecot then takes any line starting with
                # "--" for a delimiter), clients do not agree on the parts.
                ambiguous = ambiguous or not boundary
                if boundary is not None:
                    sub = "message/rfc822" if ctype == "multipart/digest" else "text/plain"
                    own = boundary.encode("latin-1", "replace")
                    children, end, complete = self.multipart(body_start, own, number, depth, stack, sub)
                    ambiguous = ambiguous or not complete
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
            charset=headers.get_content_charset(),
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
        they are all there (not cut by the part limit)."""
        stack = (*outer, own)
        parts: list[Part] = []
        d = self.delimiter(body_start, stack)  # after the preamble
        while d is not None and d.level == len(outer) and not d.close and self.count < MAX_PARTS:
            sub = f"{number}.{len(parts) + 1}" if number else str(len(parts) + 1)
            child = self.entity(d.line_end, sub, depth + 1, stack, default_type)
            parts.append(child)
            d = self.delimiter(child.end, stack)
        if d is not None and d.level == len(outer):
            # The close delimiter, or the part limit: the rest (the epilogue) runs to a delimiter of an
            # enclosing multipart.
            return tuple(parts), self.before(self.delimiter(d.line_end, outer), d.line_end), d.close
        # No close delimiter: an enclosing multipart's delimiter (or the message's end) ends this one.
        return tuple(parts), self.before(d, body_start), True


def parse(raw: bytes) -> Part:
    """The part tree of a whole message. The root's number is ""; a single-part root's body is part 1."""
    return _Walker(raw).entity(0, "", 0, (), "text/plain")


def body_number(part: Part) -> str:
    """The IMAP section number that addresses this part's body ("1" for a single-part message's root)."""
    return part.number or "1"
