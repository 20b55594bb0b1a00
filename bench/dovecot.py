"""A throwaway Dovecot on loopback (imap.md section 5): a mail server with a Maildir per user, or a
Dovecot IMAP proxy (``proxy=y``, imap.md section 5.3) in front of one. For benchmarks and tests.

    with dovecot.backend({"reader@example.org": messages}) as server:
        with dovecot.proxy(server.port) as front:
            ...  # IMAP on 127.0.0.1:server.port directly, or through 127.0.0.1:front.port

Any user logs in with ``PASSWORD``. Dovecot's login processes refuse to run as root, so as root the
internal users are the ones the Debian package creates and the mail belongs to nobody; as anyone
else, everything runs as that user. Nothing listens beyond 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import grp
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

DOVECOT = "/usr/sbin/dovecot"
PASSWORD = "secret"


@dataclass(frozen=True, slots=True)
class Running:
    """A started instance: its directory (config, log, homes) and its plain IMAP port."""

    dir: Path
    port: int
    tls_port: int | None
    log: Path
    home: Path  # parent of the users' homes (a backend), or the directory itself (a proxy)


def available() -> bool:
    return os.path.exists(DOVECOT)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, proc: subprocess.Popen[bytes] | None = None, timeout: float = 15) -> None:
    """Return once 127.0.0.1:port accepts connections; raise if ``proc`` exits or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"dovecot exited with {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.05)
    raise TimeoutError(f"port {port} did not open")


def _accounts() -> tuple[str, str, str, str, str]:
    """(internal user, internal group, login user, mail uid, mail gid) for this process."""
    if os.geteuid() == 0:
        return "dovecot", "dovecot", "dovenull", "nobody", "nogroup"
    me = pwd.getpwuid(os.geteuid()).pw_name
    group = grp.getgrgid(os.getegid()).gr_name
    return me, group, me, me, group


def _common(d: Path, port: int, internal: str, group: str, login: str) -> str:
    return f"""base_dir = {d}/run
state_dir = {d}/state
instance_name = dovecot-bench-{port}
log_path = {d}/dovecot.log
protocols = imap
listen = 127.0.0.1
default_internal_user = {internal}
default_internal_group = {group}
default_login_user = {login}
first_valid_uid = 0
disable_plaintext_auth = no
auth_mechanisms = plain login
"""


def _listeners(port: int, tls_port: int | None) -> str:
    imaps = (
        f"  inet_listener imaps {{\n    port = {tls_port}\n    ssl = yes\n  }}\n"
        if tls_port is not None
        else ""
    )
    return (
        f"service imap-login {{\n  chroot =\n  inet_listener imap {{\n    port = {port}\n  }}\n"
        f"{imaps}}}\nservice anvil {{\n  chroot =\n}}\n"
    )


def write_maildir(home: Path, messages: Sequence[bytes], *, seen: bool = True) -> None:
    """Put ``messages`` (CRLF) in ``home/Maildir/cur`` in order, as already-seen mail or not."""
    maildir = home / "Maildir"
    for sub in ("cur", "new", "tmp"):
        (maildir / sub).mkdir(parents=True, exist_ok=True)
    flags = "S" if seen else ""
    for i, data in enumerate(messages):
        (maildir / "cur" / f"{1700000001 + i}.M{i}P1.bench:2,{flags}").write_bytes(data)


@contextlib.contextmanager
def _launch(d: Path, port: int, tls_port: int | None) -> Iterator[subprocess.Popen[bytes]]:
    # Foreground (-F): the process is ours to stop, and its death is seen while waiting for the port.
    proc = subprocess.Popen([DOVECOT, "-F", "-c", str(d / "dovecot.conf")])
    try:
        wait_port(port, proc)
        if tls_port is not None:
            wait_port(tls_port, proc)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def _tempdir(prefix: str) -> Path:
    # Not a 0700 temp dir of the caller's: Dovecot's mail processes run as nobody and must enter it.
    d = Path(tempfile.mkdtemp(prefix=prefix))
    os.chmod(d, 0o755)
    return d


@contextlib.contextmanager
def backend(
    mailboxes: Mapping[str, Sequence[bytes]],
    *,
    cert: tuple[Path, Path] | None = None,
    extra: str = "",
    seen: bool = True,
) -> Iterator[Running]:
    """A Dovecot mail server whose users (keys) each have an INBOX of the given messages.

    ``cert`` (certificate, key) turns on TLS (STARTTLS and an implicit-TLS port); ``extra`` is
    appended to the configuration; ``seen`` sets the messages' Seen flag. Raises RuntimeError when
    Dovecot is missing or does not start.
    """
    if not available():
        raise RuntimeError("dovecot is not installed: run scripts/install-test-deps")
    d = _tempdir("mailproxy-dovecot-")
    try:
        internal, group, login, uid, gid = _accounts()
        port = free_port()
        tls_port = free_port() if cert is not None else None
        ssl = (
            f"ssl = yes\nssl_cert = <{cert[0]}\nssl_key = <{cert[1]}\n" if cert is not None else "ssl = no\n"
        )
        (d / "dovecot.conf").write_text(
            _common(d, port, internal, group, login)
            + ssl
            + f"""mail_location = maildir:~/Maildir
passdb {{
  driver = static
  args = password={PASSWORD}
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={d}/home/%u
}}
"""
            + _listeners(port, tls_port)
            + f"""service stats {{
  unix_listener stats-reader {{
    user = {internal}
  }}
  unix_listener stats-writer {{
    user = {internal}
  }}
}}
"""
            + extra
        )
        homes = d / "home"
        homes.mkdir()
        for user, messages in mailboxes.items():
            write_maildir(homes / user, messages, seen=seen)
        if os.geteuid() == 0:
            shutil.chown(homes, uid, gid)
            for p in homes.rglob("*"):
                shutil.chown(p, uid, gid)
        with _launch(d, port, tls_port):
            yield Running(d, port, tls_port, d / "dovecot.log", homes)
    finally:
        shutil.rmtree(d, ignore_errors=True)


@contextlib.contextmanager
def proxy(backend_port: int) -> Iterator[Running]:
    """A Dovecot IMAP proxy (no mail of its own) forwarding every login to 127.0.0.1:backend_port
    in plaintext, the client's password included: the baseline for a proxy's cost."""
    if not available():
        raise RuntimeError("dovecot is not installed: run scripts/install-test-deps")
    d = _tempdir("mailproxy-dovecot-proxy-")
    try:
        internal, group, login, _, _ = _accounts()
        port = free_port()
        (d / "dovecot.conf").write_text(
            _common(d, port, internal, group, login)
            + f"""ssl = no
passdb {{
  driver = static
  args = nopassword=y
  default_fields = proxy=y host=127.0.0.1 port={backend_port}
}}
"""
            + _listeners(port, None)
        )
        with _launch(d, port, None):
            yield Running(d, port, None, d / "dovecot.log", d)
    finally:
        shutil.rmtree(d, ignore_errors=True)
