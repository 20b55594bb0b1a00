"""The data inventory (`data show`), export (`data export`) and deletion (`data purge`).

Data-safety principle "data inventory": the user can see what is stored, where, how much, for how
long and why; take all of it away in an open format (JSON Lines); and delete it. The same for one
user of a shared deployment (``--user``): their rows are found by recomputing the keyed hash of
their login name, which is never shown or logged next to the name (that would undo the pseudonym).
"""

from __future__ import annotations

import calendar
import json
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import IO, Final

from mailproxy.config import LogDetail
from mailproxy.tracking.events import UserHasher
from mailproxy.tracking.store import SCHEMA_VERSION, Store, StoreError, read_key

__all__ = [
    "InventoryRow",
    "UserRows",
    "day_start",
    "export_header",
    "export_jsonl",
    "export_user_jsonl",
    "find_user",
    "import_jsonl",
    "inventory",
    "purge",
    "purge_user",
    "render_inventory",
    "render_user",
]

logger = logging.getLogger(__name__)

NOT_STORED: Final = (
    "Never stored: message contents or subjects, recipient or user addresses (users only as a "
    "keyed hash, at events/research), IP addresses, cookies, full URLs (research keeps them "
    "redacted)."
)
DAILY_NOT_PER_USER: Final = (
    "Not per user: the daily counts (table tracking_daily) add up everyone's events per day, sender "
    "domain and tracker; they hold no user and cannot be split by user. They are deleted after the "
    "retention period, or with data purge --before / --all."
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
            what="Daily counts: day, channel, sender domain, tracker domain, vendor, vector, reasons, action",
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
        InventoryRow(
            what="Dropped events: per day, how many events were not stored (store down, queue full)",
            where=f"{where}, table tracking_dropped",
            how_much=f"{s['dropped']} events"
            + (f", {s['dropped_first']} to {s['dropped_last']}" if s["dropped"] else ""),
            how_long=keep,
            why="says how much the counts and rows above are missing",
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


def export_header(user_detail: LogDetail | None = None) -> str:
    """The first line of every export (format marker and schema version); with `user_detail`, the
    header of one user's export at that detail level."""
    header: dict[str, object] = {"mailproxy_tracking_export": 1, "schema_version": SCHEMA_VERSION}
    if user_detail is not None:
        header |= {
            "scope": "one user",
            "detail": str(user_detail),
            "note": "the event rows of one user, found by the keyed hash of their login name; "
            "user_hash is left empty so that this file does not pair the user with the hash; "
            "daily counts hold no user and are not included",
        }
    return json.dumps(header) + "\n"


def _write_rows(out: IO[str], table: str, rows: Iterable[dict[str, object]]) -> int:
    n = 0
    for row in rows:
        out.write(json.dumps({"table": table, **row}, ensure_ascii=False) + "\n")
        n += 1
    return n


def export_jsonl(store: Store, out: IO[str]) -> int:
    """Write everything as JSON Lines: a header line, then one object per row with its table.
    Returns the number of rows."""
    out.write(export_header())
    return sum(_write_rows(out, table, store.iter_rows(table)) for table in _EXPORTED)


def import_jsonl(store: Store, lines: Iterable[str]) -> int:
    """Load an export back into a store (restoring, or moving to another store). Returns rows
    added; raises StoreError on a line that is not an export row."""
    batches: dict[str, list[dict[str, object]]] = {table: [] for table in _EXPORTED}
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


_EXPORTED: Final = ("daily", "events", "dropped")


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


# --- one user ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class UserRows:
    """What the store holds about one user. `user_hash` is None when no row can belong to a user
    (aggregate detail, or no key); it is kept out of the repr so it never lands in a log line."""

    user_hash: str | None = field(repr=False)
    rows: int = 0
    urls: int = 0
    days: tuple[tuple[str, int], ...] = ()
    none_because: str = ""  # why nothing can be per user, when user_hash is None


def find_user(store: Store, user: str, *, detail: LogDetail, key_path: Path | None) -> UserRows:
    """One user's event rows, by the keyed hash the proxy stores for `user` (the IMAP login or
    proxy user name, matched as the proxy hashes it: without case or surrounding spaces). Never
    creates the key. Raises StoreError when rows carry user hashes but the key is missing."""
    if not user.strip():
        raise StoreError("--user needs the user's address or login name")
    key = read_key(key_path) if key_path is not None else None
    if key is None:
        hashed = int(str(store.stats()["event_users"]))
        if hashed:
            raise StoreError(
                f"{hashed} user hashes are stored, but their key {key_path} is missing, so no row "
                "can be matched to a user; copy the key file from the proxy that wrote them"
            )
        if detail is LogDetail.AGGREGATE:
            return UserRows(None, none_because=_AGGREGATE_ONLY)
        return UserRows(
            None,
            none_because=f"No data about single users is stored: the key of the user hashes "
            f"({key_path}) does not exist yet, so no stored row belongs to a user.",
        )
    user_hash = UserHasher(key)(user)
    days = store.user_days(user_hash)
    return UserRows(
        user_hash,
        rows=sum(n for _, n, _ in days),
        urls=sum(u for _, _, u in days),
        days=tuple((day, n) for day, n, _ in days),
    )


_AGGREGATE_ONLY: Final = (
    "Nothing about this user is stored apart from counts: the tracking log is at detail "
    '"aggregate", which keeps only daily counts of all users\' events together, with no user and no '
    "per-user row. There is nothing of this user's alone to show, export or purge."
)


def render_user(found: UserRows, *, store: Store, detail: LogDetail, retention_days: int) -> str:
    """`data show --user`: what is stored about the user, without the user's hash."""
    if found.user_hash is None:
        return found.none_because + "\n"
    out: list[str] = []
    if found.rows:
        days = ", ".join(f"{day}: {n}" for day, n in found.days)
        out += [
            "Event rows of this user (found by the keyed hash of the login name)",
            "  what:      time (10 minutes), channel, sender domain, tracker domain, vendor, vector, "
            "reasons, action, the user hash" + (", redacted tracker URL" if found.urls else ""),
            f"  where:     {store.kind} {store.location}, table tracking_events",
            f"  how much:  {found.rows} rows, {found.urls} with a redacted URL",
            f"  days:      {days} (rows per UTC day)",
            f"  how long:  {retention_days} days, then deleted automatically",
        ]
        if detail is LogDetail.AGGREGATE:
            out.append(
                '  note:      the log is now at detail "aggregate": these rows are from before, '
                "no new ones are written"
            )
    elif detail is LogDetail.AGGREGATE:
        out.append(_AGGREGATE_ONLY)
    else:
        out.append("No rows of this user are stored (no event row carries their keyed hash).")
    out += ["", DAILY_NOT_PER_USER]
    return "\n".join(out) + "\n"


def export_user_jsonl(store: Store, found: UserRows, detail: LogDetail, out: IO[str]) -> int:
    """Write one user's event rows as JSON Lines, after a header naming the scope and the detail
    level; the rows' user_hash is left empty (see export_header). Returns the number of rows."""
    out.write(export_header(detail))
    if found.user_hash is None:
        return 0
    rows = ({**row, "user_hash": ""} for row in store.iter_rows("events", user_hash=found.user_hash))
    return _write_rows(out, "events", rows)


def purge_user(store: Store, found: UserRows) -> int:
    """Delete one user's event rows; the number deleted. The key stays (other users need it)."""
    return store.purge_user(found.user_hash) if found.user_hash is not None else 0
