"""Thunderbird's untyped text: the body of a message with neither a Content-Type nor a MIME-Version
field (MimeMessage_close_headers in mimemsg.cpp), or of any part typed "text" alone, which libmime reads
as MimeUntypedText (mime_find_class in mimei.cpp). Its parser (mimeunty.cpp) opens a part of its own at
each line that begins a uuencoded ("begin 644 name") or yEncoded ("=ybegin line=... name=") file,
typed by the file's name (the platform's MIME service: a ".html" file is text/html), and renders it
inline: HTML there loads what it names, where the engine reads plain text.
"""

from __future__ import annotations

import re

from mailproxy import mime

# What starts a line where mimeunty.cpp opens a file (MimeUntypedText_uu_begin_line_p and
# _yenc_begin_line_p), its libmime line ending at a CR or LF. Looser than Thunderbird (the rest of the
# line is not checked, as a name of any type may be HTML to the platform): such a body is only
# neutralized.
_BEGINS = (b"begin ", b"=ybegin line=")
_UU_MODE = re.compile(rb"[0-7]{3}")


def untyped_texts(root: mime.Part) -> list[mime.Part]:
    """The leaves of the message ``root`` that Thunderbird reads as untyped text."""
    found: list[mime.Part] = []
    _collect(root, True, found)
    return found


def _collect(part: mime.Part, message_body: bool, found: list[mime.Part]) -> None:
    if not part.children:
        if _untyped(part, message_body):
            found.append(part)
        return
    # A message's body is typed by the message's header (a multipart's parts without a Content-Type
    # are text/plain, or messages in a digest).
    inner = part.content_type.startswith("message/")
    for child in part.children:
        _collect(child, inner, found)


def _untyped(part: mime.Part, message_body: bool) -> bool:
    value = part.headers.get("content-type")
    if value is None:
        return message_body and part.headers.get("mime-version") is None
    return str(value).partition(";")[0].strip(" \t\r\n").lower() == "text"


def opens_files(raw: bytes, start: int, end: int) -> bool:
    """Whether the untyped text ``raw[start:end]`` has a line where Thunderbird opens a file."""
    # Found with bytes.find (memchr), not a pattern tried at every line: plain text is mostly untyped.
    for begin in _BEGINS:
        pos = raw.find(begin, start, end)
        while pos >= 0:
            at_line_start = pos == start or raw[pos - 1] in b"\r\n"
            if at_line_start and (begin != b"begin " or _UU_MODE.match(raw, pos + 6, end)):
                return True
            pos = raw.find(begin, pos + 1, end)
    return False
