"""Events of the sans-IO IMAP readers (bytes in, events out). Frozen, slotted, keyword-only; no I/O.

Client side: a command arrives as one or more ``CommandLine`` events (a line that ends in a literal
announcement is followed by ``LiteralData`` events for exactly that many octets, then the next line
of the same command). Literal bytes are never buffered whole: APPEND of a 50 MB message streams
through.

Server side: a response is normally one ``Response`` holding every byte of it, literals included,
so the FETCH rewriter can see a whole message. A response with a literal above the reader's
buffering limit is streamed instead as ``ResponseChunk`` events, the last one with ``last=True``;
those pass unmodified.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class _NeedData(Enum):
    NEED_DATA = "NEED_DATA"

    def __repr__(self) -> str:
        return "NEED_DATA"


NEED_DATA = _NeedData.NEED_DATA  # sentinel: feed more bytes before the next event


@dataclass(frozen=True, slots=True, kw_only=True)
class CommandLine:
    """One line of a client command, CRLF included.

    ``first`` is true for the line carrying the tag; ``literal`` is the size announced at its end
    (``{n}``, ``{n+}``, ``~{n}``) or None; ``sync`` is true when the client waits for ``+`` first.
    """

    data: bytes
    first: bool
    literal: int | None = None
    sync: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class LiteralData:
    """Octets of a client literal (a slice of it; ``last`` marks the final slice)."""

    data: bytes
    last: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class Response:
    """A complete server response, literals included. ``kind`` is "*", "+" or "tagged"."""

    data: bytes
    kind: str
    tag: bytes = b""


@dataclass(frozen=True, slots=True, kw_only=True)
class ResponseChunk:
    """Part of a response too large to buffer; ``first`` and ``last`` mark its ends."""

    data: bytes
    first: bool
    last: bool


ClientEvent = CommandLine | LiteralData
ServerEvent = Response | ResponseChunk
