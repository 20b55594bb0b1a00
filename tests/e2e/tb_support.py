"""Helpers for the Thunderbird end-to-end test: newsletters whose images live on the recording
servers (tests/recording_server.py), a throwaway Dovecot, `mailproxy run`, and a headless
Thunderbird driven through Marionette (imap.md 4.2) on a profile that trusts mitmproxy's CA."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Final

from bench import dovecot as bench_dovecot
from tests.recording_server import Servers

REPO: Final = Path(__file__).resolve().parents[2]
DOVECOT: Final = bench_dovecot.DOVECOT
THUNDERBIRD: Final = shutil.which("thunderbird") or "/usr/bin/thunderbird"
CERTUTIL: Final = shutil.which("certutil") or "/usr/bin/certutil"  # NSS's, from libnss3-tools
PASSWORD: Final = "secret"
RECIPIENT: Final = "reader@example.org"
START_TIMEOUT: Final = 30.0

# Paths under each mailbox's URL prefix. Content images are ordinary. Every tracker is flagged by
# the engine on any host: the URL trackers by their shape alone (so the HTTP half flags them too),
# the context trackers only with the message (hidden by CSS, the recipient's MD5 in the path).
CONTENT: Final = ("/img/logo.png", "/img/hero.png", "/img/banner.png")
URL_TRACKERS: Final = (
    "/track/open.php?u=0123456789abcdef012345678&id=0123456789&e=0123456789",
    "/wf/open?upn=abcdEFGH1234",
    "/e2t/o/abc/def",
    "/open.gif?e=abc",
)
CONTEXT_TRACKERS: Final = (
    "/img/p.gif",
    f"/o/{hashlib.md5(RECIPIENT.encode()).hexdigest()}.gif",
)
BIG_SIZE: Final = 4 * 1024 * 1024 + 123_457  # > 4 MiB: Thunderbird walks it in 64 KiB chunks


# Distinct colours, so the screenshot shows which content image is which; trackers get grey.
COLOURS: Final = dict(zip(CONTENT, ((200, 40, 40), (40, 160, 60), (40, 80, 200)), strict=True))
# The references served over plain HTTP; every other one is HTTPS, which the HTTP half decrypts
# (the profile trusts mitmproxy's CA, and mitmproxy the test server's).
PLAIN: Final = frozenset({CONTENT[0], URL_TRACKERS[3]})


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = START_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited with {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.05)
    raise TimeoutError(f"port {port} did not open")


def stop(proc: subprocess.Popen[bytes], timeout: float = 15) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# --- the newsletters ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Site:
    """Where the references of one newsletter live: under `prefix` on the recording servers, over
    HTTPS unless PLAIN. Each newsletter has its own prefix: requests are attributed to one message,
    and no image cache hides a request."""

    servers: Servers
    prefix: str

    def url(self, path: str) -> str:
        return self.servers.origin("http" if path in PLAIN else "https") + self.prefix + path


def site(servers: Servers, run: str, subject: str) -> Site:
    return Site(servers, f"/{run}/{subject.lower().replace(' ', '-')}")


def _html(site: Site, title: str, filler: str = "") -> str:
    t = [site.url(p).replace("&", "&amp;") for p in URL_TRACKERS]
    c = [site.url(p) for p in CONTEXT_TRACKERS]
    return f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{title}</title></head>
<body style="margin:0;font-family:sans-serif;background:#fff">
<img src="{site.url(CONTENT[0])}" width="120" height="40" alt="Shop">
<h1>{title}</h1>
<img src="{site.url(CONTENT[1])}" width="600" height="200" alt="Hero">
<table width="600"><tr><td background="{site.url(CONTENT[2])}" height="100">Sale</td></tr></table>
<p>Hello reader, here is what is new this season.</p>
<img src="{t[0]}" width="1" height="1" alt="">
<img src="{t[1]}" alt="">
<img src="{t[2]}" alt="">
<img src="{t[3]}" width="1" height="1" alt="">
<img src="{c[0]}" width="1" height="1" style="display:none" alt="">
<img src="{c[1]}" width="100" height="20" alt="">
{filler}
</body></html>
"""


def newsletter(site: Site, title: str, *, cte: str | None = None, filler: str = "") -> bytes:
    """A multipart/alternative newsletter whose remote references all live on `site`."""
    msg = EmailMessage()
    msg["From"] = "Shop <news@shop.example>"
    msg["To"] = RECIPIENT
    msg["Subject"] = title
    msg["Date"] = "Mon, 06 Jan 2025 10:00:00 +0000"
    msg["Message-ID"] = f"<{hashlib.sha1(title.encode()).hexdigest()}@shop.example>"
    msg.set_content(f"{title}: see the HTML version.")
    msg.add_alternative(_html(site, title, filler), subtype="html", cte=cte)
    return msg.as_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def big_filler(size: int) -> str:
    """Paragraphs of text adding up to at least `size` characters."""
    para = (
        "<p>Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor "
        "incididunt ut labore et dolore magna aliqua. Ut enim ad minim veniam.</p>\n"
    )
    return para * (size // len(para) + 1)


def mailbox(servers: Servers, run: str) -> dict[str, bytes]:
    """Subject -> message: newsletters in several transfer encodings and one > 4 MiB, each with
    its own `site(servers, run, subject)`."""
    return {
        subject: newsletter(site(servers, run, subject), subject, cte=cte, filler=filler)
        for subject, cte, filler in (
            ("Spring news", "quoted-printable", ""),
            ("Summer sale", "base64", ""),
            ("Autumn digest", "8bit", ""),
            ("Winter catalogue", "quoted-printable", big_filler(BIG_SIZE)),
        )
    }


# --- Dovecot --------------------------------------------------------------------------------------


@dataclass
class Dovecot:
    dir: Path
    port: int
    log: Path


@contextlib.contextmanager
def dovecot(mailboxes: dict[str, dict[str, bytes]]) -> Iterator[Dovecot]:
    """A throwaway Dovecot (imap.md section 5, bench/dovecot.py) with one unread INBOX per user."""
    users = {user: list(messages.values()) for user, messages in mailboxes.items()}
    with bench_dovecot.backend(users, seen=False) as server:
        yield Dovecot(server.dir, server.port, server.log)


# --- mailproxy run --------------------------------------------------------------------------------


@dataclass
class Proxy:
    imap_port: int | None
    http_port: int
    log: Path
    ca: Path  # mitmproxy's CA certificate, which the client must trust for HTTPS

    def blocked(self) -> int:
        """How many requests to the local servers the HTTP half answered itself."""
        return self.log.read_text(errors="replace").count("blocked request 127.0.0.1")


@contextlib.contextmanager
def mailproxy_run(tmp: Path, upstream_port: int, upstream_ca: Path, *, imap: bool) -> Iterator[Proxy]:
    """`mailproxy run` with the HTTP half and, if `imap`, the IMAP half in front of Dovecot. HTTPS
    is intercepted, and mitmproxy trusts `upstream_ca` (the test servers' issuer) upstream."""
    http_port = free_port()
    imap_port = free_port() if imap else None
    imap_section = (
        f'listen = "127.0.0.1:{imap_port}"\nupstream = "127.0.0.1:{upstream_port}"\nupstream_tls = "none"\n'
        if imap
        else "enabled = false\n"
    )
    config = tmp / "mailproxy.toml"
    config.write_text(
        f"""[http]
listen = "127.0.0.1:{http_port}"
allow_networks = ["127.0.0.0/8"]

[imap]
{imap_section}
[privacy]
dnt = "1"
gpc = true
""",
        encoding="utf-8",
    )
    log = tmp / "mailproxy.log"
    # A mitmproxy folder of its own: a fresh CA, and the user's ~/.mitmproxy untouched.
    confdir = tmp / "mitmproxy"
    command = [sys.executable, "-m", "mailproxy", "run", "-c", str(config), "--tls", "intercept"]
    command += ["--confdir", str(confdir), "--set", f"ssl_verify_upstream_trusted_ca={upstream_ca}"]
    with log.open("wb") as out:
        proc = subprocess.Popen(command, cwd=REPO, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while "mailproxy running" not in log.read_text(errors="replace"):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"mailproxy did not start:\n{log.read_text(errors='replace')}")
            time.sleep(0.05)
        # `run` says running only once both halves listen.
        yield Proxy(imap_port, http_port, log, confdir / "mitmproxy-ca-cert.pem")
    finally:
        stop(proc)


# --- Thunderbird ----------------------------------------------------------------------------------


def _pref(name: str, value: str | int | bool) -> str:
    return f"user_pref({json.dumps(name)}, {json.dumps(value)});\n"


def write_profile(
    profile: Path, *, user: str, imap_port: int, http_port: int, ca: Path, marionette_port: int
) -> None:
    """A fresh profile: one IMAP account (plain, cleartext password), the HTTP half as the network
    proxy for every host including loopback, `ca` trusted to identify web sites, remote content
    allowed, all messages kept offline."""
    profile.mkdir(parents=True)
    trust_ca(profile, ca)
    prefs: dict[str, str | int | bool] = {
        "mail.accountmanager.accounts": "account1,account2",
        "mail.accountmanager.defaultaccount": "account1",
        "mail.accountmanager.localfoldersserver": "server2",
        "mail.account.account1.server": "server1",
        "mail.account.account1.identities": "id1",
        "mail.account.account2.server": "server2",
        "mail.server.server1.type": "imap",
        "mail.server.server1.hostname": "127.0.0.1",
        "mail.server.server1.port": imap_port,
        "mail.server.server1.userName": user,
        "mail.server.server1.name": "e2e",
        "mail.server.server1.socketType": 0,
        "mail.server.server1.authMethod": 3,
        # With a login at startup and no stored password, start_session() hangs on the prompt.
        "mail.server.server1.login_at_startup": False,
        "mail.server.server1.check_new_mail": False,
        "mail.server.server1.offline_download": True,
        "mail.server.server2.type": "none",
        "mail.server.server2.hostname": "Local Folders",
        "mail.server.server2.userName": "nobody",
        "mail.server.server2.name": "Local Folders",
        "mail.identity.id1.useremail": RECIPIENT,
        "mail.identity.id1.fullName": "Reader",
        "mail.shell.checkDefaultClient": False,
        "mailnews.start_page.enabled": False,
        "mail.provider.enabled": False,
        "mail.rights.override": True,
        "mail.spotlight.firstRunDone": True,
        "mail.winsearch.firstRunDone": True,
        "app.update.disabledForTesting": True,
        "datareporting.policy.dataSubmissionEnabled": False,
        "toolkit.telemetry.enabled": False,
        "browser.safebrowsing.update.enabled": False,
        "network.captive-portal-service.enabled": False,
        "network.connectivity-service.enabled": False,
        "extensions.update.enabled": False,
        "marionette.port": marionette_port,
        # Remote content: allowed for every sender (the setting this product exists for).
        "mailnews.message_display.disable_remote_image": False,
        # The HTTP half as the proxy for HTTP and HTTPS; loopback is proxied too (by default
        # Gecko never proxies it, and the image server lives there).
        "network.proxy.type": 1,
        "network.proxy.http": "127.0.0.1",
        "network.proxy.http_port": http_port,
        "network.proxy.ssl": "127.0.0.1",
        "network.proxy.ssl_port": http_port,
        "network.proxy.share_proxy_settings": True,
        "network.proxy.no_proxies_on": "",
        "network.proxy.allow_hijacking_localhost": True,
    }
    (profile / "user.js").write_text("".join(_pref(k, v) for k, v in prefs.items()))


def trust_ca(profile: Path, ca: Path) -> None:
    """Add `ca` to the profile's NSS certificate store as an authority for web sites, as a user
    does in Settings > Certificates > Import (Thunderbird opens the store it finds there)."""
    for args in (["-N", "--empty-password"], ["-A", "-n", "mitmproxy", "-t", "C,,", "-i", str(ca)]):
        done = subprocess.run(
            [CERTUTIL, *args, "-d", f"sql:{profile}"], capture_output=True, text=True, timeout=30
        )
        if done.returncode != 0:
            raise RuntimeError(f"certutil {args[0]} failed: {done.stderr or done.stdout}")


# Chrome-context JavaScript. Marionette wraps it in a function; `arguments` holds the args and
# the last argument of an async script is the callback that returns the result.
JS_PREAMBLE: Final = """
const { MailServices } = ChromeUtils.importESModule("resource:///modules/MailServices.sys.mjs");
const server = MailServices.accounts.accounts.find(a => a.incomingServer.type == "imap")
  .incomingServer;
const inbox = () => server.rootFolder.getFolderWithFlags(Ci.nsMsgFolderFlags.Inbox);
"""

# Log in, list the folders, sync the inbox until it holds `count` headers, then download every
# message for offline use until all carry the Offline flag; resolves with the headers it has then.
# The listeners' "done" can come before the database reflects the result, and while folder
# discovery runs the Inbox lookup and its database can briefly be null: hence the polling.
JS_SYNC: Final = (
    JS_PREAMBLE
    + """
const [password, count, timeout, resolve] = arguments;
server.password = password;
const sleep = ms => new Promise(r => setTimeout(r, ms));
const wait = (f) => new Promise((ok, fail) => f({
  OnStartRunningUrl() {},
  OnStopRunningUrl(url, status) { status == 0 ? ok() : fail(new Error("status " + status)); },
  QueryInterface: ChromeUtils.generateQI(["nsIUrlListener"]),
}));
let found = null;
const folder = () => (found = inbox() || found);
const headers = () => {
  const db = folder() && folder().msgDatabase;
  return db ? [...db.enumerateMessages()] : null;
};
const offline = h => (h.flags & Ci.nsMsgMessageFlags.Offline) != 0;
const synced = () => { const h = headers(); return h && h.length >= count; };
const ready = () => synced() && headers().every(offline);
(async () => {
  const deadline = Date.now() + timeout * 1000;
  server.performExpand(null);
  while (!folder() && Date.now() < deadline) await sleep(50);
  while (!ready() && Date.now() < deadline) {
    if (!synced()) {
      await wait(l => folder().QueryInterface(Ci.nsIMsgImapMailFolder)
        .updateFolderWithListener(null, l));
    } else {
      await wait(l => folder().downloadAllForOffline(l, null));
    }
    for (let j = 0; j < 20 && !ready(); j++) await sleep(100);
  }
  resolve({ ok: true, headers: (headers() || []).map(hdr => ({
    subject: hdr.mime2DecodedSubject,
    key: hdr.messageKey,
    size: hdr.messageSize,
    offline: offline(hdr),
    uri: folder().getUriForMsg(hdr),
  })) });
})().catch(e => resolve({ ok: false, error: String(e) + "\\n" + e.stack }));
"""
)

# Streams one message and returns its bytes in base64. `localOnly` reads the offline store;
# otherwise the Offline flag is cleared first so Thunderbird fetches it from the server (in
# 64 KiB chunks when it is large).
JS_STREAM: Final = (
    JS_PREAMBLE
    + """
const [key, localOnly, resolve] = arguments;
(async () => {
// The Inbox and its database can briefly be null (see JS_SYNC).
for (let i = 0; i < 200 && !(inbox() && inbox().msgDatabase); i++) {
  await new Promise(r => setTimeout(r, 50));
}
const folder = inbox();
const hdr = folder.msgDatabase.getMsgHdrForKey(key);
if (!localOnly) {
  hdr.flags &= ~Ci.nsMsgMessageFlags.Offline;
}
const uri = folder.getUriForMsg(hdr);
const chunks = [];
const listener = {
  onStartRequest() {},
  onDataAvailable(request, stream, offset, count) {
    const bin = Cc["@mozilla.org/binaryinputstream;1"].createInstance(Ci.nsIBinaryInputStream);
    bin.setInputStream(stream);
    chunks.push(bin.readBytes(count));
  },
  onStopRequest(request, status) {
    const data = chunks.join("");
    resolve({ status, data: btoa(data), length: data.length });
  },
  QueryInterface: ChromeUtils.generateQI(["nsIStreamListener"]),
};
MailServices.messageServiceFromURI(uri).streamMessage(uri, listener, null, null, false, "",
  localOnly);
})().catch(e => resolve({ status: -1, error: String(e) + "\\n" + e.stack }));
"""
)


class Thunderbird:
    """A headless Thunderbird on a fresh profile, driven through Marionette."""

    def __init__(self, profile: Path, marionette_port: int, log: Path) -> None:
        # No type information is published for marionette-driver.
        from marionette_driver.marionette import Marionette  # type: ignore[import-untyped]

        self.log = log
        # Thunderbird's own IMAP protocol log: every command it sends, as the client saw it.
        self.imap_log = profile.parent / "imap.moz_log"
        with log.open("wb") as out:
            self.proc = subprocess.Popen(
                [
                    THUNDERBIRD,
                    "--headless",
                    "--marionette",
                    # Chrome-context scripts need it ("System access is required").
                    "--remote-allow-system-access",
                    "--no-remote",
                    "-profile",
                    str(profile),
                ],
                env={
                    **os.environ,
                    "MOZ_HEADLESS": "1",
                    "HOME": str(profile.parent),
                    "MOZ_LOG": "IMAP:4,sync",
                    "MOZ_LOG_FILE": str(self.imap_log),
                },
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        try:
            wait_port(marionette_port, self.proc, 60)
            self.client = Marionette(host="127.0.0.1", port=marionette_port)
            self.client.start_session()
            self.client.set_context(self.client.CONTEXT_CHROME)
        except BaseException:
            stop(self.proc)
            raise

    def run(self, script: str, args: Sequence[Any] = (), timeout: float = 120) -> Any:
        self.client.timeout.script = timeout
        return self.client.execute_async_script(script, script_args=list(args), sandbox="system")

    def imap_commands(self) -> list[str]:
        """The IMAP commands Thunderbird sent so far (from all its log files)."""
        lines: list[str] = []
        for f in sorted(self.imap_log.parent.glob(self.imap_log.name + "*")):
            lines += f.read_text(errors="replace").splitlines()
        return lines

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.client.delete_session()
        stop(self.proc)
