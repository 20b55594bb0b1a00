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
- runs of base64 lines (blank lines among them, which decoders skip) are decoded, searched as text,
  and each byte to break is changed through the encoding (the groups around it re-encoded in place,
  ``streams.apply_edits``), so an HTML part in base64 is neutralized like any other without knowing
  its headers; as text, a base64 line is never edited (``//`` at the start of a line counts only on
  a line with a character outside the base64 alphabet);
- a run with padding inside a group (``Q=UI``) reads one way to Thunderbird, whose decoder takes
  groups of four across the body, and other ways to decoders that go stream by stream or skip the
  ``=``: no byte offsets are shared to edit by, so when any of these readings spells a reference,
  the run is zeroed from there on (every character but ``=`` an ``A``: NULs, lengths kept), as the
  engine blanks such markup parts;
- a uuencoded or yEncoded body, which Thunderbird decodes (in a part of that transfer encoding, and
  a ``begin 644 news.html`` in untyped text, rendered as HTML by its name), is found by its begin
  line as Thunderbird's decoder finds it and decoded line by line as it decodes (mimeenc.cpp: lines
  cut into pieces its buffer holds, a short uuencoded line padded with NULs), and each byte to break
  is changed through the encoding; read as text, the printable lines of uuencode count only near
  markup (their characters spell ``&#`` or ``=//`` by chance, and an attachment is not text);
- bytes that do not look like text (more than 2% control characters and no markup that loads
  anything: an image in a BINARY fetch, the decoded bytes of a binary attachment) are left alone: no
  client renders them as markup, and breaking them would damage the attachment.

A chunk of a partial fetch (``neutralize_section`` with ``origin``) is read from the right group of
its first base64 line (the alignment whose reading looks like text), and its last, incomplete line
is read too. A reference cut by a chunk's end is broken in either half, in text and through base64
(``_base64_tail``, ``_base64_head``): each chunk alone loads nothing, nor do the chunks reassembled.

Memory stays bounded while streaming: only a tail is held back between chunks (80 bytes of text,
the base64 lines that hold the look-ahead of the last decoded bytes, from a group boundary, or the
uuencoded or yEncoded lines that do: some 20 KB at most, with lines that decode to nothing). Where
the look-ahead would take more (soft line breaks, blank lines after base64, lines that decode to
nothing: 8 KB of them), the output goes on without it and what its end may begin is broken; a base64
run with no group boundary at a line start within 8 KB is zeroed.

Limits, where a reading without headers cannot follow Thunderbird's:

- its base64 decoder takes every character of the alphabet in the part, so a line that mixes them
  with others (``Q!``, ``PGlt ZyBz``) shifts its groups. Runs are read from their own start, so HTML
  placed after such a line within one part is read out of step and passes. Following it would take
  the part's extent (its boundary, in headers a section does not hold) or reading every run at all
  four alignments (about three times the work on every base64 attachment);
- a partial fetch that starts inside a uuencoded or yEncoded body does not hold its begin line:
  the chunk is read as text (a uuencoded attachment's chance spellings are broken there);
- a FETCH response above ``max_literal`` that is itself a partial fetch streams through
  ``StreamNeutralizer``, which does not know its ends are cut.
"""

from __future__ import annotations

import binascii
import re
from bisect import bisect_right
from collections.abc import Callable, Iterable, Iterator

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
_TEXT_WAIT = 8192  # bytes of soft line breaks held back at most, waiting for look-ahead
# A quoted-printable escape, or a soft line break (transport padding allowed before its line end; a
# bare CR ends a line for Thunderbird's decoder, which drops "=\r" as it drops "=\r\n").
_QP_UNIT = re.compile(rb"=(?:[0-9A-Fa-f]{2}|[ \t]*\r?\n|\r)")
_QP_OPEN = re.compile(rb"(?:=[ \t]{0,80}\r?|=[0-9A-Fa-f]?)?\Z")  # a unit the next chunk may complete
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


def _within(sorted_positions: list[int], pos: int, distance: int) -> bool:
    i = bisect_right(sorted_positions, pos + distance)
    return i > 0 and sorted_positions[i - 1] >= pos - distance


def _judge_after(judge: Callable[[bytes, int], bool], before: bytes) -> Callable[[bytes, int], bool]:
    """``judge`` with the bytes ``before`` the data (emitted with earlier chunks) in its window: the
    markup that makes a reference text, or the binary that makes it data, may have gone out before."""
    if judge is _always_text or not before:
        return judge

    def judged(data: bytes, pos: int) -> bool:
        if pos >= _NEAR:
            return judge(data, pos)
        return judge(before + data[: pos + _NEAR], pos + len(before))

    return judged


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
        # last decoded bytes emitted (``_NEAR`` of them) are these.
        self._b64_prev: bytes | None = None
        self._b64_suspect = self._b64_zero = False  # ... and is suspect, or zeroed (``_Run``)
        # The held tail starts on a line of a uuencoded or yEncoded body (its kind, b"u" or b"y", and
        # the last decoded bytes emitted), and this many bytes after the start of its line.
        self._coded: tuple[bytes, bytes] | None = None
        self._column = 0
        self._context = b""  # the last bytes emitted (``_NEAR`` of them), for the markup near a reference
        self.edits = 0

    def feed(self, data: bytes, *, last: bool = False) -> bytes:
        """The neutralized bytes that can go out now; with ``last``, everything still held."""
        raw = self._buf + data if self._buf else data
        view = _View(raw, self._qp)
        text = view.text
        cut = len(raw) if last else view.raw_offset(max(0, len(text) - _HOLD))
        # Soft line breaks show nothing, so the view's last bytes may stand on any number of them.
        # Rather than hold them all (bounded memory), go on without the look-ahead: cut before an
        # escape or soft break not complete yet, and break what the view's end may begin.
        blind = not last and len(raw) - cut > _TEXT_WAIT
        if blind:
            open_unit = _QP_OPEN.search(raw, max(0, len(raw) - 84))
            cut = len(raw) if open_unit is None else open_unit.start()
        runs = self._base64_runs(raw, cut, last)
        bodies, cut = self._coded_bodies(raw, cut, last)
        if not last:
            cut = min([cut, *(r.held for r in runs), *(b.held(cut) for b in bodies)])
        limit = view.view_offset(cut)
        out = bytearray(raw[:cut])
        found: set[int] = set()
        # Through the view (quoted-printable) and as the bytes are (7bit: "src=\r\n//host" is not a
        # soft break there).
        judge = _judge_after(self._judge, self._context)
        found.update(view.raw_offset(p) for p in _matches(self._prev_view + text, limit) if judge(text, p))
        if text is not raw:
            found.update(p for p in _matches(self._prev_raw + raw, cut) if judge(raw, p))
        tail = _CUT_TAIL.search(text, 0, limit) if blind else None
        if tail is not None and judge(text, tail.start()):
            found.add(view.raw_offset(tail.start()))
        areas = [(b.data, b.end) for b in bodies if b.kind == b"u"] if self._judge is _textual else []
        if areas and found:
            found = self._near_markup(raw, found, areas)
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
        self._coded = None
        for body in bodies:
            self.edits += body.apply(out, cut, self._judge)
            if body.data <= cut < body.end or (body.data <= cut and not body.closed):
                self._coded = (body.kind, body.prev)
        going_on = next((r for r in runs if r.start <= cut < r.end), None)
        self._b64_prev = None if going_on is None else going_on.prev
        self._b64_suspect = going_on is not None and going_on.suspect
        self._b64_zero = going_on is not None and going_on.zero
        if limit:  # (output that ends in a soft line break shows nothing more: the byte before stays)
            self._prev_view = text[limit - 1 : limit]
        if cut:
            self._prev_raw = raw[cut - 1 : cut]
            self._context = (self._context + raw[max(0, cut - _NEAR) : cut])[-_NEAR:]
            line = max(raw.rfind(b"\n", 0, cut), raw.rfind(b"\r", 0, cut))
            self._column = cut - line - 1 if line >= 0 else self._column + cut
        self._buf = raw[cut:]
        if last:
            self._buf, self._prev_raw, self._prev_view, self._b64_prev = b"", b"\n", b"\n", None
            self._coded, self._column, self._b64_suspect, self._b64_zero = None, 0, False, False
            self._context = b""
        return bytes(out)

    def _near_markup(self, raw: bytes, found: set[int], areas: list[tuple[int, int]]) -> set[int]:
        """``found`` without the references on uuencoded lines (``areas``) that are not near markup.
        Lines of uuencode are printable, so their characters are text to the judgement and spell
        "&#", "=//" or "\\1" by chance; as text they count only near markup, in the bytes emitted
        before too (the markup before a reference may have gone out with an earlier chunk).

        Not ``_judge_after``'s window: this asks whether a markup spelling starts within ``_NEAR``
        bytes of the reference, which that judgement (control bytes too, a window cut at both ends)
        does not answer alike."""
        inside = set().union(*({p for p in found if a <= p < e} for a, e in areas))
        if not inside:
            return found
        seen = self._context + raw
        shift = len(self._context)
        lo, hi = min(inside) + shift, max(inside) + shift
        hints = [m.start() for m in _MARKUP_HINT.finditer(seen, max(0, lo - _NEAR), hi + _NEAR)]
        near = {p for p in inside if _within(hints, p + shift, _NEAR)}
        return (found - inside) | near

    def _coded_bodies(self, raw: bytes, cut: int, last: bool) -> tuple[list[_Coded], int]:
        """The uuencoded and yEncoded bodies that start before ``cut`` (the first may go on from an
        earlier chunk), and ``cut`` moved back before a line that may still turn out to begin one."""
        bodies = []
        pos = 0
        if self._coded is not None:
            kind, prev = self._coded
            bodies.append(_Coded(raw, kind, 0, 0, prev, cut))
            pos = bodies[-1].end
        while bodies == [] or bodies[-1].closed:
            found = self._begin_line(raw, pos, cut, last)
            if found is None:
                break
            kind, start, data = found
            if data < 0:  # a begin line not complete yet: read again with the next chunk
                return bodies, min(cut, start)
            bodies.append(_Coded(raw, kind, start, data, b"", cut))
            pos = bodies[-1].end
        return bodies, cut

    def _begin_line(self, raw: bytes, pos: int, cut: int, last: bool) -> tuple[bytes, int, int] | None:
        """The first line from ``pos`` (starting before ``cut``) that begins a uuencoded or yEncoded
        body for Thunderbird's decoder: its kind, start and the start of the line after it (-1 when
        it is not complete yet)."""
        best: tuple[bytes, int, int] | None = None
        for kind, size, needle in ((b"u", _UU_PIECE, _UU_BEGIN), (b"y", _Y_PIECE, b"=ybegin line=")):
            at = pos
            while True:
                k = raw.find(needle, at, cut + len(needle) - 1)  # one that starts before the cut
                if k < 0 or (best is not None and k >= best[1]):
                    break
                at = k + 1
                if self._piece_column(raw, k) % size:
                    continue  # not where the decoder starts a line
                piece = next(_pieces(raw, k, size), None)
                if piece is None:
                    if not last:
                        best = (kind, k, -1)
                    break
                if kind == b"u" or _Y_BEGIN.match(raw, k, piece[1]):
                    best = (kind, k, piece[3])
                    break
        return best

    def _piece_column(self, raw: bytes, pos: int) -> int:
        """How far ``pos`` is from the start of its line (lines go on across chunks)."""
        line = max(raw.rfind(b"\n", 0, pos), raw.rfind(b"\r", 0, pos))
        return pos - line - 1 if line >= 0 else self._column + pos

    def _base64_runs(self, raw: bytes, cut: int, last: bool) -> list[_Run]:
        """The base64 runs that start before ``cut``, each knowing where the output may end for it."""
        runs = []
        tail = raw.rfind(b"\n") + 1  # the line not complete yet
        # A line starts at the buffer's start only when the output ended at a line's end (``_column``).
        first = 0 if self._column == 0 else raw.find(b"\n") + 1 or len(raw)
        spans = [m.span() for m in _B64_RUN.finditer(raw, first, tail)]
        if (
            last
            and first <= tail < len(raw)
            and raw[tail] in _B64_VALUES
            and _B64_TAIL.fullmatch(raw, tail, _line_end(raw))
        ):
            # The body (or a partial fetch of it) ends inside a base64 line: that line is read too.
            if spans and spans[-1][1] == tail:
                spans[-1] = (spans[-1][0], len(raw))
            else:
                spans.append((tail, len(raw)))
        for start, end in spans:
            if start >= cut:
                break
            # A run that reaches the incomplete last line may go on in the next chunk, unless that
            # line cannot be base64. Blank lines may come before more, but not without end (bounded
            # memory): past ``_B64_WAIT`` of them the run ends here, and what its end may begin is
            # broken (``blind``).
            may_go_on = (
                not last
                and (end == tail or not raw[end:tail].strip())
                and _B64_TAIL.fullmatch(raw, tail) is not None
            )
            blind = may_go_on and tail - end > _B64_WAIT
            open_end = may_go_on and not blind
            going_on = start == 0 and self._b64_prev is not None
            prev = self._b64_prev if going_on and self._b64_prev is not None else b""
            suspect, zero = going_on and self._b64_suspect, going_on and self._b64_zero
            judge = _judge_after(self._judge, prev)
            runs.append(_Run(raw, start, end, prev, open_end, cut, judge, suspect, zero, blind))
        return runs


# Lines of base64 characters. Padding may end a line or sit inside one: some mailers encode a body in
# pieces and join the results, and lenient clients decode on past the padding (``rewrite.streams``), so
# a run holds any number of streams. Blank lines between them are part of the run: decoders skip
# them, and a reference on both sides of one is one reference to them.
_B64_LINE = rb"[A-Za-z0-9+/][A-Za-z0-9+/=]*[ \t]*\r?\n"
_B64_RUN = re.compile(rb"(?m)^" + _B64_LINE + rb"(?:(?:[ \t]*\r?\n)*" + _B64_LINE + rb")*")
_B64_TAIL = re.compile(rb"[A-Za-z0-9+/=]{0,998}")  # an incomplete line that may still be base64
_B64_WAIT = 8192  # bytes a run holds back at most, waiting for a group boundary with look-ahead
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
        suspect: bool = False,
        zero: bool = False,
        blind: bool = False,
    ) -> None:
        self.start, self.end = start, end
        before = prev[-1:] or b"\n"  # the byte before, for the look-behind
        stream = raw[start:end].translate(None, _NOT_STREAM)
        whole = len(stream) - len(stream) % 4
        chars = stream[:whole]
        # Padding inside a group ("Q=UI"): Thunderbird reads groups of four across the run, an "="
        # only shortening its group's output; other lenient decoders read stream by stream, or skip
        # the "=". After the first such group the readings are out of step, with no byte offsets in
        # common to edit by, and such padding is no encoder's: the run is suspect from there on (in
        # the next chunks too, ``suspect``), and when any of these readings spells a reference, it is
        # zeroed (every character but "=" an "A", so each group keeps its length and decodes to NULs),
        # and so is the rest of it.
        self.zero, self.suspect = zero, suspect or zero
        self._zeroed_here = False
        if not (zero or suspect or b"=" not in chars or streams.groups_agree(chars)):
            self.suspect = True
        try:
            decoded = streams.decode(chars, "base64")
        except TransferError:
            decoded = b""
        if self.suspect and not self.zero:
            readings = [decoded, *_readings(chars)]
            decoded = readings[1]  # Thunderbird's
            # Judged as bytes whatever the caller knows of the body: a line of other text that looks
            # like such base64 ("XDlH8bT9ZBNS=3D340" in quoted-printable) reads as garbage here.
            self.zero = any(_textual(r, p) for r in readings for p in _matches(before + r, len(r)))
            self._zeroed_here = self.zero
        self.held = cut  # final as a whole: the run does not hold the output back
        final = len(decoded)  # decoded bytes that may be emitted
        if open_end or cut < end:
            self.held = self._latest_end(raw, min(cut, end), open_end, len(decoded))
            final = _decoded_len(raw[start : self.held].translate(None, _NOT_STREAM))
        self.prev = (prev + decoded[:final])[-_NEAR:]
        self._span_end = min(self.held, end) if self.zero else start
        self._edits: list[Edit] = []
        if not self.suspect:
            found = {p for p in _matches(before + decoded, final) if judge(decoded, p)}
            tail = _CUT_TAIL.search(decoded, 0, final) if blind else None
            if tail is not None and judge(decoded, tail.start()):
                found.add(tail.start())
            self._edits = [Edit(p, p + 1, b"_" if decoded[p] in b"/&\\" else b"x") for p in sorted(found)]
        if self._edits:
            # The encoded bytes of the ``final`` decoded ones: up to the end of their last group.
            self._span_end = self.held if self.held < end else _after_chars(raw, start, end, whole)

    def _latest_end(self, raw: bytes, stop: int, open_end: bool, decoded: int) -> int:
        """The latest line start before ``stop`` on a group boundary with the look-ahead after it.
        Looked for over ``_B64_WAIT`` bytes at most (bounded memory, linear work): a run without one
        there (a line that leaves every later line start inside a group, lines that decode to next
        to nothing) is no encoder's; rather than hold it all, it is zeroed, here and in the next
        chunks, and the output ends at its latest line start."""
        start = self.start
        count = len(raw[start:stop].translate(None, _NOT_STREAM))  # base64 characters before ``line``
        latest = raw.rfind(b"\n", start, stop) + 1 or start
        line = stop
        while line > start:
            after, line = line, raw.rfind(b"\n", start, line) + 1 or start
            count -= len(raw[line:after].translate(None, _NOT_STREAM))
            if count % 4 == 0 and (self.zero or not open_end or count // 4 * 3 <= decoded - _HOLD):
                return line
            if stop - line > _B64_WAIT:
                self._zeroed_here = self._zeroed_here or not self.zero
                self.zero = self.suspect = True
                return latest
            line -= 1
        return start

    def apply(self, raw: bytes, out: bytearray, cut: int) -> int:
        """Write the run's edits into ``out`` (the output up to ``cut``); the number made."""
        if self.zero:
            stop = min(self._span_end, cut)
            out[self.start : stop] = raw[self.start : stop].translate(_ZERO)
            return int(self._zeroed_here)  # one neutralization, however many chunks it takes
        if not self._edits or self._span_end > cut:
            return 0
        try:
            new = streams.apply_edits(raw[self.start : self._span_end], "base64", self._edits)
        except TransferError:  # (not expected: the groups agree) fail safe, as for a hostile run
            new = raw[self.start : self._span_end].translate(_ZERO)
        out[self.start : self._span_end] = new
        return len(self._edits)


# Zeroing base64: every character of the alphabet an "A" (six zero bits); "=" and the rest kept.
_ZERO = bytes(0x41 if c in _STREAM[:-1] else c for c in range(256))


def _groupwise(chars: bytes) -> bytes:
    """Base64 characters read in groups of four across all of them, as Thunderbird's decoder reads
    them (mimeenc.cpp): an "=" anywhere is six zero bits and shortens its group's output by one
    byte, to one byte at least."""
    full = binascii.a2b_base64(chars.replace(b"=", b"A"))
    pieces = []
    done = 0  # decoded bytes of ``full`` dealt with
    pad = chars.find(b"=")
    while pad >= 0:
        group = pad // 4
        pieces.append(full[done : 3 * group])
        pieces.append(full[3 * group : 3 * group + max(1, 3 - chars.count(b"=", 4 * group, 4 * group + 4))])
        done = 3 * group + 3
        pad = chars.find(b"=", 4 * group + 4)
    pieces.append(full[done:])
    return b"".join(pieces)


def _readings(chars: bytes) -> list[bytes]:
    """The readings of base64 characters with padding inside a group: Thunderbird's (``_groupwise``),
    and the characters without their "=" decoded from each of the first four, which holds the
    reading of a decoder that skips "=" and, but for the bytes around each padding, the reading
    stream by stream (``streams.decode``, the caller's)."""
    bare = chars.replace(b"=", b"")
    return [_groupwise(chars)] + [
        binascii.a2b_base64(bare[k : k + (len(bare) - k) // 4 * 4]) for k in range(4)
    ]


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


# -- uuencode and yEnc --------------------------------------------------------------------------------
# Thunderbird decodes a part in a uuencode or yEnc transfer encoding (libmime's mimeenc.cpp), and
# an uuencoded or yEncoded file inside untyped text (mimeunty.cpp), which it types by its name: a
# "begin 644 news.html" there renders as HTML. Without headers, a body in one of these encodings is
# found the way the decoder finds it, by its begin line, and read line by line as it reads it:
# a line ends at CR, LF or CRLF, and one longer than the decoder's buffer is cut into pieces of
# that many bytes (the last two bytes of each full piece lost), each decoded as a line of its own.
_UU_PIECE = 127  # bytes a uudecoder line holds (a 128-byte buffer and its NUL)
_Y_PIECE = 1001  # the same for yEnc
_CODED_WAIT = 8192  # bytes of lines that decode to nothing held back at most, waiting for look-ahead
_UU_BEGIN = b"begin "  # strncmp(line, "begin ", 6): a mode and a name are not checked
_Y_BEGIN = re.compile(rb"=ybegin line=[0-9]* size=[0-9]* name=")
_EOL = re.compile(rb"[\r\n]")
# uudecode's DEC(c) is (c - ' ') & 077: any byte is a digit. Translated to the base64 character of
# the same value, a line decodes through binascii.
_UU_AS_B64 = bytes(_STREAM[(c - 32) & 63] for c in range(256))
_Y_DECODE = bytes((c - 42) & 255 for c in range(256))


def _uu_value(c: int) -> int:
    return (c - 32) & 63


class _Piece:
    """One line as the decoder reads it: where its content lies in the buffer, and its decoding."""

    __slots__ = ("content", "decoded", "start")

    def __init__(self, start: int, content: bytes, decoded: bytes) -> None:
        self.start, self.content, self.decoded = start, content, decoded


def _pieces(raw: bytes, pos: int, size: int) -> Iterator[tuple[int, int, int, int]]:
    """The complete lines from ``pos`` as the decoder copies them: (start, content end, terminator
    byte or -1 for a piece cut at ``size``, start of the next). An unterminated last line is never
    decoded, so it is not yielded."""
    end = len(raw)
    while pos < end:
        m = _EOL.search(raw, pos, pos + size)
        if m is None:
            if end - pos < size:
                return  # incomplete
            # A full buffer: the line is cut, its last two bytes lost, and what follows is a line of
            # its own.
            yield pos, pos + size - 2, 0x0D, pos + size
            pos += size
            continue
        t = m.start()
        nxt = t + 1
        if raw[t] == 0x0D and raw[nxt : nxt + 1] == b"\n":
            nxt += 1
        if t - pos + 1 == size:  # the terminator filled the buffer: cut all the same
            yield pos, pos + size - 2, 0x0D, nxt
        else:
            yield pos, t, raw[t], nxt
        pos = nxt


def _uu_decode(line: bytes, nul: bool) -> bytes:
    """One uuencoded line as Thunderbird decodes it: as many bytes as its length character says;
    a line shorter than that is decoded as far as it goes and padded with NULs. ``line`` ends where
    a NUL ended it (``nul``: the decoder's C string ends there, without the line's terminator)."""
    n = _uu_value(line[0]) if line else 32  # a NUL's value
    avail = len(line) - (2 if nul else 1)  # strlen(line) - 2: the line's terminator counts
    lost = n - int(avail * 3 / 4)  # C's division, toward zero
    count = n - lost if lost > 0 else n
    if count <= 0:
        return bytes(max(lost, 0))
    groups = -(-count // 3)
    chars = line[1 : 1 + 4 * groups].translate(_UU_AS_B64).ljust(4 * groups, b"A")
    return binascii.a2b_base64(chars)[:count] + bytes(max(lost, 0))


def _y_decode(content: bytes, terminator: int) -> bytes:
    """One yEncoded line: each byte less 42, an escaped one ("=" before it) less 106 too; an "="
    that ends the line escapes the line's terminator."""
    if b"=" not in content:
        return content.translate(_Y_DECODE)
    out = bytearray()
    i = 0
    while True:
        k = content.find(b"=", i)
        if k < 0:
            out += content[i:].translate(_Y_DECODE)
            return bytes(out)
        out += content[i:k].translate(_Y_DECODE)
        if k + 1 == len(content):
            out.append((terminator - 106) & 255)
            return bytes(out)
        out.append((content[k + 1] - 106) & 255)
        i = k + 2


class _Coded:
    """One uuencoded or yEncoded body in the buffer, from its begin line (or the buffer's start, when
    it began in an earlier chunk) to its end line or as far as its lines are complete. Its decoded
    text is searched as text, and each byte to break is changed through the encoding: in uuencode
    the one or two characters that carry its bits, in yEnc the byte itself."""

    def __init__(self, raw: bytes, kind: bytes, start: int, data: int, prev: bytes, limit: int) -> None:
        self.kind, self.start, self.data = kind, start, data
        self.prev = prev
        self.pieces: list[_Piece] = []
        self.closed = self.blind = False
        self.end = data  # where the pieces read so far end
        uu = kind == b"u"
        size = _UU_PIECE if uu else _Y_PIECE
        for a, b, t, nxt in _pieces(raw, data, size):
            if nxt > limit:
                break
            content = raw[a:b]
            nul = content.find(b"\0")
            if nul >= 0:
                content = content[:nul]  # the decoder stops at a NUL (a C string)
            if a == b:
                self.end = nxt  # a blank line: ignored
                continue
            if content == b"end" if uu else content.startswith(b"=yend size="):
                self.end, self.closed = nxt, True
                break
            if uu or content:
                decoded = _uu_decode(content, nul >= 0) if uu else _y_decode(content, t)
                self.pieces.append(_Piece(a, content, decoded))
            self.end = nxt

    def held(self, cut: int) -> int:
        """The latest piece start not after ``cut`` where the output may end for this body: one with
        the decoded look-ahead after it, or the begin line (read again with the next chunk)."""
        if cut < self.data:
            return self.start
        if self.closed and self.end <= cut:
            return cut
        after, first = 0, self.end
        for p in reversed(self.pieces):
            after += len(p.decoded)
            if p.start <= cut and after > _HOLD:
                return p.start
            if p.decoded:
                first = p.start
        if self.end - first > _CODED_WAIT:
            # Lines that decode to nothing (blank ones, uuencode's empty "`") after the last bytes:
            # rather than hold them all, go on without the look-ahead, and break what the bytes at
            # the end may begin.
            self.blind = True
            return self.end
        return first

    def apply(self, out: bytearray, cut: int, judge: Callable[[bytes, int], bool]) -> int:
        """Break the references in the decoded text of the pieces before ``cut``; the number broken.
        Adds the decoded bytes before ``cut`` to ``prev`` (the last ``_NEAR`` decoded bytes emitted)."""
        done = [p for p in self.pieces if p.start < cut]
        text = b"".join(p.decoded for p in self.pieces)
        starts, final = [], 0  # where each piece of ``done`` starts in ``text``, and where they end
        for p in done:
            starts.append(final)
            final += len(p.decoded)
        judge = _judge_after(judge, self.prev)
        edits = {p for p in _matches((self.prev[-1:] or b"\n") + text, final) if judge(text, p)}
        if self.blind:
            tail = _CUT_TAIL.search(text, 0, final)
            if tail is not None and judge(text, tail.start()):
                edits.add(tail.start())
        self.prev = (self.prev + text[:final])[-_NEAR:]
        for e in edits:
            i = bisect_right(starts, e) - 1
            piece, j = done[i], e - starts[i]
            new = 0x5F if piece.decoded[j] in b"/&\\" else 0x78
            if self.kind == b"u":
                _uu_set(out, piece.start + 1 + 4 * (j // 3), j % 3, new)
            else:
                _y_set(out, piece, j, new)
        return len(edits)


def _uu_set(out: bytearray, group: int, index: int, new: int) -> None:
    """Make byte ``index`` of the uuencoded group at ``group`` decode to ``new``: the bits of the two
    characters that carry it change, each written as the usual uuencode character of its value."""
    bits = _set_bits(_group_bits(_uu_value(c) for c in out[group : group + 4].ljust(4, b"`")), index, new)
    for k in (index, index + 1):
        value = bits >> (18 - 6 * k) & 63
        if _uu_value(out[group + k]) != value:  # (a character of the same value is left as it is)
            out[group + k] = 32 + value if value else 0x60


def _y_set(out: bytearray, piece: _Piece, j: int, new: int) -> None:
    """Make decoded byte ``j`` of a yEncoded line ``new``: the byte that encodes it, or the escaped
    one after an "="; neither becomes a byte the encoding escapes (NUL, CR, LF, "=")."""
    pos, content = 0, piece.content
    for _ in range(j):
        pos += 2 if content[pos] == 0x3D else 1
    if content[pos] == 0x3D:
        out[piece.start + pos + 1] = (new + 106) & 255
    else:
        out[piece.start + pos] = (new + 42) & 255


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
    judge = _always_text if text else _textual
    skip = 0
    lead = len(data) - len(data.lstrip(b"\r\n")) if origin else 0  # a line break the cut left
    if origin and lead <= 2 and _base64_head_end(data, lead):
        # A chunk that starts inside base64 text: its groups may start at any of the first four
        # characters. Only the right one decodes to text. (Picking the reading with the most
        # references broken, as before, could pick garbage whose edits missed the text's.)
        skip = _alignment(data[lead:])
        if skip:
            n = StreamNeutralizer(qp=not decoded, text=text)
            at = _char_positions(data, lead, len(data), skip, from_end=False)[0] or [lead]
            after = at[-1] + 1  # the groups start after ``skip`` characters (a line break among them)
            out, edits = data[:after] + n.feed(data[after:], last=True), n.edits
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
        # The same in base64 text, through its encoding.
        edits += _base64_tail(buf, lead, skip, judge)
        if origin and lead <= 2:
            edits += _base64_head(buf, lead, skip, judge)
        out = bytes(buf)
    return out, edits


# -- the ends of a partial fetch in base64 ---------------------------------------------------------
# A reference cut by a chunk's end is broken in either half, as in text (``_CUT_TAIL``,
# ``_CUT_HEAD``), read through the encoding. Each chunk is judged alone, and the cut may also fall
# inside a base64 group, so that one byte's bits are split between the chunks: then neither half
# holds that byte. Where it begins a reference, the rest of the reference is in the next chunk
# ("ttps://", "/host" after a split "/", "#104;" after "&"), whose head is broken, except after a
# split "\\" of a CSS escape ("68ttps:"): a head that starts with a hexadecimal digit after a byte
# whose known bits may be a "\\" loses that digit.
_B64_VALUES = {c: i for i, c in enumerate(_STREAM[:-1])}
# Where a chunk starts inside base64 lines: the end of one (a single character, maybe), then more.
_B64_HEAD = re.compile(rb"[A-Za-z0-9+/=]+[ \t]*\r?\n(?:[A-Za-z0-9+/][A-Za-z0-9+/=]+[ \t]*\r?\n)*")
_EDGE_CHARS = 1024  # base64 characters read at each end: enough to judge whether they are text
_HEX = frozenset(b"0123456789abcdefABCDEF")
# What follows the backslash of an escape that matters: the hexadecimal digits of a letter of a
# scheme or of "url(", or of a slash, then the rest of it ("68ttps:", "75rl(", "2f/").
_ESCAPED_URL = re.compile(rb"[0-9a-fA-F]{1,6}[^:(/\\\n]{0,5}[:(/\\]")


def _alignment(data: bytes) -> int:
    """How many base64 characters at the start of ``data`` end a group begun in an earlier chunk:
    the count whose reading of the first characters looks most like text."""
    chars = data[:512].translate(None, _NOT_STREAM).split(b"=")[0]

    def printable(skip: int) -> int:
        body = chars[skip:]
        text = binascii.a2b_base64(body[: len(body) // 4 * 4])
        return len(text) - len(text.translate(None, _PRINTABLE))

    return max(range(4), key=printable)


_PRINTABLE = bytes(range(32, 127)) + b"\t\r\n"


def _char_positions(
    data: bytes | bytearray, start: int, end: int, count: int, from_end: bool
) -> tuple[list[int], bool]:
    """The offsets of up to ``count`` base64 characters of ``data[start:end]`` from one end, in order,
    up to padding, if any (a stream ends there: no reference goes on across it); and whether the
    padding stopped them."""
    found: list[int] = []
    span = range(end - 1, start - 1, -1) if from_end else range(start, end)
    for i in span:
        c = data[i]
        if c == 0x3D:
            return (found[::-1] if from_end else found), True
        if c in _B64_VALUES:
            found.append(i)
            if len(found) == count:
                break
    return (found[::-1] if from_end else found), False


def _group_bits(values: Iterable[int]) -> int:
    """The 24 bits of a group of four 6-bit values (base64 or uuencode), first value highest."""
    bits = 0
    for v in values:
        bits = bits << 6 | v
    return bits


def _set_bits(bits: int, index: int, new: int) -> int:
    """The 24 bits of a group with its byte ``index`` (0 to 2) replaced by ``new``: the bits of the
    one or two characters that carry it change."""
    shift = 16 - 8 * index
    return bits & ~(0xFF << shift) | new << shift


def _b64_bits(out: bytearray, group: list[int | None]) -> int:
    """The bits of the base64 group whose characters sit at ``group`` (None, zero bits, for those in
    another chunk)."""
    return _group_bits(0 if p is None else _B64_VALUES[out[p]] for p in group)


def _set_byte(out: bytearray, group: list[int | None], index: int, new: int) -> None:
    """Make byte ``index`` of the base64 group whose characters sit at ``group`` (None for those in
    another chunk) decode to ``new``, changing the one or two characters that carry its bits."""
    bits = _set_bits(_b64_bits(out, group), index, new)
    for k in (index, index + 1):
        p = group[k]
        if p is not None:
            out[p] = _STREAM[bits >> (18 - 6 * k) & 63]


def _decode_groups(out: bytearray, groups: list[list[int | None]]) -> list[tuple[list[int | None], int, int]]:
    """The bytes of ``groups`` whose bits are all in this chunk: (group, index, value) each."""
    found = []
    for group in groups:
        bits = _b64_bits(out, group)
        for index in range(3):
            if group[index] is not None and group[index + 1] is not None:
                found.append((group, index, bits >> (16 - 8 * index) & 0xFF))
    return found


def _base64_tail(out: bytearray, lead: int, skip: int, judge: Callable[[bytes, int], bool]) -> int:
    """Break a reference cut by the end of a chunk that ends in base64 text (``skip`` characters
    after ``lead`` end a group begun in the chunk before)."""
    line = out.rfind(b"\n") + 1
    end = _line_end(out)
    if line < end and _B64_TAIL.fullmatch(out, line, end) is None:
        return 0  # the chunk ends on a line of text
    # The run of whole base64 lines before that last line, if it reaches it.
    run = next((m for m in _B64_RUN.finditer(out, max(0, line - 2048), line) if m.end() == line), None)
    start = line if run is None else run.start()
    chars, padded = _char_positions(out, start, end, _EDGE_CHARS, from_end=True)
    if not chars:
        return 0
    before = len(out[start:end].translate(None, _NOT_STREAM)) - len(chars)
    # Characters ending a group that began before them (none after padding, which ends a group).
    first = 0 if padded else ((skip if start <= lead else 0) - before) % 4
    partial = (len(chars) - first) % 4
    groups: list[list[int | None]] = [[*chars[i : i + 4]] for i in range(first, len(chars) - partial, 4)]
    if partial:
        groups.append([*chars[len(chars) - partial :], *[None] * (4 - partial)])

    def cut_tail(text: bytes) -> list[int]:
        tail = _CUT_TAIL.search(text)
        return [] if tail is None else [tail.start()]

    return _break_edge(out, groups, judge, cut_tail)


def _base64_head_end(data: bytes | bytearray, lead: int) -> int:
    """Where the base64 characters a chunk starts with (after ``lead`` bytes of a line break) end;
    0 when it starts otherwise."""
    m = _B64_HEAD.match(data, lead)
    end = lead if m is None else m.end()
    # And the last line, when the chunk ends in it.
    stop = _line_end(data)
    if end < stop and b"\n" not in data[end:stop] and _B64_TAIL.fullmatch(data, end, stop):
        return stop
    return end if m is not None else 0


def _base64_head(out: bytearray, lead: int, skip: int, judge: Callable[[bytes, int], bool]) -> int:
    """Break a reference cut by the start of a chunk that starts in base64 text (after ``lead``
    bytes of a line break; ``skip`` characters end a group begun in the chunk before)."""
    end = _base64_head_end(out, lead)
    if not end:
        return 0
    chars = _char_positions(out, lead, end, _EDGE_CHARS, from_end=False)[0]
    if len(chars) < max(skip, 1):
        return 0
    whole = skip + (len(chars) - skip) // 4 * 4
    groups: list[list[int | None]] = [[*[None] * (4 - skip), *chars[:skip]]] if skip else []
    groups += [[*chars[i : i + 4]] for i in range(skip, whole, 4)]

    def cut_head(text: bytes) -> list[int]:
        head = _CUT_HEAD.match(text)
        found = [] if head is None else [head.end() - 1]
        if skip and text and text[0] in _HEX and _ESCAPED_URL.match(text):
            # The byte before, split between the chunks: its low bits (here) may be a backslash's.
            low = 6 - 2 * (skip - 1)  # bits of it in the first group's characters here: 6, 4 or 2
            value = _b64_bits(out, groups[0]) >> (16 - 8 * (3 - skip)) & 0xFF  # byte 3 - skip of that group
            if (value ^ 0x5C) & ((1 << low) - 1) == 0:
                found.append(0)
        return found

    return _break_edge(out, groups, judge, cut_head)


def _break_edge(
    out: bytearray,
    groups: list[list[int | None]],
    judge: Callable[[bytes, int], bool],
    cut: Callable[[bytes], list[int]],
) -> int:
    """Break the references in the bytes ``groups`` decode to at a chunk's end, and the halves of
    references the chunk's end cuts, at the offsets ``cut(text)``. The number broken.

    The reading of the whole chunk decodes whole groups only: it misses the bytes of a group cut by
    the chunk's end (and the look-ahead they give), and in a chunk that starts inside a group, the
    bytes of that group's end. Hence this second reading of each end."""
    known = _decode_groups(out, groups)
    text = bytes(v for _, _, v in known)
    # The byte before the window is not known here: a letter, after which nothing at its start counts
    # (what does was seen in context by the reading of the whole chunk, or is a cut reference's head).
    hits = {p for p in _matches(b"a" + text, len(text)) if judge(text, p)}
    hits.update(p for p in cut(text) if judge(text, p))
    for p in hits:
        group, index, value = known[p]
        _set_byte(out, group, index, 0x5F if value in b"/&\\" else 0x78)
    return len(hits)


def _line_end(data: bytes | bytearray) -> int:
    """Where the characters of ``data``'s last line end: before a CR the cut left before its LF, and
    before trailing spaces (without copying what may be a whole section)."""
    end = len(data)
    while end and data[end - 1] in b" \t\r":
        end -= 1
    return end


def _on_base64_line(data: bytes, pos: int) -> bool:
    start = data.rfind(b"\n", 0, pos) + 1
    end = data.find(b"\n", pos)
    line = data[start : end if end >= 0 else len(data)].rstrip(b"\r")
    return not line.translate(None, _STREAM)
