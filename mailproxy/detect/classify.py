"""One verdict per remote URL: tracker, identifying or clean, with the reasons that fired.

The signals, strongest first:
1. a known tracker (bundled dataset or a user's filter list) matches the URL;
2. the recipient's address, in any encoding, sits in the host or path (it cannot be removed without breaking
   the URL, so the reference is a tracker);
3. the element is hidden or tiny, or only conditional CSS (print, colour scheme, forward detection) loads it:
   it serves no reader, so it observes one. Spacers guard against false positives: known spacer images,
   and small first-party images with no identifier;
4. otherwise, identifying query parameters (known names, high-entropy tokens, the recipient's identity)
   make an ordinary image "identifying": it can be cleaned instead of blocked.

The classifier is pure: the same URL and context give the same verdict, which the rewriter relies on for
deterministic output.
"""

from __future__ import annotations

import re
import weakref
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

import tldextract

from mailproxy.detect.identity import IdentityMatcher
from mailproxy.detect.params import ParamHit, params_given_identity
from mailproxy.detect.trackers import TrackerDB
from mailproxy.model import Party, Tier, Verdict

# The bundled public-suffix snapshot only: no download, ever (no surprise network traffic).
_tld = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)

_TIER_RANK = {Tier.LOW: 0, Tier.MEDIUM: 1, Tier.HIGH: 2}
_TIERS = (Tier.LOW, Tier.MEDIUM, Tier.HIGH)
_NO_PARAMS: frozenset[str] = frozenset()
_CACHE_LIMIT = 4096
# The registrable domain and the vendor of a host depend on the host and the tracker database only, and hosts
# recur from message to message (an ESP's, a CDN's): one cache per database, shared by the classifiers of
# all messages.
_HOSTS: weakref.WeakKeyDictionary[TrackerDB, dict[str, tuple[str, str | None]]] = weakref.WeakKeyDictionary()
REMOTE_SCHEMES = frozenset({"http", "https", "ftp", "ws", "wss"})


@lru_cache(maxsize=4096)
def registrable_domain(host: str) -> str:
    """example.co.uk for a.b.example.co.uk; the host itself for IP literals."""
    host = host.strip(".").lower()
    ext = _tld(host)
    if ext.top_domain_under_public_suffix:
        return ext.top_domain_under_public_suffix
    if ext.ipv4 or ":" in host or "." not in host:
        return host
    # A suffix the list does not know (reserved names such as .example, intranet names): the last two
    # labels, as for an ordinary one-label suffix.
    return ".".join(host.rsplit(".", 2)[-2:])


# scheme://[userinfo@]host[:port]: the host as urlsplit().hostname gives it, without urlsplit's cost
# (this runs for every URL) and without its ValueError on odd input.
_HOST = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:[/\\]{2}(?:[^@/\\?#]*@)?(\[[^\]/]*\]|[^:/\\?#]*)")


def host_of(url: str) -> str:
    # The common case without the regex: an authority with no userinfo, port or IPv6 literal is the host
    # itself (the regex would take it whole, too). str.find scans faster than a regex character class.
    start = 8 if url.startswith("https://") else 7 if url.startswith("http://") else 0
    if start:
        end = url.find("/", start)
        if end < 0:
            end = len(url)
        for c in "\\?#":
            i = url.find(c, start, end)
            if i >= 0:
                end = i
        authority = url[start:end]
        if "@" not in authority and ":" not in authority and not authority.startswith("["):
            return authority.strip("[]").lower()
    m = _HOST.match(url)
    return m.group(1).strip("[]").lower() if m else ""


def is_remote(url: str) -> bool:
    """Whether loading this (absolute or protocol-relative) URL reaches the network."""
    if url.startswith("//"):
        return True
    scheme, sep, _ = url.partition(":")
    return bool(sep) and scheme.lower() in REMOTE_SCHEMES


@dataclass(frozen=True, slots=True)
class UrlVerdict:
    verdict: Verdict
    tier: Tier
    vendor: str | None
    reasons: tuple[str, ...]
    remove_params: frozenset[str]  # decoded names of the query parameters to drop when cleaning
    domain: str  # registrable domain of the host
    party: Party


# Verdicts repeat (every clean image of one CDN gets the same one) and a frozen dataclass costs about
# 1 µs to build, several times a look-up: equal verdicts are built once and shared (they are immutable).
_VerdictKey = tuple[Verdict, Tier, str | None, tuple[str, ...], frozenset[str], str, Party]
_VERDICTS: dict[_VerdictKey, UrlVerdict] = {}


def _verdict(key: _VerdictKey) -> UrlVerdict:
    found = _VERDICTS.get(key)
    if found is None:
        if len(_VERDICTS) >= _CACHE_LIMIT:
            _VERDICTS.clear()
        found = _VERDICTS[key] = UrlVerdict(*key)
    return found


# Module-level names for the enum members read on every URL: an enum class attribute costs a lookup
# through the enum's metaclass.
_TRACKER, _IDENTIFYING, _CLEAN = Verdict.TRACKER, Verdict.IDENTIFYING, Verdict.CLEAN
_FIRST, _THIRD, _UNKNOWN = Party.FIRST, Party.THIRD, Party.UNKNOWN
_LOW = Tier.LOW


class Classifier:
    """Classifies the URLs of one message (the recipients and the sender are per message)."""

    def __init__(
        self, db: TrackerDB, *, recipients: Iterable[str] = (), sender_domain: str | None = None
    ) -> None:
        self.db = db
        self.identity = IdentityMatcher(recipients)
        # None rather than a falsy matcher: asked for every URL, and truth-testing calls __bool__.
        self._identity = self.identity if self.identity else None
        self.sender_domain = registrable_domain(sender_domain) if sender_domain else None
        # Newsletters repeat URLs (srcset candidates, spacers, the same pixel in several vectors).
        self._cache: dict[tuple[str, bool, tuple[str, ...], str | None], UrlVerdict] = {}
        self._hosts = _HOSTS.setdefault(db, {})

    def classify(
        self,
        url: str,
        *,
        is_image: bool = True,
        hidden: tuple[str, ...] = (),
        conditional: str | None = None,
    ) -> UrlVerdict:
        key = (url, is_image, hidden, conditional)
        cached = self._cache.get(key)
        if cached is None:
            if len(self._cache) >= _CACHE_LIMIT:
                # A long-lived classifier (the HTTP proxy keeps one per user) must not grow forever.
                self._cache.clear()
            cached = self._cache[key] = self._classify(url, is_image, hidden, conditional)
        return cached

    def _classify(
        self, url: str, is_image: bool, hidden: tuple[str, ...], conditional: str | None
    ) -> UrlVerdict:
        full = "http:" + url if url.startswith("//") else url
        # Keyed by the text host_of reads, not by the host: that spares host_of for all but the first URL
        # of an origin. For http(s) URLs host_of reads nothing past the first "/" after "scheme://" (no part
        # of its regex crosses a "/"); other URLs are keyed by their host, which never holds "://".
        start = 8 if full.startswith("https://") else 7 if full.startswith("http://") else 0
        if start:
            slash = full.find("/", start)
            origin = full[:slash] if slash >= 0 else full
        else:
            origin = host_of(full)
        info = self._hosts.get(origin)
        domain, host_vendor = self._host_info(origin, full) if info is None else info
        sender_domain = self.sender_domain
        if sender_domain is None or not domain:
            party = _UNKNOWN
        else:
            party = _FIRST if domain == sender_domain else _THIRD

        match = self.db.match(full)
        identity = self._identity
        identity_hits = identity.find_uncached(full) if identity is not None else ()
        params, remove = params_given_identity(full, identity_hits)
        if match is None and not identity_hits and not conditional and not (is_image and hidden):
            # Most URLs: nothing but their query parameters can speak (the end of the general path below).
            if not params:
                return _verdict((_CLEAN, _LOW, host_vendor, (), remove, domain, party))
            return self._by_params(params, remove, host_vendor, domain, party)

        reasons: list[str] = []
        rank = 0  # of the strongest tier fired, in _TIER_RANK
        if match is not None:
            vendor = match.vendor
            reasons.append(match.reason)
            rank = _TIER_RANK[match.tier]
        else:
            vendor = None
        for hit in identity_hits:
            if hit.location in ("host", "path"):
                reasons.append(f"recipient-identity:{hit.encoding}-in-{hit.location}")
                rank = 2
        if conditional:
            reasons.append(f"conditional-css:{conditional}")
            rank = max(rank, 1)
        if is_image and hidden and not self._spacer(full, party, params, identity_hits):
            # A hidden or tiny image serves no reader. Stronger when a third party serves it.
            reasons.append("hidden:" + hidden[0])
            if party is not _FIRST or params:
                rank = max(rank, 1)
        if vendor is None:
            vendor = host_vendor

        if reasons:
            return _verdict((_TRACKER, _TIERS[rank], vendor, tuple(reasons), remove, domain, party))
        if params:
            return self._by_params(params, remove, vendor, domain, party)
        return _verdict((_CLEAN, _LOW, vendor, (), remove, domain, party))

    @staticmethod
    def _by_params(
        params: Sequence[ParamHit], remove: frozenset[str], vendor: str | None, domain: str, party: Party
    ) -> UrlVerdict:
        """Nothing but identifying parameters fired: the strongest one sets the tier."""
        tier = Tier.MEDIUM if all(p.reason == "high-entropy" for p in params) else Tier.HIGH
        reasons = tuple(f"{p.reason}:{p.name}" for p in params)
        return _verdict((_IDENTIFYING, tier, vendor, reasons, remove, domain, party))

    def _host_info(self, origin: str, url: str) -> tuple[str, str | None]:
        """The registrable domain and the vendor of the URL's host; ("", None) for no host. Cached in _hosts
        under `origin` (see _classify)."""
        host = host_of(url)
        if len(self._hosts) >= _CACHE_LIMIT:
            self._hosts.clear()
        info = self._hosts[origin] = (
            (registrable_domain(host), self.db.vendor_for_host(host)) if host else ("", None)
        )
        return info

    def _spacer(
        self, url: str, party: Party, params: Sequence[object], identity_hits: Sequence[object]
    ) -> bool:
        """Small or hidden images that are not trackers: known spacers, and first-party images without
        any identifier (a sender's own layout gif)."""
        if self.db.is_spacer(url):
            return not identity_hits
        return party is _FIRST and not params and not identity_hits
