"""`[http] require_user`: `mailproxy run` as a real process challenges clients without proxy credentials
with 407 (as Thunderbird needs before it names its user) and applies the named user's settings. The
client is curl through the proxy to the recording servers, over plain HTTP and through CONNECT."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from mailproxy.config import load_config
from mailproxy.http.server import HttpProxy
from tests.http.test_http_e2e import REPO, Fetched, curl, free_port, stop, wait_ready
from tests.recording_server import Recorder, Servers, http_and_https

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed"),
]

PASSWORD = "x-unchecked-7Q"  # any password will do; it must never reach a log line
CREDENTIALS = f"alice@example.org:{PASSWORD}"
HTPASSWD_PASSWORD = "s3cret-in-htpasswd"


@dataclass
class World:
    servers: Servers
    port: int
    mitm_ca: Path
    log: Path


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    yield from running(tmp_path_factory.mktemp("proxy-auth"))


@pytest.fixture(scope="module")
def checked(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """The same, with mitmproxy checking passwords against an htpasswd file (docs/deployment.md)."""
    tmp = tmp_path_factory.mktemp("proxy-auth-htpasswd")
    digest = base64.b64encode(hashlib.sha1(HTPASSWD_PASSWORD.encode()).digest()).decode()
    (tmp / "htpasswd").write_text(f"alice@example.org:{{SHA}}{digest}\n", encoding="utf-8")
    yield from running(tmp, f"--set=proxyauth=@{tmp / 'htpasswd'}")


def running(tmp: Path, *extra: str) -> Iterator[World]:
    with http_and_https(Recorder()) as servers:
        origin_ca = tmp / "origin-ca.pem"
        servers.ca.cert_pem.write_to_path(str(origin_ca))
        port, config, log = free_port(), tmp / "mailproxy.toml", tmp / "run.log"
        config.write_text(
            f'[http]\nlisten = "127.0.0.1:{port}"\nallow_networks = ["127.0.0.1/32"]\n'
            'require_user = true\n\n[imap]\nenabled = false\n\n[privacy]\ndnt = "1"\ngpc = true\n\n'
            '[users."alice@example.org"]\ndnt = "0"\ngpc = false\n',
            encoding="utf-8",
        )
        # -vv: debug logging, so the password check below covers every log line there is.
        args = [sys.executable, "-m", "mailproxy", "-vv", "run", "-c", str(config), "--tls", "intercept"]
        args += [
            "--confdir",
            str(tmp / "mitmproxy"),
            f"--set=ssl_verify_upstream_trusted_ca={origin_ca}",
            *extra,
        ]
        with log.open("wb") as out:
            proc = subprocess.Popen(args, cwd=REPO, stdout=out, stderr=subprocess.STDOUT)
        try:
            wait_ready(proc, log)
            yield World(servers, port, tmp / "mitmproxy" / "mitmproxy-ca-cert.pem", log)
        finally:
            code = stop(proc)
    assert code == 0, "the proxy did not stop cleanly on SIGTERM"


def fetch(world: World, scheme: str, path: str, *args: str) -> Fetched:
    host = "localhost" if scheme == "https" else "127.0.0.1"
    url = f"{world.servers.origin(scheme, host)}{path}"
    return curl(world.port, url, "--cacert", str(world.mitm_ca), *args)


def as_user(credentials: str) -> tuple[str, ...]:
    # --proxy-anyauth: like Thunderbird, curl sends the credentials only once a 407 asks for them.
    return ("--proxy-anyauth", "--proxy-user", credentials)


def test_requests_without_credentials_are_challenged(world: World) -> None:
    got = fetch(world, "http", "/anonymous.png")
    assert got.status == 407
    assert got.headers["proxy-authenticate"] == ['Basic realm="mailproxy"']
    tunnel = fetch(world, "https", "/anonymous-tls.png")
    assert tunnel.exit_code != 0 and "407" in tunnel.stderr
    assert not {"/anonymous.png", "/anonymous-tls.png"} & set(world.servers.recorder.paths())


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_the_named_user_gets_their_settings_and_the_origin_no_credentials(world: World, scheme: str) -> None:
    got = fetch(world, scheme, f"/alice-{scheme}.png", *as_user(CREDENTIALS))
    assert got.exit_code == 0 and got.status == 200, got.stderr
    seen = world.servers.recorder.headers_of(f"/alice-{scheme}.png")
    assert seen["dnt"] == ["0"]
    assert "sec-gpc" not in seen
    assert "proxy-authorization" not in seen
    other = fetch(world, scheme, f"/carol-{scheme}.png", *as_user("carol@example.org:x"))
    assert other.status == 200, other.stderr
    seen = world.servers.recorder.headers_of(f"/carol-{scheme}.png")
    assert seen["dnt"] == ["1"] and seen["sec-gpc"] == ["1"]  # no [users] table: global settings
    text = world.log.read_text(errors="replace")
    assert "DEBUG" in text  # the check covers debug logging
    assert "there are no [users] tables" not in text
    assert PASSWORD not in text
    assert base64.b64encode(CREDENTIALS.encode()).decode() not in text


def test_a_warning_when_there_are_no_users_to_pick(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "mailproxy.toml"
    path.write_text(
        f'[http]\nlisten = "127.0.0.1:{free_port()}"\nrequire_user = true\n\n[imap]\nenabled = false\n',
        encoding="utf-8",
    )

    async def go() -> None:
        proxy = HttpProxy(load_config(path), confdir=tmp_path / "mitmproxy")
        await proxy.start()
        await proxy.stop()

    with caplog.at_level(logging.WARNING, logger="mailproxy.http.server"):
        asyncio.run(go())
    assert "require_user is on but there are no [users] tables" in caplog.text


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_an_htpasswd_file_makes_the_password_count(checked: World, scheme: str) -> None:
    # require_user sets mitmproxy's proxyauth to "any"; an admin's --set proxyauth=@FILE comes after it.
    for who, credentials in (("nobody", None), ("wrong", "alice@example.org:guess"), ("bob", "bob@x.org:y")):
        got = fetch(checked, scheme, f"/{who}-{scheme}.png", *(as_user(credentials) if credentials else ()))
        assert got.status == 407 or (got.exit_code != 0 and "407" in got.stderr), (who, got)
    got = fetch(checked, scheme, f"/alice-{scheme}.png", *as_user(f"alice@example.org:{HTPASSWD_PASSWORD}"))
    assert got.exit_code == 0 and got.status == 200, got.stderr
    assert checked.servers.recorder.headers_of(f"/alice-{scheme}.png")["dnt"] == ["0"]  # her settings
    assert not {f"/{who}-{scheme}.png" for who in ("nobody", "wrong", "bob")} & set(
        checked.servers.recorder.paths()
    )
    text = checked.log.read_text(errors="replace")
    assert HTPASSWD_PASSWORD not in text and "guess" not in text
