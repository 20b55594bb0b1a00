"""``mailproxy report``: who tracks, how and how much, from the daily counts.

Every detail level keeps the daily counts, so the report reads only those: the same report whatever
the level, and no report ever needs a per-event row. Formats: ``table`` (terminal), ``json``,
``csv`` (one ``section,key,count`` line per figure) and ``html``, a self-contained page with inline
SVG charts and a Content-Security-Policy that forbids loading anything.
"""

from __future__ import annotations

import csv
import html
import io
import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

__all__ = ["FORMATS", "Report", "build_report", "render"]

FORMATS: Final = ("table", "json", "csv", "html")
TOP: Final = 15
UNKNOWN: Final = "(unknown)"
_IDENTITY_PREFIX: Final = "recipient-identity:"

# (section key, title) in display order.
SECTIONS: Final = (
    ("vendors", "Top tracker vendors (stopped)"),
    ("tracker_domains", "Top tracker domains (stopped)"),
    ("senders", "Senders that track most"),
    ("cleaned_domains", "Image domains whose identifying parameters were removed"),
    ("vectors", "Vectors"),
    ("identity", "Recipient-identity leaks (encoding, where)"),
    ("reasons", "Reasons"),
    ("actions", "Actions taken"),
    ("channels", "Channels"),
)


@dataclass(frozen=True, slots=True)
class Report:
    since: str | None
    total: int
    first_day: str | None
    last_day: str | None
    sections: dict[str, list[tuple[str, int]]] = field(default_factory=dict)
    per_day: list[tuple[str, int]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "since": self.since,
            "total": self.total,
            "first_day": self.first_day,
            "last_day": self.last_day,
            **{k: [{"key": n, "count": c} for n, c in v] for k, v in self.sections.items()},
            "per_day": [{"day": d, "count": c} for d, c in self.per_day],
        }


def build_report(rows: Iterable[Sequence[Any]], since: str | None = None) -> Report:
    """The report of daily-count rows (store.DAILY_COLUMNS order)."""
    counters: dict[str, Counter[str]] = {key: Counter() for key, _ in SECTIONS}
    days: Counter[str] = Counter()
    total = 0
    for day, channel, sender, domain, vendor, vector, reasons, action, count in rows:
        n = int(count)
        total += n
        days[str(day)] += n
        if action == "clean":
            # Ordinary content kept loading without its identifiers: not a tracker the reader was
            # spared, so it is counted apart from the vendors and domains that were stopped.
            counters["cleaned_domains"][domain or UNKNOWN] += n
        else:
            counters["vendors"][vendor or UNKNOWN] += n
            counters["tracker_domains"][domain or UNKNOWN] += n
            counters["senders"][sender or UNKNOWN] += n
        counters["vectors"][vector or UNKNOWN] += n
        counters["actions"][action or UNKNOWN] += n
        counters["channels"][channel or UNKNOWN] += n
        for reason in str(reasons).split(",") if reasons else ():
            kind = reason.partition(":")[0]
            counters["reasons"][kind] += n
            if reason.startswith(_IDENTITY_PREFIX):
                counters["identity"][reason[len(_IDENTITY_PREFIX) :].replace("-in-", " in ")] += n
    sections = {key: sorted(c.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP] for key, c in counters.items()}
    per_day = sorted(days.items())
    return Report(
        since=since,
        total=total,
        first_day=per_day[0][0] if per_day else None,
        last_day=per_day[-1][0] if per_day else None,
        sections=sections,
        per_day=per_day,
    )


def render(report: Report, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(report.as_dict(), indent=2) + "\n"
    if fmt == "csv":
        return _csv(report)
    if fmt == "html":
        return _html(report)
    if fmt == "table":
        return _table(report)
    raise ValueError(f"unknown report format {fmt!r}")


def _table(report: Report) -> str:
    lines = [f"Tracking events: {report.total}" + _span(report)]
    for key, title in SECTIONS:
        rows = report.sections.get(key) or []
        if not rows:
            continue
        width = max(len(name) for name, _ in rows)
        lines += ["", title]
        lines += [f"  {name:<{width}}  {count:>8}" for name, count in rows]
    if report.per_day:
        lines += ["", "Per day"]
        lines += [f"  {day}  {count:>8}" for day, count in report.per_day]
    return "\n".join(lines) + "\n"


def _span(report: Report) -> str:
    if report.first_day is None:
        return " (the log is empty" + (f" since {report.since})" if report.since else ")")
    return f" ({report.first_day} to {report.last_day})"


def _csv(report: Report) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["section", "key", "count"])
    writer.writerow(["total", "", report.total])
    for key, _ in SECTIONS:
        for name, count in report.sections.get(key) or []:
            writer.writerow([key, name, count])
    for day, count in report.per_day:
        writer.writerow(["per_day", day, count])
    return out.getvalue()


# --- HTML ----------------------------------------------------------------------------------------

_PALETTE: Final = ("#2b6cb0", "#c05621", "#2f855a", "#6b46c1", "#b83280", "#975a16", "#2c7a7b")
_CSP: Final = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
_CSS: Final = """
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#1a202c;background:#fff}
h1{font-size:20px}h2{font-size:16px;margin:24px 0 8px}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(460px,1fr));gap:16px}
section{border:1px solid #e2e8f0;border-radius:6px;padding:8px 12px}
svg text{font:12px system-ui,sans-serif;fill:#1a202c}
"""


def _bar_chart(rows: list[tuple[str, int]], colour: str) -> str:
    if not rows:
        return "<p>none</p>"
    label_w, bar_w, row_h = 190, 220, 22
    peak = max(count for _, count in rows) or 1
    height = row_h * len(rows) + 4
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{label_w + bar_w + 60}" '
        f'height="{height}" role="img">'
    ]
    for i, (name, count) in enumerate(rows):
        y = i * row_h + 2
        w = max(2, round(bar_w * count / peak))
        shown = name if len(name) <= 28 else name[:27] + "\u2026"
        parts.append(
            f'<text x="{label_w - 6}" y="{y + 15}" text-anchor="end">{html.escape(shown)}</text>'
            f'<rect x="{label_w}" y="{y + 2}" width="{w}" height="{row_h - 6}" fill="{colour}">'
            f"<title>{html.escape(name)}: {count}</title></rect>"
            f'<text x="{label_w + w + 6}" y="{y + 15}">{count}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _day_chart(per_day: list[tuple[str, int]], colour: str) -> str:
    if not per_day:
        return "<p>none</p>"
    width, height, pad = 900, 220, 30
    peak = max(count for _, count in per_day) or 1
    step = (width - 2 * pad) / len(per_day)
    bar = max(1.0, step * 0.8)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height + 40}" role="img">',
        f'<line x1="{pad}" y1="{height}" x2="{width - pad}" y2="{height}" stroke="#718096"/>',
    ]
    for i, (day, count) in enumerate(per_day):
        h = max(1.0, (height - pad) * count / peak)
        x = pad + i * step
        parts.append(
            f'<rect x="{x:.1f}" y="{height - h:.1f}" width="{bar:.1f}" height="{h:.1f}" '
            f'fill="{colour}"><title>{html.escape(day)}: {count}</title></rect>'
        )
    first, last = per_day[0][0], per_day[-1][0]
    parts.append(f'<text x="{pad}" y="{height + 16}">{html.escape(first)}</text>')
    parts.append(f'<text x="{width - pad}" y="{height + 16}" text-anchor="end">{html.escape(last)}</text>')
    parts.append(f'<text x="{pad}" y="{pad - 10}">max {peak} per day</text>')
    parts.append("</svg>")
    return "".join(parts)


def _html(report: Report) -> str:
    sections = []
    for i, (key, title) in enumerate(SECTIONS):
        chart = _bar_chart(report.sections.get(key) or [], _PALETTE[i % len(_PALETTE)])
        sections.append(f"<section><h2>{html.escape(title)}</h2>{chart}</section>")
    return (
        "<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8>"
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">'
        '<meta name="referrer" content="no-referrer">'
        f"<title>mailproxy tracking report</title><style>{_CSS}</style></head><body>"
        f"<h1>mailproxy tracking report</h1><p>{report.total} tracking events"
        f"{html.escape(_span(report))}</p>"
        f"<h2>Per day</h2>{_day_chart(report.per_day, _PALETTE[-1])}"
        f'<div class="grid">{"".join(sections)}</div>'
        "</body></html>\n"
    )
