"""Transfer-encoding readings: where clients decode a markup part's body otherwise than the engine
(``rewrite.streams.decode``): Thunderbird's soft breaks before a bare CR, K-9 Mail's quoted-printable
decoder (mime4j), base64 groups with padding inside, and the uuencode and yEnc that libmime decodes.
"""

from __future__ import annotations

import re
from collections import Counter

from mailproxy import mime
from mailproxy.detect.classify import is_remote
from mailproxy.errors import UncheckableError
from mailproxy.readings.common import blanked
from mailproxy.rewrite import safety, streams
from mailproxy.rewrite.neutralize import neutralize_section
from mailproxy.rewrite.streams import decode

# A soft line break before a bare CR ("=\r"), which Thunderbird drops and ``decode`` keeps.
QP_BARE_CR = re.compile(rb"=\r(?!\n)")
# Quoted-printable as K-9 decodes it (mime4j QuotedPrintableInputStream.read0, its input's line breaks
# made CRLF): "==" is "=" (and a soft break before a line break); "=" and any run of what Java takes for
# white space (VT, FF, FS-US too) before a line break is a soft break; "=" and two hex digits a byte;
# any other "=" is text with the two bytes after it, whatever they are (the engine, like Thunderbird,
# reads an escape in "=G=3E"); white space before a line break is dropped.
_K9_QP = re.compile(
    rb"(?P<eq>==(?:\r?\n)?)"
    rb"|(?P<soft>=[\t\x0b\x0c\x1c-\x1f ]*\r?\n)"
    rb"|=(?P<hex>[0-9A-Fa-f]{2})"
    rb"|(?P<text>=[^\t\x0b\x0c\x1c-\x1f \r\n=](?s:.)?)"
    rb"|(?P<pad>[\t\x0b\x0c\x1c-\x1f ]+(?=\r?\n|\Z))"
)
# A lone CR or LF, which mime4j's EOLConvertingInputStream makes CRLF before anything else reads it.
_LONE_BREAK = re.compile(rb"\r(?!\n)|(?<!\r)\n")
# Where K-9's reading may differ from ``decode``'s: "=" then neither two hex digits nor transport padding.
_K9_QP_DIFFERS = re.compile(rb"=(?:[^0-9A-Fa-f \t\r\n]|[0-9A-Fa-f](?![0-9A-Fa-f])|[ \t]+[\x0b\x0c\x1c-\x1f])")
# Transfer encodings beyond RFC 2045's that Thunderbird decodes before it renders a part (libmime's
# mimeleaf: uuencode under four names, yEnc), a comment or parameter after the name allowed. The
# engine cannot edit through them, so such a markup part is blanked.
_CLIENT_DECODED = re.compile(r"(?:x-uuencode|x-uue|uuencode|uue|x-yencode)(?:[\s;(].*)?", re.DOTALL)


def encoding_otherwise(part: mime.Part, encoded: bytes) -> tuple[str, bytes] | None:
    """Why clients may read a markup part's bytes otherwise than ``decode`` does, and the body to
    deliver then (neutralized or blanked, so that no reading loads anything); None when they agree."""
    if part.cte == "quoted-printable" and QP_BARE_CR.search(encoded):
        # Thunderbird drops "=\r" as a soft line break, ``decode`` keeps it: "htt=\rps://" spells a URL
        # to the one only. The neutralizer reads such soft breaks as Thunderbird does.
        return "has soft line breaks clients read otherwise", neutralize_section(encoded, text=True)[0]
    if part.cte == "quoted-printable" and b"=" in encoded and _K9_QP_DIFFERS.search(encoded):
        own, k9 = decode(encoded, part.cte), _K9_QP.sub(_k9_qp_token, _LONE_BREAK.sub(b"\r\n", encoded))
        if k9 != own and _new_remote_urls(k9, own):
            return "has quoted-printable clients decode otherwise", blanked(encoded)
    if part.cte == "base64" and not streams.groups_agree(encoded):
        return "has base64 padding clients read otherwise", blanked(encoded)
    if _CLIENT_DECODED.fullmatch(part.cte):
        return "is uuencoded or yEncoded (clients decode it, the engine does not)", blanked(encoded)
    return None


def _k9_qp_token(m: re.Match[bytes]) -> bytes:
    """What K-9 decodes a token of ``_K9_QP`` to."""
    if m["eq"]:
        return b"="
    if m["hex"]:
        return bytes.fromhex(m["hex"].decode("ascii"))
    return m["text"] or b""


def _new_remote_urls(other: bytes, own: bytes) -> bool:
    """Whether markup ``other`` (another reading of ``own``) loads a remote URL more often than ``own``
    (the engine's edits reach the places its own reading loads from, not others)."""
    try:
        seen = Counter(s.url for s in safety.loading_urls(own.decode("latin-1")))
        loads = Counter(s.url for s in safety.loading_urls(other.decode("latin-1")) if is_remote(s.url))
    except UncheckableError:
        return True
    return any(n > seen[url] for url, n in loads.items())
