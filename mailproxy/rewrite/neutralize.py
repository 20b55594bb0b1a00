"""Length-preserving URL neutralization for bodies the engine cannot rewrite (invariant 3: no body
reaches the client unfiltered). No I/O.

Users:

- the engine, for a part clients may read differently from its MIME parser (``mime.Part.ambiguous``),
  and its callers' last resort when it fails (``engine.neutralize_message``);
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
- runs of base64 lines are decoded, searched as text, and each byte to break is changed through
  the encoding (the groups around it re-encoded in place, ``streams.apply_edits``), so an HTML
  part in base64 is neutralized like any other without knowing its headers; as text, a base64
  line is never edited (``//`` at the start of a line counts only on a line with a character
  outside the base64 alphabet);
- bytes that do not look like text (more than 2% control characters and no markup that loads
  anything: an image in a BINARY fetch, the decoded bytes of a binary attachment) are left alone: no
  client renders them as markup, and breaking them would damage the attachment.

Memory stays bounded while streaming: only a tail is held back between chunks (80 bytes of text,
or the base64 lines that hold the look-ahead of the last decoded bytes, from a group boundary).

Limit: in a partial fetch of base64 text, a reference cut by the chunk's ends is not seen.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Callable

from mailproxy.rewrite import streams
from mailproxy.rewrite.transfer import Edit, TransferError

# The vocabulary of rewrite.safety.break_everything, on bytes. A "//" after a line break counts only
# on a line that cannot be base64 (that function would break base64 lines that start with "//"):
# one with another character within a base64 line's length (76).
_REMOTE = re.compile(
    # Each alternative is a look-around of the one byte matched, so the search skips to the next
    # candidate byte at C speed (a leading look-behind would be tried at every offset).
    rb"(?i)[hfw&\\/](?:(?<=\bh)(?=ttps?:)|(?<=\bf)(?=tp:)|(?<=\bw)(?=ss?:)|(?<=&)(?=#)|(?<=\\)(?=[0-9a-f])"
    rb"|(?<=[\"'=(, \t\r\f\v]/)(?=/[^\s/])"
    rb"|(?<=\n/)(?=/[^\s/][^\n]{0,72}?[^A-Za-z0-9+/=\s]))"
)
_HOLD = 80  # bytes held back between chunks: longer than any match, its look-ahead included
# A quoted-printable escape, or a soft line break (transport padding allowed before its line end; a
# bare CR ends a line for Thunderbird's decoder, which drops "=\r" as it drops "=\r\n").
_QP_UNIT = re.compile(rb"=(?:[0-9A-Fa-f]{2}|[ \t]*\r?\n|\r)")
_CONTROL = bytes(range(9)) + b"\x0b\x0c" + bytes(range(14, 32)) + b"\x7f"
# Where a partial fetch cuts a reference in two: the start of a scheme (or a "/", "&", "\") at the
# end of the chunk, the rest of one ("tps://", "//", "/x", the "#" of "&#") at its start. Each half
# is broken on its own, so the reassembled chunks load nothing either. Quoted-printable soft breaks
# cut at the edge are allowed for.
_CUT_TAIL = re.compile(rb"(?i)(?:\b(?:h(?:t(?:t(?:ps?)?)?)?|f(?:tp?)?|w(?:ss?)?)|[/&\\])(?:=[ \t]*\r?)?\Z")
_CUT_HEAD = re.compile(rb"(?i)\A\r?\n?(?:[a-z]{0,5}:)?[/#]")


# Markup that loads something. Control bytes do not stop a browser from rendering HTML, so HTML
# salted with them to look binary is still text when it holds one of these; random binary data
# holds one of these spellings about once in 10^9 bytes.
_MARKUP_HINT = re.compile(
    rb"(?i)<(?:img|image|svg|link|style|meta|base|i?frame|object|embed|video|audio|source|input|table|body)\b"
    rb"|\b(?:src|href|background|poster|srcset|lowsrc|data|content)[ \t\r\n]*=|url\(|@import|image-set\("
)


_NEAR = 512  # bytes either side of a match that decide whether it sits in text


def _textual(data: bytes, pos: int) -> bool:
    """Whether the bytes around ``pos`` read as text. Judged locally: one chance spelling in a big
    attachment must not make all of it text, nor binary next to an HTML part hide that part."""
    view = data[max(0, pos - _NEAR) : pos + _NEAR]
    controls = len(view) - len(view.translate(None, _CONTROL))
    return controls * 50 <= len(view) or _MARKUP_HINT.search(view) is not None


def _always_text(data: bytes, pos: int) -> bool:
    return True


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

    def view_offset(self, pos: int) -> int:
        """The view offset of the byte at raw offset ``pos`` (not inside an escape or soft break)."""
        i = bisect_right(self._raw_at, pos) - 1
        return pos if i < 0 else self._view_at[i] + pos - self._raw_at[i]


class StreamNeutralizer:
    """Feed the chunks of one body (or one streamed response) in order; get the same number of
    bytes back. ``qp=False`` for decoded content (BINARY), where ``=XX`` means itself. ``text`` for
    a body known to be markup (the engine's fail-safe): every match is broken, however binary the
    bytes around it look (control characters do not stop a browser, and markup can load without any
    spelling the binary judgement looks for)."""

    def __init__(self, *, qp: bool = True, text: bool = False) -> None:
        self._qp = qp
        self._judge = _always_text if text else _textual
        self._buf = b""  # received, not emitted yet: the held tail
        # The last byte emitted, as it is and as the view shows it, for the look-behind.
        self._prev_raw = self._prev_view = b"\n"
        # The held tail starts inside a base64 run (at a line start, on a group boundary), whose
        # last decoded byte emitted is this.
        self._b64_prev: bytes | None = None
        self.edits = 0

    def feed(self, data: bytes, *, last: bool = False) -> bytes:
        """The neutralized bytes that can go out now; with ``last``, everything still held."""
        raw = self._buf + data if self._buf else data
        view = _View(raw, self._qp)
        text = view.text
        cut = len(raw) if last else view.raw_offset(max(0, len(text) - _HOLD))
        runs = self._base64_runs(raw, cut, last)
        cut = min([cut, *(r.held for r in runs)])
        limit = view.view_offset(cut)
        out = bytearray(raw[:cut])
        found: set[int] = set()
        # Through the view (quoted-printable) and as the bytes are (7bit: "src=\r\n//host" is not a
        # soft break there).
        found.update(
            view.raw_offset(p) for p in _matches(self._prev_view + text, limit) if self._judge(text, p)
        )
        if text is not raw:
            found.update(p for p in _matches(self._prev_raw + raw, cut) if self._judge(raw, p))
        for p in found:
            escape = out[p] == 0x3D  # a quoted-printable escape: replaced by another one
            new = 0x5F if (int(raw[p + 1 : p + 3], 16) if escape else out[p]) in b"/&\\" else 0x78
            if escape:
                out[p : p + 3] = b"=%02X" % new
            else:
                out[p] = new  # 'x' for a letter, '_' for a sign
        self.edits += len(found)
        for run in runs:
            self.edits += run.apply(raw, out, cut)
        self._b64_prev = next((r.prev for r in runs if r.start <= cut < r.end), None)
        if cut:
            self._prev_view = text[limit - 1 : limit]
            self._prev_raw = raw[cut - 1 : cut]
        self._buf = raw[cut:]
        if last:
            self._buf, self._prev_raw, self._prev_view, self._b64_prev = b"", b"\n", b"\n", None
        return bytes(out)

    def _base64_runs(self, raw: bytes, cut: int, last: bool) -> list[_Run]:
        """The base64 runs that start before ``cut``, each knowing where the output may end for it."""
        runs = []
        tail = raw.rfind(b"\n") + 1  # the line not complete yet
        for m in _B64_RUN.finditer(raw, 0, tail):
            if m.start() >= cut:
                break
            # A run that reaches the incomplete last line may go on in the next chunk, unless that
            # line cannot be base64.
            open_end = not last and m.end() == tail and _B64_TAIL.fullmatch(raw, tail) is not None
            prev = self._b64_prev if m.start() == 0 and self._b64_prev is not None else b"\n"
            runs.append(_Run(raw, m.start(), m.end(), prev, open_end, cut, self._judge))
        return runs


# Lines of base64 characters. Padding may end a line or sit inside one: some mailers encode a body in
# pieces and join the results, and lenient clients decode on past the padding (``rewrite.streams``), so
# a run holds any number of streams.
_B64_RUN = re.compile(rb"(?m)^(?:[A-Za-z0-9+/][A-Za-z0-9+/=]+[ \t]*\r?\n)+")
_B64_TAIL = re.compile(rb"[A-Za-z0-9+/=]{0,998}")  # an incomplete line that may still be base64
_STREAM = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/="
_NOT_STREAM = bytes(c for c in range(256) if c not in _STREAM)


class _Run:
    """One run of base64 lines: its decoded text is searched as text, and each byte to break is
    changed through the encoding (``streams.apply_edits``: the same groups re-encoded in place).

    Only the part of the run before the output's end is final. That end must fall on a line start
    where a group starts, and, when the run may continue in the next chunk, early enough to leave
    the decoded look-ahead behind it: ``held`` is the latest such end (``cut`` itself when the run
    ends before it and is final as a whole).
    """

    def __init__(
        self,
        raw: bytes,
        start: int,
        end: int,
        prev: bytes,
        open_end: bool,
        cut: int,
        judge: Callable[[bytes, int], bool],
    ) -> None:
        self.start, self.end = start, end
        stream = raw[start:end].translate(None, _NOT_STREAM)
        whole = len(stream) - len(stream) % 4
        try:
            decoded = streams.decode(stream[:whole], "base64")
        except TransferError:
            decoded = b""
        if len(decoded) != _decoded_len(stream[:whole]):
            decoded = b""  # padding inside a group: no byte offsets to edit by
        self.held = cut  # final as a whole: the run does not hold the output back
        final = len(decoded)  # decoded bytes that may be emitted
        if open_end or cut < end:
            # The latest line start (before the cut) on a group boundary with the look-ahead after it.
            line = min(cut, end)
            while line > start:
                line = raw.rfind(b"\n", start, line) + 1 or start
                chars = len(raw[start:line].translate(None, _NOT_STREAM))
                if chars % 4 == 0 and (not open_end or chars // 4 * 3 <= len(decoded) - _HOLD):
                    break
                line -= 1
            self.held = max(line, start)
            final = _decoded_len(raw[start : self.held].translate(None, _NOT_STREAM))
        self.prev = decoded[final - 1 : final] if final else prev
        self._span_end = start
        self._edits: list[Edit] = [
            Edit(p, p + 1, b"_" if decoded[p] in b"/&\\" else b"x")
            for p in _matches(prev + decoded, final)
            if judge(decoded, p)
        ]
        if self._edits:
            # The encoded bytes of the ``final`` decoded ones: up to the end of their last group.
            self._span_end = self.held if self.held < end else _after_chars(raw, start, end, whole)

    def apply(self, raw: bytes, out: bytearray, cut: int) -> int:
        """Write the run's edits into ``out`` (the output up to ``cut``); the number made."""
        if not self._edits or self._span_end > cut:
            return 0
        try:
            new = streams.apply_edits(raw[self.start : self._span_end], "base64", self._edits)
        except TransferError:
            return 0
        out[self.start : self._span_end] = new
        return len(self._edits)


def _decoded_len(chars: bytes) -> int:
    """How many bytes whole groups of base64 characters decode to, when padding only ends groups."""
    return len(chars) // 4 * 3 - chars.count(b"=")


def _after_chars(raw: bytes, start: int, end: int, n: int) -> int:
    """The offset in ``raw`` just after the ``n``-th base64 character from ``start``."""
    pos = start
    for line in raw[start:end].split(b"\n"):
        count = len(line.translate(None, _NOT_STREAM))
        if n <= count:
            # Characters come first on a base64 line; what follows them is white space.
            return pos + n
        n -= count
        pos += len(line) + 1
    return end


def _matches(text: bytes, limit: int) -> list[int]:
    """Offsets (less than ``limit``) of the bytes to break in ``text[1:]``; ``text[0]`` is the byte
    before it."""
    out = []
    for m in _REMOTE.finditer(text, 1):
        if m.start() > limit:
            break  # held back: found again, with its look-ahead, in the next call
        out.append(m.start() - 1)
    return out


def neutralize_section(
    data: bytes, *, decoded: bool = False, origin: int | None = None, text: bool = False
) -> tuple[bytes, int]:
    """``data`` (one body section, or a chunk of one from ``origin``) neutralized, and the number of
    edits. ``decoded`` for BINARY content; ``text`` for markup (``StreamNeutralizer``)."""
    n = StreamNeutralizer(qp=not decoded, text=text)
    out, edits = n.feed(data, last=True), n.edits
    if origin and _B64_RUN.match(data):
        # A chunk that starts inside base64 text: its groups may start at any of the first four
        # characters. Only the right one decodes to text.
        for skip in (1, 2, 3):
            n = StreamNeutralizer(qp=not decoded, text=text)
            other = data[:skip] + n.feed(data[skip:], last=True)
            if n.edits > edits:
                out, edits = other, n.edits
    if origin is not None:
        # A chunk: a reference may be cut at either end (the other half is in a neighbouring chunk).
        # Never on a base64 line, where any of these characters is just data.
        buf = bytearray(out)
        tail = _CUT_TAIL.search(out)
        if tail is not None and _textual(out, tail.start()) and not _on_base64_line(out, tail.start()):
            buf[tail.start()] = 0x78 if out[tail.start()] not in b"/&\\" else 0x5F
            edits += 1
        head = _CUT_HEAD.match(out) if origin else None
        if (
            head is not None
            and buf[head.end() - 1] in b"/#"
            and _textual(out, head.end() - 1)
            and not _on_base64_line(out, head.end() - 1)
        ):
            buf[head.end() - 1] = 0x5F
            edits += 1
        out = bytes(buf)
    return out, edits


def _on_base64_line(data: bytes, pos: int) -> bool:
    start = data.rfind(b"\n", 0, pos) + 1
    end = data.find(b"\n", pos)
    line = data[start : end if end >= 0 else len(data)].rstrip(b"\r")
    return not line.translate(None, _STREAM)
