"""`[http] tls` from the configuration file, honoured by `mailproxy run` as a real process, and the
`--tls` flag over it. The client is curl through the proxy to a trustme HTTPS server: it trusts only
the origin's CA when the tunnel must pass through, only mitmproxy's CA when it must be decrypted."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.http.test_http_e2e import REPO, RUN, curl, free_port, stop, wait_ready
from tests.recording_server import Recorder, Servers, http_and_https

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed"),
]


@dataclass
class Proxy:
    port: int
    mitm_ca: Path
    log: Path


@dataclass
class World:
    servers: Servers
    origin_ca: Path
    from_config: Proxy  # [http] tls = "passthrough", no --tls
    overridden: Proxy  # [http] tls = "passthrough", --tls intercept


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("tls-config")
    with http_and_https(Recorder()) as servers:
        origin_ca = tmp / "origin-ca.pem"
        servers.ca.cert_pem.write_to_path(str(origin_ca))
        procs: list[subprocess.Popen[bytes]] = []
        proxies: list[Proxy] = []
        try:
            for name, flags in (("from-config", []), ("overridden", ["--tls", "intercept"])):
                port = free_port()
                config = tmp / f"{name}.toml"
                config.write_text(
                    f'[http]\nlisten = "127.0.0.1:{port}"\nallow_networks = ["127.0.0.1/32"]\n'
                    'tls = "passthrough"\n\n[imap]\nenabled = false\n',
                    encoding="utf-8",
                )
                confdir, log = tmp / f"{name}-mitmproxy", tmp / f"{name}.log"
                args = [*RUN, "-c", str(config), "--confdir", str(confdir), *flags]
                # mitmproxy, when it decrypts, must trust the origin's CA upstream.
                args.append(f"--set=ssl_verify_upstream_trusted_ca={origin_ca}")
                with log.open("wb") as out:
                    procs.append(subprocess.Popen(args, cwd=REPO, stdout=out, stderr=subprocess.STDOUT))
                proxies.append(Proxy(port, confdir / "mitmproxy-ca-cert.pem", log))
            for proc, proxy in zip(procs, proxies, strict=True):
                wait_ready(proc, proxy.log)
            yield World(servers, origin_ca, *proxies)
        finally:
            codes = [stop(p) for p in procs]
    assert codes == [0, 0], "the proxies did not stop cleanly on SIGTERM"


def fetch(world: World, proxy: Proxy, path: str, ca: Path) -> tuple[int, str]:
    got = curl(
        proxy.port,
        f"{world.servers.origin('https', 'localhost')}{path}",
        "--cacert",
        str(ca),
        headers={"Cookie": "sid=SECRET"},
    )
    return got.exit_code, got.stderr


def test_the_config_key_chooses_passthrough(world: World) -> None:
    proxy = world.from_config
    # The client sees the origin's own certificate, and the proxy cannot touch what the tunnel carries.
    code, stderr = fetch(world, proxy, "/config-passthrough.png", world.origin_ca)
    assert code == 0, stderr
    assert world.servers.recorder.headers_of("/config-passthrough.png")["cookie"] == ["sid=SECRET"]
    assert fetch(world, proxy, "/config-mitm.png", proxy.mitm_ca)[0] != 0
    assert "/config-mitm.png" not in world.servers.recorder.paths()
    assert "(tls: passthrough)" in proxy.log.read_text(errors="replace")


def test_the_tls_flag_overrides_the_config_key(world: World) -> None:
    proxy = world.overridden
    # The proxy presents its own certificate for the host and strips the cookie inside the tunnel.
    code, stderr = fetch(world, proxy, "/flag-intercept.png", proxy.mitm_ca)
    assert code == 0, stderr
    assert "cookie" not in world.servers.recorder.headers_of("/flag-intercept.png")
    assert fetch(world, proxy, "/flag-origin.png", world.origin_ca)[0] != 0
    assert "/flag-origin.png" not in world.servers.recorder.paths()
    assert "(tls: intercept)" in proxy.log.read_text(errors="replace")
