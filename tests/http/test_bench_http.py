"""Smoke test of bench/http.py: a tiny run has the report's shape (speed is not checked)."""

from __future__ import annotations

import json
import math

import pytest

from bench import http as bench_http

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def report() -> bench_http.Report:
    return bench_http.run(requests=20, rounds=2, concurrency=2, warmup=2)


def test_a_tiny_run_reports_every_variant(report: bench_http.Report) -> None:
    assert [v.name for v in report.variants] == ["direct", "mitmproxy", "mitmproxy+mailproxy"]
    for v in report.variants:
        assert v.requests == 40 and v.errors == 0
        assert len(v.rps) == 2 and all(r > 0 for r in v.rps)
        assert 0 < v.latency_median_ms <= v.latency_p95_ms
    # the probe shows the addons are active exactly where they should be
    assert [v.addons_active for v in report.variants] == [False, False, True]


def test_report_ratios_json_and_text(report: bench_http.Report) -> None:
    data = json.loads(json.dumps(report.as_dict()))
    assert data["rounds"] == 2 and data["requests_per_round"] == 20
    assert set(data["ratios"]) == {
        "addon_vs_bare_rps",
        "bare_vs_direct_rps",
        "addon_vs_direct_rps",
        "addon_vs_bare_latency_median",
        "addon_vs_bare_latency_p95",
    }
    assert all(math.isfinite(r) and r > 0 for r in data["ratios"].values())
    ratio = data["ratios"]["addon_vs_bare_rps"]
    assert data["addon_cost"] == pytest.approx(1 - ratio)
    assert data["target_met"] is (data["addon_cost"] < 0.10)
    text = report.format()
    for name in ("direct", "mitmproxy", "mitmproxy+mailproxy", "addon cost"):
        assert name in text


def test_main_json_output(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["-n", "5", "--rounds", "1", "--concurrency", "1", "--warmup", "0", "--json"]
    assert bench_http.main(args) == 0
    data = json.loads(capsys.readouterr().out)
    assert [v["name"] for v in data["variants"]] == ["direct", "mitmproxy", "mitmproxy+mailproxy"]


@pytest.mark.parametrize("args", [["-n", "0"], ["--rounds", "0"], ["--concurrency", "0"]])
def test_main_rejects_bad_counts(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert bench_http.main(args) == 2
    assert "at least 1" in capsys.readouterr().err


def test_percentile() -> None:
    values = [float(v) for v in range(1, 101)]
    assert bench_http.percentile(values, 95) == 95.0
    assert bench_http.percentile(values, 100) == 100.0
    assert bench_http.percentile([3.0, 1.0, 2.0], 50) == 2.0
    assert bench_http.percentile([7.0], 95) == 7.0
    with pytest.raises(ValueError):
        bench_http.percentile([], 50)
    with pytest.raises(ValueError):
        bench_http.percentile([1.0], 0)


def test_image_is_a_small_png() -> None:
    assert bench_http.IMAGE.startswith(b"\x89PNG\r\n\x1a\n")
    assert bench_http.IMAGE.endswith(b"IEND\xaeB`\x82")
    assert 500 < len(bench_http.IMAGE) < 4000
