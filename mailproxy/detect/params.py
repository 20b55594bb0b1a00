"""Identifying parameters and per-recipient tokens in URLs, so ordinary images can be cleaned.

Many images in marketing mail are real content (a banner, a product photo) whose URL also carries
who the reader is: a subscriber id, a campaign-and-recipient token, an MD5 of the address. Blocking
such an image breaks the message; dropping the identifying parameters and loading the rest does
not. This module says which parameters identify (:func:`identifying_params`), which path segments
look per-recipient (:func:`identifying_path_tokens`, a tracker signal only, paths cannot be
cleaned), and removes parameters from the raw attribute text without disturbing anything else
(:func:`clean_raw_url`).

The guiding rule is that a sender's ordinary images stay clean: names that size, version or sign a
URL are never flagged for their value, content hashes in CDN file names are not tokens, and short
generic names (``e``, ``sid``, ``cid``) count only when their value looks like a token.
"""

from __future__ import annotations

import functools
import html
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final
from urllib.parse import unquote, unquote_plus

from mailproxy.detect.identity import (
    _QUERY_SEP_RE,
    IdentityHit,
    IdentityMatcher,
    _fragment_at,
    _looks_like_address,
    _query_of,
    _query_pairs,
    _split_url,
)

__all__ = [
    "ParamHit",
    "PathToken",
    "clean_raw_url",
    "decode_param_name",
    "identifying_params",
    "identifying_path_tokens",
    "looks_high_entropy",
]

logger = logging.getLogger(__name__)

REASON_KNOWN: Final = "known-param"
REASON_ENTROPY: Final = "high-entropy"
REASON_IDENTITY: Final = "recipient-identity"
REASON_PATH: Final = "high-entropy-path"


@dataclass(frozen=True, slots=True)
class ParamHit:
    """A query parameter that identifies the reader (or the send) and can be removed."""

    name: str  # parameter name as written in the URL
    reason: str  # "known-param" | "high-entropy" | "recipient-identity"


@dataclass(frozen=True, slots=True)
class PathToken:
    """A path segment that looks like a per-recipient token."""

    segment: str  # as written
    reason: str  # "high-entropy-path"


# --- Parameter names ---
# All compared lower-cased (after percent- and entity-decoding).

# Names that exist only to attribute a visit to a campaign or a person; an image never needs them to
# render, so they are removed whatever their value.
_ALWAYS_PREFIXES: Final = (
    "utm_",  # Google Analytics campaign tags, used by every ESP's link and image decoration
    "mtm_",  # Matomo campaign tags
    "hsa_",  # HubSpot ads tags
    "elq",  # Oracle Eloqua: elqTrackId, elqTrack, elqaid, elqat, elqCampaignId
    "_bta_",  # Oracle Bronto: _bta_tid (recipient token), _bta_c
)
_ALWAYS: Final = frozenset(
    {
        # Mailchimp: subscriber (mc_eid), campaign (mc_cid), tracking code (mc_tc)
        "mc_eid",
        "mc_cid",
        "mc_tc",
        # HubSpot: encoded contact + campaign (_hsenc, _hsmi), analytics cookies passed in URLs
        "_hsenc",
        "_hsmi",
        "__hssc",
        "__hstc",
        "__hsfp",
        "hsctatracking",
        "mkt_tok",  # Marketo: per-recipient token on every link
        "vero_id",  # Vero: per-recipient id and conversion tag
        "vero_conv",
        "oly_enc_id",  # Omeda: encoded customer id, anonymous id
        "oly_anon_id",
        "_ke",  # Klaviyo: encoded email of the recipient
        "_kx",  # Klaviyo: exchange id, identifies the profile
        "ml_subscriber",  # MailerLite: subscriber id and its hash
        "ml_subscriber_hash",
        "vgo_ee",  # ActiveCampaign: base64-encoded email of the recipient
        "ck_subscriber_id",  # ConvertKit (Kit): subscriber id
        "_ri_",  # Oracle Responsys: recipient/campaign token (/pub/as?_ri_=)
        "upn",  # SendGrid: per-recipient open/click token (/wf/open?upn=)
        "wickedid",  # Wicked Reports: per-contact id
        # Acoustic (Silverpop) link decoration: mailing, user, job, report
        "spmailingid",
        "spuserid",
        "spjobid",
        "spreportid",
        # Matomo's older campaign names
        "pk_campaign",
        "pk_kwd",
        "pk_source",
        "pk_medium",
        "pk_content",
        "pk_cid",
        # Ad-click ids: unique per click / per user, never needed by the target
        "gclid",
        "gclsrc",
        "gbraid",
        "wbraid",
        "dclid",
        "yclid",
        "fbclid",
        "msclkid",
        "twclid",
        "ttclid",
        "igshid",
        "li_fat_id",
        "_ga",  # Google Analytics cross-domain linker (client id)
        "_gl",
        # Adobe Analytics (SiteCatalyst) campaign ids, Webtrends, Coremetrics
        "s_cid",
        "sc_cid",
        "wt.mc_id",
        "cm_mmc",
        # Generic tracking names no image server needs (LinkedIn's trk, Bronto's trk_contact)
        "trk",
        "trkid",
        "trk_contact",
    }
)

# Names that denote a person. They identify as soon as they carry any real value, but not a flag
# ("email=1", "user_id=true").
_PERSON: Final = frozenset(
    {
        "email",
        "e_mail",
        "emailaddress",
        "email_address",
        "recipient",
        "recipient_id",
        "subscriber",
        "subscriber_id",
        "subscriberid",
        "user_id",
        "userid",
        "uid",
        "contact_id",
        "contactid",
        "member_id",
        "memberid",
        "customer_id",
        "customerid",
    }
)
_FLAG_VALUES: Final = frozenset({"0", "1", "true", "false", "yes", "no", "on", "off", "null", "none"})

# Short generic names used by ESPs for recipient ids (Mailchimp e=, phpList/Mailchimp u=, LiveIntent
# m=<md5>, session ids) but also for harmless things: "cid" is often a content id, "m" a mode, "u" a
# unit. Removed only when the value looks like a token.
_AMBIGUOUS: Final = frozenset({"e", "u", "m", "sid", "cid", "eid", "rid", "mid"})

# Names whose value is never judged by its entropy.
# - Size, format and processing of image CDNs (imgix, Cloudinary, Shopify, WordPress): not
#   identifying.
# - Signatures and expiry of signed URLs (imgix s=, CloudFront, S3, GCS, Azure SAS, Akamai):
#   removing them breaks the image, and they sign the URL, not the reader.
# - Content identifiers (Google Drive id=, file=, key=): the image is chosen by them.
_SAFE_FOR_ENTROPY: Final = frozenset(
    {
        "w",
        "h",
        "width",
        "height",
        "size",
        "sz",
        "dpr",
        "q",
        "quality",
        "fit",
        "crop",
        "fm",
        "format",
        "auto",
        "rect",
        "bg",
        "ixlib",
        "s",
        "sig",
        "signature",
        "hmac",
        "policy",
        "key-pair-id",
        "keyname",
        "urlprefix",
        "expires",
        "hdnts",
        "__token__",
        "se",
        "sp",
        "sv",
        "sr",
        "st",
        "spr",
        "id",
        "file",
        "filename",
        "fileid",
        "image",
        "img",
        "image_id",
        "imageid",
        "photo",
        "asset",
        "media",
        "path",
        "name",
        "src",
        "url",
        "key",
        "export",
    }
)
_SAFE_PREFIXES: Final = ("x-amz-", "x-goog-")

# Version and cache-busting names: a content hash (hex), a timestamp or a counter is what they are
# for; only a UUID or a base64 blob there looks like someone else's token.
_VERSION: Final = frozenset(
    {
        "v",
        "ver",
        "version",
        "rev",
        "cb",
        "cache",
        "cachebust",
        "cachebuster",
        "nocache",
        "_",
        "t",
        "ts",
        "time",
        "timestamp",
    }
)


# --- Value shapes ---

_UUID_RE: Final = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_HEX_RE: Final = re.compile(r"[0-9a-fA-F]{16,}")
_DIGITS_RE: Final = re.compile(r"[0-9]{12,}")
# base64 / base64url, with "." and "~" for compound tokens (JWT-like, SendGrid's "u001.xxx").
_BLOB_RE: Final = re.compile(r"[A-Za-z0-9+/_\-.~]{20,}={0,2}")
_NON_ALNUM_RE: Final = re.compile(r"[^A-Za-z0-9]+")
_CLASS_RUN_RE: Final = re.compile(r"[A-Z]+|[a-z]+|[0-9]+")
# Fraction of adjacent alphanumeric pairs that switch class (upper / lower / digit). Random base64
# switches ~65% of the time; words, even CamelCase ones ("SummerSale2024HeroBanner" ~35%) and slugs
# ("summer-sale-2024", 0%) much less.
_MIN_SWITCH_RATE: Final = 0.4

_STATIC_EXT_RE: Final = re.compile(
    r".+\.(?:png|jpe?g|gif|webp|avif|svg|bmp|ico|tiff?|heic|css|js|mjs|woff2?|ttf|otf|eot|mp4|webm"
    r"|mp3|ogg|pdf|html?)",
    re.IGNORECASE,
)
# A CDN content hash after a word: "logo.3f9a2b1c", "hero_a1b2c3d4e5f6a7b8", "app-1a2b3c4d_600x".
_CONTENT_HASH_RE: Final = re.compile(
    # Words and separators alternate strictly (no "-" inside the word class) so that a failing
    # match cannot backtrack through exponentially many ways of splitting "a-b-c-...".
    r"[A-Za-z]{2,}(?:[._-][A-Za-z]+)*[._-][0-9a-fA-F]{8,40}(?:[._-][A-Za-z0-9]+)*"
)
# Shorter ids that are still tokens for an ambiguous name: Mailchimp's 10-hex e=, numeric ids.
_SHORT_HEX_RE: Final = re.compile(r"[0-9a-fA-F]{8,}")
_SHORT_DIGITS_RE: Final = re.compile(r"[0-9]{6,}")
_SHORT_TOKEN_RE: Final = re.compile(r"[A-Za-z0-9_\-]{8,}")

_MAX_VALUE: Final = 4096  # longer values are judged on their head; it is a token either way
_CACHE_MAX_LEN: Final = 256


def _switch_rate(value: str) -> float:
    pairs = 0
    switches = 0
    for chunk in _NON_ALNUM_RE.split(value):
        if len(chunk) > 1:
            pairs += len(chunk) - 1
            switches += len(_CLASS_RUN_RE.findall(chunk)) - 1
    return switches / pairs if pairs else 0.0


_UPPER_RE: Final = re.compile(r"[A-Z]")
_LOWER_RE: Final = re.compile(r"[a-z]")
_DIGIT_RE: Final = re.compile(r"[0-9]")


def _classes(value: str) -> int:
    """How many of upper case, lower case and digits occur in `value`."""
    return (
        (_UPPER_RE.search(value) is not None)
        + (_LOWER_RE.search(value) is not None)
        + (_DIGIT_RE.search(value) is not None)
    )


def looks_high_entropy(value: str) -> bool:
    """True if `value` looks like a unique id: a UUID, 16+ hex digits, 12+ decimal digits, or a
    base64/base64url blob of 20+ characters mixing letter cases and digits the way random data does.

    False for words, slugs, CamelCase names, short values, file names with a static extension and
    CDN content-hash names ("logo.3f9a2b1c4d5e6f70.png", "hero_a1b2c3d4e5f6a7b8"). Never raises.
    """
    if not isinstance(value, str):
        return False
    # Values recur (the same token in every URL of a message), so short ones are cached; long ones
    # are not, so the cache cannot grow big.
    if len(value) <= _CACHE_MAX_LEN:
        return _looks_high_entropy_cached(value)
    return _looks_high_entropy(value)


@functools.lru_cache(maxsize=8192)
def _looks_high_entropy_cached(value: str) -> bool:
    return _looks_high_entropy(value)


def _looks_high_entropy(value: str) -> bool:
    value = value.strip()[:_MAX_VALUE]
    if len(value) < 12:
        return False
    if _STATIC_EXT_RE.fullmatch(value) or _CONTENT_HASH_RE.fullmatch(value):
        return False
    if _UUID_RE.fullmatch(value) or _DIGITS_RE.fullmatch(value):
        return True
    if _HEX_RE.fullmatch(value):
        return True
    if _BLOB_RE.fullmatch(value):
        return _classes(value) >= 2 and _switch_rate(value) >= _MIN_SWITCH_RATE
    return False


def _token_like(value: str) -> bool:
    """Looser than looks_high_entropy, for names already known to carry ids."""
    if looks_high_entropy(value) or _looks_like_address(value):
        return True
    if _STATIC_EXT_RE.fullmatch(value):
        return False
    if _SHORT_DIGITS_RE.fullmatch(value):
        return True
    if _SHORT_HEX_RE.fullmatch(value):
        return any(c.isdigit() for c in value) and any(c.isalpha() for c in value)
    return (
        _SHORT_TOKEN_RE.fullmatch(value) is not None
        and _classes(value) >= 2
        and _switch_rate(value) >= _MIN_SWITCH_RATE
    )


def decode_param_name(name: str) -> str:
    """A parameter name as written in raw HTML, entity- and percent-decoded ("utm%5Fsource",
    "utm&#95;source" -> "utm_source"). This is the form :func:`clean_raw_url` passes to `remove`."""
    if "&" in name:
        name = html.unescape(name)
    if "%" in name or "+" in name:
        name = unquote_plus(name, errors="replace")
    return name


def _decode_value(value: str) -> str:
    # unquote, not unquote_plus: here "+" is a base64 character more often than an encoded space.
    return unquote(value, errors="replace") if "%" in value else value


@functools.lru_cache(maxsize=4096)
def _name_class(key: str) -> str:
    """ "always" | "person" | "ambiguous" | "version" | "safe" | "" for a lower-cased name."""
    if key in _ALWAYS or key.startswith(_ALWAYS_PREFIXES):
        return "always"
    if key in _PERSON:
        return "person"
    if key in _AMBIGUOUS:
        return "ambiguous"
    if key in _VERSION:
        return "version"
    if key in _SAFE_FOR_ENTROPY or key.startswith(_SAFE_PREFIXES):
        return "safe"
    return ""


# Keyed on the pair as written: "w=600", "utm_source=news" and their like recur across the URLs of
# a message and across messages, so most pairs cost one dictionary lookup (and share their hit).
@functools.lru_cache(maxsize=16384)
def _cached_param_hit(name: str, value: str, has_eq: bool) -> ParamHit | None:
    return _param_hit(name, value, has_eq)


def _param_hit(name: str, value: str, has_eq: bool) -> ParamHit | None:
    reason = _param_reason(decode_param_name(name), _decode_value(value), has_eq)
    return None if reason is None else ParamHit(name=name, reason=reason)


def _param_reason(name: str, value: str, has_eq: bool) -> str | None:
    """Why the parameter (decoded name and value) identifies, or None."""
    name = name.strip()
    kind = _name_class(name.lower())
    if kind == "always":
        return REASON_KNOWN
    if not has_eq:
        # A bare key ("pixel.gif?3f9a..."): hex and digit keys are the classic cache-busters, so
        # only the shapes no cache-buster has count.
        if _UUID_RE.fullmatch(name) or (
            not _HEX_RE.fullmatch(name) and not name.isdigit() and looks_high_entropy(name)
        ):
            return REASON_ENTROPY
        return None
    stripped = value.strip()
    if not stripped:
        return None
    if kind == "person":
        return REASON_KNOWN if stripped.lower() not in _FLAG_VALUES else None
    if kind == "ambiguous":
        return REASON_KNOWN if _token_like(stripped) else None
    if _looks_like_address(stripped):
        return REASON_ENTROPY  # someone's address, if not provably the recipient's
    if kind == "safe":
        return None
    if kind == "version":
        if _UUID_RE.fullmatch(stripped) or (
            not _HEX_RE.fullmatch(stripped)
            and not stripped.isdigit()
            and len(stripped) >= 20
            and looks_high_entropy(stripped)
        ):
            return REASON_ENTROPY
        return None
    return REASON_ENTROPY if looks_high_entropy(value) else None


def identifying_params(url: str, identity: IdentityMatcher | None = None) -> list[ParamHit]:
    """The query parameters of `url` that identify the reader or the send, in URL order, each name
    once. `identity`, when given, adds parameters that carry a recipient's address in any encoding
    (reason "recipient-identity", which wins over the others). Never raises; [] for garbage."""
    return list(identifying_params_and_names(url, identity)[0])


_NO_HITS: Final[tuple[tuple[ParamHit, ...], frozenset[str]]] = ((), frozenset())
_CACHE_MAX_QUERY: Final = 1024


def identifying_params_and_names(
    url: str, identity: IdentityMatcher | None = None
) -> tuple[tuple[ParamHit, ...], frozenset[str]]:
    """:func:`identifying_params` as a tuple, with the decoded names (:func:`decode_param_name`) of the
    parameters found: what a cleaner removes."""
    if not isinstance(url, str) or "?" not in url:
        return _NO_HITS
    query = _query_of(url)
    if not query:
        return _NO_HITS
    return _params_of_query(query, identity.find(url) if identity else ())


def params_given_identity(
    url: str, identity_hits: Sequence[IdentityHit]
) -> tuple[tuple[ParamHit, ...], frozenset[str]]:
    """``identifying_params_and_names(url, identity)`` for a caller that has ``identity.find(url)`` already
    (the classifier): the same answer without asking the matcher again."""
    if "?" not in url:
        return _NO_HITS
    query = _query_of(url)
    if not query:
        return _NO_HITS
    return _params_of_query(query, identity_hits)


def _params_of_query(
    query: str, identity_hits: Sequence[IdentityHit]
) -> tuple[tuple[ParamHit, ...], frozenset[str]]:
    if identity_hits:
        carriers = {hit.param for hit in identity_hits if hit.location == "query" and hit.param}
        if carriers:
            return _query_hits(query, carriers)
    # Without carriers the answer depends on the query alone, and queries recur across the URLs of a
    # message (the same campaign tags, the same image sizes): cached, short ones only.
    if len(query) <= _CACHE_MAX_QUERY:
        return _cached_query_hits(query)
    return _query_hits(query, frozenset())


@functools.lru_cache(maxsize=4096)
def _cached_query_hits(query: str) -> tuple[tuple[ParamHit, ...], frozenset[str]]:
    return _query_hits(query, frozenset())


def _query_hits(
    query: str, carriers: set[str] | frozenset[str]
) -> tuple[tuple[ParamHit, ...], frozenset[str]]:
    hits: list[ParamHit] = []
    seen: set[str] = set()
    for name, value, has_eq in _query_pairs(query):
        if name in seen:
            continue
        seen.add(name)
        if name in carriers:
            hits.append(ParamHit(name=name, reason=REASON_IDENTITY))
            continue
        if len(name) + len(value) <= _CACHE_MAX_LEN:
            hit = _cached_param_hit(name, value, has_eq)
        else:
            hit = _param_hit(name, value, has_eq)
        if hit is not None:
            hits.append(hit)
    if not hits:
        return _NO_HITS
    return tuple(hits), frozenset(decode_param_name(h.name) for h in hits)


def identifying_path_tokens(url: str) -> list[PathToken]:
    """Path segments of `url` that look like per-recipient tokens (Mailgun "/o/eJx...", Brevo
    "/tr/op/<token>", a UUID directory), in order. File names with a static extension and CDN
    content-hash names are never reported. A weak tracker signal only: a sender's account id in a
    CDN path (e.g. a 25-hex Mailchimp user id) has the same shape. Never raises."""
    if not isinstance(url, str) or not url:
        return []
    tokens: list[PathToken] = []
    for segment in _split_url(url).path.split("/"):
        if len(segment) >= 12 and looks_high_entropy(_decode_value(segment)):
            tokens.append(PathToken(segment=segment, reason=REASON_PATH))
    return tokens


def clean_raw_url(raw: str, remove: Callable[[str], bool]) -> str:
    """Drop from `raw` (URL text as written in an HTML attribute) every query parameter whose
    decoded name (see :func:`decode_param_name`) satisfies `remove`.

    Every other character stays exactly as written: the part before "?", the kept parameters in
    their order and encoding, each with the separator that preceded it ("&", "&amp;", "&#38;", ...),
    and the fragment. The separator before the first kept parameter goes away; so does "?" when no
    parameter is left, and empty parameters once anything is removed. Line breaks inside a removed
    parameter are kept (URL parsers ignore them) so the text keeps its line count. The result is
    always `raw` itself or a shorter subsequence of it; garbage in gives it back unchanged. `remove`
    is called once per non-empty parameter; its exceptions propagate.
    """
    if not isinstance(raw, str):
        return raw
    frag_at = _fragment_at(raw)
    if frag_at < 0:
        frag_at = len(raw)
    q_at = raw.find("?", 0, frag_at)  # a "?" after the "#" belongs to the fragment
    if q_at < 0:
        return raw
    # (separator start, parameter start, parameter end, kept) for each parameter, empty ones included.
    params: list[tuple[int, int, int, bool]] = []
    removed = kept_any = False
    sep = start = q_at + 1
    seps = [m.span() for m in _QUERY_SEP_RE.finditer(raw, start, frag_at)]
    seps.append((frag_at, frag_at))
    for end, next_start in seps:
        if start < end:
            kept = not remove(decode_param_name(raw[start:end].partition("=")[0]))
            removed = removed or not kept
            kept_any = kept_any or kept
        else:
            kept = False  # empty ("a=1&&b=2", a trailing "&"): dropped, but only along with a real one
        params.append((sep, start, end, kept))
        sep, start = end, next_start
    if not removed:
        return raw

    out = [raw[: q_at + 1] if kept_any else raw[:q_at]]
    first = True
    for sep, start, end, kept in params:
        if kept:
            out.append(raw[start:end] if first else raw[sep:end])
            first = False
        else:
            gap = raw[sep:end]
            if "\n" in gap or "\r" in gap:
                out.extend(c for c in gap if c in "\r\n")
    out.append(raw[frag_at:])
    return "".join(out)
