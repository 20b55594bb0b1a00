"""Tracking-log benchmark: what logging costs the proxy, in one run.

    python -m bench.tracking [-n 120] [--events 100000] [--detail events] [--json]

On generated newsletters (``bench.corpus``, 40-80 KiB of HTML each) it times ``Engine.rewrite``
passes over the whole set, alternately without and with an event sink attached (the findings of
every rewrite handed to ``EventSink.record_findings``, as the IMAP filter does), until the sink has
been given at least ``--events`` tracking events. The sink writes to a throwaway SQLite store at
``--detail``. The "with" time includes waiting at the end until the writer thread has stored
everything, so the background work is charged to logging too (it shares the interpreter).

Reported: MB/s of raw message without and with logging, the overhead in percent (the issue's
target: under 5 %), events logged, written and dropped. Wall-clock figures depend on the machine;
the overhead is the number to compare.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class Result:
    messages: int
    mb: float  # raw MB rewritten per pass
    detail: str
    passes: int
    events: int
    written: int
    dropped: int
    mb_per_s_without: float
    mb_per_s_with: float
    overhead_percent: float


def measure(n: int, seed: int, min_events: int, detail: str) -> Result:
    from bench.corpus import generate
    from mailproxy.config import LogDetail
    from mailproxy.engine import Engine
    from mailproxy.tracking.events import acted_on
    from mailproxy.tracking.store import key_path_for, open_store
    from mailproxy.tracking.writer import EventSink

    level = LogDetail(detail)
    messages = generate(n, seed=seed, html_kb=(40, 80), recipient="reader@example.org")
    size = sum(len(m) for m in messages)
    engine = Engine()
    per_pass = 0
    for m in messages:  # warm-up, and how many events one pass logs
        per_pass += sum(1 for f in engine.rewrite(m, user="reader@example.org").findings if acted_on(f))
    if per_pass == 0:
        raise SystemExit("the corpus produced no tracking events")
    passes = max(1, -(-min_events // per_pass))

    def one_pass(sink: EventSink | None) -> float:
        t0 = time.perf_counter()
        for m in messages:
            result = engine.rewrite(m, user="reader@example.org")
            if sink is not None:
                sink.record_findings(
                    result.findings, channel="imap", sender_domain=None, user="reader@example.org"
                )
        return time.perf_counter() - t0

    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "bench.sqlite3"
        sink = EventSink(lambda: open_store(db), detail=level, key_path=key_path_for(db), max_queue=100_000)
        without = with_sink = 0.0
        # Alternate so that drift (thermal, other load) hits both sides alike.
        for _ in range(passes):
            without += one_pass(None)
            with_sink += one_pass(sink)
        t0 = time.perf_counter()
        sink.flush(600)
        with_sink += time.perf_counter() - t0
        sink.close()
    mb = size / 1e6
    rate_without = mb * passes / without
    rate_with = mb * passes / with_sink
    return Result(
        messages=n,
        mb=round(mb, 2),
        detail=detail,
        passes=passes,
        events=per_pass * passes,
        written=sink.written,
        dropped=sink.dropped,
        mb_per_s_without=round(rate_without, 2),
        mb_per_s_with=round(rate_with, 2),
        overhead_percent=round(100 * (1 - rate_with / rate_without), 2),
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-n", type=int, default=120, help="number of newsletters (default 120)")
    p.add_argument("--seed", type=int, default=11)
    p.add_argument("--events", type=int, default=100_000, help="events to log at least")
    p.add_argument("--detail", choices=("aggregate", "events", "research"), default="events")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    r = measure(args.n, args.seed, args.events, args.detail)
    if args.json:
        print(json.dumps(asdict(r)))
        return 0
    print(
        f"{r.messages} newsletters ({r.mb} MB) x {r.passes} passes, detail={r.detail}: "
        f"{r.events} events logged, {r.written} written, {r.dropped} dropped"
    )
    print(f"rewrite without logging  {r.mb_per_s_without:8.1f} MB/s")
    print(f"rewrite with logging     {r.mb_per_s_with:8.1f} MB/s")
    print(f"overhead                 {r.overhead_percent:8.2f} %")
    return 0


if __name__ == "__main__":
    sys.exit(main())
