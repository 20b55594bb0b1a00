"""Many messages in one FETCH response: plain-text mail is rewritten inline (no worker-thread trip),
in a loop rather than by recursion, and the client gets every message unchanged."""

from __future__ import annotations

import imaplib
import os
import shutil

from imap_support import PASSWORD, USER, Dovecot, ProxyThread

N = 1200  # more than Python's default recursion limit


def test_a_thousand_plain_messages_in_one_fetch(dovecot: Dovecot, proxy: ProxyThread) -> None:
    folder = dovecot.home / "Maildir" / ".Bulk"
    for sub in ("cur", "new", "tmp"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    for i in range(N):
        body = f"From: a@shop.example\r\nSubject: note {i}\r\n\r\nplain text {i}\r\n".encode()
        (folder / "cur" / f"{1700100000 + i}.M{i}P2.bulk:2,").write_bytes(body)
    if os.geteuid() == 0:  # Dovecot's mail processes run as nobody here (see conftest)
        for p in [folder, *folder.rglob("*")]:
            shutil.chown(p, "nobody", "nogroup")

    via = imaplib.IMAP4("127.0.0.1", proxy.port)
    try:
        via.login(USER, PASSWORD)
        typ, _ = via.select("Bulk", readonly=True)
        assert typ == "OK"
        typ, data = via.fetch(f"1:{N}", "(BODY.PEEK[])")
    finally:
        via.logout()
    assert typ == "OK"
    bodies = [item[1] for item in data if isinstance(item, tuple)]
    assert len(bodies) == N
    assert sorted(b.rsplit(b" ", 1)[1] for b in bodies)[:2] == [b"0\r\n", b"1\r\n"]
