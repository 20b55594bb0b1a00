"""A length-preserving URL neutralizer for FETCH responses too large to buffer (invariant 3: no body
reaches the client unfiltered, not even one above ``max_literal``). No I/O.

Such a response streams through in chunks, so the engine cannot see the message whole. Instead
every ``http:`` / ``https:`` scheme (any case) loses its first letter (``xttp:``), and every
protocol-relative ``//`` that follows ``=``, a quote, ``(`` or a blank (how HTML and CSS write it)
becomes ``_/``. Each edit replaces one byte with one byte, so literal sizes, RFC822.SIZE and
BODYSTRUCTURE stay true. A short tail of each chunk is held back until the next one, so a scheme
split across two chunks is still caught.

Limits (logged with every such response): base64 parts are not decoded, so an HTML part in base64
passes as it is; a quoted-printable soft line break inside a scheme (``ht=\\r\\ntp:``) hides it.
Rewriting those would take spooling the literal to disk, parsing the MIME structure from the spool
and rewriting part by part through the engine's transfer-encoding layer with a bounded window,
then serving the client from the spooled, rewritten copy.
"""

from __future__ import annotations

import re

# "//" only after characters that start an attribute value or a CSS url(): base64 text has "//"
# inside its lines (and at their start) and must not be corrupted, and none of these characters
# occurs in base64.
_REMOTE = re.compile(rb"(?i:https?:)|(?<=[=\"'( \t])//")
_HOLD = 8  # longer than any match plus its one byte of look-behind


class StreamNeutralizer:
    """Feed the chunks of one streamed response in order; get the same number of bytes back."""

    def __init__(self) -> None:
        self._carry = b""
        self._prev = b" "  # the last byte already emitted, for the look-behind
        self.edits = 0

    def feed(self, data: bytes, *, last: bool = False) -> bytes:
        """The neutralized bytes that can go out now; with ``last``, everything still held."""
        buf = self._prev + self._carry + data
        out = bytearray(buf)
        for m in _REMOTE.finditer(buf, 1):
            out[m.start()] = 0x78 if out[m.start()] in (0x68, 0x48) else 0x5F  # 'x' or '_'
            self.edits += 1
        keep = 0 if last else min(_HOLD, len(out) - 1)
        emit_end = len(out) - keep
        emitted = bytes(out[1:emit_end])
        # The held tail is kept as edited: an edited scheme cannot match again.
        self._carry = bytes(out[emit_end:])
        if emit_end > 1:
            self._prev = bytes(out[emit_end - 1 : emit_end])
        if last:
            self._carry, self._prev = b"", b" "
        return emitted
