"""Find every CSS reference that can make a mail client load something, with exact offsets.

The HTML layer hands over the text of a ``<style>`` block or of a ``style="..."`` attribute (already
entity-decoded) and gets back :class:`CssRef` records whose spans index that same string, so that a
length-preserving rewriter can overwrite ``url(...)`` tokens, ``image-set(...)`` functions and
``@import`` rules in place.

Theory of operation
-------------------
1. Tokenizing follows CSS Syntax Level 3 (the algorithm browsers implement): comments, strings with
   escapes and the newline rule (a raw newline makes a bad string), ``url(`` as an unquoted url token
   versus ``url("...")`` as a function, escapes anywhere in identifiers (``\\75 rl(`` is ``url(``),
   and end of input closing whatever is open. The tokenizer works on the original text (no
   preprocessing of CR/FF/NUL), so every offset is an offset into the caller's string.
2. For speed, only the tokens the parser needs are stored (brackets, ';', strings, comments, url and
   function tokens, at-keywords); the text between them (identifiers, numbers, colons, whitespace) is
   read back from the string when needed. Text without a backslash, the usual case, is tokenized by
   jumping between the few characters that can start a stored token (a function name is found by
   looking back from its '('); text with one goes through a regex tokenizer that implements the spec
   literally. The two agree on backslash-free input (tested). Blocks and functions are matched once,
   so the parser skips a component value in O(1), and skips whole blocks that hold no url, function
   or at-keyword token. Results are cached per text: newsletters repeat stylesheets and style values.
3. Parsing follows "consume a stylesheet's contents" / "consume a block's contents" from the same spec,
   including nested rules (CSS nesting) and ``;`` as the stop token of a nested qualified rule.
   References are reported only where a browser would look for them: declaration values and the
   preludes of ``@import`` / ``@namespace``. A ``url(`` inside a comment, a string or a selector is not
   a reference.
4. Bad CSS never raises: unterminated strings, comments, blocks and functions end at end of input, and
   blocks nested deeper than ``_MAX_DEPTH`` are scanned flat (every url in them is reported, with less
   context) instead of recursing.

Invariants: every span satisfies ``0 <= start <= end <= len(text)``; distinct ``replace_span`` values never
overlap (the references found in one ``image-set()`` share that function's span); when ``url_span`` is
not None, ``text[slice(*url_span)] == ref.url``.
"""

from __future__ import annotations

import logging
import re
from bisect import bisect_left
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import NamedTuple

logger = logging.getLogger(__name__)

__all__ = [
    "FORWARD_SELECTOR_HINTS",
    "CssRef",
    "conditional_reason",
    "hiding_rules",
    "is_hiding",
    "may_hide",
    "parse_declarations",
    "scan_declarations",
    "scan_stylesheet",
    "style_hiding",
]


@dataclass(frozen=True, slots=True)
class CssRef:
    """One place in CSS text that names a URL.

    ``remote`` is False when the URL cannot cause a network request (a fragment such as ``#id`` in
    ``fill:url(#id)``, ``data:``, ``cid:``, an empty URL, or an ``@namespace`` name); such references are
    still reported so the caller can decide.
    """

    url: str
    kind: str  # "url" | "image-set" | "import" | "font" | "namespace"
    replace_span: tuple[int, int]
    url_span: tuple[int, int] | None
    quoted: bool
    property: str | None
    conditions: tuple[str, ...]
    selector: str | None
    remote: bool = True


# --------------------------------------------------------------------------------------------------
# Token regexes. Character classes spell out CSS Syntax 3 definitions: NUL counts as an identifier
# character because the spec's preprocessing turns it into U+FFFD, which is non-ASCII.

_ESC = r"\\(?:[0-9a-fA-F]{1,6}(?:\r\n|[ \t\n\r\f])?|[^\n\r\f0-9a-fA-F]|\Z)"
_IDSTART = r"[a-zA-Z_\x00\x80-\U0010ffff]"
_IDCHAR = r"[a-zA-Z0-9_\-\x00\x80-\U0010ffff]"
_IDENT = rf"(?:-(?:[a-zA-Z_\-\x00\x80-\U0010ffff]|{_ESC})|{_IDSTART}|{_ESC})(?:{_IDCHAR}|{_ESC})*+"
# Lookahead form of "would start an ident sequence", for deciding what '-' and '@' are.
_STARTS_IDENT = (
    r"(?:-(?:[a-zA-Z_\-\x00\x80-\U0010ffff]|\\(?![\n\r\f]))|[a-zA-Z_\x00\x80-\U0010ffff]|\\(?![\n\r\f]))"
)
_NUMBER = r"[+-]?(?:[0-9]*\.[0-9]+|[0-9]+)(?:[eE][+-]?[0-9]+)?"
_DELIM = (
    r"[+.<:,]"
    # '-' is a delimiter only if it starts neither a number (tried before) nor an ident
    r"|-(?![a-zA-Z_\-\x00\x80-\U0010ffff]|\\(?![\n\r\f]))"
    r"|/(?!\*)"
    rf"|@(?!{_STARTS_IDENT})"
    r"|#"
    r"|\\(?=[\n\r\f])"
    r"|[^ \t\n\r\f\"'#()+,\-./:;<@\[\\\]{}0-9a-zA-Z_\x00\x80-\U0010ffff]"
)
_QUIET = (
    r"(?:[ \t\n\r\f]++"
    rf"|#(?:{_IDCHAR}|{_ESC})++"
    rf"|{_NUMBER}(?:%|{_IDENT})?"
    r"|-->|<!--"
    rf"|(?>{_IDENT})(?!\()"
    rf"|{_DELIM})++"
)
_MASTER = re.compile(
    rf"(?P<q>{_QUIET})|(?P<p>[{{}}()\[\];])|(?P<c>/\*)|(?P<s>[\"'])|(?P<f>(?>{_IDENT})\()|(?P<a>@{_IDENT})"
)
_ESC_S = r"\\(?:[0-9a-fA-F]{1,6}(?:\r\n|[ \t\n\r\f])?|\r\n|[\s\S]|\Z)"
_STRING = {
    '"': re.compile(rf'"(?:[^"\\\n\r\f]|{_ESC_S})*+(?:(")|(?=[\n\r\f])|\Z)'),
    "'": re.compile(rf"'(?:[^'\\\n\r\f]|{_ESC_S})*+(?:(')|(?=[\n\r\f])|\Z)"),
}
_URL_QUOTED = re.compile(r"[ \t\n\r\f]*[\"']")
_URL_BODY = re.compile(
    rf"[ \t\n\r\f]*+((?:[^\"'()\\ \t\n\r\f\x01-\x08\x0b\x0e-\x1f\x7f]|{_ESC})*+)[ \t\n\r\f]*+(?:\)|\Z)"
)
_BAD_URL_REMNANTS = re.compile(r"(?:\\[^\n\r\f]|[^)\\]|\\)*+\)?")


class _Bodies(NamedTuple):
    """The patterns that read a string's or a url's body."""

    string: dict[str, re.Pattern[str]]
    url: re.Pattern[str]
    bad_url: re.Pattern[str]


_BODIES = _Bodies(_STRING, _URL_BODY, _BAD_URL_REMNANTS)
# The same for text without a backslash, where no escape can occur: one character class instead of an
# alternation with the escape, which the regex engine runs several times faster over a long URL.
_BODIES_PLAIN = _Bodies(
    {q: re.compile(rf"{q}[^{q}\n\r\f]*+(?:({q})|(?=[\n\r\f])|\Z)") for q in "\"'"},
    re.compile(r"[ \t\n\r\f]*+([^\"'()\\ \t\n\r\f\x01-\x08\x0b\x0e-\x1f\x7f]*+)[ \t\n\r\f]*+(?:\)|\Z)"),
    re.compile(r"[^)]*+\)?"),
)
_IDENT_FULL = re.compile(_IDENT)
_UNESCAPE = re.compile(r"\\(?:([0-9a-fA-F]{1,6})(?:\r\n|[ \t\n\r\f])?|(\r\n|[\n\r\f])|([\s\S])|\Z)")
_FIRST_COLON = re.compile(r"(?:[^\\:]|\\[\s\S])*+:")
_WS_RUN = re.compile(r"[ \t\n\r\f]+")
_CDX_EDGES = re.compile(r"^(?:<!--|-->|[ \t\n\r\f])+|(?:<!--|-->|[ \t\n\r\f])+$")
_BLANK_TOP = re.compile(r"(?:<!--|-->|[ \t\n\r\f])*+")
_WS = re.compile(r"[ \t\n\r\f]*+")
_WS_CHARS = frozenset(" \t\n\r\f")
_BLANK_COMMENTS = re.compile(r"(?:[ \t\n\r\f]++|/\*(?:[^*]|\*(?!/))*+(?:\*/|\Z))*+")
# Backslash-free text: the characters that can start a stored token, and an at-keyword.
_SKIP_PLAIN = re.compile(r"[^\"'/(){}\[\];@]*+")
_AT_PLAIN = re.compile(
    r"@(?:-[a-zA-Z_\-\x00\x80-\U0010ffff]|[a-zA-Z_\x00\x80-\U0010ffff])[a-zA-Z0-9_\-\x00\x80-\U0010ffff]*+"
)
_IMPORTANT = re.compile(r"!\s*important\s*$")
_COND_PAREN_OPEN = re.compile(r"\(\s+")
_COND_PAREN_CLOSE = re.compile(r"\s+\)")
_COND_FEATURE = re.compile(r"\(([^()]*)\)")  # "(name : value)" in a media or supports query
_COND_COLON = re.compile(r"\s*:\s*")
_COND_COMMA = re.compile(r"\s*,\s*")
_SCHEME = re.compile(r"([a-zA-Z][a-zA-Z0-9+.\-]*):")
# What the WHATWG URL parser strips from both ends of an input (C0 controls and space), and removes
# anywhere (tab and newlines).
_URL_TRIM = "".join(chr(c) for c in range(0x21))
_URL_DROP = {9: None, 10: None, 13: None}

_NON_REMOTE_SCHEMES = frozenset({"data", "cid", "mid", "about", "javascript", "blob"})
_IMAGE_SET_NAMES = frozenset({"image-set", "-webkit-image-set"})
# At-rules whose block does not restrict when its contents apply; everything else that wraps rules
# (@media, @supports, @container, @document, @page, @keyframes, unknown ones) is recorded as a condition.
_UNCONDITIONAL_GROUPS = frozenset({"layer", "scope", "font-face"})
_HIDING_PROPS = frozenset(
    {
        "display",
        "visibility",
        "opacity",
        "mso-hide",
        "max-height",
        "max-width",
        "overflow",
        "overflow-x",
        "overflow-y",
        "width",
        "height",
    }
)
# Declarations can only hide if their text holds one of these words, or "width"/"height" followed by a
# number <= 2 or with an exponent (a necessary condition for is_hiding, found without parsing so that text
# which cannot hide is not parsed; overflow:clip counts only with a zero max-width or max-height). Escapes
# and comments ("*": "/*" is slower to find in tags full of URLs) could disguise anything, so they count too.
_HIDE_WORDS = ("none", "hidden", "collapse", "opacity", "mso-hide", "\\", "*")
_SMALL_NUMBER = (
    r"[ \t\n\r\f:]*[+-]?(?:(?:0*[0-2](?:\.[0-9]*)?|0*\.[0-9]+)(?![0-9.])"
    r"|(?:[0-9]*\.)?[0-9]++e[+-]?[0-9])"  # (a number with an exponent, whatever its value)
)
# (two regexes that start with a literal, which the regex engine finds fast)
_SMALL_SIZES = tuple(re.compile(side + _SMALL_NUMBER) for side in ("width", "height"))
_ASCII_LOWER = {c: c + 32 for c in range(ord("A"), ord("Z") + 1)}
_MAX_DEPTH = 64
_CACHE_LIMIT = 64 * 1024

# Token kinds. Only tokens that matter to the parser are stored; the text between two stored tokens
# (whitespace, identifiers, numbers, colons, ...) is left implicit and read back when needed.
_COMMENT, _STR, _BADSTR, _URL, _BADURL, _FUNC, _URLFUNC, _IMGSET, _AT = range(9)
_LPAREN, _RPAREN, _LBRACK, _RBRACK, _LBRACE, _RBRACE, _SEMI = range(9, 16)
_PUNCT = {
    "(": _LPAREN,
    ")": _RPAREN,
    "[": _LBRACK,
    "]": _RBRACK,
    "{": _LBRACE,
    "}": _RBRACE,
    ";": _SEMI,
}
_CLOSER_OF = {
    _FUNC: _RPAREN,
    _URLFUNC: _RPAREN,
    _IMGSET: _RPAREN,
    _LPAREN: _RPAREN,
    _LBRACK: _RBRACK,
    _LBRACE: _RBRACE,
}
_CLOSERS = frozenset({_RPAREN, _RBRACK, _RBRACE})
_DECL_ENDS = frozenset({_SEMI, _RBRACE})
_PRELUDE_ENDS = frozenset({_SEMI, _LBRACE})


# --------------------------------------------------------------------------------------------------
# Escapes


def _unescape_repl(m: re.Match[str]) -> str:
    hexa, newline, char = m.group(1, 2, 3)
    if hexa is not None:
        cp = int(hexa, 16)
        if cp == 0 or 0xD800 <= cp <= 0xDFFF or cp > 0x10FFFF:
            return "\ufffd"
        return chr(cp)
    if newline is not None:
        return "\\" + newline  # not an escape outside strings: keep the delimiter and the newline
    if char is not None:
        return char
    return "\ufffd"  # backslash at end of input


def _unescape_string_repl(m: re.Match[str]) -> str:
    hexa, newline, char = m.group(1, 2, 3)
    if newline is not None or (hexa is None and char is None):
        return ""  # an escaped newline continues the string; a backslash at end of input is dropped
    return _unescape_repl(m)


def _unescape(text: str) -> str:
    """Value of an identifier, url body or other non-string text."""
    if "\\" in text:
        text = _UNESCAPE.sub(_unescape_repl, text)
    return text.replace("\x00", "\ufffd") if "\x00" in text else text


def _unescape_string(text: str) -> str:
    """Value of a string token's contents (without quotes)."""
    if "\\" in text:
        text = _UNESCAPE.sub(_unescape_string_repl, text)
    return text.replace("\x00", "\ufffd") if "\x00" in text else text


# --------------------------------------------------------------------------------------------------
# Tokenizers. Both return parallel lists (kind, start, end) of the stored tokens; _tokenize adds the
# bracket matching. _tokenize_exact runs the full regex tokenizer and is needed when the text holds a
# backslash. _tokenize_plain gives the same tokens for text without one, several times faster: it
# jumps between the few characters that can start a stored token and, at '(', looks back at the
# identifier characters before it to decide whether they form a function name.

_Tokens = tuple[list[int], list[int], list[int]]


@lru_cache(maxsize=512)
def _function_kind(name: str) -> int:
    value = _unescape(name).lower()
    if value == "url":
        return _URL
    if value in _IMAGE_SET_NAMES:
        return _IMGSET
    return _FUNC


def _url_end(css: str, body_at: int, bodies: _Bodies) -> tuple[int, int]:
    """Kind and end of what follows 'url(' (its name already read): function, url or bad url."""
    if _URL_QUOTED.match(css, body_at):
        return _URLFUNC, body_at
    um = bodies.url.match(css, body_at)
    if um is not None:
        return _URL, um.end()
    bm = bodies.bad_url.match(css, body_at)
    assert bm is not None  # the pattern can match the empty string
    return _BADURL, bm.end()


def _string_end(css: str, pos: int, bodies: _Bodies) -> tuple[int, int]:
    sm = bodies.string[css[pos]].match(css, pos)
    assert sm is not None  # the pattern matches any quote
    end = sm.end()
    return (_BADSTR if sm.group(1) is None and end < len(css) else _STR), end


def _tokenize_exact(css: str) -> _Tokens:
    kinds: list[int] = []
    starts: list[int] = []
    ends: list[int] = []
    size = len(css)
    pos = 0
    master = _MASTER.match
    while pos < size:
        m = master(css, pos)
        if m is None:  # cannot happen with the patterns above; stay total anyway
            pos += 1
            continue
        group = m.lastgroup
        end = m.end()
        if group == "q":
            pos = end
            continue
        if group == "p":
            kind = _PUNCT[css[pos]]
        elif group == "c":
            close = css.find("*/", pos + 2)
            end = size if close < 0 else close + 2
            kind = _COMMENT
        elif group == "s":
            kind, end = _string_end(css, pos, _BODIES)
        elif group == "f":
            kind = _function_kind(css[pos : end - 1])
            if kind == _URL:
                kind, end = _url_end(css, end, _BODIES)
        else:
            kind = _AT
        kinds.append(kind)
        starts.append(pos)
        ends.append(end)
        pos = end
    return kinds, starts, ends


_NAME_ASCII = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-\x00")
_IDENT_START_ASCII = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_\x00")


def _starts_ident(word: str) -> bool:
    first = word[0]
    if first in _IDENT_START_ASCII or first >= "\x80":
        return True
    if first != "-" or len(word) < 2:
        return False
    second = word[1]
    return second == "-" or second in _IDENT_START_ASCII or second >= "\x80"


def _tokenize_plain(css: str, until: int = -1) -> _Tokens:
    """_tokenize_exact for text without a backslash; with ``until`` >= 0, stopping after the first ';'
    past that offset (see _tokenize)."""
    kinds: list[int] = []
    starts: list[int] = []
    ends: list[int] = []
    size = len(css)
    pos = 0
    last_end = 0
    skip = _SKIP_PLAIN.match
    name_chars = _NAME_ASCII
    while True:
        m = skip(css, pos)
        assert m is not None  # the pattern can match the empty string
        pos = m.end()
        if pos >= size:
            break
        c = css[pos]
        start = pos
        end = pos + 1
        if c == "(":
            kind = _LPAREN
            s = pos
            while s > last_end and (css[s - 1] in name_chars or css[s - 1] >= "\x80"):
                s -= 1
            if s < pos:
                # The identifier characters before '(' form a function name unless an earlier token
                # claims them: '#' makes a hash, a digit (or '-' digit) a number with a unit, and
                # '<!--' is a token of its own even though it ends in name characters.
                if s >= 2 and css[s - 1] == "!" and css[s - 2] == "<" and css.startswith("--", s):
                    s += 2
                word = css[s:pos]
                if word and (s == 0 or css[s - 1] != "#") and _starts_ident(word):
                    start = s
                    kind = _function_kind(word)
                    if kind == _URL:
                        kind, end = _url_end(css, end, _BODIES_PLAIN)
        elif c == '"' or c == "'":
            kind, end = _string_end(css, pos, _BODIES_PLAIN)
        elif c == "/":
            if not css.startswith("*", end):
                pos = end
                continue
            close = css.find("*/", pos + 2)
            end = size if close < 0 else close + 2
            kind = _COMMENT
        elif c == "@":
            am = _AT_PLAIN.match(css, pos)
            if am is None:
                pos = end
                continue
            kind = _AT
            end = am.end()
        else:
            kind = _PUNCT[c]
        kinds.append(kind)
        starts.append(start)
        ends.append(end)
        if c == ";" and 0 <= until < pos:
            break
        pos = last_end = end
    return kinds, starts, ends


_REF_KINDS = frozenset({_URL, _URLFUNC, _IMGSET, _AT})


@lru_cache(maxsize=16)
def _tokenize(css: str, until: int = -1) -> tuple[list[int], list[int], list[int], list[int], list[int]]:
    """Tokens, match[i] (the index of opener i's closing token, or len(tokens) if none), and the
    indices of the tokens that can yield a reference (url, url(), image-set(), at-keyword).

    With ``until`` >= 0 (for text without a backslash), the tokens may end with the first ';' past that
    offset outside any block or function, for a caller that has no use for the rest: the tokens up to it
    and their matches are those of the whole text, as tokenizing goes left to right and nothing after
    that ';' closes anything before it.

    Cached: the HTML layer asks for the hiding rules and the references of the same stylesheet.
    """
    if "\\" in css:
        kinds, starts, ends = _tokenize_exact(css)
    else:
        kinds, starts, ends = _tokenize_plain(css, until)
    n = len(kinds)
    match = [-1] * n
    stack: list[int] = []
    for index, kind in enumerate(kinds):
        if kind in _CLOSER_OF:
            stack.append(index)
        elif kind in _CLOSERS and stack and _CLOSER_OF[kinds[stack[-1]]] == kind:
            # Inside a block only its own closing token ends it; any other closer is an ordinary token.
            match[stack.pop()] = index
    if stack and until >= 0:
        return _tokenize(css, -1)  # (maybe) stopped inside a block or function: its end may be further on
    for index in stack:
        match[index] = n
    ref_tokens = [index for index, kind in enumerate(kinds) if kind in _REF_KINDS]
    return kinds, starts, ends, match, ref_tokens


def _ascii_lower(css: str) -> str:
    # (str.lower() may change the length of non-ASCII text, which would shift offsets)
    return css.lower() if css.isascii() else css.translate(_ASCII_LOWER)


def _hide_hints(css: str) -> list[int]:
    """Sorted offsets of the words that a hiding declaration needs (see _HIDE_WORDS)."""
    low = _ascii_lower(css)
    hits: list[int] = []
    for word in _HIDE_WORDS:
        k = low.find(word)
        while k >= 0:
            hits.append(k)
            k = low.find(word, k + 1)
    for size in _SMALL_SIZES:
        hits.extend(m.start() for m in size.finditer(low))
    hits.sort()
    return hits


def may_hide(low: str) -> bool:
    """False when lower-cased text certainly holds no declarations ``is_hiding`` would report: the hints
    ``hiding_rules`` skips rules without. A cheap filter for text not parsed yet (a tag's attributes)."""
    for word in _HIDE_WORDS:
        if word in low:
            return True
    return _SMALL_SIZES[0].search(low) is not None or _SMALL_SIZES[1].search(low) is not None


@lru_cache(maxsize=1024)
def _property_name(text: str) -> str:
    """Lower-cased property name from the text before a declaration's colon, or "" if invalid."""
    text = text.strip(" \t\n\r\f")
    if _IDENT_FULL.fullmatch(text) is None:
        return ""
    return _unescape(text).lower()


# --------------------------------------------------------------------------------------------------
# Parser. Positions come in pairs (p, i): a character offset p and the index i of the first stored
# token at or after p. Ranges of tokens [i, end) are the contents of a block, end being its closer.


class _Ctx(NamedTuple):
    # A NamedTuple rather than a frozen dataclass: one is made per rule, and tuples build faster.
    conditions: tuple[str, ...] = ()
    selector: str | None = None
    font: bool = False
    attr: bool = False  # a style attribute: nested rules and at-rules are ignored, as browsers do
    depth: int = 0


_Decl = tuple[str, str, bool]  # (property, normalised value, important)
_Cursor = tuple[int, int]


class _Parser:
    __slots__ = (
        "bodies",
        "css",
        "decl_props",
        "ends",
        "hiding",
        "hide_hints",
        "kinds",
        "match",
        "n",
        "plain",
        "ref_tokens",
        "refs",
        "size",
        "starts",
        "want_decls",
    )

    def __init__(
        self,
        css: str,
        want_decls: bool = False,
        hiding: bool = False,
        props: frozenset[str] | None = None,
        until: int = -1,
    ) -> None:
        """``until``: see _tokenize; only for the references of a declaration list (which the text after a
        top-level ';' cannot change)."""
        self.css = css
        self.size = len(css)
        self.kinds, self.starts, self.ends, self.match, self.ref_tokens = _tokenize(css, until)
        self.n = len(self.kinds)
        self.plain = "\\" not in css
        self.bodies = _BODIES_PLAIN if self.plain else _BODIES
        self.refs: list[CssRef] = []
        self.want_decls = want_decls or hiding
        # Hiding rules only need the properties is_hiding reads; normalising the others is waste.
        self.decl_props: frozenset[str] | None = _HIDING_PROPS if hiding else props
        self.hiding: list[tuple[str, tuple[str, ...]]] | None = [] if hiding else None
        self.hide_hints = _hide_hints(css) if hiding else []

    # -- positions and text ------------------------------------------------------------------------
    def pos(self, index: int) -> int:
        """Character offset where token ``index`` starts (end of text past the last token)."""
        return self.starts[index] if index < self.n else self.size

    def end_pos(self, index: int) -> int:
        """Character offset after token ``index`` (a closer), or end of text if it never closed."""
        return self.ends[index] if index < self.n else self.size

    def has_refs(self, first: int, last: int) -> bool:
        """Whether tokens [first, last) include one that can yield a reference."""
        refs = self.ref_tokens
        return bisect_left(refs, first) != bisect_left(refs, last)

    def is_blank(self, start: int, end: int) -> bool:
        """Whether css[start:end] holds only whitespace and comments."""
        return _BLANK_COMMENTS.fullmatch(self.css, start, end) is not None

    def serialize(self, p: int, first: int, last: int, unescape: bool) -> str:
        """Text from offset p to token ``last`` with comments removed; whitespace collapsed."""
        css = self.css
        kinds = self.kinds
        parts: list[str] = []
        for j in range(first, last):
            start = self.starts[j]
            if start > p:
                parts.append(_unescape(css[p:start]) if unescape else css[p:start])
            kind = kinds[j]
            if kind == _COMMENT:
                parts.append(" ")
            elif not unescape:
                parts.append(css[start : self.ends[j]])
            elif kind == _STR:
                parts.append('"' + _unescape_string(self.string_inner(j)[2]) + '"')
            elif kind == _URL:
                parts.append("url(" + self.url_token(j)[0] + ")")
            else:
                parts.append(_unescape(css[start : self.ends[j]]))
            p = self.ends[j]
        end = self.pos(last)
        if end > p:
            parts.append(_unescape(css[p:end]) if unescape else css[p:end])
        return _WS_RUN.sub(" ", "".join(parts)).strip(" ")

    # -- URL extraction ----------------------------------------------------------------------------
    def string_inner(self, index: int) -> tuple[int, int, str]:
        start = self.starts[index]
        sm = self.bodies.string[self.css[start]].match(self.css, start)
        assert sm is not None
        end = sm.end() - 1 if sm.group(1) is not None else sm.end()
        return start + 1, end, self.css[start + 1 : end]

    def finish_url(self, raw_start: int, raw: str, value: str) -> tuple[str, tuple[int, int] | None]:
        url = value.strip(_URL_TRIM)
        if "\t" in url or "\n" in url or "\r" in url:
            url = url.translate(_URL_DROP)
        lead = len(raw) - len(raw.lstrip(_URL_TRIM))
        span = (raw_start + lead, raw_start + lead + len(url))
        if self.css[span[0] : span[1]] != url:
            return url, None  # escapes or dropped characters: not editable in place
        return url, span

    def url_token(self, index: int) -> tuple[str, tuple[int, int] | None]:
        body_at = self.css.index("(", self.starts[index]) + 1
        um = self.bodies.url.match(self.css, body_at)
        assert um is not None  # the tokenizer made this a url token because it matched
        raw = um.group(1)
        return self.finish_url(um.start(1), raw, _unescape(raw))

    def string_url(self, index: int) -> tuple[str, tuple[int, int] | None]:
        start, _end, raw = self.string_inner(index)
        return self.finish_url(start, raw, _unescape_string(raw))

    def function_string(self, index: int) -> int:
        """Index of the string inside url("..."), or -1 (a bad string loads nothing)."""
        s = index + 1
        return s if s < self.match[index] and self.kinds[s] == _STR else -1

    def add(
        self,
        url_and_span: tuple[str, tuple[int, int] | None],
        kind: str,
        replace: tuple[int, int],
        quoted: bool,
        prop: str | None,
        ctx: _Ctx,
    ) -> None:
        url, span = url_and_span
        self.refs.append(
            CssRef(
                url=url,
                kind=kind,
                replace_span=replace,
                url_span=span,
                quoted=quoted,
                property=prop,
                conditions=ctx.conditions,
                selector=ctx.selector,
                remote=kind != "namespace" and _is_remote(url),
            )
        )

    def collect(self, first: int, last: int, prop: str | None, ctx: _Ctx) -> None:
        """Report every url()/image-set() in the component values [first, last)."""
        kinds = self.kinds
        kind_name = "font" if ctx.font else "url"
        j = first
        while j < last:
            kind = kinds[j]
            if kind == _URL:
                self.add(self.url_token(j), kind_name, (self.starts[j], self.ends[j]), False, prop, ctx)
            elif kind == _URLFUNC:
                s = self.function_string(j)
                if s >= 0:
                    span = (self.starts[j], self.end_pos(self.match[j]))
                    self.add(self.string_url(s), kind_name, span, True, prop, ctx)
                j = self.match[j]
            elif kind == _IMGSET:
                self.image_set(j, prop, ctx)
                j = self.match[j]
            j += 1

    def image_set(self, index: int, prop: str | None, ctx: _Ctx) -> None:
        close = self.match[index]
        span = (self.starts[index], self.end_pos(close))
        kinds = self.kinds
        j = index + 1
        while j < close:
            kind = kinds[j]
            if kind == _STR:  # a bare string is a URL here
                self.add(self.string_url(j), "image-set", span, True, prop, ctx)
            elif kind == _URL:
                self.add(self.url_token(j), "image-set", span, False, prop, ctx)
            elif kind == _URLFUNC:
                s = self.function_string(j)
                if s >= 0:
                    self.add(self.string_url(s), "image-set", span, True, prop, ctx)
                j = self.match[j]
            elif kind in _CLOSER_OF:
                inner_end = self.match[j]
                # type("image/avif") holds a MIME type, not a URL; elsewhere only url() counts.
                name = self.css[self.starts[j] : self.ends[j] - 1]
                if kind != _FUNC or _unescape(name).lower() != "type":
                    t = j + 1
                    while t < inner_end:
                        if kinds[t] == _URL:
                            self.add(self.url_token(t), "image-set", span, False, prop, ctx)
                        elif kinds[t] == _URLFUNC:
                            s = self.function_string(t)
                            if s >= 0:
                                self.add(self.string_url(s), "image-set", span, True, prop, ctx)
                            t = self.match[t]
                        t += 1
                j = inner_end
            j += 1

    def collect_flat(self, first: int, last: int, ctx: _Ctx) -> None:
        """Too deep to parse: report every url in the range, without property context."""
        logger.debug("CSS nested deeper than %d levels; scanning the rest flat", _MAX_DEPTH)
        self.collect(first, last, None, ctx)

    # -- rules -------------------------------------------------------------------------------------
    def stylesheet(self) -> None:
        ctx = _Ctx()
        css = self.css
        kinds = self.kinds
        n = self.n
        p = 0
        i = 0
        while True:
            gap_end = self.pos(i)
            bm = _BLANK_TOP.match(css, p, gap_end)  # CDO/CDC are dropped between top-level rules
            q = bm.end() if bm is not None else p
            if q < gap_end:
                p, i = self.qualified_rule(q, i, n, False, ctx)
            elif i >= n:
                return
            elif kinds[i] == _COMMENT:
                p = self.ends[i]
                i += 1
            elif kinds[i] == _AT:
                p, i = self.at_rule(i, n, False, ctx)
            else:
                p, i = self.qualified_rule(self.starts[i], i, n, False, ctx)

    def declaration_list(self, attr: bool) -> list[_Decl]:
        return self.block_contents(0, 0, self.n, _Ctx(attr=attr))

    def block_contents(self, p: int, i: int, end: int, ctx: _Ctx) -> list[_Decl]:
        decls: list[_Decl] = []
        css = self.css
        kinds = self.kinds
        starts = self.starts
        n = self.n
        while True:
            gap_end = starts[i] if i < n else self.size
            q = p
            if q < gap_end and css[q] in _WS_CHARS:
                q = _WS.match(css, q, gap_end).end()  # type: ignore[union-attr]  # always matches
            if q < gap_end:
                if not self.want_decls and not self.has_refs(i, end):
                    return decls  # the rest of the block cannot yield a reference
                cursor = self.declaration(q, i, end, ctx, decls)
                p, i = cursor if cursor is not None else self.qualified_rule(q, i, end, True, ctx)
            elif i >= end:
                return decls
            elif kinds[i] in _DECL_ENDS or kinds[i] == _COMMENT:
                # A '}' reaches here only as a stray one at the top of a style attribute; skipping it
                # (rather than stopping) can only report more, never less.
                p = self.ends[i]
                i += 1
            elif kinds[i] == _AT:
                p, i = self.at_rule(i, end, True, ctx)
            else:  # a declaration starts with its name, so this is a (nested) rule or garbage
                p, i = self.qualified_rule(starts[i], i, end, True, ctx)

    def declaration(self, q: int, i: int, end: int, ctx: _Ctx, decls: list[_Decl]) -> _Cursor | None:
        """Consume a declaration starting at offset q; None if it is not one."""
        css = self.css
        kinds = self.kinds
        gap_end = self.starts[i] if i < self.n else self.size
        if self.plain:
            # Fast path for the usual "name: value" that holds no stored token at all.
            c = css.find(":", q, gap_end)
            if c >= 0 and (i >= end or kinds[i] in _DECL_ENDS):
                prop = _property_name(css[q:c])
                if not prop:
                    return None
                if self.want_decls and (self.decl_props is None or prop in self.decl_props):
                    self.add_decl(prop, _WS_RUN.sub(" ", css[c + 1 : gap_end]).strip(" ").lower(), decls)
                if i < end and kinds[i] == _SEMI:
                    return self.ends[i], i + 1
                return gap_end, i
        names: list[str] = []
        p = q
        j = i
        while True:
            gap = css[p:gap_end]
            if "\\" in gap:
                cm = _FIRST_COLON.match(gap)
                c = cm.end() - 1 if cm is not None else -1
            else:
                c = gap.find(":")
            if c >= 0:
                names.append(gap[:c])
                colon = p + c
                break
            names.append(gap)
            if j >= end or kinds[j] != _COMMENT:
                return None
            names.append(" ")
            p = self.ends[j]
            j += 1
            gap_end = self.pos(j)
        prop = _property_name("".join(names))
        if not prop:
            return None
        first = j
        vstart = colon + 1
        # The value runs to ';' or the end of the block. A {}-block is only allowed as the whole
        # value (of a non-custom property); otherwise this was a nested rule ("a:hover{...}").
        strict = not prop.startswith("--")
        block = -1
        prev = vstart
        while j < end:
            kind = kinds[j]
            if kind in _DECL_ENDS:
                break
            if strict and (kind == _LBRACE or block >= 0):
                if block >= 0:
                    if kind != _COMMENT or not self.is_blank(prev, self.starts[j]):
                        return None
                elif not self.is_blank(vstart, self.starts[j]):
                    return None
                else:
                    block = j
            if kind in _CLOSER_OF:
                j = self.match[j]
                prev = self.end_pos(j)
            else:
                prev = self.ends[j]
            j += 1
        last = min(j, end)
        if block >= 0 and not self.is_blank(prev, self.pos(last)):
            return None
        self.collect(first, last, prop, ctx)
        if self.want_decls and (self.decl_props is None or prop in self.decl_props):
            self.add_decl(prop, self.serialize(vstart, first, last, True).lower(), decls)
        return self.pos(last), last

    @staticmethod
    def add_decl(prop: str, value: str, decls: list[_Decl]) -> None:
        important = False
        if "!" in value:
            im = _IMPORTANT.search(value)
            if im is not None:
                important = True
                value = value[: im.start()].rstrip(" ")
        decls.append((prop, value, important))

    def qualified_rule(self, q: int, i: int, end: int, nested: bool, ctx: _Ctx) -> _Cursor:
        """Consume a qualified rule whose prelude starts at offset q (nested ones stop at ';')."""
        kinds = self.kinds
        j = i
        while j < end:
            kind = kinds[j]
            if kind == _LBRACE:
                close = self.match[j]
                if not ctx.attr:
                    self.rule_block(q, i, j, close, nested, ctx)
                return self.end_pos(close), close + 1
            if nested and kind == _SEMI:
                return self.starts[j], j  # parse error: the caller drops the ';' and what came before
            j = self.match[j] + 1 if kind in _CLOSER_OF else j + 1
        return self.pos(end), end  # end of input before a block: no rule

    def rule_block(self, q: int, i: int, brace: int, close: int, nested: bool, ctx: _Ctx) -> None:
        if self.hiding is not None:
            hints = self.hide_hints
            if bisect_left(hints, self.ends[brace]) == bisect_left(hints, self.pos(close)):
                return  # neither this rule nor a rule nested in it can hide anything
        elif not self.want_decls and not self.has_refs(brace + 1, close):
            return  # nothing in there can load anything
        selector = self.serialize(q, i, brace, False)
        if not nested:
            selector = _CDX_EDGES.sub("", selector)
        if ctx.selector is not None:
            selector = _nest_selector(ctx.selector, selector)
        inner = _Ctx(ctx.conditions, selector, ctx.font, ctx.attr, ctx.depth + 1)
        if inner.depth > _MAX_DEPTH:
            self.collect_flat(brace + 1, close, inner)
            return
        decls = self.block_contents(self.ends[brace], brace + 1, close, inner)
        if self.hiding is not None and not ctx.conditions and decls:
            reasons = is_hiding(_cascade(decls))
            if reasons:
                self.hiding.append((selector, reasons))

    def wants_block(self, name: str, first: int, last: int) -> bool:
        if self.hiding is not None:  # hiding rules only come from outside conditional at-rules
            return name in _UNCONDITIONAL_GROUPS
        return self.want_decls or self.has_refs(first, last)

    def at_rule(self, i: int, end: int, nested: bool, ctx: _Ctx) -> _Cursor:
        kinds = self.kinds
        name = _unescape(self.css[self.starts[i] + 1 : self.ends[i]]).lower()
        j = i + 1
        while j < end:
            kind = kinds[j]
            if kind in _PRELUDE_ENDS or (nested and kind == _RBRACE):
                break
            j = self.match[j] + 1 if kind in _CLOSER_OF else j + 1
        j = min(j, end)
        prelude_end = j
        close = -1
        if j < end and kinds[j] == _LBRACE:
            close = self.match[j]
            cursor = (self.end_pos(close), close + 1)
        elif j < end and kinds[j] == _SEMI:
            cursor = (self.ends[j], j + 1)
        else:
            cursor = (self.pos(j), j)
        if ctx.attr:
            return cursor  # at-rules mean nothing inside a style attribute
        if name == "import" or name == "namespace":
            self.import_rule(name, i, prelude_end, cursor[0], ctx)
        elif close >= 0 and self.wants_block(name, j + 1, close):
            conditions = ctx.conditions
            if name not in _UNCONDITIONAL_GROUPS:
                prelude = _normalize_condition(self.serialize(self.ends[i], i + 1, prelude_end, True))
                conditions += (f"{name} {prelude}" if prelude else name,)
            font = ctx.font or name == "font-face"
            inner = _Ctx(conditions, ctx.selector, font, False, ctx.depth + 1)
            if inner.depth > _MAX_DEPTH:
                self.collect_flat(j + 1, close, inner)
            else:
                self.block_contents(self.ends[j], j + 1, close, inner)
        return cursor

    def import_rule(self, name: str, i: int, prelude_end: int, rule_end: int, ctx: _Ctx) -> None:
        kinds = self.kinds
        p = self.ends[i]
        j = i + 1
        # The URL comes first (after comments); @namespace may name a prefix before it.
        while j < prelude_end and kinds[j] == _COMMENT:
            j += 1
        if j >= prelude_end:
            return
        if name == "import" and not self.is_blank(p, self.starts[j]):
            return
        kind = kinds[j]
        after = j + 1
        if kind == _STR:
            found = self.string_url(j)
            quoted = True
        elif kind == _URL:
            found = self.url_token(j)
            quoted = False
        elif kind == _URLFUNC:
            s = self.function_string(j)
            if s < 0:
                return
            found = self.string_url(s)
            quoted = True
            after = self.match[j] + 1
        else:
            return
        conditions = ctx.conditions
        if name == "import":
            rest = self.serialize(self.end_pos(after - 1), after, prelude_end, True)
            conditions += _import_conditions(rest)
        self.add(found, name, (self.starts[i], rule_end), quoted, None, _Ctx(conditions, ctx.selector))


# --------------------------------------------------------------------------------------------------
# Helpers


def _is_remote(url: str) -> bool:
    if not url or url.startswith("#"):
        return False
    m = _SCHEME.match(url)
    return m is None or m.group(1).lower() not in _NON_REMOTE_SCHEMES


def _normalize_condition(text: str) -> str:
    text = text.lower()
    text = _COND_PAREN_OPEN.sub("(", text)
    text = _COND_PAREN_CLOSE.sub(")", text)
    text = _COND_FEATURE.sub(lambda m: "(" + _COND_COLON.sub(": ", m.group(1)) + ")", text)
    return _COND_COMMA.sub(", ", text).strip(" ")


def _import_conditions(rest: str) -> tuple[str, ...]:
    """Conditions from what follows an @import's URL: layer(), supports(), then a media query list."""
    rest = _normalize_condition(rest)
    out: list[str] = []
    if rest.startswith("layer"):
        if rest.startswith("layer("):
            close = rest.find(")")
            rest = rest[close + 1 :] if close >= 0 else ""
        elif rest == "layer" or rest.startswith("layer "):
            rest = rest[5:]
        rest = rest.strip(" ")
    if rest.startswith("supports("):
        depth = 0
        for k, ch in enumerate(rest):
            depth += (ch == "(") - (ch == ")")
            if depth == 0 and ch == ")":
                out.append("supports " + rest[len("supports") : k + 1])
                rest = rest[k + 1 :].strip(" ")
                break
        else:
            out.append("supports " + rest[len("supports") :])
            rest = ""
    if rest:
        out.append("media " + rest)
    return tuple(out)


def _nest_selector(parent: str, child: str) -> str:
    """Approximate the selector a nested rule matches (CSS Nesting), for matching hints."""
    if "," in parent:
        parent = f":is({parent})"
    if "&" in child:
        return child.replace("&", parent)
    return f"{parent} {child}"


def _cascade(decls: list[_Decl]) -> dict[str, str]:
    values: dict[str, str] = {}
    important: set[str] = set()
    for prop, value, imp in decls:
        if prop in important and not imp:
            continue  # an earlier !important beats a later normal declaration
        values[prop] = value
        if imp:
            important.add(prop)
    return values


# --------------------------------------------------------------------------------------------------
# Public API


def _may_have_refs(css: str) -> bool:
    """False when the text certainly holds no reference: the fast path for most style attributes.

    Every reference needs "url(", "image-set(", "@import" or "@namespace" (in any case), or an escape
    that may spell one. This is tighter than "contains '@'" (an "@media" alone loads nothing) and
    still exact.
    """
    if "\\" in css:
        return True
    low = css.lower()
    return "url(" in low or "image-set(" in low or "@import" in low or "@namespace" in low


def scan_stylesheet(css: str) -> list[CssRef]:
    """Every reference in a stylesheet (a ``<style>`` block or a CSS part), in text order."""
    if not _may_have_refs(css):
        return []
    if len(css) <= _CACHE_LIMIT:
        return list(_scan_stylesheet_cached(css))
    return _scan_stylesheet(css)


def _scan_stylesheet(css: str) -> list[CssRef]:
    parser = _Parser(css)
    parser.stylesheet()
    return parser.refs


@lru_cache(maxsize=256)
def _scan_stylesheet_cached(css: str) -> tuple[CssRef, ...]:
    # Newsletters repeat the same template stylesheet across messages.
    return tuple(_scan_stylesheet(css))


def scan_declarations(css: str) -> list[CssRef]:
    """Every reference in a declaration list (the value of a ``style`` attribute)."""
    if not _may_have_refs(css):
        return []
    if len(css) <= _CACHE_LIMIT:
        return list(_style_cached(css)[1])
    return _scan_declarations(css)


def _scan_declarations(css: str) -> list[CssRef]:
    parser = _Parser(css)
    parser.declaration_list(attr=True)
    return parser.refs


def _style_refs(css: str, low: str) -> list[CssRef]:
    """The references of a style attribute, whose ASCII-lower-cased text is ``low``."""
    if not _may_have_refs(css):
        return []
    # In a style attribute only url() and image-set() can load (at-rules mean nothing there), spelled as
    # such in text without a backslash: the tokens past the first ';' after the last one are not needed.
    parser = _Parser(css, until=max(low.rfind("url("), low.rfind("image-set(")))
    parser.declaration_list(attr=True)
    return parser.refs


_NOT_HIDING: tuple[tuple[str, ...], str | None, str | None] = ((), None, None)


def style_hiding(css: str) -> tuple[tuple[str, ...], str | None, str | None]:
    """What a style attribute says about its element's visibility: the reasons ``is_hiding`` gives for its
    declarations, and its width and height values (as ``parse_declarations`` gives them)."""
    if len(css) <= _CACHE_LIMIT:
        return _style_cached(css)[0]
    return _style(css)[0]


def _style(css: str) -> tuple[tuple[tuple[str, ...], str | None, str | None], list[CssRef]]:
    low = _ascii_lower(css)
    if not may_hide(low) and "width" not in low and "height" not in low:
        # No declaration can hide (see may_hide) and none is named width or height (an escape would be a
        # backslash, which may_hide counts; outside ASCII, the parser's str.lower() maps only the Kelvin
        # sign and "İ" to ASCII letters, "k" and "i" plus a combining dot, which spell none of these
        # names): only the references are wanted. The most common case: a background image.
        return _NOT_HIDING, _style_refs(css, low)
    decls, refs = _parse_declarations(css, _HIDING_PROPS)
    values = _cascade(decls)
    return (is_hiding(values), values.get("width"), values.get("height")), refs


@lru_cache(maxsize=4096)
def _style_cached(css: str) -> tuple[tuple[tuple[str, ...], str | None, str | None], tuple[CssRef, ...]]:
    # The same style attribute value often appears on hundreds of cells of one message, and the HTML layer
    # asks both whether it hides and what it loads: one parse answers both.
    hiding, refs = _style(css)
    return hiding, tuple(refs)


def parse_declarations(css: str) -> dict[str, str]:
    """Declarations of a style attribute: lower-cased property -> normalised value.

    Values have comments removed, escapes resolved, whitespace collapsed and are lower-cased, with
    ``!important`` removed. The last declaration of a property wins, except that an ``!important`` one
    beats later normal ones.
    """
    if len(css) <= _CACHE_LIMIT:
        return dict(_parse_declarations_cached(css))
    return _cascade(_parse_declarations(css)[0])


@lru_cache(maxsize=4096)
def _parse_declarations_cached(css: str) -> tuple[tuple[str, str], ...]:
    return tuple(_cascade(_parse_declarations(css)[0]).items())


# A style attribute without quotes, comments, brackets, at-keywords or escapes holds no token but ';' for the
# parser (and no reference): it is "name: value" parts between semicolons, read as the parser's fast path
# reads each one.
_NOT_PLAIN_DECLARATIONS = re.compile(r"[\"'/(){}\[\]@\\]")


def _parse_declarations(css: str, props: frozenset[str] | None = None) -> tuple[list[_Decl], list[CssRef]]:
    """The declarations (of ``props`` only, if given) and the references of a declaration list, from one
    parse."""
    if _NOT_PLAIN_DECLARATIONS.search(css) is None:
        decls: list[_Decl] = []
        for part in css.split(";"):
            colon = part.find(":")
            if colon >= 0:
                prop = _property_name(part[:colon])
                if prop and (props is None or prop in props):
                    _Parser.add_decl(prop, _WS_RUN.sub(" ", part[colon + 1 :]).strip(" ").lower(), decls)
        return decls, []
    parser = _Parser(css, want_decls=True, props=props)
    return parser.declaration_list(attr=True), parser.refs


_LENGTH = re.compile(r"([+-]?(?:[0-9]*\.[0-9]+|[0-9]+\.?)(?:e[+-]?[0-9]+)?)([a-z%]*)")


def _number(value: str | None) -> tuple[float, str] | None:
    if not value:
        return None
    m = _LENGTH.fullmatch(value)
    if m is None:
        return None
    return float(m.group(1)), m.group(2)


def _is_zero(value: str | None) -> bool:
    num = _number(value)
    return num is not None and num[0] == 0


def _px(value: str | None) -> float | None:
    # Unitless lengths count as pixels: many mails render in quirks mode, where browsers accept them.
    num = _number(value)
    if num is None or num[1] not in ("", "px"):
        return None
    return num[0]


def is_hiding(decls: Mapping[str, str]) -> tuple[str, ...]:
    """Reasons why an element with these (normalised) declarations is invisible, or ().

    font-size and line-height are deliberately ignored: they do not hide an image.
    """
    reasons: list[str] = []
    get = decls.get
    if get("display") == "none":
        reasons.append("display:none")
    if get("visibility") in ("hidden", "collapse"):
        reasons.append("visibility:hidden")
    opacity = _number(get("opacity"))
    if opacity is not None and opacity[0] <= 0:
        reasons.append("opacity:0")
    if get("mso-hide") == "all":  # Outlook's own hiding property
        reasons.append("mso-hide:all")
    overflow = (get("overflow") or "").split(" ")[0]
    if _is_zero(get("max-height")) and (
        overflow in ("hidden", "clip") or get("overflow-y") in ("hidden", "clip")
    ):
        reasons.append("max-height:0+overflow:hidden")
    if _is_zero(get("max-width")) and (
        overflow in ("hidden", "clip") or get("overflow-x") in ("hidden", "clip")
    ):
        reasons.append("max-width:0+overflow:hidden")
    width = get("width")
    height = get("height")
    if _is_zero(width):
        reasons.append("width:0")
    if _is_zero(height):
        reasons.append("height:0")
    w = _px(width)
    h = _px(height)
    if w is not None and h is not None and 0 <= w <= 2 and 0 <= h <= 2:
        reasons.append(f"tiny:{w:g}x{h:g}")
    return tuple(reasons)


def hiding_rules(css: str) -> list[tuple[str, tuple[str, ...]]]:
    """(selector, reasons) for each rule of a stylesheet, outside conditional at-rules, that hides.

    The selector is the rule's prelude with comments removed and whitespace collapsed (a selector list
    stays one string; the caller splits on commas if it wants to).
    """
    if len(css) <= _CACHE_LIMIT:
        return list(_hiding_rules_cached(css))
    return _hiding_rules(css)


def _hiding_rules(css: str) -> list[tuple[str, tuple[str, ...]]]:
    parser = _Parser(css, hiding=True)
    parser.stylesheet()
    assert parser.hiding is not None
    return parser.hiding


@lru_cache(maxsize=256)
def _hiding_rules_cached(css: str) -> tuple[tuple[str, tuple[str, ...]], ...]:
    return tuple(_hiding_rules(css))


# Selectors that only match inside quoted or forwarded mail, which Litmus-style trackers style with a
# background image to learn that a message was forwarded (trackers.md section 6.2):
# Outlook's header block, Thunderbird's forwarded-headers table, a quoted reply, and the container of
# a message shown inside another message in Apple/iOS Mail. "blockquote" only counts with a descendant
# after it ("blockquote #_t"), so a mail styling its own quotations is not flagged.
FORWARD_SELECTOR_HINTS: frozenset[str] = frozenset(
    {"div.outlookmessageheader", "table.moz-email-headers-table", "blockquote", "#mailcontainerbody"}
)


def _hint_pattern(hint: str) -> str:
    if hint == "blockquote":
        # the element itself, maybe with more of its compound selector, then a combinator and more
        return r"(?<![\w.#-])blockquote[^\s,>~+]*\s*[\s>~+]\s*[^\s,>~+]"
    tag, dot, name = hint.partition(".")
    if dot:  # "div.x": the class is what is distinctive; the element name is optional
        return rf"(?:(?<![\w.#-]){re.escape(tag)})?\.{re.escape(name)}(?![\w-])"
    return rf"{re.escape(hint)}(?![\w-])"


_FORWARD = re.compile("|".join(_hint_pattern(h) for h in sorted(FORWARD_SELECTOR_HINTS)))


def _print_only(condition: str) -> bool:
    if condition == "page" or condition.startswith("page "):
        return True  # @page rules apply only to paged media
    if not condition.startswith("media "):
        return False
    for query in condition[len("media ") :].split(","):
        query = query.strip(" ")
        if query.startswith("only "):
            query = query[len("only ") :]
        if query != "print" and not query.startswith("print "):
            return False
    return True


def conditional_reason(ref: CssRef) -> str | None:
    """Why the load serves no reader: "print", "prefers-color-scheme", "forward", or None."""
    for condition in ref.conditions:
        if _print_only(condition):
            return "print"
    for condition in ref.conditions:
        if "prefers-color-scheme" in condition:
            return "prefers-color-scheme"
    if ref.selector and _FORWARD.search(ref.selector.lower()):
        return "forward"
    return None
