"""HTTP proxy benchmark: what the mailproxy addons cost on top of mitmproxy.

``python -m bench.http [-n 2000] [--rounds 3] [--concurrency 8] [--json]`` times the same image
fetches three ways, in one run, over loopback only:

- ``direct``: client -> origin;
- ``mitmproxy``: client -> mitmproxy (``Master`` with its default addons) -> origin;
- ``mitmproxy+mailproxy``: the same Master plus ``all_addons`` (what ``HttpProxy`` runs).

The origin (a small asyncio HTTP/1.1 server answering every GET with a ~1 KB PNG and a Set-Cookie)
and each proxy run in processes of their own, so that the client's threads, the origin and the
proxy under test do not share a GIL. The client is ``--concurrency`` threads, each with one
keep-alive connection (as a mail client loading a newsletter's images), sending the headers a
mail client would (Cookie, Referer) to a URL no rule blocks, so every request goes through the
whole pipeline. Each round sends ``-n`` requests per variant; variants alternate within a round.
Reported per variant: requests/s (median of the rounds) and latency median and p95 (over all
requests). Before timing, one request to a tracking-path URL checks that the addons are active
exactly in the variant that should have them (the addon answers it with a 1x1 GIF).

The target (issue 5): the addons cost under 10% of bare mitmproxy's throughput.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import json
import logging
import multiprocessing
import multiprocessing.connection
import statistics
import struct
import sys
import tempfile
import threading
import time
import zlib
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Final

logger = logging.getLogger(__name__)

__all__ = ["IMAGE", "Report", "Variant", "main", "percentile", "run"]

DIRECT: Final = "direct"
BARE: Final = "mitmproxy"
ADDON: Final = "mitmproxy+mailproxy"
VARIANTS: Final = (DIRECT, BARE, ADDON)
TARGET_COST: Final = 0.10  # the target: addons cost < 10% of bare mitmproxy's throughput

_START_TIMEOUT: Final = 60.0
_REQUEST_TIMEOUT: Final = 10.0
_IMAGE_PATH: Final = "/img/hero.png"
_PROBE_PATH: Final = "/track/open.php?u=0123456789abcdef012345678&id=0123456789"
# What a mail client sends with a remote image; the addon removes both.
_CLIENT_HEADERS: Final = {"Cookie": "sid=0123456789", "Referer": "http://mail.example/inbox"}


def _png(width: int, height: int) -> bytes:
    """A valid RGB PNG with noisy pixels (so it stays about 3 bytes a pixel after deflate)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    seed = 12345
    rows = bytearray()
    for _ in range(height):
        rows.append(0)
        for _ in range(width * 3):
            seed = (seed * 1103515245 + 12345) & 0x7FFFFFFF
            rows.append(seed >> 16 & 0xFF)
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(bytes(rows), 9))
        + chunk(b"IEND", b"")
    )


IMAGE: Final = _png(18, 18)  # about 1 KB: a logo or spacer-sized newsletter image
_RESPONSE: Final = (
    b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\n"
    + f"Content-Length: {len(IMAGE)}\r\n".encode()
    + b"Cache-Control: max-age=3600\r\nSet-Cookie: uid=0123456789; Path=/\r\n\r\n"
    + IMAGE
)


# --- child processes ------------------------------------------------------------------------------


def _origin_main(conn: multiprocessing.connection.Connection) -> None:
    """The origin server: every GET gets the PNG; keep-alive; sends its port through `conn`."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            while True:
                await reader.readuntil(b"\r\n\r\n")  # GET only: no request bodies
                writer.write(_RESPONSE)
                await writer.drain()
        writer.close()

    async def serve() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=1024)
        conn.send(server.sockets[0].getsockname()[1])
        async with server:
            await server.serve_forever()

    asyncio.run(serve())


def _proxy_main(with_addons: bool, confdir: str, conn: multiprocessing.connection.Connection) -> None:
    """mitmproxy on an ephemeral loopback port, with or without our addons; sends the port."""
    logging.basicConfig(level=logging.WARNING)
    try:
        asyncio.run(_serve_proxy(with_addons, confdir, conn))
    except Exception as exc:  # the parent reports it instead of waiting for a port
        conn.send(f"{type(exc).__name__}: {exc}")


async def _serve_proxy(with_addons: bool, confdir: str, conn: multiprocessing.connection.Connection) -> None:
    from mitmproxy import addons as mitm_addons
    from mitmproxy import options
    from mitmproxy.master import Master

    from mailproxy.config import load_config
    from mailproxy.http.addon import ProxyState, all_addons

    ready = asyncio.Event()

    class Ready:
        def running(self) -> None:
            ready.set()

    # Built exactly as HttpProxy.start does, so the variants differ only by our addons.
    opts = options.Options(listen_host="127.0.0.1", listen_port=0, confdir=confdir)
    master = Master(opts)
    master.addons.add(*mitm_addons.default_addons())
    master.addons.add(Ready())
    if with_addons:
        config_file = Path(confdir) / "mailproxy.toml"
        config_file.write_text(
            '[http]\nallow_networks = ["127.0.0.0/8"]\n[privacy]\ndnt = "1"\ngpc = true\n',
            encoding="utf-8",
        )
        state = ProxyState(load_config(config_file), tls="passthrough")
        master.addons.add(*all_addons(state))
    task = asyncio.get_running_loop().create_task(master.run())
    waiter = asyncio.get_running_loop().create_task(ready.wait())
    await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
    proxyserver = master.addons.get("proxyserver")
    addrs = proxyserver.listen_addrs() if proxyserver is not None else []
    if task.done() or not addrs:
        conn.send("mitmproxy did not start listening")
        return
    conn.send(int(addrs[0][1]))
    await task


def _start(target: Callable[..., None], *args: object) -> tuple[BaseProcess, int]:
    """Start `target(*args, conn)` in a fresh process and wait for the port it sends back."""
    ctx = multiprocessing.get_context("spawn")  # no forking of a process with threads
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=target, args=(*args, child), daemon=True)
    proc.start()
    child.close()
    if not parent.poll(_START_TIMEOUT):
        proc.kill()
        raise RuntimeError(f"{target.__name__} did not start within {_START_TIMEOUT:.0f} s")
    message = parent.recv()
    if not isinstance(message, int):
        proc.kill()
        raise RuntimeError(f"{target.__name__} failed: {message}")
    return proc, message


# --- the client -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Batch:
    latencies: list[float]  # seconds, one per successful request
    errors: int
    seconds: float  # wall clock of the whole batch


def _url(variant: str, origin: int) -> str:
    """The request target: origin-form to the origin, absolute-form to a proxy."""
    return _IMAGE_PATH if variant == DIRECT else f"http://127.0.0.1:{origin}{_IMAGE_PATH}"


def _fetch_all(port: int, url: str, count: int, start: threading.Barrier) -> tuple[list[float], int]:
    """`count` GETs of `url` on one keep-alive connection to 127.0.0.1:`port`."""
    latencies: list[float] = []
    errors = 0
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=_REQUEST_TIMEOUT)
    start.wait()
    for _ in range(count):
        t0 = time.perf_counter()
        try:
            conn.request("GET", url, headers=_CLIENT_HEADERS)
            response = conn.getresponse()
            body = response.read()
        except (OSError, http.client.HTTPException):
            errors += 1
            conn.close()  # the next request reconnects
            continue
        if response.status != 200 or body != IMAGE:
            errors += 1
            continue
        latencies.append(time.perf_counter() - t0)
    conn.close()
    return latencies, errors


def _batch(port: int, url: str, requests: int, concurrency: int) -> _Batch:
    shares = [requests // concurrency + (i < requests % concurrency) for i in range(concurrency)]
    shares = [s for s in shares if s]
    start = threading.Barrier(len(shares) + 1)
    with ThreadPoolExecutor(len(shares)) as pool:
        futures = [pool.submit(_fetch_all, port, url, s, start) for s in shares]
        start.wait()
        t0 = time.perf_counter()
        results = [f.result() for f in futures]
        seconds = time.perf_counter() - t0
    latencies = [x for lat, _ in results for x in lat]
    return _Batch(latencies, sum(e for _, e in results), seconds)


def _probe(port: int, origin: int, *, via_proxy: bool) -> bool:
    """Whether a tracking-path image is answered by our addon (a GIF) rather than the origin."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=_REQUEST_TIMEOUT)
    try:
        url = f"http://127.0.0.1:{origin}{_PROBE_PATH}" if via_proxy else _PROBE_PATH
        conn.request("GET", url, headers={"Accept": "image/*"})
        return conn.getresponse().read().startswith(b"GIF89a")
    finally:
        conn.close()


# --- the report -----------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """The nearest-rank q-th percentile (0 < q <= 100) of non-empty `values`."""
    if not values or not 0 < q <= 100:
        raise ValueError("percentile needs values and 0 < q <= 100")
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))  # ceil without floats going astray
    return ordered[int(rank) - 1]


@dataclass(frozen=True, slots=True, kw_only=True)
class Variant:
    name: str
    requests: int  # sent, over all rounds
    errors: int
    rps: tuple[float, ...]  # per round
    latency_median_ms: float
    latency_p95_ms: float
    addons_active: bool

    @property
    def rps_median(self) -> float:
        return statistics.median(self.rps)

    def as_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "requests": self.requests,
            "errors": self.errors,
            "rps_rounds": list(self.rps),
            "rps": self.rps_median,
            "latency_ms": {"median": self.latency_median_ms, "p95": self.latency_p95_ms},
            "addons_active": self.addons_active,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Report:
    requests: int  # per variant and round
    rounds: int
    concurrency: int
    image_bytes: int
    variants: tuple[Variant, ...]  # direct, mitmproxy, mitmproxy+mailproxy

    def by_name(self, name: str) -> Variant:
        return next(v for v in self.variants if v.name == name)

    @property
    def addon_cost(self) -> float:
        """Share of bare mitmproxy's throughput lost to the addons (0.05 = 5% fewer requests/s)."""
        bare, addon = self.by_name(BARE).rps_median, self.by_name(ADDON).rps_median
        return 1 - addon / bare if bare > 0 else float("nan")

    def ratios(self) -> dict[str, float]:
        direct, bare, addon = (self.by_name(n) for n in VARIANTS)

        def ratio(a: float, b: float) -> float:
            return a / b if b > 0 else float("nan")

        return {
            "addon_vs_bare_rps": ratio(addon.rps_median, bare.rps_median),
            "bare_vs_direct_rps": ratio(bare.rps_median, direct.rps_median),
            "addon_vs_direct_rps": ratio(addon.rps_median, direct.rps_median),
            "addon_vs_bare_latency_median": ratio(addon.latency_median_ms, bare.latency_median_ms),
            "addon_vs_bare_latency_p95": ratio(addon.latency_p95_ms, bare.latency_p95_ms),
        }

    @property
    def target_met(self) -> bool:
        return self.addon_cost < TARGET_COST

    def as_dict(self) -> dict[str, object]:
        return {
            "requests_per_round": self.requests,
            "rounds": self.rounds,
            "concurrency": self.concurrency,
            "image_bytes": self.image_bytes,
            "variants": [v.as_dict() for v in self.variants],
            "ratios": self.ratios(),
            "addon_cost": self.addon_cost,
            "target_cost": TARGET_COST,
            "target_met": self.target_met,
        }

    def format(self) -> str:
        lines = [
            f"mailproxy HTTP benchmark: {self.requests} requests x {self.rounds} round(s) per "
            f"variant, {self.concurrency} keep-alive connections, {self.image_bytes} B image, "
            "loopback",
            "",
            f"{'variant':<22}{'req/s':>9}{'median ms':>11}{'p95 ms':>9}{'errors':>8}  addons",
        ]
        for v in self.variants:
            lines.append(
                f"{v.name:<22}{v.rps_median:>9.0f}{v.latency_median_ms:>11.2f}"
                f"{v.latency_p95_ms:>9.2f}{v.errors:>8}  {'yes' if v.addons_active else 'no'}"
            )
        r = self.ratios()
        lines += [
            "",
            f"mitmproxy+mailproxy / mitmproxy: {r['addon_vs_bare_rps']:.3f}x req/s, "
            f"{r['addon_vs_bare_latency_median']:.3f}x median latency, "
            f"{r['addon_vs_bare_latency_p95']:.3f}x p95",
            f"mitmproxy / direct: {r['bare_vs_direct_rps']:.3f}x req/s "
            "(direct is bounded by this Python client)",
            f"addon cost: {self.addon_cost:+.1%} of bare mitmproxy's throughput (target < "
            f"{TARGET_COST:.0%}): {'met' if self.target_met else 'MISSED'}",
        ]
        return "\n".join(lines)


def run(*, requests: int = 2000, rounds: int = 3, concurrency: int = 8, warmup: int = 50) -> Report:
    """Start the origin and both proxies, time every variant, stop everything."""
    if requests < 1 or rounds < 1 or concurrency < 1 or warmup < 0:
        raise ValueError("requests, rounds and concurrency must be at least 1, warmup at least 0")
    procs: list[BaseProcess] = []
    with tempfile.TemporaryDirectory(prefix="bench-http-") as tmp:
        try:
            origin_proc, origin = _start(_origin_main)
            procs.append(origin_proc)
            ports = {DIRECT: origin}
            for name, with_addons in ((BARE, False), (ADDON, True)):
                confdir = Path(tmp) / name  # one CA folder each: no race creating it
                confdir.mkdir()
                proc, ports[name] = _start(_proxy_main, with_addons, str(confdir))
                procs.append(proc)
            active = {n: _probe(p, origin, via_proxy=n != DIRECT) for n, p in ports.items()}
            urls = {n: _url(n, origin) for n in VARIANTS}
            for n in VARIANTS:  # connections, lazy imports, caches
                if warmup:
                    _batch(ports[n], urls[n], warmup, min(concurrency, warmup))
            batches: dict[str, list[_Batch]] = {n: [] for n in VARIANTS}
            for _ in range(rounds):
                for n in VARIANTS:
                    batches[n].append(_batch(ports[n], urls[n], requests, concurrency))
        finally:
            for proc in procs:
                proc.terminate()
            for proc in procs:
                proc.join(10)
                if proc.is_alive():
                    proc.kill()
    variants = []
    for n in VARIANTS:
        done = batches[n]
        latencies = [x for b in done for x in b.latencies]
        variants.append(
            Variant(
                name=n,
                requests=requests * rounds,
                errors=sum(b.errors for b in done),
                rps=tuple(len(b.latencies) / b.seconds if b.seconds > 0 else 0.0 for b in done),
                latency_median_ms=statistics.median(latencies) * 1000 if latencies else float("nan"),
                latency_p95_ms=percentile(latencies, 95) * 1000 if latencies else float("nan"),
                addons_active=active[n],
            )
        )
    return Report(
        requests=requests,
        rounds=rounds,
        concurrency=concurrency,
        image_bytes=len(IMAGE),
        variants=tuple(variants),
    )


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.http", description=__doc__.splitlines()[0])
    p.add_argument("-n", type=int, default=2000, help="requests per variant and round (default 2000)")
    p.add_argument("--rounds", type=int, default=3, help="rounds (default 3)")
    p.add_argument("--concurrency", type=int, default=8, help="client connections (default 8)")
    p.add_argument("--warmup", type=int, default=50, help="untimed requests per variant (default 50)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        report = run(requests=args.n, rounds=args.rounds, concurrency=args.concurrency, warmup=args.warmup)
    except (ValueError, RuntimeError) as exc:
        print(f"bench.http: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(report.as_dict(), indent=2) if args.json else report.format())
    return 0


if __name__ == "__main__":
    sys.exit(main())
