"""IMAP filter benchmark: the same mailbox fetched directly from Dovecot, through a Dovecot IMAP proxy
(``proxy=y``, imap.md section 5.3) and through mailproxy, in one run.

    python -m bench.imap [-n 1000] [--seed 1] [--repeat 3] [--json]

Setup: a throwaway Dovecot (``bench.dovecot``) on loopback with four users: ``html@`` holds ``-n``
generated newsletters (``bench.corpus``, 40-80 KiB of HTML each), ``plain@`` as many text-only
messages of the same sizes, ``single@`` ``--singles`` newsletters of about 100 KB (and 20 more for
warming up), ``warm@`` 20 other newsletters. A second Dovecot is the baseline proxy; mailproxy runs
as ``python -m mailproxy run`` (its own process, HTTP half off) in front of the first Dovecot with
plaintext loopback on both legs, like the Dovecot proxy.

mailproxy is measured on messages it has not seen before, as a proxy rewrites each message once: a
message read again would find what the engine learnt of its URLs and styles in its caches. So each
timed whole fetch and the chunk walks go to a freshly started mailproxy, warmed up on ``warm@``'s
newsletters as one that has been running is, and each single newsletter is fetched once.

Measured per route, with a minimal literal-aware socket client (the same for every route):

- whole: ``UID FETCH 1:* BODY.PEEK[]`` of a mailbox, median of ``--repeat`` runs after one untimed;
- chunked: every message walked as ``UID FETCH u BODY.PEEK[]<o.65536>``, one command at a time
  (as Thunderbird does), once: mailproxy's first chunk of a message rewrites and caches the whole;
- noop: median round trip of ``NOOP`` (``--noops`` of them);
- single: median round trip of ``UID FETCH u BODY.PEEK[]`` over the ``--singles`` newsletters.

The timed whole fetches and round trips take turns between the routes (one session per route, each
round timing every route once), so a burst of load on the machine falls on all routes alike rather
than on whichever route happened to be running: the ratios are the figures that matter.

MB are 10^6 bytes of message (literal) data received. The issue's targets are printed beside the
figures with met/missed. Wall-clock figures depend on the machine (Dovecot, mailproxy and the client
share its cores); the ratios are the numbers to compare.
"""

from __future__ import annotations

import argparse
import binascii
import contextlib
import json
import os
import random
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from bench import dovecot

ROUTES = ("direct", "dovecot_proxy", "mailproxy")
CHUNK = 65536
_WARMUP = 20  # newsletters a fresh mailproxy, and each session of the round trips, is warmed up on
_LITERAL = re.compile(rb"~?\{([0-9]+)\}\r\n")
_TAIL = 32


@dataclass(frozen=True, slots=True)
class Transfer:
    seconds: float
    messages: int
    bytes: int
    messages_per_s: float
    mb_per_s: float


@dataclass(frozen=True, slots=True)
class Target:
    name: str
    target: str
    value: str
    met: bool


class Client:
    """A blocking IMAP client that frames responses (literals included) and counts, nothing more."""

    def __init__(self, port: int, timeout: float = 300) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._buf = bytearray()
        self._n = 0
        self._read_until(b"*")  # greeting

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.command(b"LOGOUT")
        self.sock.close()

    def _fill(self) -> None:
        data = self.sock.recv(1 << 20)
        if not data:
            raise ConnectionError("server closed the connection")
        self._buf += data

    def _read_until(self, tag: bytes, literals: list[int] | None = None) -> tuple[bytes, int, int]:
        """Read responses up to the one starting with ``tag``: (that line, literal octets, FETCH
        responses). The CRC of each literal is appended to ``literals`` when given."""
        buf = self._buf
        start = pos = 0
        octets = fetches = 0
        want = tag + b" "
        while True:
            i = buf.find(b"\n", pos)
            while i < 0:
                self._fill()
                i = buf.find(b"\n", pos)
            end = i + 1
            m = _LITERAL.search(buf, max(pos, end - _TAIL), end)
            if m is not None and m.end() == end:
                size = int(m.group(1))
                while len(buf) < end + size:
                    self._fill()
                octets += size
                if literals is not None:
                    literals.append(zlib.crc32(memoryview(buf)[end : end + size]))
                pos = end + size
                continue
            head = bytes(buf[start : start + 24])
            if head.startswith(want) or (tag == b"*" and head.startswith(b"* ")):
                line = bytes(buf[start:end])
                del buf[:end]
                return line, octets, fetches
            if b" FETCH " in head:
                fetches += 1
            del buf[:end]
            start = pos = 0

    def command(self, text: bytes, literals: list[int] | None = None) -> tuple[bytes, int, int]:
        self._n += 1
        tag = b"b%d" % self._n
        self.sock.sendall(tag + b" " + text + b"\r\n")
        line, octets, fetches = self._read_until(tag, literals)
        if line[len(tag) + 1 : len(tag) + 3] != b"OK":
            raise RuntimeError(f"{text[:40]!r} failed: {line[:200]!r}")
        return line, octets, fetches


@contextlib.contextmanager
def session(port: int, user: str) -> Iterator[Client]:
    c = Client(port)
    try:
        c.command(b'LOGIN "%s" "%s"' % (user.encode(), dovecot.PASSWORD.encode()))
        c.command(b"SELECT INBOX")
        yield c
    finally:
        c.close()


def plain_messages(sizes: Sequence[int], seed: int) -> list[bytes]:
    """Text-only messages (no HTML at all) of the given sizes, with a few URLs in the text.

    Every other one is UTF-8 text with accented words, hyphens and a signature, sent quoted-printable
    as mail clients send text/plain with non-ASCII characters (Thunderbird, Apple Mail and Outlook do):
    most plain-text mail not in English is like that, and the engine's triage (``mailproxy.triage``)
    must look through the encoding, which costs more than reading 7bit text. The others are 7bit ASCII.
    """
    rng = random.Random(seed)
    words = (
        b"news week offer read more update store order price team thanks today your new "
        b"the and for with this that from about"
    ).split()
    accented = "café déjà über naïve résumé prix été für straße €5 up-to-date (new) à".encode().split()
    out = []
    for i, size in enumerate(sizes):
        qp = i % 2 == 1
        head = (
            f"From: Letters <letters@shop.example.org>\r\nTo: plain@example.org\r\n"
            f"Subject: Plain letter {i}\r\nDate: Mon, 06 Jan 2025 10:00:00 +0000\r\n"
            f"Message-ID: <plain.{i}@shop.example.org>\r\nMIME-Version: 1.0\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n"
            f"Content-Transfer-Encoding: {'quoted-printable' if qp else '7bit'}\r\n\r\n"
        ).encode()
        lines = [head]
        total = len(head)
        while total < size:
            if rng.random() < 0.1:
                line = b"More at https://shop.example.org/p/%d?id=%d" % (i, rng.randrange(1_000_000))
            else:
                line = b" ".join(
                    rng.choice(accented if qp and rng.random() < 0.2 else words) for _ in range(12)
                )
            if qp:  # soft breaks written as the message's CRLF
                line = binascii.b2a_qp(line).replace(b"=\n", b"=\r\n")
            lines.append(line + b"\r\n")
            total += len(lines[-1])
        if qp:
            lines.append(b"--=20\r\nLetters\r\n")
        out.append(b"".join(lines))
    return out


def _transfer(seconds: float, messages: int, octets: int) -> Transfer:
    return Transfer(
        seconds=round(seconds, 4),
        messages=messages,
        bytes=octets,
        messages_per_s=round(messages / seconds, 1),
        mb_per_s=round(octets / seconds / 1e6, 2),
    )


def whole(
    ports: dict[str, int],
    user: str,
    n: int,
    repeat: int,
    fresh: Callable[[], int],
    crcs: dict[str, list[int]] | None = None,
) -> dict[str, Transfer]:
    """Whole-mailbox fetches of ``user`` through each route, the routes taking turns. mailproxy is
    ``fresh()`` for each timed fetch: a proxy that has seen these messages would find what its engine
    learnt of them in its caches (a proxy rewrites a message once; re-reads come from its own cache)."""
    times: dict[str, list[float]] = {route: [] for route in ports}
    octets: dict[str, int] = {}
    for route, port in ports.items():
        # One untimed pass first: the first route to open a mailbox would pay for Dovecot's index.
        if route != "mailproxy":
            with session(port, user) as c:
                c.command(b"UID FETCH 1:* BODY.PEEK[]")
    for r in range(repeat):
        for route, port in ports.items():
            with session(fresh() if route == "mailproxy" else port, user) as c:
                got: list[int] = []
                t0 = time.perf_counter()
                _, octets[route], fetches = c.command(b"UID FETCH 1:* BODY.PEEK[]", got)
                times[route].append(time.perf_counter() - t0)
            if fetches != n:
                raise RuntimeError(f"{user} via {route}: {fetches} FETCH responses, expected {n}")
            if r == 0 and crcs is not None:
                crcs[route] = got
    return {route: _transfer(statistics.median(times[route]), n, octets[route]) for route in ports}


def chunked(port: int, user: str, sizes: Sequence[int]) -> Transfer:
    total = 0
    with session(port, user) as c:
        t0 = time.perf_counter()
        for uid, size in enumerate(sizes, 1):
            for origin in range(0, size, CHUNK):
                _, octets, _ = c.command(b"UID FETCH %d BODY.PEEK[]<%d.%d>" % (uid, origin, CHUNK))
                total += octets
        seconds = time.perf_counter() - t0
    if total != sum(sizes):
        raise RuntimeError(f"{user}: chunks add up to {total} octets, expected {sum(sizes)}")
    return _transfer(seconds, len(sizes), total)


def round_trips(
    ports: dict[str, int], user: str, commands: Sequence[bytes], warmup: Sequence[bytes]
) -> dict[str, float]:
    """Median round trip in milliseconds of each of ``commands`` through each route (after the
    ``warmup`` ones), the routes taking turns."""
    times: dict[str, list[float]] = {route: [] for route in ports}
    with contextlib.ExitStack() as stack:
        clients = {route: stack.enter_context(session(port, user)) for route, port in ports.items()}
        for c in clients.values():
            for command in warmup:
                c.command(command)
        for command in commands:
            for route, c in clients.items():
                t0 = time.perf_counter()
                c.command(command)
                times[route].append(time.perf_counter() - t0)
    return {route: round(statistics.median(times[route]) * 1000, 4) for route in ports}


@contextlib.contextmanager
def mailproxy_process(upstream_port: int) -> Iterator[int]:
    """``python -m mailproxy run`` in front of 127.0.0.1:upstream_port; yields its port."""
    port = dovecot.free_port()
    with tempfile.TemporaryDirectory(prefix="mailproxy-bench-") as tmp:
        cfg = Path(tmp) / "mailproxy.toml"
        cfg.write_text(
            f'[imap]\nenabled = true\nlisten = "127.0.0.1:{port}"\n'
            f'upstream = "127.0.0.1:{upstream_port}"\nupstream_tls = "none"\n'
            f'[http]\nenabled = false\n[log]\nstore = "{tmp}/tracking.sqlite3"\n'
        )
        errors = (Path(tmp) / "mailproxy.log").open("wb")
        proc = subprocess.Popen(
            [sys.executable, "-m", "mailproxy", "run", "-c", str(cfg)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=errors,
        )
        try:
            try:
                dovecot.wait_port(port, proc, timeout=60)
            except (RuntimeError, TimeoutError) as exc:
                tail = (Path(tmp) / "mailproxy.log").read_bytes()[-2000:].decode("utf-8", "replace")
                raise RuntimeError(f"mailproxy did not start ({exc}):\n{tail}") from exc
            yield port
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
            errors.close()


class FreshMailproxy:
    """``mailproxy_process`` started anew on each call, and warmed up on other newsletters (the
    ``warm`` user's) as a proxy that has been running is; returns its port."""

    def __init__(self, stack: contextlib.ExitStack, upstream_port: int, warm: str) -> None:
        self._stack, self._upstream, self._warm = stack, upstream_port, warm
        self._running: contextlib.ExitStack | None = None

    def __call__(self) -> int:
        if self._running is not None:
            self._running.close()
        self._running = self._stack.enter_context(contextlib.ExitStack())
        port = self._running.enter_context(mailproxy_process(self._upstream))
        with session(port, self._warm) as c:
            c.command(b"UID FETCH 1:* BODY.PEEK[]")
        return port


def _ratios(values: dict[str, float]) -> dict[str, float]:
    d, p, m = (values[r] for r in ROUTES)
    return {
        "dovecot_proxy/direct": round(p / d, 3),
        "mailproxy/direct": round(m / d, 3),
        "mailproxy/dovecot_proxy": round(m / p, 3),
    }


def run(
    n: int,
    seed: int = 1,
    *,
    repeat: int = 3,
    noops: int = 2000,
    singles: int = 100,
    log: Callable[[str], None] = lambda s: None,
) -> dict[str, object]:
    from bench.corpus import generate

    if n < 1 or repeat < 1 or noops < 1 or singles < 1:
        raise ValueError("n, repeat, noops and singles must be positive")
    log(f"generating {n} newsletters")
    html = generate(n, seed=seed, html_kb=(40, 80), recipient="html@example.org")
    plain = plain_messages([len(m) for m in html], seed)
    # Each single newsletter is fetched once per route: a second fetch would find the engine's caches
    # warm with its URLs. The last ones are for warming the sessions up.
    single = generate(singles + _WARMUP, seed=seed + 1, html_kb=(88, 88), recipient="single@example.org")
    warm = generate(_WARMUP, seed=seed + 2, html_kb=(40, 80), recipient="warm@example.org")
    mailboxes = {
        "html@example.org": html,
        "plain@example.org": plain,
        "single@example.org": single,
        "warm@example.org": warm,
    }
    sizes = {u: [len(m) for m in msgs] for u, msgs in mailboxes.items()}
    measures: dict[str, dict[str, Transfer]] = {
        k: {} for k in ("whole_html", "whole_plain", "chunked_html", "chunked_plain")
    }
    crcs: dict[str, list[int]] = {}
    with (
        dovecot.backend(mailboxes) as backend,
        dovecot.proxy(backend.port) as front,
        contextlib.ExitStack() as stack,
    ):
        fresh = FreshMailproxy(stack, backend.port, "warm@example.org")
        ports = {"direct": backend.port, "dovecot_proxy": front.port, "mailproxy": 0}  # (fresh in whole)
        log("whole-mailbox fetches, the routes taking turns (a fresh mailproxy for each)")
        measures["whole_html"] = whole(ports, "html@example.org", n, repeat, fresh, crcs)
        measures["whole_plain"] = whole(ports, "plain@example.org", n, repeat, fresh)
        ports["mailproxy"] = fresh()
        for route in ROUTES:
            log(f"{route}: 64 KiB chunk walks")
            port = ports[route]
            measures["chunked_html"][route] = chunked(port, "html@example.org", sizes["html@example.org"])
            measures["chunked_plain"][route] = chunked(port, "plain@example.org", sizes["plain@example.org"])
        log("NOOP and single-message round trips, the routes taking turns")
        warmup = [b"UID FETCH %d BODY.PEEK[]" % (singles + 1 + i) for i in range(_WARMUP)]
        noop_ms = round_trips(ports, "single@example.org", [b"NOOP"] * noops, warmup)
        fetches = [b"UID FETCH %d BODY.PEEK[]" % uid for uid in range(1, singles + 1)]
        single_ms = round_trips(ports, "single@example.org", fetches, warmup)
    changed = sum(1 for a, b in zip(crcs["direct"], crcs["mailproxy"], strict=True) if a != b)
    unchanged_proxy = all(a == b for a, b in zip(crcs["direct"], crcs["dovecot_proxy"], strict=True))
    ratios = {k: _ratios({r: t.seconds for r, t in v.items()}) for k, v in measures.items()}
    ratios["noop"] = _ratios(noop_ms)
    ratios["single"] = _ratios(single_ms)
    mp_html = measures["whole_html"]["mailproxy"].mb_per_s
    plain_ratio = ratios["whole_plain"]["mailproxy/dovecot_proxy"]
    noop_extra = noop_ms["mailproxy"] - noop_ms["dovecot_proxy"]
    added = single_ms["mailproxy"] - single_ms["direct"]
    targets = [
        Target("whole-mailbox HTML through mailproxy", ">= 40 MB/s", f"{mp_html} MB/s", mp_html >= 40),
        Target(
            "no-HTML whole fetch vs Dovecot proxy",
            "<= 1.3x",
            f"{plain_ratio}x",
            plain_ratio <= 1.3,
        ),
        Target("NOOP vs Dovecot proxy", "<= +0.1 ms", f"{noop_extra:+.3f} ms", noop_extra <= 0.1),
        Target("added latency, one 100 KB newsletter", "< 5 ms", f"{added:.2f} ms", added < 5),
    ]
    return {
        "messages": n,
        "seed": seed,
        "repeat": repeat,
        "cpus": os.cpu_count(),
        "mb": {u.split("@")[0]: round(sum(s) / 1e6, 2) for u, s in sizes.items() if not u.startswith("warm")},
        "single_bytes": round(statistics.median(sizes["single@example.org"][:singles])),
        "measures": {k: {r: asdict(t) for r, t in v.items()} for k, v in measures.items()},
        "noop_ms": noop_ms,
        "single_ms": single_ms,
        "added_ms": {
            "mailproxy-direct": round(added, 3),
            "mailproxy-dovecot_proxy": round(single_ms["mailproxy"] - single_ms["dovecot_proxy"], 3),
            "dovecot_proxy-direct": round(single_ms["dovecot_proxy"] - single_ms["direct"], 3),
        },
        "ratios": ratios,
        "rewritten_messages": changed,
        "dovecot_proxy_identical": unchanged_proxy,
        "targets": [asdict(t) for t in targets],
    }


def render(r: dict[str, object]) -> str:
    measures = r["measures"]
    ratios = r["ratios"]
    assert isinstance(measures, dict) and isinstance(ratios, dict)
    mb = r["mb"]
    assert isinstance(mb, dict)
    lines = [
        f"IMAP benchmark: {r['messages']} messages per mailbox (HTML {mb['html']} MB, "
        f"plain {mb['plain']} MB), seed {r['seed']}, median of {r['repeat']} whole fetches, "
        f"{r['cpus']} CPUs",
        "",
        f"{'measure':<14}{'route':<15}{'seconds':>9}{'msg/s':>10}{'MB/s':>9}",
    ]
    for name, per_route in measures.items():
        for route, t in per_route.items():
            lines.append(
                f"{name:<14}{route:<15}{t['seconds']:>9.3f}{t['messages_per_s']:>10.1f}{t['mb_per_s']:>9.2f}"
            )
        rs = ratios[name]
        lines.append(
            f"{'':<14}time ratios: proxy/direct {rs['dovecot_proxy/direct']}x, "
            f"mailproxy/direct {rs['mailproxy/direct']}x, "
            f"mailproxy/proxy {rs['mailproxy/dovecot_proxy']}x"
        )
    for label, key in (("NOOP round trip", "noop_ms"), ("100 KB fetch", "single_ms")):
        v = r[key]
        assert isinstance(v, dict)
        lines.append(
            f"{label} (median ms): direct {v['direct']}, Dovecot proxy {v['dovecot_proxy']}, "
            f"mailproxy {v['mailproxy']}"
        )
    lines.append(
        f"messages changed by mailproxy in the whole HTML fetch: {r['rewritten_messages']} of "
        f"{r['messages']}; Dovecot proxy byte-identical: {r['dovecot_proxy_identical']}"
    )
    lines += ["", "targets (issue 4):"]
    targets = r["targets"]
    assert isinstance(targets, list)
    for t in targets:
        lines.append(
            f"  {'met   ' if t['met'] else 'MISSED'} {t['name']}: {t['value']} (target {t['target']})"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.imap", description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=1000, help="messages per mailbox (default 1000)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=3, help="whole-mailbox fetches per route")
    ap.add_argument("--noops", type=int, default=2000)
    ap.add_argument("--singles", type=int, default=100)
    ap.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = ap.parse_args(argv)
    if not dovecot.available():
        print("bench.imap: dovecot is not installed: run scripts/install-test-deps", file=sys.stderr)
        return 2

    def progress(s: str) -> None:
        print(f"[bench.imap] {s}", file=sys.stderr, flush=True)

    try:
        result = run(
            args.n,
            args.seed,
            repeat=args.repeat,
            noops=args.noops,
            singles=args.singles,
            log=progress,
        )
    except ValueError as exc:
        print(f"bench.imap: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=2) if args.json else render(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
