"""Real clients (mbsync, fetchmail) through the proxy, and faults: a dying upstream, a vanishing
client, garbage, a message above the buffering limit."""

from __future__ import annotations

import email
import imaplib
import os
import re
import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from imap_support import LOGO, PASSWORD, TRACKER, USER, Dovecot, MakeProxy, ProxyThread

pytestmark = pytest.mark.slow


def html_of(raw: bytes) -> bytes:
    out = b""
    for p in email.message_from_bytes(raw).walk():
        if p.get_content_type() == "text/html":
            payload = p.get_payload(decode=True)
            assert isinstance(payload, bytes)
            out += payload
    return out


@pytest.mark.skipif(shutil.which("mbsync") is None, reason="isync not installed")
def test_mbsync_syncs_the_mailbox_rewritten(proxy: ProxyThread, dovecot: Dovecot, tmp_path: Path) -> None:
    out = tmp_path / "mail"
    out.mkdir()
    rc = tmp_path / "mbsyncrc"
    rc.write_text(
        f"IMAPAccount test\nHost 127.0.0.1\nPort {proxy.port}\nUser {USER}\nPass {PASSWORD}\n"
        "SSLType None\nAuthMechs LOGIN\n\nIMAPStore remote\nAccount test\n\n"
        f"MaildirStore local\nPath {out}/\nInbox {out}/INBOX\nSubFolders Verbatim\n\n"
        "Channel test\nFar :remote:\nNear :local:\nPatterns INBOX\nCreate Near\nSync Pull\n"
        "SyncState *\n"
    )
    res = subprocess.run(["mbsync", "-c", str(rc), "-a"], capture_output=True, timeout=120, check=False)
    assert res.returncode == 0, res.stderr.decode(errors="replace")
    files = [p for sub in ("cur", "new") for p in (out / "INBOX" / sub).iterdir()]
    assert len(files) == len(dovecot.messages)
    originals = {email.message_from_bytes(m)["subject"]: m for m in dovecot.messages.values()}
    for f in files:
        # mbsync stores LF line ends and may add its X-TUID tracking header.
        data = f.read_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        data = re.sub(rb"(?m)^X-TUID: [^\r\n]*\r\n", b"", data)
        subject = email.message_from_bytes(data)["subject"]
        original = originals[subject]
        assert len(data) == len(original), subject
        if html_of(original):
            assert TRACKER not in html_of(data) and LOGO in html_of(data), subject


@pytest.mark.skipif(shutil.which("fetchmail") is None, reason="fetchmail not installed")
def test_fetchmail_header_and_text_by_sequence_number(
    proxy: ProxyThread, dovecot: Dovecot, tmp_path: Path
) -> None:
    outdir = tmp_path / "out"
    outdir.mkdir()
    rc = tmp_path / "fetchmailrc"
    rc.write_text(
        "set no syslog\n"
        f"poll 127.0.0.1 service {proxy.port} protocol IMAP auth password\n"
        f'  user "{USER}" password "{PASSWORD}" is "root" here\n'
        "  sslproto '' keep fetchall\n"
        # One file per message: an MDA gets no mbox "From " separators.
        f"  mda \"/bin/sh -c 'cat > $(mktemp -p {outdir} msgXXXXXX)'\"\n"
    )
    os.chmod(rc, 0o600)
    env = dict(os.environ, HOME=str(tmp_path))
    res = subprocess.run(
        ["fetchmail", "-f", str(rc), "--nodetach", "-v"],
        capture_output=True,
        timeout=120,
        check=False,
        env=env,
    )
    log = res.stdout.decode(errors="replace") + res.stderr.decode(errors="replace")
    assert res.returncode == 0, log
    assert "BODY.PEEK[TEXT]" in log or "RFC822.TEXT" in log or "BODY[TEXT]" in log
    saved = {}
    for f in outdir.iterdir():
        data = f.read_bytes()
        saved[email.message_from_bytes(data)["subject"]] = data
    assert set(saved) == {email.message_from_bytes(m)["subject"] for m in dovecot.messages.values()}
    for m in dovecot.messages.values():
        subject = email.message_from_bytes(m)["subject"]
        if html_of(m):
            # fetchmail joined RFC822.HEADER and the TEXT fetch: the HTML it saved is rewritten.
            assert TRACKER not in html_of(saved[subject]), subject
            assert LOGO in html_of(saved[subject]), subject
        else:
            assert TRACKER in saved[subject]  # plain text is left alone


# -- faults -------------------------------------------------------------------------------------


class FakeServer:
    """A scripted IMAP server: greets, answers LOGIN, then runs ``on_command`` for the rest."""

    def __init__(self, script: list[bytes], *, close: bool = True) -> None:
        self.script = script
        self.close = close
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.serve, args=(conn,), daemon=True).start()

    def serve(self, conn: socket.socket) -> None:
        with conn:
            f = conn.makefile("rb")
            conn.sendall(b"* OK [CAPABILITY IMAP4rev1 COMPRESS=DEFLATE] fake ready\r\n")
            for chunk in self.script:
                line = f.readline()
                if not line:
                    return
                tag = line.split(b" ", 1)[0]
                conn.sendall(chunk.replace(b"$TAG", tag))
            if not self.close:
                f.readline()

    def stop(self) -> None:
        self.sock.close()


@pytest.fixture
def fake() -> Iterator[list[FakeServer]]:
    servers: list[FakeServer] = []
    yield servers
    for s in servers:
        s.stop()


def raw_session(port: int) -> tuple[socket.socket, object]:
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    return s, s.makefile("rb")


def test_upstream_closes_mid_literal(make_proxy: MakeProxy, fake: list[FakeServer]) -> None:
    server = FakeServer(
        [b"$TAG OK logged in\r\n", b"* 1 FETCH (UID 1 BODY[] {5000}\r\nFrom: x\r\n\r\npartial"]
    )
    fake.append(server)
    p = make_proxy(upstream_port=server.port)
    s, f = raw_session(p.port)
    with s:
        assert f.readline().startswith(b"* OK [CAPABILITY IMAP4rev1] fake")  # type: ignore[attr-defined]
        s.sendall(b"a LOGIN u p\r\n")
        assert f.readline() == b"a OK logged in\r\n"  # type: ignore[attr-defined]
        s.sendall(b"b UID FETCH 1 BODY.PEEK[]\r\n")
        rest = f.read()  # type: ignore[attr-defined]
    # The half response is never delivered as if whole; the client is told why the session ends.
    assert rest == b"* BYE [UNAVAILABLE] Upstream server closed the connection\r\n"


def test_garbage_from_server_and_client(make_proxy: MakeProxy, fake: list[FakeServer]) -> None:
    server = FakeServer([b"\x00\xff garbage (((\r\n$TAG OK whatever\r\n", b"* " + b"x" * 70000 + b"\r\n"])
    fake.append(server)
    p = make_proxy(upstream_port=server.port, max_line=1024)
    s, f = raw_session(p.port)
    with s:
        f.readline()  # type: ignore[attr-defined]
        s.sendall(b"\x01\x02 nonsense {x}\r\n")
        assert f.readline() == b"\x00\xff garbage (((\r\n"  # type: ignore[attr-defined]
        assert f.readline() == b"\x01\x02 OK whatever\r\n"  # type: ignore[attr-defined]
        s.sendall(b"a NOOP\r\n")
        # An endless line from the server ends the session cleanly, bounded by max_line.
        assert f.read() == b"* BYE [UNAVAILABLE] Server error\r\n"  # type: ignore[attr-defined]
    s, f = raw_session(p.port)
    with s:
        f.readline()  # type: ignore[attr-defined]
        s.sendall(b"y" * 5000)
        assert f.read() == b"* BYE Protocol error\r\n"  # type: ignore[attr-defined]


def test_client_disconnect_mid_response_leaves_others_working(proxy: ProxyThread, dovecot: Dovecot) -> None:
    other = imaplib.IMAP4("127.0.0.1", proxy.port)
    other.login(USER, PASSWORD)
    other.select("INBOX", readonly=True)
    for _ in range(5):
        s, f = raw_session(proxy.port)
        f.readline()  # type: ignore[attr-defined]
        s.sendall(f"a LOGIN {USER} {PASSWORD}\r\nb EXAMINE INBOX\r\nc FETCH 1:* BODY.PEEK[]\r\n".encode())
        s.recv(100)
        s.close()  # mid-response
    typ, data = other.fetch("1:*", "(RFC822.SIZE)")
    assert typ == "OK" and len([d for d in data if d]) == len(dovecot.messages)
    other.logout()


def test_upstream_unavailable_gives_bye(make_proxy: MakeProxy) -> None:
    with socket.socket() as tmp:
        tmp.bind(("127.0.0.1", 0))
        dead = tmp.getsockname()[1]
    p = make_proxy(upstream_port=dead)
    s, f = raw_session(p.port)
    with s:
        assert f.readline().startswith(b"* BYE [UNAVAILABLE]")  # type: ignore[attr-defined]


def test_large_message_streams_through(make_proxy: MakeProxy, dovecot: Dovecot) -> None:
    # A 50 MB message above a 1 MB buffering limit streams through unmodified; the session goes on.
    big = b"Subject: big\r\nContent-Type: text/plain\r\n\r\n" + (b"y" * 998 + b"\r\n") * 50_000
    d = imaplib.IMAP4("127.0.0.1", dovecot.port)
    d.login(USER, PASSWORD)
    d.create("Big")
    d.append("Big", None, None, big)
    d.logout()
    p = make_proxy(max_literal=1 << 20)
    c = imaplib.IMAP4("127.0.0.1", p.port)
    c.login(USER, PASSWORD)
    c.select("Big", readonly=True)
    typ, data = c.fetch("1", "(BODY.PEEK[] RFC822.SIZE)")
    assert typ == "OK"
    head = data[0]
    assert isinstance(head, tuple) and head[1] == big
    assert c.noop()[0] == "OK"
    c.logout()
