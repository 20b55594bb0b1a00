"""Smoke test of ``bench/imap.py``: a tiny run through all three routes, checking the shape of the
report (not the speed)."""

from __future__ import annotations

import json

import pytest

from bench import dovecot
from bench import imap as bench_imap

pytestmark = pytest.mark.skipif(
    not dovecot.available(), reason="dovecot is not installed: run scripts/install-test-deps"
)

ROUTES = {"direct", "dovecot_proxy", "mailproxy"}


@pytest.fixture(scope="module")
def report() -> dict[str, object]:
    return bench_imap.run(12, seed=3, repeat=1, noops=20, singles=5)


def test_report_has_every_measure_for_every_route(report: dict[str, object]) -> None:
    measures = report["measures"]
    assert isinstance(measures, dict)
    assert set(measures) == {"whole_html", "whole_plain", "chunked_html", "chunked_plain"}
    for per_route in measures.values():
        assert set(per_route) == ROUTES
        for t in per_route.values():
            assert t["messages"] == 12
            assert t["seconds"] > 0 and t["mb_per_s"] > 0 and t["messages_per_s"] > 0
    # every route delivered the same number of octets, whole or in chunks (the rewrite keeps sizes)
    for name in ("html", "plain"):
        sizes = {t["bytes"] for k in ("whole", "chunked") for t in measures[f"{k}_{name}"].values()}
        assert len(sizes) == 1
    for key in ("noop_ms", "single_ms"):
        values = report[key]
        assert isinstance(values, dict) and set(values) == ROUTES
        assert all(v > 0 for v in values.values())
    ratios = report["ratios"]
    assert isinstance(ratios, dict)
    assert set(ratios) == set(measures) | {"noop", "single"}


def test_mailproxy_rewrote_and_dovecot_proxy_did_not(report: dict[str, object]) -> None:
    # The generated newsletters all carry trackers: mailproxy must change them, Dovecot must not.
    assert report["rewritten_messages"] == 12
    assert report["dovecot_proxy_identical"] is True


def test_targets_are_reported_with_a_verdict(report: dict[str, object]) -> None:
    targets = report["targets"]
    assert isinstance(targets, list) and len(targets) == 4
    for t in targets:
        assert isinstance(t["met"], bool) and t["target"] and t["value"]
    text = bench_imap.render(report)
    assert "targets (issue 4)" in text
    assert text.count("met   ") + text.count("MISSED") == 4
    json.dumps(report)  # the --json output is plain JSON


def test_plain_messages_have_no_html_and_the_asked_sizes() -> None:
    msgs = bench_imap.plain_messages([3000, 70000], seed=1)
    assert [len(m) >= s for m, s in zip(msgs, [3000, 70000], strict=True)] == [True, True]
    assert all(len(m) < s + 200 for m, s in zip(msgs, [3000, 70000], strict=True))
    assert all(b"text/html" not in m and b"<" not in m.split(b"\r\n\r\n", 1)[1] for m in msgs)


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError):
        bench_imap.run(0)
    assert bench_imap.main(["-n", "0"]) == 2
