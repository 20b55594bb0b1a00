"""FETCH: what to ask the server for, and how to rewrite what it sends back. No I/O.

The one rule behind everything here: a body section the client sees is the matching byte range of
``rewrite(whole message)``. The engine keeps length and line count (and decoded length), so sizes
the server reports (literal counts, RFC822.SIZE, BODYSTRUCTURE, BINARY.SIZE) stay true, a chunk
``BODY[]<o.n>`` is ``rewritten[o:o+n]``, and a part or TEXT fetch equals that part of the whole.

A section alone (``BODY[2]``, ``BODY[TEXT]``, a partial) does not carry what the rewrite needs, so
``plan_fetch`` adds ``BODY.PEEK[]`` to the client's command plus a marker item,
``BODY.PEEK[HEADER.FIELDS (X-MAILPROXY-WHOLE)]``. The marker comes back inside every FETCH response
of that command, so ``rewrite_fetch`` knows, from the response alone, that the whole body in it is
ours to strip: no guessing which of several pipelined commands a response belongs to. When the
rewritten whole is already cached (a chunk walk after its first chunk), the command goes unchanged
and the chunks are cut from the cache.

Header sections follow the same rule: the engine renames read-receipt fields and the Content-Type
of external bodies (same length), so ``BODY[2.MIME]`` or an attached message's header is cut from
the rewritten whole like a part. The message's own header is the exception: clients list it for
every message, so it is never worth a whole-message fetch; when the rewritten whole is not at
hand and the rewriter could change the header (``FetchContext.header_may_change``), the header
section goes through the rewriter alone, which decides those renames from the header.
BODYSTRUCTURE is left as the server sent it, although it still names the URL of an external body
the engine stopped: clients take a part's header from ``BODY[n.MIME]`` (Thunderbird's IMAP body
shell uses BODYSTRUCTURE only to choose what to fetch) and make of an external body at most a link
to click (Thunderbird's libmime, mimeebod.cpp), so nothing is fetched when a message is opened; and
whether the engine stops it depends on the policy and the whole message, which a listing of
BODYSTRUCTUREs does not fetch.

When that rule cannot be followed (a command the planner could not extend because it carries
literals, items the server split over several responses, a part the server numbers differently
from ``mime``, a response that does not parse, a rewriter that changed the length), the body is
neutralized (``rewrite.neutralize``) instead of passed on: invariant 3. Each case is counted and logged.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass

from mailproxy import mime
from mailproxy.imap._protocol import ParseError, scan_list, scan_literal, scan_value
from mailproxy.rewrite.neutralize import neutralize_section
from mailproxy.rewrite.transfer import TransferError, decode

log = logging.getLogger(__name__)

MARKER_FIELD = b"X-MAILPROXY-WHOLE"
_EXTENSION = b"BODY.PEEK[] BODY.PEEK[HEADER.FIELDS (" + MARKER_FIELD + b")]"

_SEQ_SINGLE = re.compile(rb"[0-9]+\Z")
_FETCH_HEAD = re.compile(rb"\* ([0-9]+) FETCH \(", re.IGNORECASE)
# An item name as requested or echoed: NAME, NAME[section], NAME[section]<o> or <o.n>.
_ITEM = re.compile(rb"([A-Za-z0-9.]+)(?:\[([^\]]*)\])?(?:<([0-9]+)(?:\.([0-9]+))?>)?\Z")
_PATH = re.compile(rb"((?:[0-9]+\.)*[0-9]+)?(?:\.?(TEXT|HEADER|MIME|HEADER\.FIELDS.*))?\Z", re.DOTALL)


@dataclass(frozen=True, slots=True)
class Item:
    """A parsed fetch item name. ``kind`` is BODY, BINARY or the name itself (RFC822, UID, ...)."""

    kind: bytes
    path: tuple[int, ...] = ()
    suffix: bytes = b""  # TEXT, HEADER, MIME, HEADER.FIELDS (...) or b""
    origin: int | None = None
    sectioned: bool = False  # the name had a [section]


def parse_item(name: bytes) -> Item | None:
    """The meaning of a fetch-att (request form) or msg-att name (response form); None if
    unknown."""
    m = _ITEM.match(name)
    if m is None:
        return None
    base = m.group(1).upper()
    origin = int(m.group(3)) if m.group(3) is not None else None
    if base in (b"RFC822", b"RFC822.TEXT", b"RFC822.HEADER"):
        suffix = base[7:]
        return Item(kind=b"BODY", suffix=suffix, sectioned=True)
    if m.group(2) is None:
        return Item(kind=base)
    kind = base.removesuffix(b".PEEK")
    if kind not in (b"BODY", b"BINARY", b"BINARY.SIZE"):
        return Item(kind=base)
    pm = _PATH.match(m.group(2).upper())
    if pm is None:
        return None
    path = tuple(int(x) for x in pm.group(1).split(b".")) if pm.group(1) else ()
    return Item(kind=kind, path=path, suffix=pm.group(2) or b"", origin=origin, sectioned=True)


def _needs_whole(item: Item) -> bool:
    """Whether serving ``item`` rewritten takes the whole message (everything but full BODY[] and the
    message's own header, which a listing fetches for every message)."""
    if item.kind == b"BINARY":
        return True
    if item.kind != b"BODY" or not item.sectioned:
        return False
    if item.suffix in (b"", b"TEXT"):
        return bool(item.path) or item.suffix == b"TEXT" or item.origin is not None
    # A part's MIME header, an attached message's header, a piece of a header: the engine may rename
    # a field in it, and cannot judge it alone.
    return bool(item.path) or item.origin is not None


def _is_whole(item: Item) -> bool:
    return (
        item.kind == b"BODY" and item.sectioned and not item.path and not item.suffix and item.origin is None
    )


@dataclass(frozen=True, slots=True)
class FetchPlan:
    """What to send upstream for one FETCH command, and what the proxy needs to remember about
    it."""

    line: bytes  # the command line to send (the client's, or extended)
    extended: bool  # BODY.PEEK[] and the marker were added
    uid: int | None = None  # the single UID of a UID FETCH, when it names one message


def plan_fetch(line: bytes, rest: bytes, *, uid_command: bool, cached: Callable[[int], bool]) -> FetchPlan:
    """Plan a FETCH whose first line is ``line`` and whose text after the command name is ``rest``.

    Never raises: a command it cannot read goes upstream unchanged (the server judges it).
    """
    try:
        return _plan(line, rest, uid_command=uid_command, cached=cached)
    except (ParseError, IndexError, ValueError):
        return FetchPlan(line=line, extended=False)


def _plan(line: bytes, rest: bytes, *, uid_command: bool, cached: Callable[[int], bool]) -> FetchPlan:
    body = rest.rstrip(b"\r\n")
    sp = body.find(b" ")
    if sp < 0:
        return FetchPlan(line=line, extended=False)
    seqset = body[:sp]
    items_at = sp + 1
    if body[items_at : items_at + 1] == b"(":
        items_end = scan_list(body, items_at)
        inner = body[items_at + 1 : items_end - 1]
    else:
        items_end = scan_value(body, items_at)
        inner = body[items_at:items_end]
    names: list[bytes] = []
    pos = 0
    while pos < len(inner):
        if inner[pos : pos + 1] == b" ":
            pos += 1
            continue
        end = scan_value(inner, pos)
        names.append(inner[pos:end])
        pos = end
    items = [it for it in map(parse_item, names) if it is not None]
    uid = int(seqset) if uid_command and _SEQ_SINGLE.match(seqset) else None
    if not any(map(_needs_whole, items)) or any(map(_is_whole, items)):
        return FetchPlan(line=line, extended=False, uid=uid)
    if uid is not None and cached(uid):
        return FetchPlan(line=line, extended=False, uid=uid)
    # The command's text before the item list is kept byte for byte; the item list gains the
    # extension.
    prefix_len = len(line.rstrip(b"\r\n")) - len(rest.rstrip(b"\r\n"))
    start = prefix_len + items_at
    stop = prefix_len + items_end
    if line[start : start + 1] == b"(":
        new = line[: stop - 1] + b" " + _EXTENSION + line[stop - 1 :]
    else:
        new = line[:start] + b"(" + line[start:stop] + b" " + _EXTENSION + b")" + line[stop:]
    return FetchPlan(line=new, extended=True, uid=uid)


# -- responses -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Att:
    item: Item | None
    start: int  # offset of the name
    vstart: int  # offset of the value
    vend: int  # end of the value
    cstart: int  # content span (literal or quoted contents); -1 for atoms, NIL and lists
    cend: int
    quoted: bool


@dataclass(slots=True)
class FetchContext:
    """What rewriting a FETCH response needs from the session; plain callables keep it testable."""

    rewrite: Callable[[bytes], bytes]  # whole message -> rewritten whole (same length)
    lookup: Callable[[int], bytes | None]  # UID -> rewritten whole, from the cache
    store: Callable[[int, bytes], None]  # remember a rewritten whole by UID
    # Whether the rewriter could change a header block containing these bytes (None: unknown, so a
    # header section is rewritten only when its whole message is at hand).
    header_may_change: Callable[[bytes], bool] | None = None
    unrewritten: int = 0  # body items that could not be rewritten, neutralized instead (logged)


def _parse_response(data: bytes) -> tuple[int, list[_Att], int] | None:
    m = _FETCH_HEAD.match(data)
    if m is None:
        return None
    pos = m.end()
    atts: list[_Att] = []
    n = len(data)
    while True:
        while data[pos : pos + 1] == b" ":
            pos += 1
        if pos >= n:
            raise ParseError("unterminated FETCH response")
        if data[pos] == 0x29:  # )
            break
        name_end = scan_value(data, pos)
        if data[name_end : name_end + 1] != b" ":
            raise ParseError("FETCH item without a value")
        vstart = name_end + 1
        c = data[vstart : vstart + 1]
        cstart = cend = -1
        quoted = False
        if c in (b"{", b"~"):
            cstart, cend = scan_literal(data, vstart)
            vend = cend
        elif c == b'"':
            vend = scan_value(data, vstart)
            cstart, cend, quoted = vstart + 1, vend - 1, True
        else:
            vend = scan_value(data, vstart)
        atts.append(_Att(parse_item(data[pos:name_end]), pos, vstart, vend, cstart, cend, quoted))
        pos = vend
    return int(m.group(1)), atts, pos


def _content(data: bytes, att: _Att) -> bytes | None:
    if att.cstart < 0:
        return None
    raw = data[att.cstart : att.cend]
    if att.quoted:
        raw = re.sub(rb"\\(.)", rb"\1", raw)
    return raw


def _resolve(root: mime.Part, path: tuple[int, ...]) -> mime.Part | None:
    """The part an IMAP section path names (RFC 3501 section 6.4.5), or None."""
    part: mime.Part | None = None
    for k in path:
        container = root if part is None else part
        if part is not None and part.content_type == "message/rfc822":
            if not part.children:
                return None
            container = part.children[0]
        if container.is_multipart:
            if not 1 <= k <= len(container.children):
                return None
            part = container.children[k - 1]
        elif k == 1:
            part = container  # a non-multipart message's part 1 is its body
        else:
            return None
    return part


def _span(rewritten: bytes, item: Item) -> tuple[int, int, str] | None:
    """(start, end, transfer encoding) of the bytes a BODY/BINARY item names within the whole
    message."""
    if not item.path:
        if item.suffix == b"":
            return 0, len(rewritten), "7bit"
        root = mime.parse(rewritten)
        if item.suffix == b"TEXT":
            return root.body_start, len(rewritten), "7bit"
        return None
    root = mime.parse(rewritten)
    part = _resolve(root, item.path)
    if part is None:
        return None
    if item.suffix == b"":
        return part.body_start, part.end, part.cte
    if part.content_type != "message/rfc822" or not part.children:
        return None
    inner = part.children[0]
    if item.suffix == b"TEXT":
        return inner.body_start, inner.end, "7bit"
    return None


def _section_bytes(whole: bytes, item: Item) -> bytes | None:
    span = _span(whole, item)
    if span is None:
        return None
    start, end, cte = span
    sect = whole[start:end]
    if item.kind == b"BINARY" and item.path:
        try:
            sect = decode(sect, cte)
        except TransferError:
            return None
    if item.origin is not None:
        sect = sect[item.origin :]
    return sect


def _is_marker(data: bytes, a: _Att) -> bool:
    return (
        a.item is not None
        and a.item.suffix.startswith(b"HEADER.FIELDS")
        and MARKER_FIELD in data[a.start : a.vstart].upper()
    )


def _header_block(msg: bytes, item: Item) -> bytes | None:
    """The header block a header section (HEADER, HEADER.FIELDS..., MIME) is taken from: the
    message's, an attached message's, or a part's own (its blank line included)."""
    root = mime.parse(msg)
    if not item.path:
        return msg[: root.body_start]
    part = _resolve(root, item.path)
    if part is None:
        return None
    if item.suffix == b"MIME":
        return msg[part.start : part.body_start]
    if part.content_type != "message/rfc822" or not part.children:
        return None
    inner = part.children[0]
    return msg[inner.start : inner.body_start]


_FIELD_NAME = re.compile(rb'"((?:[^"\\]|\\.)*)"|([^\s()"]+)')
_LINE = re.compile(rb"[^\n]*\n|[^\n]+")


def _select(block: bytes, suffix: bytes) -> bytes:
    """What the server answers for ``HEADER.FIELDS (names)`` (or ``.NOT``) of a header block: the
    fields named (or not), continuation lines included, in order, then an empty line."""
    negate = suffix.startswith(b"HEADER.FIELDS.NOT")
    names = {q or a for q, a in _FIELD_NAME.findall(suffix, suffix.find(b"("))}
    out: list[bytes] = []
    keep = False
    for m in _LINE.finditer(block):
        line = m.group()
        if line in (b"\r\n", b"\n"):
            break
        if line[:1] not in (b" ", b"\t"):
            # A line without a colon is a field named by all of it, as far as the server goes.
            keep = (line.split(b":", 1)[0].rstrip(b" \t\r\n").upper() in names) != negate
        if keep:
            out.append(line)
    return b"".join(out) + b"\r\n"


def _header_section(msg: bytes, item: Item) -> bytes | None:
    block = _header_block(msg, item)
    if block is not None and item.suffix.startswith(b"HEADER.FIELDS"):
        return _select(block, item.suffix)
    return block


def _partial(section: bytes, item: Item, served: int) -> bytes:
    """The part of ``section`` a partial fetch names (the server sent ``served`` octets of it)."""
    return section if item.origin is None else section[item.origin :][:served]


def _wants_rewrite(item: Item | None) -> bool:
    return item is not None and item.sectioned and item.kind in (b"BODY", b"BINARY")


def _is_header(item: Item) -> bool:
    return item.suffix.startswith(b"HEADER") or item.suffix == b"MIME"


def rewrite_fetch(data: bytes, ctx: FetchContext) -> bytes | None:
    """``data`` (one ``* n FETCH`` response) with its bodies rewritten; None when nothing changes.

    A body that cannot be served from the rewritten message is neutralized (``rewrite.neutralize``), never
    passed on unfiltered (invariant 3); each is counted in ``ctx.unrewritten`` and logged. Never
    raises on what the server sent: a response it cannot parse is neutralized whole.
    """
    try:
        parsed = _parse_response(data)
    except (ParseError, IndexError, ValueError):
        log.warning("unparsable FETCH response: neutralized whole")
        ctx.unrewritten += 1
        new, _ = neutralize_section(data)
        return new if new != data else None
    if parsed is None:
        return None
    _msn, atts, close = parsed
    markers = [a for a in atts if _is_marker(data, a)]
    bodies = [
        a for a in atts if a.item is not None and a.item.kind in (b"BODY", b"BINARY") and a.item.sectioned
    ]
    if not bodies:
        return None
    uid: int | None = None
    for a in atts:
        if a.item is not None and a.item.kind == b"UID" and not a.item.sectioned:
            try:
                uid = int(data[a.vstart : a.vend])
            except ValueError:
                uid = None
    whole_att = next((a for a in bodies if a.item is not None and _is_whole(a.item) and a.cstart >= 0), None)
    whole = _content(data, whole_att) if whole_att is not None else None

    rewritten: bytes | None = None
    if uid is not None:
        rewritten = ctx.lookup(uid)
        if rewritten is not None and whole is not None and len(rewritten) != len(whole):
            rewritten = None  # a stale entry cannot be right; the fresh body wins
    if rewritten is None and whole is not None:
        rewritten = ctx.rewrite(whole)
        if len(rewritten) != len(whole):
            log.error("rewriter changed the message length; the message is neutralized instead")
            ctx.unrewritten += 1
            rewritten, _ = neutralize_section(whole)
        elif uid is not None and (markers or len(bodies) > 1):
            ctx.store(uid, rewritten)
        if rewritten is whole and not markers:
            return None  # the rewriter left the message as it was, so every section of it too

    strip: list[_Att] = []
    if markers:
        strip = markers + ([whole_att] if whole_att is not None else [])
    replace: list[tuple[_Att, bytes]] = []
    for a in bodies:
        if any(a is s for s in strip) or a.item is None or not _wants_rewrite(a.item):
            continue
        original = _content(data, a)
        if original is None:
            continue  # NIL stays NIL (H6)
        if _is_header(a.item):
            served = _served_header(ctx, a.item, original, rewritten, whole)
        else:
            body = _served(a.item, original, rewritten, whole if a is not whole_att else None)
            if body is None:
                ctx.unrewritten += 1
                body, _ = neutralize_section(original, decoded=a.item.kind == b"BINARY", origin=a.item.origin)
            served = body
        if served != original:
            replace.append((a, served))
    if not replace and not strip:
        return None
    return _splice(data, replace, strip, atts, close)


def _served(item: Item, original: bytes, rewritten: bytes | None, whole: bytes | None) -> bytes | None:
    """The bytes the client gets for a section the server sent as ``original``: its span of the
    rewritten message, or None when there is no rewritten message or the section cannot be found in
    it (the caller neutralizes it then)."""
    if rewritten is None:
        log.warning("FETCH section without its whole message: neutralized")
        return None
    new = _section_bytes(rewritten, item)
    if new is not None and item.origin is not None:
        # A partial names its count only in the request; the response's literal is the count
        # actually served (shorter at the end), which the same-length rewrite keeps.
        new = new[: len(original)]
    if new is not None and item.kind == b"BINARY" and len(new) != len(original):
        # The engine kept the encoded length but not the decoded one. Fitting the bytes to
        # BINARY.SIZE (space padding, or a cut at the end) beats serving the tracker.
        log.debug("decoded length of a rewritten part differs by %d", len(new) - len(original))
        new = new[: len(original)].ljust(len(original), b" ")
    if new is None or len(new) != len(original):
        log.warning("FETCH section could not be located in the rewritten message: neutralized")
        return None
    if whole is not None:
        expect = _section_bytes(whole, item)
        if expect is None or expect[: len(original)] != original:
            # The server numbers the parts differently (a malformed message, say).
            log.warning("FETCH section differs from the proxy's view of the message: neutralized")
            return None
    return new


def _served_header(
    ctx: FetchContext, item: Item, original: bytes, rewritten: bytes | None, whole: bytes | None
) -> bytes:
    """The bytes the client gets for a header section: that section of the rewritten message, so a
    client sees the same header whether it fetches the whole or the section (the engine renames
    read-receipt fields and the Content-Type of external bodies, keeping their length).

    Without the rewritten message at hand (a listing of the message's own header, say), a section
    the rewriter could change goes through it on its own: a header block is a message without a
    body, and the engine decides those renames from the header alone. A HEADER.FIELDS section then
    loses the fields renamed (their new names are not among those asked for), as it would from the
    rewritten message.
    """
    gate = ctx.header_may_change
    if gate is not None and not gate(original):
        return original  # nothing in it the rewriter renames: what the rewritten message holds
    if rewritten is not None:
        new = _header_section(rewritten, item)
        if new is not None:
            new = _partial(new, item, len(original))
            if whole is not None:
                old = _header_section(whole, item)
                fits = old is not None and _partial(old, item, len(original)) == original
            else:  # a cached rewrite: renames keep a block's length
                fits = item.suffix.startswith(b"HEADER.FIELDS") or len(new) == len(original)
            if fits:
                return new
        log.warning("FETCH header section differs from the proxy's view of the message")
    if gate is None:
        return original
    new = ctx.rewrite(original)
    if len(new) != len(original):
        log.error("rewriter changed the length of a header; its fields are left as they are")
        return original
    return _select(new, item.suffix) if item.suffix.startswith(b"HEADER.FIELDS") else new


def _splice(
    data: bytes, replace: list[tuple[_Att, bytes]], strip: list[_Att], atts: list[_Att], close: int
) -> bytes:
    new_content = {id(a): new for a, new in replace}

    def value(a: _Att, new: bytes) -> list[bytes]:
        """The item's value with ``new`` contents, from the value's start."""
        if a.quoted or len(new) != a.cend - a.cstart:
            # A literal of the new size: escaping a quoted body could change its length, and a
            # header section may lose renamed fields.
            eight = b"~" if data[a.vstart : a.vstart + 1] == b"~" else b""
            return [eight + b"{%d}\r\n" % len(new), new]
        return [data[a.vstart : a.cstart], new]  # same size: the literal's head as it was

    def render(a: _Att) -> list[bytes]:
        new = new_content.get(id(a))
        if new is None:
            return [data[a.start : a.vend]]
        return [data[a.start : a.vstart], *value(a, new)]

    if not strip:
        # Contents change in place, every other byte stays as the server sent it.
        out: list[bytes] = []
        pos = 0
        for a, new in sorted(replace, key=lambda r: r[0].start):
            out += [data[pos : a.vstart], *value(a, new)]
            pos = a.vend
        out.append(data[pos:])
        return b"".join(out)
    kept = [a for a in atts if all(a is not s for s in strip)]
    if not kept:
        return b""  # the response carried only what the proxy asked for
    out = [data[: atts[0].start]]
    for i, a in enumerate(kept):
        if i:
            out.append(b" ")
        out += render(a)
    out.append(data[close:])
    return b"".join(out)
