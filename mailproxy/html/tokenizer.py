"""A tag-level HTML tokenizer that reports exact offsets and agrees with a WHATWG parser on what is a tag.

Theory of operation
-------------------
The rewriter must edit spans of the *original* text, so it cannot serialize a DOM: it needs offsets. It also
must see exactly what a browser sees, or a tracker hides where we do not look (inside something we took for a
comment) or we damage text that only looks like a tag. The rules below follow the WHATWG tokenizer's states
for everything that decides where a tag starts and ends; they do not build a tree (the caller keeps the
small amount of nesting it needs).

1. Text is scanned for ``<``. What follows decides:
   ``<!--`` a comment, ending at ``-->`` or ``--!>`` (``<!-->`` and ``<!--->`` are empty comments);
   ``<!`` / ``<?`` / ``</`` + non-letter: a bogus comment up to the next ``>``;
   ``</`` + letter: an end tag; ``<`` + letter: a start tag; anything else: plain text.
2. Inside a tag a quote only opens a value right after ``=``; ``/`` separates attributes; ``>`` ends the tag
   wherever it is not inside a quoted value. A tag with no end before EOF is not a tag (the browser drops it).
3. After ``<script>``, ``<style>``, ``<xmp>``, ``<iframe>``, ``<noembed>``, ``<noframes>`` (raw text) and
   ``<textarea>``, ``<title>`` (escapable raw text) everything up to the matching ``</name`` followed by
   whitespace, ``/`` or ``>`` is text, never tags. ``<plaintext>`` swallows the rest of the document.
   ``<noscript>`` is parsed as markup, since mail clients run without scripting.
4. Offsets are string indices. Callers decode ASCII-compatible bytes as latin-1, so indices equal byte
   offsets.

The tokenizer is a generator of tokens; it never raises on any input.
"""

from __future__ import annotations

import re
from collections.abc import Generator, Iterator
from dataclasses import dataclass

__all__ = ["Attribute", "Comment", "EndTag", "RawText", "StartTag", "Token", "attributes", "tokenize"]

_WS = "\t\n\f\r "

# A start tag, matched in one go. Possessive quantifiers and atomic groups keep matching linear even on
# hostile input (no backtracking between attributes). Inside the tag: runs of characters other than
# > " ' =; an '=' followed by a value (double-quoted, single-quoted, or unquoted, which cannot begin with a
# quote); or a stray quote, which is then part of an attribute name as in the WHATWG tokenizer.
_START_TAG = re.compile(
    r"<([A-Za-z][^\t\n\f\r />]*+)"
    r"((?>[^>\"'=]++|=[\t\n\f\r ]*+(?>\"[^\"]*+\"|'[^']*+'|(?![\"'])[^\t\n\f\r >]*+)|[\"'])*+)>"
)
# End tags: attributes are allowed (and ignored) and follow the same quoting rules.
_END_TAG = re.compile(
    r"</([A-Za-z][^\t\n\f\r />]*+)"
    r"((?>[^>\"'=]++|=[\t\n\f\r ]*+(?>\"[^\"]*+\"|'[^']*+'|(?![\"'])[^\t\n\f\r >]*+)|[\"'])*+)>"
)
_ATTR = re.compile(
    r"([^\t\n\f\r />=][^\t\n\f\r />=]*+)"
    r"(?:[\t\n\f\r ]*+=[\t\n\f\r ]*+(\"[^\"]*+\"|'[^']*+'|[^\t\n\f\r >]*+))?"
)
_COMMENT_END = re.compile(r"--!?>")

_RAWTEXT = frozenset({"script", "style", "xmp", "iframe", "noembed", "noframes", "textarea", "title"})
_RAWTEXT_END = {name: re.compile(r"</" + name + r"[\t\n\f\r />]", re.IGNORECASE) for name in _RAWTEXT}


@dataclass(frozen=True, slots=True)
class Attribute:
    name: str  # lower-cased
    value: str  # raw text as written (entities not decoded, quotes removed)
    start: int  # span of the whole attribute (name through value, quotes included)
    end: int
    value_start: int  # span of the value text inside the quotes; == end if there is no value
    value_end: int
    quote: str  # '"', "'" or "" for unquoted / missing values


@dataclass(frozen=True, slots=True)
class StartTag:
    name: str  # lower-cased
    start: int
    end: int  # just past '>'
    body_start: int  # where the attribute text starts (after the name)


@dataclass(frozen=True, slots=True)
class EndTag:
    name: str
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class Comment:
    start: int  # at '<'
    end: int  # just past the closing '>' (or the end of text)
    body_start: int  # the comment text (between '<!--' and '-->')
    body_end: int


@dataclass(frozen=True, slots=True)
class RawText:
    """The content of a raw-text element (script, style, textarea, ...)."""

    element: str
    start: int
    end: int


Token = StartTag | EndTag | Comment | RawText


def tokenize(text: str, start: int = 0, end: int | None = None) -> Iterator[Token]:
    """Yield the tags, comments and raw-text contents of ``text[start:end]`` in document order."""
    stop = len(text) if end is None else end
    pos = start
    find = text.find
    while True:
        lt = find("<", pos, stop)
        if lt < 0 or lt + 1 >= stop:
            return
        nxt = text[lt + 1]
        if nxt.isascii() and nxt.isalpha():
            m = _START_TAG.match(text, lt, stop)
            if m is None:
                # EOF inside the tag (an unclosed quote or no '>'): the browser drops it. Scanning on from
                # here is the conservative choice: we may see more tags than the browser, never fewer.
                pos = lt + 1
                continue
            name = m.group(1).lower()
            tag = StartTag(
                name=name,
                start=lt,
                end=m.end(),
                body_start=m.start(2),
            )
            yield tag
            pos = m.end()
            if name in _RAWTEXT:
                close = _RAWTEXT_END[name].search(text, pos, stop)
                raw_end = close.start() if close else stop
                yield RawText(element=name, start=pos, end=raw_end)
                pos = raw_end
            elif name == "plaintext":
                yield RawText(element=name, start=pos, end=stop)
                return
        elif nxt == "/":
            m = _END_TAG.match(text, lt, stop)
            if m is not None:
                yield EndTag(name=m.group(1).lower(), start=lt, end=m.end())
                pos = m.end()
                continue
            after = text[lt + 2] if lt + 2 < stop else ""
            if after == ">":  # '</>' is dropped
                pos = lt + 3
                continue
            if after.isascii() and after.isalpha():  # an end tag cut by EOF
                pos = lt + 1
                continue
            pos = yield from _bogus_comment(text, lt, stop)
        elif nxt == "!":
            if text.startswith("<!--", lt):
                pos = yield from _comment(text, lt, stop)
            else:
                pos = yield from _bogus_comment(text, lt, stop)
        elif nxt == "?":
            pos = yield from _bogus_comment(text, lt, stop)
        else:
            pos = lt + 1


def _comment(text: str, lt: int, stop: int) -> Generator[Token, None, int]:
    body = lt + 4
    # '<!-->' and '<!--->' close at once (abrupt-closing-of-empty-comment).
    if text.startswith(">", body):
        yield Comment(start=lt, end=body + 1, body_start=body, body_end=body)
        return body + 1
    if text.startswith("->", body):
        yield Comment(start=lt, end=body + 2, body_start=body, body_end=body)
        return body + 2
    m = _COMMENT_END.search(text, body, stop)
    if m is None:
        yield Comment(start=lt, end=stop, body_start=body, body_end=stop)
        return stop
    yield Comment(start=lt, end=m.end(), body_start=body, body_end=m.start())
    return m.end()


def _bogus_comment(text: str, lt: int, stop: int) -> Generator[Token, None, int]:
    gt = text.find(">", lt, stop)
    end = stop if gt < 0 else gt + 1
    yield Comment(start=lt, end=end, body_start=lt + 2, body_end=end - 1 if gt >= 0 else stop)
    return end


def attributes(text: str, tag: StartTag) -> Iterator[Attribute]:
    """The attributes of a start tag, first occurrence of a name only (later duplicates are ignored,
    as the WHATWG tokenizer does)."""
    seen: set[str] = set()
    stop = tag.end - 1
    for m in _ATTR.finditer(text, tag.body_start, stop):
        name = m.group(1).lower()
        if name in seen:
            continue
        seen.add(name)
        raw = m.group(2)
        if raw is None:
            yield Attribute(name, "", m.start(), m.end(), m.end(), m.end(), "")
        elif raw[:1] in ("'", '"'):
            vs, ve = m.start(2) + 1, m.end(2) - 1
            yield Attribute(name, raw[1:-1], m.start(), m.end(), vs, ve, raw[0])
        else:
            yield Attribute(name, raw, m.start(), m.end(), m.start(2), m.end(2), "")
