"""`[http] tls = "auto"` decides per client, in a real `mailproxy run`: curl from 127.0.0.1 without the
mitmproxy CA fails its handshake, after which that address's tunnels pass through, while curl from
127.0.0.2 (`--interface`) trusting the CA is still intercepted."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tests.http.test_http_e2e import REPO, RUN, curl, free_port, stop, wait_ready
from tests.recording_server import Recorder, http_and_https

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed"),
]

SWITCHED = "does not trust the mitmproxy CA"


def wait_for(log: Path, text: str) -> None:
    # mitmproxy runs the tls_failed_client hook after curl has given up: wait for its log line.
    deadline = time.monotonic() + 10
    while text not in log.read_text(errors="replace"):
        if time.monotonic() > deadline:
            pytest.fail(f"no {text!r} in the log:\n{log.read_text(errors='replace')}")
        time.sleep(0.05)


def test_one_client_rejecting_the_ca_leaves_the_others_intercepted(tmp_path: Path) -> None:
    with http_and_https(Recorder()) as servers:
        origin_ca = tmp_path / "origin-ca.pem"
        servers.ca.cert_pem.write_to_path(str(origin_ca))
        port = free_port()
        config = tmp_path / "mailproxy.toml"
        config.write_text(
            f'[http]\nlisten = "127.0.0.1:{port}"\nallow_networks = ["127.0.0.1/32"]\n'
            'tls = "auto"\n\n[imap]\nenabled = false\n',
            encoding="utf-8",
        )
        confdir, log = tmp_path / "mitmproxy", tmp_path / "proxy.log"
        # mitmproxy, when it decrypts, must trust the origin's CA upstream.
        args = [*RUN, "-c", str(config), "--confdir", str(confdir)]
        args.append(f"--set=ssl_verify_upstream_trusted_ca={origin_ca}")
        with log.open("wb") as out:
            proc = subprocess.Popen(args, cwd=REPO, stdout=out, stderr=subprocess.STDOUT)
        try:
            wait_ready(proc, log)
            mitm_ca = confdir / "mitmproxy-ca-cert.pem"

            def fetch(path: str, ca: Path, *source: str) -> int:
                url = f"{servers.origin('https', 'localhost')}{path}"
                got = curl(port, url, "--cacert", str(ca), *source, headers={"Cookie": "sid=SECRET"})
                return got.exit_code

            # The first client does not know the mitmproxy CA: its handshake with the proxy fails.
            assert fetch("/first-mitm.png", origin_ca) != 0
            wait_for(log, SWITCHED)
            # From then on its tunnels pass through: the origin's own certificate, the cookie untouched.
            assert fetch("/first-passthrough.png", origin_ca) == 0
            assert servers.recorder.headers_of("/first-passthrough.png")["cookie"] == ["sid=SECRET"]
            # Another client, trusting the CA, is still intercepted: cookie stripped inside the tunnel.
            assert fetch("/second.png", mitm_ca, "--interface", "127.0.0.2") == 0
            assert "cookie" not in servers.recorder.headers_of("/second.png")
            assert "/first-mitm.png" not in servers.recorder.paths()
        finally:
            code = stop(proc)
    switched = [line for line in log.read_text(errors="replace").splitlines() if SWITCHED in line]
    assert len(switched) == 1 and "client 127.0.0.1 " in switched[0], switched
    assert code == 0, "the proxy did not stop cleanly on SIGTERM"
