"""What a leaf is to the clients that read it otherwise than as text or an attachment, and a part's body
neutralized as they read it.

``leaf_reading`` says why a leaf the engine does not rewrite (no markup type) loads something in a client
(by Evolution's rules, ``readings.evolution``, S/MIME signed data, ``readings.smime``, and the files
in Thunderbird's untyped text, ``readings.untyped``);
``neutralized_leaf`` and ``neutralized_body`` break every remote reference in a part as clients read it,
in the parts they decode and parse as messages too (a reference in an encoded part inside an encoded
part is out of the neutralizer's sight).
"""

from __future__ import annotations

import binascii
import logging
from collections.abc import Callable

from mailproxy import mime
from mailproxy.readings import evolution, smime
from mailproxy.readings.common import MARKUP, blanked, decode_leniently, loads_remote
from mailproxy.readings.encodings import QP_BARE_CR
from mailproxy.readings.untyped import opens_files
from mailproxy.rewrite.neutralize import neutralize_section
from mailproxy.rewrite.streams import apply_edits, decode
from mailproxy.rewrite.transfer import Edit, TransferError

log = logging.getLogger(__name__)

# Parts inside parts (messages a client decodes and parses, S/MIME signed data): deeper than this,
# blanked. Signed data is read twice at each level (for what loads in it, then neutralized when it is
# ambiguous), 2^depth readings of the innermost: it is blanked inside more than a few such parts.
_MAX_NESTING = 8
_MAX_SIGNED_NESTING = 4


_WHY = {
    "messages": "holds messages or a MIME part Evolution decodes and renders",
    "markup": "is HTML to Evolution, which guesses its type",
    "markdown": "is markdown Evolution renders with remote images",
    "vcard": "is a vCard Evolution renders with a remote picture or markup",
    "calendar": "is a calendar Evolution renders with remote content",
    "signed": "is S/MIME signed data clients unwrap and render, with remote content",
}


def leaf_reading(raw: bytes, part: mime.Part, *, untyped: bool = False) -> str | None:
    """Why clients read a (non-markup) leaf as markup, markdown or messages where the engine reads
    nothing to rewrite, or None. ``untyped``: Thunderbird reads the leaf as untyped text
    (``readings.untyped``)."""
    if untyped and opens_files(raw, part.body_start, part.end):
        return "is untyped text with uuencoded or yEncoded files Thunderbird renders by their names"
    kind = _kind(raw[part.body_start : part.end], part, 0)
    return None if kind is None else _WHY[kind]


def _kind(encoded: bytes, part: mime.Part, depth: int) -> str | None:
    """What Evolution reads a leaf (inside ``depth`` parts) as where the engine sees nothing to rewrite:
    "messages" (it decodes and parses them), "markup", "markdown", a "vcard" or a "calendar" that loads
    something, "signed" data whose entity does or cannot be read, or None."""
    ctype = part.content_type
    if ctype in evolution.MESSAGES or ctype == evolution.MBOX:
        return "messages"
    if ctype in smime.PKCS7:
        der = decode_leniently(encoded, part)
        if not smime.is_signed_data(der):
            return None  # enveloped (encrypted) data: out of anyone's sight but the reader's
        content = smime.signed_content(der) if depth < _MAX_SIGNED_NESTING else None
        return "signed" if content is None or _entity_loads(content, depth + 1) else None
    if ctype == evolution.MARKDOWN:
        kind: str | None = "markdown"
    elif ctype in evolution.VCARDS:
        kind = "vcard"
    elif ctype in evolution.CALENDARS:
        kind = "calendar"
    elif ctype.startswith("text/"):
        if part.cte == "quoted-printable" and QP_BARE_CR.search(encoded) is None:
            # The soft breaks and escapes camel reads (camel_quoted_decode_step), binascii several times
            # faster than ``decode`` (which a "=" before a bare CR needs: binascii drops a byte there).
            text = binascii.a2b_qp(encoded)
        else:
            text = decode_leniently(encoded, part)
        return "messages" if evolution.embeds_entity(text) else None
    elif ctype.startswith(evolution.EVOLUTION_PARSES):
        return None
    else:
        kind = evolution.sniffed(encoded, part)
    loads = _LOADS.get(kind or "")
    return None if loads is not None and not loads(decode_leniently(encoded, part), part) else kind


# Whether a part Evolution renders in a view of its own (a ``_kind``) loads something remote, from its
# decoded body: only then does it count (a card or invitation with links only is left alone).
_LOADS: dict[str, Callable[[bytes, mime.Part], bool]] = {
    "markdown": lambda decoded, part: evolution.markdown_loads(decoded, part.charset),
    "vcard": lambda decoded, _: evolution.vcard_loads(decoded),
    "calendar": lambda decoded, _: evolution.calendar_loads(decoded),
}


def _entity_loads(content: bytes, depth: int) -> bool:
    """Whether a MIME entity (signed data's content) has a part that loads something remote as clients
    read it (links aside): markup that does, a part Evolution reads as such (``_kind``), or
    parts clients may read otherwise that name anything remote."""
    root = mime.parse(content)
    for leaf in root.leaves():
        encoded = content[leaf.body_start : leaf.end]
        if leaf.content_type in MARKUP:
            decoded = decode_leniently(encoded, leaf)
            if b"\0" in decoded or loads_remote(decoded.decode("latin-1")):
                return True
        elif _kind(encoded, leaf, depth) is not None:
            return True
    ambiguous = any(p.ambiguous for p in root.walk())
    return ambiguous and _neutralized_entity(content, depth) != content


def neutralized_leaf(encoded: bytes, part: mime.Part, depth: int = 0) -> bytes:
    """The body of leaf ``part`` with every remote reference broken, as ``neutralize_section`` reads it
    and, for a part clients decode and parse as messages or a MIME part, in every part they find there:
    a reference in an encoded part inside an encoded part is out of the neutralizer's sight. Blanked
    where that reading fails (a bug of ours)."""
    try:
        return _neutralized_as_read(encoded, part, depth)
    except Exception:
        log.exception("a part cannot be read as clients read it: blanking it")
        return blanked(encoded)


def _neutralized_as_read(encoded: bytes, part: mime.Part, depth: int) -> bytes:
    """``neutralized_leaf``, unguarded."""
    ctype = part.content_type
    kind = None if ctype in MARKUP else _kind(encoded, part, depth)
    if kind == "signed":  # the entity lies in DER, which no neutralizer reads
        return blanked(encoded)
    loads = _LOADS.get(kind or "")
    if loads is not None:
        # Unless a URL is folded, escaped or spelled in markup out of the neutralizer's sight, the card,
        # text or invitation stays, its URLs broken, as the client reads the neutralized bytes.
        body = neutralize_section(encoded)[0]
        return body if not loads(decode_leniently(body, part), part) else blanked(encoded)
    if kind != "messages":
        return neutralize_section(encoded, text=kind == "markup")[0]
    if depth >= _MAX_NESTING:
        return blanked(encoded)
    try:
        decoded = decode(encoded, part.cte)
        # A mailbox (by its type, or sniffed) is split at its "From " lines, as camel reads one.
        split = ctype not in evolution.MESSAGES and not ctype.startswith("text/")
        starts = [m.start() for m in evolution.MBOX_FROM.finditer(decoded) if m.start()] if split else []
        bounds = zip([0, *starts], [*starts, len(decoded)], strict=True)
        new = b"".join(_neutralized_entity(decoded[a:b], depth + 1) for a, b in bounds)
        return neutralize_section(apply_edits(encoded, part.cte, _differences(decoded, new)))[0]
    except TransferError:
        return blanked(encoded)


def _neutralized_entity(data: bytes, depth: int) -> bytes:
    """A MIME entity (a message, or a part with its header block) with every remote reference broken."""
    root = mime.parse(data)
    return neutralize_section(data[: root.body_start])[0] + neutralized_body(data, root, depth)


def _differences(old: bytes, new: bytes) -> list[Edit]:
    """Where ``new`` (same length) differs from ``old``, as edits of ``old``."""
    edits: list[Edit] = []
    i, n = 0, len(old)
    while i < n:
        if old[i : i + 256] == new[i : i + 256]:
            i += 256
            continue
        if old[i] == new[i]:
            i += 1
            continue
        j = i
        while j < n and old[j] != new[j]:
            j += 1
        edits.append(Edit(i, j, new[i:j]))
        i = j
    return edits


def neutralized_body(raw: bytes, part: mime.Part, depth: int = 0) -> bytes:
    """The body of ``part`` with every remote reference broken (``rewrite.neutralize``, which reads
    quoted-printable and base64 text, and leaves base64 lines and binary content alone). Each leaf's
    body is judged on its own (``neutralized_leaf``), so that a binary attachment does not make the
    text beside it pass for binary, and the bytes between them (headers, delimiters) as text."""
    pieces: list[bytes] = []
    pos, stop = part.body_start, part.end
    for leaf in part.leaves():
        # Clipped to the part: an empty last leaf right before an enclosing delimiter ends past its
        # parent (its blank line's line break is the one that belongs to the delimiter, ``mime``).
        start = min(max(pos, leaf.body_start), stop)
        end = min(max(start, leaf.end), stop)
        pieces.append(neutralize_section(raw[pos:start])[0])
        body = raw[start:end]
        pieces.append(
            neutralized_leaf(body, leaf, depth) if start == leaf.body_start else neutralize_section(body)[0]
        )
        pos = end
    pieces.append(neutralize_section(raw[pos:stop])[0])
    return b"".join(pieces)
