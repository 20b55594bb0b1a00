"""Document readings of K-9 Mail: the text it renders out of a part or a message otherwise than part by
part: only the signed text of a PGP clearsigned part, and every textual part joined into one document.
"""

from __future__ import annotations

import logging

from mailproxy import mime
from mailproxy.errors import UncheckableError
from mailproxy.readings.charsets import wide_codec
from mailproxy.readings.common import MARKUP
from mailproxy.rewrite import safety
from mailproxy.rewrite.neutralize import neutralize_section
from mailproxy.rewrite.streams import decode
from mailproxy.rewrite.transfer import TransferError

log = logging.getLogger(__name__)

_CLEARSIGNED = "-----BEGIN PGP SIGNED MESSAGE-----"


def is_clearsigned(text: str) -> bool:
    """Whether a markup part's decoded ``text`` is a PGP clearsigned message. K-9 renders only what lies
    between the armor's header lines and its signature (MessageViewInfoExtractor.getTextFromPart,
    OpenPgpUtils.extractClearsignedMessage), so markup the header lines hide from a parser of the whole
    part ("<textarea>", "<!--") loads."""
    return text.startswith(_CLEARSIGNED)


# The parts K-9 renders as one document (MessageViewInfoExtractor.extractTextFromViewables appends
# each textual part's HTML, a plain text part converted, with a divider before every part but the first),
# as MessageExtractor.findViewablesAndAttachments finds them. Their types:
_K9_TEXTUAL = frozenset({"text/plain", "text/html", "application/pgp"})
# Appended to a part's rewritten text to see whether what follows it in K-9's document would be read as
# markup in the data state: the first image loads there, the second (in a <textarea>, raw text) does not.
# Inside a tag, a raw-text element (<style>: CSS) or a comment, the first does not load; in <svg> or
# <math> content the second does (K-9's divider, a <p>, leaves such content today; this does not count
# on it).
_PROBE_FOLLOWER = (
    '<img src="https://probe.invalid/p"><textarea><img src="https://probe.invalid/q"></textarea>'
)
_PROBE_LOADS = ["https://probe.invalid/p"]


def _k9_views(part: mime.Part) -> list[mime.Part]:
    """The leaves K-9 renders from ``part``, in order (over-inclusive where it picks one of several:
    every HTML part of a multipart/alternative, or else its text parts)."""
    if part.content_type == "message/rfc822":
        return []  # K-9 parses a fetched message without its attached ones: they are attachments
    if not part.children:
        disposition = str(part.headers.get("content-disposition", "")).lower()
        shown = part.content_type in _K9_TEXTUAL and "attachment" not in disposition
        return [part] if shown and "filename" not in disposition else []
    if part.content_type == "multipart/signed":
        return _k9_views(part.children[0])
    views = [v for child in part.children for v in _k9_views(child)]
    if part.content_type == "multipart/alternative":
        html = [v for v in views if v.content_type == "text/html"]
        return html or [v for v in views if v.content_type == "text/plain"]
    return views


def neutralize_after_open_ends(root: mime.Part, out: bytearray, failsafe_parts: list[str]) -> None:
    """Neutralize the parts K-9 renders after a markup part whose rewritten text does not end in the
    HTML data state: K-9 joins them into one document, where a part ending inside a tag ("<img alt='")
    makes the next part's text its attributes and one ending in an open <style> makes it CSS; the engine
    read each part on its own. Their labels are added to ``failsafe_parts``."""
    views = _k9_views(root)
    for i, part in enumerate(views[:-1]):
        if part.content_type not in MARKUP:
            continue
        try:
            decoded = decode(bytes(out[part.body_start : part.end]), part.cte)
            text = decoded.decode(wide_codec(part.charset, decoded) or "latin-1")
            loads = [s.url for s in safety.loading_urls(text + _PROBE_FOLLOWER) if "probe.invalid" in s.url]
        except (TransferError, UnicodeError, LookupError, UncheckableError):
            loads = []
        if loads == _PROBE_LOADS:
            continue
        for later in views[i + 1 :]:
            label = mime.body_number(later)
            log.warning("part %s follows a part that ends inside markup: neutralizing it", label)
            out[later.body_start : later.end] = neutralize_section(
                bytes(out[later.body_start : later.end]), text=True
            )[0]
            if label not in failsafe_parts:
                failsafe_parts.append(label)
        return
