"""Fixtures for the IMAP integration tests: a throwaway Dovecot with a Maildir of test messages (the
recipe of imap.md section 5), trustme certificates, and the proxy running on its own event loop in a
thread so blocking clients (imaplib, imapclient, mbsync, fetchmail) can drive it.

Dovecot is installed by ``scripts/install-test-deps``; without it these tests are skipped, loudly.
"""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme
from imap_support import (
    DOVECOT,
    PASSWORD,
    USER,
    Dovecot,
    MakeProxy,
    ProxyThread,
    build_messages,
    free_port,
    wait_port,
)

from mailproxy.imap import EngineRewriter, ProxySettings, Rewriter


@pytest.fixture(scope="session")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="session")
def dovecot(ca: trustme.CA) -> Iterator[Dovecot]:
    if not os.path.exists(DOVECOT):
        pytest.skip("dovecot is not installed: run scripts/install-test-deps")
    # Not pytest's tmp_path: its parents are mode 0700, and Dovecot's mail processes run as nobody.
    d = Path(tempfile.mkdtemp(prefix="mailproxy-dovecot-"))
    os.chmod(d, 0o755)
    leaf = ca.issue_cert("localhost", "127.0.0.1")
    leaf.cert_chain_pems[0].write_to_path(str(d / "cert.pem"))
    leaf.private_key_pem.write_to_path(str(d / "key.pem"))
    ca_file = d / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    port, tls_port = free_port(), free_port()
    root = os.geteuid() == 0
    me = pwd.getpwuid(os.geteuid()).pw_name
    my_group = grp.getgrgid(os.getegid()).gr_name
    internal, internal_group, login = (
        ("dovecot", "dovecot", "dovenull") if root else (me, my_group, me)
    )
    uid, gid = ("nobody", "nogroup") if root else (me, my_group)
    (d / "dovecot.conf").write_text(
        f"""base_dir = {d}/run
state_dir = {d}/state
instance_name = dovecot-test-{port}
log_path = {d}/dovecot.log
protocols = imap
listen = 127.0.0.1
default_internal_user = {internal}
default_internal_group = {internal_group}
default_login_user = {login}
first_valid_uid = 0
ssl = yes
ssl_cert = <{d}/cert.pem
ssl_key = <{d}/key.pem
disable_plaintext_auth = no
auth_mechanisms = plain login
mail_location = maildir:~/Maildir
passdb {{
  driver = static
  args = password={PASSWORD}
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={d}/home/%u
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    port = {port}
  }}
  inet_listener imaps {{
    port = {tls_port}
    ssl = yes
  }}
}}
service anvil {{
  chroot =
}}
service stats {{
  unix_listener stats-reader {{
    user = {internal}
  }}
  unix_listener stats-writer {{
    user = {internal}
  }}
}}
protocol imap {{
  mail_plugins = $mail_plugins imap_zlib
}}
"""
    )
    messages = build_messages()
    home = d / "home" / USER
    maildir = home / "Maildir"
    for sub in ("cur", "new", "tmp"):
        (maildir / sub).mkdir(parents=True)
    for i, data in enumerate(messages.values()):
        (maildir / "cur" / f"{1700000001 + i}.M{i}P1.test:2,").write_bytes(data)
    if root:
        shutil.chown(d / "home", "nobody", "nogroup")
        for p in (d / "home").rglob("*"):
            shutil.chown(p, "nobody", "nogroup")
    proc = subprocess.Popen([DOVECOT, "-F", "-c", str(d / "dovecot.conf")])
    try:
        wait_port(port, proc)
        wait_port(tls_port, proc)
        yield Dovecot(d, port, tls_port, ca, ca_file, messages, home, d / "dovecot.log")
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(d, ignore_errors=True)


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
