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
   share a ``group`` so that they share a verdict.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from enum import StrEnum

from mailproxy.html import css
from mailproxy.html.tokenizer import (
    COMMENT,
    END,
    RAW,
    START,
    Attribute,
    StartTag,
    attributes,
    attributes_in,
    scan,
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
    hidden: tuple[str, ...] = ()  # why the element is invisible (own or inherited CSS, tiny size)
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
_ANY_ELEMENT_ATTRS = frozenset(a for (e, a) in _URL_ATTRS if e == "*")
_URL_ATTR_NAMES = frozenset(a for (_, a) in _URL_ATTRS) | {"srcset", "style", "content"}
# SVG presentation attributes that take a FUNCIRI, url(...).
_FUNCIRI_ATTRS = frozenset(
    ["fill", "stroke", "filter", "clip-path", "mask", "marker-start", "marker-mid", "marker-end", "cursor"]
)
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


# A start tag can load something only if it has a URL attribute its element loads, or CSS (url(),
# image-set(), an escape or a character reference that could spell either), or background= / SVG
# presentation attributes, which any element may carry. Other tags are not parsed further: most of a
# newsletter's tags are plain layout.
def _attr_pattern(names: set[str]) -> re.Pattern[str]:
    alternatives = "|".join(sorted(map(re.escape, names)))
    return re.compile(r"(?i)(?:[\s/\"']|^)(?:" + alternatives + r")\s*=")


_ELEMENT_LOADS: dict[str, re.Pattern[str]] = {
    element: _attr_pattern(
        {a for (e, a) in _URL_ATTRS if e == element}
        | ({"srcset"} if element in ("img", "source") else set())
        | ({"content"} if element == "meta" else set())
    )
    for element in {e for (e, _) in _URL_ATTRS if e != "*"} | {"meta", "source"}
}


def _may_load_anywhere(body: str) -> bool:
    """Whether a tag's text has something any element may load from: background=, color-profile=, CSS
    url()/image-set(), or an escape or character reference that could spell one. Plain substring tests:
    this runs on every tag, and most tags of a newsletter have none of these."""
    if "\\" in body or "&#" in body:
        return True
    low = body.lower()
    if "url" in low or "image-set" in low or "color-profile" in low or "&lpar" in low:
        return True
    return "background" in low and _BACKGROUND_ATTR.search(low) is not None


_BACKGROUND_ATTR = re.compile(r"background\s*=")


_HIDE_WORDS = ("none", "hidden", "opacity", "max-height", "max-width", "mso-hide", "\\")
_ZERO_SIZE = re.compile(r"(?:width|height)\s*[:=]\s*[\"']?\s*0(?![.\d]*[1-9])")


def _may_hide(body: str) -> bool:
    """Whether a tag might hide its content, checked before parsing an ancestor's attributes. Errs on the
    side of parsing: any "none", "hidden", a zero size, an escape."""
    low = body.lower()
    if any(word in low for word in _HIDE_WORDS):
        return True
    return "0" in low and _ZERO_SIZE.search(low) is not None


_CLASS_OR_ID = re.compile(r"(?i)(?:[\s/\"']|^)(?:class|id)\s*=")
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
    m = _SIZE.match(value)
    return float(m.group(1)) if m else None


class _Open:
    """An open element: where its attributes are, and (once needed) the hiding reasons its descendants
    inherit."""

    __slots__ = ("body_end", "body_start", "hidden", "name")

    def __init__(self, name: str, body_start: int, body_end: int) -> None:
        self.name = name
        self.body_start = body_start
        self.body_end = body_end
        self.hidden: tuple[str, ...] | None = None


class _Extractor:
    def __init__(self, text: str) -> None:
        self.text = text
        self.doc = Document()
        self.group = 0
        # Open elements. Whether an element hides its descendants is worked out only when a reference
        # appears below it: most elements of a newsletter never need their attributes parsed.
        self.stack: list[_Open] = []
        self.picture_group: int | None = None
        # Simple selectors (".cls", "#id", "tag", "tag.cls") that hide, from <style> blocks.
        self.hiding: dict[str, tuple[str, ...]] = {}

    # -- walking -------------------------------------------------------------------------------------
    def run(self, start: int, end: int) -> None:
        text = self.text
        stack = self.stack
        # The scans under way: the document, and the conditional comment being scanned in it. A comment
        # inside a comment's text runs to the end of that text (see ``tokenizer``), so a nested one replaces
        # the scan it is in: hostile nesting costs neither stack nor memory.
        scans = [(scan(text, start, end), False)]
        while scans:
            tokens, in_comment = scans[-1]
            for kind, name, s, e, inner_start, inner_end in tokens:
                if kind == START:
                    # The hot path: most tags of a newsletter are layout, pushed and left alone.
                    opened = name not in _VOID
                    if opened:
                        stack.append(_Open(name, inner_start, inner_end))
                    if name == "picture":
                        self.group += 1
                        self.picture_group = self.group
                    body = text[inner_start:inner_end]
                    own = _ELEMENT_LOADS.get(name)
                    if _may_load_anywhere(body) or (own is not None and own.search(body) is not None):
                        self.start_tag(
                            StartTag(name=name, start=s, end=e, body_start=inner_start), in_comment, opened
                        )
                elif kind == END:
                    self.end_tag(name)
                elif kind == RAW:
                    if name == "style":
                        self.style_block(s, e, in_comment)
                elif kind == COMMENT:
                    if _CONDITIONAL_COMMENT.match(text, inner_start, inner_end):
                        if in_comment:
                            scans.pop()
                        scans.append((scan(text, inner_start, inner_end, in_comment=True), True))
                        break
                else:  # UNCLOSED: a browser drops it, a lenient client might not
                    self.doc.unclosed.append((s, e))
            else:
                scans.pop()

    def end_tag(self, name: str) -> None:
        stack = self.stack
        for i in range(len(stack) - 1, -1, -1):
            if stack[i].name == name:
                del stack[i:]
                break
        if name == "picture":
            self.picture_group = None

    def inherited(self, depth: int) -> tuple[str, ...]:
        """Hiding reasons inherited from the first ``depth`` open elements, computed on demand."""
        reasons: tuple[str, ...] = ()
        for entry in self.stack[:depth]:
            if entry.hidden is None:
                if _may_hide(self.text[entry.body_start : entry.body_end]) or (
                    self.hiding and _CLASS_OR_ID.search(self.text, entry.body_start, entry.body_end)
                ):
                    attrs = {a.name: a for a in attributes_in(self.text, entry.body_start, entry.body_end)}
                    entry.hidden = reasons + self.own_hiding(entry.name, attrs)
                else:
                    entry.hidden = reasons
            reasons = entry.hidden
        return reasons

    def start_tag(self, tag: StartTag, in_comment: bool, opened: bool) -> None:
        """A start tag that may load something (``run`` has pushed it already when ``opened``)."""
        text = self.text
        name = tag.name
        attrs: dict[str, Attribute] = {}
        for a in attributes(text, tag):
            attrs[a.name] = a
        if not attrs.keys() & _URL_ATTR_NAMES and not attrs.keys() & _FUNCIRI_ATTRS:
            return
        depth = len(self.stack) - 1 if opened else len(self.stack)
        hidden = self.inherited(depth) + self.own_hiding(name, attrs)
        if opened:
            self.stack[-1].hidden = hidden
        self.group += 1
        group = self.picture_group if name in ("source", "img") and self.picture_group else self.group
        add = self.doc.refs.append

        if name == "input":
            kind = attrs.get("type")
            if kind is None or unescape_attr(kind.value).strip().lower() != "image":
                attrs.pop("src", None)  # only <input type=image> loads its src
        if name == "link":
            rel = unescape_attr(attrs["rel"].value).lower().split() if "rel" in attrs else []
            if not set(rel) & _LOADING_RELS:
                attrs.pop("href", None)
        if name == "meta":
            self.meta_refresh(tag, attrs, hidden, group, in_comment)

        for aname, a in attrs.items():
            spec = _URL_ATTRS.get((name, aname))
            if spec is None and aname in _ANY_ELEMENT_ATTRS:
                spec = _URL_ATTRS[("*", aname)]
            if spec is not None:
                url = unescape_attr(a.value).strip(_ASCII_WS)
                if not url:
                    continue
                if name == "base" and self.doc.base is None:
                    self.doc.base = url
                vector, kill = spec
                add(self.ref(url, vector, name, aname, kill, tag, a, hidden, group, in_comment))
            elif aname == "srcset":
                self.srcset(name, tag, a, hidden, group, in_comment)
            elif aname == "style":
                self.style_attr(name, a, hidden, group, in_comment, css.scan_declarations)
            elif aname in _FUNCIRI_ATTRS and "url" in a.value.lower():
                self.style_attr(name, a, hidden, group, in_comment, _funciri)

    # -- one reference -------------------------------------------------------------------------------
    def ref(
        self,
        url: str,
        vector: Vector,
        element: str,
        attr: str,
        kill: Kill,
        tag: StartTag,
        a: Attribute,
        hidden: tuple[str, ...],
        group: int,
        in_comment: bool,
    ) -> Reference:
        value_span = (a.value_start, a.value_end)
        raw = a.value
        # The raw URL, without surrounding whitespace, can be cleaned in place.
        lead = len(raw) - len(raw.lstrip(_ASCII_WS))
        trail = len(raw) - len(raw.rstrip(_ASCII_WS))
        url_span = (a.value_start + lead, a.value_end - trail)
        return Reference(
            url=url,
            vector=vector,
            element=element,
            attr=attr,
            kill=kill,
            kill_span=(tag.start, tag.end) if kill is Kill.ELEMENT else value_span,
            value_span=value_span,
            quoted=bool(a.quote),
            url_span=url_span,
            group=group,
            hidden=hidden,
            in_comment=in_comment,
        )

    def srcset(
        self, name: str, tag: StartTag, a: Attribute, hidden: tuple[str, ...], group: int, in_comment: bool
    ) -> None:
        value_span = (a.value_start, a.value_end)
        for start, end in _srcset_urls(a.value):
            raw = a.value[start:end]
            url = unescape_attr(raw)
            if not url:
                continue
            self.doc.refs.append(
                Reference(
                    url=url,
                    vector=Vector.SRCSET,
                    element=name,
                    attr="srcset",
                    # Blanking one candidate would let its descriptor ("2x") be read as a URL: blank all.
                    kill=Kill.VALUE,
                    kill_span=value_span,
                    value_span=value_span,
                    quoted=bool(a.quote),
                    url_span=(a.value_start + start, a.value_start + end),
                    group=group,
                    hidden=hidden,
                    in_comment=in_comment,
                )
            )

    def meta_refresh(
        self,
        tag: StartTag,
        attrs: dict[str, Attribute],
        hidden: tuple[str, ...],
        group: int,
        in_comment: bool,
    ) -> None:
        equiv = attrs.get("http-equiv")
        content = attrs.get("content")
        if equiv is None or content is None or unescape_attr(equiv.value).strip().lower() != "refresh":
            return
        m = _REFRESH_URL.match(unescape_attr(content.value))
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
        a: Attribute,
        hidden: tuple[str, ...],
        group: int,
        in_comment: bool,
        scan: Callable[[str], list[css.CssRef]],
    ) -> None:
        raw = a.value
        lowered = raw.lower()
        if "url" not in lowered and "image-set" not in lowered and "\\" not in raw and "&" not in raw:
            return
        decoded = unescape_attr(raw)
        offsets = _offset_map(raw)
        base = a.value_start
        for r in scan(decoded):
            self.doc.refs.append(
                self.css_ref(
                    r, element, a.name, base, offsets, hidden, group, in_comment, quoted=bool(a.quote)
                )
            )

    def style_block(self, start: int, end: int, in_comment: bool) -> None:
        sheet = self.text[start:end]
        for selector, reasons in css.hiding_rules(sheet):
            for sel in selector.split(","):
                key = sel.strip().lower()
                if key:
                    self.hiding[key] = reasons
        self.group += 1
        for r in css.scan_stylesheet(sheet):
            self.doc.refs.append(self.css_ref(r, "style", None, start, None, (), self.group, in_comment))

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
            url=r.url.strip(_ASCII_WS),
            vector=vector,
            element=element,
            attr=attr,
            kill=Kill.RULE if r.kind == "import" else Kill.CSS,
            kill_span=kill_span,
            value_span=None,
            quoted=quoted,
            url_span=url_span,
            group=group,
            hidden=hidden,
            conditional=css.conditional_reason(r),
            in_comment=in_comment,
        )

    # -- visibility ----------------------------------------------------------------------------------
    def own_hiding(self, name: str, attrs: dict[str, Attribute]) -> tuple[str, ...]:
        reasons: tuple[str, ...] = ()
        style = attrs.get("style")
        decls: dict[str, str] = {}
        if style is not None and style.value:
            decls = css.parse_declarations(unescape_attr(style.value))
            reasons = css.is_hiding(decls)
        if "hidden" in attrs:
            reasons += ("hidden-attribute",)
        if self.hiding:
            for key in _selector_keys(name, attrs):
                extra = self.hiding.get(key)
                if extra:
                    reasons += tuple(f"{r} ({key})" for r in extra)
        if name in ("img", "image", "input") and not any(r.startswith("tiny") for r in reasons):
            w = attrs.get("width")
            h = attrs.get("height")
            wv = _px(unescape_attr(w.value)) if w else None
            hv = _px(unescape_attr(h.value)) if h else None
            if wv is None and "width" in decls:
                wv = _px(decls["width"])
            if hv is None and "height" in decls:
                hv = _px(decls["height"])
            if wv is not None and hv is not None and wv <= 2 and hv <= 2:
                reasons += (f"tiny:{wv:g}x{hv:g}",)
            elif (wv is not None and wv == 0) or (hv is not None and hv == 0):
                reasons += ("zero-size",)
        return reasons


def _selector_keys(name: str, attrs: dict[str, Attribute]) -> Iterator[str]:
    yield name
    if "id" in attrs:
        ident = unescape_attr(attrs["id"].value).strip().lower()
        if ident:
            yield "#" + ident
            yield f"{name}#{ident}"
    if "class" in attrs:
        for cls in unescape_attr(attrs["class"].value).lower().split():
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


def _srcset_urls(value: str) -> Iterator[tuple[int, int]]:
    """Spans of the candidate URLs in a srcset value (WHATWG "parse a srcset attribute")."""
    pos = 0
    n = len(value)
    while pos < n:
        while pos < n and (value[pos] in _ASCII_WS or value[pos] == ","):
            pos += 1
        if pos >= n:
            return
        start = pos
        while pos < n and value[pos] not in _ASCII_WS:
            pos += 1
        end = pos
        # A URL ending in commas: the commas are separators, and no descriptors follow.
        trimmed = end
        while trimmed > start and value[trimmed - 1] == ",":
            trimmed -= 1
        yield start, trimmed
        if trimmed != end:
            continue
        # Skip descriptors up to the next comma outside parentheses.
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
    return ex.doc
