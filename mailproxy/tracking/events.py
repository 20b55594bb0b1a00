"""Tracking events: what one acted-on finding or one blocked / cleaned request becomes in the log.

The detail level decides what an event keeps, here and nowhere else, so the store only ever sees
data the level promises (see PRIVACY.md):

- ``aggregate``: the time is cut to the day (UTC), no user, no URL; the store only adds it to a
  per-day count.
- ``events``: the time is rounded down to 10 minutes, the user is a keyed hash, no URL.
- ``research``: as ``events``, plus the URL with every identifying token replaced by a type marker
  (``<md5:recipient>``, ``<address>``, ``<token>``).

Reasons are kept as the classifier's reason codes, with any detail that could be personal (a bare
query key that is a token or an address) replaced by ``<token>``, and the query-parameter identity
reason rewritten to name the encoding (``recipient-identity:md5-in-query``).
"""

from __future__ import annotations

import functools
import hmac
import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Final
from urllib.parse import quote, unquote, urlsplit

from mailproxy.config import LogDetail
from mailproxy.detect.classify import registrable_domain
from mailproxy.detect.identity import IdentityMatcher
from mailproxy.detect.params import identifying_params, looks_high_entropy
from mailproxy.model import Action, Finding, Verdict

__all__ = [
    "Channel",
    "TrackingEvent",
    "UserHasher",
    "acted_on",
    "event_from_http",
    "events_from_findings",
    "redact_url",
    "sanitize_reason",
]

logger = logging.getLogger(__name__)

DAY: Final = 86_400
EVENT_ROUNDING: Final = 600  # events and research keep the time to 10 minutes, no finer


class Channel(StrEnum):
    IMAP = "imap"
    HTTP = "http"
    SCAN = "scan"


@dataclass(frozen=True, slots=True, kw_only=True)
class TrackingEvent:
    """One tracking event, already reduced to what its detail level keeps."""

    time: int  # UTC epoch seconds: start of the day (aggregate) or of the 10-minute slot
    channel: str
    sender_domain: str  # "" when unknown (the HTTP side never knows it)
    tracker_domain: str  # registrable domain of the tracker host
    vendor: str  # "" when unknown
    vector: str  # a model.Vector value, or http-image / http-other / http-connect
    reasons: tuple[str, ...]  # sanitized reason codes, sorted, unique
    action: str  # a model.Action value
    user_hash: str = ""  # keyed hash of the user (events and research only)
    url: str = ""  # redacted URL (research only)

    @property
    def day(self) -> str:
        import time as _time

        return _time.strftime("%Y-%m-%d", _time.gmtime(self.time))


class UserHasher:
    """HMAC-SHA256 of a lower-cased user name with a local secret, as 32 hex digits.

    Keyed so that a leaked database cannot be matched against a list of addresses by hashing
    them: without the key file the hashes are unlinkable to anyone.
    """

    __slots__ = ("_cache", "_key")

    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ValueError("tracking key too short")
        self._key = key
        self._cache: dict[str, str] = {}

    def __call__(self, user: str | None) -> str:
        if not user or not isinstance(user, str):
            return ""
        cached = self._cache.get(user)
        if cached is None:
            digest = hmac.new(self._key, user.strip().lower().encode("utf-8", "replace"), "sha256")
            cached = digest.hexdigest()[:32]
            if len(self._cache) >= 1024:
                self._cache.clear()
            self._cache[user] = cached
        return cached


# --- reasons ---

# A reason detail is kept only when it is a short code-like word; anything else (a bare query key
# that is a token, an address) could identify the reader and becomes "<token>".
_SAFE_DETAIL: Final = re.compile(r"[A-Za-z0-9_.:=\-]{1,40}\Z")
_LONG_DIGITS: Final = re.compile(r"[0-9]{6,}")
_LONG_HEX: Final = re.compile(r"[0-9a-fA-F]{12,}")
# 8+ letters and digits without a separator, both present: an id ("6fbe2190f9"), not a word.
_MIXED_ID: Final = re.compile(r"(?=[A-Za-z]*[0-9])(?=[0-9]*[A-Za-z])[A-Za-z0-9]{8,}")
_IDENTITY: Final = "recipient-identity"
_IDENTITY_LOCATED: Final = re.compile(r"[a-z0-9]+-in-(?:host|path|query|fragment)\Z")
_HEX_ALGOS: Final = {32: "md5", 40: "sha1", 56: "sha224", 64: "sha256", 96: "sha384", 128: "sha512"}
_HEX_ONLY: Final = re.compile(r"[0-9a-fA-F]+\Z")
_B64_ONLY: Final = re.compile(r"[A-Za-z0-9+/_\-]+={0,2}\Z")


@functools.lru_cache(maxsize=4096)
def _safe_word(text: str) -> bool:
    # Parameter values and path words repeat across a mailbox's URLs: judge each once.
    return (
        _SAFE_DETAIL.match(text) is not None
        and _LONG_DIGITS.search(text) is None
        and _LONG_HEX.search(text) is None
        and _MIXED_ID.search(text) is None
        and not looks_high_entropy(text)
    )


@functools.lru_cache(maxsize=4096)
def sanitize_reason(reason: str) -> str:
    """The reason code with a personal-looking detail replaced by ``<token>``. Never raises."""
    if not isinstance(reason, str) or not reason:
        return "<unknown>"
    kind, sep, detail = reason.partition(":")
    if not _safe_word(kind):
        return "<unknown>"
    if not sep:
        return kind
    if _safe_word(detail):
        return reason
    return kind + ":<token>"


def _guess_encoding(value: str) -> str:
    """The likely encoding of an identity carried in a query value (as written), from its shape."""
    if "%40" in value.lower():
        return "urlencoded"
    value = unquote(value, errors="replace")
    if "@" in value:
        return "raw"
    if _HEX_ONLY.match(value):
        return _HEX_ALGOS.get(len(value), "hex")
    if _B64_ONLY.match(value):
        return "base64url" if "-" in value or "_" in value else "base64"
    return "unknown"


def _query_pairs(query: str) -> list[tuple[str, str, bool]]:
    pairs: list[tuple[str, str, bool]] = []
    for piece in query.replace("&amp;", "&").split("&"):
        if piece:
            name, eq, value = piece.partition("=")
            pairs.append((name, value, bool(eq)))
    return pairs


def _reasons(
    raw: Iterable[str], url: str, carriers: Mapping[str, str], extra: Sequence[str] = ()
) -> tuple[str, ...]:
    out: set[str] = set(extra)
    for reason in raw:
        if not isinstance(reason, str):
            continue
        kind, _, detail = reason.partition(":")
        if kind == _IDENTITY and detail and not _IDENTITY_LOCATED.match(detail):
            # The classifier names the parameter here, not the encoding: find it.
            encoding = carriers.get(detail)
            if encoding is None:
                encoding = _guess_encoding(_param_value(url, detail))
            out.add(f"{_IDENTITY}:{encoding}-in-query")
        else:
            out.add(sanitize_reason(reason))
    return tuple(sorted(out))


# A "recipient-identity:<param>" reason: its encoding is read from the URL.
_NEEDS_URL_RE: Final = re.compile(r"recipient-identity:(?![a-z0-9]+-in-(?:host|path|query|fragment)(?:,|\Z))")


@functools.lru_cache(maxsize=4096)
def _plain_reasons(raw: tuple[str, ...]) -> tuple[str, ...] | None:
    """The sanitized reasons, or None when one needs the URL. Reason tuples repeat across findings
    and messages; sanitizing them once is enough."""
    if _NEEDS_URL_RE.search(",".join(raw)):
        return None
    return _reasons(raw, "", {})


def _param_value(url: str, name: str) -> str:
    _, _, query = url.partition("?")
    query = query.partition("#")[0]
    for pname, value, _ in _query_pairs(query):
        if pname == name:
            return value
    return ""


# --- research URLs ---

_STATIC_EXT: Final = re.compile(r"(?i)(\.(?:gif|png|jpe?g|webp|bmp|ico|svg|css|woff2?|html?))\Z")
_ADDRESS_LIKE: Final = re.compile(r"[^\s/?#@]+@[^\s/?#@]+\.[A-Za-z]{2,}")
# Pieces that _safe_word passes without a doubt, too short for a long digit or hex run, a mixed id
# or an entropy judgement: most host labels, path words and parameter values, settled in one match.
_PLAIN_WORD: Final = re.compile(r"[A-Za-z_.:=\-]{1,11}|[A-Za-z0-9_.:=\-]{1,5}")
# A path segment that is such a word, with a static file extension or not, stays as it is.
_PLAIN_SEGMENT: Final = re.compile(
    r"(?:[A-Za-z_.:=\-]{1,11}|[A-Za-z0-9_.:=\-]{1,5})"
    r"(?i:\.(?:gif|png|jpe?g|webp|bmp|ico|svg|css|woff2?|html?))?"
)
_NOTHING: Final = re.compile(r"(?!)")  # stands in for the two above when every piece must be searched
# scheme://host[/path][?query][#fragment] with a host of DNS characters only (no user info, port or
# brackets): for these urlsplit's answer is plain to see, and taking it from one match costs a
# fraction of urlsplit. Everything else (and anything with white space, controls or non-ASCII,
# which urlsplit strips or checks) goes through urlsplit.
_SIMPLE_URL: Final = re.compile(
    r"([A-Za-z][A-Za-z0-9+.\-]*)://([A-Za-z0-9.\-]+)(/[^?#]*)?(?:\?([^#]*))?(?:#(.*))?"
)
# What quote() below leaves as it is: a result made of these only needs no quoting pass.
_QUOTE_SAFE: Final = "/?#[]@!$&'()*+,;=%<>-._~:"
_NEEDS_QUOTE: Final = re.compile(r"[^A-Za-z0-9" + re.escape(_QUOTE_SAFE) + "]")


def _marker_for_text(text: str, matcher: IdentityMatcher | None) -> str | None:
    """The marker that replaces `text` (a path segment, host label or query value), or None to
    keep it."""
    if not text:
        return None
    if matcher is not None and matcher:
        hits = matcher.find(text)
        if hits:
            return f"<{hits[0].encoding}:recipient>"
    if _PLAIN_WORD.fullmatch(text):
        return None
    decoded = unquote(text, errors="replace") if "%" in text else text
    if "@" in decoded and _ADDRESS_LIKE.search(decoded):
        return "<address>"
    if len(decoded) <= 32 and _safe_word(decoded):
        return None
    return "<token>"


def _redact_segment(segment: str, matcher: IdentityMatcher | None) -> str:
    ext = _STATIC_EXT.search(segment) if "." in segment else None
    stem = segment[: ext.start()] if ext else segment
    marker = _marker_for_text(stem, matcher)
    if marker is None:
        return segment
    return marker + (ext.group(1) if ext else "")


_Parts = tuple[str, str, str, int | None, str, str, str]


def _split_simple(url: str) -> _Parts | None:
    """What urlsplit gives for a URL of _SIMPLE_URL's shape, read from one match; None for any
    other URL."""
    if url.isascii() and url.isprintable() and " " not in url:
        m = _SIMPLE_URL.fullmatch(url)
        if m is not None:
            netloc = m[2]
            return m[1].lower(), netloc, netloc.lower(), None, m[3] or "", m[4] or "", m[5] or ""
    return None


def _split(url: str) -> _Parts:
    """scheme, netloc, host name, port, path, query, fragment as urlsplit gives them (raising its
    ValueError too)."""
    simple = _split_simple(url)
    if simple is not None:
        return simple
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port
    return parts.scheme, parts.netloc, host, port, parts.path, parts.query, parts.fragment


@functools.lru_cache(maxsize=1024)
def _named_params(reasons: tuple[str, ...]) -> frozenset[str]:
    """The parameters the reasons call identifying (reason tuples repeat across findings)."""
    named: set[str] = set()
    for reason in reasons:
        kind, _, detail = reason.partition(":")
        if kind in ("known-param", "high-entropy", _IDENTITY) and detail:
            named.add(detail)
    return frozenset(named)


def _flagged_params(url: str, matcher: IdentityMatcher | None) -> set[str]:
    try:
        return {p.name for p in identifying_params(url, matcher)}
    except Exception:  # redaction must never lose the event; a param rule bug only over-redacts
        logger.debug("identifying_params failed during redaction", exc_info=True)
        return set()


def _redact_host(host: str, matcher: IdentityMatcher | None) -> str:
    """The host as shown: labels that are tokens (or, with a matcher, the identity) replaced."""
    plain = _PLAIN_WORD.fullmatch if matcher is None else _NOTHING.fullmatch
    # The registrable domain is stored anyway; only the labels in front of it can be per-reader.
    domain = registrable_domain(host) if host else ""
    front = host[: -len(domain)].rstrip(".") if domain and host.endswith(domain) else host
    labels = [
        label if plain(label) else _marker_for_text(label, matcher) or label
        for label in front.split(".")
        if label
    ]
    if domain and host.endswith(domain):
        labels.append(domain)
    shown = ".".join(labels)
    # An IPv6 literal keeps its brackets, or its colons would read as a port.
    return f"[{shown}]" if ":" in host else shown


def _redact_path(path: str, matcher: IdentityMatcher | None) -> str:
    if matcher is None:
        return "/".join(
            [
                _plain_segment_shown(s) if len(s) <= _CACHE_MAX_PIECE else _plain_segment_shown.__wrapped__(s)
                for s in path.split("/")
            ]
        )
    return "/".join([_redact_segment(s, matcher) if s else s for s in path.split("/")])


def _redact_query(
    query: str,
    url: str,
    reasons: tuple[str, ...],
    matcher: IdentityMatcher | None,
    carriers: Mapping[str, str],
) -> str:
    """The query as shown, with its "?". `url` is what the parameter rules read the query from."""
    plain = _PLAIN_WORD.fullmatch if matcher is None else _NOTHING.fullmatch
    named = _named_params(reasons)
    # The parameter rules only matter for a value that would be kept otherwise: they run (once)
    # when the first such value turns up.
    flagged: set[str] | None = None
    pieces: list[str] = []
    for name, value, has_eq in _query_pairs(query):
        if plain(name):
            shown = name
        else:
            name_marker = _marker_for_text(unquote(name, errors="replace"), matcher)
            shown = name if name_marker is None else name_marker
        if not has_eq:
            pieces.append(shown)
            continue
        if name in carriers:
            pieces.append(f"{shown}=<{carriers[name]}:recipient>")
            continue
        marker = None if plain(value) else _marker_for_text(value, matcher)
        # Campaign attribution ("utm_source=newsletter") names the send, not the reader; a utm
        # value shaped like a token is still replaced.
        campaign = name[:4].lower() == "utm_" and _safe_word(value)
        if name not in named and (marker is None or campaign):
            if flagged is None:
                flagged = _flagged_params(url, matcher)
            if name not in flagged:
                pieces.append(f"{shown}={value if marker is None else marker}")
                continue
        if f"{_IDENTITY}:{name}" in reasons:
            marker = f"<{_guess_encoding(value)}:recipient>"
        elif campaign:
            marker = None
        elif marker is None:
            marker = "<token>"
        pieces.append(f"{shown}={value if marker is None else marker}")
    return "?" + "&".join(pieces)


# Without an identity hit, each part of a URL is redacted by a function of its own text (and the
# reasons, for the query), and hosts, path words and query strings recur across the URLs of one
# message (every image of a newsletter on one CDN host, tagged with the same campaign query):
# each distinct one is redacted once. Bounded, as the caches of the engine are: in entries, and in
# size, since only pieces up to _CACHE_MAX_PIECE characters are cached (longer ones are nearly always
# unique tokens, and a message can hold thousands of them).
_CACHE_MAX_PIECE: Final = 1024


@functools.lru_cache(maxsize=2048)
def _plain_host_shown(host: str) -> str:
    return _redact_host(host, None)


@functools.lru_cache(maxsize=8192)
def _plain_segment_shown(segment: str) -> str:
    return segment if not segment or _PLAIN_SEGMENT.fullmatch(segment) else _redact_segment(segment, None)


@functools.lru_cache(maxsize=2048)
def _plain_query_shown(query: str, reasons: tuple[str, ...]) -> str:
    # The parameter rules read "?" + query as they read the URL it comes from: the caller passes
    # only queries of _SIMPLE_URL's shape without "#", where the first "?" starts the query and
    # nothing ends it.
    return _redact_query(query, "?" + query, reasons, None, {})


def redact_url(url: str, *, matcher: IdentityMatcher | None = None, reasons: Iterable[str] = ()) -> str:
    """`url` with user info dropped and every identifying part replaced by a type marker.

    Kept: scheme, host (labels that look like tokens become ``<token>``), port, the shape of the
    path (code-like segments and file extensions), parameter names, and values that are short
    code-like words. Replaced: the recipient's identity in any encoding the matcher knows
    (``<md5:recipient>``), other addresses (``<address>``), and every other value that is long,
    numeric, hex or high-entropy, or that the parameter rules call identifying (``<token>``).
    Never raises; an unparsable URL gives ``<unparsable>``.
    """
    if not isinstance(url, str) or not url:
        return ""
    simple = _split_simple(url)
    try:
        scheme, netloc, host, port, path, query, fragment = simple or _split(url.strip())
    except ValueError:
        return "<unparsable>"
    reasons = tuple(reasons)
    hits = matcher.find(url) if matcher else []
    out = (scheme + ":" if scheme else "") + ("//" if netloc else "")
    if hits:
        # A plain word can still be an encoding of the identity: every piece goes to the matcher.
        carriers = {h.param: h.encoding for h in hits if h.location == "query" and h.param}
        out += _redact_host(host, matcher) + (f":{port}" if port is not None else "")
        out += _redact_path(path, matcher)
        if query:
            out += _redact_query(query, url, reasons, matcher, carriers)
    else:
        # The matcher searches every decoding of the whole URL, so a URL without a hit has none in
        # any of its parts either: the parts are redacted without it.
        matcher = None
        shown = _plain_host_shown(host) if len(host) <= _CACHE_MAX_PIECE else _redact_host(host, None)
        out += shown + (f":{port}" if port is not None else "")
        out += _redact_path(path, None)
        if query:
            if simple is not None and "#" not in url and len(query) <= _CACHE_MAX_PIECE:
                out += _plain_query_shown(query, reasons)
            else:
                out += _redact_query(query, url, reasons, None, {})
    if fragment:
        out += "#" + (_marker_for_text(fragment, matcher) or fragment)
    # A marker-free result still must not smuggle characters a report would render as markup.
    if _NEEDS_QUOTE.search(out) is None:
        return out  # what quote() would give back unchanged
    return quote(out, safe=_QUOTE_SAFE)


# --- conversion ---


def _floor_time(now: float, detail: LogDetail) -> int:
    step = DAY if detail is LogDetail.AGGREGATE else EVENT_ROUNDING
    t = int(now)
    return t - t % step


def acted_on(finding: Finding) -> bool:
    """A tracking event: a tracker or identifying reference the policy did something about."""
    return finding.verdict is not Verdict.CLEAN and finding.action is not Action.ALLOW


def events_from_findings(
    findings: Iterable[Finding],
    *,
    channel: str,
    sender_domain: str | None,
    user: str | None,
    detail: LogDetail,
    hasher: UserHasher | None,
    now: float,
    recipients: Sequence[str] = (),
) -> list[TrackingEvent]:
    """The events of one message's findings (only those acted on), reduced to `detail`."""
    t = _floor_time(now, detail)
    keep_user = detail is not LogDetail.AGGREGATE
    user_hash = hasher(user) if keep_user and hasher is not None else ""
    sender = _domain_only(sender_domain)
    who = tuple(recipients) + ((user,) if user and "@" in user else ())
    matcher = _matcher(who) if who else None
    research = detail is LogDetail.RESEARCH
    # A message's findings repeat (an image in both src and srcset, every image tagged with the
    # same campaign query): findings alike in all that _event reads give one event, made once and
    # listed each time (events are immutable). Below research the URL counts only from its "?" on.
    made: dict[tuple[object, ...], TrackingEvent] = {}
    # A URL found twice with other vectors or actions is redacted once.
    redacted: dict[tuple[object, ...], str] | None = {} if research else None
    out: list[TrackingEvent] = []
    for f in findings:
        if not isinstance(f, Finding) or not acted_on(f):
            continue
        key: tuple[object, ...] | None
        try:
            url = f.url
            read = url if research else url[url.find("?") :] if "?" in url else ""
            key = (read, f.reasons, f.vector, f.vendor, f.action, f.tracker_domain)
            event = made.get(key)
        except Exception:  # a field that is no string or cannot be hashed: made on its own
            key = event = None
        if event is None:
            try:
                event = _event(f, t, channel, sender, user_hash, matcher, redacted)
            except Exception:  # one odd finding must not cost the rest of the batch
                logger.debug("finding skipped by the tracking log", exc_info=True)
                continue
            if key is not None:
                made[key] = event
        out.append(event)
    return out


def _event(
    f: Finding,
    t: int,
    channel: str,
    sender: str,
    user_hash: str,
    matcher: IdentityMatcher | None,
    redacted: dict[tuple[object, ...], str] | None,
) -> TrackingEvent:
    """The event of one finding; with the URL (redacted) when `redacted` is given, the URLs of
    the message redacted so far."""
    url_in = f.url
    # Host and path hits are in the classifier's reasons already; the query and fragment are
    # only searched when there is one.
    query_at = url_in.find("?")
    hits = matcher.find(url_in[query_at:]) if matcher is not None and query_at >= 0 else ()
    if hits:
        carriers = {h.param: h.encoding for h in hits if h.location == "query" and h.param}
        # The classifier names identity in the query only for otherwise clean images; with
        # the recipients at hand every location and encoding is recorded.
        found = tuple(f"{_IDENTITY}:{h.encoding}-in-{h.location}" for h in hits)
        reasons = _reasons(f.reasons, url_in, carriers, found)
    else:
        reasons = _plain_reasons(f.reasons) or _reasons(f.reasons, url_in, {})
    url = ""
    if redacted is not None:
        try:
            key = (url_in, f.reasons)
            url = redacted.get(key, "")
        except TypeError:  # reasons that are no tuple
            key = None
        if not url:
            url = redact_url(url_in, matcher=matcher, reasons=f.reasons)
            if key is not None:
                redacted[key] = url
    return TrackingEvent(
        time=t,
        channel=str(channel),
        sender_domain=sender,
        tracker_domain=_domain_only(f.tracker_domain),
        vendor=_vendor(f.vendor),
        vector=str(f.vector),
        reasons=reasons,
        action=str(f.action),
        user_hash=user_hash,
        url=url,
    )


@functools.lru_cache(maxsize=64)
def _matcher(recipients: tuple[str, ...]) -> IdentityMatcher:
    # One matcher per set of recipients, kept across messages: its per-URL cache then also serves
    # the next message of the same mailbox (newsletters repeat their pixel URLs).
    return IdentityMatcher(recipients)


_HTTP_ACTIONS: Final = {"blocked": str(Action.BLOCK), "cleaned": str(Action.CLEAN)}


def event_from_http(
    event: Mapping[str, object], *, detail: LogDetail, hasher: UserHasher | None
) -> TrackingEvent | None:
    """The event of one addon event dict (``ProxyState.emit``), or None when it is not a tracking
    event (a refused private address) or is malformed."""
    try:
        action = _HTTP_ACTIONS.get(str(event.get("action")))
        if action is None:
            return None
        raw_time = event.get("time")
        now = float(raw_time) if isinstance(raw_time, int | float) else 0.0
        if now <= 0:
            import time as _time

            now = _time.time()
        host = str(event.get("host") or "")
        domain = event.get("domain")
        tracker_domain = str(domain) if domain else (registrable_domain(host) if host else "")
        stage = str(event.get("stage") or "")
        if stage == "connect":
            vector = "http-connect"
        else:
            vector = "http-image" if event.get("image") else "http-other"
        raw_reasons = event.get("reasons")
        reasons_in = [str(r) for r in raw_reasons] if isinstance(raw_reasons, list | tuple) else []
        extra = ("via-redirect",) if stage == "redirect" else ()
        user = event.get("user")
        keep_user = detail is not LogDetail.AGGREGATE
        vendor = event.get("vendor")
        return TrackingEvent(
            time=_floor_time(now, detail),
            channel=str(Channel.HTTP),
            sender_domain="",
            tracker_domain=_domain_only(tracker_domain),
            vendor=_vendor(vendor if isinstance(vendor, str) else None),
            vector=vector,
            reasons=_reasons(reasons_in, "", {}, extra),
            action=action,
            user_hash=hasher(user) if keep_user and hasher and isinstance(user, str) else "",
        )
    except Exception:  # a malformed dict from a future addon version must not break the proxy
        logger.debug("unusable HTTP event skipped", exc_info=True)
        return None


_DOMAIN_RE: Final = re.compile(r"[a-z0-9.\-_]{1,253}\Z")


@functools.lru_cache(maxsize=4096)
def _domain_only(value: str | None) -> str:
    """A lower-cased domain; anything else (an address, garbage) is never stored as is."""
    if not value or not isinstance(value, str):
        return ""
    value = value.strip().lower().rpartition("@")[2]
    return value if _DOMAIN_RE.match(value) else "<invalid>"


def _vendor(value: str | None) -> str:
    if not value or not isinstance(value, str):
        return ""
    return value.strip()[:80]
