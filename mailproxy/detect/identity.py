"""Find the recipient's own email address inside a URL, in the encodings trackers use.

A tracker learns *who* opened a message when the pixel URL carries the recipient's address: as is,
URL-encoded, base64-encoded, or hashed. Englehardt, Han & Narayanan (PETS 2018) found this in 29% of
marketing mail, MD5 being the common case (LiveIntent ``m=<md5>``, ``email_md5_lc=<md5>``).

One :class:`IdentityMatcher` is built per message from its recipients, then asked about every
URL of that message. Everything that depends only on the recipients (digests, encodings, the
combined regexes) is computed once, and cached across messages that have the same recipients, so
:meth:`IdentityMatcher.find` costs a few substring tests per URL and nothing more when the URL
carries no identity (the common case).
"""

from __future__ import annotations

import email.utils
import functools
import hashlib
import logging
import re
import string
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from email.message import Message
from typing import Final, NamedTuple
from urllib.parse import quote, quote_plus, unquote

__all__ = ["HASH_ALGORITHMS", "IdentityHit", "IdentityMatcher", "recipients_from_headers"]

logger = logging.getLogger(__name__)

#: Digest algorithms tried on the address (hex output, either case).
HASH_ALGORITHMS: Final = ("md5", "sha1", "sha224", "sha256", "sha384", "sha512")

# The headers that name the message's recipients. Delivered-To / X-Original-To matter because a
# message that reached us via Bcc or a list has our address only there.
_RECIPIENT_HEADERS: Final = ("To", "Cc", "Delivered-To", "X-Original-To")

_STD_ALPHABET: Final = string.ascii_uppercase + string.ascii_lowercase + string.digits + "+/"
_URL_ALPHABET: Final = _STD_ALPHABET[:62] + "-_"

# A pragmatic "looks like an address" test, not RFC 5322: a local part without whitespace or the
# characters that delimit addresses in headers, and a dotted domain ending in an alphabetic TLD. The
# TLD rule keeps Outlook content ids (image001.png@01D9ABCD.12345678) and "undisclosed-recipients:;"
# out.
_ADDRESS_RE: Final = re.compile(
    r"[^\s@<>()\[\],;:\"\\\x00-\x1f\x7f]{1,64}@(?:[^\W_](?:[\w-]{0,61}[^\W_])?\.)+[^\W\d_]{2,63}"
)
_MAX_ADDRESS_LEN: Final = 254

# A raw or URL-encoded address must not be the tail or the head of a longer address: "alice@x.org"
# is not in "malice@x.org" nor in "alice@x.org.evil". Digests and base64 get no such guard: a 32-hex
# needle cannot match by accident, and base64 needles must match inside longer tokens.
_BEFORE: Final = r"(?<![A-Za-z0-9._+\-])"
# A file extension after the address ("alice%40x.org.gif", a per-recipient pixel file) still ends it.
_AFTER: Final = (
    r"(?![A-Za-z0-9_\-])"
    r"(?!\.(?!(?:gif|png|jpe?g|webp|bmp|ico|svg|html?|php|aspx?|jsp)(?![A-Za-z0-9_\-.]))[A-Za-z0-9])"
)

# Base64 needles of the shifted (offset 1 and 2) encodings are shorter than the plain one by the
# partially determined characters; below this many fully determined characters a chance match gets
# plausible.
_MIN_FIXED_B64: Final = 8

# Percent-decoding depth: once for an encoded query value, twice for a URL nested in another URL's
# parameter (redirect wrappers), which is as deep as real trackers go.
_MAX_DECODE_DEPTH: Final = 2

_CACHE_SIZE: Final = 512
_CACHE_MAX_URL: Final = 4096

_SCHEME_RE: Final = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:")
# The first "#" that starts the fragment; "&#38;" is an entity-encoded "&" in raw attribute text,
# not one.
_BARE_HASH_RE: Final = re.compile(r"&#(?:[0-9]+|[xX][0-9a-fA-F]+);|#")
# Query separators: "&" as written, or entity-encoded as it appears in raw HTML. An "&" that starts
# another numeric character reference ("utm&#95;source") is part of the name, not a separator. ";"
# is not a separator.
_QUERY_SEP_RE: Final = re.compile(r"&(?:amp;|AMP;|#0*38;|#[xX]0*26;|(?!#[0-9]+;|#[xX][0-9a-fA-F]+;))")


@dataclass(frozen=True, slots=True)
class IdentityHit:
    """One place where a recipient's address shows up in a URL."""

    # "raw" | "lower" | "urlencoded" | "base64" | "base64url" | one of HASH_ALGORITHMS
    encoding: str
    location: str  # "host" | "path" | "query" | "fragment"
    param: str | None  # query parameter name (as written) carrying it, when location == "query"


def _looks_like_address(text: str) -> bool:
    return len(text) <= _MAX_ADDRESS_LEN and _ADDRESS_RE.fullmatch(text) is not None


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


# --- URL splitting ---
# Hand-written rather than urllib.parse.urlsplit: that raises ValueError on inputs such as
# "http://[::1" and we must never raise; and it knows nothing of entity-encoded separators in raw
# attribute text.


class _UrlParts(NamedTuple):
    host: str  # the whole authority (userinfo, host, port); "" when there is none
    path: str
    query: str | None  # without the "?"; None when there is no "?"
    fragment: str | None  # without the "#"


def _fragment_at(url: str) -> int:
    """Where the "#" that starts the fragment is; -1 when there is none."""
    if "#" in url:
        for m in _BARE_HASH_RE.finditer(url):
            if m.end() - m.start() == 1:
                return m.start()
    return -1


def _split_url(url: str) -> _UrlParts:
    frag_at = _fragment_at(url)
    end = frag_at if frag_at >= 0 else len(url)
    q_at = url.find("?", 0, end)
    main_end = q_at if q_at >= 0 else end
    scheme = _SCHEME_RE.match(url, 0, main_end)
    pos = scheme.end() if scheme is not None else 0
    host = ""
    if url.startswith("//", pos) and pos + 2 <= main_end:
        slash = url.find("/", pos + 2, main_end)
        host_end = slash if slash >= 0 else main_end
        host = url[pos + 2 : host_end]
        pos = host_end
    return _UrlParts(
        host,
        url[pos:main_end],
        url[q_at + 1 : end] if q_at >= 0 else None,
        url[frag_at + 1 :] if frag_at >= 0 else None,
    )


def _query_of(url: str) -> str | None:
    """``_split_url(url).query`` without splitting the rest."""
    frag_at = _fragment_at(url)
    end = frag_at if frag_at >= 0 else len(url)
    q_at = url.find("?", 0, end)
    return url[q_at + 1 : end] if q_at >= 0 else None


def _query_pairs(query: str) -> list[tuple[str, str, bool]]:
    """(name as written, value as written, has "=") for each non-empty parameter."""
    if "&#" in query or "&amp;" in query or "&AMP;" in query:
        pairs = _QUERY_SEP_RE.split(query)
    else:
        pairs = query.split("&")  # every "&" separates: the same split, several times faster
    out = []
    for pair in pairs:
        if pair:
            name, eq, value = pair.partition("=")
            out.append((name, value, eq == "="))
    return out


def _decode_levels(text: str) -> list[str]:
    """The text as is, then percent-decoded once and twice while that changes anything."""
    levels = [text]
    for _ in range(_MAX_DECODE_DEPTH):
        if "%" not in text:
            break
        decoded = unquote(text, errors="replace")
        if decoded == text:
            break
        levels.append(decoded)
        text = decoded
    return levels


# --- Needle construction ---


def _char_class(chars: Iterable[str]) -> str:
    return "[" + "".join(re.escape(c) for c in chars) + "]"


def _b64_atoms(data: bytes, offset: int, alphabet: str) -> tuple[list[str], str]:
    """Regex atoms (one per base64 character) for `data` encoded after `offset` unknown bytes.

    Base64 maps each 3-byte group to 4 characters, so the characters that encode an address depend
    on where the address starts inside the encoded bytes (its offset modulo 3) and, at both ends, on
    the unknown neighbouring bytes. A plain substring search for base64(address) therefore only
    finds the address at an offset that is a multiple of 3 (the whole token, or a prefix). To find
    it at any offset we build needles for each of the three offsets: keep the characters fully
    determined by the address and turn the partially determined first and last ones into character
    classes (the unknown bits may take any value, zero included, so the class also covers an
    encoder's zero-filled last character before the optional "=" padding). Together they find the
    address anywhere inside one contiguous base64 token: alone, as a prefix ("alice@x.org|123") or
    after other data ("e=alice@x.org").

    Limitations: the encoded token must be contiguous in the URL (percent-escaped "+", "/", "=" are
    fine, the URL is also searched decoded); base64 interrupted by other characters, encoded twice,
    or of compressed or encrypted data (Mailgun's zlib "eJ..." tokens) is not found. Needles of the
    shifted offsets are kept only with at least _MIN_FIXED_B64 fully determined characters.

    Returns the atoms and the fully determined characters (as plain text).
    """
    nbits = len(data) * 8
    value = int.from_bytes(data, "big")
    start = offset * 8
    stop = start + nbits
    atoms: list[str] = []
    fixed: list[str] = []
    for window in range(start // 6, (stop + 5) // 6):
        lo = max(window * 6, start)
        hi = min(window * 6 + 6, stop)
        known = hi - lo
        low_unknown = window * 6 + 6 - hi  # unknown bits below the known ones in this 6-bit window
        bits = (value >> (nbits - (hi - start))) & ((1 << known) - 1)
        if known == 6:
            atoms.append(re.escape(alphabet[bits]))
            fixed.append(alphabet[bits])
        else:
            mask = (1 << known) - 1
            atoms.append(_char_class(c for i, c in enumerate(alphabet) if (i >> low_unknown) & mask == bits))
    return atoms, "".join(fixed)


_END: Final = ""  # trie end marker; no atom is empty
_Trie = dict[str, "_Trie"]


def _trie_pattern(needles: Iterable[tuple[str, ...]]) -> str:
    """One regex alternation of many needles (sequences of atoms), sharing common prefixes.

    Python's regex engine tries alternatives one by one at every position; a trie makes that one
    branch per distinct first atom, which keeps a few dozen needles cheap on every URL.
    """
    root: _Trie = {}
    for needle in needles:
        node = root
        for atom in needle:
            node = node.setdefault(atom, {})
        node[_END] = {}
    return _render_trie(root)


def _render_trie(node: _Trie) -> str:
    parts = [atom + _render_trie(child) for atom, child in sorted(node.items()) if atom != _END]
    if not parts:
        return ""
    body = parts[0] if len(parts) == 1 else "(?:" + "|".join(parts) + ")"
    if _END in node:
        # A needle ends here and longer ones continue: try the longer ones first, greedily.
        body = ("(?:" + body + ")" if len(parts) == 1 else body) + "?"
    return body


# Cheap gates in front of the needle regexes, which cost microseconds per URL (the case-insensitive
# one most: it cannot skip ahead on a literal) while a substring test costs tens of nanoseconds. A
# match of a regex implies that the text holds one of its needles literally: as written for the base64
# regex (through its fully determined characters), and lower-cased for the case-insensitive ones as
# long as text and needles are ASCII; beyond ASCII, case-insensitive matching also pairs characters
# that str.lower() keeps apart ("ſ" and "s", "ı" and "i"), so there the regex runs ungated.
_B64_ANCHOR_LEN: Final = 6


class _LazyRegex:
    """A regex built and compiled on first use. Behind the gates most recipients' regexes are never
    run, and rendering and compiling the three of them costs more than scanning a message's URLs."""

    __slots__ = ("_build", "_compiled")

    def __init__(self, build: Callable[[], re.Pattern[str]]) -> None:
        self._build = build
        self._compiled: re.Pattern[str] | None = None

    @property
    def re(self) -> re.Pattern[str]:
        if self._compiled is None:
            self._compiled = self._build()
        return self._compiled


@dataclass(frozen=True, slots=True)
class _Needles:
    raw_re: _LazyRegex  # the address, case-insensitive
    # hex digests (no boundaries) and URL-encoded forms (with boundaries), case-insensitive
    ci_re: _LazyRegex
    b64_re: _LazyRegex  # base64 / base64url, case-sensitive
    raw_keys: tuple[str, ...] | None  # the lower-cased addresses; None when one is not ASCII
    hex_keys: tuple[str, ...]  # the digests (lower-case hex)
    pct_keys: tuple[str, ...]  # the lower-cased URL-encoded forms (ASCII, each with "%40")
    b64_anchors: tuple[str, ...]  # a literal prefix of the fully determined characters of each needle
    given: frozenset[str]
    lowered: frozenset[str]
    ci_labels: dict[str, str]  # lower-cased needle text -> encoding name

    def may_raw(self, text: str, low: str | None) -> bool:
        """False only when raw_re cannot match `text`; `low` is text.lower() for ASCII text, else None."""
        if "@" not in text:
            return False
        return low is None or self.raw_keys is None or _holds_any(low, self.raw_keys)

    def may_ci(self, low: str | None) -> bool:
        return (
            low is None or _holds_any(low, self.hex_keys) or ("%40" in low and _holds_any(low, self.pct_keys))
        )

    def raw_matches(self, text: str) -> Iterator[re.Match[str]]:
        if self.may_raw(text, _ascii_lower(text)):
            return self.raw_re.re.finditer(text)
        return iter(())

    def ci_matches(self, text: str) -> Iterator[re.Match[str]]:
        if self.may_ci(_ascii_lower(text)):
            return self.ci_re.re.finditer(text)
        return iter(())

    def b64_matches(self, text: str) -> Iterator[re.Match[str]]:
        if _holds_any(text, self.b64_anchors):
            return self.b64_re.re.finditer(text)
        return iter(())

    def any_match(self, text: str) -> bool:
        low = text.lower() if text.isascii() else None  # _ascii_lower, inlined: this runs for every URL
        if low is not None and _holds_any(low, self.hex_keys):
            return True  # digests have no boundary rule: the substring is a match
        if "@" in text and self.may_raw(text, low) and self.raw_re.re.search(text):
            return True
        if (low is None or ("%40" in low and _holds_any(low, self.pct_keys))) and self.ci_re.re.search(text):
            return True
        return _holds_any(text, self.b64_anchors) and self.b64_re.re.search(text) is not None


def _holds_any(text: str, keys: tuple[str, ...]) -> bool:
    # A plain loop: any() over a generator costs several times as much for a handful of keys.
    for key in keys:  # noqa: SIM110
        if key in text:
            return True
    return False


def _ascii_lower(text: str) -> str | None:
    return text.lower() if text.isascii() else None


@functools.lru_cache(maxsize=64)
def _compile(addresses: tuple[str, ...]) -> _Needles:
    """Build every needle for these (validated, stripped) addresses.

    Cached: a mailbox's messages mostly have the same recipients, and building costs ~30 digests and
    three regexes, compiled only when first needed (_LazyRegex)."""
    raw_keys: dict[str, None] = {}
    hexes: set[tuple[str, ...]] = set()
    urlenc: set[tuple[str, ...]] = set()
    b64: set[tuple[str, ...]] = set()
    anchors: set[str] = set()
    labels: dict[str, str] = {}
    for address in addresses:
        for form in dict.fromkeys((address, address.lower())):
            data = form.encode("utf-8")
            raw_keys[form.lower()] = None
            for algo in HASH_ALGORITHMS:
                digest = hashlib.new(algo, data).hexdigest()
                labels.setdefault(digest, algo)
                hexes.add(tuple(digest))
            for encoded in {quote(form, safe=""), quote(form), quote_plus(form)}:
                encoded = encoded.lower()
                labels.setdefault(encoded, "urlencoded")
                urlenc.add(tuple(re.escape(c) for c in encoded))
            for offset in range(3):
                for alphabet in (_STD_ALPHABET, _URL_ALPHABET):
                    atoms, fixed = _b64_atoms(data, offset, alphabet)
                    if offset == 0 or len(fixed) >= _MIN_FIXED_B64:
                        b64.add(tuple(atoms))
                        anchors.add(fixed[:_B64_ANCHOR_LEN])
    return _Needles(
        raw_re=_LazyRegex(
            lambda: re.compile(
                _BEFORE + "(?:" + _trie_pattern(tuple(map(re.escape, k)) for k in raw_keys) + ")" + _AFTER,
                re.IGNORECASE,
            )
        ),
        ci_re=_LazyRegex(
            lambda: re.compile(
                _trie_pattern(hexes) + "|" + _BEFORE + "(?:" + _trie_pattern(urlenc) + ")" + _AFTER,
                re.IGNORECASE,
            )
        ),
        b64_re=_LazyRegex(lambda: re.compile(_trie_pattern(b64))),
        raw_keys=tuple(raw_keys) if all(k.isascii() for k in raw_keys) else None,
        hex_keys=tuple(k for k, label in labels.items() if label != "urlencoded"),
        pct_keys=tuple(k for k, label in labels.items() if label == "urlencoded"),
        b64_anchors=tuple(sorted(anchors)),
        given=frozenset(addresses),
        lowered=frozenset(a.lower() for a in addresses),
        ci_labels=labels,
    )


class IdentityMatcher:
    """Finds any of a message's recipient addresses in URLs.

    Recipients that do not look like addresses are ignored; duplicates count once. A matcher without
    recipients is falsy and finds nothing, at no cost.
    """

    __slots__ = ("_cache", "_count", "_needles")

    def __init__(self, recipients: Iterable[str]) -> None:
        addresses: dict[str, None] = {}
        ignored = 0
        for item in recipients:
            if not isinstance(item, str):
                ignored += 1
                continue
            address = item.strip().strip("<>").strip()
            # A lone surrogate (from undecodable header bytes) has no UTF-8 form to encode or digest.
            if _looks_like_address(address) and _encodable(address):
                addresses[address] = None
            elif address:
                ignored += 1
        if ignored:
            # Count only: addresses are personal data and stay out of logs.
            logger.debug("ignored %d recipient entries that are not addresses", ignored)
        self._count = len(addresses)
        self._needles = _compile(tuple(sorted(addresses))) if addresses else None
        self._cache: dict[str, tuple[IdentityHit, ...]] = {}

    def __bool__(self) -> bool:
        return self._needles is not None

    def __repr__(self) -> str:
        return f"IdentityMatcher(<{self._count} recipients>)"

    def find(self, url: str) -> list[IdentityHit]:
        """Every (encoding, location, param) under which a recipient's address appears in `url`, in
        URL order; [] when none. Never raises."""
        needles = self._needles
        if needles is None or not isinstance(url, str) or not url:
            return []
        cached = self._cache.get(url)
        if cached is not None:
            return list(cached)
        hits = self._search(needles, url)
        if len(url) <= _CACHE_MAX_URL:
            if len(self._cache) >= _CACHE_SIZE:
                self._cache.clear()
            self._cache[url] = tuple(hits)
        return hits

    def find_uncached(self, url: str) -> list[IdentityHit]:
        """``find`` without its per-URL cache, for a caller that keeps its own answers per URL (the
        classifier: a second cache in front of the same URLs would only cost a look-up and a store)."""
        needles = self._needles
        if needles is None or not isinstance(url, str) or not url:
            return []
        return self._search(needles, url)

    def _search(self, needles: _Needles, url: str) -> list[IdentityHit]:
        # Fast path: the whole URL, as is and decoded, in a few scans. Decoding the whole URL finds
        # everything decoding each part would, since percent-decoding never joins text across "/",
        # "?", "&" or "#".
        if not needles.any_match(url) and (
            "%" not in url or not any(needles.any_match(text) for text in _decode_levels(url)[1:])
        ):
            return []
        parts = _split_url(url)
        components: list[tuple[str, str | None, str]] = []
        if parts.host:
            components.append(("host", None, parts.host))
        if parts.path:
            components.append(("path", None, parts.path))
        if parts.query:
            for name, value, has_eq in _query_pairs(parts.query):
                # The whole pair: an address can also be a bare key ("?alice@x.org").
                components.append(("query", name, name + "=" + value if has_eq else name))
        if parts.fragment:
            components.append(("fragment", None, parts.fragment))
        hits: list[IdentityHit] = []
        seen: set[tuple[str, str, str | None]] = set()
        for location, param, text in components:
            for encoding in self._encodings_in(needles, text):
                key = (encoding, location, param)
                if key not in seen:
                    seen.add(key)
                    hits.append(IdentityHit(encoding=encoding, location=location, param=param))
        return hits

    @staticmethod
    def _encodings_in(needles: _Needles, text: str) -> list[str]:
        found: list[str] = []
        previous_plain = 0
        for level, candidate in enumerate(_decode_levels(text)):
            plain = 0
            for m in needles.raw_matches(candidate):
                plain += 1
                if level == 0:
                    found.append(_plain_label(needles, m.group()))
            # A plain address that only appears after decoding was written percent-encoded
            # (partially, or in a form our precomputed quote() needles do not cover, e.g. "%2B" kept
            # as "+").
            if level > 0 and plain > previous_plain:
                found.append("urlencoded")
            previous_plain = plain
            for m in needles.ci_matches(candidate):
                label = needles.ci_labels.get(m.group().lower())
                if label is not None:
                    found.append(label)
            for m in needles.b64_matches(candidate):
                token = m.group()
                # Identical in both alphabets unless it holds one of the four differing characters.
                found.append("base64url" if "-" in token or "_" in token else "base64")
        return found


def _plain_label(needles: _Needles, text: str) -> str:
    if text in needles.given:
        return "raw"
    if text in needles.lowered:
        return "lower"
    return "raw"  # another capitalisation of the same address


def recipients_from_headers(msg: Message, extra: Iterable[str] = ()) -> tuple[str, ...]:
    """The lower-cased, deduplicated addresses in To, Cc, Delivered-To and X-Original-To, then in
    `extra` (e.g. the IMAP login name). Malformed headers are skipped, never raised; entries that
    do not look like addresses are dropped."""
    values: list[str] = []
    for header in _RECIPIENT_HEADERS:
        try:
            found = msg.get_all(header) or []
            values.extend(str(v) for v in found)
        except Exception:  # any header-parsing failure just means "no usable value here"
            logger.debug("unreadable %s header skipped", header)
    for item in extra:
        if isinstance(item, str):
            values.append(item)
    out: dict[str, None] = {}
    for value in values:
        try:
            pairs = email.utils.getaddresses([value])
        except Exception:  # getaddresses has raised on hostile input in past releases
            logger.debug("unparsable address header value skipped")
            continue
        for _name, address in pairs:
            address = address.strip().lower()
            if _looks_like_address(address):
                out[address] = None
    return tuple(out)
