"""Length-preserving edits through MIME content-transfer-encodings.

The HTML layer works on the *decoded* body of a part and describes each change as an :class:`Edit`
in decoded offsets. This module carries those edits into the *encoded* body so that the encoded body
keeps its byte length and its number of line breaks, and stays byte-identical outside the encoded
range that covers each edit. IMAP clients learn sizes and line counts before they fetch, so neither
may move.

The padding rule (identical for every encoding, so the HTML layer can rely on it): the decoded text
of an edited span becomes ``content``, then ASCII spaces, then the CR and LF bytes the span held, in
their original order. With quoted-printable the number of padding spaces may exceed the span's
original length (an ``=3D`` that became a literal frees two encoded bytes, which become two more
spaces); the *encoded* length never changes.

Theory of operation, per encoding:

- 7bit, 8bit, binary (and anything unknown): decoded == encoded, splice in place.
- base64: every 3 decoded bytes are one 4-character group. An edit rewrites only the groups covering
  it; the new characters are written back over the positions the old ones occupied, so line lengths,
  terminators, and even stray whitespace stay where they were. A stream that is not whole groups
  with padding only at its end has no such 3:4 correspondence: :class:`TransferError`.
- quoted-printable: a literal byte is 1 encoded byte, ``=XX`` is 3 for 1, a soft break ``=`` CRLF is
  3 (or 2) for 0, trailing whitespace before a hard break is transport padding (n for 0). An index
  of line-aligned blocks (their decoded lengths measured with the C decoder) finds the block of a
  decoded offset; tokenizing only that block gives the exact encoded offset. The encoded range
  covering the edit is then laid out anew: content (escaped as needed), spaces, the soft breaks
  still owed, the span's CR and LF items; soft breaks keep lines within 76 characters where the
  layout allows. The whole result is decoded once more and compared with what the padding rule
  promises: any surprise (malformed input next to an edit, say) raises :class:`TransferError`
  instead of shipping a wrong body.
"""

from __future__ import annotations

import binascii
import logging
import re
import sys
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import accumulate
from typing import Literal, NamedTuple

from mailproxy.errors import MailproxyError

logger = logging.getLogger(__name__)

__all__ = ["CTE", "Edit", "TransferError", "apply_edits", "decode", "same_shape"]

CTE = Literal["7bit", "8bit", "binary", "quoted-printable", "base64"]


class TransferError(MailproxyError):
    """Edits cannot be carried through a part's transfer encoding without changing its shape.

    The caller falls back to a blunt length-preserving neutralization of the part.
    """


@dataclass(frozen=True, slots=True)
class Edit:
    """Replace decoded bytes ``[start, end)`` by ``content``, padded as the module doc says."""

    start: int  # decoded offset, inclusive
    end: int  # decoded offset, exclusive
    content: bytes  # len(content) <= end - start, no CR or LF

    def __post_init__(self) -> None:
        # Validated here so that a bad edit fails where it is made, with TransferError like every
        # other refusal of this module (callers catch one exception type).
        if not isinstance(self.start, int) or not isinstance(self.end, int):
            raise TransferError(f"edit offsets must be integers: {self.start!r}, {self.end!r}")
        if not isinstance(self.content, bytes):
            raise TransferError(f"edit content must be bytes, not {type(self.content).__name__}")
        if self.start < 0 or self.end < self.start:
            raise TransferError(f"edit span [{self.start}, {self.end}) is not a range")
        if len(self.content) > self.end - self.start:
            raise TransferError(
                f"edit content ({len(self.content)} bytes) longer than its span [{self.start}, {self.end})"
            )
        if b"\r" in self.content or b"\n" in self.content:
            raise TransferError("edit content must not contain CR or LF")


def same_shape(a: bytes, b: bytes) -> bool:
    """True if ``a`` and ``b`` have the same length and the same number of LF bytes."""
    return len(a) == len(b) and a.count(b"\n") == b.count(b"\n")


def decode(encoded: bytes, cte: str) -> bytes:
    """Decode a part body the lenient way real clients do; this is the text edits are offsets into.

    Quoted-printable: ``=XX`` (either case) is a byte, ``=`` before a line end is a soft break,
    trailing spaces and tabs before a line end are dropped (RFC 2045 transport padding), an invalid
    ``=`` sequence is kept literally, hard line breaks keep their CRLF or LF. Base64: characters
    outside the alphabet are skipped and decoding stops at the end padding, as ``binascii`` does
    without strict mode; a truncated final group is decoded as far as it goes. Any other encoding
    name: the bytes as they are.
    """
    data = _as_bytes(encoded)
    kind = _kind(cte)
    if kind == "quoted-printable":
        return _qp_index(data).decoded
    if kind == "base64":
        return _b64_decoded(data)
    return data


def apply_edits(encoded: bytes, cte: str, edits: Sequence[Edit]) -> bytes:
    """Apply ``edits`` (decoded offsets) to ``encoded``, keeping its length and line count.

    Raises TransferError when that is impossible (overlapping or out-of-range edits, a base64 stream
    that is not canonical, a replacement that does not fit its quoted-printable range).
    """
    data = _as_bytes(encoded)
    kind = _kind(cte)
    if kind == "quoted-printable":
        result = _apply_qp(data, edits)
    elif kind == "base64":
        result = _apply_b64(data, edits)
    else:
        result = _apply_plain(data, edits)
    # Guaranteed by construction; checked anyway because a shape change must never be shipped. The
    # line count is checked where it may change, range by range (see _apply_qp; base64 characters and
    # padded spans keep theirs): the rest of the body is copied, and counting its lines twice would
    # cost more than all of a typical rewrite.
    if len(result) != len(data):  # pragma: no cover
        raise TransferError("internal error: rewritten body changed its shape")
    return result


# --- shared helpers -------------------------------------------------------------------------------

# The engine decodes a part, then edits the same bytes object: the edits reuse what the decoding
# computed. One body per encoding is remembered (bytes are immutable, so the same object is the same
# body), and only up to the size of a large HTML part, so that no decoded attachment (an IMAP BINARY
# fetch) is kept alive.
_MEMO_MAX = 1 << 20
_last_b64: tuple[bytes, bytes] | None = None  # a body and its decoding
_last_index: _QpIndex | None = None

_CRLF_ONLY = bytes(c for c in range(256) if c not in b"\r\n")


def _as_bytes(data: object) -> bytes:
    if isinstance(data, bytes):
        return data
    if isinstance(data, bytearray | memoryview):
        return bytes(data)
    raise TransferError(f"body must be bytes, not {type(data).__name__}")


def _kind(cte: object) -> str:
    if isinstance(cte, str):
        name = cte.strip().lower()
        if name in ("quoted-printable", "base64"):
            return name
    return "7bit"


def _ordered(edits: Sequence[Edit], size: int) -> list[Edit]:
    """Non-empty edits sorted by position; overlaps and spans past the body are refused."""
    try:
        items = list(edits)
    except TypeError as exc:
        raise TransferError("edits must be a sequence of Edit") from exc
    for edit in items:
        if not isinstance(edit, Edit):
            raise TransferError(f"not an Edit: {edit!r}")
    ordered = sorted((e for e in items if e.end > e.start), key=lambda e: (e.start, e.end))
    prev_end = 0
    for edit in ordered:
        if edit.start < prev_end:
            raise TransferError(f"overlapping edits at decoded offset {edit.start}")
        prev_end = edit.end
    if prev_end > size:
        raise TransferError(f"edit ends at {prev_end}, past the decoded body ({size} bytes)")
    return ordered


def _breaks(span: bytes) -> bytes:
    """The CR and LF bytes of ``span``, in order: what the padding rule keeps at a span's end."""
    return span.translate(None, _CRLF_ONLY)


def _padded(span: bytes, content: bytes) -> bytes:
    """Same-length replacement of a decoded span: content, spaces, the span's own line breaks."""
    breaks = _breaks(span)
    room = len(span) - len(content) - len(breaks)
    if room < 0:
        raise TransferError("edit content and the span's line breaks do not fit the span")
    return content + b" " * room + breaks


def _splice(decoded: bytes, ordered: list[Edit], start: int = 0, end: int | None = None) -> bytes:
    """``decoded[start:end]`` with ``ordered`` (edits inside it) applied."""
    pieces: list[bytes] = []
    pos = start
    for edit in ordered:
        pieces.append(decoded[pos : edit.start])
        pieces.append(_padded(decoded[edit.start : edit.end], edit.content))
        pos = edit.end
    pieces.append(decoded[pos:end])
    return b"".join(pieces)


# --- 7bit / 8bit / binary -------------------------------------------------------------------------


def _apply_plain(data: bytes, edits: Sequence[Edit]) -> bytes:
    ordered = _ordered(edits, len(data))
    return _splice(data, ordered) if ordered else data


# --- base64 ---------------------------------------------------------------------------------------

_B64_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_B64_NOT_STREAM = bytes(c for c in range(256) if c not in _B64_ALPHABET + b"=")
_B64_NOT_ALPHABET = bytes(c for c in range(256) if c not in _B64_ALPHABET)
_B64_RUN = re.compile(rb"[A-Za-z0-9+/=]+")


def _b64_decode(data: bytes) -> bytes:
    try:
        return binascii.a2b_base64(data, strict_mode=False)
    except binascii.Error:
        pass
    # A truncated last group: clients decode what is there. Padding completes a 2- or 3-character
    # group; a lone final character carries no whole byte and is dropped.
    for candidate in (data + b"==", data.rstrip(_B64_NOT_ALPHABET)[:-1]):
        try:
            return binascii.a2b_base64(candidate, strict_mode=False)
        except binascii.Error:
            continue
    raise TransferError("base64 body cannot be decoded")  # pragma: no cover - both repairs cover all


def _b64_decoded(data: bytes) -> bytes:
    global _last_b64
    last = _last_b64
    if last is not None and last[0] is data:
        return last[1]
    decoded = _b64_decode(data)
    if len(data) <= _MEMO_MAX:
        _last_b64 = (data, decoded)
    return decoded


def _apply_b64(data: bytes, edits: Sequence[Edit]) -> bytes:
    stream = data.translate(None, _B64_NOT_STREAM)
    if len(stream) % 4:
        raise TransferError("base64 body is not a whole number of 4-character groups")
    pad = stream.find(b"=")
    if pad != -1 and (pad < len(stream) - 2 or stream[pad:].strip(b"=")):
        raise TransferError("base64 body has padding before its end")
    last = _last_b64
    if last is not None and last[0] is data:
        decoded = last[1]  # what decode() gave: the same, for whole groups with end padding
    else:
        decoded = binascii.a2b_base64(stream, strict_mode=False)  # cannot fail: whole groups, end padding
    ordered = _ordered(edits, len(decoded))
    if not ordered:
        return data

    # Groups of 3 decoded bytes touched by the edits, merged when they touch or share a group, with
    # the edits they hold.
    groups: list[list[int]] = []  # first group, last group + 1, first edit, last edit + 1
    for i, edit in enumerate(ordered):
        g0, g1 = edit.start // 3, -(-edit.end // 3)
        if groups and g0 <= groups[-1][1]:
            groups[-1][1] = max(groups[-1][1], g1)
            groups[-1][3] = i + 1
        else:
            groups.append([g0, g1, i, i + 1])

    # Where each run of base64 characters sits in the body and in the stream; new characters go
    # exactly where old ones were, so the layout (line lengths, terminators, odd spaces) is
    # untouched. Lines of one width are measured, not listed.
    lines = _b64_lines(data, len(stream))
    if lines is None:
        runs = _b64_runs(data, len(stream))
        run_pos = [0, *accumulate(end - start for start, end in runs)]

        def where(q: int) -> tuple[int, int]:
            """Body offset of stream offset ``q``, and the end of its run."""
            ri = bisect_right(run_pos, q) - 1
            start, end = runs[ri]
            return start + q - run_pos[ri], end
    else:
        width, step = lines

        def where(q: int) -> tuple[int, int]:
            line, column = divmod(q, width)
            return line * step + column, line * step + width

    pieces: list[bytes] = []
    pos = 0  # body offset up to which pieces hold the result
    for g0, g1, i0, i1 in groups:
        chunk = binascii.b2a_base64(_splice(decoded, ordered[i0:i1], 3 * g0, 3 * g1), newline=False)
        q = 4 * g0
        if len(chunk) != min(4 * g1, len(stream)) - q:  # pragma: no cover - same decoded length
            raise TransferError("base64 re-encoding changed the group count")
        done = 0
        while done < len(chunk):
            at, end = where(q + done)
            take = min(len(chunk) - done, end - at)
            # The new groups decode to the edited text by construction; what remains to check is that
            # they go where the old ones were.
            if data[at : at + take] != stream[q + done : q + done + take]:  # pragma: no cover
                raise TransferError("base64 rewrite does not decode to the edited text")
            pieces.append(data[pos:at])
            pieces.append(chunk[done : done + take])
            pos = at + take
            done += take
    pieces.append(data[pos:])
    return b"".join(pieces)


def _b64_lines(data: bytes, stream_len: int) -> tuple[int, int] | None:
    """The width and the step (width and terminator) of the lines of ``data``, whose stream has
    ``stream_len`` characters, when they are its runs of base64 characters: lines of one width and
    one terminator (the last may be shorter), the usual layout. It is measured instead of scanned: the
    terminators are all where that layout puts them and there are no other bytes outside the stream.
    None for any other layout."""
    nl = data.find(b"\n")
    eol = b"\r\n" if data[nl - 1 : nl] == b"\r" else b"\n"
    width = nl + 1 - len(eol)
    if nl >= 0 and width > 0:
        step = nl + 1
        full = len(data) // step  # whole lines, terminator included
        last_end = len(data) - len(eol) if data.endswith(eol, full * step) else len(data)
        lines = full + (last_end < len(data))
        if (
            stream_len == len(data) - lines * len(eol)
            and data[width::step][:full] == eol[:1] * full
            and data[nl::step][:full] == b"\n" * full
        ):
            return width, step
    return None


def _b64_runs(data: bytes, stream_len: int) -> list[tuple[int, int]]:
    """[start, end) of each run of base64 characters (and "=") in ``data``, whose stream has
    ``stream_len`` of them."""
    lines = _b64_lines(data, stream_len)
    if lines is None:
        return [m.span() for m in _B64_RUN.finditer(data)]
    width, step = lines
    full = len(data) // step
    runs = [(i, i + width) for i in range(0, full * step, step)]
    eol = data[width:step]
    last_end = len(data) - len(eol) if data.endswith(eol, full * step) else len(data)
    if last_end > full * step:
        runs.append((full * step, last_end))
    return runs


# --- quoted-printable -----------------------------------------------------------------------------

# One token of quoted-printable that is not a plain literal byte. Everything between tokens decodes
# to itself (including an invalid "=" and a lone CR). Line-local: no token crosses a LF, so any
# slice that starts and ends right after a LF tokenizes as it does inside the whole body. Every
# alternative starts with a literal byte so that the regex engine skips ordinary text at C speed;
# _token_kind tells the alternatives apart.
_QP_TOKEN = re.compile(
    rb"=[0-9A-Fa-f]{2}"  # escape
    rb"|=[ \t]*(?:\r\n|\n|\Z)"  # soft break; whitespace after "=" is transport padding
    rb"| [ \t]*(?:\r\n|\n|\Z)"  # hard break (or the end) after transport padding
    rb"|\t[ \t]*(?:\r\n|\n|\Z)"
    rb"|\r\n|\n"  # hard break
)
_ESCAPE, _SOFT, _HARD, _PAD = range(4)
_HEX_DIGITS = frozenset(b"0123456789ABCDEFabcdef")


def _token_kind(token: bytes) -> int:
    if token[0] == 61:  # "="
        return _ESCAPE if len(token) == 3 and token[1] in _HEX_DIGITS else _SOFT
    return _HARD if token[-1] == 10 else _PAD


# What binascii.a2b_qp decodes otherwise (see _fast_qp_ok). The regexes lead with a literal byte, which
# the regex engine looks for at C speed; bytes.find is slower for a needle whose first byte ("=", " ")
# is frequent.
_QP_EQ_EQ = re.compile(rb"==")
_QP_BAD_CR = re.compile(rb"\r(?:(?<=[ \t]\r)|(?!\n))")  # a lone CR, or one after a space or tab
_QP_BAD_LF = re.compile(rb"\n(?<=[ \t]\n)")  # a LF after a space or tab


def _fast_qp_ok(data: bytes) -> bool:
    """True if binascii.a2b_qp decodes ``data`` by the rules above.

    It differs on trailing whitespace (it keeps it), a lone CR (it takes "=" CR for a soft break)
    and "==" (it makes one "=" of it); tests/rewrite/test_transfer.py checks both decoders against a
    reference.
    """
    if data.endswith((b" ", b"\t")) or _QP_EQ_EQ.search(data):
        return False
    if b"\r" in data and _QP_BAD_CR.search(data):
        return False
    return _QP_BAD_LF.search(data) is None


# A space or tab that a decoder would drop as transport padding.
_QP_TRAILING = re.compile(rb"(?<![ \t])[ \t]++(?:\r?\n|\Z)")  # never restarts inside a run: linear
# A LF after a space or tab (CR between them or not): what any match of _QP_TRAILING before the end
# contains. Looked for first, with the literal LF leading so that the regex engine skips ahead at C
# speed (the leading lookbehind of _QP_TRAILING keeps it from doing so), as almost no layout has a
# trailing space.
_QP_TRAILING_LF = re.compile(rb"\n(?:(?<=[ \t]\n)|(?<=[ \t]\r\n))")
_QP_WS_LINE_END = re.compile(rb"[ \t]*(?:\r?\n)?")

_HEX_BYTE = {f"{c:02X}".encode(): bytes((c,)) for c in range(256)}
_HEX_BYTE.update({k.lower(): v for k, v in list(_HEX_BYTE.items())})
_HEX_BYTE.update({k[:1].lower() + k[1:]: v for k, v in list(_HEX_BYTE.items())})
_HEX_BYTE.update({k[:1] + k[1:].lower(): v for k, v in list(_HEX_BYTE.items())})
# How a content byte is written: printable ASCII, space and tab as themselves, "=" and the rest
# escaped.
_QP_ATOM = tuple(
    bytes((c,)) if (33 <= c <= 126 and c != 61) or c in (9, 32) else f"={c:02X}".encode() for c in range(256)
)
_QP_ESCAPED = tuple(f"={c:02X}".encode() for c in range(256))
_QP_WIDTH = bytes(len(atom) for atom in _QP_ATOM)  # content.translate(_QP_WIDTH): its atoms' widths
_QP_LINE = 76  # RFC 2045 maximum encoded line length, soft-break "=" included
_QP_BLOCK = 1024  # index granularity: a lookup measures the lines of one block
_QP_CONTEXT = 256  # bytes of the following text examined (trailing space, rest of the line)
_NO_LIMIT = sys.maxsize


def _qp_decode(data: bytes) -> bytes:
    if _fast_qp_ok(data):
        return binascii.a2b_qp(data)
    pieces: list[bytes] = []
    pos = 0
    for m in _QP_TOKEN.finditer(data):
        pieces.append(data[pos : m.start()])
        token = m.group()
        kind = _token_kind(token)
        if kind == _ESCAPE:
            pieces.append(_HEX_BYTE[token[1:]])
        elif kind == _HARD:
            pieces.append(b"\r\n" if token.endswith(b"\r\n") else b"\n")
        pos = m.end()
    pieces.append(data[pos:])
    return b"".join(pieces)


class _QpIndex:
    """Decoded offset -> encoded offsets for one quoted-printable body.

    The body is cut into line-aligned blocks whose decoded lengths come from the C decoder. A lookup
    measures the lines of one block with the C decoder too (cached) and walks one line in Python (from
    escape to escape, tokenizing only what else the line holds), so the Python work per edit is
    bounded by a line. Tokens never cross a LF, so a line tokenizes as it does inside the whole body.
    """

    __slots__ = ("_decode", "_lines", "block_dec", "block_enc", "data", "decoded")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.block_enc: list[int] = []
        self.block_dec: list[int] = []
        parts: list[bytes] = []
        pos = dec = 0
        n = len(data)
        # Line-aligned slices of a body the C decoder handles are handled by it too.
        self._decode = binascii.a2b_qp if _fast_qp_ok(data) else _qp_decode
        while pos < n:
            nl = data.find(b"\n", pos + _QP_BLOCK - 1)
            end = n if nl < 0 else nl + 1
            part = self._decode(data[pos:end])
            self.block_enc.append(pos)
            self.block_dec.append(dec)
            parts.append(part)
            dec += len(part)
            pos = end
        self.block_enc.append(n)
        self.decoded = b"".join(parts)
        self._lines: dict[int, tuple[list[int], list[int]]] = {}

    def _lines_of(self, bi: int) -> tuple[list[int], list[int]]:
        """Encoded and decoded start of each line of block ``bi``, and the block's end."""
        cached = self._lines.get(bi)
        if cached is not None:
            return cached
        start, end = self.block_enc[bi], self.block_enc[bi + 1]
        block = self.data[start:end]
        if self._decode is binascii.a2b_qp:
            lines = block.splitlines(keepends=True)  # no lone CR in such a body: lines end at LFs
        else:
            # The block ends after a LF or at the end of the body: the last piece is empty or an
            # unterminated last line.
            pieces = block.split(b"\n")
            last = pieces.pop()
            lines = [piece + b"\n" for piece in pieces]
            if last:
                lines.append(last)
        # Lengths measured by map() keep the per-line work in C.
        enc_at = list(accumulate(map(len, lines), initial=start))
        dec_at = list(accumulate(map(len, map(self._decode, lines)), initial=self.block_dec[bi]))
        dec_at.pop()  # the block's end: the next block's start
        self._lines[bi] = (enc_at, dec_at)
        return enc_at, dec_at

    def decoded_at(self, p: int) -> int:
        """Decoded offset of encoded offset ``p``, which starts a line (or is the end of the body)."""
        if p >= len(self.data):
            return len(self.decoded)
        enc_at, dec_at = self._lines_of(bisect_right(self.block_enc, p) - 1)
        return dec_at[bisect_left(enc_at, p)]

    def locate(self, x: int) -> tuple[int, int, int, int]:
        """Encoded [start, end) of the token that yields decoded byte ``x``, and the encoded and decoded
        offsets of the start of its line.

        Zero-width tokens (soft breaks, transport padding) on either side are not included.
        """
        enc_at, dec_at = self._lines_of(bisect_right(self.block_dec, x) - 1)
        li = bisect_right(dec_at, x) - 1
        line, line_dec = enc_at[li], dec_at[li]
        data = self.data
        # The usual case without tokenizing: hop from escape to escape. Up to the next "=", a line
        # holds literal bytes only, except for transport padding and the line break at its end, both
        # of which start with a space, tab, CR or LF: where x falls on none of those, it is a literal.
        # (Decoding never lengthens, so the byte x would be, at the latest, the line's LF.)
        prev, dec = line, line_dec
        while True:
            at = prev + x - dec
            q = data.find(b"=", prev, at + 1)
            if q < 0:
                if data[at] not in b" \t\r\n":
                    return at, at + 1, line, line_dec
                break
            if data[q + 1 : q + 3] not in _HEX_BYTE:
                break  # a soft break or a literal "=": the tokenizer decides
            if q == at:
                return q, q + 3, line, line_dec
            prev, dec = q + 3, dec + q - prev + 1
        for m in _QP_TOKEN.finditer(data, prev, enc_at[li + 1]):
            start, end = m.span()
            d0 = dec + start - prev
            if d0 > x:
                break  # x is literal text before this token
            token = m.group()
            kind = _token_kind(token)
            if kind == _ESCAPE:
                width = 1
            elif kind == _HARD:
                width = 2 if token.endswith(b"\r\n") else 1
            else:
                width = 0
            if d0 + width > x:
                if width == 2:  # a CRLF hard break: the CR carries the stripped whitespace
                    return ((start, end - 1) if x == d0 else (end - 1, end)) + (line, line_dec)
                return start, end, line, line_dec
            prev, dec = end, d0 + width
        at = prev + x - dec
        return at, at + 1, line, line_dec


def _qp_index(data: bytes) -> _QpIndex:
    global _last_index
    index = _last_index
    if index is None or index.data is not data:
        index = _QpIndex(data)
        if len(data) <= _MEMO_MAX:
            _last_index = index
    return index


class _Range(NamedTuple):
    """What an encoded range holds besides ordinary text: what its new layout must reproduce."""

    soft: tuple[bytes, ...]  # terminator of each soft break, in order
    tail: tuple[bytes, ...]  # encoded form of each decoded CR/LF item (CRLF, LF, =0D, lone CR...)
    tail_decoded: bytes


def _scan_range(data: bytes, a: int, b: int) -> _Range:
    # Tokenize up to the end of b's line so that "\Z" means the end of the body, and a CRLF cut by b
    # is still seen as one hard break (its stripped whitespace belongs to the range).
    if data[b - 1 : b] == b"\n":
        stop = b
    else:
        nl = data.find(b"\n", b)
        stop = len(data) if nl < 0 else nl + 1
    unterminated = stop == len(data) and data[-1:] != b"\n"
    if unterminated or data.find(b"=0", a, b) >= 0 or data.find(b"=", max(a, b - 2), b) >= 0:
        return _scan_range_tokens(data, a, b, stop)
    # The usual case, counted in C: every CR and LF of the range in a "=" CRLF soft break, and no token
    # across b (one would hold the "=" looked for above, or a space, tab or CR right before b).
    n = data.count(b"\n", a, b)
    soft_crlf = data.count(b"=\r\n", a, b)
    if data[b - 1] not in b" \t\r" and data.count(b"\r", a, b) == n == soft_crlf:
        return _Range((b"\r\n",) * soft_crlf, (), b"")
    # Without "=0D" or "=0A", an escape cut by b or the end of an unterminated body, only line ends
    # matter: each LF ends a soft break, or a hard break with its CR and transport padding, whose start
    # is found by looking back (to ``a`` at most, where tokenizing starts).
    soft: list[bytes] = []
    tail: list[bytes] = []
    pos = a
    p = data.find(b"\n", a, stop)
    while p >= 0:
        end = p + 1
        crlf = p > a and data[p - 1] == 13
        start = p - crlf
        while start > a and data[start - 1] in (32, 9):
            start -= 1
        is_soft = start > a and data[start - 1] == 61  # "="
        start -= is_soft
        if start >= b:
            break
        tail.extend([b"\r"] * data.count(b"\r", pos, start))  # lone CRs in the literal text
        pos = end
        if end > b:  # b cuts a CRLF hard break after its CR
            tail.append(b"\r")
            pos = b
            break
        (soft if is_soft else tail).append(b"\r\n" if crlf else b"\n")
        p = data.find(b"\n", end, stop)
    tail.extend([b"\r"] * data.count(b"\r", pos, b))
    # Line ends only: each tail item decodes to itself.
    return _Range(tuple(soft), tuple(tail), b"".join(tail))


def _scan_range_tokens(data: bytes, a: int, b: int, stop: int) -> _Range:
    soft: list[bytes] = []
    tail: list[bytes] = []
    pos = a
    for m in _QP_TOKEN.finditer(data, a, stop):
        start, end = m.span()
        if start >= b:
            break
        tail.extend([b"\r"] * data.count(b"\r", pos, start))  # lone CRs in the literal text
        pos = end
        if end > b:  # b cuts a CRLF hard break after its CR
            tail.append(b"\r")
            pos = b
            break
        token = m.group()
        kind = _token_kind(token)
        term = b"\r\n" if token.endswith(b"\r\n") else b"\n"
        if kind == _ESCAPE:
            if _HEX_BYTE[token[1:]] in (b"\r", b"\n"):
                tail.append(token)
        elif kind == _SOFT:
            soft.append(term)
        elif kind == _HARD:
            tail.append(term)
    tail.extend([b"\r"] * data.count(b"\r", pos, b))
    return _Range(tuple(soft), tuple(tail), b"".join(map(_tail_decoded, tail)))


def _tail_decoded(item: bytes) -> bytes:
    return _HEX_BYTE[item[1:]] if item[:1] == b"=" else item


def _line_limit(data: bytes, start: int, end: int) -> int:
    """The line length a layout of the lines from ``start`` to the LF at ``end`` (or the end of the body)
    may use: 76, or their longest line (terminator excluded)."""
    # The usual case, told in C: the pieces between CRLFs hold every line whole (a line ended by a
    # lone LF together with the next), so when none is longer than 76 neither is any line.
    if max(map(len, data[start : end + 1].split(b"\r\n"))) <= _QP_LINE:
        return _QP_LINE
    return max(_QP_LINE, *(len(line) - line.endswith(b"\r") for line in data[start:end].split(b"\n")))


def _space_ends_line(pre: bytes, out: bytes, after: bytes) -> bool:
    """True if a space or tab that a decoder would drop starts in ``pre + out`` (``after`` follows)."""
    window = pre + out + after
    if not window.endswith((b" ", b"\t")) and _QP_TRAILING_LF.search(window) is None:
        return False
    t = _QP_TRAILING.search(window)
    return t is not None and t.start() < len(pre) + len(out)


def _last_literal(out: bytearray, p: int, start: int) -> int:
    """Where the last 1-byte atom at or before ``p`` is in ``out``, whose atoms from ``start`` on are
    content atoms (literals and escapes), or -1.

    Read backwards from an atom's end: "=" only ever starts an escape (content "=" is escaped, hex
    digits are not "="), so an atom whose third-last byte is "=" is an escape."""
    while p >= start:
        if p - 2 >= start and out[p - 2] == 61:
            p -= 3
        else:
            return p
    return -1


def _fill_line(out: bytearray, slack: int, start: int) -> bytes | None:
    """Fill the ``slack`` (1 or 2) bytes a soft break would leave unused on the last line of ``out``
    (content atoms from ``start`` on) by escaping a literal of that line (+2 bytes).

    With one byte to fill, the last literal moves on to the next line (escaping adds 2, the move
    takes 1 back): it is returned, to be written after the soft break; b"" when nothing moves, None
    when no literal can be escaped."""
    last = _last_literal(out, len(out) - 1, start)
    if slack == 2 and last >= 0:
        out[last : last + 1] = _QP_ESCAPED[out[last]]
        return b""
    if slack == 1 and last == len(out) - 1 and (at := _last_literal(out, last - 1, start)) >= 0:
        moved = bytes(out[-1:])
        del out[-1]
        out[at : at + 1] = _QP_ESCAPED[out[at]]
        return moved
    return None


def _qp_layout(
    content: bytes,
    widths: bytes,
    spaces: int,
    escape_last: bool,
    rng: _Range,
    col0: int,
    rest: int,
    limit: int,
    escapes: int = 0,
    keep_decoded: bool = False,
) -> tuple[bytes, int, bool]:
    """Lay out the atoms of ``content`` (``widths`` their lengths: 1 for the byte itself, 3 for its
    escape), ``spaces`` padding spaces, the owed soft breaks and the tail items.

    ``escapes`` more padding spaces are written "=20" (for the same decoded length, see
    ``_qp_rewrite_range``): wherever one fits on the current line, with plain spaces filling the
    line ends, and one kept for the very end so that no plain space ends a line. With
    ``keep_decoded`` the escaping tricks above are paid for with those escapes, not with spaces.

    Returns the bytes, the number of spaces actually used and whether every line stays within
    ``limit``. Soft breaks are spent greedily where the next atom would not fit (never inside an
    escape); those left over follow the padding, where they also keep the last space from ending a
    line. A line cut short before a 3-byte escape would push its 1-2 unused bytes onto the last line
    (and possibly past the limit), so the gap is filled by escaping a literal already on the line
    (+2 bytes), paid for with two padding spaces.
    """
    # Hot: written without closures. Each soft break is the same two lines: its bytes, then the line
    # it ends checked against the limit ("=" included) and a new line begun.
    out = bytearray()
    cur = col0
    fits = True
    breaks = [b"=" + term for term in rng.soft]  # the soft breaks owed, in order
    owed = len(breaks)
    si = 0  # soft breaks spent
    reserve = 1 if escape_last else 0  # the space that becomes "=20" cannot be given up
    left = spaces
    line_atoms = 0  # where the content atoms of the current line start in `out`

    # Runs of 1-byte atoms are laid out a line at a time; an escape that does not fit its line any
    # more gets a soft break before it, maybe with the escaping trick.
    i, n = 0, len(content)
    while i < n:
        j = widths.find(3, i)
        if j < 0:
            j = n
        while i < j:
            if si >= owed:
                out += content[i:j]  # literal atoms are the bytes themselves
                cur += j - i
                break
            room = limit - 1 - cur if cur > 0 else limit - 1
            if room <= 0:  # the line is full: the soft break's "=" ends it
                out += breaks[si]
                fits, cur, si = fits and cur < limit, 0, si + 1
                line_atoms = len(out)
                continue
            k = min(j - i, room)
            out += content[i : i + k]
            cur += k
            i += k
        if j < n:
            if si < owed and cur > 0 and cur + 4 > limit:
                slack = limit - 1 - cur
                moved: bytes | None = b""
                # Escaping a literal costs 2 encoded bytes: paid with two plain spaces, or (keeping
                # the decoded length) by writing one "=20" of the padding as a plain space instead.
                if slack in (1, 2) and (escapes >= 2 if keep_decoded else left - reserve >= 2):
                    moved = _fill_line(out, slack, line_atoms)
                    if moved is not None:
                        cur += slack
                        if keep_decoded:
                            escapes -= 1
                            left += 1
                            spaces += 1
                        else:
                            left -= 2
                            spaces -= 2
                out += breaks[si]
                fits, cur, si = fits and cur < limit, 0, si + 1
                line_atoms = len(out)
                if moved:
                    out += moved
                    cur = 1
            out += _QP_ESCAPED[content[j]]
            cur += 3
        i = j + 1
    # The padding: runs of plain spaces are laid out a line at a time (a URL blanked to spaces is
    # hundreds of them); only the last one may need to be "=20". The escape tricks need two spare
    # spaces, which the last atom never has, so no padding byte takes part in them.
    plain = left - reserve if left else 0
    if escapes:
        # Escapes wherever one fits with room for a soft break's "=", plain spaces elsewhere (all but
        # the last escape first when no soft break is left). Laid out a run at a time: each run is
        # what placing one padding byte at a time would give.
        while escapes > 1 or plain > 0:
            if si < owed and cur > 0 and cur + 2 > limit:
                out += breaks[si]
                fits, cur, si = fits and cur < limit, 0, si + 1
            if si >= owed:
                k = escapes - 1
                out += b"=20" * k + b" " * plain
                cur += 3 * k + plain
                escapes -= k
                left -= plain
                plain = 0
            elif escapes > 1 and (cur + 4 <= limit or not plain):
                # Escapes while one fits (or there is nothing else to place).
                k = min(escapes - 1, (limit - 4 - cur) // 3 + 1) if cur + 4 <= limit else 1
                out += b"=20" * k
                cur += 3 * k
                escapes -= k
            else:
                # Spaces up to the line end, as no escape fits on this line any more.
                k = min(plain, max(1, limit - 1 - cur))
                out += b" " * k
                cur += k
                plain -= k
                left -= k
        if si < owed and cur > 0 and cur + 4 > limit:
            out += breaks[si]
            fits, cur, si = fits and cur < limit, 0, si + 1
        out += b"=20"
        cur += 3
        escapes = 0
    while plain > 0:
        if si < owed and cur > 0 and cur + 2 > limit:
            out += breaks[si]
            fits, cur, si = fits and cur < limit, 0, si + 1
        room = plain if si >= owed else max(1, limit - 1 - cur)
        k = min(plain, room)
        out += b" " * k
        cur += k
        plain -= k
        left -= k
    if left:
        left -= 1
        last = b"=20" if escape_last else b" "
        if si < owed and cur > 0 and cur + len(last) + 1 > limit:
            out += breaks[si]
            fits, cur, si = fits and cur < limit, 0, si + 1
        out += last
        cur += len(last)
    while si < owed:
        out += breaks[si]
        fits, cur, si = fits and cur < limit, 0, si + 1
    for item in rng.tail:
        if item.endswith(b"\n"):
            fits = fits and cur <= limit
            cur = 0
        else:
            cur += len(item)
        out += item
    fits = fits and cur + rest <= limit
    return bytes(out), spaces, fits


def _qp_rewrite_range(
    data: bytes, a: int, b: int, content: bytes, post: bytes, decoded_len: int, line_start: int
) -> tuple[bytes, bytes]:
    """New bytes for encoded range [a, b) and the decoded text they stand for.

    ``post`` is the start of the (already rewritten) body after ``b``; ``decoded_len`` is what the
    range decodes to now, which the new layout keeps when it can (see below); ``line_start`` is where
    the line of ``a`` starts.
    """
    rng = _scan_range(data, a, b)
    widths = content.translate(_QP_WIDTH)
    literals = widths.count(1)
    size = b - a
    width = 3 * len(content) - 2 * literals  # of the atoms: 1 for a literal, 3 for an escape
    free = size - width - len(b"".join(rng.tail)) - len(rng.soft) - len(b"".join(rng.soft))
    if free < 0:
        raise TransferError(f"replacement does not fit quoted-printable range [{a}, {b})")

    line_end = b if data[b - 1 : b] == b"\n" else data.find(b"\n", b)
    line_end = len(data) if line_end < 0 else line_end
    limit = _line_limit(data, line_start, line_end)
    nl = post.find(b"\n")
    if nl < 0:
        rest = len(post) if len(post) < _QP_CONTEXT else _NO_LIMIT // 2
    else:
        rest = nl - (post[nl - 1 : nl] == b"\r")
    pre = data[a - 1 : a] if a and data[a - 1] in b" \t" else b""
    m = _QP_WS_LINE_END.match(post)
    after = post[: (m.end() if m else 0) + 1]

    # Passes, best first: every line within the limit; soft breaks where the limit wants them but
    # some line longer (the span crossed a hard break, whose following text must now come before
    # it); soft breaks all after the padding, where they keep any space from ending a line.
    # Best of all: the same decoded length too, so that an IMAP BINARY fetch (decoded content, its size
    # announced by the server) of the rewritten part stays true. Same encoded and decoded length means
    # as many escapes as the range had: the padding spaces the content does not need are spent as
    # "=20" (3 bytes each), placed last so that no literal space ends a line.
    pad = decoded_len - len(content) - len(rng.tail_decoded)
    surplus = free - pad
    same_decoded = pad > 0 and surplus >= 0 and surplus % 2 == 0 and surplus // 2 <= pad

    def keep_decoded(lim: int) -> bytes | None:
        escaped = surplus // 2
        out, _, fits = _qp_layout(
            content, widths, pad - escaped, False, rng, a - line_start, rest, lim, escaped, keep_decoded=True
        )
        return out if fits and not _space_ends_line(pre, out, after) else None

    if same_decoded and (kept := keep_decoded(limit)) is not None:
        return kept, content + b" " * pad + rng.tail_decoded
    # Ways to spend the free bytes, best first: all literal spaces; the last space as "=20" (a space
    # may not end a line: decoders drop it); no spaces but escaped content characters (+2 each).
    configs: list[tuple[int, bool, int]] = [(free, False, 0)]
    if free >= 3:
        configs.append((free - 2, True, 0))
    if free and free % 2 == 0 and free // 2 <= literals:
        configs.append((0, False, free // 2))
    for lim, strict in ((limit, True), (limit, False), (_NO_LIMIT, False)):
        if not strict and same_decoded and (kept := keep_decoded(_NO_LIMIT)) is not None:
            # Some line will be long anyway (the span crossed a hard break): keep the decoded length.
            logger.debug("quoted-printable range [%d, %d): a line over %d", a, b, limit)
            return kept, content + b" " * pad + rng.tail_decoded
        for spaces, escape_last, extra in configs:
            use_widths = widths
            if extra:
                # The last `extra` literals escaped as well.
                changed = bytearray(widths)
                for i in [i for i, w in enumerate(widths) if w == 1][-extra:]:
                    changed[i] = 3
                use_widths = bytes(changed)
            out, used, fits = _qp_layout(
                content, use_widths, spaces, escape_last, rng, a - line_start, rest, lim
            )
            if strict and not fits:
                continue
            if _space_ends_line(pre, out, after):
                continue
            if not fits:
                logger.debug("quoted-printable range [%d, %d): a line over %d", a, b, limit)
            return out, content + b" " * used + rng.tail_decoded
    raise TransferError(
        f"replacement cannot be laid out in quoted-printable range [{a}, {b}) without a space ending a line"
    )


def _apply_qp(data: bytes, edits: Sequence[Edit]) -> bytes:
    index = _qp_index(data)
    ordered = _ordered(edits, len(index.decoded))
    if not ordered:
        return data
    firsts = [index.locate(e.start) for e in ordered]
    ranges = [(first[0], index.locate(e.end - 1)[1]) for e, first in zip(ordered, firsts, strict=True)]
    line_starts = [first[2] for first in firsts]

    # Right to left, so that each range sees the final bytes that follow it (a trailing space is
    # judged by what comes after it, which a later edit may have changed).
    view = memoryview(data)  # the unchanged stretches are joined without being copied first
    pieces: list[bytes | memoryview] = []
    spans: list[bytes] = []
    head = b""  # the first bytes of the rewritten body from `nxt` on
    nxt = len(data)
    for edit, (a, b), line_start in zip(
        reversed(ordered), reversed(ranges), reversed(line_starts), strict=True
    ):
        post = data[b : min(nxt, b + _QP_CONTEXT)]
        if len(post) < _QP_CONTEXT:
            post = (post + head)[:_QP_CONTEXT]
        out, span = _qp_rewrite_range(data, a, b, edit.content, post, edit.end - edit.start, line_start)
        # Every layout fills its range exactly, with the line breaks it had.
        if len(out) != b - a or out.count(b"\n") != data.count(b"\n", a, b):  # pragma: no cover
            raise TransferError("internal error: a quoted-printable range changed its shape")
        pieces.append(view[b:nxt])
        pieces.append(out)
        spans.append(span)
        head = (out + post)[:_QP_CONTEXT]
        nxt = a
    pieces.append(view[:nxt])
    result = b"".join(reversed(pieces))
    spans.reverse()

    # The safety net: the result must decode to exactly what the padding rule promises. Decoding is
    # line-local and each range kept its length, so only the lines around the ranges (merged where
    # they meet) can decode otherwise; every other line is the input's own.
    regions: list[list[int]] = []  # first edit, last edit + 1, encoded [start, end) of whole lines
    for i, (_, b) in enumerate(ranges):
        r0 = line_starts[i]
        nl = data.find(b"\n", b)
        r1 = len(data) if nl < 0 else nl + 1
        if regions and r0 < regions[-1][3]:
            regions[-1][1] = i + 1
            regions[-1][3] = max(regions[-1][3], r1)
        else:
            regions.append([i, i + 1, r0, r1])
    actual: list[bytes] = []
    expected: list[bytes] = []
    for i0, i1, r0, r1 in regions:
        parts: list[bytes] = []
        pos = firsts[i0][3]  # the decoded offset of r0
        for edit, span in zip(ordered[i0:i1], spans[i0:i1], strict=True):
            parts.append(index.decoded[pos : edit.start])
            parts.append(span)
            pos = edit.end
        parts.append(index.decoded[pos : index.decoded_at(r1)])
        expected.append(b"".join(parts))
        actual.append(result[r0:r1])
    # Each region is decoded on its own; by the C decoder when their concatenation suits it, as what
    # it gets wrong never spans a line break and the regions are whole lines.
    decode = binascii.a2b_qp if _fast_qp_ok(b"".join(actual)) else _qp_decode
    if list(map(decode, actual)) != expected:
        raise TransferError("quoted-printable rewrite does not decode as intended (malformed input?)")
    return result
