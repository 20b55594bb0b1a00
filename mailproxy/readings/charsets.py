"""Charset readings: which text a part's bytes are to clients that know other charset labels than
Thunderbird's (WHATWG's, which the engine follows) or find the charset elsewhere.

``wide_codec`` is the engine's own reading of UTF-16 (WHATWG's labels); ``charset_otherwise`` says why
another client (K-9 Mail's Java/ICU charsets and parameter reader, Evolution's camel) may read a markup
part as text that spells remote URLs the engine's reading does not.
"""

from __future__ import annotations

import codecs
import re

from mailproxy import mime
from mailproxy.errors import UncheckableError
from mailproxy.rewrite import safety

# The labels of UTF-16 in the WHATWG Encoding Standard, which Thunderbird's converters follow (Python's
# codecs know few of them), and the byte order each means: a byte-order mark overrides it.
_WHATWG_UTF16 = {
    **dict.fromkeys(
        ("csunicode", "iso-10646-ucs-2", "ucs-2", "unicode", "unicodefeff", "utf-16", "utf-16le"), "utf-16-le"
    ),
    **dict.fromkeys(("unicodefffe", "utf-16be"), "utf-16-be"),
}
_UTF16_BOMS = {b"\xff\xfe": "utf-16-le", b"\xfe\xff": "utf-16-be"}


def wide_codec(charset: str | None, decoded: bytes) -> str | None:
    """The codec for a part's ``decoded`` body when its charset is UTF-16 (the only encodings of the
    WHATWG standard that are not ASCII-compatible), else None: text is then edited as the bytes it is.
    The byte order is fixed, so that edits re-encode to the same bytes (a byte-order mark picks it and
    stays a character)."""
    label = label_of(charset)
    if label not in _WHATWG_UTF16:
        return None
    return _UTF16_BOMS.get(decoded[:2], _WHATWG_UTF16[label])


def label_of(charset: str | None) -> str:
    """``charset`` as labels are compared: ASCII white space trimmed, lower-cased."""
    return (charset or "").strip("\t\n\f\r ").lower()


_PROBE = '<img src="https://x.example/a?b=1&c=2">'


def _other_reading(charset: str | None) -> str | None:
    """A codec Python knows for ``charset`` that reads markup otherwise than as ASCII bytes (UTF-32,
    UTF-7, EBCDIC; UTF-16 under other spellings than WHATWG's), else None. Thunderbird does not know
    these labels and reads such a part as ASCII-compatible bytes, as the engine does; a client that
    knows them would read other text."""
    label = label_of(charset)
    if not label or label in _WHATWG_UTF16:
        return None
    try:
        name = codecs.lookup(label).name
        if name == "utf-8-sig":
            return None
        return name if name == "utf-7" or _PROBE.encode(name) != _PROBE.encode() else None
    except (LookupError, TypeError, ValueError):  # unknown labels, codecs of no text encoding ("base64")
        return None


# What K-9 reads the charset of a text/html part without one from (MessageExtractor.getTextFromTextPart:
# this pattern in the first 256 bytes of the decoded body, read as ASCII); Java then decodes with any
# charset it knows (CharsetSupport.readToString).
_META_CHARSET = re.compile(rb'(?i)<meta http-equiv="?Content-Type"? content="text/html; charset=(.+?)">')
_META_PREFIX = 256
# The readings of a body holding NUL bytes that spell ASCII markup otherwise than the bytes do.
_WIDE_READINGS = ("utf-16-le", "utf-16-be", "utf-32-le", "utf-32-be")


def charset_otherwise(part: mime.Part, decoded: bytes, wide: str | None) -> str | None:
    """Why clients may read a markup part's ``decoded`` body as other text than the engine (which reads
    it with ``wide``, or as bytes) that spells remote URLs, or None.

    A client that knows a label Thunderbird does not (``_other_reading``) reads other text. K-9 also
    takes a text/html part's charset from a <meta> in its first bytes, and Java reads UTF-16 without a
    byte-order mark as big-endian where WHATWG (and the engine) read little-endian; K-9's parameter
    reader skips comments and drops a charset given twice with two values. Rather than follow every
    label, a body with a NUL byte (without one no UTF-16 or UTF-32 reading holds ASCII) is read in
    each byte order of both."""
    value = str(part.headers.get("content-type", ""))
    k9 = _k9_charsets(value)
    if k9 is None:
        return "has comments nested too deep to read its charset"
    # Evolution's camel reads an unquoted charset up to a tspecial ("ibm037?x" is "ibm037" to glibc).
    labels = [part.charset, *k9, mime.camel_charset(value)]
    if part.content_type == "text/html":
        sniffed = _META_CHARSET.search(decoded, 0, _META_PREFIX)
        if sniffed is not None:
            labels.append(sniffed.group(1).decode("latin-1"))
    readings = [_other_reading(label) for label in labels]
    if any(_unknown(label) for label in labels):
        why = _icu_reading(decoded)
        if why is not None:
            return why
    if b"\0" in decoded:
        readings.extend(codec for codec in _WIDE_READINGS if codec != wide)
    for codec in dict.fromkeys(readings):  # once per codec: a label may be given many times
        if codec is None:
            continue
        try:
            text = decoded.decode(codec, "replace")
        except ValueError:  # a codec that fails whatever the errors argument (punycode) shows nothing
            continue
        if safety.break_everything(text):
            return f"spells remote URLs when read as {codec}"
    return None


# A name Java may know a charset by (java.nio.charset.Charset: others raise IllegalCharsetNameException,
# and K-9 then reads US-ASCII).
_JAVA_CHARSET_NAME = re.compile(r"[a-z0-9][a-z0-9+.:_-]*")


_CHARSET_PARAM = re.compile(r'(?i);[ \t\r\n]*charset[ \t\r\n]*=[ \t\r\n]*(?:"((?:[^"\\]|\\.)*)"|([^\s;"]+))')


def _k9_charsets(value: str) -> list[str] | None:
    """The charset parameters of Content-Type ``value`` as K-9's MimeParameterDecoder may read them:
    comments dropped (it skips them where the stdlib keeps them as text); None where they nest too deep
    to read (``mime.without_comments``)."""
    bare = mime.without_comments(value)
    return None if bare is None else [quoted or token for quoted, token in _CHARSET_PARAM.findall(bare)]


def _unknown(label: str | None) -> bool:
    """Whether ``label`` may name a charset in Java that Python knows no codec for (nor WHATWG UTF-16)."""
    name = label_of(label)
    if name in _WHATWG_UTF16 or not _JAVA_CHARSET_NAME.fullmatch(name):
        return False
    try:
        codecs.lookup(name)
    except (LookupError, TypeError, ValueError):
        return True
    return False


# UTF-7 (RFC 2152) and IMAP's modified UTF-7 (RFC 3501 section 5.1.3): a shift character, base64 of
# UTF-16, an optional "-".
_UTF7_RUN = re.compile(rb"\+([A-Za-z0-9+/]+)-?")
_IMAP_UTF7_RUN = re.compile(rb"&([A-Za-z0-9+,]+)-?")
# What markup needs and UTF-7 writers leave unshifted.
_MARKUP_CHARS = frozenset("<>\"'=:/\\&()")


def _icu_reading(decoded: bytes) -> str | None:
    """Why a markup part under a charset label Python does not know may spell markup to K-9, or None.

    K-9 decodes with whatever charset Java knows by the label (CharsetSupport.readToString), and Android's
    Java charsets are ICU's converters under all their aliases (NativeConverter.charsetForName). Among
    them, EBCDIC ("ibm-37", "cp1047": ICU always builds code pages 37 and 1047) and UTF-7 ("windows-65000",
    "unicode-2-0-utf-7", "IMAP-mailbox-name") read ASCII markup from other bytes. The body is read as
    EBCDIC (its markup characters are the same in each Latin code page), where ASCII or Latin text never
    parses as an element; and UTF-7's shifted runs are read for the markup characters they hide."""
    try:
        if safety.loading_urls(decoded.decode("cp037")):
            return "spells markup when read as EBCDIC"
    except UncheckableError:
        return "spells markup when read as EBCDIC"
    for run, shift in ((_UTF7_RUN, b"+"), (_IMAP_UTF7_RUN, b"&")):
        for m in run.finditer(decoded):
            text = (b"+" + m.group(1).replace(b",", b"/") + b"-").decode("utf-7", "replace")
            if not _MARKUP_CHARS.isdisjoint(text):
                return f"spells markup in UTF-7 runs (shifted by {shift.decode()})"
    return None
