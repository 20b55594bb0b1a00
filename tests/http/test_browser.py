"""A real browser behind the proxy: headless Chromium renders a newsletter rewritten by the engine.

The newsletter's images all live on a local recording server (127.0.0.1, opened to the proxy by
`[http] allow_networks`). Its trackers use URL shapes the detector flags on any host (the proxy
resolves names itself, so vendor host names cannot be pointed at the local server), plus two that
only the message context reveals: a hidden 1x1 image and the recipient's MD5 in a path.

Three renderings, each with a fresh profile and its own URL prefix on the server:
- `rewritten` through `mailproxy run`: content images arrive with DNT and Sec-GPC, without Cookie
  or Referer; no tracker is fetched at all. The screenshot is kept under artifacts/.
- `raw` (the same HTML, not rewritten) through the proxy: URL-shaped trackers are answered by the
  proxy and never reach the server (the second line of defence); context-only ones do reach it,
  which is why the rewriter is the first line.
- `direct` (the rewritten HTML, no proxy): Chromium itself does send Cookie and Referer and no
  DNT / Sec-GPC, so the assertions above are about the proxy, not about the browser.
"""

from __future__ import annotations

import email
import email.policy
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Final

import pytest

from mailproxy.engine import Engine
from mailproxy.model import Verdict
from tests.recording_server import Headers, Recorder, serving

CHROMIUM: Final = shutil.which("chromium") or "/usr/bin/chromium"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not os.access(CHROMIUM, os.X_OK),
        reason="chromium is not installed (scripts/install-browser)",
    ),
]

REPO: Final = Path(__file__).resolve().parents[2]
ARTIFACTS: Final = REPO / "artifacts" / "browser"
START_TIMEOUT: Final = 30.0
CHROMIUM_TIMEOUT: Final = 30.0
RECIPIENT: Final = "reader@example.org"

# Paths under each run's prefix. Content images are ordinary; every tracker is flagged by the
# engine (checked below), the first four by URL alone, so the proxy flags them too.
CONTENT: Final = ("/img/logo.png", "/img/hero.png", "/img/banner.png")
URL_TRACKERS: Final = (
    "/track/open.php?u=0123456789abcdef012345678&id=0123456789&e=0123456789",
    "/wf/open?upn=abcdEFGH1234",
    "/e2t/o/abc/def",
    "/open.gif?e=abc",
)
CONTEXT_TRACKERS: Final = (
    "/img/p.gif",  # hidden 1x1 on a third-party host
    f"/o/{hashlib.md5(RECIPIENT.encode()).hexdigest()}.gif",  # the recipient's MD5 in the path
)


# Distinct colours, so the screenshot shows which content image is which; trackers get grey.
COLOURS: Final = dict(zip(CONTENT, ((200, 40, 40), (40, 160, 60), (40, 80, 200)), strict=True))


# --- the newsletter -------------------------------------------------------------------------------


def newsletter(base: str) -> bytes:
    """A multipart/alternative newsletter whose references all start with `base`."""
    t = [base + p.replace("&", "&amp;") for p in URL_TRACKERS]
    c = [base + p for p in CONTEXT_TRACKERS]
    html = f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Spring news</title></head>
<body style="margin:0;font-family:sans-serif">
<img src="{base}{CONTENT[0]}" width="120" height="40" alt="Shop">
<h1>Spring collection</h1>
<img src="{base}{CONTENT[1]}" width="600" height="200" alt="Hero">
<div style="width:600px;height:100px;background-image:url('{base}{CONTENT[2]}')">Sale</div>
<p>Hello reader, here is what is new this spring.</p>
<img src="{t[0]}" width="1" height="1" alt="">
<img src="{t[1]}" alt="">
<img src="{t[2]}" alt="">
<div style="width:10px;height:10px;background:url({t[3]})"></div>
<img src="{c[0]}" width="1" height="1" style="display:none" alt="">
<img src="{c[1]}" width="100" height="20" alt="">
</body></html>
"""
    msg = EmailMessage()
    msg["From"] = "Shop <news@shop.example>"
    msg["To"] = RECIPIENT
    msg["Subject"] = "Spring news"
    msg.set_content("Spring news: see the HTML version.")
    msg.add_alternative(html, subtype="html")
    return msg.as_bytes()


def html_of(raw: bytes) -> str:
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    body = msg.get_body(("html",))
    assert body is not None, "the message has no HTML part"
    return str(body.get_content())


# --- the proxy and the browser --------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Rig:
    server_port: int
    recorder: Recorder
    proxy_port: int
    proxy_log: Path
    tmp: Path

    def base(self, run: str) -> str:
        return f"http://127.0.0.1:{self.server_port}/{run}"

    def seen(self, run: str) -> dict[str, Headers]:
        """Path (without /<run>) -> the headers of its last request, for one rendering."""
        return {path: requests[-1].headers for path, requests in self.recorder.under(f"/{run}").items()}


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    tmp = tmp_path_factory.mktemp("browser")
    port = free_port()
    config = tmp / "proxy.toml"
    config.write_text(
        f"""
[http]
listen = "127.0.0.1:{port}"
allow_networks = ["127.0.0.0/8"]

[imap]
enabled = false

[privacy]
dnt = "1"
gpc = true
""",
        encoding="utf-8",
    )
    log = tmp / "proxy.log"
    # mitmproxy's CA goes to ~/.mitmproxy: a HOME of its own keeps the user's folder untouched.
    env = {**os.environ, "HOME": str(tmp / "home")}
    recorder = Recorder(colours=COLOURS)
    with serving(recorder) as server_port:
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "mailproxy", "run", "-c", str(config), "--tls", "passthrough"],
                cwd=REPO,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        try:
            deadline = time.monotonic() + START_TIMEOUT
            while "mailproxy running" not in log.read_text(errors="replace"):
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"the proxy did not start:\n{log.read_text(errors='replace')}")
                time.sleep(0.05)
            yield Rig(server_port, recorder, port, log, tmp)
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def render(rig: Rig, run: str, html: str, *, proxy: bool) -> Path:
    """Serve `html` as /<run>/newsletter.html and let Chromium load it; the screenshot's path."""
    page = f"/{run}/newsletter.html"
    rig.recorder.page(page, html)
    shot = rig.tmp / f"{run}.png"
    args = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={rig.tmp / ('profile-' + run)}",
        f"--screenshot={shot}",
        "--window-size=800,2000",
    ]
    if proxy:
        # Chromium never proxies loopback unless told to; <-loopback> removes that exception.
        args += [
            f"--proxy-server=http://127.0.0.1:{rig.proxy_port}",
            "--proxy-bypass-list=<-loopback>",
        ]
    else:
        args.append("--no-proxy-server")
    url = f"http://127.0.0.1:{rig.server_port}{page}"
    try:
        done = subprocess.run([*args, url], capture_output=True, timeout=CHROMIUM_TIMEOUT)
    except subprocess.TimeoutExpired:
        pytest.fail(f"Chromium did not finish {run} within {CHROMIUM_TIMEOUT:.0f} s")
    assert shot.is_file(), f"Chromium wrote no screenshot ({done.returncode}):\n{done.stderr.decode()}"
    assert shot.read_bytes().startswith(b"\x89PNG")
    return shot


def engine_trackers(raw: bytes, base: str) -> set[str]:
    """The tracker URLs the engine finds in `raw`, relative to `base`."""
    findings = Engine().analyse(raw)
    return {f.url.removeprefix(base) for f in findings if f.verdict is Verdict.TRACKER}


# --- the tests ------------------------------------------------------------------------------------


def test_rewritten_newsletter_fetches_content_privately_and_no_tracker(rig: Rig) -> None:
    base = rig.base("rewritten")
    raw = newsletter(base)
    assert engine_trackers(raw, base) == set(URL_TRACKERS) | set(CONTEXT_TRACKERS)
    html = html_of(Engine().rewrite(raw).data)
    for path in URL_TRACKERS + CONTEXT_TRACKERS:
        assert base + path.replace("&", "&amp;") not in html

    shot = render(rig, "rewritten", html, proxy=True)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    kept = ARTIFACTS / "newsletter-rewritten.png"
    shutil.copyfile(shot, kept)
    print(f"screenshot of the rewritten newsletter: {kept}")

    seen = rig.seen("rewritten")
    assert "/newsletter.html" in seen, "Chromium did not load the page through the proxy"
    for path in CONTENT:
        assert path in seen, f"{path} was not fetched; the server saw {sorted(seen)}"
        headers = seen[path]
        assert headers.get("dnt") == ["1"], headers
        assert headers.get("sec-gpc") == ["1"], headers
        assert "cookie" not in headers, headers
        assert "referer" not in headers, headers
    assert set(seen) <= {"/newsletter.html", *CONTENT}, f"unexpected fetches: {sorted(seen)}"


def test_unrewritten_newsletter_trackers_are_answered_by_the_proxy(rig: Rig) -> None:
    base = rig.base("raw")
    raw = newsletter(base)
    blocked_before = rig.proxy_log.read_text(errors="replace").count("blocked request 127.0.0.1")

    render(rig, "raw", html_of(raw), proxy=True)

    seen = rig.seen("raw")
    for path in CONTENT:
        assert path in seen, f"{path} was not fetched; the server saw {sorted(seen)}"
    for path in URL_TRACKERS:
        assert path not in seen, f"the tracker {path} reached the server"
    # Not merely skipped by the browser: it asked, and the proxy answered each tracker itself.
    blocked = rig.proxy_log.read_text(errors="replace").count("blocked request 127.0.0.1")
    assert blocked - blocked_before == len(URL_TRACKERS)
    # Trackers that only the message reveals get through the proxy (with DNT, without the
    # reader's cookie): this is what the rewriter is for.
    for path in CONTEXT_TRACKERS:
        assert path in seen, f"{path} was not fetched; the server saw {sorted(seen)}"
        assert "cookie" not in seen[path] and seen[path].get("dnt") == ["1"]


def test_without_the_proxy_the_browser_sends_what_the_proxy_removes(rig: Rig) -> None:
    base = rig.base("direct")
    html = html_of(Engine().rewrite(newsletter(base)).data)

    render(rig, "direct", html, proxy=False)

    seen = rig.seen("direct")
    for path in CONTENT:
        headers = seen[path]
        assert headers.get("cookie") == ["session=SECRET"], headers
        assert headers.get("referer") == [base + "/newsletter.html"], headers
        assert "dnt" not in headers and "sec-gpc" not in headers, headers
