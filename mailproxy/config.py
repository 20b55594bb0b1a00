"""Configuration: one TOML file, validated at one choke point into frozen, typed objects.

Theory of operation:

1. `load_config` is the only function that reads the file. Everything after it sees frozen
   dataclasses whose values are already checked, so no other module re-validates them or reads the
   environment for settings.
2. Every problem raises `ConfigError(file, key, expected)`: the file as the user named it, the
   dotted key (`users."alice@example.org".tracker`, `senders[2].match`) and what was expected,
   followed by what was found. Unknown keys are errors too: a misspelt key that is silently ignored
   is a policy the user did not get.
3. `load_config(None)` returns `Config()`, and the dataclass defaults below are the documented
   defaults: `config.example.toml` must load to exactly the same values (a test enforces it).
4. Relative paths resolve against the folder of the config file, so a config works from any
   current directory.
5. Secrets (a postgresql:// URL may hold a password) never appear in error messages or in repr().
"""

from __future__ import annotations

import difflib
import ipaddress
import json
import logging
import re
import tomllib
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Final, Literal, NoReturn, TypeVar, cast
from urllib.parse import urlsplit

from mailproxy.errors import ConfigError

__all__ = [
    "DNT_VALUES",
    "POLICY_KEYS",
    "ClientTls",
    "Config",
    "ContentRule",
    "DntValue",
    "HostPort",
    "HttpConfig",
    "HttpTls",
    "IdentifierRule",
    "ImageRule",
    "ImapConfig",
    "LogConfig",
    "LogDetail",
    "PolicyRules",
    "Privacy",
    "ReceiptRule",
    "SenderRule",
    "TrackerLists",
    "TrackerRule",
    "UpstreamTls",
    "UserOverride",
    "load_config",
]

logger = logging.getLogger(__name__)


# --- Policy rules ---------------------------------------------------------------------------------


class TrackerRule(StrEnum):
    """What to do with a reference classified as a tracker."""

    STRIP = "strip"  # remove it so nothing loads
    REWRITE = "rewrite"  # keep loading, identifiers removed
    BLOCK = "block"  # replace by an inert placeholder
    ALLOW = "allow"


class IdentifierRule(StrEnum):
    """What to do with identifying parameters on ordinary content."""

    CLEAN = "clean"
    ALLOW = "allow"
    BLOCK = "block"


class ImageRule(StrEnum):
    """What to do with other (clean) remote images."""

    ALLOW = "allow"
    BLOCK = "block"


class ContentRule(StrEnum):
    """What to do with remote content that is not an image (stylesheets, fonts, frames, ...)."""

    BLOCK = "block"
    ALLOW = "allow"


class ReceiptRule(StrEnum):
    """What to do with read-receipt request headers (Disposition-Notification-To, ...)."""

    NEUTRALIZE = "neutralize"
    ALLOW = "allow"


# The keys of [policy], in file order; sender rules and user overrides may set any subset of them.
POLICY_KEYS: Final = ("tracker", "identifiers", "images", "content", "receipts")
_POLICY_ENUMS: Final[Mapping[str, type[StrEnum]]] = {
    "tracker": TrackerRule,
    "identifiers": IdentifierRule,
    "images": ImageRule,
    "content": ContentRule,
    "receipts": ReceiptRule,
}

# DNT is tri-state: "unset" means the proxy leaves the header as the client sent it (the W3C note
# forbids intermediaries from adding DNT unless the user configured them to), not "0".
DntValue = Literal["1", "0", "unset"]
DNT_VALUES: Final[tuple[DntValue, ...]] = ("1", "0", "unset")


@dataclass(frozen=True, slots=True, kw_only=True)
class PolicyRules:
    """The [policy] table: what the rewriter does, per class of finding."""

    tracker: TrackerRule = TrackerRule.STRIP
    identifiers: IdentifierRule = IdentifierRule.CLEAN
    images: ImageRule = ImageRule.ALLOW
    content: ContentRule = ContentRule.BLOCK
    receipts: ReceiptRule = ReceiptRule.NEUTRALIZE


@dataclass(frozen=True, slots=True, kw_only=True)
class Privacy:
    """The [privacy] table: headers the HTTP proxy sends on remote-image fetches."""

    dnt: DntValue = "1"
    gpc: bool = True


@dataclass(frozen=True, slots=True, kw_only=True)
class SenderRule:
    """One [[senders]] entry.

    `match` is lower-case. With an "@" it is an address pattern, otherwise a domain pattern; both
    may be fnmatch globs. `overrides` holds (policy key, rule) pairs in POLICY_KEYS order, only for
    the keys the rule sets; the rules are the StrEnum members above (a tuple keeps it hashable).
    """

    match: str
    overrides: tuple[tuple[str, str], ...]

    def as_dict(self) -> dict[str, str]:
        return dict(self.overrides)


@dataclass(frozen=True, slots=True, kw_only=True)
class UserOverride:
    """One [users."<address>"] table: the user's policy keys, privacy keys and own sender rules.

    `address` is the lower-cased key (usually an address; any IMAP login name works).
    None means "not set".
    """

    address: str
    overrides: tuple[tuple[str, str], ...] = ()
    dnt: DntValue | None = None
    gpc: bool | None = None
    senders: tuple[SenderRule, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class TrackerLists:
    """User-supplied tracker lists, as absolute paths.

    Not opened here: the list loader raises FilterListError for a missing or unreadable one.
    """

    adblock: tuple[Path, ...] = ()
    disconnect: tuple[Path, ...] = ()


# --- Network settings -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class HostPort:
    """A parsed "host:port". `host` is lower-case, IPv6 without brackets."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @property
    def is_loopback(self) -> bool:
        # No DNS lookup (no network at load time): "localhost" names are loopback by RFC 6761.
        if self.host == "localhost" or self.host.endswith(".localhost"):
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False


class UpstreamTls(StrEnum):
    IMPLICIT = "implicit"  # TLS from the first byte (port 993)
    STARTTLS = "starttls"
    NONE = "none"


class ClientTls(StrEnum):
    IMPLICIT = "implicit"
    STARTTLS = "starttls"


@dataclass(frozen=True, slots=True, kw_only=True)
class ImapConfig:
    """The [imap] table. Paths are absolute; None means "not set"."""

    enabled: bool = True
    listen: HostPort = HostPort(host="127.0.0.1", port=1143)
    upstream: HostPort = HostPort(host="127.0.0.1", port=993)
    upstream_tls: UpstreamTls = UpstreamTls.IMPLICIT
    upstream_ca: Path | None = None  # None: the system trust store
    tls_cert: Path | None = None  # set together with tls_key, or neither
    tls_key: Path | None = None
    client_tls: ClientTls = ClientTls.STARTTLS  # only meaningful when tls_cert is set
    allow_plaintext_upstream: bool = False
    # Processes that rewrite messages side by side (each holds an engine, ~60 MB); 0: one per CPU,
    # at most MAX_AUTO_WORKERS; 1: no processes, rewrites take turns in one thread.
    rewrite_workers: int = 0


MAX_AUTO_WORKERS: Final = 4

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class HttpTls(StrEnum):
    """Which HTTPS tunnels the HTTP proxy decrypts (`mailproxy run --tls` overrides it)."""

    AUTO = "auto"  # intercept; pass a client's tunnels through for an hour once it rejects the CA
    INTERCEPT = "intercept"  # the client trusts the mitmproxy CA: per-URL decisions inside HTTPS
    PASSTHROUGH = "passthrough"  # never decrypt: known tracker hosts are blocked at CONNECT only


@dataclass(frozen=True, slots=True, kw_only=True)
class HttpConfig:
    """The [http] table."""

    enabled: bool = True
    listen: HostPort = HostPort(host="127.0.0.1", port=8080)
    allow_networks: tuple[Network, ...] = ()
    tls: HttpTls = HttpTls.AUTO
    # Answer requests without proxy credentials with 407, so clients that only send them when
    # challenged (Thunderbird) name their user; the name picks [users] settings, no password check.
    require_user: bool = False


class LogDetail(StrEnum):
    AGGREGATE = "aggregate"
    EVENTS = "events"
    RESEARCH = "research"


@dataclass(frozen=True, slots=True, kw_only=True)
class LogConfig:
    """The [log] table. `store` = "" becomes both store fields None: the platform default path."""

    detail: LogDetail = LogDetail.AGGREGATE
    store_path: Path | None = None  # an SQLite file, absolute
    store_url: str | None = field(default=None, repr=False)  # a postgresql:// URL; may hold a password
    retention_days: int = 30

    def store_location(self) -> Path | str:
        """The URL, the configured path, or the platform default path."""
        if self.store_url is not None:
            return self.store_url
        if self.store_path is not None:
            return self.store_path
        return default_store_path()


def default_store_path() -> Path:
    """The default tracking database in the platform data folder (XDG_DATA_HOME on Unix)."""
    import os  # local: only the boundary that opens the store asks for this

    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "mailproxy" / "tracking.sqlite3"


@dataclass(frozen=True, slots=True, kw_only=True)
class Config:
    """The whole configuration. `source` is the absolute path of the file, None for the defaults."""

    policy: PolicyRules = PolicyRules()
    privacy: Privacy = Privacy()
    senders: tuple[SenderRule, ...] = ()
    users: tuple[UserOverride, ...] = ()
    trackers: TrackerLists = TrackerLists()
    imap: ImapConfig = ImapConfig()
    http: HttpConfig = HttpConfig()
    log: LogConfig = LogConfig()
    source: Path | None = None

    def user(self, address: str) -> UserOverride | None:
        """The override table of one user, compared case-insensitively."""
        wanted = address.strip().lower()
        return next((u for u in self.users if u.address == wanted), None)


_DEFAULT_CONFIG: Final = Config()


# --- Loading --------------------------------------------------------------------------------------


def load_config(path: Path | str | None) -> Config:
    """Read and validate one TOML config file; None gives the defaults.

    Raises ConfigError for a missing or unreadable file, invalid TOML (the message has the line),
    and any wrong key, type or value.
    """
    if path is None:
        return _DEFAULT_CONFIG
    if not isinstance(path, str | Path):
        raise TypeError(f"load_config() takes a path or None, not {type(path).__name__}")
    source = Path(path)
    file = str(path)
    try:
        with source.open("rb") as fh:
            data = tomllib.load(fh)
    except OSError as exc:
        raise ConfigError(file, "", f"cannot read the file ({exc.strerror or exc})") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(file, "", f"expected UTF-8 text (invalid byte at offset {exc.start})") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(file, "", f"invalid TOML: {exc}") from exc
    except RecursionError as exc:
        # tomllib parses nested arrays recursively; a hostile file must not crash the caller.
        raise ConfigError(file, "", "invalid TOML: arrays or tables nested too deeply") from exc
    source = source.absolute()
    config = _build(_Section(file, "", data), base=source.parent, source=source)
    logger.debug("loaded configuration from %s", source)
    return config


_TOP_KEYS: Final = ("policy", "privacy", "senders", "users", "trackers", "imap", "http", "log")
_USER_KEYS: Final = (*POLICY_KEYS, "dnt", "gpc", "senders", "policy", "privacy")
_IMAP_KEYS: Final = (
    "enabled",
    "listen",
    "upstream",
    "upstream_tls",
    "upstream_ca",
    "tls_cert",
    "tls_key",
    "client_tls",
    "allow_plaintext_upstream",
    "rewrite_workers",
)

_E = TypeVar("_E", bound=StrEnum)


def _build(root: _Section, *, base: Path, source: Path) -> Config:
    root.check_keys(_TOP_KEYS)
    policy = _parse_policy(root.table("policy"))
    privacy = _parse_privacy(root.table("privacy"))
    senders = _parse_senders(root, "senders")
    users = _parse_users(root.table("users"))
    trackers = _parse_trackers(root.table("trackers"), base)
    imap = _parse_imap(root.table("imap"), base)
    http = _parse_http(root.table("http"))
    log = _parse_log(root.table("log"), base)
    if imap.enabled and http.enabled and imap.listen == http.listen:
        root.table("http").fail("listen", f"expected an address other than imap.listen ({imap.listen})")
    return Config(
        policy=policy,
        privacy=privacy,
        senders=senders,
        users=users,
        trackers=trackers,
        imap=imap,
        http=http,
        log=log,
        source=source,
    )


def _parse_policy(sec: _Section) -> PolicyRules:
    sec.check_keys(POLICY_KEYS)
    d = PolicyRules()
    return PolicyRules(
        tracker=sec.choice("tracker", TrackerRule, d.tracker),
        identifiers=sec.choice("identifiers", IdentifierRule, d.identifiers),
        images=sec.choice("images", ImageRule, d.images),
        content=sec.choice("content", ContentRule, d.content),
        receipts=sec.choice("receipts", ReceiptRule, d.receipts),
    )


def _parse_privacy(sec: _Section) -> Privacy:
    sec.check_keys(("dnt", "gpc"))
    d = Privacy()
    return Privacy(dnt=_dnt(sec, d.dnt), gpc=sec.boolean("gpc", d.gpc))


def _dnt(sec: _Section, default: DntValue) -> DntValue:
    value = sec.data.get("dnt", default)
    if isinstance(value, str) and value in DNT_VALUES:
        return cast(DntValue, value)
    hint = ' (write it as a string: dnt = "1")' if isinstance(value, int) else ""
    sec.fail("dnt", f'expected one of "1", "0", "unset"; got {_describe(value)}{hint}')


def _policy_overrides(sec: _Section) -> tuple[tuple[str, str], ...]:
    return tuple((key, sec.choice(key, _POLICY_ENUMS[key], None)) for key in POLICY_KEYS if key in sec.data)


def _parse_senders(parent: _Section, name: str) -> tuple[SenderRule, ...]:
    rules = []
    for sec in parent.array_of_tables(name):
        sec.check_keys(("match", *POLICY_KEYS))
        match = _sender_pattern(sec)
        overrides = _policy_overrides(sec)
        if not overrides:
            sec.fail(None, f"expected at least one of {', '.join(POLICY_KEYS)} besides match")
        rules.append(SenderRule(match=match, overrides=overrides))
    return tuple(rules)


_PATTERN_FORBIDDEN: Final = re.compile(r"[\s\"<>,;()\\]")


def _sender_pattern(sec: _Section) -> str:
    if "match" not in sec.data:
        sec.fail("match", "expected an address or domain pattern; the key is missing")
    raw = sec.data["match"]
    what = 'an address or domain pattern such as "*@news.example.com" or "*.example.com"'
    if not isinstance(raw, str):
        sec.fail("match", f"expected {what}; got {_describe(raw)}")
    pattern = raw.strip().lower()
    local, at, domain = pattern.rpartition("@")
    if (
        not pattern
        or _PATTERN_FORBIDDEN.search(pattern)
        or "@" in local
        or (at and not local)
        or (at and not domain)
    ):
        sec.fail("match", f"expected {what}; got {_describe(raw)}")
    return pattern


def _parse_users(sec: _Section) -> tuple[UserOverride, ...]:
    users: dict[str, UserOverride] = {}
    for name in sec.data:
        address = name.strip().lower()
        if not address or any(c.isspace() for c in address):
            sec.fail(name, "expected an address (or IMAP login name) as the table name")
        if address in users:
            sec.fail(name, f"expected each user once; this repeats {_describe(address)} (case ignored)")
        users[address] = _parse_user(sec.table(name), address)
    return tuple(users.values())


def _parse_user(sec: _Section, address: str) -> UserOverride:
    sec.check_keys(_USER_KEYS)
    overrides = dict(_policy_overrides(sec))
    dnt = _dnt(sec, "1") if "dnt" in sec.data else None
    gpc = sec.boolean("gpc", False) if "gpc" in sec.data else None
    # A [users."x".policy] / [users."x".privacy] sub-table mirrors the top-level layout; it is
    # accepted so a copied [policy] block works, but one key must not be set in both places.
    if "policy" in sec.data:
        sub = sec.table("policy")
        sub.check_keys(POLICY_KEYS)
        for key, rule in _policy_overrides(sub):
            if key in overrides:
                sub.fail(key, f"expected {key} only once; it is also set directly in {sec.path}")
            overrides[key] = rule
    if "privacy" in sec.data:
        sub = sec.table("privacy")
        sub.check_keys(("dnt", "gpc"))
        if "dnt" in sub.data:
            if dnt is not None:
                sub.fail("dnt", f"expected dnt only once; it is also set directly in {sec.path}")
            dnt = _dnt(sub, "1")
        if "gpc" in sub.data:
            if gpc is not None:
                sub.fail("gpc", f"expected gpc only once; it is also set directly in {sec.path}")
            gpc = sub.boolean("gpc", False)
    return UserOverride(
        address=address,
        overrides=tuple((k, overrides[k]) for k in POLICY_KEYS if k in overrides),
        dnt=dnt,
        gpc=gpc,
        senders=_parse_senders(sec, "senders"),
    )


def _parse_trackers(sec: _Section, base: Path) -> TrackerLists:
    sec.check_keys(("adblock", "disconnect"))
    return TrackerLists(adblock=sec.paths("adblock", base), disconnect=sec.paths("disconnect", base))


def _parse_imap(sec: _Section, base: Path) -> ImapConfig:
    sec.check_keys(_IMAP_KEYS)
    d = ImapConfig()
    imap = ImapConfig(
        enabled=sec.boolean("enabled", d.enabled),
        listen=sec.host_port("listen", d.listen),
        upstream=sec.host_port("upstream", d.upstream),
        upstream_tls=sec.choice("upstream_tls", UpstreamTls, d.upstream_tls),
        upstream_ca=sec.optional_path("upstream_ca", base),
        tls_cert=sec.optional_path("tls_cert", base),
        tls_key=sec.optional_path("tls_key", base),
        client_tls=sec.choice("client_tls", ClientTls, d.client_tls),
        allow_plaintext_upstream=sec.boolean("allow_plaintext_upstream", d.allow_plaintext_upstream),
        rewrite_workers=sec.integer("rewrite_workers", d.rewrite_workers, 0, 256),
    )
    if (
        imap.upstream_tls is UpstreamTls.NONE
        and not imap.upstream.is_loopback
        and not imap.allow_plaintext_upstream
    ):
        sec.fail(
            "upstream_tls",
            f'expected "implicit" or "starttls" for the non-loopback upstream {imap.upstream}: '
            'with "none" passwords and mail cross the network unencrypted (set '
            "imap.allow_plaintext_upstream = true to accept that)",
        )
    if imap.tls_cert is not None and imap.tls_key is None:
        sec.fail("tls_key", "expected the private key file that goes with imap.tls_cert")
    if imap.tls_key is not None and imap.tls_cert is None:
        sec.fail("tls_cert", "expected the certificate file that goes with imap.tls_key")
    if imap.upstream_ca is not None and imap.upstream_tls is UpstreamTls.NONE:
        logger.warning("%s: imap.upstream_ca has no effect with upstream_tls = none", sec.file)
    if imap.enabled and imap.tls_cert is None and not imap.listen.is_loopback:
        logger.warning(
            "%s: imap.listen %s is not loopback and no tls_cert is set: plaintext logins",
            sec.file,
            imap.listen,
        )
    return imap


# Private, loopback, link-local and shared (CGNAT, e.g. VPN) blocks: the only ranges allow_networks
# may open. An explicit list, because ipaddress.is_private also covers 0.0.0.0/8 and 240.0.0.0/4,
# which makes ip_network("0.0.0.0/0").is_private true.
_NON_PUBLIC: Final[tuple[Network, ...]] = tuple(
    ipaddress.ip_network(n)
    for n in (
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "100.64.0.0/10",
        "::1/128",
        "fc00::/7",
        "fe80::/10",
    )
)


def _is_non_public(net: Network) -> bool:
    if isinstance(net, ipaddress.IPv4Network):
        return any(isinstance(b, ipaddress.IPv4Network) and net.subnet_of(b) for b in _NON_PUBLIC)
    return any(isinstance(b, ipaddress.IPv6Network) and net.subnet_of(b) for b in _NON_PUBLIC)


def _parse_http(sec: _Section) -> HttpConfig:
    sec.check_keys(("enabled", "listen", "allow_networks", "tls", "require_user"))
    d = HttpConfig()
    networks: list[Network] = []
    key = "allow_networks"
    for index, item in enumerate(sec.array(key)):
        example = 'a CIDR network such as "192.168.1.0/24"'
        if not isinstance(item, str):
            sec.fail(key, f"expected {example}; got {_describe(item)}", index)
        try:
            net = ipaddress.ip_network(item.strip())
        except ValueError as exc:
            sec.fail(key, f"expected {example} ({exc}); got {_describe(item)}", index)
        if not _is_non_public(net):
            sec.fail(
                key,
                "expected a private, loopback or link-local network (the list only opens those; "
                f"public hosts are not affected by it); got {_describe(item)}",
                index,
            )
        if net not in networks:
            networks.append(net)
    http = HttpConfig(
        enabled=sec.boolean("enabled", d.enabled),
        listen=sec.host_port("listen", d.listen),
        allow_networks=tuple(networks),
        tls=sec.choice("tls", HttpTls, d.tls),
        require_user=sec.boolean("require_user", d.require_user),
    )
    if http.enabled and not http.listen.is_loopback:
        logger.warning("%s: http.listen %s is not loopback: an open proxy", sec.file, http.listen)
    return http


_MAX_RETENTION_DAYS: Final = 36500  # keeps datetime.timedelta arithmetic far from overflow


def _parse_log(sec: _Section, base: Path) -> LogConfig:
    sec.check_keys(("detail", "store", "retention_days"))
    d = LogConfig()
    store_path: Path | None = None
    store_url: str | None = None
    store = sec.string("store", "")
    if "://" in store:
        # Never echo the URL: it may carry a password.
        scheme = store.split("://", 1)[0].lower()
        if scheme not in ("postgresql", "postgres"):
            sec.fail("store", f'expected "", a file path or a postgresql:// URL; got a "{scheme}://" URL')
        try:
            _ = urlsplit(store).port  # raises on a malformed host or port
        except ValueError:
            sec.fail("store", "expected a well-formed postgresql:// URL (host or port malformed)")
        store_url = store
    elif store:
        store_path = sec.to_path("store", store, base)
    return LogConfig(
        detail=sec.choice("detail", LogDetail, d.detail),
        store_path=store_path,
        store_url=store_url,
        retention_days=sec.integer("retention_days", d.retention_days, 1, _MAX_RETENTION_DAYS),
    )


# --- Reading typed values out of one table --------------------------------------------------------

_BARE_KEY: Final = re.compile(r"[A-Za-z0-9_-]+\Z")
_HOSTNAME: Final = re.compile(
    r"(?=.{1,253}\Z)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*\.?\Z"
)
_NUMERIC_HOST: Final = re.compile(r"[0-9.]+\Z")


def _join(path: str, name: str, index: int | None = None) -> str:
    """The dotted TOML key of `name` inside `path`, quoting names that are not bare keys."""
    part = name if _BARE_KEY.match(name) else json.dumps(name, ensure_ascii=False)
    joined = f"{path}.{part}" if path else part
    return joined if index is None else f"{joined}[{index}]"


def _describe(value: object) -> str:
    """A value as the user wrote it, with its TOML type when that is the problem."""
    if isinstance(value, bool):
        return "true (a boolean)" if value else "false (a boolean)"
    if isinstance(value, int):
        return f"{value} (an integer)"
    if isinstance(value, float):
        return f"{value!r} (a float)"
    if isinstance(value, str):
        return json.dumps(value if len(value) <= 80 else value[:77] + "...", ensure_ascii=False)
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    return f"a {type(value).__name__}"  # TOML dates and times


def _did_you_mean(word: str, choices: Collection[str]) -> str:
    close = difflib.get_close_matches(word.lower(), list(choices), n=1, cutoff=0.6)
    return f' (did you mean "{close[0]}"?)' if close else ""


class _Section:
    """One TOML table plus where it is, so every error can name the file and the dotted key."""

    __slots__ = ("data", "file", "path")

    def __init__(self, file: str, path: str, data: Mapping[str, object]) -> None:
        self.file = file
        self.path = path
        self.data = data

    def fail(self, name: str | None, expected: str, index: int | None = None) -> NoReturn:
        key = self.path if name is None else _join(self.path, name, index)
        raise ConfigError(self.file, key, expected)

    def check_keys(self, allowed: Collection[str]) -> None:
        for name in self.data:
            if name not in allowed:
                self.fail(
                    name,
                    f"unknown key{_did_you_mean(name, allowed)}; known keys: {', '.join(allowed)}",
                )

    def table(self, name: str) -> _Section:
        value = self.data.get(name, {})
        if not isinstance(value, dict):
            self.fail(name, f"expected a table; got {_describe(value)}")
        return _Section(self.file, _join(self.path, name), value)

    def array(self, name: str) -> list[object]:
        value = self.data.get(name, [])
        if not isinstance(value, list):
            self.fail(name, f"expected an array; got {_describe(value)}")
        return value

    def array_of_tables(self, name: str) -> list[_Section]:
        value = self.data.get(name, [])
        if not isinstance(value, list):
            self.fail(name, f"expected an array of tables ([[{name}]]); got {_describe(value)}")
        sections = []
        for index, item in enumerate(value):
            if not isinstance(item, dict):
                self.fail(name, f"expected a table; got {_describe(item)}", index)
            sections.append(_Section(self.file, _join(self.path, name, index), item))
        return sections

    def string(self, name: str, default: str) -> str:
        value = self.data.get(name, default)
        if not isinstance(value, str):
            self.fail(name, f"expected a string; got {_describe(value)}")
        return value

    def boolean(self, name: str, default: bool) -> bool:
        value = self.data.get(name, default)
        if not isinstance(value, bool):
            self.fail(name, f"expected true or false; got {_describe(value)}")
        return value

    def integer(self, name: str, default: int, minimum: int, maximum: int) -> int:
        value = self.data.get(name, default)
        # bool is a subclass of int; `retention_days = true` must not mean 1.
        if not isinstance(value, int) or isinstance(value, bool) or not minimum <= value <= maximum:
            self.fail(name, f"expected an integer from {minimum} to {maximum}; got {_describe(value)}")
        return value

    def choice(self, name: str, enum: type[_E], default: _E | None) -> _E:
        value = self.data.get(name, default)
        if isinstance(value, str):
            try:
                return enum(value)
            except ValueError:
                pass
        options = [m.value for m in enum]
        hint = _did_you_mean(value, options) if isinstance(value, str) else ""
        quoted = ", ".join(f'"{o}"' for o in options)
        self.fail(name, f"expected one of {quoted}; got {_describe(value)}{hint}")

    def to_path(self, name: str, text: str, base: Path, index: int | None = None) -> Path:
        if not text.strip() or "\0" in text:
            self.fail(name, f"expected a file path; got {_describe(text)}", index)
        try:
            path = Path(text).expanduser()
        except RuntimeError:  # "~nosuchuser/..."
            self.fail(name, f"expected a path with a known home folder; got {_describe(text)}", index)
        return path if path.is_absolute() else base / path

    def optional_path(self, name: str, base: Path) -> Path | None:
        text = self.string(name, "")
        return self.to_path(name, text, base) if text else None

    def paths(self, name: str, base: Path) -> tuple[Path, ...]:
        result: list[Path] = []
        for index, item in enumerate(self.array(name)):
            if not isinstance(item, str):
                self.fail(name, f"expected a file path string; got {_describe(item)}", index)
            path = self.to_path(name, item, base, index)
            if path not in result:  # the same list twice would only double the work
                result.append(path)
        return tuple(result)

    def host_port(self, name: str, default: HostPort) -> HostPort:
        value = self.data.get(name)
        if value is None:
            return default
        expected = 'expected "host:port" with a port from 1 to 65535 (IPv6 as "[::1]:993")'
        if not isinstance(value, str):
            self.fail(name, f"{expected}; got {_describe(value)}")
        text = value.strip().lower()
        if text.startswith("["):
            host, sep, port_text = text[1:].partition("]:")
            try:
                valid_host = bool(sep) and ipaddress.ip_address(host).version == 6
            except ValueError:
                valid_host = False
        else:
            host, sep, port_text = text.rpartition(":")
            if ":" in host:
                self.fail(
                    name,
                    f'expected IPv6 in brackets, e.g. "[::1]:993"; got {_describe(value)}',
                )
            valid_host = bool(sep) and _valid_host(host)
        if not valid_host or not (port_text.isascii() and port_text.isdigit()):
            self.fail(name, f"{expected}; got {_describe(value)}")
        port = int(port_text)
        if not 1 <= port <= 65535:
            self.fail(name, f"{expected}; got {_describe(value)}")
        return HostPort(host=host, port=port)


def _valid_host(host: str) -> bool:
    if _NUMERIC_HOST.match(host):
        # All-numeric names are IPv4 addresses or mistakes ("999.1.1.1"), never host names.
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            return False
        return True
    return _HOSTNAME.match(host) is not None
