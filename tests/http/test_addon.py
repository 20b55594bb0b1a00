"""Unit tests of the mitmproxy addons, with mitmproxy's own taddons / tflow helpers."""

from __future__ import annotations

import asyncio
import base64
import logging
import ssl
import struct
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from mitmproxy import connection, exceptions, http, tls
from mitmproxy.addons.proxyauth import ProxyAuth
from mitmproxy.options import Options
from mitmproxy.proxy import context, server_hooks
from mitmproxy.test import taddons, tflow

from mailproxy.config import Config, load_config
from mailproxy.http.addon import (
    DISTRUST_MAX,
    DISTRUST_TTL,
    META_USER,
    TRANSPARENT_GIF,
    ConfigOption,
    NetworkGuard,
    PrivacyHeaders,
    ProxyState,
    TlsPolicy,
    TrackerBlock,
    all_addons,
    is_image_request,
)
from mailproxy.http.server import ca_info

REPO = Path(__file__).resolve().parents[2]

TRACKER_HOST_URL = "http://trk.klaviyomail.com/open/abc"  # a beacon-only host (bundled dataset)
TRACKER_PATH_URL = "http://news.example.com/open.gif?e=abc"  # a generic open-tracking shape
CLEAN_URL = "http://news.example.com/logo.png"
IDENTIFYING_URL = "http://news.example.com/hero.png?utm_source=nl&uid=a8f7d6e5c4b3a2918f7e&w=600"
IMAGE_ACCEPT = {"Accept": "image/avif,image/webp,*/*"}


def config(tmp_path: Path, text: str) -> Config:
    path = tmp_path / "mailproxy.toml"
    path.write_text(text, encoding="utf-8")
    return load_config(path)


def flow(url: str, headers: dict[str, str] | None = None, method: str = "GET") -> http.HTTPFlow:
    f = tflow.tflow()
    f.request = http.Request.make(method, url, headers=http.Headers(_pairs(headers)))
    return f


def connect_flow(host: str, port: int = 443, headers: dict[str, str] | None = None) -> http.HTTPFlow:
    f = tflow.tflow()
    authority = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    f.request = http.Request(
        host,
        port,
        b"CONNECT",
        b"",
        authority.encode(),
        b"",
        b"HTTP/1.1",
        http.Headers(_pairs(headers)),
        b"",
        None,
        0.0,
        None,
    )
    return f


def _pairs(headers: dict[str, str] | None) -> list[tuple[bytes, bytes]]:
    return [(k.encode(), v.encode("utf-8", "surrogateescape")) for k, v in (headers or {}).items()]


def basic(user: str, password: str = "x") -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.fixture
def ctx() -> Iterator[taddons.context]:
    with taddons.context() as tctx:
        yield tctx


@pytest.fixture
def events() -> list[dict[str, object]]:
    return []


@pytest.fixture
def state(events: list[dict[str, object]]) -> ProxyState:
    return ProxyState(load_config(None), on_event=events.append)


def run_chain(state: ProxyState, f: http.HTTPFlow, hook_name: str = "requestheaders") -> http.HTTPFlow:
    """The request-side hooks of every addon, in order, as mitmproxy calls them."""
    for addon in all_addons(state):
        hook = getattr(addon, hook_name, None)
        if hook is not None:
            hook(f)
    return f


# --- the GIF --------------------------------------------------------------------------------------


def test_transparent_gif_is_a_1x1_gif_with_a_transparent_colour() -> None:
    gif = TRANSPARENT_GIF
    assert gif[:6] == b"GIF89a" and gif[-1:] == b";"
    width, height = struct.unpack("<HH", gif[6:10])
    assert (width, height) == (1, 1)
    gce = gif.index(b"\x21\xf9\x04")
    flags, _delay, transparent_index = struct.unpack("<BHB", gif[gce + 3 : gce + 7])
    assert flags & 1 == 1  # transparency flag
    assert transparent_index == 0
    assert b"\x2c" in gif[gce:]  # an image descriptor follows


# --- privacy headers ------------------------------------------------------------------------------


@pytest.mark.parametrize(("dnt", "sent", "expected"), [("1", "0", "1"), ("0", "1", "0"), ("1", None, "1")])
def test_dnt_is_set_to_the_configured_value(
    tmp_path: Path, ctx: taddons.context, dnt: str, sent: str | None, expected: str
) -> None:
    s = ProxyState(config(tmp_path, f'[privacy]\ndnt = "{dnt}"\n'))
    f = flow(CLEAN_URL, {"DNT": sent} if sent else {})
    PrivacyHeaders(s).requestheaders(f)
    assert f.request.headers.get_all("DNT") == [expected]


def test_dnt_unset_never_adds_the_header_and_keeps_the_clients(tmp_path: Path, ctx: taddons.context) -> None:
    s = ProxyState(config(tmp_path, '[privacy]\ndnt = "unset"\n'))
    absent = flow(CLEAN_URL)
    PrivacyHeaders(s).requestheaders(absent)
    assert "DNT" not in absent.request.headers
    sent = flow(CLEAN_URL, {"DNT": "0"})
    PrivacyHeaders(s).requestheaders(sent)
    assert sent.request.headers["DNT"] == "0"


def test_gpc_on_adds_sec_gpc(state: ProxyState, ctx: taddons.context) -> None:
    f = flow(CLEAN_URL)
    PrivacyHeaders(state).requestheaders(f)
    assert f.request.headers["Sec-GPC"] == "1"


def test_gpc_off_adds_nothing_but_keeps_the_clients(tmp_path: Path, ctx: taddons.context) -> None:
    s = ProxyState(config(tmp_path, "[privacy]\ngpc = false\n"))
    f = flow(CLEAN_URL)
    PrivacyHeaders(s).requestheaders(f)
    assert "Sec-GPC" not in f.request.headers
    own = flow(CLEAN_URL, {"Sec-GPC": "1"})
    PrivacyHeaders(s).requestheaders(own)
    assert own.request.headers["Sec-GPC"] == "1"  # intermediaries must not remove it


def test_cookie_referer_and_proxy_headers_are_stripped(state: ProxyState, ctx: taddons.context) -> None:
    f = flow(
        CLEAN_URL,
        {
            "Cookie": "sid=secret",
            "Referer": "http://mail.example/inbox",
            "Proxy-Connection": "Keep-Alive",
            "Proxy-Authorization": basic("alice@example.org"),
            "User-Agent": "Thunderbird",
        },
    )
    PrivacyHeaders(state).requestheaders(f)
    for name in ("Cookie", "Referer", "Proxy-Connection", "Proxy-Authorization"):
        assert name not in f.request.headers
    assert f.request.headers["User-Agent"] == "Thunderbird"


def test_set_cookie_is_stripped_from_responses(state: ProxyState, ctx: taddons.context) -> None:
    f = flow(CLEAN_URL)
    f.response = http.Response.make(
        200,
        b"x",
        [(b"Set-Cookie", b"a=1"), (b"Set-Cookie", b"b=2"), (b"Content-Type", b"image/png")],
    )
    PrivacyHeaders(state).responseheaders(f)
    assert "Set-Cookie" not in f.response.headers
    assert f.response.headers["Content-Type"] == "image/png"
    PrivacyHeaders(state).responseheaders(flow(CLEAN_URL))  # no response yet: no crash


# --- tracker blocking -----------------------------------------------------------------------------


def test_tracker_image_gets_a_transparent_gif_without_the_server(
    state: ProxyState, ctx: taddons.context, events: list[dict[str, object]]
) -> None:
    f = run_chain(state, flow(TRACKER_HOST_URL, {**IMAGE_ACCEPT, "Cookie": "id=1"}))
    assert f.response is not None
    assert f.response.status_code == 200
    assert f.response.content == TRANSPARENT_GIF
    assert f.response.headers["Content-Type"] == "image/gif"
    assert events[-1]["action"] == "blocked"
    assert events[-1]["vendor"] == "Klaviyo"
    assert events[-1]["host"] == "trk.klaviyomail.com"


def test_tracker_non_image_gets_204(state: ProxyState, ctx: taddons.context) -> None:
    f = run_chain(state, flow(TRACKER_PATH_URL.replace("open.gif", "open"), {"Accept": "*/*"}))
    assert f.response is not None
    assert f.response.status_code == 204
    assert f.response.content == b""


def test_clean_url_is_not_answered_locally(
    state: ProxyState, ctx: taddons.context, events: list[dict[str, object]]
) -> None:
    f = run_chain(state, flow(CLEAN_URL, IMAGE_ACCEPT))
    assert f.response is None
    assert events == []


def test_tracker_allowed_by_policy_is_forwarded(tmp_path: Path, ctx: taddons.context) -> None:
    s = ProxyState(config(tmp_path, '[policy]\ntracker = "allow"\n'))
    f = run_chain(s, flow(TRACKER_HOST_URL, IMAGE_ACCEPT))
    assert f.response is None


def test_per_sender_style_user_policy_via_proxy_auth(tmp_path: Path, ctx: taddons.context) -> None:
    s = ProxyState(config(tmp_path, '[users."bob@example.org"]\ntracker = "allow"\ndnt = "0"\ngpc = false\n'))
    bob = run_chain(
        s, flow(TRACKER_HOST_URL, {**IMAGE_ACCEPT, "Proxy-Authorization": basic("Bob@Example.org")})
    )
    assert bob.response is None
    assert bob.request.headers["DNT"] == "0"
    assert "Sec-GPC" not in bob.request.headers
    assert "Proxy-Authorization" not in bob.request.headers
    anonymous = run_chain(s, flow(TRACKER_HOST_URL, IMAGE_ACCEPT))
    assert anonymous.response is not None  # global policy: blocked
    unknown = run_chain(s, flow(CLEAN_URL, {"Proxy-Authorization": basic("carol@example.org")}))
    assert unknown.request.headers["DNT"] == "1"  # unknown users get the global settings


def test_user_of_a_connect_applies_inside_the_tunnel(tmp_path: Path, ctx: taddons.context) -> None:
    s = ProxyState(config(tmp_path, '[users."bob@example.org"]\ndnt = "0"\n'))
    connect = connect_flow("news.example.com", headers={"Proxy-Authorization": basic("bob@example.org")})
    PrivacyHeaders(s).http_connect(connect)
    inner = flow("https://news.example.com/logo.png")
    inner.client_conn = connect.client_conn
    PrivacyHeaders(s).requestheaders(inner)
    assert inner.request.headers["DNT"] == "0"
    other = flow("https://news.example.com/logo.png")  # another client connection
    PrivacyHeaders(s).requestheaders(other)
    assert other.request.headers["DNT"] == "1"


@pytest.fixture
def proxyauth() -> Iterator[ProxyAuth]:
    """mitmproxy's proxyauth addon as `[http] require_user` sets it up (it runs before ours)."""
    auth = ProxyAuth()
    with taddons.context(auth) as tctx:
        tctx.configure(auth, proxyauth="any")
        yield auth


def test_require_user_challenges_requests_without_credentials_as_mailproxy(
    state: ProxyState, proxyauth: ProxyAuth
) -> None:
    plain = flow(CLEAN_URL)
    proxyauth.requestheaders(plain)
    connect = connect_flow("news.example.com")
    proxyauth.http_connect(connect)
    for f, hook in ((plain, "requestheaders"), (connect, "http_connect")):
        run_chain(state, f, hook)
        assert f.response is not None and f.response.status_code == 407
        assert f.response.headers.get_all("Proxy-Authenticate") == ['Basic realm="mailproxy"']


def test_require_user_takes_the_user_proxyauth_accepted(
    tmp_path: Path, proxyauth: ProxyAuth, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    s = ProxyState(config(tmp_path, '[users."alice@example.org"]\ndnt = "0"\ngpc = false\n'))
    credentials = {"Proxy-Authorization": basic("Alice@Example.org", "pw-Xq7!")}
    plain = flow(CLEAN_URL, credentials)
    proxyauth.requestheaders(plain)
    run_chain(s, plain)
    connect = connect_flow("news.example.com", headers=credentials)
    proxyauth.http_connect(connect)
    run_chain(s, connect, "http_connect")
    assert connect.response is None
    inner = flow("https://news.example.com/logo.png")  # inside the tunnel: no credentials again
    inner.client_conn = connect.client_conn
    proxyauth.requestheaders(inner)
    run_chain(s, inner)
    for f in (plain, connect, inner):
        assert f.metadata[META_USER] == "alice@example.org"
        assert "Proxy-Authorization" not in f.request.headers
    for f in (plain, inner):
        assert f.response is None
        assert f.request.headers["DNT"] == "0"
        assert "Sec-GPC" not in f.request.headers
    assert "pw-Xq7" not in caplog.text and credentials["Proxy-Authorization"][6:] not in caplog.text


@pytest.mark.parametrize(
    "value",
    ["Basic !!!notbase64", "Bearer abc", "Basic " + base64.b64encode(b"\xff\xfe:x").decode(), ""],
)
def test_malformed_proxy_authorization_gives_the_global_settings(
    state: ProxyState, ctx: taddons.context, value: str
) -> None:
    f = run_chain(state, flow(CLEAN_URL, {"Proxy-Authorization": value}))
    assert f.metadata[META_USER] is None
    assert f.request.headers["DNT"] == "1"
    assert "Proxy-Authorization" not in f.request.headers


def test_identifying_parameters_are_removed_from_images(
    state: ProxyState, ctx: taddons.context, events: list[dict[str, object]]
) -> None:
    f = run_chain(state, flow(IDENTIFYING_URL, IMAGE_ACCEPT))
    assert f.response is None
    assert f.request.path == "/hero.png?w=600"
    assert events[-1]["action"] == "cleaned"
    assert events[-1]["removed_params"] == ["uid", "utm_source"]


def test_identifying_parameters_kept_when_policy_allows(tmp_path: Path, ctx: taddons.context) -> None:
    s = ProxyState(config(tmp_path, '[policy]\nidentifiers = "allow"\n'))
    f = run_chain(s, flow(IDENTIFYING_URL, IMAGE_ACCEPT))
    assert f.response is None
    assert "uid=" in f.request.path


def test_identifying_image_blocked_when_policy_blocks(tmp_path: Path, ctx: taddons.context) -> None:
    s = ProxyState(config(tmp_path, '[policy]\nidentifiers = "block"\n'))
    f = run_chain(s, flow(IDENTIFYING_URL, IMAGE_ACCEPT))
    assert f.response is not None and f.response.content == TRANSPARENT_GIF


def test_identifying_non_image_request_is_left_alone(state: ProxyState, ctx: taddons.context) -> None:
    # e.g. an OAuth callback through the same proxy: cleaning its query would break the login
    url = "http://login.example.com/cb?state=a8f7d6e5c4b3a2918f7e&uid=a8f7d6e5c4b3a2918f7e"
    f = run_chain(state, flow(url, {"Accept": "text/html,*/*"}))
    assert f.response is None
    assert f.request.url == url


def test_tracker_rewrite_rule_cleans_instead_of_blocking(tmp_path: Path, ctx: taddons.context) -> None:
    s = ProxyState(config(tmp_path, '[policy]\ntracker = "rewrite"\n'))
    f = run_chain(s, flow("http://news.example.com/open.gif?uid=a8f7d6e5c4b3a2918f7e&v=2", IMAGE_ACCEPT))
    assert f.response is None
    assert f.request.path == "/open.gif?v=2"


@pytest.mark.parametrize(
    ("headers", "path", "expected"),
    [
        ({"Sec-Fetch-Dest": "image"}, "/x", True),
        ({"Sec-Fetch-Dest": "document", "Accept": "image/png"}, "/x.png", False),
        ({"Accept": "image/webp,*/*"}, "/x", True),
        ({"Accept": "text/html,application/xhtml+xml"}, "/x.gif", False),
        ({"Accept": "*/*"}, "/a/pixel.GIF?x=1", True),
        ({"Accept": "*/*"}, "/a/open", False),
        ({}, "/style.css", False),
    ],
)
def test_is_image_request(headers: dict[str, str], path: str, expected: bool) -> None:
    request = http.Request.make("GET", "http://h.example" + path, headers=http.Headers(_pairs(headers)))
    assert is_image_request(request) is expected


# --- redirects ------------------------------------------------------------------------------------


def redirect(url: str, location: str, headers: dict[str, str] | None = None) -> http.HTTPFlow:
    f = flow(url, headers or IMAGE_ACCEPT)
    f.response = http.Response.make(302, b"", {"Location": location})
    return f


def test_redirect_to_a_tracker_is_answered_locally(
    state: ProxyState, ctx: taddons.context, events: list[dict[str, object]]
) -> None:
    f = redirect("http://click.example.com/r/1", TRACKER_HOST_URL)
    TrackerBlock(state).response(f)
    assert f.response is not None and f.response.status_code == 200
    assert f.response.content == TRANSPARENT_GIF
    assert "Location" not in f.response.headers
    assert events[-1]["stage"] == "redirect"
    assert events[-1]["host"] == "trk.klaviyomail.com"


def test_relative_redirect_to_a_tracking_path_is_cut(state: ProxyState, ctx: taddons.context) -> None:
    f = redirect("http://news.example.com/r/1", "/open.gif?e=abc", {"Accept": "*/*"})
    TrackerBlock(state).response(f)
    assert f.response is not None and f.response.status_code == 200  # .gif path: an image


def test_redirect_to_clean_content_is_kept(state: ProxyState, ctx: taddons.context) -> None:
    f = redirect("http://news.example.com/r/1", CLEAN_URL)
    TrackerBlock(state).response(f)
    assert f.response is not None and f.response.status_code == 302


@pytest.mark.parametrize("location", ["http://[::1", "http://a:99999999/x", "\x00\x01", ""])
def test_malformed_redirect_is_left_to_the_client(
    state: ProxyState, ctx: taddons.context, location: str
) -> None:
    f = redirect("http://news.example.com/r/1", location)
    TrackerBlock(state).response(f)
    assert f.response is not None and f.response.status_code == 302


def test_next_hop_to_a_tracker_is_blocked_too(state: ProxyState, ctx: taddons.context) -> None:
    # the hop itself, if the client follows a redirect the proxy did not see (e.g. a cached one)
    f = run_chain(state, flow(TRACKER_PATH_URL, {"Accept": "*/*"}))
    assert f.response is not None and f.response.content == TRANSPARENT_GIF


# --- host-level mode (CONNECT) and TLS policy -----------------------------------------------------


def test_connect_to_tracker_host_refused_in_host_level_mode(ctx: taddons.context) -> None:
    s = ProxyState(load_config(None), tls="passthrough")
    f = connect_flow("trk.klaviyomail.com")
    TrackerBlock(s).http_connect(f)
    assert f.response is not None and f.response.status_code == 403
    ok = connect_flow("news.example.com")
    TrackerBlock(s).http_connect(ok)
    assert ok.response is None


def test_connect_to_tracker_host_allowed_when_intercepting(ctx: taddons.context) -> None:
    # decrypted tunnels get per-URL answers (a GIF, not a broken image)
    s = ProxyState(load_config(None), tls="intercept")
    f = connect_flow("trk.klaviyomail.com")
    TrackerBlock(s).http_connect(f)
    assert f.response is None


def client_hello_data(client: connection.Client | None = None) -> tls.ClientHelloData:
    """A real ClientHello, produced by the ssl module into a memory BIO."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ssl.create_default_context().wrap_bio(incoming, outgoing, server_hostname="news.example.com")
    with pytest.raises(ssl.SSLWantReadError):
        obj.do_handshake()
    record = outgoing.read()
    ctx = context.Context(client or tflow.tclient_conn(), Options())
    # without the 5-byte record header and the 4-byte handshake header, as mitmproxy passes it
    return tls.ClientHelloData(ctx, tls.ClientHello(record[9:]))


_OPTIONS = Options()


def client_at(host: str, port: int = 50000) -> connection.Client:
    """A client connection from this peer address."""
    client = tflow.tclient_conn()
    client.peername = (host, port)
    return client


def tls_failure(error: str, client: connection.Client | None = None) -> tls.TlsData:
    client = client or tflow.tclient_conn()
    client.error = error
    return tls.TlsData(conn=client, context=context.Context(client, _OPTIONS))


def passes_through(policy: TlsPolicy, client: connection.Client) -> bool:
    """Whether the policy leaves this client's next tunnel undecrypted."""
    data = client_hello_data(client)
    policy.tls_clienthello(data)
    return data.ignore_connection


DISTRUST_ERROR = "The client does not trust the proxy's certificate for news.example.com (unknown ca)"


def test_tls_passthrough_ignores_every_tunnel(ctx: taddons.context) -> None:
    data = client_hello_data()
    assert data.client_hello.sni == "news.example.com"
    TlsPolicy(ProxyState(load_config(None), tls="passthrough")).tls_clienthello(data)
    assert data.ignore_connection is True
    intercepted = client_hello_data()
    TlsPolicy(ProxyState(load_config(None), tls="intercept")).tls_clienthello(intercepted)
    assert intercepted.ignore_connection is False


def test_tls_auto_switches_to_host_level_only_for_the_client_that_rejects_the_ca(
    ctx: taddons.context, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="mailproxy.http.addon")
    s = ProxyState(load_config(None), tls="auto")
    policy, block = TlsPolicy(s), TrackerBlock(s)
    first, second = client_at("192.0.2.10"), client_at("192.0.2.20")
    policy.tls_failed_client(tls_failure("Connection reset by peer", first))
    assert not passes_through(policy, first)  # a network error is not distrust
    policy.tls_failed_client(tls_failure(DISTRUST_ERROR, first))
    # The first client's tunnels pass through, tracker hosts refused at CONNECT; on a new connection
    # from the same machine (another port) too.
    assert passes_through(policy, first)
    assert passes_through(policy, client_at("192.0.2.10", 50001))
    connect = connect_flow("trk.klaviyomail.com")
    connect.client_conn = first
    block.http_connect(connect)
    assert connect.response is not None and connect.response.status_code == 403
    # The second client is still intercepted: per-URL answers inside its tunnels.
    assert not passes_through(policy, second)
    connect = connect_flow("trk.klaviyomail.com")
    connect.client_conn = second
    block.http_connect(connect)
    assert connect.response is None
    # One INFO line per address, naming it but not the host the client was visiting.
    policy.tls_failed_client(tls_failure(DISTRUST_ERROR, client_at("192.0.2.10", 50002)))
    lines = [r for r in caplog.records if "does not trust" in r.getMessage()]
    assert [(r.levelno, r.getMessage().split()[1]) for r in lines] == [(logging.INFO, "192.0.2.10")]
    assert "news.example.com" not in caplog.text


def test_tls_auto_remembers_a_bounded_number_of_distrusting_clients(ctx: taddons.context) -> None:
    s = ProxyState(load_config(None), tls="auto")
    policy = TlsPolicy(s)
    extra = 50
    hosts = [f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}" for i in range(DISTRUST_MAX + extra)]
    for host in hosts:
        policy.tls_failed_client(tls_failure(DISTRUST_ERROR, client_at(host)))
    # The oldest failures are forgotten (those clients are tried again), the newest remembered.
    assert not passes_through(policy, client_at(hosts[0]))
    assert not passes_through(policy, client_at(hosts[extra - 1]))
    assert passes_through(policy, client_at(hosts[extra]))
    assert passes_through(policy, client_at(hosts[-1]))
    assert not passes_through(policy, client_at("192.0.2.99"))
    assert len(s._distrusting) == DISTRUST_MAX


def test_tls_auto_tries_a_distrusting_client_again_after_a_while(
    ctx: taddons.context, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="mailproxy.http.addon")
    now = [1000.0]
    s = ProxyState(load_config(None), tls="auto", clock=lambda: now[0])
    policy = TlsPolicy(s)
    early, late = client_at("192.0.2.10"), client_at("192.0.2.20")
    policy.tls_failed_client(tls_failure(DISTRUST_ERROR, early))
    now[0] += DISTRUST_TTL / 2
    policy.tls_failed_client(tls_failure(DISTRUST_ERROR, late))
    now[0] += DISTRUST_TTL / 2 - 1
    assert passes_through(policy, early) and passes_through(policy, late)
    now[0] += 2  # the user may have installed the CA by now
    assert not passes_through(policy, early)
    assert passes_through(policy, late)
    # Rejecting it again switches that client again, and says so again.
    policy.tls_failed_client(tls_failure(DISTRUST_ERROR, early))
    assert passes_through(policy, early)
    assert sum("192.0.2.10" in r.getMessage() for r in caplog.records) == 2


@pytest.mark.parametrize("mode", ["intercept", "passthrough"])
def test_tls_fixed_modes_never_switch(ctx: taddons.context, mode: str) -> None:
    policy = TlsPolicy(ProxyState(load_config(None), tls=mode))  # type: ignore[arg-type]
    client = client_at("192.0.2.10")
    policy.tls_failed_client(tls_failure("unknown ca", client))
    assert passes_through(policy, client) is (mode == "passthrough")
    assert passes_through(policy, client_at("192.0.2.20")) is (mode == "passthrough")


# --- network guard --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "refused"),
    [
        ("127.0.0.2", True),
        ("127.0.0.1", False),  # allowed by the test config
        ("10.1.2.3", True),
        ("192.168.1.1", True),
        ("169.254.169.254", True),
        ("100.64.0.1", True),
        ("0.0.0.0", True),
        ("[::1]", True),
        ("[fe80::1]", True),
        ("[::ffff:127.0.0.2]", True),
        ("93.184.216.34", False),
        ("news.example.com", False),  # names are checked after resolution
    ],
)
def test_private_literal_destinations_are_refused(
    tmp_path: Path, ctx: taddons.context, host: str, refused: bool
) -> None:
    s = ProxyState(config(tmp_path, '[http]\nallow_networks = ["127.0.0.1/32"]\n'))
    f = run_chain(s, flow(f"http://{host}/router.cgi", IMAGE_ACCEPT))
    assert (f.response is not None and f.response.status_code == 403) is refused
    c = connect_flow(host.strip("[]"))
    NetworkGuard(s).http_connect(c)
    assert (c.response is not None) is refused


def test_allow_networks_opens_a_private_range(tmp_path: Path, ctx: taddons.context) -> None:
    s = ProxyState(config(tmp_path, '[http]\nallow_networks = ["192.168.0.0/16"]\n'))
    assert run_chain(s, flow("http://192.168.1.1/x.png")).response is None
    assert run_chain(s, flow("http://10.0.0.1/x.png")).response is not None


def server_data(host: str, port: int = 80) -> server_hooks.ServerConnectionHookData:
    server = tflow.tserver_conn()
    server.address = (host, port)
    return server_hooks.ServerConnectionHookData(server=server, client=tflow.tclient_conn())


def test_name_resolving_to_loopback_is_refused(ctx: taddons.context, events: list[dict[str, object]]) -> None:
    guard = NetworkGuard(ProxyState(load_config(None), on_event=events.append))
    data = server_data("localhost")
    asyncio.run(guard.server_connect(data))
    assert data.server.error is not None and "private" in data.server.error
    assert events[-1]["action"] == "refused"


def test_allowed_name_is_pinned_to_the_checked_address_then_restored(
    tmp_path: Path, ctx: taddons.context
) -> None:
    guard = NetworkGuard(
        ProxyState(config(tmp_path, '[http]\nallow_networks = ["127.0.0.0/8", "::1/128"]\n'))
    )
    data = server_data("localhost", 8080)
    asyncio.run(guard.server_connect(data))
    assert data.server.error is None
    assert data.server.address is not None
    assert data.server.address[0] in ("127.0.0.1", "::1")
    assert data.server.address[1] == 8080
    guard.server_connected(data)
    assert data.server.address == ("localhost", 8080)


def test_server_connect_checks_literals_and_skips_refused_connections(ctx: taddons.context) -> None:
    guard = NetworkGuard(ProxyState(load_config(None)))
    literal = server_data("10.0.0.1")
    asyncio.run(guard.server_connect(literal))
    assert literal.server.error is not None
    public = server_data("93.184.216.34")
    asyncio.run(guard.server_connect(public))
    assert public.server.error is None and public.server.address == ("93.184.216.34", 80)
    already = server_data("localhost")
    already.server.error = "refused earlier"
    asyncio.run(guard.server_connect(already))
    assert already.server.error == "refused earlier" and already.server.address == ("localhost", 80)


# --- events and logs ------------------------------------------------------------------------------


def test_events_and_log_lines_carry_no_cookies_or_query(
    state: ProxyState,
    ctx: taddons.context,
    events: list[dict[str, object]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="mailproxy.tracking")
    run_chain(state, flow(TRACKER_PATH_URL + "&email=alice%40example.org", {"Cookie": "sid=SECRET"}))
    assert events and events[-1]["reasons"] == ["tracking-path"]
    text = caplog.text + repr(events)
    assert "SECRET" not in text and "alice" not in text and "e=abc" not in text
    assert "news.example.com" in caplog.text and "tracking-path" in caplog.text


def test_a_failing_event_hook_does_not_break_the_request(ctx: taddons.context) -> None:
    def broken(event: dict[str, object]) -> None:
        raise RuntimeError("sink down")

    s = ProxyState(load_config(None), on_event=broken)
    f = run_chain(s, flow(TRACKER_HOST_URL, IMAGE_ACCEPT))
    assert f.response is not None and f.response.content == TRANSPARENT_GIF


# --- options, scripts, ca -------------------------------------------------------------------------


def test_config_option_loads_the_file(tmp_path: Path) -> None:
    s = ProxyState()
    path = tmp_path / "c.toml"
    path.write_text('[privacy]\ndnt = "0"\n', encoding="utf-8")
    opt = ConfigOption(s)
    with taddons.context(opt) as tctx:
        tctx.configure(opt, mailproxy_config=str(path), mailproxy_tls="passthrough")
        assert s.config.privacy.dnt == "0"
        assert s.tls == "passthrough"
        with pytest.raises(exceptions.OptionsError, match="nope.toml"):
            tctx.configure(opt, mailproxy_config=str(tmp_path / "nope.toml"))
        assert s.config.privacy.dnt == "0"  # the old configuration stays


def test_tls_mode_comes_from_the_file_unless_the_option_sets_it(tmp_path: Path) -> None:
    s = ProxyState()
    path = tmp_path / "c.toml"
    path.write_text('[http]\ntls = "passthrough"\n', encoding="utf-8")
    opt = ConfigOption(s)
    with taddons.context(opt) as tctx:
        tctx.configure(opt, mailproxy_config=str(path))
        assert s.tls == "passthrough"
        tctx.configure(opt, mailproxy_tls="intercept")
        assert s.tls == "intercept"
        tctx.configure(opt, mailproxy_tls="")
        assert s.tls == "passthrough"


@pytest.mark.parametrize("script", sorted(p.name for p in (REPO / "addons").glob("*.py")))
def test_addon_scripts_load_alone(script: str) -> None:
    with taddons.context() as tctx:
        module = tctx.script(str(REPO / "addons" / script))
        assert isinstance(module.addons[0], ConfigOption)
        assert len(module.addons) >= 2


def test_ca_info_names_the_certificate_and_thunderbird_steps(tmp_path: Path) -> None:
    text = ca_info(tmp_path)
    assert str(tmp_path / "mitmproxy-ca-cert.pem") in text
    assert "created the first time" in text
    assert "Thunderbird" not in text or "Authorities" in text
    (tmp_path / "mitmproxy-ca-cert.pem").write_text("-----BEGIN CERTIFICATE-----\n")
    text = ca_info(tmp_path)
    assert "created the first time" not in text
    assert "Authorities" in text and "Trust this CA to identify websites" in text
    assert "~" not in ca_info()  # the default confdir is expanded


def test_proxy_state_survives_unusual_input(state: ProxyState, ctx: taddons.context) -> None:
    weird = flow("http://xn--nxasmq6b.example/%ff%00?%zz=1&&=&a", {"Accept": "\x00"})
    run_chain(state, weird)  # no exception
    assert weird.response is None
    empty = SimpleNamespace(headers=http.Headers(), path="")
    assert is_image_request(empty) is False  # type: ignore[arg-type]
