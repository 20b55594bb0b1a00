"""Base64 bodies made of several padded streams, read the way lenient clients read them.

Some mailers encode a body in pieces and join the results, so padding turns up in the middle
("PGI+PC9iPg==" then more base64, often one padded stream per line). Python's decoder, and so
``transfer.decode``, stops at the first padding; other decoders go on with the next stream, and a
mail client using one renders HTML the engine would never have seen. The engine therefore reads
such a body as the concatenation of its streams and edits each stream on its own, through
``decode`` and ``apply_edits`` here, which otherwise are ``transfer``'s.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from mailproxy.rewrite import transfer
from mailproxy.rewrite.transfer import Edit, TransferError

# The last "=" of a padding run followed, past any white space, by more base64: where one stream ends
# and the next begins. Padding never occurs inside a stream, so a body without this match is one
# stream. Written to start with a literal byte, which the regex engine looks for at C speed: led by
# the repeat "=+" it tried a match at every byte (about 1 ms per 130 KB body, twice per part).
_NEXT_STREAM = re.compile(rb"=(?!=)(?=[\s=]*[A-Za-z0-9+/])")


def _streams(encoded: bytes) -> list[tuple[int, int]] | None:
    """The spans of ``encoded``'s streams, or None when it is one stream (the common case)."""
    cuts = [m.end() for m in _NEXT_STREAM.finditer(encoded)]
    if not cuts:
        return None
    bounds = [0, *cuts, len(encoded)]
    return list(zip(bounds, bounds[1:], strict=False))


_NOT_BASE64 = bytes(
    c for c in range(256) if c not in b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/="
)


def groups_agree(encoded: bytes) -> bool:
    """Whether a base64 body reads the same in groups of four characters taken across the whole body
    (as Thunderbird's decoder takes them, a "=" anywhere only shortening its group's output) and in
    streams (``decode``): true when padding only ends groups. Otherwise the two readings fall out of
    step after the first bad group, and markup one of them shows the other does not see."""
    stream = encoded.translate(None, _NOT_BASE64)
    pad = stream.find(b"=")
    while pad >= 0:
        at = pad % 4
        if at < 2 or (at == 2 and stream[pad + 1 : pad + 2] not in (b"=", b"")):
            return False
        pad = stream.find(b"=", pad + 1)
    return True


def _is_base64(cte: str) -> bool:
    return cte.strip().lower() == "base64"


def decode(encoded: bytes, cte: str) -> bytes:
    """``transfer.decode``, except that a base64 body of several streams decodes to all of them."""
    spans = _streams(encoded) if _is_base64(cte) else None
    if spans is None:
        return transfer.decode(encoded, cte)
    return b"".join(transfer.decode(encoded[a:b], cte) for a, b in spans)


def apply_edits(encoded: bytes, cte: str, edits: Sequence[Edit]) -> bytes:
    """``transfer.apply_edits`` with offsets into ``decode``'s text: each stream of a base64 body of
    several streams is edited on its own. An edit across two streams raises TransferError (the
    caller's fail-safe then neutralizes the part)."""
    spans = _streams(encoded) if _is_base64(cte) else None
    if spans is None:
        return transfer.apply_edits(encoded, cte, edits)
    out: list[bytes] = []
    start = 0  # decoded offset where the current stream begins
    pending = sorted(edits, key=lambda e: e.start)
    for a, b in spans:
        piece = encoded[a:b]
        end = start + len(transfer.decode(piece, cte))
        mine = [e for e in pending if start <= e.start < end]
        if any(e.end > end for e in mine):
            raise TransferError("an edit spans two base64 streams")
        shifted = [Edit(e.start - start, e.end - start, e.content) for e in mine]
        out.append(transfer.apply_edits(piece, cte, shifted) if shifted else piece)
        start = end
    if any(e.start >= start for e in pending):
        raise TransferError("an edit past the end of the body")
    return b"".join(out)
