"""Smoke test of bench/tracking.py: it runs, logs what it says, and reports a coherent result."""

from __future__ import annotations

from bench.tracking import measure


def test_bench_tracking_smoke() -> None:
    r = measure(2, seed=11, min_events=150, detail="events")
    assert r.events >= 150
    # Each chunk gives one half to each side: every message is rewritten once, by one side.
    assert r.messages_with == r.messages_without == 2 * r.chunks
    assert r.written == r.events and r.dropped == 0
    assert r.mb_per_s_without > 0 and r.mb_per_s_with > 0
    assert -100 < r.overhead_percent < 100
