"""The MIME structure of a raw message, as byte offsets into it.

The stdlib ``email`` package parses into objects and loses where each part sits in the original bytes, but
the rewriter must edit those bytes in place. This module finds the parts (RFC 2046 boundaries, nested
multiparts, message/rfc822 attachments) and leaves header parsing to ``email.parser``, one header block at a
time, which is lenient in the ways real mail needs.

Part numbers follow IMAP (RFC 3501 section 6.4.5): the children of a multipart are 1, 2, ...; a
message/rfc822 part N holds its message's parts as N.1, N.2 (or N.1 alone when that message is not
multipart); a single-part message's body is part 1.

Malformed input never raises: a missing close delimiter ends the multipart at its parent's end, a part
without a blank line is all header, and a boundary parameter that never occurs makes the multipart one
opaque body. Depth and part count are bounded so hostile nesting cannot exhaust memory or the stack.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import Message
from email.parser import BytesHeaderParser
from email.policy import compat32

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


class _Walker:
    def __init__(self, raw: bytes) -> None:
        self.raw = raw
        self.count = 0

    def entity(self, start: int, end: int, number: str, depth: int, default_type: str = "text/plain") -> Part:
        raw = self.raw
        self.count += 1
        hdr_end, body_start = _header_end(raw, start, end)
        headers = _parser.parsebytes(raw[start:hdr_end])
        if headers.get("content-type") is None:
            headers.set_default_type(default_type)
        ctype = headers.get_content_type()
        charset = headers.get_content_charset()
        cte = str(headers.get("content-transfer-encoding", "7bit")).strip().lower() or "7bit"
        children: tuple[Part, ...] = ()
        if depth < MAX_DEPTH and self.count < MAX_PARTS:
            if ctype.startswith("multipart/"):
                boundary = headers.get_param("boundary")
                if isinstance(boundary, str) and boundary:
                    sub = ctype == "multipart/digest"
                    children = self.multipart(
                        body_start, end, boundary, number, depth, "message/rfc822" if sub else "text/plain"
                    )
            elif ctype == "message/rfc822" and cte in ("7bit", "8bit", "binary"):
                inner = self.entity(body_start, end, number, depth + 1)
                children = (inner,)
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
        )

    def multipart(
        self, start: int, end: int, boundary: str, number: str, depth: int, default_type: str
    ) -> tuple[Part, ...]:
        raw = self.raw
        marker = b"--" + boundary.encode("latin-1", "replace")
        parts: list[Part] = []
        part_start: int | None = None
        for delim_start, delim_end, is_close in _delimiters(raw, start, end, marker):
            # The line break before a delimiter belongs to the delimiter (RFC 2046 section 5.1.1).
            line_start = delim_start
            if line_start > start and raw[line_start - 1 : line_start] == b"\n":
                line_start -= 2 if raw[line_start - 2 : line_start] == b"\r\n" else 1
            if part_start is not None:
                parts.append(
                    self.child(
                        part_start, max(part_start, line_start), number, len(parts), depth, default_type
                    )
                )
            if is_close:
                part_start = None
                break
            part_start = delim_end
            if self.count >= MAX_PARTS:
                break
        if part_start is not None:  # missing close delimiter: the last part runs to the end
            parts.append(self.child(part_start, end, number, len(parts), depth, default_type))
        return tuple(parts)

    def child(self, start: int, end: int, number: str, index: int, depth: int, default_type: str) -> Part:
        sub = f"{number}.{index + 1}" if number else str(index + 1)
        return self.entity(start, end, sub, depth + 1, default_type)


_DELIMITER_TAIL = re.compile(rb"(--)?[ \t]*(?:\r?\n|$)")


def _delimiters(raw: bytes, start: int, end: int, marker: bytes) -> Iterator[tuple[int, int, bool]]:
    """(start, end, is_close) of each delimiter line: "--boundary" at the start of a line, "--" after it
    for the close delimiter, then transport padding. A plain find() for the marker is much faster than a
    multi-line regex over a large body."""
    pos = raw.find(marker, start, end)
    while pos >= 0:
        if pos == start or raw[pos - 1] == 0x0A:
            m = _DELIMITER_TAIL.match(raw, pos + len(marker), end)
            if m is not None:
                yield pos, m.end(), m.group(1) is not None
        pos = raw.find(marker, pos + 1, end)


def parse(raw: bytes) -> Part:
    """The part tree of a whole message. The root's number is ""; a single-part root's body is part 1."""
    return _Walker(raw).entity(0, len(raw), "", 0)


def body_number(part: Part) -> str:
    """The IMAP section number that addresses this part's body ("1" for a single-part message's root)."""
    return part.number or "1"
