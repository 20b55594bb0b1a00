"""Fixtures for the IMAP integration tests: a throwaway Dovecot with a Maildir of test messages (the
recipe of imap.md section 5), trustme certificates, and the proxy running on its own event loop in a
thread so blocking clients (imaplib, imapclient, mbsync, fetchmail) can drive it.

Dovecot is installed by ``scripts/install-test-deps``; without it these tests are skipped, loudly.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme
from imap_support import (
    USER,
    Dovecot,
    MakeProxy,
    ProxyThread,
    build_messages,
)

from bench import dovecot as bench_dovecot
from mailproxy.imap import EngineRewriter, ProxySettings, Rewriter


@pytest.fixture(scope="session")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="session")
def dovecot(ca: trustme.CA) -> Iterator[Dovecot]:
    if not bench_dovecot.available():
        pytest.skip("dovecot is not installed: run scripts/install-test-deps")
    certs = Path(tempfile.mkdtemp(prefix="mailproxy-dovecot-certs-"))
    try:
        leaf = ca.issue_cert("localhost", "127.0.0.1")
        leaf.cert_chain_pems[0].write_to_path(str(certs / "cert.pem"))
        leaf.private_key_pem.write_to_path(str(certs / "key.pem"))
        ca_file = certs / "ca.pem"
        ca.cert_pem.write_to_path(str(ca_file))
        messages = build_messages()
        with bench_dovecot.backend(
            {USER: list(messages.values())},
            cert=(certs / "cert.pem", certs / "key.pem"),
            # COMPRESS=DEFLATE offered upstream, so the tests see the proxy remove it.
            extra="protocol imap {\n  mail_plugins = $mail_plugins imap_zlib\n}\n",
        ) as server:
            assert server.tls_port is not None
            yield Dovecot(
                server.dir,
                server.port,
                server.tls_port,
                ca,
                ca_file,
                messages,
                server.home / USER,
                server.log,
            )
    finally:
        shutil.rmtree(certs, ignore_errors=True)


@pytest.fixture(scope="session")
def engine_rewriter() -> Rewriter:
    from mailproxy.engine import Engine

    return EngineRewriter(Engine())


@pytest.fixture
def make_proxy(dovecot: Dovecot, engine_rewriter: Rewriter) -> Iterator[MakeProxy]:
    started: list[ProxyThread] = []

    def make(rewriter: Rewriter | None = None, **kw: Any) -> ProxyThread:
        settings: dict[str, Any] = {
            "listen_host": "127.0.0.1",
            "listen_port": 0,
            "upstream_host": "127.0.0.1",
            "upstream_port": dovecot.port,
            "upstream_tls": "none",
        }
        settings.update(kw)
        p = ProxyThread(ProxySettings(**settings), rewriter or engine_rewriter).start()
        started.append(p)
        return p

    yield make
    for p in started:
        p.stop()


@pytest.fixture
def proxy(make_proxy: MakeProxy) -> ProxyThread:
    return make_proxy()
