"""The data inventory (`data show`), export (`data export`) and deletion (`data purge`).

Data-safety principle "data inventory": the user can see what is stored, where, how much, for how
long and why; take all of it away in an open format (JSON Lines); and delete it.
"""

from __future__ import annotations

import calendar
import json
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import IO, Final

from mailproxy.config import LogDetail
from mailproxy.tracking.store import SCHEMA_VERSION, Store, StoreError

__all__ = [
    "InventoryRow",
    "day_start",
    "export_header",
    "export_jsonl",
    "import_jsonl",
    "inventory",
    "purge",
    "render_inventory",
]

logger = logging.getLogger(__name__)

NOT_STORED: Final = (
    "Never stored: message contents or subjects, recipient or user addresses (users only as a "
    "keyed hash, at events/research), IP addresses, cookies, full URLs (research keeps them "
    "redacted)."
)


@dataclass(frozen=True, slots=True)
class InventoryRow:
    what: str
    where: str
    how_much: str
    how_long: str
    why: str


def _fmt_time(t: object) -> str:
    if not isinstance(t, int | float):
        return "-"
    return time.strftime("%Y-%m-%d %H:%M", time.gmtime(int(t)))


def inventory(
    store: Store, *, detail: LogDetail, retention_days: int, key_path: Path | None
) -> list[InventoryRow]:
    """What the store and the key file hold, now."""
    s = store.stats()
    keep = f"{retention_days} days, then deleted automatically"
    where = f"{store.kind} {store.location}"
    rows = [
        InventoryRow(
            what="Daily counts: day, channel, sender domain, tracker domain, vendor, vector, "
            "reasons, action",
            where=f"{where}, table tracking_daily",
            how_much=f"{s['daily_rows']} rows, {s['daily_events']} events"
            + (f", {s['daily_first']} to {s['daily_last']}" if s["daily_rows"] else ""),
            how_long=keep,
            why="mailproxy report: who tracks, how and how much (every detail level)",
        ),
        InventoryRow(
            what="Event rows: time (10 minutes), the same dimensions, keyed hash of the user",
            where=f"{where}, table tracking_events",
            how_much=f"{s['event_rows']} rows, {s['event_users']} distinct user hashes"
            + (
                f", {_fmt_time(s['event_first'])} to {_fmt_time(s['event_last'])} UTC"
                if s["event_rows"]
                else ""
            ),
            how_long=keep,
            why="per-event research (detail = events or research; now "
            f"{detail}); the hash lets one user's share be counted",
        ),
        InventoryRow(
            what="Redacted tracker URLs (identifying parts replaced by markers)",
            where=f"{where}, tracking_events.url",
            how_much=f"{s['event_urls']} URLs",
            how_long=keep,
            why="URL shapes of trackers for research (detail = research only, opt-in)",
        ),
    ]
    if key_path is not None:
        exists = key_path.exists()
        rows.append(
            InventoryRow(
                what="Secret key of the user hashes",
                where=str(key_path),
                how_much="32 random bytes" if exists else "not created (not needed at aggregate)",
                how_long="until data purge --all",
                why="hashes that cannot be matched to addresses without this file",
            )
        )
    rows.append(
        InventoryRow(
            what="Schema version",
            where=f"{where}, table tracking_meta",
            how_much=f"version {store.schema_version()}",
            how_long="as long as the database",
            why="upgrades the tables safely",
        )
    )
    return rows


def render_inventory(rows: Iterable[InventoryRow]) -> str:
    out: list[str] = []
    for r in rows:
        out += [
            r.what,
            f"  where:     {r.where}",
            f"  how much:  {r.how_much}",
            f"  how long:  {r.how_long}",
            f"  why:       {r.why}",
            "",
        ]
    out.append(NOT_STORED)
    return "\n".join(out) + "\n"


def export_header() -> str:
    """The first line of every export (format marker and schema version)."""
    return json.dumps({"mailproxy_tracking_export": 1, "schema_version": SCHEMA_VERSION}) + "\n"


def export_jsonl(store: Store, out: IO[str]) -> int:
    """Write everything as JSON Lines: a header line, then one object per row with its table.
    Returns the number of rows."""
    out.write(export_header())
    n = 0
    for table in ("daily", "events"):
        for row in store.iter_rows(table):
            out.write(json.dumps({"table": table, **row}, ensure_ascii=False) + "\n")
            n += 1
    return n


def import_jsonl(store: Store, lines: Iterable[str]) -> int:
    """Load an export back into a store (restoring, or moving to another store). Returns rows
    added; raises StoreError on a line that is not an export row."""
    batches: dict[str, list[dict[str, object]]] = {"daily": [], "events": []}
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise StoreError(f"import line {number}: not JSON ({exc.msg})") from exc
        if not isinstance(obj, dict):
            raise StoreError(f"import line {number}: not an object")
        if "mailproxy_tracking_export" in obj:
            continue
        table = obj.pop("table", None)
        if table not in batches:
            raise StoreError(f"import line {number}: unknown table {table!r}")
        batches[table].append(obj)
    return sum(store.import_rows(table, rows) for table, rows in batches.items())


def day_start(day: date) -> int:
    """Epoch seconds of 00:00 UTC of `day`."""
    return calendar.timegm(day.timetuple())


def purge(
    store: Store, *, everything: bool = False, before: date | None = None, key_path: Path | None
) -> int:
    """Delete all rows (and the key file), or rows older than `before` (00:00 UTC)."""
    if everything:
        n = store.purge_all()
        if key_path is not None:
            try:
                key_path.unlink(missing_ok=True)
            except OSError as exc:
                raise StoreError(f"{key_path}: cannot delete the key ({exc.strerror})") from exc
        return n
    if before is None:
        raise StoreError("purge needs --all or --before DATE")
    return store.purge_before(day_start(before))
