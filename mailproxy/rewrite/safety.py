"""The safety net: an independent HTML5 parser lists what a rewritten part would still load.

The rewriter finds references with its own tokenizer. If that tokenizer and a browser ever disagree (an odd
encoding, a parser quirk), a reference could survive. So every rewritten HTML part is parsed again with
lexbor (through selectolax), a full WHATWG tree builder that shares no code with ours, and every URL it
would load is listed here, with its CSS read by a separate, deliberately simple scanner. The engine then
decides which survivors are forbidden, and ``break_urls`` neutralizes them with a blunt, length-preserving
fallback: the scheme ``http`` becomes ``xttp``, and a protocol-relative ``//`` becomes ``/_``, so nothing
is fetched.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import NamedTuple

from selectolax.lexbor import LexborHTMLParser

from mailproxy.errors import UncheckableError
from mailproxy.rewrite.transfer import Edit

# Attributes whose value is a URL that some element loads. The safety net is deliberately broader than
# the extractor: it checks these on every element, not only where they load.
_URL_ATTRS = frozenset(
    {
        "src",
        "background",
        "poster",
        "lowsrc",
        "dynsrc",
        "data",
        "codebase",
        "archive",
        "code",
        "manifest",
        "ping",
        "action-xhr",
        "color-profile",
    }
)
# href loads only on these elements; elsewhere (a, area, VML shapes) it is a link, followed on a click.
_HREF_ATTRS = frozenset({"href", "xlink:href"})
_HREF_LOADS = frozenset({"link", "base", "image", "use", "feimage"})
# SVG animation elements can set an href at run time.
_ANIMATIONS = frozenset({"set", "animate"})
_ANIMATION_ATTRS = frozenset({"to", "from", "values", "by"})
_LIST_ATTRS = ("srcset",)
_IMAGE_ATTRS = frozenset({"background", "poster", "srcset", "lowsrc", "dynsrc", "style", "xlink:href"})
_IMAGE_ELEMENTS = frozenset({"img", "image", "input", "amp-img", "v:fill", "v:image", "v:imagedata"})
_CSS_ATTRS = frozenset(
    {
        "style",
        "fill",
        "stroke",
        "filter",
        "clip-path",
        "mask",
        "marker-start",
        "marker-mid",
        "marker-end",
        "cursor",
    }
)
_CSS_ESCAPE = re.compile(r"\\([0-9a-fA-F]{1,6})[ \t\n\r\f]?|\\(.)", re.DOTALL)
_CSS_COMMENT = re.compile(r"/\*.*?(?:\*/|$)", re.DOTALL)
_CSS_URLS = re.compile(
    r"""url\(\s*(?:"([^"]*)"|'([^']*)'|([^)\s]*))\s*\)|@import\s*(?:"([^"]*)"|'([^']*)')"""
    r"""|image-set\((?P<set>[^)]*)\)""",
    re.IGNORECASE,
)
_SET_STRINGS = re.compile(r"""["']([^"']+)["']""")

# Candidate elements: those with one of these tags or attributes. Every element is visited once in Python
# (a walk and its attributes cost less than lexbor's selector engine, which tests each selector against
# each element: about 0.01 ms per selector on a newsletter, and there would be 31 of them). Style
# attributes are looked at apart: nearly every element of a newsletter has one, and few of them can load
# anything.
_CANDIDATE_ATTRS = frozenset(_URL_ATTRS | _CSS_ATTRS - {"style"} | {"srcset"})
_CANDIDATE_TAGS = frozenset({"link", "base", "image", "use", "feimage", "style", "meta", "set", "animate"})
# What an attribute of a candidate is, by its lower-cased name; _attr_urls says what each kind loads.
_URL, _HREF, _ANIMATION, _LIST, _CSS, _CONTENT = range(6)
_KINDS = {
    **dict.fromkeys(_URL_ATTRS, _URL),
    **dict.fromkeys(_HREF_ATTRS, _HREF),
    **dict.fromkeys(_ANIMATION_ATTRS, _ANIMATION),
    **dict.fromkeys(_LIST_ATTRS, _LIST),
    **dict.fromkeys(_CSS_ATTRS - {"style"}, _CSS),
    "content": _CONTENT,
}
_CONDITIONAL_COMMENT = re.compile(r"<!--\s*\[if[^\]]*\]>", re.IGNORECASE)
# What a conditional comment needs for loading_urls to find anything in it, checked before parsing it (a
# parse costs more than most of them are worth): a nested conditional comment, a candidate element or
# attribute, or a style attribute or element with something that may spell a URL (entities included).
# The tokenizer lower-cases names and decodes no entity in them; an attribute name starts after one of
# \t \n \f \r space / " ' and ends before one of \t \n \f \r space / > =, so splitting at all of these
# (and more) leaves every attribute name whole.
_NAME_BOUNDS = "/\"'>="
_CANDIDATE_TAG = re.compile("<(?:" + "|".join(sorted(_CANDIDATE_TAGS)) + ")", re.IGNORECASE)
_REFRESH = re.compile(r"url\s*=\s*['\"]?([^'\"\s;]+)", re.IGNORECASE)
_ANY_REMOTE = re.compile(
    r"(?i)\bh(?=ttps?:)|\bf(?=tp:)|\bw(?=ss?:)|(?<=[\s\"'=(,])/(?=/[^\s/])|&(?=#)|\\(?=[0-9a-f])"
)


class Survivor(NamedTuple):
    """A URL the document still loads, and where. A named tuple: immutable, and built three times faster
    than a frozen dataclass (a newsletter has some 150 of them)."""

    url: str
    element: str
    attr: str  # "" for <style> text

    @property
    def is_image(self) -> bool:
        """Whether the client renders what this URL loads as an image (policy treats images apart)."""
        if self.attr in _IMAGE_ATTRS or self.element == "style":
            return True
        return self.attr == "src" and self.element in _IMAGE_ELEMENTS


def _unescape(m: re.Match[str]) -> str:
    if m.group(1) is None:
        return m.group(2)
    cp = int(m.group(1), 16)
    # CSS Syntax 4.3.7: NUL, surrogates and values past Unicode are U+FFFD (chr() would raise).
    return "\ufffd" if cp == 0 or 0xD800 <= cp <= 0xDFFF or cp > 0x10FFFF else chr(cp)


def _css_urls(text: str) -> Iterator[str]:
    if "\\" in text:
        text = _CSS_ESCAPE.sub(_unescape, text)
    text = _CSS_COMMENT.sub(" ", text)
    for m in _CSS_URLS.finditer(text):
        if m.group("set") is not None:
            yield from _SET_STRINGS.findall(m.group("set"))
            continue
        url = next((g for g in m.groups()[:5] if g), None)
        if url:
            yield url.strip()


# WHATWG "parse a srcset attribute": a candidate's URL runs to ASCII white space (commas inside it are
# part of it; commas ending it are separators), its descriptors to the next comma outside parentheses.
_SRCSET_URL = re.compile(r"[\t\n\f\r ,]*([^\t\n\f\r ]*)")
_SRCSET_DESCRIPTORS = re.compile(r"(?:[^,(]+|\([^)]*\)?)*,?")


def _srcset_urls(value: str) -> Iterator[str]:
    pos = 0
    while True:
        m = _SRCSET_URL.match(value, pos)
        assert m is not None  # (everything in it is optional)
        url = m.group(1)
        if not url:
            return
        pos = m.end()
        if url.endswith(","):
            url = url.rstrip(",")
            if url:
                yield url
            continue
        yield url
        m = _SRCSET_DESCRIPTORS.match(value, pos)
        assert m is not None
        pos = m.end()


def _may_have_urls(css: str) -> bool:
    low = css.lower()
    return "url" in low or "image-set" in low or "\\" in css


def _may_load(html: str) -> bool:
    """False if loading_urls certainly finds nothing in ``html``."""
    if "[if" in html:
        return True
    low = html.lower()
    spaced = low
    for bound in _NAME_BOUNDS:  # str.replace is many times faster than str.translate
        spaced = spaced.replace(bound, " ")
    names = set(spaced.split())
    if not names.isdisjoint(_CANDIDATE_ATTRS):
        return True
    # A <style> element (a candidate) loads only what its CSS spells, like a style attribute.
    tags = {m.lower() for m in _CANDIDATE_TAG.findall(html)}
    if tags - {"<style"}:
        return True
    urlish = "url" in low or "image-set" in low or "@import" in low or "\\" in low or "&" in low
    return bool(tags or "style" in names) and urlish


def _conditional_comments(text: str) -> Iterator[str]:
    """The content of each conditional comment: up to the first "-->" after its opening, or to the end."""
    pos = 0
    while (m := _CONDITIONAL_COMMENT.search(text, pos)) is not None:
        end = text.find("-->", m.end())
        if end < 0:
            yield text[m.end() :]
            return
        yield text[m.end() : end]
        pos = end + 3


def _attr_urls(tag: str, attrs: dict[str, str | None], out: list[Survivor]) -> None:
    """The URLs in a candidate element's attributes (its style attribute aside)."""
    for name, value in attrs.items():
        lname = name.lower()
        kind = _KINDS.get(lname)
        if kind is None or value is None:
            continue
        if (
            kind == _URL
            or (kind == _HREF and tag in _HREF_LOADS)
            or (kind == _ANIMATION and tag in _ANIMATIONS)
        ):
            out.append(Survivor(value.strip(), tag, lname))
        elif kind == _LIST:
            out.extend(Survivor(url, tag, lname) for url in _srcset_urls(value))
        elif kind == _CSS:
            if _may_have_urls(value):
                out.extend(Survivor(u, tag, lname) for u in _css_urls(value))
        elif kind == _CONTENT and tag == "meta":
            m = _REFRESH.search(value)
            if m:
                out.append(Survivor(m.group(1), tag, "content"))


# Conditional comments inside conditional comments, at most (Outlook's own markup nests two or three):
# each level is parsed again, so hostile nesting must not cost a parse per level.
MAX_NESTING = 16


def loading_urls(text: str) -> list[Survivor]:
    """Every URL the rewritten document could still make a client load, its conditional comments'
    included (depth first, in document order).

    Raises UncheckableError for conditional comments nested more than MAX_NESTING deep.
    """
    out: list[Survivor] = []
    pending = [(text, 0)]
    while pending:
        doc, depth = pending.pop()
        _document_urls(doc, out)
        # Outlook renders the content of conditional comments, which an HTML5 parser leaves as comments.
        # Most of them are table markup with nothing to load, which is not worth a parse.
        if "[if" in doc:
            nested = [content for content in _conditional_comments(doc) if _may_load(content)]
            if nested and depth == MAX_NESTING:
                raise UncheckableError(f"conditional comments nested more than {MAX_NESTING} deep")
            pending.extend((content, depth + 1) for content in reversed(nested))
    return out


def _document_urls(text: str, out: list[Survivor]) -> None:
    """The URLs ``text`` loads as lexbor parses it (conditional comments aside), appended to ``out``."""
    styled: list[Survivor] = []
    root = LexborHTMLParser(text).root
    for node in root.traverse() if root is not None else ():
        attrs = node.attributes
        raw = node.tag or ""
        # Foreign (SVG) elements keep their case ("feImage"); the sets here are lower-case. The parser
        # lower-cases ASCII only, so a name with other letters is none of these (str.lower() would make
        # "K", the Kelvin sign, a "k").
        tag = raw.lower()
        if (tag in _CANDIDATE_TAGS and raw.isascii()) or not _CANDIDATE_ATTRS.isdisjoint(attrs):
            if tag == "style":
                out.extend(Survivor(u, "style", "") for u in _css_urls(node.text(deep=True) or ""))
            else:
                _attr_urls(tag, attrs, out)
        style = attrs.get("style")
        # _may_have_urls, inlined: it runs on nearly every element.
        if style and ("url" in (low := style.lower()) or "image-set" in low or "\\" in style):
            styled.extend(Survivor(u, raw, "style") for u in _css_urls(style))
    out += styled


def break_urls(text: str, urls: Iterable[str]) -> list[Edit] | None:
    """Edits that break each URL's scheme wherever its scheme-and-host prefix occurs in the text.

    None when some URL cannot be found literally (it is spelled with entities or escapes): the caller then
    neutralizes the whole part with ``break_everything``.
    """
    edits: dict[int, Edit] = {}
    for url in urls:
        prefix = _prefix(url)
        if not prefix:
            continue
        found = False
        lowered = text.lower()
        pos = lowered.find(prefix)
        while pos >= 0:
            found = True
            edits[pos] = Edit(pos, pos + 1, b"x" if prefix[0] != "/" else b"_")
            pos = lowered.find(prefix, pos + 1)
        if not found:
            return None
    return sorted(edits.values(), key=lambda e: e.start)


def _prefix(url: str) -> str:
    """The URL up to the end of its host, lower-cased: what to search for in the raw text."""
    lowered = url.strip().lower()
    m = re.match(r"((?:[a-z][a-z0-9+.-]*:)?//[^/?#\s\\]*)", lowered)
    return m.group(1) if m else ""


def break_everything(text: str) -> list[Edit]:
    """Fail safe: neutralize every remote reference in a part that cannot be analysed.

    Breaks every http(s)/ftp/ws scheme, every protocol-relative '//', every numeric character reference
    and every CSS escape, which together cover each way HTML and CSS can spell a remote URL. Text may show
    a stray character; the message is still delivered and nothing loads.
    """
    return [
        Edit(m.start(), m.start() + 1, b"x" if m.group(0) not in ("/", "&", "\\") else b"_")
        for m in _ANY_REMOTE.finditer(text)
    ]
