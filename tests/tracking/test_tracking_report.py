"""`mailproxy report` and `mailproxy data`: formats, the HTML page in headless Chromium, the CLI."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import struct
import subprocess
import zlib
from collections import Counter
from pathlib import Path
from typing import Final

import pytest
from tracking_support import READER, READER_MD5, SENDER_DOMAIN, run_cli, sample_findings

from mailproxy.config import LogDetail
from mailproxy.errors import MailproxyError
from mailproxy.tracking.events import TrackingEvent
from mailproxy.tracking.report import build_report, render
from mailproxy.tracking.store import key_path_for, open_store
from mailproxy.tracking.writer import EventSink

CHROMIUM: Final = shutil.which("chromium") or "/usr/bin/chromium"
DAY0: Final = 1_893_456_000  # 2030-01-01 UTC


def ev(day: int, *, vendor: str = "Mailchimp", sender: str = "shop.example", **kw: str) -> TrackingEvent:
    return TrackingEvent(
        time=DAY0 + day * 86400,
        channel=kw.get("channel", "imap"),
        sender_domain=sender,
        tracker_domain=kw.get("domain", "list-manage.com"),
        vendor=vendor,
        vector=kw.get("vector", "img"),
        reasons=tuple(kw.get("reasons", "known-tracker").split(",")),
        action=kw.get("action", "strip"),
    )


def demo_store(db: Path) -> None:
    store = open_store(db)
    events = []
    for day in range(10):
        events += [ev(day)] * (day + 1)
        events += [ev(day, vendor="SendGrid", domain="sendgrid.net", sender="news.example")] * 3
        events += [
            ev(
                day,
                vendor="",
                domain="cdn.example",
                vector="css-url",
                reasons="recipient-identity:md5-in-query,hidden:tiny:1x1",
            )
        ] * 2
    events.append(ev(9, vendor="<script>alert(1)</script>", sender="x<b>.example"))
    store.write(events, LogDetail.AGGREGATE)
    store.close()


def test_report_counts(tmp_path: Path) -> None:
    db = tmp_path / "t.sqlite3"
    demo_store(db)
    store = open_store(db)
    report = build_report(store.daily())
    since = build_report(store.daily("2030-01-06"), "2030-01-06")
    store.close()
    assert report.total == 55 + 30 + 20 + 1
    assert report.sections["vendors"][0] == ("Mailchimp", 55)
    assert ("(unknown)", 20) in report.sections["vendors"]
    assert report.sections["identity"] == [("md5 in query", 20)]
    assert report.sections["vectors"][0] == ("img", 86)
    assert report.per_day[0] == ("2030-01-01", 6) and report.per_day[-1] == ("2030-01-10", 16)
    assert since.first_day == "2030-01-06" and since.total == 6 + 7 + 8 + 9 + 10 + 25 + 1
    empty = build_report([])
    assert empty.total == 0 and "empty" in render(empty, "table")


def test_report_formats(tmp_path: Path) -> None:
    db = tmp_path / "t.sqlite3"
    demo_store(db)
    store = open_store(db)
    report = build_report(store.daily())
    store.close()
    data = json.loads(render(report, "json"))
    assert data["total"] == 106 and data["vendors"][0] == {"key": "Mailchimp", "count": 55}
    rows = list(csv.reader(io.StringIO(render(report, "csv"))))
    assert rows[0] == ["section", "key", "count"] and ["total", "", "106"] in rows
    assert ["per_day", "2030-01-10", "16"] in rows
    table = render(report, "table")
    assert "Top tracker vendors" in table and "md5 in query" in table
    page = render(report, "html")
    # Self-contained: no URL to load anything from, and a CSP that forbids it anyway.
    assert "default-src 'none'" in page
    assert "src=" not in page and "href=" not in page and "@import" not in page
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert page.count("<svg") == 9 and page.count("<rect") > 25
    with pytest.raises(ValueError):
        render(report, "pdf")


def png_pixels(data: bytes) -> tuple[int, int, list[bytes]]:
    """Decode an 8-bit RGB / RGBA PNG with zlib: (width, height, rows of raw pixel bytes)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat = 8, b""
    width = height = channels = 0
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        body = data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, colour = struct.unpack(">IIBB", body[:10])
            assert depth == 8 and colour in (2, 6)
            channels = 3 if colour == 2 else 4
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = width * channels
    rows: list[bytes] = []
    prev = bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        for i in range(stride):
            a = line[i - channels] if i >= channels else 0
            b = prev[i]
            c = prev[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + a) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + b) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (a + b) // 2) & 0xFF
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                line[i] = (line[i] + pred) & 0xFF
        rows.append(bytes(line) if channels == 3 else bytes(v for j, v in enumerate(line) if j % 4 != 3))
        prev = line
    return width, height, rows


@pytest.mark.slow
@pytest.mark.skipif(
    not os.path.exists(CHROMIUM), reason="chromium is not installed (scripts/install-browser)"
)
def test_html_report_renders_charts_in_chromium(tmp_path: Path) -> None:
    db = tmp_path / "t.sqlite3"
    demo_store(db)
    page = tmp_path / "report.html"
    config = tmp_path / "c.toml"
    config.write_text(f'[log]\nstore = "{db}"\n')
    assert run_cli(["report", "-c", str(config), "--format", "html", "-o", str(page)]) == 0
    shot = tmp_path / "shot.png"
    subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--window-size=1000,900",
            f"--screenshot={shot}",
            page.as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=120,
        env={**os.environ, "HOME": str(tmp_path)},
    )
    width, height, rows = png_pixels(shot.read_bytes())
    assert (width, height) == (1000, 900)
    colours: Counter[bytes] = Counter()
    for row in rows[::2]:
        for x in range(0, len(row), 6):  # every other pixel
            colours[row[x : x + 3]] += 1
    assert len(colours) >= 8  # text, background, several bar colours, anti-aliasing
    # The bars: the day chart's colour and the first sections' colours are drawn, in blocks.
    for hex_colour in ("2c7a7b", "2b6cb0", "c05621", "2f855a"):
        assert colours[bytes.fromhex(hex_colour)] > 100, hex_colour


# --- the CLI -------------------------------------------------------------------------------------


def test_cli_show_export_purge(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "data" / "t.sqlite3"
    config = tmp_path / "c.toml"
    config.write_text(f'[log]\nstore = "{db}"\ndetail = "research"\nretention_days = 7\n')
    # Before anything is stored: read-only commands create nothing.
    assert run_cli(["data", "show", "-c", str(config)]) == 0
    assert "Nothing stored" in capsys.readouterr().out and not db.exists()
    assert run_cli(["report", "-c", str(config)]) == 0
    assert "empty" in capsys.readouterr().out and not db.exists()

    sink = EventSink(lambda: open_store(db), detail=LogDetail.RESEARCH, key_path=key_path_for(db))
    for findings in sample_findings():
        sink.record_findings(findings, channel="imap", sender_domain=SENDER_DOMAIN, user=READER)
    sink.close()

    assert run_cli(["data", "show", "-c", str(config)]) == 0
    shown = capsys.readouterr().out
    for word in ("where:", "how much:", "how long:", "why:", "7 days", "tracking_events", "URLs"):
        assert word in shown
    out = tmp_path / "export.jsonl"
    assert run_cli(["data", "export", "-c", str(config), "-o", str(out)]) == 0
    lines = out.read_text().splitlines()
    assert len(lines) > 20 and READER not in out.read_text() and READER_MD5 not in out.read_text()
    assert run_cli(["report", "-c", str(config), "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["total"] > 20

    assert run_cli(["data", "purge", "-c", str(config), "--before", "2000-01-01"]) == 0
    assert "0 rows" in capsys.readouterr().out
    assert run_cli(["data", "purge", "-c", str(config), "--all"]) == 0
    assert not key_path_for(db).exists()
    assert run_cli(["data", "export", "-c", str(config), "-o", str(out)]) == 0
    assert len(out.read_text().splitlines()) == 1  # the header line only


def test_cli_bad_input(tmp_path: Path) -> None:
    with pytest.raises(SystemExit):
        run_cli(["report", "--since", "yesterday"])
    with pytest.raises(SystemExit):
        run_cli(["data", "purge"])  # --all or --before is required
    config = tmp_path / "c.toml"
    bad = tmp_path / "bad.sqlite3"
    bad.write_bytes(b"garbage" * 200)
    config.write_text(f'[log]\nstore = "{bad}"\n')
    with pytest.raises(MailproxyError):
        run_cli(["data", "show", "-c", str(config)])


def test_cleaned_images_are_counted_apart_from_stopped_trackers() -> None:
    rows = [
        (
            "2030-01-01",
            "imap",
            "shop.example",
            "list-manage.com",
            "Mailchimp",
            "img",
            "known-tracker",
            "strip",
            3,
        ),
        (
            "2030-01-01",
            "imap",
            "shop.example",
            "cdn.example",
            None,
            "img",
            "known-param:utm_source",
            "clean",
            5,
        ),
    ]
    report = build_report(rows)
    assert report.sections["vendors"] == [("Mailchimp", 3)]
    assert report.sections["tracker_domains"] == [("list-manage.com", 3)]
    assert report.sections["cleaned_domains"] == [("cdn.example", 5)]
    assert report.total == 8
