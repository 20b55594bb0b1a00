"""Client readings: how mail clients read a part otherwise than the engine does.

The engine rewrites a part as it reads it (``mime`` finds the parts, ``rewrite.streams.decode`` their
transfer encoding, the charset gives the text, ``html.refs`` the references). A reading is another
client's way of reading the same bytes: another decoding, another charset, another type, other text
rendered. Where a reading can load something the engine's edits do not reach, the engine neutralizes
the part (breaks every remote reference, length-preservingly) or blanks it (spaces, line breaks kept).

Clients studied, from their sources (cited at each rule): Thunderbird (libmime, mailnews/mime/src),
K-9 Mail / Thunderbird for Android (its MessageExtractor and MessageViewInfoExtractor, Apache mime4j,
Android's ICU charsets), and Evolution (its camel library and e-mail-parser / formatter modules,
shared-mime-info's magic).

Where each rule lives:

- ``charsets``: the labels of UTF-16 the engine reads (WHATWG), and charsets other clients know (Python
  codecs, Java's ICU aliases: EBCDIC, UTF-7), K-9's <meta> sniffing and parameter reader, camel's
  charset token;
- ``encodings``: quoted-printable as Thunderbird (soft breaks before a bare CR) and K-9 (mime4j) decode
  it, base64 padding inside groups, uuencode and yEnc transfer encodings Thunderbird decodes;
- ``documents``: K-9's clearsigned text and the one document it renders from every textual part;
- ``evolution``: the MIME part Evolution's text/plain parser finds, the types it snoops, and the
  markdown, vCards and calendars it renders;
- ``smime``: the MIME entity inside S/MIME signed data (a BER reader);
- ``untyped``: Thunderbird's untyped text, whose uuencoded and yEncoded files it renders by name;
- ``parts``: what a leaf is to these clients (``leaf_reading``), and a part neutralized as they read it,
  messages inside parts included (``neutralized_leaf``, ``neutralized_body``);
- ``common``: the markup types, and what the readings share.

Readings of the MIME structure (boundaries, header fields, parts clients find elsewhere) are in ``mime``
(``Part.ambiguous``); the neutralizer (``rewrite.neutralize``) reads encodings as Thunderbird does.
"""

from mailproxy.readings.charsets import charset_otherwise, wide_codec
from mailproxy.readings.common import MARKUP, STYLESHEET, blanked
from mailproxy.readings.documents import is_clearsigned, neutralize_after_open_ends
from mailproxy.readings.encodings import encoding_otherwise
from mailproxy.readings.evolution import CALENDARS, INLINE_MARKERS, MARKDOWN, VCARDS
from mailproxy.readings.parts import leaf_reading, neutralized_body, neutralized_leaf
from mailproxy.readings.untyped import opens_files, untyped_texts

__all__ = [
    "CALENDARS",
    "INLINE_MARKERS",
    "MARKDOWN",
    "MARKUP",
    "STYLESHEET",
    "VCARDS",
    "blanked",
    "charset_otherwise",
    "encoding_otherwise",
    "is_clearsigned",
    "leaf_reading",
    "neutralize_after_open_ends",
    "neutralized_body",
    "neutralized_leaf",
    "opens_files",
    "untyped_texts",
    "wide_codec",
]
