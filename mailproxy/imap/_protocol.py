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
            data = bytes(buf[:take])
            del buf[:take]
            self._literal_left -= take
            return LiteralData(data=data, last=self._literal_left == 0)
        i = buf.find(b"\n")
        if i < 0:
            if len(buf) > self._max_line:
                raise RemoteProtocolError("client", f"line longer than {self._max_line} octets")
            return NEED_DATA
        if i >= self._max_line:
            raise RemoteProtocolError("client", f"line longer than {self._max_line} octets")
        line = bytes(buf[: i + 1])
        del buf[: i + 1]
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
    """Frames the server-to-client byte stream into ``Response`` (or ``ResponseChunk``) events."""

    def __init__(
        self, *, max_line: int = 16 * DEFAULT_MAX_LINE, max_literal: int = DEFAULT_MAX_LITERAL
    ) -> None:
        self._buf = bytearray()
        self._max_line = max_line
        self._max_literal = max_literal
        self._scan = 0  # bytes of the current response already framed (all in _buf[:_scan])
        self._line_start = 0  # where the current line starts
        self._literal_left = 0
        self._streaming = False
        self._sent_first = False

    def receive_data(self, data: bytes) -> None:
        self._buf += data

    @property
    def buffered(self) -> int:
        return len(self._buf)

    def _chunk(self, *, last: bool, upto: int) -> ResponseChunk:
        data = bytes(self._buf[:upto])
        del self._buf[:upto]
        self._scan -= upto
        self._line_start = max(0, self._line_start - upto)
        chunk = ResponseChunk(data=data, first=not self._sent_first, last=last)
        self._sent_first = not last
        if last:
            self._streaming = False
        return chunk

    def next_event(self) -> Response | ResponseChunk | _NeedData:
        buf = self._buf
        while True:
            if self._literal_left:
                avail = len(buf) - self._scan
                take = min(avail, self._literal_left)
                self._scan += take
                self._literal_left -= take
                if self._literal_left:
                    if self._streaming and self._scan:
                        return self._chunk(last=False, upto=self._scan)
                    return NEED_DATA
                self._line_start = self._scan
            i = buf.find(b"\n", self._scan)
            if i < 0:
                if len(buf) - self._line_start > self._max_line:
                    raise RemoteProtocolError("server", f"line longer than {self._max_line} octets")
                if self._streaming and self._line_start:
                    # Complete lines before the current one can go; the current one may still
                    # announce a literal, so it stays until its line break.
                    return self._chunk(last=False, upto=self._line_start)
                return NEED_DATA
            if i + 1 - self._line_start > self._max_line:
                raise RemoteProtocolError("server", f"line longer than {self._max_line} octets")
            end = i + 1
            lit = literal_at_end(buf[max(self._line_start, end - _TAIL_WINDOW) : end])
            self._scan = end
            if lit is not None:
                size = lit[0]
                if size > _MAX_NUMBER:
                    raise RemoteProtocolError("server", "literal size out of range")
                self._literal_left = size
                self._line_start = end
                if size > self._max_literal and not self._streaming:
                    self._streaming = True
                    return self._chunk(last=False, upto=end)
                continue
            # The response ends with this line.
            self._line_start = 0
            if self._streaming:
                return self._chunk(last=True, upto=end)
            data = bytes(buf[:end])
            del buf[:end]
            self._scan = 0
            return _response(data)


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
REFUSED_COMMANDS = frozenset(
    {b"COMPRESS", b"NOTIFY", b"URLFETCH", b"CONVERT", b"RESETKEY", b"GENURLAUTH"}
)

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


def filter_capabilities(
    data: bytes, *, add_starttls: bool = False, login_disabled: bool = False
) -> bytes:
    """``data`` (one response) with its capability list(s) filtered; other bytes unchanged."""

    def fix(m: re.Match[bytes]) -> bytes:
        caps = filter_capability_list(
            m.group(1).split(), add_starttls=add_starttls, login_disabled=login_disabled
        )
        return (
            m.group(0)[: m.start(1) - m.start(0)]
            + b" ".join(caps)
            + m.group(0)[m.end(1) - m.start(0) :]
        )

    line_end = data.find(b"\n") + 1 or len(data)
    first, rest = data[:line_end], data[line_end:]
    first = _CAPA_CODE.sub(fix, first, count=1)
    if first[:13].upper() == b"* CAPABILITY ":
        first = _CAPA_UNTAGGED.sub(fix, first, count=1)
    return first + rest


def strip_capability_code(data: bytes) -> bytes:
    """A greeting without its ``[CAPABILITY ...]`` code (stale after an upstream STARTTLS)."""
    return _CAPA_CODE.sub(b"", data, count=1).replace(b"OK  ", b"OK ", 1)
