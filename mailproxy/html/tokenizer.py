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
   wherever it is not inside a quoted value. A tag with no end before EOF is not a tag: the browser drops it
   and everything after it (``scan`` reports it as UNCLOSED, so the caller can neutralize that tail).
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
from collections.abc import Iterator
from dataclasses import dataclass

__all__ = [
    "COMMENT",
    "UNCLOSED",
    "END",
    "RAW",
    "START",
    "scan",
    "attributes_in",
    "Attribute",
    "Comment",
    "EndTag",
    "RawText",
    "StartTag",
    "Token",
    "attributes",
    "tokenize",
]

_WS = "\t\n\f\r "

_ATTR = re.compile(
    r"([^\t\n\f\r />=][^\t\n\f\r />=]*+)"
    r"(?:[\t\n\f\r ]*+=[\t\n\f\r ]*+(\"[^\"]*+\"|'[^']*+'|[^\t\n\f\r >]*+))?"
)

_RAWTEXT = frozenset({"script", "style", "xmp", "iframe", "noembed", "noframes", "textarea", "title"})
# The end tag's name is compared ASCII case-insensitively (WHATWG "appropriate end tag"): "</ſtyle>" does not
# end a style block, as it would for a Unicode case-insensitive regex.
_RAWTEXT_END = {
    name: re.compile(r"</" + name + r"[\t\n\f\r />]", re.IGNORECASE | re.ASCII) for name in _RAWTEXT
}


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


# Token kinds of ``scan``. UNCLOSED is a tag cut off by the end of the text: a browser drops it and
# everything after it (it is all inside the tag), so scanning stops there.
START, END, COMMENT, RAW, UNCLOSED = 0, 1, 2, 3, 4

# Every token in one alternation, so that one ``finditer`` (a loop in C) walks the whole document; Python
# only sees the tokens. Rule 1 of the theory of operation, in order: comments (with the abrupt "<!-->" and
# "<!--->"), start tags, end tags, "</>" (dropped), and bogus comments ("<!x", "<?x", "</1"). A tag or a
# quoted value may run to the end of the text: every "<" + letter then matches once, so hostile input
# ("<a<a<a...", unbalanced quotes) costs linear time, never a rescan per "<".
_TAG_BODY = (
    r"(?>[^>\"'=]++"
    r"|=[\t\n\f\r ]*+(?>\"[^\"]*+(?:\"|\Z)|'[^']*+(?:'|\Z)|(?![\"'])[^\t\n\f\r >]*+)"
    r"|[\"'])*+"
)


def _token_pattern(comment_text: str, comment_close: str) -> re.Pattern[str]:
    return re.compile(
        r"<(?:"
        r"!--(?:(?P<ce>-?>)|(?P<cb>" + comment_text + r")" + comment_close + r")"
        r"|(?P<s>[A-Za-z][^\t\n\f\r />]*+)(?P<sb>" + _TAG_BODY + r")(?P<sc>>|\Z)"
        r"|/(?P<e>[A-Za-z][^\t\n\f\r />]*+)" + _TAG_BODY + r"(?P<ec>>|\Z)"
        r"|/>"
        r"|(?P<bog>[!?]|/(?![A-Za-z]))[^>]*+(?:>|\Z)"
        r")"
    )


_TOKEN = _token_pattern(r"[\s\S]*?", r"(?:--!?>|\Z)")
# Inside a comment's text there is no "-->" or "--!>" (the comment would have ended there), so a comment
# that starts in it runs to its end: taken in one step, so that scanning nested comments stays linear.
_TOKEN_IN_COMMENT = _token_pattern(r"(?s:.*)", "")


def scan(
    text: str, start: int = 0, end: int | None = None, in_comment: bool = False
) -> Iterator[tuple[int, str, int, int, int, int]]:
    """The tokens of ``text[start:end]`` as tuples ``(kind, name, start, end, inner_start, inner_end)``:

    - START: the lower-cased tag name; inner is the attribute text;
    - END: the lower-cased tag name; inner is empty;
    - COMMENT: name ""; inner is the comment text (between "<!--" and "-->", or "<!" and ">");
    - RAW: the element whose raw text this is (script, style, textarea, ...); inner is the text;
    - UNCLOSED: a tag cut off by the end of the text, with everything after it; the last token.

    ``in_comment`` says that ``text[start:end]`` is the text of a comment (an Outlook conditional comment,
    scanned as markup). This is the hot loop of the rewriter; ``tokenize`` gives the same tokens as objects.
    """
    stop = len(text) if end is None else end
    pos = start
    token = _TOKEN_IN_COMMENT if in_comment else _TOKEN
    while pos < stop:
        for m in token.finditer(text, pos, stop):
            name = m.group("s")
            if name is not None:
                name = name.lower()
                if not m.group("sc"):
                    yield UNCLOSED, name, m.start(), stop, m.start("sb"), stop
                    return
                yield START, name, m.start(), m.end(), m.start("sb"), m.end("sb")
                if name in _RAWTEXT:
                    close = _RAWTEXT_END[name].search(text, m.end(), stop)
                    raw_end = close.start() if close else stop
                    yield RAW, name, m.end(), raw_end, m.end(), raw_end
                    pos = raw_end
                    break  # restart the scan after the raw text
                if name == "plaintext":
                    yield RAW, name, m.end(), stop, m.end(), stop
                    return
                continue
            name = m.group("e")
            if name is not None:
                if not m.group("ec"):
                    yield UNCLOSED, name.lower(), m.start(), stop, m.end(), stop
                    return
                yield END, name.lower(), m.start(), m.end(), m.end(), m.end()
                continue
            if m.group("ce") is not None:
                body = m.start() + 4
                yield COMMENT, "", m.start(), m.end(), body, body
            elif m.start("cb") != -1:  # (not group(): a copy of what may be the whole rest)
                yield COMMENT, "", m.start(), m.end(), m.start("cb"), m.end("cb")
            elif m.group("bog") is not None:
                closed = text[m.end() - 1 : m.end()] == ">"
                yield COMMENT, "", m.start(), m.end(), m.start() + 2, m.end() - 1 if closed else m.end()
            # else "</>": dropped
        else:
            return


def tokenize(text: str, start: int = 0, end: int | None = None) -> Iterator[Token]:
    """Yield the tags, comments and raw-text contents of ``text[start:end]`` in document order."""
    for kind, name, s, e, inner_start, inner_end in scan(text, start, end):
        if kind == START:
            yield StartTag(name=name, start=s, end=e, body_start=inner_start)
        elif kind == END:
            yield EndTag(name=name, start=s, end=e)
        elif kind == COMMENT:
            yield Comment(start=s, end=e, body_start=inner_start, body_end=inner_end)
        elif kind == RAW:
            yield RawText(element=name, start=s, end=e)


def attributes(text: str, tag: StartTag) -> Iterator[Attribute]:
    """The attributes of a start tag, first occurrence of a name only (later duplicates are ignored,
    as the WHATWG tokenizer does)."""
    return attributes_in(text, tag.body_start, tag.end - 1)


def attributes_in(text: str, body_start: int, body_end: int) -> Iterator[Attribute]:
    """The attributes in a start tag's attribute text ``text[body_start:body_end]`` (see ``scan``)."""
    seen: set[str] = set()
    for m in _ATTR.finditer(text, body_start, body_end):
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
