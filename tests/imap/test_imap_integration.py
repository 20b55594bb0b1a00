"""The proxy in front of a real Dovecot, driven by imaplib and imapclient."""

from __future__ import annotations

import contextlib
import email
import imaplib
import re
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from email.message import Message

import pytest
from imap_support import LOGO, PASSWORD, TRACKER, USER, Dovecot, MakeProxy, ProxyThread

from mailproxy.rewrite.transfer import decode

pytestmark = pytest.mark.slow


def login(port: int) -> imaplib.IMAP4:
    c = imaplib.IMAP4("127.0.0.1", port)
    c.login(USER, PASSWORD)
    return c


@pytest.fixture
def direct(dovecot: Dovecot) -> Iterator[imaplib.IMAP4]:
    c = login(dovecot.port)
    c.select("INBOX", readonly=True)
    yield c
    c.logout()


@pytest.fixture
def via(proxy: ProxyThread) -> Iterator[imaplib.IMAP4]:
    c = login(proxy.port)
    c.select("INBOX", readonly=True)
    yield c
    c.logout()


def fetch(c: imaplib.IMAP4, uid: int | bytes, items: str) -> dict[bytes, bytes]:
    """Literal items of one UID FETCH response, by item name, plus the whole first line."""
    typ, data = c.uid("FETCH", str(int(uid)), items)
    assert typ == "OK", data
    out: dict[bytes, bytes] = {}
    for part in data:
        if isinstance(part, tuple):
            head, literal = part
            name = re.search(rb"([A-Z0-9.]+(?:\[[^\]]*\])?(?:<[0-9]+>)?) [~]?\{[0-9]+\}$", head)
            assert name is not None, head
            out[name.group(1)] = literal
            out[b"_line"] = out.get(b"_line", b"") + head
        elif isinstance(part, bytes):
            out[b"_line"] = out.get(b"_line", b"") + part
    return out


def uids(c: imaplib.IMAP4) -> dict[str, int]:
    typ, data = c.uid("FETCH", "1:*", "(UID BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    assert typ == "OK"
    out: dict[str, int] = {}
    for part in data:
        if isinstance(part, tuple):
            uid = int(re.search(rb"UID ([0-9]+)", part[0]).group(1))  # type: ignore[union-attr]
            subject = part[1].decode().split(":", 1)[1].strip()
            out[subject] = uid
    return out


def html_of(raw: bytes) -> bytes:
    msg = email.message_from_bytes(raw)
    out = b""
    for p in msg.walk():
        if p.get_content_type() == "text/html":
            payload = p.get_payload(decode=True)
            assert isinstance(payload, bytes)
            out += payload
    return out


def test_whole_fetch_removes_trackers_keeps_images_and_sizes(
    direct: imaplib.IMAP4, via: imaplib.IMAP4, dovecot: Dovecot
) -> None:
    by_subject = uids(via)
    assert set(by_subject) == set(dovecot.messages)
    for subject, uid in by_subject.items():
        items = "(UID RFC822.SIZE BODYSTRUCTURE BODY.PEEK[])"
        d, v = fetch(direct, uid, items), fetch(via, uid, items)
        original, seen = d[b"BODY[]"], v[b"BODY[]"]
        assert original == dovecot.messages[subject]
        size = int(re.search(rb"RFC822.SIZE ([0-9]+)", v[b"_line"]).group(1))  # type: ignore[union-attr]
        assert len(seen) == size == len(original)
        assert seen.count(b"\r\n") == original.count(b"\r\n")
        # BODYSTRUCTURE and everything else on the line is what Dovecot said.
        assert v[b"_line"] == d[b"_line"].replace(b"BODY[] {", b"BODY[] {")
        if subject == "plain text":
            assert seen == original  # no HTML: not a byte changes
            continue
        assert TRACKER in html_of(original) and TRACKER not in html_of(seen), subject
        assert LOGO in html_of(seen), subject


def test_capabilities_are_filtered(via: imaplib.IMAP4, direct: imaplib.IMAP4) -> None:
    assert "STARTTLS" in direct.capabilities and "STARTTLS" not in via.capabilities
    direct_caps = direct.capability()[1][0].split()
    via_caps = via.capability()[1][0].split()
    assert b"COMPRESS=DEFLATE" in direct_caps and b"NOTIFY" in direct_caps
    assert b"COMPRESS=DEFLATE" not in via_caps and b"NOTIFY" not in via_caps
    assert via_caps == [
        c for c in direct_caps if c not in (b"COMPRESS=DEFLATE", b"NOTIFY", b"LOGIN-REFERRALS")
    ]
    via.send(b"z1 COMPRESS DEFLATE\r\n")  # imaplib has no COMPRESS command; the wire is enough
    assert via.readline().startswith(b"z1 NO [CANNOT]")
    assert via.noop()[0] == "OK"  # and the session goes on uncompressed


@pytest.mark.parametrize("chunk", [4096, 65536, 1000])
def test_chunked_partial_fetches_reassemble_to_the_whole(
    via: imaplib.IMAP4, direct: imaplib.IMAP4, chunk: int
) -> None:
    by_subject = uids(via)
    for subject in ("big newsletter", "qp alternative"):
        uid = by_subject[subject]
        whole = fetch(via, uid, "(BODY.PEEK[])")[b"BODY[]"]
        original = fetch(direct, uid, "(BODY.PEEK[])")[b"BODY[]"]
        assert TRACKER not in html_of(whole)
        got = b""
        o = 0
        while True:
            part = fetch(via, uid, f"(UID RFC822.SIZE BODY.PEEK[]<{o}.{chunk}>)")
            data = part[f"BODY[]<{o}>".encode()]
            assert b"X-MAILPROXY" not in part[b"_line"].upper()
            got += data
            o += chunk
            if len(data) < chunk:
                break
        assert got == whole and len(got) == len(original)
        # Past the end: an empty string, as Dovecot says.
        past = fetch(via, uid, f"(BODY.PEEK[]<{len(whole) + 10}.10>)")
        assert past[f"BODY[]<{len(whole) + 10}>".encode()] == b""


def test_sequence_number_partial_and_truncated_prefix(via: imaplib.IMAP4) -> None:
    by_subject = uids(via)
    uid = by_subject["big newsletter"]
    whole = fetch(via, uid, "(BODY.PEEK[])")[b"BODY[]"]
    typ, data = via.search(None, "ALL")
    seqs = data[0].split()
    typ, uidmap = via.fetch(b",".join(seqs).decode(), "(UID)")
    msn = next(
        s
        for s, line in zip(seqs, uidmap, strict=True)
        if isinstance(line, bytes) and b"UID %d)" % uid in line
    )
    typ, resp = via.fetch(msn, "(BODY.PEEK[]<0.5000>)")
    assert typ == "OK"
    head = resp[0]
    assert isinstance(head, tuple) and head[1] == whole[:5000]
    assert b"X-MAILPROXY" not in head[0].upper() and b"BODY[] {" not in head[0]


def test_part_text_and_binary_fetches(via: imaplib.IMAP4) -> None:
    by_subject = uids(via)
    uid = by_subject["qp alternative"]
    whole = fetch(via, uid, "(BODY.PEEK[])")[b"BODY[]"]
    text = fetch(via, uid, "(BODY.PEEK[TEXT])")[b"BODY[TEXT]"]
    assert whole.endswith(text) and whole.index(b"\r\n\r\n") + 4 == len(whole) - len(text)
    part2 = fetch(via, uid, "(BODY.PEEK[2])")[b"BODY[2]"]
    assert part2 in whole and TRACKER not in part2.replace(b"=\r\n", b"")
    binary = fetch(via, uid, "(BINARY.PEEK[2] BINARY.SIZE[2])")
    assert b"BINARY.SIZE[2] %d" % len(binary[b"BINARY[2]"]) in binary[b"_line"]
    assert TRACKER not in binary[b"BINARY[2]"] and LOGO in binary[b"BINARY[2]"]
    partial = fetch(via, uid, "(BINARY.PEEK[2]<10.200>)")[b"BINARY[2]<10>"]
    assert partial == binary[b"BINARY[2]"][10:210]
    # Body of an attached message, and its TEXT.
    uid = by_subject["forwarded"]
    whole = fetch(via, uid, "(BODY.PEEK[])")[b"BODY[]"]
    inner = fetch(via, uid, "(BODY.PEEK[2])")[b"BODY[2]"]
    inner_text = fetch(via, uid, "(BODY.PEEK[2.TEXT])")[b"BODY[2.TEXT]"]
    assert inner in whole and inner.endswith(inner_text)
    assert TRACKER not in inner and LOGO in inner
    # The single-part base64 message: part 1 is its body, and BINARY[1] the decoded HTML.
    uid = by_subject["base64 html"]
    whole = fetch(via, uid, "(BODY.PEEK[])")[b"BODY[]"]
    b1 = fetch(via, uid, "(BINARY.PEEK[1])")[b"BINARY[1]"]
    assert b1 == html_of(whole) and TRACKER not in b1


def test_binary_equals_decoded_body(via: imaplib.IMAP4) -> None:
    uid = uids(via)["qp alternative"]
    part2 = fetch(via, uid, "(BODY.PEEK[2])")[b"BODY[2]"]
    binary = fetch(via, uid, "(BINARY.PEEK[2])")[b"BINARY[2]"]
    # BODY and BINARY of the same part agree (decode() matches Dovecot's decoding of the original).
    assert binary == decode(part2, "quoted-printable")


def test_non_fetch_traffic_is_identical(dovecot: Dovecot, proxy: ProxyThread) -> None:
    script = [
        b"a1 LOGIN " + USER.encode() + b" " + PASSWORD.encode() + b"\r\n",
        b'a2 LIST "" "*"\r\n',
        b"a3 STATUS INBOX (MESSAGES UIDNEXT UIDVALIDITY)\r\n",
        b"a4 EXAMINE INBOX\r\n",
        b"a5 UID SEARCH SUBJECT {3+}\r\nbig\r\n",
        b"a6 FETCH 1:* (FLAGS UID RFC822.SIZE INTERNALDATE)\r\n",
        b'a7 ID ("name" "test")\r\n',
        b"a8 ENABLE CONDSTORE\r\n",
        b"a9 NOOP\r\n",
        b"b1 LOGOUT\r\n",
    ]

    def run(port: int) -> list[bytes]:
        out = []
        with socket.create_connection(("127.0.0.1", port)) as s:
            f = s.makefile("rb")
            out.append(f.readline())
            for cmd in script:
                s.sendall(cmd)
                tag = cmd.split(b" ", 1)[0]
                while True:
                    line = f.readline()
                    out.append(line)
                    if line.startswith(tag + b" ") or not line:
                        break
        return out

    def normal(lines: list[bytes]) -> list[bytes]:
        # Timings and session ids differ between any two sessions; capabilities differ on purpose.
        from mailproxy.imap._protocol import filter_capabilities

        out = []
        for line in lines:
            line = re.sub(rb"\([0-9.]+ \+ [0-9.]+(?: \+ [0-9.]+)? secs\)", b"(t)", line)
            line = re.sub(rb'"session" "[^"]*"', b'"session" "x"', line)
            out.append(filter_capabilities(line))
        return out

    run(dovecot.port)  # once first: ENABLE CONDSTORE changes what later EXAMINEs report
    d, v = run(dovecot.port), run(proxy.port)
    assert normal(d) == normal(v)
    assert any(b"COMPRESS=DEFLATE" in line for line in d)
    assert not any(b"COMPRESS=DEFLATE" in line for line in v)


def test_append_stores_exactly_what_was_sent(
    dovecot: Dovecot, proxy: ProxyThread, direct: imaplib.IMAP4
) -> None:
    c = login(proxy.port)
    c.create("Appended")
    msg = dovecot.messages["qp alternative"]
    typ, data = c.append("Appended", None, None, msg)
    assert typ == "OK"
    c.logout()
    d = login(dovecot.port)
    d.select("Appended", readonly=True)
    typ, fetched = d.fetch("1", "(BODY.PEEK[])")
    d.logout()
    assert (
        isinstance(fetched[0], tuple) and fetched[0][1] == msg
    )  # the tracker is still there: stored as sent


def test_idle_passes_untagged_responses(dovecot: Dovecot, proxy: ProxyThread) -> None:
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as s:
        f = s.makefile("rb")
        f.readline()
        s.sendall(b"a LOGIN " + USER.encode() + b" " + PASSWORD.encode() + b"\r\n")
        while not f.readline().startswith(b"a "):
            pass
        s.sendall(b"b SELECT INBOX\r\n")
        while not f.readline().startswith(b"b "):
            pass
        s.sendall(b"c IDLE\r\n")
        assert f.readline().startswith(b"+ ")
        other = login(dovecot.port)
        other.append("INBOX", None, None, b"Subject: idle\r\n\r\nhi\r\n")
        other.logout()
        started = time.monotonic()
        line = f.readline()
        assert re.match(rb"\* [0-9]+ EXISTS", line), line
        assert time.monotonic() - started < 5
        s.sendall(b"DONE\r\n")
        while True:
            line = f.readline()
            if line.startswith(b"c "):
                assert line.startswith(b"c OK")
                break
    # Leave INBOX as the other tests expect it.
    other = login(dovecot.port)
    other.select("INBOX")
    typ, data = other.uid("SEARCH", "SUBJECT", "idle")
    for uid in data[0].split():
        other.uid("STORE", uid.decode(), "+FLAGS.SILENT", "(\\Deleted)")
    other.expunge()
    other.logout()


def test_imapclient(proxy: ProxyThread, dovecot: Dovecot) -> None:
    imapclient = pytest.importorskip("imapclient")
    with imapclient.IMAPClient("127.0.0.1", port=proxy.port, ssl=False) as c:
        c.login(USER, PASSWORD)
        c.select_folder("INBOX", readonly=True)
        msgs = c.search(["SUBJECT", "qp alternative"])
        data = c.fetch(msgs, ["RFC822.SIZE", "BODY.PEEK[]", "BODY.PEEK[]<0.100>"])
        for fields in data.values():
            body = fields[b"BODY[]"]
            assert len(body) == fields[b"RFC822.SIZE"]
            assert TRACKER not in html_of(body) and LOGO in html_of(body)
            assert fields[b"BODY[]<0>"] == body[:100]


def test_implicit_tls_both_legs_and_starttls(make_proxy: MakeProxy, dovecot: Dovecot) -> None:
    leaf = dovecot.ca.issue_cert("localhost", "127.0.0.1")
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    leaf.configure_cert(server_ctx)
    client_ctx = ssl.create_default_context()
    dovecot.ca.configure_trust(client_ctx)
    upstream_ctx = ssl.create_default_context(cafile=str(dovecot.ca_file))
    p = make_proxy(
        upstream_port=dovecot.tls_port,
        upstream_tls="implicit",
        upstream_ssl=upstream_ctx,
        client_ssl=server_ctx,
        client_tls="implicit",
    )
    c: imaplib.IMAP4 = imaplib.IMAP4_SSL("127.0.0.1", p.port, ssl_context=client_ctx)
    c.login(USER, PASSWORD)
    c.select("INBOX", readonly=True)
    body = fetch(c, uids(c)["qp alternative"], "(BODY.PEEK[])")[b"BODY[]"]
    assert TRACKER not in html_of(body)
    c.logout()
    # STARTTLS on both legs, the listener exposed (LOGINDISABLED until TLS).
    p = make_proxy(
        upstream_tls="starttls",
        upstream_ssl=upstream_ctx,
        client_ssl=server_ctx,
        client_tls="starttls",
        login_disabled=True,
    )
    c = imaplib.IMAP4("127.0.0.1", p.port)
    assert "STARTTLS" in c.capabilities and "LOGINDISABLED" in c.capabilities
    with pytest.raises(imaplib.IMAP4.error):
        c.login(USER, PASSWORD)
    c.starttls(ssl_context=client_ctx)
    assert "STARTTLS" not in c.capabilities and "LOGINDISABLED" not in c.capabilities
    c.login(USER, PASSWORD)
    assert "COMPRESS=DEFLATE" not in c.capabilities
    c.select("INBOX", readonly=True)
    body = fetch(c, uids(c)["base64 html"], "(BODY.PEEK[])")[b"BODY[]"]
    assert TRACKER not in html_of(body)
    c.logout()


def test_wrong_upstream_certificate_is_refused(
    make_proxy: MakeProxy, dovecot: Dovecot, caplog: pytest.LogCaptureFixture
) -> None:
    p = make_proxy(
        upstream_port=dovecot.tls_port,
        upstream_tls="implicit",
        upstream_ssl=ssl.create_default_context(),  # the system store does not know the test CA
    )
    with socket.create_connection(("127.0.0.1", p.port), timeout=10) as s:
        data = s.makefile("rb").readline()
    assert data.startswith(b"* BYE [UNAVAILABLE]")
    assert "certificate verification failed" in caplog.text


def test_many_clients_at_once(proxy: ProxyThread, dovecot: Dovecot) -> None:
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            c = login(proxy.port)
            c.select("INBOX", readonly=True)
            for subject, uid in uids(c).items():
                body = fetch(c, uid, "(BODY.PEEK[])")[b"BODY[]"]
                assert len(body) == len(dovecot.messages[subject])
            c.logout()
        except BaseException as exc:  # collected and re-raised in the test thread
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    deadline = time.monotonic() + 5
    while proxy.proxy.connections and time.monotonic() < deadline:
        time.sleep(0.05)  # the proxy sees the last LOGOUT's close a moment after the client
    assert proxy.proxy.connections == set()


def test_login_failure_and_message_objects(via: imaplib.IMAP4, proxy: ProxyThread) -> None:
    c = imaplib.IMAP4("127.0.0.1", proxy.port)
    with pytest.raises(imaplib.IMAP4.error):
        c.login(USER, "wrong")
    c.logout()
    # The rewritten message still parses as the same structure.
    uid = uids(via)["qp alternative"]
    msg: Message = email.message_from_bytes(fetch(via, uid, "(BODY.PEEK[])")[b"BODY[]"])
    assert [p.get_content_type() for p in msg.walk()] == [
        "multipart/alternative",
        "text/plain",
        "text/html",
    ]


def test_serve_imap_from_config(dovecot: Dovecot) -> None:
    import asyncio

    from mailproxy.config import HostPort, ImapConfig, UpstreamTls
    from mailproxy.engine import Engine
    from mailproxy.imap import serve_imap

    config = ImapConfig(
        listen=HostPort(host="127.0.0.1", port=0),
        upstream=HostPort(host="127.0.0.1", port=dovecot.port),
        upstream_tls=UpstreamTls.NONE,
    )
    loop = asyncio.new_event_loop()
    bound: list[tuple[str, int]] = []
    ready = threading.Event()

    def on_ready(address: tuple[str, int]) -> None:
        bound.append(address)
        ready.set()

    task = loop.create_task(serve_imap(config, Engine(), ready=on_ready))

    def run() -> None:
        with contextlib.suppress(asyncio.CancelledError):
            loop.run_until_complete(task)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        assert ready.wait(10)
        c = login(bound[0][1])
        c.select("INBOX", readonly=True)
        body = fetch(c, uids(c)["qp alternative"], "(BODY.PEEK[])")[b"BODY[]"]
        assert TRACKER not in html_of(body) and LOGO in html_of(body)
        c.logout()
    finally:
        loop.call_soon_threadsafe(task.cancel)
        thread.join(10)
        loop.close()
    assert task.cancelled()
