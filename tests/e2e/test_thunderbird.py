"""End to end with a real Thunderbird (issue 7): the reader opens newsletters, and nothing tracks them.

A throwaway Dovecot holds newsletters whose content images live on local recording servers, most
over HTTPS (a trustme certificate) and some over plain HTTP, and whose trackers use URL shapes the
detector flags on any host (the proxy resolves names itself, so vendor host names cannot be pointed
at the local servers), plus a hidden 1x1 and the recipient's MD5 in a path. One message is over
4 MiB, so Thunderbird fetches it in 64 KiB chunks. A headless Thunderbird on a fresh profile
(imap.md 4.2) syncs the inbox, keeps every message offline and opens each newsletter in a tab,
with remote content allowed and the HTTP half as its network proxy. The HTTP half intercepts
HTTPS: the profile trusts mitmproxy's CA (NSS certutil) and mitmproxy trusts the servers' CA.

- Through both halves: Thunderbird stores exactly the rewritten messages, at the size the server
  reports; the chunk-fetched large message equals a whole fetch through the proxy; the image
  servers see every content image, each over the scheme it was linked with, with DNT and Sec-GPC
  and without Cookie or Referer, and no tracker at all. A screenshot of a rendered newsletter is
  kept under artifacts/.
- With the IMAP half off (Thunderbird straight to Dovecot, images still through the HTTP half):
  the URL-shaped trackers, HTTPS ones included, are answered by the proxy and never reach the
  servers; the ones only the message reveals do reach them, which is why the rewriter is the first
  line of defence.

Each Dovecot user has its own mailbox and each newsletter its own URL prefix, so requests are
attributed to one run and one message, and no image cache hides a request. Without the CA trusted
(by Thunderbird or by mitmproxy) no HTTPS image arrives and the test fails.
"""

from __future__ import annotations

import base64
import email
import email.policy
import imaplib
import importlib.util
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import pytest
from tb_support import (
    BIG_SIZE,
    CERTUTIL,
    COLOURS,
    CONTENT,
    CONTEXT_TRACKERS,
    DOVECOT,
    JS_STREAM,
    JS_SYNC,
    PASSWORD,
    PLAIN,
    RECIPIENT,
    REPO,
    THUNDERBIRD,
    URL_TRACKERS,
    Dovecot,
    Proxy,
    Site,
    Thunderbird,
    dovecot,
    free_port,
    mailbox,
    mailproxy_run,
    site,
    write_profile,
)

from mailproxy.engine import Engine
from tests.recording_server import Recorder, Request, Servers, http_and_https

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not os.access(THUNDERBIRD, os.X_OK) or importlib.util.find_spec("marionette_driver") is None,
        reason="thunderbird or marionette-driver is not installed (scripts/install-thunderbird)",
    ),
    pytest.mark.skipif(
        not os.access(DOVECOT, os.X_OK), reason="dovecot is not installed (scripts/install-test-deps)"
    ),
    pytest.mark.skipif(
        not os.access(CERTUTIL, os.X_OK), reason="certutil is not installed (scripts/install-test-deps)"
    ),
]

ARTIFACTS: Final = REPO / "artifacts" / "thunderbird"
DIRECT_USER: Final = "direct@example.org"  # the mailbox Thunderbird reads without the IMAP half
RENDER_TIMEOUT: Final = 60.0
SYNC_TIMEOUT: Final = 90.0
CHUNK: Final = 65536  # Thunderbird's mail.imap.chunk_size
# Thunderbird's offline store puts these in front of each message it keeps.
MOZILLA_HEADERS: Final = re.compile(rb"\A(?:X-Mozilla-[A-Za-z0-9-]+: [^\n]*\n)*")


@dataclass
class Rig:
    servers: Servers
    ca: Path  # the servers' issuer, which mitmproxy trusts upstream
    dovecot: Dovecot

    def site(self, run: str, subject: str) -> Site:
        return site(self.servers, run, subject)

    def seen(self, run: str, subject: str) -> dict[str, list[Request]]:
        """Path -> the requests the servers received for it, for one newsletter."""
        return self.servers.recorder.under(self.site(run, subject).prefix)


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    with http_and_https(Recorder(colours=COLOURS)) as servers:
        ca = tmp_path_factory.mktemp("servers") / "ca.pem"
        servers.ca.cert_pem.write_to_path(str(ca))
        mailboxes = {RECIPIENT: mailbox(servers, "imap"), DIRECT_USER: mailbox(servers, "direct")}
        with dovecot(mailboxes) as dv:
            yield Rig(servers, ca, dv)


# --- helpers --------------------------------------------------------------------------------------


def fetch_whole(port: int, user: str) -> dict[int, tuple[int, bytes]]:
    """UID -> (RFC822.SIZE, BODY[]) as a plain IMAP client gets them on `port`."""
    c = imaplib.IMAP4("127.0.0.1", port)
    try:
        c.login(user, PASSWORD)
        c.select("INBOX", readonly=True)
        typ, data = c.uid("FETCH", "1:*", "(RFC822.SIZE BODY.PEEK[])")
        assert typ == "OK", data
        out = {}
        for item in data:
            if isinstance(item, tuple):
                uid = re.search(rb"UID (\d+)", item[0])
                size = re.search(rb"RFC822\.SIZE (\d+)", item[0])
                assert uid is not None and size is not None, item[0]
                out[int(uid.group(1))] = (int(size.group(1)), item[1])
        return out
    finally:
        c.logout()


def html_of(raw: bytes) -> str:
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    body = msg.get_body(("html",))
    assert body is not None, "the message has no HTML part"
    return str(body.get_content())


def start_thunderbird(tmp: Path, user: str, imap_port: int, proxy: Proxy) -> Thunderbird:
    marionette_port = free_port()
    profile = tmp / "profile"
    write_profile(
        profile,
        user=user,
        imap_port=imap_port,
        http_port=proxy.http_port,
        ca=proxy.ca,
        marionette_port=marionette_port,
    )
    return Thunderbird(profile, marionette_port, tmp / "thunderbird.log")


def sync(tb: Thunderbird, count: int) -> list[dict[str, Any]]:
    """Sync the inbox and download every message for offline use; the headers Thunderbird has."""
    result = tb.run(JS_SYNC, [PASSWORD, count, SYNC_TIMEOUT], timeout=SYNC_TIMEOUT + 30)
    assert result.get("ok"), result
    headers: list[dict[str, Any]] = result["headers"]
    assert len(headers) == count, headers
    assert all(h["offline"] for h in headers), f"not all messages were stored offline: {headers}"
    return headers


def stream(tb: Thunderbird, key: int, *, local: bool) -> bytes:
    """One message as Thunderbird streams it: from its offline store, or from the server."""
    result = tb.run(JS_STREAM, [key, local], timeout=120)
    assert result.get("status") == 0, {k: v for k, v in result.items() if k != "data"}
    data = base64.b64decode(result["data"])
    return MOZILLA_HEADERS.sub(b"", data, count=1) if local else data


OPEN_TAB: Final = """
const [uri, resolve] = arguments;
window.gTabmail.openTab("mailMessageTab", { messageURI: uri, background: false });
resolve(true);
"""


def wait_for(
    what: str, done: Callable[[], bool], state: Callable[[], object], timeout: float = RENDER_TIMEOUT
) -> None:
    """Wait until `done()`; on a timeout, fail with `state()`: what there was instead."""
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}; got {state()}")
        time.sleep(0.1)


def open_newsletter(tb: Thunderbird, rig: Rig, run: str, header: dict[str, Any]) -> None:
    """Open one message in a tab and wait until its content images reached the servers."""
    subject = header["subject"]
    tb.run(OPEN_TAB, [header["uri"]])
    wait_for(
        f"the images of {subject!r}",
        lambda: set(CONTENT) <= set(rig.seen(run, subject)),
        lambda: sorted(f"{r[0].scheme} {p}" for p, r in rig.seen(run, subject).items()),
    )


def assert_private(path: str, request: Request) -> None:
    """The request came over the scheme the newsletter links `path` with (so through the
    intercepting proxy when HTTPS), with DNT and GPC, and without the reader's cookie or Referer."""
    assert request.scheme == ("http" if path in PLAIN else "https"), (path, request)
    headers = request.headers
    assert headers.get("dnt") == ["1"], (path, request)
    assert headers.get("sec-gpc") == ["1"], (path, request)
    assert "cookie" not in headers, (path, request)
    assert "referer" not in headers, (path, request)


# --- the tests ------------------------------------------------------------------------------------


def test_thunderbird_through_both_halves(rig: Rig, tmp_path: Path) -> None:
    engine = Engine()
    with mailproxy_run(tmp_path, rig.dovecot.port, rig.ca, imap=True) as proxy:
        assert proxy.imap_port is not None
        direct = fetch_whole(rig.dovecot.port, RECIPIENT)
        proxied = fetch_whole(proxy.imap_port, RECIPIENT)
        tb = start_thunderbird(tmp_path, RECIPIENT, proxy.imap_port, proxy)
        try:
            headers = sync(tb, len(direct))

            # What Thunderbird stored is the rewritten message, at the size the server reports.
            for h in headers:
                size, original = direct[h["key"]]
                rewritten = engine.rewrite(original, recipients=[RECIPIENT], user=RECIPIENT).data
                assert rewritten != original
                assert proxied[h["key"]] == (size, rewritten)
                assert h["size"] == size == len(original)
                stored = stream(tb, h["key"], local=True)
                assert stored == rewritten, f"{h['subject']}: the stored copy is not the rewrite"
                html = html_of(stored)
                links = rig.site("imap", h["subject"])
                for path in CONTENT:
                    assert links.url(path) in html
                for path in URL_TRACKERS + CONTEXT_TRACKERS:
                    assert links.url(path).replace("&", "&amp;") not in html, path

            # The large message, fetched again in 64 KiB chunks, equals a whole fetch.
            big = max(headers, key=lambda h: h["size"])
            assert big["size"] > BIG_SIZE
            sent_before = len(tb.imap_commands())
            chunked = stream(tb, big["key"], local=False)
            assert chunked == proxied[big["key"]][1]
            partial = re.compile(rf"UID fetch {big['key']} \(.*BODY\.PEEK\[\]<\d+\.{CHUNK}>\)")
            chunks = -(-big["size"] // CHUNK)
            walked = [c for c in tb.imap_commands()[sent_before:] if partial.search(c)]
            assert len(walked) == chunks, f"{len(walked)} chunk commands, not {chunks}"

            # The reader opens every newsletter.
            for i, h in enumerate(sorted(headers, key=lambda h: h["size"])):
                open_newsletter(tb, rig, "imap", h)
                if i == 0:
                    time.sleep(1)  # the images reached the server; let them paint
                    ARTIFACTS.mkdir(parents=True, exist_ok=True)
                    shot = tb.client.screenshot(format="binary")
                    assert shot.startswith(b"\x89PNG")
                    (ARTIFACTS / "newsletter-through-mailproxy.png").write_bytes(shot)
            time.sleep(1)  # stragglers, if any tracker were requested after the content
        finally:
            tb.close()

    for h in headers:
        seen = rig.seen("imap", h["subject"])
        assert set(seen) == set(CONTENT), f"{h['subject']}: the servers saw {sorted(seen)}"
        for path in CONTENT:
            for request in seen[path]:
                assert_private(path, request)

    # The tracking log counted what the IMAP filter stripped (the test's own XDG_DATA_HOME).
    report = json.loads(
        subprocess.run(
            [sys.executable, "-m", "mailproxy", "report", "--format", "json"],
            capture_output=True,
            check=True,
            timeout=60,
        ).stdout
    )
    channels = {row["key"]: row["count"] for row in report["channels"]}
    actions = {row["key"]: row["count"] for row in report["actions"]}
    assert channels.get("imap", 0) > 0
    assert actions.get("strip", 0) >= len(headers) * len(URL_TRACKERS + CONTEXT_TRACKERS)


def test_thunderbird_with_the_imap_half_off(rig: Rig, tmp_path: Path) -> None:
    direct = fetch_whole(rig.dovecot.port, DIRECT_USER)
    with mailproxy_run(tmp_path, rig.dovecot.port, rig.ca, imap=False) as proxy:
        assert proxy.imap_port is None
        blocked_before = proxy.blocked()
        tb = start_thunderbird(tmp_path, DIRECT_USER, rig.dovecot.port, proxy)
        try:
            headers = sync(tb, len(direct))
            for h in headers:
                # No IMAP half: Thunderbird keeps the newsletters as sent.
                assert stream(tb, h["key"], local=True) == direct[h["key"]][1]
            for h in headers:
                open_newsletter(tb, rig, "direct", h)
            expected = len(URL_TRACKERS) * len(headers)
            wait_for(
                f"the proxy to answer every URL-shaped tracker ({expected})",
                lambda: proxy.blocked() - blocked_before >= expected,
                lambda: proxy.blocked() - blocked_before,
            )
            wait_for(
                "the context-only trackers",
                lambda: all(set(CONTEXT_TRACKERS) <= set(rig.seen("direct", h["subject"])) for h in headers),
                lambda: {h["subject"]: sorted(rig.seen("direct", h["subject"])) for h in headers},
            )
            time.sleep(1)
        finally:
            tb.close()

    for h in headers:
        seen = rig.seen("direct", h["subject"])
        for path in URL_TRACKERS:
            assert path not in seen, f"{h['subject']}: the tracker {path} reached the servers"
        assert set(seen) == set(CONTENT) | set(CONTEXT_TRACKERS), sorted(seen)
        # Trackers only the message reveals pass the HTTP half, but stripped of the reader's
        # cookie and with DNT / GPC, like content.
        for path, requests in seen.items():
            for request in requests:
                assert_private(path, request)
