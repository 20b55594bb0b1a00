"""The mitmproxy addons of mailproxy: the HTTP(S) proxy the mail client loads remote images through.

It is the second line of defence behind the IMAP rewriter: it sees what static rewriting cannot
(redirect chains, mail that did not pass the filter, images loaded later). One small addon per
concern, all sharing one `ProxyState` (configuration, policy, tracker database, event hook):

- `NetworkGuard`: refuses destinations on private, loopback and link-local addresses (an image in
  a mail pointing at a router's admin page is an attack) unless `[http] allow_networks` opens them.
  IP literals are refused before any connection; host names are resolved once, checked, and the
  connection is pinned to the checked address so a second DNS answer cannot differ (rebinding).
- `TrackerBlock`: answers tracker requests itself (image: a transparent 1x1 GIF so layouts hold;
  anything else: 204), on every hop of a redirect chain, removes identifying parameters from
  allowed images when the policy says clean, and refuses CONNECT to tracker hosts when the tunnel
  will not be decrypted (host-level mode).
- `PrivacyHeaders`: DNT as the user configured it (never added when "unset", as the W3C note
  requires of intermediaries), `Sec-GPC: 1` when enabled, no Cookie / Referer, no Set-Cookie back.
- `TlsPolicy`: decides which tunnels are decrypted ("intercept", "passthrough", or "auto": intercept
  until a client shows it does not trust the mitmproxy CA, then pass that client's tunnels through
  for an hour; other clients are still intercepted).
- `ConfigOption`: the `mailproxy_config` / `mailproxy_tls` options for `mitmdump -s addons/...`.

Per-user settings: when the client authenticates to the proxy (Basic), the user name selects the
`[users."..."]` table; the password is not checked (the proxy listens on loopback; the name only
picks settings). The header is consumed, never forwarded. Clients that send credentials only when
challenged (Thunderbird) need `[http] require_user`: mitmproxy's own proxyauth addon, set to "any",
then answers requests without them with 407 and leaves the name in flow.metadata["proxyauth"];
`UserChallenge` only names mailproxy as the realm the client shows when it asks.

Every blocked, cleaned or refused request is logged on the `mailproxy.tracking` logger (vendor,
reason, host; never cookies or full URLs at INFO) and passed to `ProxyState.on_event`.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import functools
import ipaddress
import logging
import re
import socket
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Final, Literal, cast, get_args
from urllib.parse import urljoin, urlsplit

from mitmproxy import connection, exceptions, http, tls
from mitmproxy.addonmanager import Loader
from mitmproxy.proxy import server_hooks

from mailproxy.config import Config, load_config
from mailproxy.detect.classify import Classifier, UrlVerdict
from mailproxy.detect.params import clean_raw_url, decode_param_name
from mailproxy.detect.trackers import TrackerDB
from mailproxy.errors import MailproxyError
from mailproxy.model import Action, Verdict
from mailproxy.policy import EffectivePolicy, Policy

__all__ = [
    "TLS_MODES",
    "TRANSPARENT_GIF",
    "ConfigOption",
    "EventHook",
    "NetworkGuard",
    "PrivacyHeaders",
    "ProxyState",
    "TlsMode",
    "TlsPolicy",
    "TrackerBlock",
    "UserChallenge",
    "all_addons",
]

logger = logging.getLogger(__name__)
tracking_log = logging.getLogger("mailproxy.tracking")

# A 43-byte GIF89a: 1x1, a two-colour palette, a graphic control extension marking index 0
# transparent, and LZW data for "clear, pixel 0, end" (codes 4, 0, 5 at 3 bits = 0x44 0x01).
TRANSPARENT_GIF: Final = (
    b"GIF89a"
    + b"\x01\x00\x01\x00\x80\x00\x00"  # 1x1, global colour table of 2 entries
    + b"\x00\x00\x00\xff\xff\xff"  # black, white
    + b"\x21\xf9\x04\x01\x00\x00\x00\x00"  # graphic control: transparent index 0
    + b"\x2c\x00\x00\x00\x00\x01\x00\x01\x00\x00"  # image descriptor at 0,0 size 1x1
    + b"\x02\x02\x44\x01\x00"  # LZW minimum code size 2, one 2-byte sub-block, terminator
    + b"\x3b"  # trailer
)

TlsMode = Literal["auto", "intercept", "passthrough"]
TLS_MODES: Final[tuple[TlsMode, ...]] = get_args(TlsMode)

# Receives one dict per blocked, cleaned or refused request (the tracking-log issue connects it).
EventHook = Callable[[dict[str, object]], None]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# flow.metadata keys; other addons (and the tracking log) may read them.
META_USER: Final = "mailproxy.user"
META_POLICY: Final = "mailproxy.policy"
META_ACTION: Final = "mailproxy.action"  # "blocked", "cleaned" or "refused"
# Where mitmproxy's proxyauth addon leaves (user, password) once it accepted a request's credentials.
META_PROXYAUTH: Final = "proxyauth"
REALM: Final = "mailproxy"

_BLOCK_ACTIONS: Final = frozenset({Action.STRIP, Action.BLOCK})
_IMAGE_PATH: Final = re.compile(r"\.(?:gif|png|jpe?g|webp|avif|bmp|ico|svg|tiff?)\Z", re.IGNORECASE)
# Client TLS failures that mean "the client does not trust our CA" (OpenSSL alert texts and
# mitmproxy's own wording), as opposed to a network hiccup.
_DISTRUST: Final = re.compile(r"unknown ca|bad certificate|certificate unknown|trust", re.IGNORECASE)
_CACHE_SIZE: Final = 4096
# "auto" mode passes a distrusting client's tunnels through this long (seconds), then tries again:
# its user may have installed the CA meanwhile.
DISTRUST_TTL: Final = 3600.0
# At most this many distrusting client addresses are remembered (the oldest failure is forgotten
# first), so a flood of addresses cannot grow memory; a forgotten client fails one handshake again.
DISTRUST_MAX: Final = _CACHE_SIZE


# --- Shared state ---------------------------------------------------------------------------------


class ProxyState:
    """What the addons share: configuration, policy, tracker database, TLS mode and event hook.

    Built once; `reconfigure` swaps the configuration all or nothing (mitmdump option changes).
    """

    def __init__(
        self,
        config: Config | None = None,
        *,
        db: TrackerDB | None = None,
        tls: TlsMode = "auto",
        on_event: EventHook | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.on_event = on_event
        self.tls: TlsMode = tls
        self._clock = clock
        # "auto" mode: client address -> when it last rejected our CA, oldest first. Per address, so
        # one client without the CA never turns interception off for the others.
        self._distrusting: OrderedDict[str, float] = OrderedDict()
        self._users: weakref.WeakKeyDictionary[connection.Client, str] = weakref.WeakKeyDictionary()
        self.reconfigure(config or load_config(None), db=db)

    def reconfigure(self, config: Config, *, db: TrackerDB | None = None) -> None:
        """Use `config` from now on. Raises FilterListError for an unreadable tracker list."""
        if db is None:
            db = TrackerDB.load(adblock=config.trackers.adblock, disconnect=config.trackers.disconnect)
        self.config = config
        self.db = db
        self.policy = Policy.from_config(config)
        self.allow_networks: tuple[Network, ...] = config.http.allow_networks
        # The proxy does not know a message's recipients, but an authenticated user's name is
        # usually their address: looking for it in URLs catches identity-in-path trackers.
        self.classifier_for: Callable[[str | None], Classifier] = functools.lru_cache(maxsize=256)(
            lambda user: Classifier(db, recipients=(user,) if user and "@" in user else ())
        )
        self.destination_allowed: Callable[[str], bool] = functools.lru_cache(maxsize=_CACHE_SIZE)(
            self._destination_allowed
        )

    # --- users and policy ---

    def user_for(self, flow: http.HTTPFlow) -> str | None:
        """The proxy-authenticated user of a flow (lower-case), or None.

        The name mitmproxy's proxyauth addon accepted (with `require_user`), else the one the client
        sent unasked. Proxy-Authorization is removed either way (it is for us, never for the origin
        server); a user seen on a CONNECT applies to the requests inside that tunnel.
        """
        if META_USER in flow.metadata:
            return cast("str | None", flow.metadata[META_USER])
        user: str | None = None
        value = flow.request.headers.pop("Proxy-Authorization", None)
        accepted = flow.metadata.get(META_PROXYAUTH)
        if accepted:
            user = str(accepted[0]).strip().lower() or None
        elif value is not None:
            user = _basic_user(value)
        if user is not None and flow.request.method == "CONNECT":
            self._users[flow.client_conn] = user
        if user is None:
            user = self._users.get(flow.client_conn)
        flow.metadata[META_USER] = user
        return user

    def policy_for(self, flow: http.HTTPFlow) -> EffectivePolicy:
        """The effective policy for this flow's user (no sender: the proxy cannot know it)."""
        cached = flow.metadata.get(META_POLICY)
        if isinstance(cached, EffectivePolicy):
            return cached
        eff = self.policy.resolve(sender=None, user=self.user_for(flow))
        flow.metadata[META_POLICY] = eff
        return eff

    # --- TLS ---

    def intercepts(self, client: connection.Client) -> bool:
        """Whether this client's new tunnels will be decrypted (so per-URL decisions are possible)."""
        if self.tls != "auto":
            return self.tls == "intercept"
        return not self.distrusts_ca(client)

    def distrusts_ca(self, client: connection.Client) -> bool:
        """Whether this client's address rejected our CA less than DISTRUST_TTL ago."""
        self._forget_expired()
        return _peer_host(client) in self._distrusting

    def note_distrust(self, client: connection.Client) -> bool:
        """Remember that this client's address rejected our CA; True if it was not already known."""
        self._forget_expired()
        host = _peer_host(client)
        new = host not in self._distrusting
        self._distrusting[host] = self._clock()
        self._distrusting.move_to_end(host)
        while len(self._distrusting) > DISTRUST_MAX:
            self._distrusting.popitem(last=False)
        return new

    def _forget_expired(self) -> None:
        # Entries are in the order of their last failure, so the expired ones are at the front.
        cutoff = self._clock() - DISTRUST_TTL
        while self._distrusting:
            host, since = next(iter(self._distrusting.items()))
            if since > cutoff:
                break
            del self._distrusting[host]

    # --- network guard ---

    def _destination_allowed(self, host: str) -> bool:
        """False for an IP literal on a non-public address outside allow_networks; True otherwise
        (host names are checked after resolution, see NetworkGuard.server_connect)."""
        ip = _ip_literal(host)
        return ip is None or self.address_allowed(ip)

    def address_allowed(self, ip: IPAddress) -> bool:
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1
        # not is_global covers private, loopback, link-local, shared (CGNAT), unspecified and
        # reserved ranges in one test; allow_networks may only name such ranges (config checks).
        if ip.is_global and not ip.is_multicast:
            return True
        return any(ip.version == net.version and ip in net for net in self.allow_networks)

    # --- events ---

    def emit(
        self,
        action: str,
        stage: str,
        host: str,
        *,
        flow: http.HTTPFlow | None = None,
        verdict: UrlVerdict | None = None,
        is_image: bool | None = None,
        removed: Iterable[str] = (),
        vendor: str | None = None,
        detail: str = "",
    ) -> None:
        """Log one blocked / cleaned / refused request and hand it to on_event."""
        if verdict is not None:
            vendor = verdict.vendor
        reasons = list(verdict.reasons) if verdict is not None else ([detail] if detail else [])
        user = cast("str | None", flow.metadata.get(META_USER)) if flow is not None else None
        if flow is not None:
            flow.metadata[META_ACTION] = action
        removed_names = sorted(removed)
        tracking_log.info(
            "%s %s %s vendor=%s reason=%s%s",
            action,
            stage,
            host,
            vendor or "-",
            ",".join(reasons) or "-",
            f" removed={','.join(removed_names)}" if removed_names else "",
        )
        hook = self.on_event
        if hook is None:
            return
        event: dict[str, object] = {
            "time": time.time(),
            "action": action,  # blocked | cleaned | refused
            "stage": stage,  # request | redirect | connect | resolve
            "host": host,
            "vendor": vendor,
            "reasons": reasons,
            "verdict": str(verdict.verdict) if verdict is not None else None,
            "tier": str(verdict.tier) if verdict is not None else None,
            "domain": verdict.domain if verdict is not None else None,
            "image": is_image,
            "user": user,
            "removed_params": removed_names,
        }
        try:
            hook(event)
        except Exception:
            # A broken event sink must not break browsing; the log line above is already out.
            logger.exception("on_event hook failed")


def _basic_user(value: str) -> str | None:
    """The user name of a `Basic` Proxy-Authorization value, lower-case; None if malformed."""
    scheme, _, token = value.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(token.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user = decoded.partition(":")[0].strip().lower()
    return user or None


def _peer_host(client: connection.Client) -> str:
    """The client's address without its port: one machine's connections share it."""
    return str(client.peername[0])


def _ip_literal(host: str) -> IPAddress | None:
    if not host or not (host[0].isdigit() or ":" in host or host[0] == "["):
        return None  # a host name: skip the (slow, raising) parse
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def is_image_request(request: http.Request) -> bool:
    """Whether the client asked for an image: Sec-Fetch-Dest, then Accept, then the file name."""
    headers = request.headers
    dest = headers.get("sec-fetch-dest")
    if dest:
        return dest.lower() == "image"
    accept = headers.get("accept", "").lower()
    if accept.startswith("image/"):
        return True
    if "text/html" in accept:
        return False
    return _IMAGE_PATH.search(request.path.partition("?")[0]) is not None


def _answer(is_image: bool) -> http.Response:
    """What the proxy answers for a blocked request, without contacting the server."""
    if is_image:
        return http.Response.make(
            200,
            TRANSPARENT_GIF,
            {"Content-Type": "image/gif", "Cache-Control": "no-store", "X-Mailproxy": "blocked"},
        )
    return http.Response.make(204, b"", {"Cache-Control": "no-store", "X-Mailproxy": "blocked"})


def _refusal(reason: str) -> http.Response:
    return http.Response.make(
        403,
        f"mailproxy: {reason}\n".encode(),
        {"Content-Type": "text/plain; charset=utf-8", "X-Mailproxy": "refused"},
    )


# --- Addons ---------------------------------------------------------------------------------------


class NetworkGuard:
    """Refuses private, loopback and link-local destinations unless allow_networks opens them."""

    def __init__(self, state: ProxyState) -> None:
        self.state = state
        # server connection id -> the (host, port) it had before we pinned it to a checked IP.
        self._pinned: dict[str, tuple[str, int]] = {}

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        self._check_literal(flow, "request")

    def http_connect(self, flow: http.HTTPFlow) -> None:
        self._check_literal(flow, "connect")

    def _check_literal(self, flow: http.HTTPFlow, stage: str) -> None:
        if flow.response is not None:
            return
        host = flow.request.host
        if not self.state.destination_allowed(host):
            self.state.user_for(flow)  # consume Proxy-Authorization; records the user
            flow.response = _refusal("destination is a private or local address")
            self.state.emit("refused", stage, host, flow=flow, detail="private-address")

    async def server_connect(self, data: server_hooks.ServerConnectionHookData) -> None:
        server = data.server
        if server.error or server.via is not None or server.address is None:
            return  # already refused, or an upstream proxy resolves names, not us
        host, port = server.address[0], server.address[1]
        ip = _ip_literal(host)
        if ip is not None:
            if not self.state.address_allowed(ip):
                server.error = "mailproxy: destination is a private or local address"
                self.state.emit("refused", "connect", host, detail="private-address")
            return
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError) as exc:
            server.error = f"mailproxy: cannot resolve {host}: {exc}"
            return
        for *_, sockaddr in infos:
            addr = ipaddress.ip_address(str(sockaddr[0]).partition("%")[0])
            if self.state.address_allowed(addr):
                # Pin the connection to the address we checked: mitmproxy would otherwise look
                # the name up again, and a rebinding DNS server could answer 127.0.0.1 then.
                self._pinned[server.id] = (host, port)
                server.address = (str(sockaddr[0]), port)
                return
        server.error = f"mailproxy: {host} resolves only to private or local addresses"
        self.state.emit("refused", "resolve", host, detail="private-address")

    def server_connected(self, data: server_hooks.ServerConnectionHookData) -> None:
        self._unpin(data.server)

    def server_connect_error(self, data: server_hooks.ServerConnectionHookData) -> None:
        self._unpin(data.server)

    def _unpin(self, server: connection.Server) -> None:
        # Give the connection its name back: mitmproxy reuses connections by comparing addresses
        # with the requested host, and TLS takes its SNI from it.
        original = self._pinned.pop(server.id, None)
        if original is None:
            return
        # Server.__setattr__ forbids changing the address of an open connection, to stop addons
        # from redirecting one; putting back the name it was opened for redirects nothing.
        try:
            vars(server)["address"] = original
        except TypeError:  # a future mitmproxy with slotted connections: keep the pinned address
            logger.debug("cannot restore the address of %s", original[0])


class TrackerBlock:
    """Answers tracker requests locally, cleans identifying image URLs, refuses tracker tunnels."""

    def __init__(self, state: ProxyState) -> None:
        self.state = state

    def http_connect(self, flow: http.HTTPFlow) -> None:
        if flow.response is not None or self.state.intercepts(flow.client_conn):
            return  # decrypted tunnels get per-URL decisions (a GIF instead of a broken image)
        host = flow.request.host
        match = self.state.db.match_host(host)
        if match is None:
            return
        eff = self.state.policy_for(flow)
        if eff.action_for(Verdict.TRACKER, is_image=True) not in _BLOCK_ACTIONS:
            return
        flow.response = _refusal("tracker host")
        self.state.emit("blocked", "connect", host, flow=flow, vendor=match.vendor, detail=match.reason)

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        if flow.response is not None:
            return
        request = flow.request
        eff = self.state.policy_for(flow)
        is_image = is_image_request(request)
        verdict = self.state.classifier_for(flow.metadata.get(META_USER)).classify(
            request.url, is_image=is_image
        )
        if verdict.verdict is Verdict.TRACKER:
            action = eff.action_for(Verdict.TRACKER, is_image=is_image)
        elif verdict.verdict is Verdict.IDENTIFYING and is_image:
            action = eff.action_for(Verdict.IDENTIFYING, is_image=True)
        else:
            # Clean URLs, and non-image requests with identifying parameters, are left alone: the
            # mail client also sends logins and updates through this proxy, and the images and
            # content rules are decided per message by the rewriter, which knows the context.
            return
        if action in _BLOCK_ACTIONS:
            flow.response = _answer(is_image)
            self.state.emit("blocked", "request", request.host, flow=flow, verdict=verdict, is_image=is_image)
        elif action is Action.CLEAN and verdict.remove_params:
            self._clean(flow, verdict, is_image)

    def _clean(self, flow: http.HTTPFlow, verdict: UrlVerdict, is_image: bool) -> None:
        names = verdict.remove_params
        # clean_raw_url passes decoded names; remove_params holds them as written in the URL.
        wanted = names | {decode_param_name(n) for n in names}
        path = flow.request.path
        cleaned = clean_raw_url(path, wanted.__contains__)
        if cleaned == path:
            return
        flow.request.path = cleaned
        self.state.emit(
            "cleaned",
            "request",
            flow.request.host,
            flow=flow,
            verdict=verdict,
            is_image=is_image,
            removed=names,
        )

    def response(self, flow: http.HTTPFlow) -> None:
        """Cut a redirect to a tracker here, so the client never makes that hop."""
        response = flow.response
        if response is None or not 300 <= response.status_code < 400:
            return
        location = response.headers.get("location", "").strip()
        if not location:
            return
        try:
            target = urljoin(flow.request.url, location)
            parts = urlsplit(target)
            host = parts.hostname or ""  # raises ValueError for a malformed authority
        except ValueError:
            return  # a malformed Location: the client will fail on it by itself
        # What the client gets is the answer to its original request, so that request decides;
        # a client that does not say (Accept: */*) is judged by where it was being sent.
        is_image = is_image_request(flow.request) or _IMAGE_PATH.search(parts.path) is not None
        classifier = self.state.classifier_for(flow.metadata.get(META_USER))
        verdict = classifier.classify(target, is_image=is_image)
        if verdict.verdict is not Verdict.TRACKER:
            return
        eff = self.state.policy_for(flow)
        if eff.action_for(Verdict.TRACKER, is_image=is_image) not in _BLOCK_ACTIONS:
            return
        flow.response = _answer(is_image)
        self.state.emit(
            "blocked",
            "redirect",
            host or verdict.domain,
            flow=flow,
            verdict=verdict,
            is_image=is_image,
        )


_NEVER_SENT = frozenset({b"cookie", b"cookie2", b"referer", b"proxy-connection"})
# (we set DNT, we set Sec-GPC) -> request header names to drop, lower-cased.
_DROP_REQUEST = {
    (dnt, gpc): _NEVER_SENT | ({b"dnt"} if dnt else set()) | ({b"sec-gpc"} if gpc else set())
    for dnt in (False, True)
    for gpc in (False, True)
}


class PrivacyHeaders:
    """DNT / Sec-GPC as configured, no Cookie or Referer out, no Set-Cookie back."""

    def __init__(self, state: ProxyState) -> None:
        self.state = state

    def http_connect(self, flow: http.HTTPFlow) -> None:
        self.state.user_for(flow)  # remembers the tunnel's user; consumes Proxy-Authorization

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        if flow.response is not None:
            return
        eff = self.state.policy_for(flow)
        headers = flow.request.headers
        # One pass over the raw fields (this runs on every request): drop what never leaves, and the
        # client's DNT / Sec-GPC when ours replace them (one of each per request). When dnt is "unset"
        # or gpc is off, the client's own header stays: intermediaries must not add or remove it.
        drop = _DROP_REQUEST[(eff.dnt != "unset", eff.gpc)]
        fields = tuple(f for f in headers.fields if f[0].lower() not in drop)
        if eff.dnt != "unset":
            fields += ((b"DNT", eff.dnt.encode()),)
        if eff.gpc:
            fields += ((b"Sec-GPC", b"1"),)
        headers.fields = fields

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        # Here rather than in `response`, so it also holds for streamed bodies.
        response = flow.response
        if response is not None:
            response.headers.pop("Set-Cookie", None)
            response.headers.pop("Set-Cookie2", None)


class UserChallenge:
    """Names mailproxy in the 407 challenge of mitmproxy's proxyauth addon (`require_user`).

    The client shows the realm when it asks for a user name; mitmproxy's says "mitmproxy". Its
    proxyauth addon runs before ours, and nothing else answers 407 before a request is sent on.
    """

    def http_connect(self, flow: http.HTTPFlow) -> None:
        self.requestheaders(flow)

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        response = flow.response
        if response is not None and response.status_code == 407:
            response.headers["Proxy-Authenticate"] = f'Basic realm="{REALM}"'


class TlsPolicy:
    """Which tunnels are decrypted: all, none (host-level mode), or per client until it balks."""

    def __init__(self, state: ProxyState) -> None:
        self.state = state

    def tls_clienthello(self, data: tls.ClientHelloData) -> None:
        if not self.state.intercepts(data.context.client):
            data.ignore_connection = True

    def tls_failed_client(self, data: tls.TlsData) -> None:
        if self.state.tls != "auto" or not _DISTRUST.search(data.conn.error or ""):
            return
        client = data.context.client
        if self.state.note_distrust(client):
            # The address only: mitmproxy's error text names the host the client was visiting.
            logger.info(
                "client %s does not trust the mitmproxy CA; passing its HTTPS through for an hour, "
                "blocking known tracker hosts only. Run `mailproxy ca` to install it.",
                _peer_host(client),
            )


class ConfigOption:
    """The mitmdump options: `--set mailproxy_config=FILE [--set mailproxy_tls=MODE]`."""

    def __init__(self, state: ProxyState) -> None:
        self.state = state

    def load(self, loader: Loader) -> None:
        loader.add_option(
            "mailproxy_config",
            str,
            "",
            "mailproxy TOML configuration file; empty for the defaults.",
        )
        loader.add_option(
            "mailproxy_tls",
            str,
            "",
            "Which HTTPS tunnels mailproxy decrypts: intercept (the client trusts the mitmproxy "
            "CA), passthrough (block known tracker hosts at CONNECT only), or auto; empty for the "
            "configuration file's [http] tls.",
            choices=["", *TLS_MODES],
        )

    def configure(self, updated: set[str]) -> None:
        from mitmproxy import ctx

        if "mailproxy_config" in updated:
            path = ctx.options.mailproxy_config
            try:
                self.state.reconfigure(load_config(path or None))
            except MailproxyError as exc:
                raise exceptions.OptionsError(str(exc)) from exc
        if updated & {"mailproxy_config", "mailproxy_tls"}:
            # The option, when set, overrides the file (as `mailproxy run --tls` does).
            self.state.tls = cast(TlsMode, ctx.options.mailproxy_tls or str(self.state.config.http.tls))


def all_addons(state: ProxyState) -> list[object]:
    """Every mailproxy addon, in the order they must run (challenge, guard, blocking, headers)."""
    return [
        UserChallenge(),
        NetworkGuard(state),
        TrackerBlock(state),
        PrivacyHeaders(state),
        TlsPolicy(state),
    ]
