"""Where tracking events go: SQLite by default, PostgreSQL for several proxies sharing one database.

Both stores have the same tables and the same interface (:class:`Store`); only connecting, the
parameter style and the identity column differ. The schema is versioned in ``tracking_meta`` and
upgraded on open by the migrations in ``_MIGRATIONS``, inside one transaction (PostgreSQL: behind
an advisory lock, so two proxies starting together do not migrate twice).

- ``tracking_daily``: one count per (day, channel, sender domain, tracker domain, vendor, vector,
  reasons, action). Every detail level writes it; it is all ``aggregate`` keeps.
- ``tracking_events``: one row per event (``events`` and ``research`` only): 10-minute time, the
  same dimensions, the user's keyed hash, and at ``research`` the redacted URL.
- ``tracking_dropped``: per day, how many events the writer lost (store down, queue full), so
  ``mailproxy data show`` can say what the log is missing.

SQLite files are created 0600 in a folder created 0700, in WAL mode (readers such as ``mailproxy
report`` never block the proxy's writer) with ``secure_delete`` on, so purged rows are overwritten
in the file rather than left in free pages.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import operator
import os
import secrets
import sqlite3
import time
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit, urlunsplit

from mailproxy.config import LogDetail, default_store_path
from mailproxy.errors import MailproxyError
from mailproxy.tracking.events import DAY, TrackingEvent

__all__ = [
    "DAILY_COLUMNS",
    "DROPPED_COLUMNS",
    "EVENT_COLUMNS",
    "SCHEMA_VERSION",
    "PostgresStore",
    "SqliteStore",
    "Store",
    "StoreError",
    "key_path_for",
    "load_or_create_key",
    "open_store",
    "public_location",
    "read_key",
]

logger = logging.getLogger(__name__)


class StoreError(MailproxyError):
    """The tracking store cannot be opened, migrated, read or written."""


DAILY: Final = "tracking_daily"
EVENTS: Final = "tracking_events"
META: Final = "tracking_meta"
DROPPED: Final = "tracking_dropped"
DIMENSIONS: Final = (
    "channel",
    "sender_domain",
    "tracker_domain",
    "vendor",
    "vector",
    "reasons",
    "action",
)
DAILY_COLUMNS: Final = ("day", *DIMENSIONS, "count")
EVENT_COLUMNS: Final = ("time", *DIMENSIONS, "user_hash", "url")
DROPPED_COLUMNS: Final = ("day", "count")

# Each migration takes the schema from version n-1 to n. Placeholders: {id} the identity column,
# {bigint} a 64-bit integer. Never edit a released migration: add one.
_MIGRATIONS: Final[tuple[tuple[str, ...], ...]] = (
    # 1: counts and event rows.
    (
        f"CREATE TABLE {DAILY} (day TEXT NOT NULL, channel TEXT NOT NULL,"
        " sender_domain TEXT NOT NULL, tracker_domain TEXT NOT NULL, vendor TEXT NOT NULL,"
        " vector TEXT NOT NULL, reasons TEXT NOT NULL, action TEXT NOT NULL,"
        " count {bigint} NOT NULL, PRIMARY KEY (day, channel, sender_domain, tracker_domain,"
        " vendor, vector, reasons, action))",
        f"CREATE TABLE {EVENTS} (id {{id}}, time {{bigint}} NOT NULL, channel TEXT NOT NULL,"
        " sender_domain TEXT NOT NULL, tracker_domain TEXT NOT NULL, vendor TEXT NOT NULL,"
        " vector TEXT NOT NULL, reasons TEXT NOT NULL, action TEXT NOT NULL,"
        " user_hash TEXT NOT NULL)",
    ),
    # 2: research detail (redacted URL) and an index for retention purges.
    (
        f"ALTER TABLE {EVENTS} ADD COLUMN url TEXT NOT NULL DEFAULT ''",
        f"CREATE INDEX {EVENTS}_time ON {EVENTS} (time)",
    ),
    # 3: events the writer lost, per day.
    (f"CREATE TABLE {DROPPED} (day TEXT PRIMARY KEY, count {{bigint}} NOT NULL)",),
)
SCHEMA_VERSION: Final = len(_MIGRATIONS)
_PG_LOCK_KEY: Final = 0x6D61696C70  # advisory lock id for migrations ("mailp")

_UPSERT: Final = (
    f"INSERT INTO {DAILY} ({', '.join(DAILY_COLUMNS)}) VALUES ({', '.join('?' * 9)})"
    f" ON CONFLICT (day, {', '.join(DIMENSIONS)})"
    f" DO UPDATE SET count = {DAILY}.count + excluded.count"
)
_INSERT_EVENT: Final = f"INSERT INTO {EVENTS} ({', '.join(EVENT_COLUMNS)}) VALUES ({', '.join('?' * 10)})"
_ADD_DROPPED: Final = (
    f"INSERT INTO {DROPPED} (day, count) VALUES (?, ?)"
    f" ON CONFLICT (day) DO UPDATE SET count = {DROPPED}.count + excluded.count"
)


@functools.lru_cache(maxsize=256)
def _day(t: int) -> str:
    # Cached: a batch's events share a few days and 10-minute slots.
    return time.strftime("%Y-%m-%d", time.gmtime(t))


@functools.lru_cache(maxsize=4096)
def _joined(reasons: tuple[str, ...]) -> str:
    # Reason tuples repeat across events (the same few sanitized codes): joined once each.
    return ",".join(reasons)


# The fields an event is counted by, read in one C call per event.
_DAILY_KEY: Final = operator.attrgetter(
    "time", "channel", "sender_domain", "tracker_domain", "vendor", "vector", "reasons", "action"
)


def _daily_rows(events: Iterable[TrackingEvent]) -> list[tuple[object, ...]]:
    # Counted by the events' own fields first (at C speed; a batch has few distinct keys), then each
    # distinct key is turned into its row once.
    counts: dict[tuple[object, ...], int] = {}
    for (t, channel, sender, tracker, vendor, vector, reasons, action), n in Counter(
        map(_DAILY_KEY, events)
    ).items():
        key = (_day(t), channel, sender, tracker, vendor, vector, _joined(reasons), action)
        counts[key] = counts.get(key, 0) + n
    # Sorted: two PostgreSQL writers upserting the same keys lock them in one order, never
    # deadlocking.
    return [(*key, n) for key, n in sorted(counts.items())]


def _event_rows(events: Iterable[TrackingEvent], detail: LogDetail) -> list[tuple[object, ...]]:
    research = detail is LogDetail.RESEARCH
    return [
        (
            e.time,
            e.channel,
            e.sender_domain,
            e.tracker_domain,
            e.vendor,
            e.vector,
            _joined(e.reasons),
            e.action,
            e.user_hash,
            e.url if research else "",
        )
        for e in events
    ]


class Store(ABC):
    """One tracking database. Methods raise StoreError; a Store is used by one thread at a time."""

    kind: str = ""

    def __init__(self, location: str) -> None:
        self.location = location  # for display: a path, or the URL without its password

    # -- the dialect -----------------------------------------------------------------------------
    @abstractmethod
    def _execute(self, sql: str, params: Sequence[object] = ()) -> int: ...

    @abstractmethod
    def _executemany(self, sql: str, rows: Sequence[Sequence[object]]) -> None: ...

    @abstractmethod
    def _query(self, sql: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]: ...

    @abstractmethod
    def _transaction(self) -> Any: ...

    @abstractmethod
    def close(self) -> None: ...

    @abstractmethod
    def _compact(self) -> None:
        """Give deleted pages back so nothing purged stays in the files."""

    # -- schema ----------------------------------------------------------------------------------
    def schema_version(self) -> int:
        rows = self._query(f"SELECT value FROM {META} WHERE key = 'schema_version'")
        return int(rows[0][0]) if rows else 0

    def _migrate_locked(self, ddl: dict[str, str]) -> None:
        self._execute(f"CREATE TABLE IF NOT EXISTS {META} (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        current = self.schema_version()
        if current > SCHEMA_VERSION:
            raise StoreError(
                f"{self.location}: tracking schema version {current} is newer than this mailproxy "
                f"({SCHEMA_VERSION}); upgrade mailproxy"
            )
        for version in range(current + 1, SCHEMA_VERSION + 1):
            for statement in _MIGRATIONS[version - 1]:
                self._execute(statement.format(**ddl))
            logger.info("tracking store %s: schema migrated to version %d", self.location, version)
        if current != SCHEMA_VERSION:
            self._execute(f"DELETE FROM {META} WHERE key = 'schema_version'")
            self._execute(
                f"INSERT INTO {META} (key, value) VALUES ('schema_version', ?)",
                (str(SCHEMA_VERSION),),
            )

    # -- writing ---------------------------------------------------------------------------------
    def write(self, events: Sequence[TrackingEvent], detail: LogDetail) -> None:
        """Add `events` in one transaction: the daily counts always, event rows above aggregate."""
        if not events:
            return
        daily = _daily_rows(events)
        with self._transaction():
            self._executemany(_UPSERT, daily)
            if detail is not LogDetail.AGGREGATE:
                self._executemany(_INSERT_EVENT, _event_rows(events, detail))

    def add_dropped(self, per_day: dict[str, int]) -> None:
        """Count events the writer lost, per day (YYYY-MM-DD)."""
        if not per_day:
            return
        with self._transaction():
            self._executemany(_ADD_DROPPED, sorted(per_day.items()))

    def import_rows(self, table: str, rows: Sequence[dict[str, object]]) -> int:
        """Add exported rows back (``data export`` output); counts of the same key add up."""
        if not rows:
            return 0
        if table not in _TABLES:
            raise StoreError(f"unknown table {table!r} in import")
        _, columns, sql, _ = _TABLES[table]
        values = [tuple(_clean(r, c, int if c in ("count", "time") else str) for c in columns) for r in rows]
        with self._transaction():
            self._executemany(sql, values)
        return len(values)

    # -- deleting --------------------------------------------------------------------------------
    def purge_before(self, cutoff: int) -> int:
        """Delete event rows older than `cutoff` (epoch seconds) and daily counts of days that
        ended before it. Returns the number of rows deleted."""
        with self._transaction():
            n = self._execute(f"DELETE FROM {EVENTS} WHERE time < ?", (int(cutoff),))
            # A day is purged only once all of it is older than the cutoff.
            n += self._execute(f"DELETE FROM {DAILY} WHERE day < ?", (_day(int(cutoff)),))
            n += self._execute(f"DELETE FROM {DROPPED} WHERE day < ?", (_day(int(cutoff)),))
        if n:
            self._compact()
        return n

    def purge_all(self) -> int:
        with self._transaction():
            n = self._execute(f"DELETE FROM {EVENTS}")
            n += self._execute(f"DELETE FROM {DAILY}")
            n += self._execute(f"DELETE FROM {DROPPED}")
        self._compact()
        return n

    def purge_user(self, user_hash: str) -> int:
        """Delete the event rows of one user (by keyed hash); the number deleted. The daily counts
        hold no user and stay."""
        _check_hash(user_hash)
        with self._transaction():
            n = self._execute(f"DELETE FROM {EVENTS} WHERE user_hash = ?", (user_hash,))
        if n:
            self._compact()
        return n

    # -- reading ---------------------------------------------------------------------------------
    def daily(self, since_day: str | None = None) -> list[tuple[Any, ...]]:
        """Rows of DAILY_COLUMNS, oldest day first."""
        cols = ", ".join(DAILY_COLUMNS)
        if since_day:
            return self._query(f"SELECT {cols} FROM {DAILY} WHERE day >= ? ORDER BY day", (since_day,))
        return self._query(f"SELECT {cols} FROM {DAILY} ORDER BY day")

    def iter_rows(self, table: str, *, user_hash: str | None = None) -> Iterator[dict[str, object]]:
        """Every row of ``daily``, ``events`` or ``dropped``, as column -> value; with `user_hash`,
        only that user's event rows."""
        if table not in _TABLES:
            raise StoreError(f"unknown table {table!r}")
        name, cols, _, order = _TABLES[table]
        where = ""
        params: tuple[str, ...] = ()
        if user_hash is not None:
            _check_hash(user_hash)
            if table != "events":
                raise StoreError(f"table {table!r} has no user")
            where, params = " WHERE user_hash = ?", (user_hash,)
        sql = f"SELECT {', '.join(cols)} FROM {name}{where} ORDER BY {order}"
        for row in self._query(sql, params):
            yield dict(zip(cols, row, strict=True))

    def stats(self) -> dict[str, object]:
        """Row counts and time spans, for the inventory."""
        d = self._query(f"SELECT COUNT(*), COALESCE(SUM(count), 0), MIN(day), MAX(day) FROM {DAILY}")
        e = self._query(
            f"SELECT COUNT(*), MIN(time), MAX(time),"
            f" SUM(CASE WHEN url <> '' THEN 1 ELSE 0 END),"
            f" COUNT(DISTINCT CASE WHEN user_hash <> '' THEN user_hash END) FROM {EVENTS}"
        )
        return {
            "daily_rows": int(d[0][0]),
            "daily_events": int(d[0][1]),
            "daily_first": d[0][2],
            "daily_last": d[0][3],
            "event_rows": int(e[0][0]),
            "event_first": e[0][1],
            "event_last": e[0][2],
            "event_urls": int(e[0][3] or 0),
            "event_users": int(e[0][4] or 0),
            **self._dropped_stats(),
        }

    def _dropped_stats(self) -> dict[str, object]:
        r = self._query(f"SELECT COALESCE(SUM(count), 0), MIN(day), MAX(day) FROM {DROPPED}")
        return {"dropped": int(r[0][0]), "dropped_first": r[0][1], "dropped_last": r[0][2]}

    def user_days(self, user_hash: str) -> list[tuple[str, int, int]]:
        """One user's event rows per UTC day: (day, rows, rows with a URL), oldest first."""
        _check_hash(user_hash)
        # Integer division, not "%": psycopg reads a "%" as the start of a placeholder.
        day = f"time / {DAY} * {DAY}"
        rows = self._query(
            f"SELECT {day}, COUNT(*), SUM(CASE WHEN url <> '' THEN 1 ELSE 0 END) FROM {EVENTS}"
            f" WHERE user_hash = ? GROUP BY {day} ORDER BY {day}",
            (user_hash,),
        )
        return [(_day(int(t)), int(n), int(u or 0)) for t, n, u in rows]


# The tables of exports and imports: name, columns, how a row is added, the order rows are read in.
_TABLES: Final = {
    "daily": (DAILY, DAILY_COLUMNS, _UPSERT, f"day, {', '.join(DIMENSIONS)}"),
    "events": (EVENTS, EVENT_COLUMNS, _INSERT_EVENT, "time, id"),
    "dropped": (DROPPED, DROPPED_COLUMNS, _ADD_DROPPED, "day"),
}


def _check_hash(user_hash: str) -> None:
    # "" marks rows without a user (scan, aggregate): never select or delete those as a user's.
    if not user_hash:
        raise StoreError("no user hash given")


def _clean(row: dict[str, object], column: str, kind: type) -> object:
    value = row.get(column, 0 if kind is int else "")
    try:
        return kind(value)
    except (TypeError, ValueError) as exc:
        raise StoreError(f"import: column {column!r} has an invalid value") from exc


# --- SQLite ------------------------------------------------------------------------------------


class SqliteStore(Store):
    kind = "sqlite"

    def __init__(self, path: Path) -> None:
        super().__init__(str(path))
        self.path = path
        _prepare_private_file(path)
        try:
            # Autocommit mode: transactions are explicit (BEGIN IMMEDIATE), so a migration or a
            # batch is all or nothing and never holds a lock between calls.
            self._conn = sqlite3.connect(path, timeout=10, isolation_level=None, check_same_thread=False)
            self._conn.execute("PRAGMA busy_timeout = 10000")
            self._conn.execute("PRAGMA journal_mode = WAL")
            self._conn.execute("PRAGMA synchronous = NORMAL")
            self._conn.execute("PRAGMA secure_delete = ON")
            with self._transaction():
                self._migrate_locked({"id": "INTEGER PRIMARY KEY", "bigint": "INTEGER"})
        except sqlite3.Error as exc:
            raise StoreError(f"{path}: cannot open the tracking database ({exc})") from exc

    def _execute(self, sql: str, params: Sequence[object] = ()) -> int:
        try:
            return self._conn.execute(sql, tuple(params)).rowcount
        except sqlite3.Error as exc:
            raise StoreError(f"{self.location}: {exc}") from exc

    def _executemany(self, sql: str, rows: Sequence[Sequence[object]]) -> None:
        try:
            self._conn.executemany(sql, rows)
        except sqlite3.Error as exc:
            raise StoreError(f"{self.location}: {exc}") from exc

    def _query(self, sql: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        try:
            return self._conn.execute(sql, tuple(params)).fetchall()
        except sqlite3.Error as exc:
            raise StoreError(f"{self.location}: {exc}") from exc

    def _transaction(self) -> _SqliteTransaction:
        return _SqliteTransaction(self._conn, self.location)

    def _compact(self) -> None:
        try:
            self._conn.execute("VACUUM")
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error as exc:
            logger.warning("tracking store %s: compacting failed (%s)", self.location, exc)

    def close(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self._conn.close()


class _SqliteTransaction:
    def __init__(self, conn: sqlite3.Connection, location: str) -> None:
        self._conn = conn
        self._location = location

    def __enter__(self) -> None:
        try:
            self._conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise StoreError(f"{self._location}: {exc}") from exc

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        try:
            self._conn.execute("COMMIT" if exc_type is None else "ROLLBACK")
        except sqlite3.Error as err:
            if exc_type is None:
                raise StoreError(f"{self._location}: {err}") from err


def _prepare_private_file(path: Path) -> None:
    """Create the folder 0700 (when we create it) and the file 0600; tighten a looser file."""
    try:
        parent = path.parent
        if not parent.exists():
            parent.mkdir(mode=0o700, parents=True)
            os.chmod(parent, 0o700)  # mkdir's mode is filtered by the umask
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        try:
            mode = os.fstat(fd).st_mode & 0o777
            if mode & 0o077:
                os.fchmod(fd, 0o600)
                logger.warning("tracking store %s was readable by others: now 0600", path)
        finally:
            os.close(fd)
    except OSError as exc:
        raise StoreError(f"{path}: cannot create the tracking database ({exc.strerror})") from exc


# --- PostgreSQL --------------------------------------------------------------------------------


class PostgresStore(Store):
    kind = "postgresql"

    def __init__(self, url: str, *, connect_timeout: int = 5) -> None:
        super().__init__(public_location(url))
        try:
            import psycopg
        except ImportError as exc:
            raise StoreError("a postgresql:// store needs the psycopg package") from exc
        self._psycopg = psycopg
        try:
            self._conn = psycopg.connect(url, autocommit=True, connect_timeout=connect_timeout)
            with self._conn.transaction():
                self._conn.execute("SELECT pg_advisory_xact_lock(%s)", (_PG_LOCK_KEY,))
                self._migrate_locked(
                    {"id": "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY", "bigint": "BIGINT"}
                )
        except psycopg.Error as exc:
            raise StoreError(f"{self.location}: {_pg_message(exc)}") from exc

    @staticmethod
    def _sql(sql: str) -> Any:
        # Our statements use "?" placeholders and never a literal "?".
        return sql.replace("?", "%s")

    def _execute(self, sql: str, params: Sequence[object] = ()) -> int:
        try:
            return self._conn.execute(self._sql(sql), tuple(params)).rowcount
        except self._psycopg.Error as exc:
            raise StoreError(f"{self.location}: {_pg_message(exc)}") from exc

    def _executemany(self, sql: str, rows: Sequence[Sequence[object]]) -> None:
        try:
            with self._conn.cursor() as cur:
                cur.executemany(self._sql(sql), rows)
        except self._psycopg.Error as exc:
            raise StoreError(f"{self.location}: {_pg_message(exc)}") from exc

    def _query(self, sql: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        try:
            return self._conn.execute(self._sql(sql), tuple(params)).fetchall()
        except self._psycopg.Error as exc:
            raise StoreError(f"{self.location}: {_pg_message(exc)}") from exc

    def _transaction(self) -> Any:
        return _PgTransaction(self)

    def close(self) -> None:
        with contextlib.suppress(self._psycopg.Error):
            self._conn.close()

    def _compact(self) -> None:
        # PostgreSQL reclaims deleted rows itself (autovacuum); VACUUM needs table ownership.
        return


class _PgTransaction:
    def __init__(self, store: PostgresStore) -> None:
        self._store = store
        self._tx: Any = None

    def __enter__(self) -> None:
        try:
            self._tx = self._store._conn.transaction()
            self._tx.__enter__()
        except self._store._psycopg.Error as exc:
            raise StoreError(f"{self._store.location}: {_pg_message(exc)}") from exc

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        try:
            self._tx.__exit__(exc_type, exc, tb)
        except self._store._psycopg.Error as err:
            if exc_type is None:
                raise StoreError(f"{self._store.location}: {_pg_message(err)}") from err


def _pg_message(exc: Exception) -> str:
    # The first line only: psycopg messages can quote the connection string's host but never the
    # password; later lines are hints.
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def public_location(location: Path | str) -> str:
    """The store location for messages and the inventory: a URL loses its password."""
    if isinstance(location, Path):
        return str(location)
    try:
        parts = urlsplit(location)
        if parts.password is None:
            return location
        netloc = parts.hostname or ""
        if parts.username:
            netloc = f"{parts.username}:***@{netloc}"
        if parts.port:
            netloc += f":{parts.port}"
        return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    except ValueError:
        return "<malformed URL>"


def open_store(location: Path | str) -> Store:
    """The store at a path (SQLite) or a postgresql:// URL. Raises StoreError."""
    if isinstance(location, str) and location.split("://", 1)[0].lower() in (
        "postgresql",
        "postgres",
    ):
        return PostgresStore(location)
    return SqliteStore(Path(location))


# --- the key for user hashes -------------------------------------------------------------------


def key_path_for(location: Path | str) -> Path:
    """Where the secret for user hashes lives: next to an SQLite store; for PostgreSQL in the
    local data folder (copy it to every proxy sharing the database so their hashes agree)."""
    if isinstance(location, str) and "://" in location:
        return default_store_path().parent / "tracking-postgresql.key"
    path = Path(location)
    return path.with_name(path.name + ".key")


def load_or_create_key(path: Path) -> bytes:
    """The 32-byte secret at `path`, created 0600 (folder 0700) on first use. Raises StoreError."""
    for _ in range(50):
        try:
            with open(path, "rb") as fh:
                key = fh.read()
            if len(key) >= 32:
                return key
            if key:
                raise StoreError(f"{path}: the tracking key file is truncated; delete it")
            time.sleep(0.01)  # another process is between creating and writing it
            continue
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise StoreError(f"{path}: cannot read the tracking key ({exc.strerror})") from exc
        try:
            if not path.parent.exists():
                path.parent.mkdir(mode=0o700, parents=True)
                os.chmod(path.parent, 0o700)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        except FileExistsError:
            continue
        except OSError as exc:
            raise StoreError(f"{path}: cannot create the tracking key ({exc.strerror})") from exc
        key = secrets.token_bytes(32)
        with os.fdopen(fd, "wb") as fh:
            fh.write(key)
        return key
    raise StoreError(f"{path}: the tracking key file stays empty; delete it")


def read_key(path: Path) -> bytes | None:
    """The secret at `path` without ever creating it: None when there is none. Raises StoreError."""
    try:
        key = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StoreError(f"{path}: cannot read the tracking key ({exc.strerror})") from exc
    if len(key) < 32:
        raise StoreError(f"{path}: the tracking key file is truncated; delete it")
    return key


def cutoff_for(retention_days: int, now: float | None = None) -> int:
    """The epoch second before which rows are older than the retention period."""
    t = time.time() if now is None else now
    return int(t) - int(retention_days) * DAY
