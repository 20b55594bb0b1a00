"""Pure data shared by detection, policy and rewriting. No I/O, no parsing."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Vector(StrEnum):
    """How a reference makes the mail client load something (see trackers.md section 6)."""

    IMG = "img"  # <img src>, <input type=image src>, amp-img
    SRCSET = "srcset"  # srcset on img / source
    LOWSRC = "lowsrc"  # legacy lowsrc / dynsrc
    BACKGROUND = "background"  # background= attribute on any element
    CSS_URL = "css-url"  # url() / image-set() in a style attribute or <style> block
    CSS_IMPORT = "css-import"  # @import
    FONT = "font"  # @font-face src
    LINK = "link"  # <link href> (stylesheet, prefetch, preconnect, icon, ...)
    MEDIA = "media"  # video / audio / source / track / bgsound src
    POSTER = "poster"  # video poster
    FRAME = "frame"  # iframe / frame src
    OBJECT = "object"  # object data / embed src / applet code
    SVG = "svg"  # SVG image / use / feImage href, FUNCIRI attributes
    VML = "vml"  # v:image / v:fill src inside Outlook conditional comments
    META_REFRESH = "meta-refresh"
    BASE = "base"  # <base href>
    SCRIPT = "script"  # <script src>
    PING = "ping"  # <a ping>
    AMP = "amp"  # a text/x-amp-html part
    EXTERNAL_BODY = "external-body"  # a message/external-body part (RFC 2046 section 5.2.3, RFC 2017)


# Vectors whose target is rendered as an image. Everything else is "remote content that is not an image".
IMAGE_VECTORS = frozenset(
    {
        Vector.IMG,
        Vector.SRCSET,
        Vector.LOWSRC,
        Vector.BACKGROUND,
        Vector.CSS_URL,
        Vector.POSTER,
        Vector.SVG,
        Vector.VML,
    }
)


class Verdict(StrEnum):
    TRACKER = "tracker"  # exists to observe the reader (pixel, known open-tracking URL, identity in path)
    IDENTIFYING = "identifying"  # ordinary content whose URL carries removable identifying parameters
    CLEAN = "clean"


class Tier(StrEnum):
    """Confidence in a verdict, after MailTrackerBlocker's three tiers."""

    HIGH = "high"  # a named vendor's open-tracking URL, or the recipient's identity in the URL
    MEDIUM = "medium"  # a generic tracking path shape, or a hidden / tiny third-party image
    LOW = "low"  # a weak heuristic alone


class Action(StrEnum):
    """What the rewriter (or the HTTP addon) does with one reference."""

    ALLOW = "allow"  # leave it
    CLEAN = "clean"  # keep loading, identifying parameters removed
    STRIP = "strip"  # remove the element or URL so nothing loads
    BLOCK = "block"  # replace by an inert placeholder


class Party(StrEnum):
    FIRST = "first"
    THIRD = "third"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True, kw_only=True)
class Finding:
    """One remote reference in a message, classified and with the policy's action attached."""

    url: str
    vector: Vector
    verdict: Verdict
    action: Action
    tier: Tier
    vendor: str | None = None
    reasons: tuple[str, ...] = ()
    party: Party = Party.UNKNOWN
    is_image: bool = True
    part: str = ""  # MIME part number ("1.2"), "" for a single-part message
    tracker_domain: str = ""  # registrable domain of the URL's host

    def as_dict(self) -> dict[str, object]:
        return {
            "url": self.url,
            "vector": str(self.vector),
            "verdict": str(self.verdict),
            "vendor": self.vendor,
            "reasons": list(self.reasons),
            "tier": str(self.tier),
            "action": str(self.action),
            "party": str(self.party),
            "image": self.is_image,
            "part": self.part,
            "domain": self.tracker_domain,
        }
