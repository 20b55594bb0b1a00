"""User-supplied tracker lists: Adblock Plus filter syntax and Disconnect's services JSON.

These lists are never bundled: EasyPrivacy and Disconnect carry licences (GPL / CC BY-SA, CC BY-NC-SA) that
mailproxy cannot ship under (trackers.md section 3), so users point us at their own copies.

Both list kinds answer two questions:
- ``match(url)``: does this absolute http(s) URL hit a blocking rule that no exception cancels?
- ``match_host(host)``: is every URL on this host blocked (for HTTPS CONNECT, where only the host is known)?

The URL helpers ``split_url`` and ``host_suffixes`` live here, not in ``trackers``, because ``trackers``
imports this module and both need the same normalisation.

Adblock Plus semantics, as far as a URL alone allows (a mail client has no "page", so):
- every load counts as third-party and as an image: ``$third-party`` and ``$image`` rules apply,
  ``$~third-party`` / ``$1p`` and rules only for scripts, XHR, documents, popups never apply;
- ``$domain=`` with any positive entry restricts the rule to pages on those sites, which do not exist here,
  so the rule is skipped; a ``$domain=`` with only negated entries applies everywhere;
- options we cannot evaluate (``csp=``, ``redirect=``, ``removeparam``, unknown ones) skip the rule, so a
  list never blocks more than it says.

Matching is case-insensitive: URLs are lower-cased once, rules are lower-cased at load.
"""

from __future__ import annotations

import json
import logging
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar
from urllib.parse import unquote

from mailproxy.errors import FilterListError

logger = logging.getLogger(__name__)

DEFAULT_DISCONNECT_CATEGORIES: tuple[str, ...] = ("Email", "EmailAggressive")

# Longer keys are matched on their first MAX_KEY_CHARS characters: every pattern we or a list author write
# looks at the host and the start of the path, and a cap bounds the regex work a hostile sender can cause.
MAX_KEY_CHARS = 4096


# ------------------------------------------------------------------------------------------------
# URL normalisation


@dataclass(frozen=True, slots=True)
class SplitURL:
    """A lower-cased absolute http(s) URL, split once so every matcher reuses the parts."""

    scheme: str
    host: str  # no userinfo, no port, no trailing dot, IDNA-encoded
    port: str  # "" when absent
    path: str  # "/" at least
    query: str  # without "?"; "" when absent
    key: str  # host + path + ("?" + query): what bundled patterns are written against
    url: str  # scheme://host[:port]path[?query]: what Adblock Plus rules are written against


_URL_RE = re.compile(r"([a-z][a-z0-9+.-]*):/*([^/?#]*)([^?#]*)(?:\?([^#]*))?")
_HOST_RE = re.compile(r"[a-z0-9_-]+(?:\.[a-z0-9_-]+)*|\[[0-9a-f:.]+\]")
# The WHATWG URL parser drops these anywhere in a URL; a sender can hide a pattern behind them.
_URL_STRIP = str.maketrans("", "", "\t\n\r")


# The common case: http(s), optional userinfo, an ASCII host, optional port. Only the authority goes through
# a regex (fullmatch up to the first "/", "?" or "#"): the rest of the URL is cut with str.find, which scans
# long paths and queries many times faster than a regex character class does.
_ORIGINS: dict[str, tuple[str, str]] = {}  # "scheme://authority" -> (host, port), for the common case
_ORIGINS_MAX = 4096
_FAST_AUTHORITY_RE = re.compile(r"(?:[^/?#]*@)?([a-z0-9_-]+(?:\.[a-z0-9_-]+)*)\.?(?::(\d*))?", re.DOTALL)


def split_url(url: str) -> SplitURL | None:
    """Normalise an absolute http(s) URL; None for anything else (relative, data:, cid:, garbage)."""
    parts = split_parts(url) if isinstance(url, str) else None
    if parts is None:
        return None
    scheme, host, port, path, query = parts
    tail = path + "?" + query if query else path
    netloc = host + ":" + port if port else host
    return SplitURL(scheme, host, port, path, query, host + tail, scheme + "://" + netloc + tail)


def split_parts(url: str) -> tuple[str, str, str, str, str] | None:
    """``split_url``'s scheme, host, port, path and query without building a SplitURL (the tracker
    database needs only host and key for most URLs)."""
    u = url.strip().lower()
    if "\t" in u or "\n" in u or "\r" in u:
        u = u.translate(_URL_STRIP)
    if "\\" in u:
        # Browsers read a backslash as a slash in special (http/https) URLs.
        u = u.replace("\\", "/")
    if u.startswith("https://"):
        scheme, start = "https", 8
    elif u.startswith("http://"):
        scheme, start = "http", 7
    else:
        return _split_slow(u)
    # The authority ends at the first "/", "?" or "#" (none of which it may contain), or at the end.
    end = u.find("/", start)
    if end < 0:
        end = len(u)
    i = u.find("?", start, end)
    if i >= 0:
        end = i
    i = u.find("#", start, end)
    if i >= 0:
        end = i
    # URLs share their scheme and authority far more often than anything else (every image of a CDN):
    # what the regex makes of one is remembered.
    origin = u[:end]
    known = _ORIGINS.get(origin)
    if known is None:
        m = _FAST_AUTHORITY_RE.fullmatch(u, start, end)
        if m is None:
            return _split_slow(u)
        if len(_ORIGINS) >= _ORIGINS_MAX:
            _ORIGINS.clear()
        known = _ORIGINS[origin] = (m.group(1), m.group(2) or "")
    host, port = known
    hash_at = u.find("#", end)
    stop = hash_at if hash_at >= 0 else len(u)
    q_at = u.find("?", end, stop)
    if q_at < 0:
        return scheme, host, port, u[end:stop] or "/", ""
    return scheme, host, port, u[end:q_at] or "/", u[q_at + 1 : stop]


def _split_slow(u: str) -> tuple[str, str, str, str, str] | None:
    """IPv6 literals, percent-encoded or non-ASCII hosts, and everything to reject."""
    m = _URL_RE.match(u)
    if m is None:
        return None
    scheme = m.group(1)
    if scheme != "http" and scheme != "https":
        return None
    if not u.startswith("//", len(scheme) + 1):
        return None  # "http:foo" is relative to a base we do not have
    authority = m.group(2)
    if "@" in authority:
        authority = authority.rpartition("@")[2]
    host, port = authority, ""
    if host.startswith("["):
        end = host.find("]")
        if end < 0:
            return None
        host, rest = host[: end + 1], host[end + 1 :]
        port = rest[1:] if rest.startswith(":") else ""
    elif ":" in host:
        host, _, port = host.partition(":")
    if "%" in host:
        host = unquote(host)
    host = host.rstrip(".")
    if not host.isascii():
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError:
            return None
    if not host or _HOST_RE.fullmatch(host) is None:
        return None
    if port and not port.isdigit():
        return None
    return scheme, host, port, m.group(3) or "/", m.group(4) or ""


V = TypeVar("V")


def host_suffixes(host: str) -> Iterator[str]:
    """``a.b.example.com``, ``b.example.com``, ``example.com``, ``com``: the keys of a suffix index."""
    yield host
    i = host.find(".")
    while i >= 0:
        yield host[i + 1 :]
        i = host.find(".", i + 1)


def by_suffix(table: Mapping[str, V], host: str) -> V | None:
    """The value of the first of ``host_suffixes(host)`` that ``table`` holds (values are never None)."""
    found = table.get(host)
    i = host.find(".")
    while found is None and i >= 0:  # host_suffixes() inlined: this runs for every new host
        found = table.get(host[i + 1 :])
        i = host.find(".", i + 1)
    return found


def normalize_host(host: str) -> str | None:
    """Lower-case a bare host name (as seen in CONNECT); None if it is not one."""
    if not isinstance(host, str):
        return None
    h = host.strip().lower().rstrip(".")
    if h.startswith("[") and "]" in h:
        h = h[: h.index("]") + 1]
    elif h.count(":") == 1:
        h = h.partition(":")[0]
    if not h.isascii():
        try:
            h = h.encode("idna").decode("ascii")
        except UnicodeError:
            return None
    if not h or _HOST_RE.fullmatch(h) is None:
        return None
    return h


# ------------------------------------------------------------------------------------------------
# Combined regexes

T = TypeVar("T")


class Alternation(Generic[T]):
    """Patterns combined into one regex; on a hit, the first pattern matching where it matched wins.

    Used by the bundled dataset (trackers) and by Adblock rule buckets. The branches carry no capturing
    groups on purpose: re skips a branch whose first opcode is a literal that differs from the current
    character without entering it, which a group in front would defeat (about 8x slower on a miss).
    Misses are the common case, so identifying the branch is left to the rare hit, where the individual
    patterns are tried at the match position in order: the same answer re's leftmost-first rule gave.
    """

    __slots__ = ("rx", "_each", "_values")

    def __init__(self, prefix: str, items: Sequence[tuple[str, T]]) -> None:
        alternatives = "|".join(f"(?:{p})" for p, _ in items)
        self.rx = re.compile(f"{prefix}(?P<alt>{alternatives})")
        self._each = tuple(re.compile(p) for p, _ in items)
        self._values = tuple(v for _, v in items)

    def which(self, key: str, m: re.Match[str]) -> T:
        pos = m.start("alt")
        for rx, value in zip(self._each, self._values, strict=True):
            if rx.match(key, pos) is not None:
                return value
        raise AssertionError("combined regex matched but no alternative does")  # pragma: no cover

    def search(self, key: str, pos: int) -> T | None:
        m = self.rx.search(key, pos)
        return None if m is None else self.which(key, m)

    def match(self, key: str, pos: int = 0) -> T | None:
        m = self.rx.match(key, pos)
        return None if m is None else self.which(key, m)


# ------------------------------------------------------------------------------------------------
# Hits


@dataclass(frozen=True, slots=True)
class FilterHit:
    """One rule of a user list that matched."""

    list_name: str  # the list file's stem, e.g. "easyprivacy"
    rule: str  # the rule as written (or the listed domain)
    origin: str  # "file:line" (Adblock) or "file: category" (Disconnect)
    vendor: str | None = None  # Disconnect's entity name; Adblock rules name none
    host_level: bool = False  # the rule covers the whole host (a domain anchor or a listed domain)


def _read_text(path: Path) -> str:
    """Read a list as UTF-8; map every failure to FilterListError naming the file (and line)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise FilterListError(f"{path}: cannot read filter list: {exc.strerror or exc}") from exc
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise FilterListError(f"{path}: line {line}: not UTF-8 text") from exc
    nul = text.find("\0")
    if nul >= 0:
        raise FilterListError(f"{path}: line {text.count(chr(10), 0, nul) + 1}: binary data (NUL byte)")
    return text


# ------------------------------------------------------------------------------------------------
# Adblock Plus

# Options a rule may carry and still be evaluated from the URL alone.
_EMAIL_TYPES = frozenset({"image", "media", "font", "stylesheet", "object", "subdocument", "ping", "other"})
_OTHER_TYPES = frozenset(
    {
        "script",
        "xmlhttprequest",
        "websocket",
        "webrtc",
        "document",
        "popup",
        "elemhide",
        "generichide",
        "genericblock",
        "specifichide",
        "inline-script",
        "inline-font",
    }
)
_TYPE_ALIASES = {
    "css": "stylesheet",
    "frame": "subdocument",
    "xhr": "xmlhttprequest",
    "object-subrequest": "object",
    "beacon": "ping",
    "doc": "document",
    "ehide": "elemhide",
    "ghide": "generichide",
    "shide": "specifichide",
}
_IGNORED_OPTIONS = frozenset({"important", "all", "third-party", "3p", "~first-party", "~1p", "~match-case"})
_FIRST_PARTY = frozenset({"~third-party", "~3p", "first-party", "1p", "strict1p", "strict-first-party"})
_PAGE_EXCEPTIONS = frozenset({"document", "elemhide", "generichide", "genericblock", "specifichide"})

_OPTIONS_RE = re.compile(r"~?[a-z0-9_-]+(?:=[^,]*)?(?:,~?[a-z0-9_-]+(?:=[^,]*)?)*")
_COSMETIC_RE = re.compile(r"#@?[$?%]{0,2}#|#\+js\(")
_HOSTS_LINE_RE = re.compile(r"(?:0\.0\.0\.0|127\.0\.0\.1|::1?)\s+([a-z0-9_.-]+)\s*(?:#.*)?")
_SIMPLE_HOST_RE = re.compile(r"[a-z0-9_-]+(?:\.[a-z0-9_-]+)*")
_PATTERN_TOKEN_RE = re.compile(r"[a-z0-9]{2,}")
_URL_TOKEN_RE = re.compile(r"[a-z0-9]{2,}")
# ABP's separator "^": anything but a letter, digit or one of _ - . %, or the end of the address.
_SEP = r"(?:[^a-z0-9_.%-]|$)"
# Tokens found in most URLs: indexing a rule under one would test it against nearly every URL.
_COMMON_TOKENS = frozenset(
    {
        "http",
        "https",
        "www",
        "com",
        "net",
        "org",
        "de",
        "co",
        "uk",
        "io",
        "html",
        "php",
        "gif",
        "png",
        "jpg",
        "js",
        "css",
        "img",
        "images",
        "static",
        "cdn",
    }
)


def _options_apply(options: str, *, exception: bool) -> tuple[bool, str]:
    """Whether a rule with these options can hit a mail client's load; the reason when not."""
    positive: set[str] = set()
    negative: set[str] = set()
    for raw in options.split(","):
        opt = raw.strip()
        if not opt:
            continue
        name, _, value = opt.partition("=")
        if name in ("domain", "from"):
            entries = [e for e in value.split("|") if e]
            if not entries:
                return False, "empty domain="
            if any(not e.startswith("~") for e in entries):
                return False, "domain= restricted to sites"  # only applies on pages we never have
            continue
        if name in _IGNORED_OPTIONS:
            continue
        if name in _FIRST_PARTY:
            return False, "first-party only"
        if name == "match-case":
            return False, "match-case"  # we lower-case URLs, so we cannot honour it
        negated = name.startswith("~")
        base = _TYPE_ALIASES.get(name.lstrip("~"), name.lstrip("~"))
        if base in _EMAIL_TYPES or base in _OTHER_TYPES:
            (negative if negated else positive).add(base)
            continue
        return False, f"unsupported option {name!r}"
    if exception and positive & _PAGE_EXCEPTIONS:
        return False, "page-level exception"
    if "image" in negative:
        return False, "not for images"
    if positive and not positive & _EMAIL_TYPES:
        return False, "only for resource types a mail client does not load"
    return True, ""


def _pattern_to_regex(pattern: str) -> str:
    """Translate ABP wildcards (``*``, ``^``) in a lower-cased pattern body into regex source."""
    out: list[str] = []
    for ch in pattern:
        if ch == "*":
            if not out or out[-1] != ".*":
                out.append(".*")
        elif ch == "^":
            out.append(_SEP)
        else:
            out.append(re.escape(ch))
    return "".join(out)


def _safe_tokens(body: str, *, start_bounded: bool, end_bounded: bool) -> list[str]:
    """Alphanumeric runs of a pattern that must appear as whole tokens in any URL the rule matches.

    A run is whole when a literal non-alphanumeric character (or an anchor) stands on both sides; next to
    ``*`` or at an unanchored end, the URL may continue the run with more letters, so it is no index key.
    """
    tokens: list[str] = []
    for m in _PATTERN_TOKEN_RE.finditer(body):
        s, e = m.start(), m.end()
        before = body[s - 1] if s > 0 else ""
        after = body[e] if e < len(body) else ""
        ok_before = (before != "" and before != "*" and not before.isalnum()) or (s == 0 and start_bounded)
        ok_after = (after != "" and after != "*" and not after.isalnum()) or (e == len(body) and end_bounded)
        if ok_before and ok_after:
            tokens.append(m.group())
    return tokens


@dataclass(frozen=True, slots=True)
class _ParsedRule:
    text: str
    line: int
    exception: bool
    host: str | None  # simple "||host" anchor, indexed by host suffix
    remainder: str | None  # regex source matched right after the host; None = any URL on the host
    regex: str | None  # regex source over the whole URL (token-indexed or fallback)
    user_regex: re.Pattern[str] | None  # a /regex/ rule
    tokens: tuple[str, ...]


class _RuleIndex:
    """Block (or exception) rules of one list, indexed so a URL is tested against few of them.

    - ``||host^`` and ``||host/path`` rules go into a dict keyed by host; a URL probes it with each suffix
      of its host.
    - Other rules are filed under their rarest whole token; a URL probes the index with its own tokens.
    - Rules without a usable token, and /regex/ rules, are tested on every URL (a short list in practice).
    Per-bucket regexes are combined and compiled on first use, so loading a big list stays cheap.
    """

    __slots__ = (
        "_by_host_any",
        "_by_host_rest",
        "_host_rx",
        "_by_token",
        "_token_rx",
        "_fallback",
        "_fallback_rx",
        "_user_regex",
        "rules",
    )

    def __init__(self, rules: Sequence[_ParsedRule]) -> None:
        self.rules = tuple(rules)
        self._by_host_any: dict[str, int] = {}
        self._by_host_rest: dict[str, list[int]] = {}
        self._host_rx: dict[str, Alternation[int]] = {}
        self._by_token: dict[str, list[int]] = {}
        self._token_rx: dict[str, Alternation[int]] = {}
        self._fallback: list[int] = []
        self._fallback_rx: Alternation[int] | None = None
        self._user_regex: list[tuple[re.Pattern[str], int]] = []
        freq: Counter[str] = Counter()
        for rule in self.rules:
            freq.update(set(rule.tokens))
        for i, rule in enumerate(self.rules):
            if rule.user_regex is not None:
                self._user_regex.append((rule.user_regex, i))
            elif rule.host is not None:
                if rule.remainder is None:
                    self._by_host_any.setdefault(rule.host, i)
                else:
                    self._by_host_rest.setdefault(rule.host, []).append(i)
            elif rule.tokens:
                # The rarest token keeps buckets small; common URL words are a last resort.
                best = min(rule.tokens, key=lambda t: (t in _COMMON_TOKENS, freq[t], -len(t)))
                self._by_token.setdefault(best, []).append(i)
            else:
                self._fallback.append(i)

    def __len__(self) -> int:
        return len(self.rules)

    def _combined(self, ids: Sequence[int], *, remainder: bool) -> Alternation[int]:
        rules = self.rules
        return Alternation("", [(str(rules[i].remainder if remainder else rules[i].regex), i) for i in ids])

    def host_rule(self, host: str) -> _ParsedRule | None:
        """A rule covering every URL of ``host`` (``||suffix^``)."""
        for suffix in host_suffixes(host):
            i = self._by_host_any.get(suffix)
            if i is not None:
                return self.rules[i]
        return None

    def anchors_host(self, host: str) -> bool:
        """Whether any rule is anchored on ``host`` or one of its parent domains."""
        for suffix in host_suffixes(host):
            if suffix in self._by_host_any or suffix in self._by_host_rest:
                return True
        return False

    def match(self, split: SplitURL) -> _ParsedRule | None:
        url = split.url if len(split.url) <= MAX_KEY_CHARS else split.url[:MAX_KEY_CHARS]
        host = split.host
        hit = self.host_rule(host)
        if hit is not None:
            return hit
        if self._by_host_rest:
            host_end = len(split.scheme) + 3 + len(host)
            for suffix in host_suffixes(host):
                ids = self._by_host_rest.get(suffix)
                if ids is None:
                    continue
                rx = self._host_rx.get(suffix)
                if rx is None:
                    rx = self._host_rx[suffix] = self._combined(ids, remainder=True)
                found = rx.match(url, host_end)
                if found is not None:
                    return self.rules[found]
        if self._by_token:
            for token in set(_URL_TOKEN_RE.findall(url)):
                ids = self._by_token.get(token)
                if ids is None:
                    continue
                rx = self._token_rx.get(token)
                if rx is None:
                    rx = self._token_rx[token] = self._combined(ids, remainder=False)
                found = rx.search(url, 0)
                if found is not None:
                    return self.rules[found]
        if self._fallback:
            if self._fallback_rx is None:
                self._fallback_rx = self._combined(self._fallback, remainder=False)
            found = self._fallback_rx.search(url, 0)
            if found is not None:
                return self.rules[found]
        for user_rx, i in self._user_regex:
            if user_rx.search(url) is not None:
                return self.rules[i]
        return None


class AdblockList:
    """A compiled Adblock Plus / EasyPrivacy-style list. Build it with ``from_path`` or ``from_lines``."""

    __slots__ = ("name", "origin", "_block", "_allow", "skipped")

    def __init__(self, name: str, origin: str, rules: Sequence[_ParsedRule], skipped: int) -> None:
        self.name = name
        self.origin = origin
        self._block = _RuleIndex([r for r in rules if not r.exception])
        self._allow = _RuleIndex([r for r in rules if r.exception])
        self.skipped = skipped  # rules we could not evaluate (see the module docstring)

    @classmethod
    def from_path(cls, path: Path) -> AdblockList:
        """Parse a list file; FilterListError if it cannot be read or is not an Adblock list at all."""
        path = Path(path)
        return cls.from_lines(_read_text(path).splitlines(), name=path.stem, origin=str(path))

    @classmethod
    def from_lines(cls, lines: Iterable[str], *, name: str, origin: str = "<memory>") -> AdblockList:
        rules: list[_ParsedRule] = []
        skipped = 0
        seen_rule = False
        for lineno, raw in enumerate(lines, start=1):
            line = raw.strip()
            if not line or line.startswith("!") or line.startswith("[") and line.endswith("]"):
                continue
            if not seen_rule and line[0] in "{<":
                # A saved error page or a JSON file passed by mistake would otherwise become odd rules.
                what = "JSON" if line[0] == "{" else "HTML"
                raise FilterListError(f"{origin}: line {lineno}: looks like {what}, not an Adblock Plus list")
            seen_rule = True
            try:
                rule = _parse_rule(line, lineno)
            except _SkipRule as skip:
                skipped += 1
                logger.debug("%s:%d: skipped %r: %s", origin, lineno, line, skip)
                continue
            if rule is not None:
                rules.append(rule)
        logger.info("filter list %s: %d rules, %d skipped", origin, len(rules), skipped)
        return cls(name, origin, rules, skipped)

    def __len__(self) -> int:
        return len(self._block) + len(self._allow)

    def _hit(self, rule: _ParsedRule) -> FilterHit:
        return FilterHit(
            list_name=self.name,
            rule=rule.text,
            origin=f"{self.origin}:{rule.line}",
            host_level=rule.host is not None and rule.remainder is None,
        )

    def match(self, url: str | SplitURL) -> FilterHit | None:
        """The blocking rule this URL hits unless an ``@@`` exception covers it; None for non-http(s)."""
        split = url if isinstance(url, SplitURL) else split_url(url)
        if split is None:
            return None
        rule = self._block.match(split)
        if rule is None or self._allow.match(split) is not None:
            return None
        return self._hit(rule)

    def match_host(self, host: str) -> FilterHit | None:
        """A ``||domain^`` rule covering every URL of ``host``, unless an exception is anchored on it."""
        h = normalize_host(host)
        if h is None:
            return None
        rule = self._block.host_rule(h)
        if rule is None or self._allow.anchors_host(h):
            return None
        return self._hit(rule)


class _SkipRule(Exception):
    """A rule we cannot evaluate; counted and logged, never fatal."""


def _parse_rule(line: str, lineno: int) -> _ParsedRule | None:
    if _COSMETIC_RE.search(line):
        return None  # element hiding and scriptlets act on pages, not on requests
    text = line
    work = line
    hosts = _HOSTS_LINE_RE.fullmatch(line.lower())
    if hosts is not None:
        # Tolerate hosts-file lines, a common format for the same lists.
        work = "||" + hosts.group(1) + "^"
    exception = work.startswith("@@")
    if exception:
        work = work[2:]
    options = ""
    dollar = work.rfind("$")
    if dollar > 0 and _OPTIONS_RE.fullmatch(work.lower(), dollar + 1):
        options = work[dollar + 1 :].lower()
        work = work[:dollar]
    if options:
        ok, why = _options_apply(options, exception=exception)
        if not ok:
            raise _SkipRule(why)
    if len(work) > 2 and work.startswith("/") and work.endswith("/"):
        # Keep the regex's own case: lower-casing would turn \D into \d; match case-insensitively instead.
        try:
            rx = re.compile(_js_regex(work[1:-1]), re.IGNORECASE)
        except re.error as exc:
            logger.warning("line %d: unsupported regex rule %r: %s", lineno, text, exc)
            raise _SkipRule("bad regex") from exc
        return _ParsedRule(text, lineno, exception, None, None, None, rx, ())
    body = work.lower()
    domain_anchor = body.startswith("||")
    start_anchor = not domain_anchor and body.startswith("|")
    if domain_anchor:
        body = body[2:]
    elif start_anchor:
        body = body[1:]
    end_anchor = body.endswith("|")
    if end_anchor:
        body = body[:-1]
    if not body.strip("*^"):
        raise _SkipRule("matches every URL")
    # A "*" at an unanchored end adds nothing to a substring search, and a leading ".*" would make the
    # regex engine rescan the rest of the URL from every position.
    if not domain_anchor and not start_anchor:
        body = body.lstrip("*")
    if not end_anchor:
        body = body.rstrip("*")
    if domain_anchor and not end_anchor:
        m = _SIMPLE_HOST_RE.match(body)
        if m is not None and m.end() < len(body) and body[m.end()] in "^/":
            host = m.group()
            rest = body[m.end() :]
            remainder = None if rest.rstrip("*") == "^" else _pattern_to_regex(rest)
            return _ParsedRule(text, lineno, exception, host, remainder, None, None, ())
    regex = _pattern_to_regex(body)
    if domain_anchor:
        regex = r"^[a-z][a-z0-9+.-]*://(?:[^/?#]*\.)?" + regex
    elif start_anchor:
        regex = "^" + regex
    if end_anchor:
        regex += "$"
    tokens = _safe_tokens(body, start_bounded=domain_anchor or start_anchor, end_bounded=end_anchor)
    return _ParsedRule(text, lineno, exception, None, None, regex, None, tuple(tokens))


def _js_regex(source: str) -> str:
    """The few JavaScript regex spellings Python spells differently."""
    return source.replace("(?<", "(?P<").replace("(?P<=", "(?<=").replace("(?P<!", "(?<!")


def load_adblock(path: Path) -> AdblockList:
    """Parse an Adblock Plus list file (see ``AdblockList``)."""
    return AdblockList.from_path(path)


# ------------------------------------------------------------------------------------------------
# Disconnect


class DomainList:
    """Domains from Disconnect's services JSON, each with the entity (vendor) that owns it."""

    __slots__ = ("name", "origin", "_domains")

    def __init__(self, name: str, origin: str, domains: dict[str, FilterHit]) -> None:
        self.name = name
        self.origin = origin
        self._domains = domains

    def __len__(self) -> int:
        return len(self._domains)

    @classmethod
    def from_disconnect(
        cls, path: Path, *, categories: Sequence[str] = DEFAULT_DISCONNECT_CATEGORIES
    ) -> DomainList:
        """Parse ``{"categories": {"Email": [{"Vendor": {"https://site": ["d1.com", ...]}}], ...}}``.

        The older services.json (the category mapping at the top level, or an entity mapping straight to a
        list of domains) is read too. Only ``categories`` count (case-insensitive).
        """
        path = Path(path)
        text = _read_text(path)
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise FilterListError(f"{path}: line {exc.lineno}: invalid JSON: {exc.msg}") from exc
        return cls.from_data(data, name=path.stem, origin=str(path), categories=categories)

    @classmethod
    def from_data(
        cls,
        data: object,
        *,
        name: str,
        origin: str = "<memory>",
        categories: Sequence[str] = DEFAULT_DISCONNECT_CATEGORIES,
    ) -> DomainList:
        def fail(where: str, expected: str) -> FilterListError:
            return FilterListError(f"{origin}: {where}: expected {expected}")

        if not isinstance(data, dict):
            raise fail("top level", "a JSON object")
        cats = data.get("categories", data)
        if not isinstance(cats, dict) or not cats:
            raise fail("categories", "an object mapping category names to lists")
        wanted = {c.lower() for c in categories}
        domains: dict[str, FilterHit] = {}
        found = False
        for cat_name, entries in cats.items():
            if not isinstance(cat_name, str) or cat_name.lower() not in wanted:
                continue
            found = True
            if not isinstance(entries, list):
                raise fail(f"categories.{cat_name}", "a list of entities")
            for n, entry in enumerate(entries):
                where = f"categories.{cat_name}[{n}]"
                if not isinstance(entry, dict):
                    raise fail(where, "an object {entity: {site: [domains]}}")
                for entity, sites in entry.items():
                    for listed in _entity_domains(sites, f"{where}.{entity}", fail):
                        domain = normalize_host(listed.lstrip("*."))
                        if domain is None or "." not in domain:
                            logger.warning("%s: %s: skipped invalid domain %r", origin, where, listed)
                            continue
                        domains.setdefault(
                            domain,
                            FilterHit(name, domain, f"{origin}: {cat_name}", str(entity), True),
                        )
        if not found:
            logger.warning("%s: none of the categories %s present", origin, ", ".join(categories))
        logger.info("disconnect list %s: %d domains", origin, len(domains))
        return cls(name, origin, domains)

    def match_host(self, host: str) -> FilterHit | None:
        """The listed domain ``host`` is, or is a subdomain of."""
        h = normalize_host(host)
        if h is None:
            return None
        return self._match_normalized(h)

    def _match_normalized(self, host: str) -> FilterHit | None:
        return by_suffix(self._domains, host)

    def match(self, url: str | SplitURL) -> FilterHit | None:
        """Disconnect lists are domain-level: a URL matches when its host does."""
        split = url if isinstance(url, SplitURL) else split_url(url)
        if split is None:
            return None
        return self._match_normalized(split.host)


def _entity_domains(sites: object, where: str, fail: Callable[[str, str], FilterListError]) -> Iterator[str]:
    """Domain strings of one entity: ``{site: [domains], "dnt": "eff", ...}`` or a bare list."""
    if isinstance(sites, list):
        groups: list[list[object]] = [sites]
    elif isinstance(sites, dict):
        # Newer files add flags next to the site ("performance": "true"); only lists hold domains.
        groups = [v for v in sites.values() if isinstance(v, list)]
    else:
        raise fail(where, "an object {site: [domains]}")
    for group in groups:
        for d in group:
            if not isinstance(d, str):
                raise fail(where, "domain names as strings")
            yield d


def load_disconnect(path: Path, *, categories: Sequence[str] = DEFAULT_DISCONNECT_CATEGORIES) -> DomainList:
    """Parse a Disconnect services JSON file (see ``DomainList.from_disconnect``)."""
    return DomainList.from_disconnect(path, categories=categories)
