"""Turn decisions about references into length-preserving edits of the decoded part.

An edit names a span and the meaningful text to put there; the transfer layer pads it (spaces, then the
span's own line breaks), so every edit here must be one where trailing spaces are harmless:
- a whole start tag becomes spaces (an element whose only job is loading: <img>, <link>, <meta refresh>);
- an attribute value keeps its quotes and gets a shorter URL, a placeholder or nothing; an unquoted value
  gets ``""`` first, or the next attribute would become the value;
- a CSS url()/image-set() token becomes ``none`` (valid where an image is expected, an invalid value that
  drops just its declaration elsewhere); an @import rule becomes spaces. Never ``url()``: an empty URL
  resolves to the document itself.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from mailproxy.html.refs import Kill, Reference
from mailproxy.model import Action
from mailproxy.rewrite.transfer import Edit

# A transparent 1x1 GIF: blocked images keep their box, and nothing is fetched.
PLACEHOLDER = b"data:image/gif;base64,R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7"
_EMPTY_DATA = b"data:,"
# Module-level names for the enum members read for every decision: an enum class attribute costs a
# lookup through the enum's metaclass.
_ELEMENT, _RULE, _CSS = Kill.ELEMENT, Kill.RULE, Kill.CSS
_ALLOW, _STRIP, _BLOCK = Action.ALLOW, Action.STRIP, Action.BLOCK


@dataclass(frozen=True, slots=True)
class Decision:
    ref: Reference
    action: Action
    cleaned: str | None = None  # the raw URL text without its identifying parameters (Action.CLEAN)


def _stop(ref: Reference) -> Edit:
    start, end = ref.kill_span
    kill = ref.kill
    if kill is _ELEMENT or kill is _RULE:
        return Edit(start, end, b"")
    if kill is _CSS:
        return Edit(start, end, b"none" if end - start >= 4 else b"")
    return Edit(start, end, b"" if ref.quoted else b'""')


def _placeholder(ref: Reference) -> Edit:
    # An inert stand-in keeps the layout of blocked images; where it does not fit, stop the load outright.
    if ref.value_span is not None and ref.attr not in ("srcset", "content"):
        start, end = ref.value_span
        for stand_in in (PLACEHOLDER, _EMPTY_DATA):
            if len(stand_in) <= end - start:
                return Edit(start, end, stand_in)
    return _stop(ref)


def _edit(d: Decision) -> Edit | None:
    ref = d.ref
    action = d.action
    if action is _ALLOW:
        return None
    if action is _STRIP:
        return _stop(ref)
    if action is _BLOCK:
        return _placeholder(ref)
    # CLEAN: shorten the raw URL in place; a URL that cannot be edited in place is blocked instead.
    if not d.cleaned or ref.url_span is None:
        return _placeholder(ref)
    start, end = ref.url_span
    if len(d.cleaned) > end - start:
        return _placeholder(ref)
    raw = d.cleaned.encode("latin-1", "replace")
    if b"\r" in raw or b"\n" in raw:
        return _placeholder(ref)
    return Edit(start, end, raw)


def plan(decisions: Iterable[Decision]) -> list[Edit]:
    """Non-overlapping edits for the decisions, sorted. An edit inside a wider one (a srcset value inside a
    blanked <img>) is dropped; partial overlaps keep the wider edit, and the safety net checks the rest."""
    edits = sorted(
        (e for e in map(_edit, decisions) if e is not None), key=lambda e: (e.start, -(e.end - e.start))
    )
    out: list[Edit] = []
    for e in edits:
        if out and e.start < out[-1].end:
            prev = out[-1]
            if e.end <= prev.end:
                continue  # contained (or a duplicate of a shared srcset span)
            if e.end - e.start > prev.end - prev.start:
                out[-1] = e
            continue
        out.append(e)
    return out
