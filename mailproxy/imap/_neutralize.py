"""Length-preserving URL neutralization for bodies the engine cannot rewrite (invariant 3: no body
reaches the client unfiltered). No I/O.

Two users:

- a FETCH response too large to buffer (above ``max_literal``) streams through
  ``StreamNeutralizer`` chunk by chunk;
- a body section the filter cannot serve from the rewritten message (a FETCH command with literals,
  body items split over several responses, a part the filter's MIME parser numbers differently from
  the server's, an unparsable response, a rewriter that changed the length) goes through
  ``neutralize_section``.

What is broken is what the engine's last resort (``rewrite.safety.break_everything``) breaks:
every http(s)/ftp/ws scheme loses its first letter (``xttp:``), every protocol-relative ``//`` its
first slash (``_/``), every numeric character reference its ``&`` and every CSS escape its
backslash. Each edit replaces one byte with one byte, or a quoted-printable escape with the escape
of the replacement, so literal sizes, RFC822.SIZE, BODYSTRUCTURE and decoded sizes stay true.

The bytes are read the way a client would decode them, without knowing their transfer encoding:

- quoted-printable soft line breaks and ``=XX`` escapes are looked through, so a scheme split by a
  soft break (``ht=\\r\\ntps:``) or spelled with escapes is found;
- a base64 line is never edited as text: ``//`` at the start of a line counts only on a line with a
  character outside the base64 alphabet;
- bytes that do not look like text (more than 2% control characters: an image in a BINARY fetch, a
  binary attachment) are left alone: no client renders them as markup, and breaking them would
  damage the attachment.

Limit: base64-encoded text is not decoded, so an HTML part in base64 passes as it is.
"""

from __future__ import annotations

import re
from bisect import bisect_right

# The vocabulary of rewrite.safety.break_everything, on bytes. A "//" after a line break counts only
# on a line that cannot be base64 (that function would break base64 lines that start with "//"):
# one with another character within a base64 line's length (76).
_REMOTE = re.compile(
    rb"(?i)\bh(?=ttps?:)|\bf(?=tp:)|\bw(?=ss?:)|&(?=#)|\\(?=[0-9a-f])"
    rb"|(?<=[\"'=(, \t\r\f\v])/(?=/[^\s/])"
    rb"|(?<=\n)/(?=/[^\s/][^\n]{0,72}?[^A-Za-z0-9+/=\s])"
)
_HOLD = 80  # bytes held back between chunks: longer than any match, its look-ahead included
# A quoted-printable escape, or a soft line break (transport padding allowed before its line end).
_QP_UNIT = re.compile(rb"=(?:[0-9A-Fa-f]{2}|[ \t]*\r?\n)")
_CONTROL = bytes(range(9)) + b"\x0b\x0c" + bytes(range(14, 32)) + b"\x7f"
# Where a partial fetch cuts a reference in two: the start of a scheme (or a "/", "&", "\") at the
# end of the chunk, the rest of one ("tps://", "//", "/x", the "#" of "&#") at its start. Each half
# is broken on its own, so the reassembled chunks load nothing either. Quoted-printable soft breaks
# cut at the edge are allowed for.
_CUT_TAIL = re.compile(rb"(?i)(?:\b(?:h(?:t(?:t(?:ps?)?)?)?|f(?:tp?)?|w(?:ss?)?)|[/&\\])(?:=[ \t]*\r?)?\Z")
_CUT_HEAD = re.compile(rb"(?i)\A\r?\n?(?:[a-z]{0,5}:)?[/#]")


def _textual(view: bytes) -> bool:
    return (len(view) - len(view.translate(None, _CONTROL))) * 50 <= len(view)


class _View:
    """``raw`` as a quoted-printable decoder shows it (soft breaks dropped, escapes decoded), and
    where each of its bytes came from."""

    __slots__ = ("_raw_at", "_view_at", "text")

    def __init__(self, raw: bytes, qp: bool) -> None:
        self._view_at: list[int] = []  # view offsets where a stretch starts...
        self._raw_at: list[int] = []  # ...and the raw offsets of those starts
        if not qp or b"=" not in raw:
            self.text = raw
            return
        pieces: list[bytes] = []
        v = r = 0
        for m in _QP_UNIT.finditer(raw):
            s = m.start()
            pieces.append(raw[r:s])
            v += s - r
            if raw[s + 1] not in b" \t\r\n":  # an escape: one byte of the view
                self._view_at.append(v)
                self._raw_at.append(s)
                pieces.append(bytes((int(raw[s + 1 : s + 3], 16),)))
                v += 1
            r = m.end()
            self._view_at.append(v)
            self._raw_at.append(r)
        pieces.append(raw[r:])
        self.text = b"".join(pieces)

    def raw_offset(self, pos: int) -> int:
        # On equal view offsets the later entry wins: a soft break shows nothing, what follows it does.
        i = bisect_right(self._view_at, pos) - 1
        return pos if i < 0 else self._raw_at[i] + pos - self._view_at[i]


class StreamNeutralizer:
    """Feed the chunks of one body (or one streamed response) in order; get the same number of
    bytes back. ``qp=False`` for decoded content (BINARY), where ``=XX`` means itself."""

    def __init__(self, *, qp: bool = True) -> None:
        self._qp = qp
        self._buf = b""  # received, not emitted yet: the held tail
        # The last byte emitted, as it is and as the view shows it, for the look-behind.
        self._prev_raw = self._prev_view = b"\n"
        self.edits = 0

    def feed(self, data: bytes, *, last: bool = False) -> bytes:
        """The neutralized bytes that can go out now; with ``last``, everything still held."""
        raw = self._buf + data if self._buf else data
        view = _View(raw, self._qp)
        text = view.text
        limit = len(text) if last else len(text) - _HOLD
        if limit <= 0:
            self._buf = raw
            return b""
        cut = view.raw_offset(limit)
        out = bytearray(raw[:cut])
        if _textual(text[:limit]):
            # Through the view (quoted-printable) and as the bytes are (7bit: "src=\r\n//host" is
            # not a soft break there).
            found = {view.raw_offset(p) for p in _matches(self._prev_view + text, limit)}
            if text is not raw:
                found.update(_matches(self._prev_raw + raw, cut))
            for p in found:
                escape = out[p] == 0x3D  # a quoted-printable escape: replaced by another one
                new = 0x5F if (int(raw[p + 1 : p + 3], 16) if escape else out[p]) in b"/&\\" else 0x78
                if escape:
                    out[p : p + 3] = b"=%02X" % new
                else:
                    out[p] = new  # 'x' for a letter, '_' for a sign
            self.edits += len(found)
        self._prev_view = text[limit - 1 : limit]
        self._prev_raw = raw[cut - 1 : cut] if cut else self._prev_raw
        self._buf = raw[cut:]
        if last:
            self._buf, self._prev_raw, self._prev_view = b"", b"\n", b"\n"
        return bytes(out)


def _matches(text: bytes, limit: int) -> list[int]:
    """Offsets (less than ``limit``) of the bytes to break in ``text[1:]``; ``text[0]`` is the byte
    before it."""
    out = []
    for m in _REMOTE.finditer(text, 1):
        if m.start() > limit:
            break  # held back: found again, with its look-ahead, in the next call
        out.append(m.start() - 1)
    return out


def neutralize_section(data: bytes, *, decoded: bool = False, origin: int | None = None) -> tuple[bytes, int]:
    """``data`` (one body section, or a chunk of one from ``origin``) neutralized, and the number of
    edits. ``decoded`` for BINARY content."""
    n = StreamNeutralizer(qp=not decoded)
    out = n.feed(data, last=True)
    edits = n.edits
    if origin is not None and _textual(out):
        # A chunk: a reference may be cut at either end (the other half is in a neighbouring chunk).
        buf = bytearray(out)
        tail = _CUT_TAIL.search(out)
        if tail is not None:
            buf[tail.start()] = 0x78 if out[tail.start()] not in b"/&\\" else 0x5F
            edits += 1
        head = _CUT_HEAD.match(out) if origin else None
        if head is not None and head.end() - 1 != (tail.start() if tail else -1):
            buf[head.end() - 1] = 0x5F
            edits += 1
        out = bytes(buf)
    return out, edits
