"""Every place an HTML document makes a mail client load something, with the offsets needed to stop it.

``extract(text)`` walks the tokens of one HTML (or SVG) document and returns ``Reference`` records. Each one
carries what detection needs (URL, vector, whether its element is hidden or tiny, whether only conditional
CSS loads it) and what the length-preserving rewriter needs (which span to blank, which span holds the raw
URL for cleaning). Detection never looks at the text again; rewriting never parses it again, so the two can
never disagree about where a reference is.

Rules:
1. ``text`` is a ``str`` whose indices are the byte offsets of the part (ASCII-compatible charsets are
   decoded as latin-1 by the caller). Every span is a (start, end) pair of such indices.
2. Only tokens a WHATWG parser treats as tags count (see ``tokenizer``). Comments are skipped, except
   Outlook conditional comments (``<!--[if ...]>``), whose content Outlook renders: it is scanned as markup.
3. References that share an element (an ``<img>`` and its ``srcset``, a ``<picture>`` and its sources)
   share a ``group`` so that they share a verdict. Groups are a partition of one document's references:
   their only user (the engine) compares them for equality. A group is named by where its element starts
   (see ``_Extractor``), not counted, so how closely a tag is looked at never changes another's group.

Speed: the walk runs on every HTML part of every message, about a thousand tags per newsletter, so Python
does as little per tag as it can. It reads the tokenizer's regex matches directly; a start tag's facts
(name, stack entry, whether it may load) are looked up by its text, which newsletters repeat; the tests
that decide whether a tag is looked at more closely are substring tests (a case-insensitive regex tries
every character); an element's attributes are parsed, and its hiding worked out, only when a reference
needs them, and memoized per document by what they depend on.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from enum import StrEnum

from mailproxy.html import css
from mailproxy.html.tokenizer import (
    CLOSE,
    COMMENT,
    OPEN,
    OPEN_NAME,
    RAW,
    START,
    UNCLOSED,
    attribute_matches,
    attribute_value,
    attribute_value_span,
    matches,
    tokens_of,
)
from mailproxy.model import Vector


class Kill(StrEnum):
    """How to stop a reference from loading without changing the text's length."""

    ELEMENT = "element"  # blank the whole start tag (an <img>, <link>, <meta refresh>, <base>, ...)
    VALUE = "value"  # blank the attribute value (background=, poster=, srcset=, ...)
    CSS = "css"  # replace a url()/image-set() token by 'none'
    RULE = "rule"  # blank a whole CSS rule (@import)


@dataclass(frozen=True, slots=True)
class Reference:
    url: str  # as the browser reads it: entities decoded, surrounding whitespace stripped
    vector: Vector
    element: str  # lower-cased tag name ("style" for <style> blocks)
    attr: str | None  # attribute name, None for <style> blocks
    kill: Kill
    kill_span: tuple[int, int]  # what to blank (see Kill)
    value_span: tuple[int, int] | None  # the attribute value (inside quotes), for placeholders
    quoted: bool  # the attribute value has quotes (unquoted values need '""' when blanked)
    url_span: tuple[int, int] | None  # the raw URL text, when it can be cleaned in place
    group: int  # references of one element (or one <picture>) share a verdict
    # Why the element is invisible: its outermost hidden ancestor's reasons (CSS), then its own (CSS, size).
    hidden: tuple[str, ...] = ()
    conditional: str | None = None  # "print" | "prefers-color-scheme" | "forward": serves no reader
    in_comment: bool = False  # found inside an Outlook conditional comment


@dataclass(slots=True)
class Document:
    """What ``extract`` learned about one HTML document."""

    refs: list[Reference] = field(default_factory=list)
    base: str | None = None  # the first <base href>, which browsers resolve relative URLs against
    # Tags cut off by the end of the document (or of a conditional comment), with what follows them:
    # nothing there loads in a browser, but the rewriter neutralizes it for lenient clients.
    unclosed: list[tuple[int, int]] = field(default_factory=list)


# Elements that never have an end tag: they are not pushed on the open-element stack.
_VOID = frozenset(
    [
        "area",
        "base",
        "basefont",
        "bgsound",
        "br",
        "col",
        "embed",
        "frame",
        "hr",
        "image",
        "img",
        "input",
        "keygen",
        "link",
        "meta",
        "param",
        "source",
        "track",
        "wbr",
    ]
)

# (element, attribute) -> (vector, kill). "*" matches any element. Elements whose only purpose is to load
# the URL are killed whole; elsewhere only the value is blanked so the content around it survives.
_E, _V = Kill.ELEMENT, Kill.VALUE
_URL_ATTRS: dict[tuple[str, str], tuple[Vector, Kill]] = {
    ("img", "src"): (Vector.IMG, _E),
    ("image", "src"): (Vector.IMG, _E),
    ("img", "lowsrc"): (Vector.LOWSRC, _V),
    ("img", "dynsrc"): (Vector.LOWSRC, _V),
    ("input", "src"): (Vector.IMG, _E),
    ("amp-img", "src"): (Vector.IMG, _E),
    ("amp-anim", "src"): (Vector.IMG, _E),
    ("*", "background"): (Vector.BACKGROUND, _V),
    ("video", "poster"): (Vector.POSTER, _V),
    ("video", "src"): (Vector.MEDIA, _V),
    ("audio", "src"): (Vector.MEDIA, _V),
    ("source", "src"): (Vector.MEDIA, _E),
    ("track", "src"): (Vector.MEDIA, _E),
    ("bgsound", "src"): (Vector.MEDIA, _E),
    ("iframe", "src"): (Vector.FRAME, _E),
    ("frame", "src"): (Vector.FRAME, _E),
    ("amp-iframe", "src"): (Vector.FRAME, _E),
    ("embed", "src"): (Vector.OBJECT, _E),
    ("object", "data"): (Vector.OBJECT, _V),
    ("object", "codebase"): (Vector.OBJECT, _V),
    ("applet", "code"): (Vector.OBJECT, _V),
    ("applet", "codebase"): (Vector.OBJECT, _V),
    ("applet", "archive"): (Vector.OBJECT, _V),
    ("script", "src"): (Vector.SCRIPT, _E),
    ("link", "href"): (Vector.LINK, _E),
    ("base", "href"): (Vector.BASE, _E),
    ("html", "manifest"): (Vector.LINK, _V),
    ("a", "ping"): (Vector.PING, _V),
    ("area", "ping"): (Vector.PING, _V),
    ("amp-list", "src"): (Vector.AMP, _E),
    ("form", "action-xhr"): (Vector.AMP, _V),
    # SVG (the tokenizer lower-cases names: feImage -> feimage)
    ("image", "href"): (Vector.SVG, _E),
    ("image", "xlink:href"): (Vector.SVG, _E),
    ("use", "href"): (Vector.SVG, _E),
    ("use", "xlink:href"): (Vector.SVG, _E),
    ("feimage", "href"): (Vector.SVG, _E),
    ("feimage", "xlink:href"): (Vector.SVG, _E),
    ("*", "color-profile"): (Vector.SVG, _V),
    # SVG animation can swap a safe href for a remote one at run time.
    ("set", "to"): (Vector.SVG, _E),
    ("animate", "to"): (Vector.SVG, _E),
    ("animate", "from"): (Vector.SVG, _E),
    ("animate", "values"): (Vector.SVG, _E),
    # VML, inside Outlook conditional comments
    ("v:image", "src"): (Vector.VML, _E),
    ("v:fill", "src"): (Vector.VML, _E),
    ("v:imagedata", "src"): (Vector.VML, _E),
    ("v:shape", "src"): (Vector.VML, _V),
}
# SVG presentation attributes that take a FUNCIRI, url(...).
_FUNCIRI_ATTRS = frozenset(
    ["fill", "stroke", "filter", "clip-path", "mask", "marker-start", "marker-mid", "marker-end", "cursor"]
)
# A tag without any of these attributes loads nothing.
_LOADING_ATTRS = frozenset(a for (_, a) in _URL_ATTRS) | {"srcset", "style", "content"} | _FUNCIRI_ATTRS
# What each attribute of an element is, by element: a URL attribute's (vector, kill), which win, or "srcset",
# "style" or "funciri" for the attributes that hold several or CSS.
_AttrUse = tuple[Vector, Kill] | str
_ANY_ELEMENT_USES: dict[str, _AttrUse] = {
    **dict.fromkeys(_FUNCIRI_ATTRS, "funciri"),
    "srcset": "srcset",
    "style": "style",
    **{a: spec for (e, a), spec in _URL_ATTRS.items() if e == "*"},
}
_ELEMENT_USES: dict[str, dict[str, _AttrUse]] = {
    element: {**_ANY_ELEMENT_USES, **{a: spec for (e, a), spec in _URL_ATTRS.items() if e == element}}
    for element in {e for (e, _) in _URL_ATTRS} - {"*"}
}
# <link rel> values that make the client fetch something. Unknown relations load nothing.
_LOADING_RELS = frozenset(
    [
        "stylesheet",
        "prefetch",
        "preload",
        "modulepreload",
        "preconnect",
        "dns-prefetch",
        "prerender",
        "icon",
        "shortcut",
        "apple-touch-icon",
        "apple-touch-icon-precomposed",
        "mask-icon",
        "manifest",
        "alternate",
        "search",
        "import",
    ]
)


class _AttrTest:
    """Whether a tag's attribute text has one of some attributes: one of the names after a separator (or at
    the start), then "=", in any case. A cheap filter: the text of a value may fool it; it never misses."""

    __slots__ = ("names", "pattern")

    def __init__(self, names: set[str]) -> None:
        self.names = tuple(sorted(names, key=len))
        alternatives = "|".join(sorted(map(re.escape, names)))
        self.pattern = re.compile(r"(?i)(?:[\s/\"']|^)(?:" + alternatives + r")\s*=")

    def found(self, body: str, low: str) -> bool:
        """``low`` is ``body.lower()``. The regex is slow (it tries every place), so lower-cased ASCII text
        is first searched for the names, which a case-insensitive match on ASCII text implies."""
        if body.isascii():
            for name in self.names:
                if name in low:
                    break
            else:
                return False
        return self.pattern.search(body) is not None


# A start tag can load something only if it has a URL attribute its element loads, or CSS (url(),
# image-set(), an escape or a character reference that could spell either), or background= / SVG
# presentation attributes, which any element may carry. Other tags are not parsed further: most of a
# newsletter's tags are plain layout.
_ELEMENT_LOADS: dict[str, _AttrTest] = {
    element: _AttrTest(
        {a for (e, a) in _URL_ATTRS if e == element}
        | ({"srcset"} if element in ("img", "source") else set())
        | ({"content"} if element == "meta" else set())
    )
    for element in {e for (e, _) in _URL_ATTRS if e != "*"} | {"meta", "source"}
}


def _may_load_anywhere(low: str) -> bool:
    """Whether a tag's lower-cased text has something any element may load from: background=,
    color-profile=, CSS url()/image-set(), or an escape or character reference that could spell one. Plain
    substring tests: this runs on every tag, and most tags of a newsletter have none of these."""
    if "url" in low or "\\" in low or "image-set" in low or "color-profile" in low:
        return True
    # (an "&" is found in one fast step, and most tags have none: the two references are looked for after it)
    amp = low.find("&")
    if amp >= 0 and (low.find("&#", amp) >= 0 or low.find("&lpar", amp) >= 0):
        return True
    return "background" in low and _BACKGROUND_ATTR.search(low) is not None


_BACKGROUND_ATTR = re.compile(r"background\s*=")


def _may_hide(low: str) -> bool:
    """Whether a tag might hide its content, checked on its lower-cased text before parsing an ancestor's
    attributes: the hidden attribute, or a style ``css.may_hide`` cannot rule out (an ancestor's width and
    height attributes do not count). A character reference other than "&amp;" may spell any of a style's
    characters ("width&colon;0", "n&#111;ne"), so it counts too."""
    if "hidden" in low:
        return True
    # No hidden attribute: only a style can hide, and it is at or after the first "style" (attribute names
    # are never decoded), past the URLs of the attributes before it.
    at = low.find("style")
    if at < 0:
        return False
    style = low[at:]
    return css.may_hide(style) or ("&" in style and style.count("&") != style.count("&amp;"))


_CLASS_OR_ID = _AttrTest({"class", "id"})
_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(?:px)?\s*$", re.IGNORECASE)
_REFRESH_URL = re.compile(
    r"^\s*[\d.]*\s*[;,]?\s*(?:url\s*=\s*)?(['\"]?)(.*?)\1\s*$", re.IGNORECASE | re.DOTALL
)
_CONDITIONAL_COMMENT = re.compile(r"\s*\[\s*if\b", re.IGNORECASE)
# Named character references without ';' are not decoded in attribute values when followed by '=' or an
# alphanumeric (WHATWG "character reference in attribute"); html.unescape does not know that rule.
_ENTITY = re.compile(r"&(#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[A-Za-z][A-Za-z0-9]*;?)")
_ASCII_WS = " \t\n\f\r"


def _decode_ref(raw: str, m: re.Match[str]) -> str:
    ref = m.group(1)
    if not ref.endswith(";") and not ref.startswith("#"):
        nxt = raw[m.end() : m.end() + 1]
        if nxt == "=" or nxt.isalnum():
            return m.group(0)
    return html.unescape(m.group(0))


def unescape_attr(raw: str) -> str:
    """Decode character references in an attribute value the way a browser does."""
    if "&" not in raw:
        return raw
    if raw.count("&") == raw.count("&amp;"):  # the usual URL with "&amp;" only
        return raw.replace("&amp;", "&")
    return _ENTITY.sub(lambda m: _decode_ref(raw, m), raw)


def _offset_map(raw: str) -> list[int] | None:
    """For a raw attribute value with character references: decoded index -> raw index, plus one entry
    for the end. None when the value has no references (the identity map)."""
    if "&" not in raw:
        return None
    out: list[int] = []
    pos = 0
    for m in _ENTITY.finditer(raw):
        out.extend(range(pos, m.start()))
        # Every decoded character of a reference maps to the reference's start.
        out.extend([m.start()] * len(_decode_ref(raw, m)))
        pos = m.end()
    out.extend(range(pos, len(raw) + 1))
    return out


def _px(value: str) -> float | None:
    if value.isdigit() and value.isascii():  # the usual width="600"
        return float(value)
    m = _SIZE.match(value)
    return float(m.group(1)) if m else None


# An attribute's value as ``attribute_value_span`` gives it: (text as written, start, end, quote).
_Value = tuple[str, int, int, str]
# An open element: its name, its attribute text and (once needed) the hiding reasons its descendants
# inherit. A tuple, replaced when the reasons are known: there is one per element of the document.
_Open = tuple[str, str, tuple[str, ...] | None]


# What a start tag's text tells: its name, its entry on the stack (None for a void element) and whether it
# may load something (True), or else is a <picture> (None: it opens a group) or neither (False).
_Start = tuple[str, _Open | None, bool | None]


def _start_facts(name: str, body: str) -> _Start:
    low = body.lower()
    own = _ELEMENT_LOADS.get(name)
    loads = (own is not None and own.found(body, low)) or _may_load_anywhere(low)
    entry = None if name in _VOID else (name, body, None)
    return name, entry, loads or (None if name == "picture" else False)


# Elements whose references hiding does not concern (nothing of theirs is rendered) and which come
# before the styles in a newsletter's head.
_HEAD_ELEMENTS = frozenset({"style", "link", "meta", "base"})


class _Extractor:
    def __init__(self, text: str, hiding: dict[str, tuple[str, ...]] | None = None) -> None:
        self.text = text
        self.doc = Document()
        # Open elements. Whether an element hides its descendants is worked out only when a reference
        # appears below it: most elements of a newsletter never need their attributes parsed. The reasons
        # are known for a bottom part of the stack (working them out for one element does all below it).
        self.stack: list[_Open] = []
        # The group of the open <picture>'s sources and image. An element's own group is where its start tag
        # starts, a style block's where its text starts (no tag starts there, or it is empty), and a
        # <picture>'s the complement of its start (negative, so apart from the <picture>'s own references):
        # each offset is scanned once, even through conditional comments, so groups never collide.
        self.picture_group: int | None = None
        # Simple selectors (".cls", "#id", "tag", "tag.cls") that hide, from <style> blocks.
        self.hiding: dict[str, tuple[str, ...]] = dict(hiding or {})
        # A <style> block brought hiding rules after references that they may concern (see ``extract``).
        self.late_rules = False
        # Newsletters repeat their tags: what was learnt about each distinct start tag text, and (reset when
        # hiding rules come) about each element (name, attribute text) as an ancestor and each set of the
        # attributes own_hiding reads.
        self.starts: dict[str, _Start] = {}
        self.ancestors: dict[tuple[str, str], tuple[str, ...]] = {}
        self.own: dict[tuple[str | bool | None, ...], tuple[str, ...]] = {}

    # -- walking -------------------------------------------------------------------------------------
    def run(self, start: int, end: int) -> None:
        text = self.text
        stack = self.stack
        starts = self.starts
        # The scans under way: the document, and the conditional comment being scanned in it. A comment
        # inside a comment's text runs to the end of that text (see ``tokenizer``), so a nested one replaces
        # the scan it is in: hostile nesting costs neither stack nor memory.
        scans = [(matches(text, start, end), False)]
        while scans:
            found, in_comment = scans[-1]
            for m in found:
                # The hot path: start and end tags, most of them layout, pushed, popped and left alone; their
                # facts are looked up by their text.
                kind = m.lastindex
                if kind == OPEN:
                    tag = m[0]
                    facts = starts.get(tag)
                    if facts is None:
                        body = tag[m.start(OPEN) - m.start() : -1]
                        facts = starts[tag] = _start_facts(m[OPEN_NAME].lower(), body)
                    name, entry, loads = facts
                    if entry is not None:
                        stack.append(entry)
                    if loads is not False:  # (seldom: a tag that may load, or a <picture>)
                        if name == "picture":  # (before any reference of its own)
                            self.picture_group = ~m.start()
                        if loads:
                            self.start_tag(name, m.span(), *m.span(OPEN), in_comment, entry is not None)
                elif kind == CLOSE:
                    # ``end_tag``, inlined for an end tag of the current element written in lower case
                    name = m[CLOSE]
                    if stack and stack[-1][0] == name and name != "picture":
                        stack.pop()
                    else:
                        self.end_tag(name.lower())
                else:
                    comment = self.other(m, in_comment)
                    if comment is not None:
                        if in_comment:
                            scans.pop()
                        scans.append((matches(text, *comment, in_comment=True), True))
                        break
            else:
                scans.pop()

    def other(self, m: re.Match[str], in_comment: bool) -> tuple[int, int] | None:
        """The tokens of a match other than a plain start or end tag; returns the text of a conditional
        comment, to be scanned as markup."""
        for kind, name, s, e, inner_start, inner_end in tokens_of(m):
            if kind == START:  # a raw-text element (its text follows) or <plaintext>
                name, entry, loads = _start_facts(name, self.text[inner_start:inner_end])
                if entry is not None:
                    self.stack.append(entry)
                if loads:  # (never a <picture>: a raw-text element or <plaintext>)
                    self.start_tag(name, (s, e), inner_start, inner_end, in_comment, entry is not None)
            elif kind == RAW:
                if name == "style":
                    self.style_block(s, e, in_comment)
            elif kind == COMMENT:
                if _CONDITIONAL_COMMENT.match(self.text, inner_start, inner_end):
                    return inner_start, inner_end
            elif kind == UNCLOSED:  # a browser drops it, a lenient client might not
                self.doc.unclosed.append((s, e))
        return None

    def end_tag(self, name: str) -> None:
        """An end tag closes the nearest open element of its name and everything opened after it, if there
        is one."""
        stack = self.stack
        for i in range(len(stack) - 1, -1, -1):
            if stack[i][0] == name:
                del stack[i:]
                break
        if name == "picture":
            self.picture_group = None

    def inherited(self, depth: int) -> tuple[str, ...]:
        """Hiding reasons inherited from the first ``depth`` open elements (the outermost hidden one's),
        computed on demand."""
        stack = self.stack
        known = depth
        while known and stack[known - 1][2] is None:
            known -= 1
        reasons = (stack[known - 1][2] or ()) if known else ()
        for i in range(known, depth):
            name, body, _ = stack[i]
            if reasons:
                # Below a hidden element everything is hidden: the reasons of the outermost one say why, and
                # adding each level's would make hostile nesting quadratic.
                stack[i] = (name, body, reasons)
                continue
            own = self.ancestors.get((name, body))
            if own is None:
                low = body.lower()
                own = ()
                # (hiding rules select by element name, class and id: see _selector_keys)
                hiding = self.hiding
                if _may_hide(low) or (hiding and (name in hiding or _CLASS_OR_ID.found(body, low))):
                    own = self.own_hiding(name, attribute_matches(body, 0, len(body)))
                self.ancestors[name, body] = own
            reasons = own
            stack[i] = (name, body, reasons)
        return reasons

    def start_tag(
        self, name: str, tag: tuple[int, int], body_start: int, body_end: int, in_comment: bool, opened: bool
    ) -> None:
        """A start tag (its span, and its attribute text's) that may load something (the walk has pushed it
        already when ``opened``)."""
        attrs = attribute_matches(self.text, body_start, body_end)
        if attrs.keys().isdisjoint(_LOADING_ATTRS):
            return
        depth = len(self.stack) - 1 if opened else len(self.stack)
        inherited = self.inherited(depth)
        own = self.own_hiding(name, attrs)
        hidden = inherited + own
        if opened:  # (what its descendants inherit: see ``inherited``)
            self.stack[-1] = (*self.stack[-1][:2], inherited or own)
        picture = self.picture_group
        group = picture if picture is not None and name in ("source", "img") else tag[0]
        add = self.doc.refs.append

        if name == "input":
            kind = attrs.get("type")
            if kind is None or unescape_attr(attribute_value(kind)).strip().lower() != "image":
                attrs.pop("src", None)  # only <input type=image> loads its src
        if name == "link":
            rel = unescape_attr(attribute_value(attrs["rel"])).lower().split() if "rel" in attrs else []
            if not set(rel) & _LOADING_RELS:
                attrs.pop("href", None)
        if name == "meta":
            self.meta_refresh(tag, attrs, hidden, group, in_comment)

        uses = _ELEMENT_USES.get(name, _ANY_ELEMENT_USES)
        for aname, m in attrs.items():
            use = uses.get(aname)
            if use is None:
                continue
            if not isinstance(use, str):
                value = attribute_value_span(m)
                url = unescape_attr(value[0]).strip(_ASCII_WS)
                if not url:
                    continue
                if name == "base" and self.doc.base is None:
                    self.doc.base = url
                vector, kill = use
                add(self.ref(url, vector, name, aname, kill, tag, value, hidden, group, in_comment))
            elif use == "srcset":
                self.srcset(name, attribute_value_span(m), hidden, group, in_comment)
            elif use == "style":
                # (style_attr's own test, cheaper: on the value as written, quotes included, which have
                # none of these; most styles have none of them and are not looked at further)
                raw = m[2]
                if raw is not None and (
                    "url" in (low := raw.lower()) or "image-set" in low or "\\" in raw or "&" in raw
                ):
                    self.style_attr(name, aname, m, hidden, group, in_comment, css.scan_declarations)
            elif "url" in attribute_value(m).lower():  # a FUNCIRI
                self.style_attr(name, aname, m, hidden, group, in_comment, _funciri)

    # -- one reference -------------------------------------------------------------------------------
    def ref(
        self,
        url: str,
        vector: Vector,
        element: str,
        attr: str,
        kill: Kill,
        tag: tuple[int, int],
        value: _Value,
        hidden: tuple[str, ...],
        group: int,
        in_comment: bool,
    ) -> Reference:
        """A reference from an attribute (``value`` as ``attribute_value_span`` gives it)."""
        raw, value_start, value_end, quote = value
        value_span = (value_start, value_end)
        # The raw URL, without surrounding whitespace, can be cleaned in place.
        url_span = value_span
        if raw[0] in _ASCII_WS or raw[-1] in _ASCII_WS:  # (never empty: it holds the URL)
            lead = len(raw) - len(raw.lstrip(_ASCII_WS))
            trail = len(raw) - len(raw.rstrip(_ASCII_WS))
            url_span = (value_start + lead, value_end - trail)
        kill_span = tag if kill is Kill.ELEMENT else value_span
        return Reference(
            url,
            vector,
            element,
            attr,
            kill,
            kill_span,
            value_span,
            bool(quote),
            url_span,
            group,
            hidden,
            None,
            in_comment,
        )

    def srcset(
        self,
        name: str,
        value: _Value,
        hidden: tuple[str, ...],
        group: int,
        in_comment: bool,
    ) -> None:
        raw_value, value_start, value_end, quote = value
        value_span = (value_start, value_end)
        quoted = bool(quote)
        add = self.doc.refs.append
        for start, end in _srcset_urls(raw_value):
            url = unescape_attr(raw_value[start:end])
            if not url:
                continue
            # (kill: blanking one candidate would let its descriptor ("2x") be read as a URL: blank all)
            add(
                Reference(
                    url,
                    Vector.SRCSET,
                    name,
                    "srcset",
                    Kill.VALUE,
                    value_span,
                    value_span,
                    quoted,
                    (value_start + start, value_start + end),
                    group,
                    hidden,
                    None,
                    in_comment,
                )
            )

    def meta_refresh(
        self,
        tag: tuple[int, int],
        attrs: dict[str, re.Match[str]],
        hidden: tuple[str, ...],
        group: int,
        in_comment: bool,
    ) -> None:
        equiv = attrs.get("http-equiv")
        found = attrs.get("content")
        if equiv is None or found is None:
            return
        if unescape_attr(attribute_value(equiv)).strip().lower() != "refresh":
            return
        content = attribute_value_span(found)
        m = _REFRESH_URL.match(unescape_attr(content[0]))
        url = m.group(2).strip() if m else ""
        if url:
            ref = self.ref(
                url,
                Vector.META_REFRESH,
                "meta",
                "content",
                Kill.ELEMENT,
                tag,
                content,
                hidden,
                group,
                in_comment,
            )
            # The URL sits inside "0;url=...": it is never cleaned in place, only stopped.
            self.doc.refs.append(replace(ref, url_span=None))

    # -- CSS -----------------------------------------------------------------------------------------
    def style_attr(
        self,
        element: str,
        name: str,
        found: re.Match[str],
        hidden: tuple[str, ...],
        group: int,
        in_comment: bool,
        scan: Callable[[str], list[css.CssRef]],
    ) -> None:
        raw = attribute_value(found)
        lowered = raw.lower()
        if "url" not in lowered and "image-set" not in lowered and "\\" not in raw and "&" not in raw:
            return
        _, base, _, quote = attribute_value_span(found)
        decoded = unescape_attr(raw)
        offsets = _offset_map(raw)
        for r in scan(decoded):
            self.doc.refs.append(
                self.css_ref(r, element, name, base, offsets, hidden, group, in_comment, quoted=bool(quote))
            )

    def style_block(self, start: int, end: int, in_comment: bool) -> None:
        sheet = self.text[start:end]
        for selector, reasons in css.hiding_rules(sheet):
            self.late_rules = self.late_rules or any(r.element not in _HEAD_ELEMENTS for r in self.doc.refs)
            self.ancestors.clear()
            self.own.clear()
            for sel in selector.split(","):
                key = sel.strip().lower()
                if key:
                    self.hiding[key] = reasons
        for r in css.scan_stylesheet(sheet):
            self.doc.refs.append(self.css_ref(r, "style", None, start, None, (), start, in_comment))

    def css_ref(
        self,
        r: css.CssRef,
        element: str,
        attr: str | None,
        base: int,
        offsets: list[int] | None,
        hidden: tuple[str, ...],
        group: int,
        in_comment: bool,
        quoted: bool = True,
    ) -> Reference:
        def at(i: int) -> int:
            return base + (offsets[i] if offsets is not None else i)

        kill_span = (at(r.replace_span[0]), at(r.replace_span[1]))
        url_span = None
        if r.url_span is not None and (
            offsets is None
            or offsets[r.url_span[1]] - offsets[r.url_span[0]] == r.url_span[1] - r.url_span[0]
        ):
            url_span = (at(r.url_span[0]), at(r.url_span[1]))
        vector = {"import": Vector.CSS_IMPORT, "font": Vector.FONT}.get(r.kind, Vector.CSS_URL)
        if vector is Vector.CSS_URL and r.property in ("src",):
            vector = Vector.FONT
        return Reference(
            r.url.strip(_ASCII_WS),
            vector,
            element,
            attr,
            Kill.RULE if r.kind == "import" else Kill.CSS,
            kill_span,
            None,
            quoted,
            url_span,
            group,
            hidden,
            css.conditional_reason(r),
            in_comment,
        )

    # -- visibility ----------------------------------------------------------------------------------
    def own_hiding(self, name: str, attrs: dict[str, re.Match[str]]) -> tuple[str, ...]:
        """Why an element itself is invisible. That depends on a few of its attributes, which newsletters
        repeat from image to image and cell to cell: worked out once per document for each (and again when
        hiding rules come)."""
        get = attrs.get
        style, ident, classes, width, height = (
            get("style"),
            get("id"),
            get("class"),
            get("width"),
            get("height"),
        )
        # (the raw values: an attribute without a value counts as one with an empty value, as it should)
        key = (
            name,
            "hidden" in attrs,
            style and style[2],
            ident and ident[2],
            classes and classes[2],
            width and width[2],
            height and height[2],
        )
        reasons = self.own.get(key)
        if reasons is None:
            reasons = self.own[key] = self.work_out_own_hiding(name, attrs)
        return reasons

    def work_out_own_hiding(self, name: str, attrs: dict[str, re.Match[str]]) -> tuple[str, ...]:
        reasons: tuple[str, ...] = ()
        style = attrs.get("style")
        style_width = style_height = None
        if style is not None:
            value = attribute_value(style)
            if value:
                reasons, style_width, style_height = css.style_hiding(unescape_attr(value))
        if "hidden" in attrs:
            reasons += ("hidden-attribute",)
        if self.hiding:
            for key in _selector_keys(name, attrs):
                extra = self.hiding.get(key)
                if extra:
                    # One matching rule says why; more would only grow with a hostile list of classes.
                    reasons += tuple(f"{r} ({key})" for r in extra)
                    break
        if name in ("img", "image", "input") and not (reasons and any(r.startswith("tiny") for r in reasons)):
            w = attrs.get("width")
            h = attrs.get("height")
            wv = _px(unescape_attr(attribute_value(w))) if w else None
            hv = _px(unescape_attr(attribute_value(h))) if h else None
            if wv is None and style_width is not None:
                wv = _px(style_width)
            if hv is None and style_height is not None:
                hv = _px(style_height)
            if wv is not None and hv is not None and wv <= 2 and hv <= 2:
                reasons += (f"tiny:{wv:g}x{hv:g}",)
            elif (wv is not None and wv == 0) or (hv is not None and hv == 0):
                reasons += ("zero-size",)
        return reasons


def _selector_keys(name: str, attrs: dict[str, re.Match[str]]) -> Iterator[str]:
    yield name
    if "id" in attrs:
        ident = unescape_attr(attribute_value(attrs["id"])).strip().lower()
        if ident:
            yield "#" + ident
            yield f"{name}#{ident}"
    if "class" in attrs:
        for cls in unescape_attr(attribute_value(attrs["class"])).lower().split():
            yield "." + cls
            yield f"{name}.{cls}"


def _funciri(value: str) -> list[css.CssRef]:
    # An SVG presentation attribute holds what a declaration's value would: scan it as one and shift the
    # spans back over the made-up property name.
    n = len("x:")
    return [
        replace(
            r,
            replace_span=(r.replace_span[0] - n, r.replace_span[1] - n),
            url_span=None if r.url_span is None else (r.url_span[0] - n, r.url_span[1] - n),
        )
        for r in css.scan_declarations("x:" + value)
    ]


_SRCSET_URL = re.compile(r"[ \t\n\f\r,]*+([^ \t\n\f\r]*)")


def _srcset_urls(value: str) -> Iterator[tuple[int, int]]:
    """Spans of the candidate URLs in a srcset value (WHATWG "parse a srcset attribute")."""
    pos = 0
    n = len(value)
    while pos < n:
        m = _SRCSET_URL.match(value, pos)
        assert m is not None  # (both parts may be empty)
        start, end = m.span(1)
        if start == end:  # nothing but separators left
            return
        # A URL ending in commas: the commas are separators, and no descriptors follow.
        trimmed = start + len(value[start:end].rstrip(","))
        yield start, trimmed
        pos = end
        if trimmed != end:
            continue
        # Skip descriptors up to the next comma outside parentheses. Without a "(" before the next comma
        # (the usual "2x" or "640w"), that comma ends them.
        comma = value.find(",", pos)
        stop = n if comma < 0 else comma
        pos = value.find("(", pos, stop)
        if pos < 0:
            pos = stop + 1
            continue
        depth = 0
        while pos < n:
            c = value[pos]
            if c == "(":
                depth += 1
            elif c == ")":
                depth = max(0, depth - 1)
            elif c == "," and depth == 0:
                pos += 1
                break
            pos += 1


def extract(text: str) -> Document:
    """All loading references of one HTML or SVG document."""
    ex = _Extractor(text)
    ex.run(0, len(text))
    if ex.late_rules:
        # CSS applies to the whole document: a <style> block hides the elements before it too. Such a
        # document is read again with every hiding rule known from its start (newsletters put their
        # styles first, so this is rare).
        ex = _Extractor(text, ex.hiding)
        ex.run(0, len(text))
    return ex.doc
