"""What the readings share: the types clients render as markup, and a body decoded, blanked or checked
for remote loads."""

from __future__ import annotations

import re

from mailproxy import mime
from mailproxy.detect.classify import is_remote
from mailproxy.errors import UncheckableError
from mailproxy.rewrite import safety
from mailproxy.rewrite.streams import decode
from mailproxy.rewrite.transfer import TransferError

# Parts whose content the client renders as markup (or loads from markup, for cid: stylesheets and SVG).
# K-9 renders application/pgp (mutt's old inline PGP) as HTML: MessageExtractor.isPartTextualBody takes it
# for text, and findViewablesAndAttachments makes every such part but text/plain an Html viewable.
MARKUP = frozenset(
    {"text/html", "application/xhtml+xml", "image/svg+xml", "text/x-amp-html", "application/pgp"}
)
STYLESHEET = "text/css"


def blanked(encoded: bytes) -> bytes:
    """``encoded`` as spaces, its line breaks kept: the last resort for markup no edit can reach."""
    return re.sub(rb"[^\r\n]", b" ", encoded)


def decode_leniently(encoded: bytes, part: mime.Part) -> bytes:
    """``encoded`` decoded from the part's transfer encoding, or as it is where that fails."""
    try:
        return decode(encoded, part.cte)
    except TransferError:
        return encoded


def loads_remote(html: str) -> bool:
    """Whether markup ``html`` loads anything remote (a link aside), or cannot be checked."""
    try:
        survivors = safety.loading_urls(html)
    except UncheckableError:
        return True
    return any(is_remote(s.url) and not (s.element in ("a", "area") and s.attr == "href") for s in survivors)
