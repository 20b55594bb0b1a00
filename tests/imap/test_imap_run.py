"""`mailproxy run` as a real process with the IMAP half, in front of the throwaway Dovecot."""

from __future__ import annotations

import imaplib
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from imap_support import PASSWORD, TRACKER, USER, Dovecot, free_port, wait_port

from mailproxy.engine import Engine


def fetch_all(port: int) -> dict[bytes, bytes]:
    c = imaplib.IMAP4("127.0.0.1", port)
    try:
        c.login(USER, PASSWORD)
        c.select("INBOX", readonly=True)
        typ, data = c.uid("FETCH", "1:*", "(BODY.PEEK[])")
        assert typ == "OK"
        out = {}
        for item in data:
            if isinstance(item, tuple):
                uid = re.search(rb"UID (\d+)", item[0])
                assert uid is not None
                out[uid.group(1)] = item[1]
        return out
    finally:
        c.logout()


def start_run(
    dovecot: Dovecot, tmp_path: Path, *, stderr: int = subprocess.PIPE, extra: str = ""
) -> tuple[subprocess.Popen[bytes], int]:
    """`mailproxy run` (IMAP half only) in front of ``dovecot``, and the port it will listen on."""
    port = free_port()
    cfg = tmp_path / "run.toml"
    cfg.write_text(
        f'[http]\nenabled = false\n[imap]\nlisten = "127.0.0.1:{port}"\n'
        f'upstream = "127.0.0.1:{dovecot.port}"\nupstream_tls = "none"\n{extra}',
        encoding="utf-8",
    )
    command = [sys.executable, "-m", "mailproxy", "run", "-c", str(cfg)]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr), port


def test_mailproxy_run_serves_rewritten_mail(dovecot: Dovecot, tmp_path: Path) -> None:
    proc, port = start_run(dovecot, tmp_path)
    try:
        wait_port(port, proc)
        direct = fetch_all(dovecot.port)
        proxied = fetch_all(port)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err.decode(errors="replace")
    assert direct.keys() == proxied.keys() and direct
    engine = Engine()
    trackers = 0
    for uid, original in direct.items():
        assert len(proxied[uid]) == len(original)
        assert proxied[uid] == engine.rewrite(original, recipients=[USER], user=USER).data
        if b"text/html" in original and TRACKER in original:
            trackers += 1
            assert TRACKER not in proxied[uid]
    assert trackers > 0  # the mailbox does hold HTML with trackers, and none came through
    assert PASSWORD.encode() not in err  # credentials never reach the log
    # What was stripped reached the tracking log (under the test's private XDG_DATA_HOME).
    report = subprocess.run(
        [sys.executable, "-m", "mailproxy", "report", "--format", "csv"],
        capture_output=True,
        timeout=60,
        check=True,
    ).stdout
    assert b"imap" in report and b"Mailchimp" in report


def _children(pid: int) -> set[int]:
    out = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.add(int(entry))
    return out


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc to find child processes")
def test_rewrite_workers_end_with_a_killed_proxy(dovecot: Dovecot, tmp_path: Path) -> None:
    proc, port = start_run(dovecot, tmp_path, stderr=subprocess.DEVNULL, extra="rewrite_workers = 2\n")
    children: set[int] = set()
    try:
        wait_port(port, proc)
        deadline = time.monotonic() + 30
        while len(children) < 2 and time.monotonic() < deadline:  # the workers start with the proxy
            children = _children(proc.pid)
            time.sleep(0.1)
        assert len(children) >= 2
    finally:
        proc.kill()  # no clean shutdown: SIGKILL
        proc.wait(10)
    deadline = time.monotonic() + 20
    while children and time.monotonic() < deadline:
        children = {c for c in children if Path(f"/proc/{c}").exists()}
        time.sleep(0.1)
    for orphan in children:  # not left behind even when the test fails
        os.kill(orphan, signal.SIGKILL)
    assert not children, "rewrite workers outlived the proxy"
