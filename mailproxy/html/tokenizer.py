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

``scan`` and ``tokenize`` generate the tokens; the rewriter's hot loop reads the regex matches themselves
(``matches``, see OPEN and CLOSE). Nothing here raises on any input, and everything runs in linear time.
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
    "attribute",
    "attribute_matches",
    "attribute_value",
    "attribute_value_span",
    "matches",
    "tokenize",
    "tokens_of",
    "CLOSE",
    "OPEN",
    "OPEN_NAME",
]

_WS = "\t\n\f\r "

_ATTR = re.compile(
    r"([^\t\n\f\r />=][^\t\n\f\r />=]*+)"
    r"(?:[\t\n\f\r ]*+=[\t\n\f\r ]*+(\"[^\"]*+\"|'[^']*+'|[^\t\n\f\r >]*+))?"
)

_RAWTEXT = ("script", "style", "xmp", "iframe", "noembed", "noframes", "textarea", "title")


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

# Text, then any number of: a value after "=" (quoted, to its quote or the end; unquoted, to whitespace or
# ">") or a quote that opens nothing, each followed by text ("unrolled": fewer steps than one alternation).
_TAG_BODY = (
    r"[^>\"'=]*+(?:(?:=[\t\n\f\r ]*+(?:\"[^\"]*+(?:\"|\Z)|'[^']*+(?:'|\Z)|[^\t\n\f\r >\"'][^\t\n\f\r >]*+|)"
    r"|[\"'])[^>\"'=]*+)*+"
)
_NAME_END = r"[\t\n\f\r />]"


def _named(names: tuple[str, ...], whole: bool = True) -> str:
    """A tag name that is one of ``names`` (or, unless ``whole``, starts with one) in any ASCII case: the
    WHATWG tokenizer lower-cases ASCII letters only, and so does ``str.lower`` for the letters of these."""
    spelled = ("".join(f"[{c.upper()}{c}]" for c in name) for name in sorted(names))
    return "(?:" + "|".join(spelled) + ")" + (r"(?![^\t\n\f\r />])" if whole else "")


# Every token in one alternation, so that one ``finditer`` (a loop in C) walks the whole document; Python
# only sees the tokens. Rule 1 of the theory of operation: end tags (first, being half the tags; no other
# alternative starts with "/" + letter), comments (with the abrupt "<!-->" and "<!--->"), start tags
# (<plaintext> with the rest of the text, raw-text elements with their text, then any other), "</>"
# (dropped), and bogus comments ("<!x", "<?x", "</1"). A tag or a quoted value may run to the end of the
# text: every "<" + letter then matches once, so hostile input ("<a<a<a...", unbalanced quotes) costs linear
# time, never a rescan per "<".
def _token_pattern(comment_text: str, comment_close: str) -> re.Pattern[str]:
    return re.compile(
        r"<(?:"
        r"/(?P<e>[A-Za-z][^\t\n\f\r />]*+)" + _TAG_BODY + r"(?:>|(?P<eu>\Z))"
        r"|!--(?:(?P<ce>-?>)|(?P<cb>" + comment_text + r")" + comment_close + r")"
        # (the two first letters of these names, looked at first, turn most other start tags away faster)
        r"|(?=" + _named(tuple({name[:2] for name in ("plaintext", *_RAWTEXT)}), whole=False) + ")"
        r"(?:(?P<pn>" + _named(("plaintext",)) + r")(?P<pb>" + _TAG_BODY + r")(?:>(?P<pt>(?s:.*))|(?P<pu>\Z))"
        # Raw text runs to "</" + the element's own name (in any ASCII case) + a name end, or to the end.
        r"|(?P<rn>" + _named(_RAWTEXT) + r")(?P<rb>" + _TAG_BODY + r")"
        r"(?:>(?P<rt>(?:[^<]++|<(?!/(?ai:(?P=rn))" + _NAME_END + r"))*+)|(?P<ru>\Z)))"
        r"|(?P<s>[A-Za-z][^\t\n\f\r />]*+)(?P<sb>" + _TAG_BODY + r")(?:>|(?P<su>\Z))"
        r"|/>"
        r"|(?P<bog>[!?]|/(?![A-Za-z]))[^>]*+(?:(?P<bc>>)|\Z)"
        r")"
    )


# A comment's text: up to the first "-->" or "--!>" (runs without "-" taken at once, which is faster than
# trying the end at every character).
_TOKEN = _token_pattern(r"(?:[^-]++|-(?!-!?>))*+", r"(?:--!?>|\Z)")
# Inside a comment's text there is no "-->" or "--!>" (the comment would have ended there), so a comment
# that starts in it runs to its end: taken in one step, so that scanning nested comments stays linear.
_TOKEN_IN_COMMENT = _token_pattern(r"(?s:.*)", "")

# For a hot loop, the matches themselves (``matches``): ``m.lastindex`` tells the two common tokens apart
# without building tuples. OPEN: a complete start tag that is not a raw-text element; ``m[OPEN_NAME]`` is
# its name as written and ``m.span(OPEN)`` its attribute text. CLOSE: a complete end tag; ``m[CLOSE]`` is
# its name as written. ``tokens_of(m)`` gives the tokens of any match (of these too).
_G = _TOKEN.groupindex
OPEN_NAME, OPEN, CLOSE = _G["s"], _G["sb"], _G["e"]
# The other matches, by their last group: a start tag followed by its text (name, attribute text groups),
# a tag cut off by the end of the text (name, attribute text or None), comments.
_WITH_TEXT = {_G["rt"]: ("rn", "rb"), _G["pt"]: ("pn", "pb")}
_CUT: dict[int, tuple[str, str | None]] = {
    _G["su"]: ("s", "sb"),
    _G["ru"]: ("rn", "rb"),
    _G["pu"]: ("pn", "pb"),
    _G["eu"]: ("e", None),
}
_EMPTY_COMMENT, _COMMENT, _BOGUS_CLOSED, _BOGUS_CUT = _G["ce"], _G["cb"], _G["bc"], _G["bog"]


def matches(
    text: str, start: int = 0, end: int | None = None, in_comment: bool = False
) -> Iterator[re.Match[str]]:
    """The token matches of ``text[start:end]`` (see OPEN, CLOSE and ``tokens_of``). ``in_comment`` says
    that the text is a comment's (an Outlook conditional comment, scanned as markup)."""
    pattern = _TOKEN_IN_COMMENT if in_comment else _TOKEN
    return pattern.finditer(text, start, len(text) if end is None else end)


def tokens_of(m: re.Match[str]) -> list[tuple[int, str, int, int, int, int]]:
    """The tokens of one match, as ``scan`` reports them."""
    k = m.lastindex
    s, e = m.span()
    if k == OPEN:
        return [(START, m[OPEN_NAME].lower(), s, e, *m.span(OPEN))]
    if k == CLOSE:
        return [(END, m[CLOSE].lower(), s, e, e, e)]
    if k in _WITH_TEXT:
        name_group, attrs_group = _WITH_TEXT[k]
        name = m[name_group].lower()
        gt = m.start(k)
        return [(START, name, s, gt, *m.span(attrs_group)), (RAW, name, gt, e, gt, e)]
    if k in _CUT:
        cut_name, cut_attrs = _CUT[k]
        inner = e if cut_attrs is None else m.start(cut_attrs)
        return [(UNCLOSED, m[cut_name].lower(), s, e, inner, e)]
    if k == _EMPTY_COMMENT:
        return [(COMMENT, "", s, e, s + 4, s + 4)]
    if k == _COMMENT:
        return [(COMMENT, "", s, e, *m.span(k))]
    if k in (_BOGUS_CLOSED, _BOGUS_CUT):
        return [(COMMENT, "", s, e, s + 2, e - 1 if k == _BOGUS_CLOSED else e)]
    return []  # "</>": dropped


def scan(
    text: str, start: int = 0, end: int | None = None, in_comment: bool = False
) -> Iterator[tuple[int, str, int, int, int, int]]:
    """The tokens of ``text[start:end]`` as tuples ``(kind, name, start, end, inner_start, inner_end)``:

    - START: the lower-cased tag name; inner is the attribute text;
    - END: the lower-cased tag name; inner is empty;
    - COMMENT: name ""; inner is the comment text (between "<!--" and "-->", or "<!" and ">");
    - RAW: the element whose raw text this is (script, style, textarea, ...); inner is the text;
    - UNCLOSED: a tag cut off by the end of the text, with everything after it; the last token.

    ``in_comment`` says that ``text[start:end]`` is the text of a comment (see ``matches``).
    """
    for m in matches(text, start, end, in_comment):
        yield from tokens_of(m)


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
    for name, m in attribute_matches(text, body_start, body_end).items():
        yield attribute(name, m)


def attribute_matches(text: str, body_start: int, body_end: int) -> dict[str, re.Match[str]]:
    """The attributes in ``text[body_start:body_end]`` as regex matches by lower-cased name, first occurrence
    of a name only: cheaper than ``Attribute`` objects where few are looked at (``attribute`` and
    ``attribute_value`` read them)."""
    found: dict[str, re.Match[str]] = {}
    for m in _ATTR.finditer(text, body_start, body_end):
        found.setdefault(m[1].lower(), m)
    return found


def attribute(name: str, m: re.Match[str]) -> Attribute:
    """The attribute of a match of ``attribute_matches``."""
    value, value_start, value_end, quote = attribute_value_span(m)
    return Attribute(name, value, m.start(), m.end(), value_start, value_end, quote)


def attribute_value_span(m: re.Match[str]) -> tuple[str, int, int, str]:
    """``(value, value_start, value_end, quote)`` of ``attribute(name, m)``, without the object."""
    raw = m[2]
    if raw is None:
        return "", m.end(), m.end(), ""
    if raw[:1] in ("'", '"'):
        return raw[1:-1], m.start(2) + 1, m.end(2) - 1, raw[0]
    return raw, m.start(2), m.end(2), ""


def attribute_value(m: re.Match[str]) -> str:
    """``attribute(name, m).value``."""
    raw = m[2]
    if raw is None:
        return ""
    return raw[1:-1] if raw[:1] in ("'", '"') else raw
