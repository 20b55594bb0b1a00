"""Tracking-log benchmark: what logging costs the proxy, in one run.

    python -m bench.tracking [--chunk 100] [--events 100000] [--detail events] [--json]

On generated newsletters (``bench.corpus``, 40-80 KiB of HTML each, all to one reader) it times
``Engine.rewrite`` without and with an event sink attached (the findings of every rewrite handed to
``EventSink.record_findings`` as the IMAP filter hands them), until the sink has been given at least
``--events`` tracking events. The sink writes to a throwaway SQLite store at ``--detail``, with the
proxy's default queue, batch and flush settings.

Every message is rewritten once, the first time the engine and the log see it, as in a proxy (and as
``bench.rewrite`` and ``bench.imap`` time the engine): a message rewritten again finds its URLs,
hosts and styles in the engine's caches and its words and URLs in the log's, which would flatter
both sides. The engine is warmed up on other newsletters first (and the store opened), as in a
running proxy. Then fresh messages come in chunks of ``2 * --chunk``; each chunk is split in two
halves, one rewritten without the sink and one with it, the side taking the first half alternating
from chunk to chunk, so that drift (thermal, other load) and the differences between messages hit
both sides alike. After each half with the sink, the time to wait until the writer thread has
stored everything is added to the "with" side: the background work (event reduction, URL
redaction, writes) shares the interpreter and is charged to logging, and none of it is left to
run during the next half without the sink.

Reported: MB/s of raw message without and with logging (bytes over time, per side), the overhead in
percent (the issue's target: under 5 %), events logged, written and dropped. Wall-clock figures
depend on the machine; the overhead is the number to compare.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

READER = "reader@example.org"
_HTML_KB = (40, 80)
_WARMUP = 20


@dataclass(frozen=True, slots=True)
class Result:
    detail: str
    chunks: int  # chunks of 2 * chunk messages, each seen once
    messages_without: int
    messages_with: int
    mb_without: float  # raw MB rewritten per side
    mb_with: float
    events: int  # events handed to the sink
    written: int
    dropped: int
    mb_per_s_without: float
    mb_per_s_with: float
    overhead_percent: float


def measure(chunk: int, seed: int, min_events: int, detail: str) -> Result:
    from bench.corpus import generate
    from mailproxy.config import LogDetail
    from mailproxy.engine import Engine
    from mailproxy.runner import record_rewrite
    from mailproxy.tracking.events import acted_on
    from mailproxy.tracking.store import key_path_for, open_store
    from mailproxy.tracking.writer import EventSink

    if chunk < 1:
        raise SystemExit("--chunk must be at least 1")
    level = LogDetail(detail)
    engine = Engine()

    def rewrite_all(messages: list[bytes], sink: EventSink | None) -> tuple[float, int]:
        """Seconds to rewrite `messages` (and log them, when `sink`), and the events logged."""
        results = []
        t0 = time.perf_counter()
        for m in messages:
            result = engine.rewrite(m, user=READER)
            results.append(result)
            if sink is not None:
                record_rewrite(sink, result, READER)  # as the IMAP filter does
        if sink is not None and not sink.flush(600):
            raise SystemExit("the tracking writer did not finish within 600 s")
        elapsed = time.perf_counter() - t0
        return elapsed, sum(1 for r in results for f in r.findings if acted_on(f))

    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "bench.sqlite3"
        with EventSink(lambda: open_store(db), detail=level, key_path=key_path_for(db)) as sink:
            # A running proxy has its engine warm and its store open: neither is charged to a side.
            warm = generate(_WARMUP, seed=seed + 100_000, html_kb=_HTML_KB, recipient=READER)
            rewrite_all(warm, None)
            rewrite_all(warm[:2], sink)
            sink_base_written = sink.written
            time_without = time_with = 0.0
            bytes_without = bytes_with = 0
            n_without = n_with = 0
            events = 0
            chunks = 0
            while events < min_events:
                messages = generate(2 * chunk, seed=seed + chunks, html_kb=_HTML_KB, recipient=READER)
                halves = (messages[:chunk], messages[chunk:])
                with_first = chunks % 2 == 1
                for i, half in enumerate(halves):
                    logged = (i == 0) == with_first
                    elapsed, n = rewrite_all(half, sink if logged else None)
                    size = sum(len(m) for m in half)
                    if logged:
                        time_with += elapsed
                        bytes_with += size
                        n_with += len(half)
                        events += n
                    else:
                        time_without += elapsed
                        bytes_without += size
                        n_without += len(half)
                chunks += 1
            written = sink.written - sink_base_written
            dropped = sink.dropped
    rate_without = bytes_without / 1e6 / time_without
    rate_with = bytes_with / 1e6 / time_with
    return Result(
        detail=detail,
        chunks=chunks,
        messages_without=n_without,
        messages_with=n_with,
        mb_without=round(bytes_without / 1e6, 2),
        mb_with=round(bytes_with / 1e6, 2),
        events=events,
        written=written,
        dropped=dropped,
        mb_per_s_without=round(rate_without, 2),
        mb_per_s_with=round(rate_with, 2),
        overhead_percent=round(100 * (1 - rate_with / rate_without), 2),
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--chunk", type=int, default=100, help="messages per half chunk (default 100)")
    p.add_argument("--seed", type=int, default=11)
    p.add_argument("--events", type=int, default=100_000, help="events to log at least")
    p.add_argument("--detail", choices=("aggregate", "events", "research"), default="events")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    r = measure(args.chunk, args.seed, args.events, args.detail)
    if args.json:
        print(json.dumps(asdict(r)))
        return 0
    print(
        f"detail={r.detail}, each message rewritten once (first sight), {r.chunks} chunks: "
        f"without logging {r.messages_without} newsletters ({r.mb_without} MB), "
        f"with logging {r.messages_with} ({r.mb_with} MB): "
        f"{r.events} events logged, {r.written} written, {r.dropped} dropped"
    )
    print(f"rewrite without logging  {r.mb_per_s_without:8.1f} MB/s")
    print(f"rewrite with logging     {r.mb_per_s_with:8.1f} MB/s")
    print(f"overhead                 {r.overhead_percent:8.2f} %")
    return 0


if __name__ == "__main__":
    sys.exit(main())
