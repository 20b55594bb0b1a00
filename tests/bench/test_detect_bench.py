"""The detection benchmark: scoring rules, the missing-analyser exit, runs with a stand-in."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence

import pytest

from bench import detect
from bench.corpus import Labels, TrackerLabel
from mailproxy.model import Action, Finding, Tier, Vector, Verdict

PIXEL = "https://x.us1.list-manage.com/track/open.php?u=1&id=2&e=3"
SES = "https://abc.r.us-east-1.awstrack.me/I0/0101-x-000000/sig=349"
HERO = "https://cdn.example.com/hero.jpg"
LOGO = "https://cdn.example.com/logo.png"
IDENT = "https://cdn.example.com/p.jpg?uid=0123456789abcdef0123456789abcdef"


def finding(url: str, verdict: Verdict, vendor: str | None = None) -> Finding:
    return Finding(
        url=url,
        vector=Vector.IMG,
        verdict=verdict,
        action=Action.ALLOW if verdict is Verdict.CLEAN else Action.STRIP,
        tier=Tier.HIGH,
        vendor=vendor,
    )


LABELS = Labels(
    index=0,
    recipient="a@example.com",
    trackers=(
        TrackerLabel(url=PIXEL, vendor="Mailchimp"),
        TrackerLabel(url=SES, vendor="Amazon SES"),
    ),
    content_images=(HERO, LOGO),
    identifying_images=(IDENT,),
)


def test_score_counts_hits_misses_and_false_positives() -> None:
    s = detect.score(
        [
            (
                LABELS,
                [
                    finding(PIXEL.replace("&", "&amp;"), Verdict.TRACKER, "mailchimp"),  # escaped
                    finding(SES, Verdict.CLEAN),  # seen but missed
                    finding(HERO, Verdict.TRACKER),  # false positive on content
                    finding(LOGO, Verdict.CLEAN),
                    finding(IDENT, Verdict.IDENTIFYING),  # leak caught, not a false positive
                ],
            )
        ]
    )
    assert (s.trackers, s.true_positives, s.false_negatives, s.false_positives) == (2, 1, 1, 1)
    assert s.precision == pytest.approx(0.5) and s.recall == pytest.approx(0.5)
    assert s.seen == 2 and s.vendor_named == 1
    assert (s.content_images, s.content_flagged) == (2, 1)
    assert s.leak_recall == 1.0
    assert s.per_vendor == {"Amazon SES": (0, 1), "Mailchimp": (1, 1)}
    assert s.missed == (SES,) and s.wrong == (HERO,)


def test_score_takes_the_most_severe_verdict_per_url() -> None:
    s = detect.score([(LABELS, [finding(SES, Verdict.CLEAN), finding(SES, Verdict.TRACKER, "Amazon SES")])])
    assert s.true_positives == 1 and s.false_positives == 0


def test_score_identifying_image_called_tracker_is_not_a_false_positive() -> None:
    s = detect.score([(LABELS, [finding(IDENT, Verdict.TRACKER)])])
    assert s.false_positives == 0 and s.leak_recall == 1.0 and s.recall == 0.0


def test_score_of_nothing_is_perfect_and_of_no_findings_is_zero_recall() -> None:
    empty = detect.score([])
    assert empty.precision == 1.0 and empty.recall == 1.0
    blind = detect.score([(LABELS, [])])
    assert blind.recall == 0.0 and blind.seen == 0 and blind.leak_recall == 0.0


_OPEN = re.compile(r'src="(https://[^"]*(?:open|/o/|/I0/|/e/o/|\.gif)[^"]*)"')


def _naive(raw: bytes, policy: object = None, *, recipients: Sequence[str] = ()) -> list[Finding]:
    """A stand-in analyser: calls every quoted src that looks like a pixel path a tracker."""
    text = raw.decode("latin-1")
    return [finding(m.group(1), Verdict.TRACKER) for m in _OPEN.finditer(text)]


@pytest.fixture
def stand_in(monkeypatch: pytest.MonkeyPatch) -> None:
    """Replace the engine's analysis by a naive one, to test the report without the engine's speed."""
    import mailproxy.engine

    monkeypatch.setattr(mailproxy.engine.Engine, "analyse", lambda self, raw, **kw: _naive(raw, **kw))


def test_main_with_the_real_engine_finds_trackers(capsys: pytest.CaptureFixture[str]) -> None:
    rc = detect.main(["-n", "3", "--rounds", "1", "--html-kb", "16", "20", "--no-baselines", "--json"])
    assert rc == 0
    det = json.loads(capsys.readouterr().out)["detection"]
    assert det["recall"] > 0.9 and det["precision"] > 0.9


@pytest.mark.usefixtures("stand_in")
def test_main_json_report(capsys: pytest.CaptureFixture[str]) -> None:
    rc = detect.main(["-n", "4", "--rounds", "2", "--html-kb", "16", "20", "--json"])
    assert rc == 0
    report = json.loads(capsys.readouterr().out)
    names = [t["name"] for t in report["timings"]]
    assert names == ["analyse_message", "bs4 html.parser", "selectolax"]
    # The analyser is timed once (first sight), the parsers --rounds times.
    assert [len(t["rounds_s"]) for t in report["timings"]] == [1, 2, 2]
    assert all(t["mb_per_s"] > 0 for t in report["timings"])
    assert set(report["ratios"]) == {"bs4 html.parser", "selectolax"}
    det = report["detection"]
    assert det["trackers"] > 0 and 0.0 <= det["recall"] <= 1.0
    # The naive matcher sees only unbroken, unencoded URLs, so it cannot be perfect here.
    assert det["true_positives"] + det["false_negatives"] == det["trackers"]


@pytest.mark.usefixtures("stand_in")
def test_main_text_report(capsys: pytest.CaptureFixture[str]) -> None:
    assert detect.main(["-n", "2", "--rounds", "1", "--html-kb", "16", "16", "--no-baselines"]) == 0
    out = capsys.readouterr().out
    assert "analyse_message" in out and "precision" in out and "bs4" not in out


def test_analyser_crash_is_reported_not_raised() -> None:
    def boom(raw: bytes, policy: object = None, *, recipients: Sequence[str] = ()) -> list[Finding]:
        raise RuntimeError("kaput")

    report = detect.run(boom, n=2, rounds=1, html_kb=(16, 16), baselines=False)
    assert len(report.errors) == 2 and "kaput" in report.errors[0]
    assert report.detection.recall == 0.0
    assert "analyser errors" in report.format()


@pytest.mark.parametrize("argv", [["-n", "0"], ["--rounds", "0"], ["--html-kb", "9", "1"]])
@pytest.mark.usefixtures("stand_in")
def test_main_bad_arguments_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert detect.main(argv) == 2
    assert "bench.detect" in capsys.readouterr().err


def test_extract_html_returns_decoded_html_parts() -> None:
    from bench.corpus import generate

    (raw,) = generate(1, seed=2, html_kb=(16, 16))
    pages = detect.extract_html(raw)
    assert pages and pages[0].startswith("<!DOCTYPE html")
    assert all("<html" in p for p in pages)
    assert detect.extract_html(b"Subject: x\r\n\r\nplain\r\n") == []
