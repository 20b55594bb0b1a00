"""Sans-IO IMAP framing and tokenizing, for both directions. No sockets, no asyncio.

Theory of operation
-------------------
IMAP is line based, except that a string may be sent as a *literal*: ``{n}`` (or ``{n+}``,
``~{n}``) at the end of a line announces ``n`` raw octets that follow the line break, after which
the line continues. A reader that looks for line breaks inside a literal desynchronizes, so both
readers here count octets.

Rules the readers keep:

1. A client line is released as soon as its line break arrives. A synchronizing literal makes the
   client wait for the server's ``+`` before it sends the octets, so holding a command back until
   it is "complete" would deadlock (imap.md H1).
2. Client literal octets stream through in whatever slices they arrive; they are never parsed as
   commands.
3. A server response is buffered whole (the FETCH rewriter needs a whole message) unless one of its
   literals is larger than ``max_literal``; then the rest of that response streams as chunks.
4. Lines are capped at ``max_line`` so a peer that never sends a line break cannot exhaust memory.

The tokenizer (``scan_value`` and friends) walks one buffered response and returns offsets; it never
copies a literal. Parsing failures raise ``ParseError``; callers pass such a response on unmodified.
"""

from __future__ import annotations

import re
from collections import deque

from mailproxy.imap._errors import RemoteProtocolError
from mailproxy.imap._events import (
    NEED_DATA,
    CommandLine,
    LiteralData,
    Response,
    ResponseChunk,
    _NeedData,
)

DEFAULT_MAX_LINE = 1 << 20  # 1 MiB: a UID set of a large mailbox still fits
DEFAULT_MAX_LITERAL = 64 << 20  # 64 MiB: larger server literals stream through unbuffered

# A literal announcement at the end of a line. Searched in the last bytes of the line only, so the
# cost is constant however long the line is. Up to 20 digits: anything longer is nonsense and fails
# the cap below.
_LITERAL_TAIL = re.compile(rb"~?\{([0-9]{1,20})(\+?)\}\r?\n\Z")
_TAIL_WINDOW = 32
# The largest literal size accepted at all (4 GiB, IMAP's number limit); larger means a broken peer.
_MAX_NUMBER = (1 << 32) - 1


class ParseError(ValueError):
    """A response or command does not have the expected grammar; the caller leaves it as it is."""


def literal_at_end(line: bytes | bytearray, start: int = 0) -> tuple[int, bool] | None:
    """(size, synchronizing) when ``line[start:]`` ends with a literal announcement, else None."""
    m = _LITERAL_TAIL.search(line, max(start, len(line) - _TAIL_WINDOW))
    if m is None:
        return None
    return int(m.group(1)), not m.group(2)


def _cut(buf: bytearray, n: int) -> bytes:
    """The first ``n`` octets of ``buf``, removed from it (copied once, not twice as
    ``bytes(buf[:n])`` does)."""
    with memoryview(buf) as view:
        data = bytes(view[:n])
    del buf[:n]
    return data


class ClientReader:
    """Frames the client-to-server byte stream into ``CommandLine`` and ``LiteralData`` events."""

    def __init__(self, *, max_line: int = DEFAULT_MAX_LINE) -> None:
        self._buf = bytearray()
        self._max_line = max_line
        self._literal_left = 0
        self._in_command = False  # the next line continues a command (it follows a literal)

    def receive_data(self, data: bytes) -> None:
        self._buf += data

    def discard_buffer(self) -> None:
        """Drop everything received but not yet framed: plaintext pipelined after STARTTLS (H12)."""
        self._buf.clear()
        self._literal_left = 0
        self._in_command = False

    def cancel_literal(self) -> None:
        """The command announcing a synchronizing literal was refused: the client will not send
        it."""
        self._literal_left = 0
        self._in_command = False

    @property
    def buffered(self) -> int:
        return len(self._buf)

    def next_event(self) -> CommandLine | LiteralData | _NeedData:
        buf = self._buf
        if self._literal_left:
            if not buf:
                return NEED_DATA
            take = min(len(buf), self._literal_left)
            data = _cut(buf, take)
            self._literal_left -= take
            return LiteralData(data=data, last=self._literal_left == 0)
        i = buf.find(b"\n")
        if i < 0:
            if len(buf) > self._max_line:
                raise RemoteProtocolError("client", f"line longer than {self._max_line} octets")
            return NEED_DATA
        if i >= self._max_line:
            raise RemoteProtocolError("client", f"line longer than {self._max_line} octets")
        line = _cut(buf, i + 1)
        first = not self._in_command
        lit = literal_at_end(line)
        if lit is None:
            self._in_command = False
            return CommandLine(data=line, first=first)
        size, sync = lit
        if size > _MAX_NUMBER:
            raise RemoteProtocolError("client", "literal size out of range")
        self._literal_left = size
        self._in_command = True
        return CommandLine(data=line, first=first, literal=size, sync=sync)


class ServerReader:
    """Frames the server-to-client byte stream into ``Response`` (or ``ResponseChunk``) events.

    Received chunks are kept as they came and framed in place: a response is copied once, when its
    pieces (lines as slices, literal octets as views of the received chunks) are joined, and not
    at all when it is exactly one received chunk. Nothing is appended to a growing buffer.
    """

    def __init__(
        self, *, max_line: int = 16 * DEFAULT_MAX_LINE, max_literal: int = DEFAULT_MAX_LITERAL
    ) -> None:
        self._max_line = max_line
        self._max_literal = max_literal
        self._chunks: deque[bytes] = deque()  # received, not framed yet; the first from _pos on
        self._pos = 0
        self._buffered = 0  # octets received and not handed out yet
        self._parts: list[bytes | memoryview] = []  # framed pieces of the current response
        self._line: list[bytes] = []  # the start of a line whose line break has not come yet
        self._line_len = 0
        self._line_tail = b""  # its last _TAIL_WINDOW octets, for the literal announcement
        self._literal_left = 0
        self._streaming = False
        self._sent_first = False

    def receive_data(self, data: bytes) -> None:
        if data:
            self._chunks.append(bytes(data))
            self._buffered += len(data)

    @property
    def buffered(self) -> int:
        return self._buffered

    def _take(self) -> bytes:
        parts, self._parts = self._parts, []
        data = b"".join(parts)
        self._buffered -= len(data)
        return data

    def _chunk(self, *, last: bool) -> ResponseChunk:
        chunk = ResponseChunk(data=self._take(), first=not self._sent_first, last=last)
        self._sent_first = not last
        if last:
            self._streaming = False
        return chunk

    def next_event(self) -> Response | ResponseChunk | _NeedData:
        chunks = self._chunks
        while True:
            if not chunks:
                if self._streaming and self._parts:
                    # Everything framed so far can go; a line still open may yet announce a
                    # literal, so it stays until its line break.
                    return self._chunk(last=False)
                return NEED_DATA
            data, pos = chunks[0], self._pos
            size = len(data)
            if self._literal_left:
                take = min(size - pos, self._literal_left)
                self._parts.append(data if take == size else memoryview(data)[pos : pos + take])
                self._literal_left -= take
                self._advance(pos + take, size)
                continue
            i = data.find(b"\n", pos)
            if i < 0:
                piece = data[pos:]
                self._line.append(piece)
                self._line_len += len(piece)
                self._line_tail = (self._line_tail + piece[-_TAIL_WINDOW:])[-_TAIL_WINDOW:]
                if self._line_len > self._max_line:
                    raise RemoteProtocolError("server", f"line longer than {self._max_line} octets")
                self._advance(size, size)
                continue
            last_line = self._end_line(data, pos, i + 1)
            self._advance(i + 1, size)
            if last_line:
                return self._chunk(last=True) if self._streaming else _response(self._take())
            if self._literal_left > self._max_literal and not self._streaming:
                self._streaming = True
                return self._chunk(last=False)

    def _advance(self, pos: int, size: int) -> None:
        if pos >= size:
            self._chunks.popleft()
            self._pos = 0
        else:
            self._pos = pos

    def _end_line(self, data: bytes, pos: int, end: int) -> bool:
        """Frame the line ending at ``data[end - 1]``; True when the response ends with it."""
        length = self._line_len + end - pos
        if length > self._max_line:
            raise RemoteProtocolError("server", f"line longer than {self._max_line} octets")
        tail = data[max(pos, end - _TAIL_WINDOW) : end]
        if self._line:
            tail = (self._line_tail + tail)[-_TAIL_WINDOW:]
            self._parts += self._line
            self._line = []
            self._line_len = 0
            self._line_tail = b""
        self._parts.append(data if pos == 0 and end == len(data) else data[pos:end])
        lit = literal_at_end(tail)
        if lit is None:
            return True
        if lit[0] > _MAX_NUMBER:
            raise RemoteProtocolError("server", "literal size out of range")
        self._literal_left = lit[0]
        return False


def _response(data: bytes) -> Response:
    if data.startswith(b"* "):
        return Response(data=data, kind="*")
    if data.startswith(b"+"):
        return Response(data=data, kind="+")
    sp = data.find(b" ")
    tag = data[:sp] if sp > 0 else data.rstrip(b"\r\n")
    return Response(data=data, kind="tagged", tag=tag)


# -- tokenizing ----------------------------------------------------------------------------------

# An atom as it appears in responses, minus "[": a section spec after an item name is scanned apart.
_ATOM = re.compile(rb"[^\x00-\x20()\{\"\\\[\]%*\x7f]+")
_SPECIAL = re.compile(rb'[()"{\\]')
_QUOTED_END = re.compile(rb'(?:[^"\\\r\n]|\\.)*"', re.DOTALL)
_LITERAL_HEAD = re.compile(rb"~?\{([0-9]{1,20})\+?\}\r\n")


def scan_quoted(data: bytes, pos: int) -> int:
    """End offset of the quoted string starting at ``data[pos] == '"'``."""
    m = _QUOTED_END.match(data, pos + 1)
    if m is None:
        raise ParseError("unterminated quoted string")
    return m.end()


def scan_literal(data: bytes, pos: int) -> tuple[int, int]:
    """(content start, content end) of the literal announced at ``pos`` (``{n}`` or ``~{n}``)."""
    m = _LITERAL_HEAD.match(data, pos)
    if m is None:
        raise ParseError("bad literal")
    start = m.end()
    end = start + int(m.group(1))
    if end > len(data):
        raise ParseError("literal runs past the response")
    return start, end


def scan_value(data: bytes, pos: int) -> int:
    """End offset of one value (atom, number, NIL, quoted, literal, parenthesized list) at
    ``pos``."""
    c = data[pos : pos + 1]
    if c == b'"':
        return scan_quoted(data, pos)
    if c in (b"{", b"~"):
        return scan_literal(data, pos)[1]
    if c == b"(":
        return scan_list(data, pos)
    m = _ATOM.match(data, pos)
    if m is None:
        raise ParseError(f"unexpected {c!r}")
    end = m.end()
    # Section specs ("BODY[HEADER.FIELDS (A B)]") and partials ("<0>") belong to the atom.
    if data[end : end + 1] == b"[":
        close = data.find(b"]", end)
        if close < 0:
            raise ParseError("unterminated section")
        end = close + 1
        m2 = _ATOM.match(data, end)
        if m2 is not None:
            end = m2.end()
    return end


def scan_list(data: bytes, pos: int) -> int:
    """End offset of the parenthesized list starting at ``data[pos] == '('`` (nested, any
    content)."""
    depth = 0
    i = pos
    n = len(data)
    while i < n:
        m = _SPECIAL.search(data, i)
        if m is None:
            break
        i = m.start()
        c = data[i]
        if c == 0x28:  # (
            depth += 1
            i += 1
        elif c == 0x29:  # )
            depth -= 1
            i += 1
            if depth == 0:
                return i
        elif c == 0x22:  # "
            i = scan_quoted(data, i)
        elif c == 0x7B:  # {
            start = i - 1 if i > pos and data[i - 1] == 0x7E else i  # literal8 "~{"
            i = scan_literal(data, start)[1]
        else:  # a backslash outside a quoted string: a flag such as \Seen
            i += 1
    raise ParseError("unterminated list")


def split_command(line: bytes) -> tuple[bytes, bytes, bytes]:
    """(tag, upper-case command name, rest after the name) of a command's first line.

    ``UID FETCH`` and the other UID commands come back with the name ``UID FETCH``. A line without
    a tag and a name gives empty strings rather than an error: the server answers it with BAD.
    """
    body = line.rstrip(b"\r\n")
    parts = body.split(b" ", 2)
    if len(parts) < 2:
        return (parts[0] if parts else b""), b"", b""
    tag, name = parts[0], parts[1].upper()
    rest = parts[2] if len(parts) > 2 else b""
    if name == b"UID" and rest:
        sub, _, rest = rest.partition(b" ")
        name = b"UID " + sub.upper()
    return tag, name, rest


def first_astring(data: bytes) -> tuple[bytes | None, int]:
    """The first astring of ``data`` (atom or quoted, unescaped) and where it ends; None for a
    literal."""
    if data.startswith(b'"'):
        end = scan_quoted(data, 0)
        return re.sub(rb"\\(.)", rb"\1", data[1 : end - 1]), end
    if data.startswith((b"{", b"~{")):
        return None, 0
    sp = data.find(b" ")
    end = len(data) if sp < 0 else sp
    return data[:end], end


# -- capabilities --------------------------------------------------------------------------------

# Removed from every capability list, with the reason:
#   COMPRESS=*       the stream turns into deflate: the proxy could not see FETCH responses (H11)
#   NOTIFY           pushes FETCH responses with body sections no command asked for (H7)
#   URLAUTH(=*)      URLFETCH returns message bodies outside FETCH
#   CONVERT          CONVERT returns converted bodies outside FETCH
#   STARTTLS         the proxy terminates TLS itself and adds its own STARTTLS if it offers one
#   *-REFERRALS      a referral sends the client straight to the server, around the filter
_DROP_EXACT = frozenset(
    {b"NOTIFY", b"URLAUTH", b"CONVERT", b"STARTTLS", b"LOGIN-REFERRALS", b"MAILBOX-REFERRALS"}
)
_DROP_PREFIX = (b"COMPRESS=", b"URLAUTH=")
# Commands the proxy answers NO to itself, because it removed the capability that allows them.
REFUSED_COMMANDS = frozenset({b"COMPRESS", b"NOTIFY", b"URLFETCH", b"CONVERT", b"RESETKEY", b"GENURLAUTH"})

_CAPA_CODE = re.compile(rb"\[CAPABILITY ([^\]\r\n]*)\]", re.IGNORECASE)
_CAPA_UNTAGGED = re.compile(rb"\* CAPABILITY ([^\r\n]*)", re.IGNORECASE)


def filter_capability_list(
    caps: list[bytes], *, add_starttls: bool = False, login_disabled: bool = False
) -> list[bytes]:
    out: list[bytes] = []
    for cap in caps:
        up = cap.upper()
        if up in _DROP_EXACT or up.startswith(_DROP_PREFIX):
            continue
        if login_disabled and up.startswith(b"AUTH="):
            continue
        out.append(cap)
    if add_starttls:
        out.append(b"STARTTLS")
    if login_disabled and b"LOGINDISABLED" not in (c.upper() for c in out):
        out.append(b"LOGINDISABLED")
    return out


def has_capabilities(data: bytes) -> bool:
    head = data[:4096]
    return b"CAPABILITY" in head.upper()


def filter_capabilities(data: bytes, *, add_starttls: bool = False, login_disabled: bool = False) -> bytes:
    """``data`` (one response) with its capability list(s) filtered; other bytes unchanged."""

    def fix(m: re.Match[bytes]) -> bytes:
        caps = filter_capability_list(
            m.group(1).split(), add_starttls=add_starttls, login_disabled=login_disabled
        )
        return m.group(0)[: m.start(1) - m.start(0)] + b" ".join(caps) + m.group(0)[m.end(1) - m.start(0) :]

    line_end = data.find(b"\n") + 1 or len(data)
    first, rest = data[:line_end], data[line_end:]
    first = _CAPA_CODE.sub(fix, first, count=1)
    if first[:13].upper() == b"* CAPABILITY ":
        first = _CAPA_UNTAGGED.sub(fix, first, count=1)
    return first + rest


def strip_capability_code(data: bytes) -> bytes:
    """A greeting without its ``[CAPABILITY ...]`` code (stale after an upstream STARTTLS)."""
    return _CAPA_CODE.sub(b"", data, count=1).replace(b"OK  ", b"OK ", 1)
