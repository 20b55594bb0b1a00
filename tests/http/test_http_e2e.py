"""End to end: `mailproxy run` as a real process, real HTTP and HTTPS servers that record what
reaches them, and curl as the client. Also the runner in-process (signals, halves, failures)."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import pytest

from mailproxy.config import Config, load_config
from mailproxy.errors import MailproxyError
from mailproxy.http.addon import TRANSPARENT_GIF
from mailproxy.http.server import HttpProxy
from mailproxy.runner import run
from tests.recording_server import GREY, Recorder, Reply, http_and_https, png, serving

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed"),
]

REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT = 30.0


@dataclass
class World:
    http_port: int
    https_port: int
    other_port: int  # a server on 127.0.0.2, which the proxy must refuse
    recorder: Recorder
    other: Recorder
    trustme_ca: Path  # the HTTPS server's issuer, which both proxies trust upstream
    mitm_ca: Path  # the intercepting proxy's CA
    intercept_port: int
    passthrough_port: int
    logs: dict[str, Path]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_config(path: Path, port: int) -> Path:
    path.write_text(
        f"""
[http]
listen = "127.0.0.1:{port}"
allow_networks = ["127.0.0.1/32"]

[imap]
enabled = false

[privacy]
dnt = "1"
gpc = true

[users."bob@example.org"]
dnt = "0"
gpc = false
""",
        encoding="utf-8",
    )
    return path


RUN: Final = [sys.executable, "-m", "mailproxy", "run"]


def start_proxy(
    config: Path, log: Path, *, confdir: Path, tls: str = "auto", sets: Sequence[str] = ()
) -> subprocess.Popen[bytes]:
    """Start `mailproxy run -c config --tls tls` with mitmproxy's CA in `confdir`."""
    args = [*RUN, "-c", str(config), "--tls", tls, "--confdir", str(confdir)]
    args += [f"--set={s}" for s in sets]
    with log.open("wb") as out:
        return subprocess.Popen(args, cwd=REPO, stdout=out, stderr=subprocess.STDOUT)


def wait_ready(proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace")
        if "mailproxy running" in text:
            return
        if proc.poll() is not None:
            pytest.fail(f"the proxy exited with {proc.returncode}:\n{text}")
        time.sleep(0.05)
    pytest.fail(f"the proxy did not start:\n{log.read_text(errors='replace')}")


def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> int:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            return proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            return proc.wait()
    return proc.returncode


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("e2e")
    # Two cookies: the proxy must drop every Set-Cookie, not only the first.
    recorder, other = Recorder(cookies=("a=1", "b=2")), Recorder()
    with http_and_https(recorder) as servers, serving(other, "127.0.0.2") as other_port:
        recorder.routes["/redirect-tracker"] = Reply(
            302, [("Location", f"{servers.origin('http')}/open.gif?e=hop")]
        )
        recorder.routes["/redirect-ok"] = Reply(302, [("Location", "/landing.png")])
        trustme_ca = tmp / "trustme-ca.pem"
        servers.ca.cert_pem.write_to_path(str(trustme_ca))
        intercept_port, passthrough_port = free_port(), free_port()
        logs = {"intercept": tmp / "intercept.log", "passthrough": tmp / "passthrough.log"}
        trust = [f"ssl_verify_upstream_trusted_ca={trustme_ca}"]
        procs = [
            start_proxy(
                write_config(tmp / "i.toml", intercept_port),
                logs["intercept"],
                confdir=tmp / "mitm-intercept",
                tls="intercept",
                sets=trust,
            ),
            start_proxy(
                write_config(tmp / "p.toml", passthrough_port),
                logs["passthrough"],
                confdir=tmp / "mitm-passthrough",  # two processes must not race to create one CA
                tls="passthrough",
                sets=trust,
            ),
        ]
        try:
            for proc, log in zip(procs, logs.values(), strict=True):
                wait_ready(proc, log)
            yield World(
                http_port=servers.http_port,
                https_port=servers.https_port,
                other_port=other_port,
                recorder=recorder,
                other=other,
                trustme_ca=trustme_ca,
                mitm_ca=tmp / "mitm-intercept" / "mitmproxy-ca-cert.pem",
                intercept_port=intercept_port,
                passthrough_port=passthrough_port,
                logs=logs,
            )
        finally:
            codes = [stop(p) for p in procs]
    assert codes == [0] * len(procs), "the proxies did not stop cleanly on SIGTERM"


@dataclass
class Fetched:
    status: int
    headers: dict[str, list[str]]
    body: bytes
    redirects: int
    exit_code: int
    stderr: str


def curl(proxy_port: int, url: str, *args: str, headers: dict[str, str] | None = None) -> Fetched:
    cmd = [
        "curl",
        "-sS",
        "--max-time",
        "10",
        "-x",
        f"http://127.0.0.1:{proxy_port}",
        "-D",
        "-",
        "-w",
        "\n%{http_code} %{num_redirects}",
    ]
    for name, value in (headers or {}).items():
        cmd += ["-H", f"{name}: {value}"]
    done = subprocess.run([*cmd, *args, url], capture_output=True, timeout=20)
    raw, _, tail = done.stdout.rpartition(b"\n")
    status_text, _, redirects_text = tail.decode().partition(" ")
    # the last header block is the final response's
    head, _, body = raw.rpartition(b"\r\n\r\n")
    head = head.rpartition(b"\r\n\r\n")[2]  # with -L, earlier blocks are the redirects
    parsed: dict[str, list[str]] = {}
    for line in head.decode("latin-1").split("\r\n")[1:]:
        name, sep, value = line.partition(":")
        if sep:
            parsed.setdefault(name.strip().lower(), []).append(value.strip())
    return Fetched(
        status=int(status_text or 0),
        headers=parsed,
        body=body,
        redirects=int(redirects_text or 0),
        exit_code=done.returncode,
        stderr=done.stderr.decode(errors="replace"),
    )


# --- plain HTTP -----------------------------------------------------------------------------------


def test_headers_arrive_as_configured_and_cookies_never(world: World) -> None:
    got = curl(
        world.intercept_port,
        f"http://127.0.0.1:{world.http_port}/logo.png",
        headers={"Cookie": "sid=SECRET", "Referer": "http://mail.example/", "DNT": "0"},
    )
    assert got.status == 200 and got.body == png(GREY)
    seen = world.recorder.headers_of("/logo.png")
    assert seen["dnt"] == ["1"]
    assert seen["sec-gpc"] == ["1"]
    for name in ("cookie", "referer", "proxy-connection", "proxy-authorization"):
        assert name not in seen
    assert "set-cookie" not in got.headers


def test_per_user_settings_via_proxy_authentication(world: World) -> None:
    got = curl(
        world.intercept_port,
        f"http://127.0.0.1:{world.http_port}/bob.png",
        "--proxy-user",
        "bob@example.org:secret",
    )
    assert got.status == 200
    seen = world.recorder.headers_of("/bob.png")
    assert seen["dnt"] == ["0"]
    assert "sec-gpc" not in seen
    assert "proxy-authorization" not in seen


def test_tracker_image_is_a_gif_and_never_reaches_the_server(world: World) -> None:
    got = curl(
        world.intercept_port,
        f"http://127.0.0.1:{world.http_port}/open.gif?e=abc",
        headers={"Accept": "image/avif,image/webp,*/*"},
    )
    assert got.status == 200 and got.body == TRANSPARENT_GIF
    assert got.headers["content-type"] == ["image/gif"]
    assert not any(p.startswith("/open.gif") for p in world.recorder.paths())


def test_tracker_non_image_is_204(world: World) -> None:
    got = curl(world.intercept_port, f"http://127.0.0.1:{world.http_port}/open?e=abc")
    assert got.status == 204 and got.body == b""
    assert not any(p.startswith("/open?") for p in world.recorder.paths())


def test_known_tracker_host_is_answered_without_dns_or_network(world: World) -> None:
    got = curl(world.intercept_port, "http://trk.klaviyomail.com/open/abc.gif")
    assert got.status == 200 and got.body == TRANSPARENT_GIF


def test_redirect_to_a_tracker_is_cut(world: World) -> None:
    got = curl(world.intercept_port, f"http://127.0.0.1:{world.http_port}/redirect-tracker", "-L")
    assert got.redirects == 0  # the proxy answered the redirect itself
    assert got.status == 200 and got.body == TRANSPARENT_GIF
    assert "/redirect-tracker" in world.recorder.paths()
    assert "/open.gif?e=hop" not in world.recorder.paths()


def test_redirect_to_content_is_followed(world: World) -> None:
    got = curl(world.intercept_port, f"http://127.0.0.1:{world.http_port}/redirect-ok", "-L")
    assert got.redirects == 1 and got.status == 200
    assert "/landing.png" in world.recorder.paths()


def test_identifying_parameters_removed_before_forwarding(world: World) -> None:
    got = curl(
        world.intercept_port,
        f"http://127.0.0.1:{world.http_port}/hero.png?utm_source=nl&uid=a8f7d6e5c4b3a2918f7e&w=600",
    )
    assert got.status == 200
    assert "/hero.png?w=600" in world.recorder.paths()
    assert not any("uid=" in p for p in world.recorder.paths())


def test_private_address_outside_allow_networks_is_refused(world: World) -> None:
    got = curl(world.intercept_port, f"http://127.0.0.2:{world.other_port}/admin.png")
    assert got.status == 403
    assert world.other.paths() == []


# --- HTTPS ----------------------------------------------------------------------------------------


def test_https_intercepted_when_the_client_trusts_the_ca(world: World) -> None:
    url = f"https://localhost:{world.https_port}/secure.png"
    got = curl(world.intercept_port, url, "--cacert", str(world.mitm_ca), headers={"Cookie": "s=1"})
    assert got.status == 200, got.stderr
    seen = world.recorder.headers_of("/secure.png")
    assert seen["dnt"] == ["1"] and seen["sec-gpc"] == ["1"]
    assert "cookie" not in seen
    assert "set-cookie" not in got.headers
    pixel = curl(
        world.intercept_port,
        f"https://localhost:{world.https_port}/open.gif?e=tls",
        "--cacert",
        str(world.mitm_ca),
    )
    assert pixel.status == 200 and pixel.body == TRANSPARENT_GIF
    assert "/open.gif?e=tls" not in world.recorder.paths()


def test_connect_to_a_tracker_host_refused_in_host_level_mode(world: World) -> None:
    got = curl(world.passthrough_port, "https://trk.klaviyomail.com/open/abc.gif")
    assert got.exit_code != 0
    assert "403" in got.stderr
    assert "blocked connect trk.klaviyomail.com" in world.logs["passthrough"].read_text()


def test_other_tunnels_pass_through_untouched_in_host_level_mode(world: World) -> None:
    url = f"https://localhost:{world.https_port}/passthrough.png"
    # the client trusts only the real server's CA: it would fail if the proxy intercepted
    got = curl(world.passthrough_port, url, "--cacert", str(world.trustme_ca), headers={"Cookie": "k=1"})
    assert got.status == 200, got.stderr
    seen = world.recorder.headers_of("/passthrough.png")
    assert seen["cookie"] == ["k=1"]  # untouched: not decrypted
    assert "dnt" not in seen


# --- the process and the runner -------------------------------------------------------------------


def test_sigint_stops_the_process_cleanly(tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "proxy.log"
    proc = start_proxy(write_config(tmp_path / "c.toml", port), log, confdir=tmp_path / "mitm")
    try:
        wait_ready(proc, log)
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass
    finally:
        code = stop(proc, signal.SIGINT)
    assert code == 0, log.read_text()
    assert "mailproxy stopped" in log.read_text()
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=2):
        pass


def test_bad_config_exits_2_with_a_message(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[http]\nlisten = "nowhere"\n', encoding="utf-8")
    done = subprocess.run(
        [*RUN, "-c", str(bad)],
        cwd=REPO,
        capture_output=True,
        timeout=30,
    )
    assert done.returncode == 2
    assert b"http.listen" in done.stderr


def config_with(tmp_path: Path, *, http: bool, imap: bool, port: int = 0) -> Config:
    path = tmp_path / "run.toml"
    path.write_text(
        f'[http]\nenabled = {str(http).lower()}\nlisten = "127.0.0.1:{port or free_port()}"\n'
        f"[imap]\nenabled = {str(imap).lower()}\n",
        encoding="utf-8",
    )
    return load_config(path)


def test_runner_starts_both_halves_and_stops_them_on_sigterm(tmp_path: Path) -> None:
    cfg = config_with(tmp_path, http=True, imap=True)
    seen: list[str] = []

    async def imap_half(config: Config, stop_event: asyncio.Event) -> None:
        seen.append("imap started")
        await stop_event.wait()
        seen.append("imap stopped")

    def ready() -> None:
        with socket.create_connection(("127.0.0.1", cfg.http.listen.port), timeout=5):
            seen.append("http listening")
        os.kill(os.getpid(), signal.SIGTERM)

    asyncio.run(run(cfg, imap=imap_half, ready=ready, confdir=tmp_path / "mitm", tls="passthrough"))
    # (The IMAP half may start before `ready` or after it: mitmproxy 12 on Python 3.12 makes the loop's
    # tasks eager, so the half runs as soon as it is created.)
    assert sorted(seen[:2]) == ["http listening", "imap started"] and seen[2:] == ["imap stopped"]
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # handlers removed again


def test_runner_propagates_an_imap_failure_and_stops_http(tmp_path: Path) -> None:
    cfg = config_with(tmp_path, http=True, imap=True)

    async def failing(config: Config, stop_event: asyncio.Event) -> None:
        raise MailproxyError("cannot reach the IMAP server")

    with pytest.raises(MailproxyError, match="IMAP server"):
        asyncio.run(run(cfg, imap=failing, confdir=tmp_path / "mitm"))
    with socket.socket() as s:  # the HTTP port is free again
        s.bind(("127.0.0.1", cfg.http.listen.port))


def test_runner_refuses_to_run_nothing(tmp_path: Path) -> None:
    with pytest.raises(MailproxyError, match="nothing to run"):
        asyncio.run(run(config_with(tmp_path, http=False, imap=False)))


def test_runner_reports_an_imap_port_in_use(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        path = tmp_path / "imap.toml"
        path.write_text(
            f'[http]\nenabled = false\n[imap]\nlisten = "127.0.0.1:{taken.getsockname()[1]}"\n'
            'upstream = "127.0.0.1:1"\nupstream_tls = "none"\n',
            encoding="utf-8",
        )
        with pytest.raises(MailproxyError, match="cannot listen"):
            asyncio.run(run(load_config(path)))


def test_http_proxy_reports_a_port_in_use(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        cfg = config_with(tmp_path, http=True, imap=False, port=taken.getsockname()[1])

        async def go() -> None:
            proxy = HttpProxy(cfg, confdir=tmp_path / "mitm")
            with pytest.raises(MailproxyError, match="cannot listen"):
                await proxy.start()
            assert proxy.listen_addrs == []

        asyncio.run(go())
