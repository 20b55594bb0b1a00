"""Known trackers: the bundled dataset (``data/trackers.toml``) and user filter lists behind one matcher.

``TrackerDB.match(url)`` decides, in this order (first decision wins):
1. the host is a vendor's beacon-only domain (``domains`` / ``host_patterns``)  -> "known-tracker";
2. the URL is known content (a vendor's ``content`` regex, e.g. Movable Ink ``/p/rp/``)  -> no match;
3. a vendor's open-tracking ``patterns`` match  -> "known-tracker";
4. the URL is a known spacer image  -> no match;
5. a user filter list (Adblock Plus, Disconnect) matches  -> "filter-list:<list name>";
6. a generic tracking path shape matches  -> "tracking-path" (tier medium, a weak signal).

Everything is matched on the lower-cased key ``host + path [+ "?" + query]`` (see ``trackers.toml``'s header
for the pattern language). Speed matters (every URL of every message goes through here), so:
- beacon domains sit in a dict probed with each suffix of the host (a handful of look-ups);
- vendor patterns are compiled into a few combined regexes: host-anchored ones bucketed by first letter,
  and path ones behind one shared leading "/" so the regex engine skips from slash to slash; which vendor
  matched is worked out only on a hit (see ``filterlists.Alternation``);
- the path patterns of all the steps are searched together first: most URLs match none of them, and then
  no step searches its own;
- results are memoised per URL (logos and spacers recur across messages).
"""

from __future__ import annotations

import functools
import logging
import re
import tomllib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Generic, TypeVar

from mailproxy.detect.filterlists import (
    DEFAULT_DISCONNECT_CATEGORIES,
    MAX_KEY_CHARS,
    AdblockList,
    Alternation,
    DomainList,
    FilterHit,
    SplitURL,
    by_suffix,
    normalize_host,
    split_parts,
    split_url,
)
from mailproxy.errors import ConfigError
from mailproxy.model import Tier

logger = logging.getLogger(__name__)

REASON_KNOWN = "known-tracker"
REASON_GENERIC = "tracking-path"
REASON_FILTER_PREFIX = "filter-list:"

_BUNDLED = "trackers.toml"
_CACHE_SIZE = 8192
_CACHE_MAX_URL = 2048  # longer URLs are nearly always unique (tokens); caching them only costs memory


@dataclass(frozen=True, slots=True)
class TrackerMatch:
    """Why a URL (or host) is a known tracker."""

    vendor: str | None  # display name; None for generic shapes and Adblock rules
    reason: str  # "known-tracker", "tracking-path" or "filter-list:<list name>"
    tier: Tier
    source: str  # where the knowledge comes from (dataset note, or "file:line: rule")


T = TypeVar("T")


class _PatternSet(Generic[T]):
    """Regexes over the key (see the module docstring); ``find`` returns the payload of the one that matched.

    Patterns starting with "/" may match at any "/" after ``path_start``: they are combined behind one
    factored "/", so re's literal-prefix scan jumps from slash to slash. Other patterns are anchored at a
    host label boundary (or, with ``anywhere``, searched in the path and query). Host-anchored patterns are
    bucketed by their first character, so at each label only the few starting with that label's first
    letter are tried; and of those only the buckets whose literal prefixes agree with the rest of the host,
    which depends on the host alone and is remembered per host (for most hosts no bucket is left).
    """

    __slots__ = (
        "_by_char",
        "_host",
        "_path",
        "_any",
        "_prefixes",
        "_candidates",
        "_host_prefixes",
        "_heads",
        "_host_heads",
        "any_gate",
        "path_patterns",
    )

    def __init__(self, entries: Sequence[tuple[str, T]], *, anywhere: bool = False) -> None:
        slash = [(p, v) for p, v in entries if p.startswith("/")]
        rest = [(p, v) for p, v in entries if not p.startswith("/")]
        # "/" factored out of the combined regex; each alternative still starts with its own "/".
        self._path = Alternation("/", [(p[1:], v) for p, v in slash]) if slash else None
        self.path_patterns = tuple(p for p, _ in slash)
        self._any: Alternation[T] | None = None
        self._by_char: dict[str, Alternation[T]] = {}
        # Per bucket, a literal prefix of each of its patterns; None when one pattern has none.
        self._prefixes: dict[str, tuple[str, ...] | None] = {}
        # Per bucket, every start (proper or not, "" too) of those prefixes: "a prefix starts with the rest of
        # the host" is then one set look-up instead of a loop over the prefixes (see _agrees).
        self._heads: dict[str, frozenset[str]] = {}
        self._candidates: dict[str, tuple[_Candidate[T], ...]] = {}
        self._host: Alternation[T] | None = None
        self._host_prefixes: tuple[str, ...] | None = None
        self._host_heads: frozenset[str] = frozenset()
        # A literal prefix of each "anywhere" pattern: a match needs one of them in the key, and a few
        # substring tests cost half the regex search that most keys fail. () without such patterns (nothing
        # can match), None when one pattern has no literal prefix (only the search can tell).
        self.any_gate: tuple[str, ...] | None = ()
        if anywhere:
            if rest:
                self._any = Alternation("", rest)
                self.any_gate = _literal_prefixes(p for p, _ in rest)
            return
        buckets: dict[str, list[tuple[str, T]]] = {}
        other: list[tuple[str, T]] = []
        for p, v in rest:
            if p[0].isalnum() or p[0] == "-":
                buckets.setdefault(p[0], []).append((p, v))
            else:
                other.append((p, v))
        self._by_char = {char: Alternation("", items) for char, items in buckets.items()}
        self._prefixes = {char: _literal_prefixes(p for p, _ in items) for char, items in buckets.items()}
        self._heads = {char: _heads(ps) for char, ps in self._prefixes.items() if ps is not None}
        # The lazy label prefix tries the start of the host, then after each dot: "anchored at a label".
        self._host = Alternation(r"(?:[^/.]*\.)*?", other) if other else None
        # Literal prefixes of these patterns, one of which a label of the host must start with (or the host
        # end with the start of one); None when one pattern has none.
        leading = [_leading_prefixes(p) for p, _ in other]
        self._host_prefixes = tuple(p for ps in leading for p in ps) if all(leading) else None
        if self._host_prefixes is not None:
            self._host_heads = _heads(self._host_prefixes)

    def find(
        self,
        key: str,
        path_start: int,
        paths: bool = True,
        candidates: tuple[_Candidate[T], ...] | None = None,
    ) -> T | None:
        """Host-anchored patterns first (more specific), then the leftmost path pattern. ``paths=False``
        says that no pattern starting with "/" matches after ``path_start`` (the caller has searched);
        ``candidates``, when given, are ``self.candidates(host)`` for the key's host."""
        found = self.find_host(key, path_start, candidates) if candidates is None or candidates else None
        if found is None and paths and self._path is not None:
            found = self._path.search(key, path_start)
        if found is None and self._any is not None:
            gate = self.any_gate
            if gate is None or _holds_any(key, gate):
                found = self._any.search(key, path_start)
        return found

    def host_plan(self, host: str) -> tuple[_Candidate[T], ...] | None:
        """``candidates(host)``, or None when keys with this host can match only through a path pattern."""
        candidates = self.candidates(host)
        return None if not candidates and self._any is None else candidates

    def candidates(self, host: str) -> tuple[_Candidate[T], ...]:
        """The host-anchored buckets worth trying on keys with this host (see ``_host_candidates``)."""
        if not self._by_char and self._host is None:
            return ()
        candidates = self._candidates.get(host)
        return self._host_candidates(host) if candidates is None else candidates

    def find_host(
        self, key: str, host_end: int, candidates: tuple[_Candidate[T], ...] | None = None
    ) -> T | None:
        if candidates is None:
            candidates = self.candidates(key[:host_end])
        for i, bucket, prefixes in candidates:
            if prefixes is None or key.startswith(prefixes, i):
                found = bucket.match(key, i)
                if found is not None:
                    return found
        return None

    def _host_candidates(self, host: str) -> tuple[_Candidate[T], ...]:
        """The (label start, bucket, prefixes) that may match a key with this host, in label order; last, the
        patterns that could not be bucketed, tried from the start of the key (their regex finds the label)."""
        found: list[_Candidate[T]] = []
        i = 0
        while i < len(host):
            char = host[i]
            bucket = self._by_char.get(char)
            if bucket is not None:
                prefixes = self._prefixes[char]
                if prefixes is None or _agrees(host[i:], prefixes, self._heads[char]):
                    found.append((i, bucket, prefixes))
            i = host.find(".", i) + 1
            if i == 0:
                break
        if self._host is not None and self._host_may_match(host):
            found.append((0, self._host, None))
        if len(self._candidates) >= _HOST_CACHE_SIZE:
            self._candidates.clear()
        candidates = self._candidates[host] = tuple(found)
        return candidates

    def _host_may_match(self, host: str) -> bool:
        """Whether the unbucketed patterns may match a key with this host: they start at a label (after a
        dot, maybe the host's last character), with one of their literal prefixes."""
        prefixes = self._host_prefixes
        if prefixes is None:
            return True
        heads = self._host_heads
        i = 0
        while True:
            if _agrees(host[i:], prefixes, heads):
                return True
            i = host.find(".", i) + 1
            if i == 0:
                return False


_Candidate = tuple[int, Alternation[T], tuple[str, ...] | None]


def _heads(prefixes: Iterable[str]) -> frozenset[str]:
    """Every start of every prefix, "" and the prefixes themselves included."""
    return frozenset(p[:k] for p in prefixes for k in range(len(p) + 1))


def _agrees(rest: str, prefixes: tuple[str, ...], heads: frozenset[str]) -> bool:
    """Whether a key whose host ends with `rest` may start, where `rest` starts, with one of `prefixes`: a
    prefix either ends inside the host (`rest` starts with it) or runs on into the path (it starts with
    `rest`, that is `rest` is one of `heads`, the starts of the prefixes)."""
    return rest.startswith(prefixes) or rest in heads


def _holds_any(text: str, needles: tuple[str, ...]) -> bool:
    # A plain loop: any() over a generator costs several times as much for a handful of needles.
    for needle in needles:  # noqa: SIM110
        if needle in text:
            return True
    return False


_HOST_CACHE_SIZE = 4096
# (beacon-domain hit, content candidates, vendor pattern candidates, spacer candidates): see _host_plan.
_HostPlan = tuple[
    TrackerMatch | None,
    tuple[_Candidate[bool], ...] | None,
    tuple[_Candidate[TrackerMatch], ...] | None,
    tuple[_Candidate[bool], ...] | None,
]
_REGEX_SPECIAL = frozenset(".^$*+?{}[]()|\\")


def _literal_prefixes(patterns: Iterable[str]) -> tuple[str, ...] | None:
    prefixes = tuple(_literal_prefix(p) for p in patterns)
    return None if "" in prefixes else prefixes


def _leading_prefixes(pattern: str) -> tuple[str, ...]:
    """Literal prefixes, one of which every match of `pattern` starts with; () when that cannot be told.
    Besides a literal start ("abc..."), reads a leading group of alternatives ("(?:ab\\d+|cd)...")."""
    prefix = _literal_prefix(pattern)
    if prefix:
        return (prefix,)
    if not pattern.startswith("(?:"):
        return ()
    alternatives: list[str] = []
    depth = 0
    start = 3
    for i, c in _structure(pattern, start):  # up to the group's ")"
        if c == "(":
            depth += 1
        elif c == ")" and depth > 0:
            depth -= 1
        elif c == ")":
            if pattern[i + 1 : i + 2] in ("?", "*", "{"):
                return ()  # the group may match nothing
            alternatives.append(pattern[start:i])
            return _literal_prefixes(alternatives) or ()
        elif depth == 0:  # a "|" between the group's alternatives
            alternatives.append(pattern[start:i])
            start = i + 1
    return ()


def _structure(pattern: str, start: int = 0) -> Iterator[tuple[int, str]]:
    """Where "(", ")" and "|" stand in `pattern` from `start`, escapes and character sets skipped."""
    in_set = False
    i = start
    while i < len(pattern):
        c = pattern[i]
        if c == "\\":
            i += 1
        elif in_set:
            in_set = c != "]"
        elif c == "[":
            in_set = True
            i += 2 if pattern.startswith("^]", i + 1) else 1 if pattern.startswith("]", i + 1) else 0
        elif c in "()|":
            yield i, c
        i += 1


def _literal_prefix(pattern: str) -> str:
    """Text every match of `pattern` starts with (maybe ""), read conservatively from its source."""
    depth = 0
    for _, c in _structure(pattern):  # an alternation at the top level makes the pattern's prefix meaningless
        if c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
        elif depth == 0:
            return ""
    prefix: list[str] = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\":
            c = pattern[i + 1 : i + 2]
            if not c or c.isalnum():  # "\d", "\b" and the like are not text; "\." is a dot
                break
            i += 1
        elif c in _REGEX_SPECIAL:
            if c in "?*+{" and prefix:
                prefix.pop()  # the quantified character may be absent or repeated
            break
        prefix.append(c)
        i += 1
    return "".join(prefix)


def _any_of(patterns: Sequence[str]) -> str:
    """A regex matching where any of ``patterns`` matches (which one is not told), with the patterns that
    start with the same literal character behind one branch: at each position re then tries one branch per
    distinct first character, not every pattern."""
    by_first: dict[str, list[str]] = {}
    others: list[str] = []
    for p in patterns:
        # A non-empty literal prefix rules out a top-level "|" and a quantifier on the first character, so
        # p[0] is a plain character and p[1:] a regex on its own.
        if _literal_prefix(p) and p[0] != "\\":
            by_first.setdefault(p[0], []).append(p[1:])
        else:
            others.append(p)
    branches = [re.escape(c) + "(?:" + "|".join(f"(?:{r})" for r in rs) + ")" for c, rs in by_first.items()]
    branches += [f"(?:{p})" for p in others]
    return "(?:" + "|".join(branches) + ")"


@dataclass(frozen=True, slots=True)
class _Core:
    """The compiled bundled dataset (immutable, shared by every TrackerDB built on it)."""

    domains: dict[str, TrackerMatch]  # beacon-only host suffix -> match
    hosts: Alternation[TrackerMatch] | None  # whole-host regexes (host_patterns)
    patterns: _PatternSet[TrackerMatch]
    content: _PatternSet[bool]
    spacers: _PatternSet[bool]
    generic: _PatternSet[TrackerMatch]
    # The "/" patterns of the four sets in one regex: most keys match none, and then no set searches.
    paths: re.Pattern[str] | None
    vendor_by_domain: dict[str, str]  # domains and shared_domains -> vendor name
    vendors: tuple[str, ...]
    link_params: frozenset[str]
    rule_count: int


_VENDOR_KEYS = frozenset(
    {
        "vendor",
        "domains",
        "host_patterns",
        "patterns",
        "content",
        "shared_domains",
        "link_params",
        "tier",
        "source",
        "row",
    }
)
_GENERIC_KEYS = frozenset({"name", "patterns", "tier", "source"})
_SPACER_KEYS = frozenset({"patterns", "source"})
_DOMAIN_RE = re.compile(r"[a-z0-9_-]+(?:\.[a-z0-9_-]+)+")
_PARAM_RE = re.compile(r"[a-z0-9_.\[\]-]+")


class _Dataset:
    """Validates a parsed dataset; every error names the file, the dotted key and what was expected."""

    def __init__(self, origin: str) -> None:
        self.origin = origin

    def fail(self, key: str, expected: str) -> ConfigError:
        return ConfigError(self.origin, key, expected)

    def string(self, table: Mapping[str, object], key: str, where: str, default: str | None = None) -> str:
        value = table.get(key, default)
        if not isinstance(value, str) or not value:
            raise self.fail(f"{where}.{key}", "a non-empty string")
        return value

    def strings(
        self, table: Mapping[str, object], key: str, where: str, check: Callable[[str], str | None]
    ) -> list[str]:
        value = table.get(key, [])
        if not isinstance(value, list):
            raise self.fail(f"{where}.{key}", "a list of strings")
        out = []
        for i, item in enumerate(value):
            if not isinstance(item, str):
                raise self.fail(f"{where}.{key}[{i}]", "a string")
            problem = check(item)
            if problem:
                raise self.fail(f"{where}.{key}[{i}]", problem)
            out.append(item)
        return out

    def tier(self, table: Mapping[str, object], where: str, default: Tier) -> Tier:
        raw = table.get("tier", str(default))
        try:
            return Tier(str(raw))
        except ValueError:
            raise self.fail(f"{where}.tier", '"high", "medium" or "low"') from None

    def keys(self, table: Mapping[str, object], allowed: frozenset[str], where: str) -> None:
        for k in table:
            if k not in allowed:
                raise self.fail(f"{where}.{k}", "no such key (one of " + ", ".join(sorted(allowed)) + ")")


def _check_regex(p: str) -> str | None:
    try:
        rx = re.compile(p)
    except re.error as exc:
        return f"a valid regex ({exc})"
    if rx.groups:
        return "a regex without capturing groups (write (?:...))"
    if p.startswith("^"):
        return "a regex without ^ (anchoring is implied)"
    if re.sub(r"\\.", "", p) != re.sub(r"\\.", "", p).lower():
        return "a lower-case regex (keys are lower-cased)"
    return None


def _check_domain(d: str) -> str | None:
    return None if _DOMAIN_RE.fullmatch(d) else "a lower-case host name such as tracker.example.com"


def _check_param(p: str) -> str | None:
    return None if _PARAM_RE.fullmatch(p) else "a lower-case query parameter name"


def _build_core(data: Mapping[str, object], origin: str) -> _Core:
    ds = _Dataset(origin)
    domains: dict[str, TrackerMatch] = {}
    host_entries: list[tuple[str, TrackerMatch]] = []
    pattern_entries: list[tuple[str, TrackerMatch]] = []
    content_entries: list[tuple[str, bool]] = []
    vendor_by_domain: dict[str, str] = {}
    vendors: set[str] = set()
    link_params: set[str] = set()
    rules = 0
    for vid, table in data.items():
        if vid in ("generic", "spacers"):
            continue
        if not isinstance(table, dict):
            raise ds.fail(vid, "a vendor table")
        ds.keys(table, _VENDOR_KEYS, vid)
        name = ds.string(table, "vendor", vid)
        hit = TrackerMatch(
            name, REASON_KNOWN, ds.tier(table, vid, Tier.HIGH), ds.string(table, "source", vid)
        )
        if "row" in table and not isinstance(table["row"], int):
            raise ds.fail(f"{vid}.row", "an integer")
        vendors.add(name)
        for d in ds.strings(table, "domains", vid, _check_domain):
            domains.setdefault(d, hit)
            vendor_by_domain.setdefault(d, name)
        for d in ds.strings(table, "shared_domains", vid, _check_domain):
            vendor_by_domain.setdefault(d, name)
        host_patterns = ds.strings(table, "host_patterns", vid, _check_regex)
        patterns = ds.strings(table, "patterns", vid, _check_regex)
        content = ds.strings(table, "content", vid, _check_regex)
        link_params.update(ds.strings(table, "link_params", vid, _check_param))
        host_entries += [(p, hit) for p in host_patterns]
        pattern_entries += [(p, hit) for p in patterns]
        content_entries += [(p, True) for p in content]
        rules += len(table.get("domains", [])) + len(host_patterns) + len(patterns)
        if not (table.get("domains") or host_patterns or patterns):
            raise ds.fail(vid, "at least one of domains, host_patterns, patterns")

    generic_entries: list[tuple[str, TrackerMatch]] = []
    generic = data.get("generic", [])
    if not isinstance(generic, list):
        raise ds.fail("generic", "an array of tables ([[generic]])")
    for i, entry in enumerate(generic):
        where = f"generic[{i}]"
        if not isinstance(entry, dict):
            raise ds.fail(where, "a table")
        ds.keys(entry, _GENERIC_KEYS, where)
        shape = ds.string(entry, "name", where)
        hit = TrackerMatch(
            None,
            REASON_GENERIC,
            ds.tier(entry, where, Tier.MEDIUM),
            f"{shape}: {ds.string(entry, 'source', where)}",
        )
        generic_entries += [(p, hit) for p in ds.strings(entry, "patterns", where, _check_regex)]
    rules += len(generic_entries)

    spacers = data.get("spacers", {})
    if not isinstance(spacers, dict):
        raise ds.fail("spacers", "a table")
    ds.keys(spacers, _SPACER_KEYS, "spacers")
    spacer_patterns = ds.strings(spacers, "patterns", "spacers", _check_regex)

    pattern_set = _PatternSet(pattern_entries)
    content_set = _PatternSet(content_entries)
    spacer_set = _PatternSet([(p, True) for p in spacer_patterns])
    generic_set = _PatternSet(generic_entries, anywhere=True)
    slash = [p[1:] for ps in (pattern_set, content_set, spacer_set, generic_set) for p in ps.path_patterns]
    core = _Core(
        domains=domains,
        hosts=Alternation(r"(?:[^.]*\.)*?", [(p + r"\Z", h) for p, h in host_entries])
        if host_entries
        else None,
        patterns=pattern_set,
        content=content_set,
        spacers=spacer_set,
        generic=generic_set,
        paths=re.compile("/" + _any_of(slash)) if slash else None,
        vendor_by_domain=vendor_by_domain,
        vendors=tuple(sorted(vendors, key=str.casefold)),
        link_params=frozenset(link_params),
        rule_count=rules,
    )
    logger.debug("tracker dataset %s: %d vendors, %d rules", origin, len(core.vendors), rules)
    return core


def _parse_toml(text: str, origin: str) -> _Core:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(origin, "", f"valid TOML ({exc})") from exc
    return _build_core(data, origin)


@functools.cache
def _bundled_core() -> _Core:
    text = resources.files("mailproxy.detect").joinpath("data", _BUNDLED).read_text(encoding="utf-8")
    return _parse_toml(text, f"mailproxy/detect/data/{_BUNDLED}")


@functools.cache
def _bundled_db() -> TrackerDB:
    return TrackerDB(_bundled_core())


class TrackerDB:
    """The known-tracker matcher. Build it with ``bundled()``, ``load(...)`` or ``from_toml(path)``."""

    __slots__ = (
        "_adblock",
        "_cached_match",
        "_core",
        "_disconnect",
        "_domain_hits",
        "_host_plans",
        "__weakref__",
    )

    def __init__(
        self,
        core: _Core,
        adblock: Sequence[AdblockList] = (),
        disconnect: Sequence[DomainList] = (),
    ) -> None:
        self._core = core
        self._adblock = tuple(adblock)
        self._disconnect = tuple(disconnect)
        # Hosts recur far more than URLs (every image of a CDN): their beacon-domain answer is kept.
        self._domain_hits: dict[str, TrackerMatch | None] = {}
        self._host_plans: dict[str, _HostPlan] = {}
        self._cached_match: Callable[[str], TrackerMatch | None] = functools.lru_cache(maxsize=_CACHE_SIZE)(
            self._match
        )

    # --- construction --------------------------------------------------------------------------------

    @classmethod
    def bundled(cls) -> TrackerDB:
        """The bundled dataset alone; loaded and compiled once per process."""
        return _bundled_db()

    @classmethod
    def load(
        cls,
        *,
        adblock: Sequence[Path] = (),
        disconnect: Sequence[Path] = (),
        disconnect_categories: Sequence[str] = DEFAULT_DISCONNECT_CATEGORIES,
    ) -> TrackerDB:
        """The bundled dataset plus user lists. FilterListError names a list that cannot be read."""
        return cls(
            _bundled_core(),
            [AdblockList.from_path(Path(p)) for p in adblock],
            [DomainList.from_disconnect(Path(p), categories=disconnect_categories) for p in disconnect],
        )

    @classmethod
    def from_toml(cls, path: Path) -> TrackerDB:
        """A dataset in the bundled format instead of the bundled one; ConfigError names a bad key."""
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(str(path), "", f"a readable UTF-8 TOML file ({exc})") from exc
        return cls(_parse_toml(text, str(path)))

    # --- stats ---------------------------------------------------------------------------------------

    @property
    def vendors(self) -> tuple[str, ...]:
        """Display names of the dataset's vendors, sorted."""
        return self._core.vendors

    @property
    def link_params(self) -> frozenset[str]:
        """Query parameters vendors add to links to identify the reader (mkt_tok, _hsenc, ...)."""
        return self._core.link_params

    def __len__(self) -> int:
        """Number of matching rules: dataset domains and patterns, generic shapes, user-list rules."""
        return (
            self._core.rule_count + sum(len(a) for a in self._adblock) + sum(len(d) for d in self._disconnect)
        )

    def __bool__(self) -> bool:
        # ``db or TrackerDB.bundled()`` must not replace a database that merely has no rules.
        return True

    def __repr__(self) -> str:
        return f"<TrackerDB {len(self._core.vendors)} vendors, {len(self)} rules>"

    # --- matching ------------------------------------------------------------------------------------

    def match(self, url: str) -> TrackerMatch | None:
        """Why ``url`` (an absolute http(s) URL) is a known tracker, or None. Never raises."""
        if not isinstance(url, str):
            return None
        if len(url) > _CACHE_MAX_URL:
            return self._match(url)
        return self._cached_match(url)

    def _match(self, url: str) -> TrackerMatch | None:
        parts = split_parts(url)
        if parts is None:
            return None
        core = self._core
        host = parts[1]
        plan = self._host_plans.get(host)
        if plan is None:
            plan = self._host_plan(host)
        hit, content, patterns, spacers = plan
        if hit is not None:
            return hit
        key = _key(parts)
        path_start = len(host)
        paths = core.paths is not None and core.paths.search(key, path_start) is not None
        # A set whose plan entry is None can only match through a path pattern, and there is none.
        if (content is not None or paths) and core.content.find(key, path_start, paths, content) is not None:
            return None
        if patterns is not None or paths:
            hit = core.patterns.find(key, path_start, paths, patterns)
            if hit is not None:
                return hit
        if (spacers is not None or paths) and core.spacers.find(key, path_start, paths, spacers) is not None:
            return None
        if self._adblock or self._disconnect:
            hit = self._filter_hit(split_url(url))
            if hit is not None:
                return hit
        # Generic shapes are never anchored at the host: no candidates.
        # Without a "/" pattern in the key only the shapes searched anywhere can match, and most keys hold
        # none of their literal prefixes: find() would say None, after a call and a few tests.
        gate = core.generic.any_gate
        if not paths and gate is not None and not _holds_any(key, gate):
            return None
        return core.generic.find(key, path_start, paths, ())

    def _host_plan(self, host: str) -> _HostPlan:
        """What of the matching depends on the host alone: its beacon-domain hit, and per pattern set the
        host-anchored candidates (None when the set can match only through a path pattern)."""
        core = self._core
        content, patterns, spacers = (
            core.content.host_plan(host),
            core.patterns.host_plan(host),
            core.spacers.host_plan(host),
        )
        if len(self._host_plans) >= _HOST_CACHE_SIZE:
            self._host_plans.clear()
        plan = self._host_plans[host] = (self._domain_hit(host), content, patterns, spacers)
        return plan

    def _domain_hit(self, host: str) -> TrackerMatch | None:
        hits = self._domain_hits
        if host in hits:
            return hits[host]
        if len(hits) >= _HOST_CACHE_SIZE:
            hits.clear()
        hit = hits[host] = self._find_domain_hit(host)
        return hit

    def _find_domain_hit(self, host: str) -> TrackerMatch | None:
        hit = by_suffix(self._core.domains, host)
        if hit is not None:
            return hit
        hosts = self._core.hosts
        return None if hosts is None else hosts.match(host)

    def _filter_hit(self, split: SplitURL | None) -> TrackerMatch | None:
        if split is None:
            return None
        for adblock in self._adblock:
            fh = adblock.match(split)
            if fh is not None:
                return _from_filter(fh)
        for domain_list in self._disconnect:
            fh = domain_list.match(split)
            if fh is not None:
                return _from_filter(fh)
        return None

    def match_host(self, host: str) -> TrackerMatch | None:
        """A match only for hosts where every URL is a tracking beacon (for HTTPS CONNECT decisions)."""
        h = normalize_host(host)
        if h is None:
            return None
        hit = self._domain_hit(h)
        if hit is not None:
            return hit
        for adblock in self._adblock:
            fh = adblock.match_host(h)
            if fh is not None:
                return _from_filter(fh)
        for domain_list in self._disconnect:
            fh = domain_list.match_host(h)
            if fh is not None:
                return _from_filter(fh)
        return None

    def vendor_for_host(self, host: str) -> str | None:
        """The vendor a host belongs to, even where its URLs are content or click redirects."""
        h = normalize_host(host)
        if h is None:
            return None
        name = by_suffix(self._core.vendor_by_domain, h)
        if name is not None:
            return name
        hit = self._domain_hit(h) or self._core.patterns.find_host(h + "/", len(h))
        if hit is not None:
            return hit.vendor
        for domain_list in self._disconnect:
            fh = domain_list.match_host(h)
            if fh is not None:
                return fh.vendor
        return None

    def is_spacer(self, url: str) -> bool:
        """Whether ``url`` is a known non-tracking spacer image (a false-positive guard)."""
        parts = split_parts(url) if isinstance(url, str) else None
        if parts is None:
            return False
        return self._core.spacers.find(_key(parts), len(parts[1])) is not None


def _key(parts: tuple[str, str, str, str, str]) -> str:
    """``SplitURL.key`` of ``split_parts``' answer, capped at MAX_KEY_CHARS."""
    _, host, _, path, query = parts
    key = f"{host}{path}?{query}" if query else host + path  # one copy of a long path and query, not three
    return key if len(key) <= MAX_KEY_CHARS else key[:MAX_KEY_CHARS]


def _from_filter(fh: FilterHit) -> TrackerMatch:
    # A domain anchor or a listed domain names a tracker host: as strong as our own beacon domains.
    # Other Adblock rules are path shapes, as weak as our generic ones.
    tier = Tier.HIGH if fh.host_level else Tier.MEDIUM
    return TrackerMatch(fh.vendor, REASON_FILTER_PREFIX + fh.list_name, tier, f"{fh.origin}: {fh.rule}")
