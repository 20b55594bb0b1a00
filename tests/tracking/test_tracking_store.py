"""The tracking log end to end on SQLite: what each detail level stores (read back raw), file
safety, migrations, retention, export / import, purge, and store outages."""

from __future__ import annotations

import base64
import json
import sqlite3
import stat
import threading
import time
from datetime import date
from io import StringIO
from pathlib import Path
from typing import Any, cast

import pytest
from mitmproxy import http
from mitmproxy.test import tflow
from tracking_support import (
    READER,
    READER_MD5,
    SENDER_DOMAIN,
    all_cells,
    raw_bytes,
    sample_findings,
    store_while_down,
)

from mailproxy.config import Config, LogConfig, LogDetail
from mailproxy.engine import Engine
from mailproxy.http.addon import ProxyState, TrackerBlock
from mailproxy.model import Action, Finding, Tier, Vector, Verdict
from mailproxy.tracking.events import TrackingEvent, UserHasher, acted_on
from mailproxy.tracking.inventory import export_jsonl, import_jsonl, inventory, purge
from mailproxy.tracking.retention import purge_expired
from mailproxy.tracking.store import (
    SCHEMA_VERSION,
    SqliteStore,
    Store,
    StoreError,
    key_path_for,
    load_or_create_key,
    open_store,
)
from mailproxy.tracking.writer import EventSink, sink_for

READER_B64 = base64.b64encode(READER.encode()).decode()
HTTP_EVENT = {
    "time": time.time(),
    "action": "blocked",
    "stage": "request",
    "host": "ambercycles.us9.list-manage.com",
    "vendor": "Mailchimp",
    "reasons": ["known-tracker"],
    "verdict": "tracker",
    "tier": "high",
    "domain": "list-manage.com",
    "image": True,
    "user": READER,
    "removed_params": [],
}


def acted_count() -> int:
    return sum(1 for fs in sample_findings() for f in fs if acted_on(f))


def fill(db: Path, detail: LogDetail) -> EventSink:
    sink = EventSink(lambda: open_store(db), detail=detail, key_path=key_path_for(db))
    for findings in sample_findings():
        sink.record_findings(findings, channel="imap", sender_domain=SENDER_DOMAIN, user=READER)
    sink.record_http({**HTTP_EVENT, "time": time.time()})  # now, not when this module was imported
    assert sink.flush(20)
    sink.close()
    assert sink.dropped == 0
    return sink


def text_cells(db: Path) -> list[str]:
    return [c for c in all_cells(db) if isinstance(c, str)]


def test_samples_have_identity_leaks() -> None:
    # The premise of the redaction tests: the samples carry the reader's address, hashed and plain.
    urls = " ".join(f.url for fs in sample_findings() for f in fs)
    assert READER_MD5 in urls and READER in urls
    assert acted_count() > 20


def test_aggregate_stores_counts_only(tmp_path: Path) -> None:
    db = tmp_path / "store" / "t.sqlite3"
    fill(db, LogDetail.AGGREGATE)
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT COUNT(*) FROM tracking_events").fetchone() == (0,)
    total = conn.execute("SELECT SUM(count) FROM tracking_daily").fetchone()[0]
    assert total == acted_count() + 1
    days = {r[0] for r in conn.execute("SELECT day FROM tracking_daily")}
    assert days == {time.strftime("%Y-%m-%d", time.gmtime())}
    conn.close()
    for cell in text_cells(db):
        assert "@" not in cell and "://" not in cell and "/" not in cell, cell
        assert READER_MD5 not in cell and "reader" not in cell
    # Nothing in the files either (a deleted or temporary page would show here).
    data = raw_bytes(db)
    assert READER.encode() not in data and READER_MD5.encode() not in data
    assert b"https://" not in data
    # Aggregate needs no user hash, so not even the key is created.
    assert not key_path_for(db).exists()


def test_events_level_rounds_time_and_hashes_user(tmp_path: Path) -> None:
    db = tmp_path / "t.sqlite3"
    before = int(time.time())
    fill(db, LogDetail.EVENTS)
    after = int(time.time())
    conn = sqlite3.connect(db)
    rows = conn.execute("SELECT time, user_hash, url, channel FROM tracking_events").fetchall()
    conn.close()
    assert len(rows) == acted_count() + 1
    expected_hash = UserHasher(load_or_create_key(key_path_for(db)))(READER)
    for t, user_hash, url, _ in rows:
        # Rounded down to 10 minutes (a boundary may pass while filling).
        assert t % 600 == 0 and before - 600 < t <= after
        assert url == ""
        assert user_hash == expected_hash and len(user_hash) == 32
    assert {r[3] for r in rows} == {"imap", "http"}
    for cell in text_cells(db):
        assert "@" not in cell and "http:" not in cell and "https:" not in cell
        assert READER_MD5 not in cell


def test_research_level_keeps_redacted_urls(tmp_path: Path) -> None:
    db = tmp_path / "t.sqlite3"
    fill(db, LogDetail.RESEARCH)
    conn = sqlite3.connect(db)
    urls = [r[0] for r in conn.execute("SELECT url FROM tracking_events WHERE channel = 'imap'")]
    reasons = {r[0] for r in conn.execute("SELECT reasons FROM tracking_daily")}
    conn.close()
    assert len(urls) == acted_count() and all(urls)
    joined = "\n".join(urls)
    for leak in (READER, READER_MD5, READER_B64, "reader%40example.com", "cmVhZGVy"):
        assert leak not in joined
    assert "<md5:recipient>" in joined and "<base64:recipient>" in joined
    assert "list-manage.com/track/open.php?u=<token>" in joined
    # Reasons name the identity encoding, also where the classifier only named the parameter.
    flat = ",".join(reasons)
    assert "recipient-identity:md5-in-query" in flat
    assert "recipient-identity:base64-in-path" in flat
    assert "recipient-identity:urlencoded-in-query" in flat
    for cell in text_cells(db):
        assert READER not in cell and READER_MD5 not in cell


def test_files_are_private_and_wal(tmp_path: Path) -> None:
    db = tmp_path / "new" / "t.sqlite3"
    fill(db, LogDetail.EVENTS)
    assert stat.S_IMODE(db.parent.stat().st_mode) == 0o700
    for path in (db, key_path_for(db), *db.parent.glob("*-wal")):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()


def test_loose_existing_file_is_tightened(tmp_path: Path) -> None:
    db = tmp_path / "t.sqlite3"
    db.touch(mode=0o644)
    db.chmod(0o644)
    SqliteStore(db).close()
    assert stat.S_IMODE(db.stat().st_mode) == 0o600


# The schema of version 1, as a mailproxy of that version created it.
V1_DDL = (
    "CREATE TABLE tracking_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE tracking_daily (day TEXT NOT NULL, channel TEXT NOT NULL,"
    " sender_domain TEXT NOT NULL, tracker_domain TEXT NOT NULL, vendor TEXT NOT NULL,"
    " vector TEXT NOT NULL, reasons TEXT NOT NULL, action TEXT NOT NULL, count INTEGER NOT NULL,"
    " PRIMARY KEY (day, channel, sender_domain, tracker_domain, vendor, vector, reasons, action))",
    "CREATE TABLE tracking_events (id INTEGER PRIMARY KEY, time INTEGER NOT NULL,"
    " channel TEXT NOT NULL, sender_domain TEXT NOT NULL, tracker_domain TEXT NOT NULL,"
    " vendor TEXT NOT NULL, vector TEXT NOT NULL, reasons TEXT NOT NULL, action TEXT NOT NULL,"
    " user_hash TEXT NOT NULL)",
    "INSERT INTO tracking_meta VALUES ('schema_version', '1')",
    "INSERT INTO tracking_daily VALUES ('2030-01-02', 'imap', 's.example', 't.example', 'V',"
    " 'img', 'known-tracker', 'strip', 7)",
    "INSERT INTO tracking_events (time, channel, sender_domain, tracker_domain, vendor, vector,"
    " reasons, action, user_hash) VALUES (1893542400, 'imap', 's.example', 't.example', 'V',"
    " 'img', 'known-tracker', 'strip', 'abc')",
)


def event(t: int, *, url: str = "", domain: str = "t.example") -> TrackingEvent:
    return TrackingEvent(
        time=t,
        channel="imap",
        sender_domain="s.example",
        tracker_domain=domain,
        vendor="V",
        vector="img",
        reasons=("known-tracker",),
        action="strip",
        user_hash="h" * 32,
        url=url,
    )


def test_migration_from_version_1(tmp_path: Path) -> None:
    db = tmp_path / "old.sqlite3"
    conn = sqlite3.connect(db)
    for statement in V1_DDL:
        conn.execute(statement)
    conn.commit()
    conn.close()
    store = open_store(db)
    assert store.schema_version() == SCHEMA_VERSION == 3
    daily = list(store.iter_rows("daily"))
    assert daily == [
        {
            "day": "2030-01-02",
            "channel": "imap",
            "sender_domain": "s.example",
            "tracker_domain": "t.example",
            "vendor": "V",
            "vector": "img",
            "reasons": "known-tracker",
            "action": "strip",
            "count": 7,
        }
    ]
    old = list(store.iter_rows("events"))
    assert len(old) == 1 and old[0]["url"] == "" and old[0]["user_hash"] == "abc"
    store.write([event(1893542400 + 600, url="https://t.example/<token>")], LogDetail.RESEARCH)
    assert [r["url"] for r in store.iter_rows("events")] == ["", "https://t.example/<token>"]
    # Same key as the old row: the counts add up (7 + 1 + 1).
    store.write([event(1893542400 + 1200)], LogDetail.AGGREGATE)
    assert next(store.iter_rows("daily"))["count"] == 9
    assert list(store.iter_rows("dropped")) == []
    store.close()
    # Opening again migrates nothing and keeps everything.
    again = open_store(db)
    assert again.schema_version() == 3 and again.stats()["event_rows"] == 2
    again.close()


def test_migration_from_version_2(tmp_path: Path) -> None:
    db = tmp_path / "old.sqlite3"
    conn = sqlite3.connect(db)
    for statement in V1_DDL:
        conn.execute(statement)
    conn.execute("ALTER TABLE tracking_events ADD COLUMN url TEXT NOT NULL DEFAULT ''")
    conn.execute("CREATE INDEX tracking_events_time ON tracking_events (time)")
    conn.execute("UPDATE tracking_meta SET value = '2' WHERE key = 'schema_version'")
    conn.commit()
    conn.close()
    store = open_store(db)
    assert store.schema_version() == 3
    assert store.stats()["dropped"] == 0 and store.stats()["event_rows"] == 1
    store.add_dropped({"2030-01-02": 4})
    store.add_dropped({"2030-01-02": 1, "2030-01-03": 2})
    assert list(store.iter_rows("dropped")) == [
        {"day": "2030-01-02", "count": 5},
        {"day": "2030-01-03", "count": 2},
    ]
    assert next(store.iter_rows("daily"))["count"] == 7
    store.close()


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "t.sqlite3"
    open_store(db).close()
    conn = sqlite3.connect(db)
    conn.execute("UPDATE tracking_meta SET value = '99' WHERE key = 'schema_version'")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match="newer"):
        open_store(db)


def test_not_a_database_is_a_clear_error(tmp_path: Path) -> None:
    db = tmp_path / "t.sqlite3"
    db.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match="t.sqlite3"):
        open_store(db)
    with pytest.raises(StoreError, match="cannot create"):
        open_store(db / "below-a-file.sqlite3")


def test_retention_purge(tmp_path: Path) -> None:
    now = 2_000_000_000
    store = open_store(tmp_path / "t.sqlite3")
    old, edge, recent = now - 40 * 86400, now - 30 * 86400 - 60, now - 86400
    store.write([event(old), event(edge), event(recent)], LogDetail.EVENTS)
    assert store.stats()["event_rows"] == 3
    deleted = purge_expired(store, 30, now=now)
    rows = list(store.iter_rows("events"))
    assert [r["time"] for r in rows] == [recent]
    days = sorted(str(r["day"]) for r in store.iter_rows("daily"))
    # The old day is gone; the day of the cut-off and later stay (at most one day longer).
    assert time.strftime("%Y-%m-%d", time.gmtime(old)) not in days
    assert time.strftime("%Y-%m-%d", time.gmtime(recent)) in days
    assert deleted >= 3
    assert purge_expired(store, 30, now=now) == 0
    store.close()


def test_sink_purges_expired_rows_on_start(tmp_path: Path) -> None:
    db = tmp_path / "t.sqlite3"
    store = open_store(db)
    store.write([event(int(time.time()) - 100 * 86400)], LogDetail.EVENTS)
    store.close()
    sink = EventSink(lambda: open_store(db), detail=LogDetail.EVENTS, retention_days=30)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if sqlite3.connect(db).execute("SELECT COUNT(*) FROM tracking_events").fetchone()[0] == 0:
            break
        time.sleep(0.05)
    sink.close()
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT COUNT(*) FROM tracking_events").fetchone()[0] == 0
    assert conn.execute("SELECT COUNT(*) FROM tracking_daily").fetchone()[0] == 0


def test_export_round_trips(tmp_path: Path) -> None:
    db = tmp_path / "a.sqlite3"
    fill(db, LogDetail.RESEARCH)
    first = StringIO()
    store = open_store(db)
    n = export_jsonl(store, first)
    stats = store.stats()
    store.close()
    lines = first.getvalue().splitlines()
    assert n == len(lines) - 1 == int(str(stats["daily_rows"])) + int(str(stats["event_rows"]))
    assert json.loads(lines[0])["schema_version"] == SCHEMA_VERSION
    assert {json.loads(line)["table"] for line in lines[1:]} == {"daily", "events"}
    copy = open_store(tmp_path / "b.sqlite3")
    assert import_jsonl(copy, lines) == n
    second = StringIO()
    export_jsonl(copy, second)
    copy.close()
    assert second.getvalue() == first.getvalue()


def test_import_rejects_garbage(tmp_path: Path) -> None:
    store = open_store(tmp_path / "t.sqlite3")
    with pytest.raises(StoreError, match="line 1"):
        import_jsonl(store, ["not json"])
    with pytest.raises(StoreError, match="unknown table"):
        import_jsonl(store, ['{"table": "users"}'])
    with pytest.raises(StoreError, match="count"):
        import_jsonl(store, ['{"table": "daily", "day": "2030-01-01", "count": "many"}'])
    assert store.stats()["daily_rows"] == 0
    store.close()


def test_purge_all_leaves_nothing(tmp_path: Path) -> None:
    db = tmp_path / "t.sqlite3"
    fill(db, LogDetail.RESEARCH)
    key = key_path_for(db)
    assert key.exists()
    store = open_store(db)
    user_hash = str(next(store.iter_rows("events"))["user_hash"])
    assert purge(store, everything=True, key_path=key) > 0
    store.close()
    assert not key.exists()
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT COUNT(*) FROM tracking_daily").fetchone()[0] == 0
    assert conn.execute("SELECT COUNT(*) FROM tracking_events").fetchone()[0] == 0
    conn.close()
    # Not even in free pages or the WAL: secure_delete, VACUUM and a truncating checkpoint.
    data = raw_bytes(db)
    for gone in (b"list-manage.com", b"<md5:recipient>", user_hash.encode(), b"Mailchimp"):
        assert gone not in data


def test_purge_before_a_date(tmp_path: Path) -> None:
    store = open_store(tmp_path / "t.sqlite3")
    jan, mar = 1_893_456_000, 1_898_553_600  # 2030-01-01, 2030-03-01 UTC
    store.write([event(jan), event(mar)], LogDetail.EVENTS)
    purge(store, before=date(2030, 2, 1), key_path=None)
    assert [r["time"] for r in store.iter_rows("events")] == [mar]
    assert [r["day"] for r in store.iter_rows("daily")] == ["2030-03-01"]
    with pytest.raises(StoreError):
        purge(store, key_path=None)
    store.close()


def test_inventory_reports_what_is_there(tmp_path: Path) -> None:
    db = tmp_path / "t.sqlite3"
    fill(db, LogDetail.RESEARCH)
    store = open_store(db)
    rows = inventory(store, detail=LogDetail.RESEARCH, retention_days=30, key_path=key_path_for(db))
    store.close()
    text = "\n".join(f"{r.what}|{r.where}|{r.how_much}|{r.how_long}|{r.why}" for r in rows)
    assert f"{acted_count() + 1} rows, 1 distinct user hashes" in text
    assert f"{acted_count()} URLs" in text
    assert "32 random bytes" in text and "30 days" in text


# --- outages -------------------------------------------------------------------------------------


def down() -> Store:
    raise StoreError("connection refused")


def test_store_down_drops_and_never_blocks() -> None:
    sink = EventSink(down, detail=LogDetail.EVENTS, retry_interval=0.05, flush_interval=0.01)
    findings = sample_findings()[3]
    per_message = sum(1 for f in findings if acted_on(f))
    start = time.perf_counter()
    for _ in range(2000):
        sink.record_findings(findings, channel="imap", sender_domain=None, user=None)
    elapsed = time.perf_counter() - start
    assert elapsed < 2.0  # 2000 messages: a put each, no waiting on the store
    assert sink.flush(20)
    assert sink.written == 0 and sink.dropped == 2000 * per_message
    sink.close()


def test_store_comes_back(tmp_path: Path) -> None:
    db = tmp_path / "t.sqlite3"
    factory, available = store_while_down(db)

    sink = EventSink(factory, retry_interval=0.05, flush_interval=0.01)
    sink.record([event(int(time.time()))])
    assert sink.flush(10) and sink.dropped == 1
    available.set()
    time.sleep(0.1)
    sink.record([event(int(time.time()))])
    assert sink.flush(10)
    sink.close()
    assert sink.written == 1 and sink.dropped == 1


def test_write_failure_mid_run_is_counted(tmp_path: Path) -> None:
    db = tmp_path / "t.sqlite3"
    opened: list[Store] = []

    def factory() -> Store:
        store = open_store(db)
        opened.append(store)
        return store

    sink = EventSink(factory, retry_interval=0.05, flush_interval=0.01)
    sink.record([event(int(time.time()))])
    assert sink.flush(10) and sink.written == 1
    db.chmod(0o400)  # read-only: the next write fails
    original = opened[0].write

    def failing(*a: object, **k: object) -> None:
        raise StoreError("disk I/O error")

    opened[0].write = failing  # type: ignore[method-assign]
    sink.record([event(int(time.time())), event(int(time.time()))])
    assert sink.flush(10) and sink.dropped == 2
    db.chmod(0o600)
    time.sleep(0.1)
    sink.record([event(int(time.time()))])
    assert sink.flush(10)
    sink.close()
    assert sink.written == 2 and len(opened) == 2 and original is not None


def test_full_queue_drops_instead_of_waiting() -> None:
    release = threading.Event()

    def hanging() -> Store:
        release.wait(10)  # a store whose connect hangs
        raise StoreError("timeout")

    sink = EventSink(hanging, max_queue=5, batch_size=1, flush_interval=0.01)
    start = time.perf_counter()
    for _ in range(200):
        sink.record([event(0)])
    assert time.perf_counter() - start < 0.5
    assert sink.dropped >= 190
    release.set()
    sink.close()
    assert sink.dropped == 200


def test_flush_waits_for_the_writer_and_gives_up_at_its_timeout(tmp_path: Path) -> None:
    release = threading.Event()
    db = tmp_path / "t.sqlite3"

    def slow() -> Store:
        release.wait(10)  # a store that takes its time to open
        return open_store(db)

    sink = EventSink(slow, detail=LogDetail.EVENTS, flush_interval=0.01)
    sink.record([event(0)])
    assert not sink.flush(0.2)  # the writer is still waiting for its store
    release.set()
    assert sink.flush(10)
    # Done means written: the flush returned once the batch was in the store, not before.
    assert sink.written == 1 and sink.dropped == 0
    sink.close()


def test_bad_input_is_ignored(tmp_path: Path) -> None:
    db = tmp_path / "t.sqlite3"
    sink = EventSink(lambda: open_store(db), detail=LogDetail.RESEARCH, key_path=key_path_for(db))
    bad_finding = Finding(
        url="http://[::1",
        vector=Vector.IMG,
        verdict=Verdict.TRACKER,
        action=Action.STRIP,
        tier=Tier.LOW,
        reasons=("hidden:tiny:1x1", "high-entropy:alice@example.org", ""),
        tracker_domain="ALICE@EVIL.example",
    )
    garbage: Any = [1, "x", None, bad_finding]
    sink.record_findings(cast(Any, None), channel="imap", sender_domain=None, user=None)
    sink.record_findings(garbage, channel="imap", sender_domain=cast(Any, 7), user=cast(Any, 3))
    sink.record_http(cast(Any, "blocked"))
    sink.record_http({"action": "refused", "host": "192.168.1.1", "reasons": ["private-address"]})
    sink.record_http({"action": "blocked", "time": "soon", "reasons": "x", "host": None})
    assert sink.flush(10)
    sink.close()
    rows = list(open_store(db).iter_rows("events"))
    assert len(rows) == 2
    assert rows[0]["url"] in ("<unparsable>", "")
    for row in rows:
        for value in row.values():
            assert "alice" not in str(value).lower()


def test_proxy_keeps_serving_while_the_store_is_down(tmp_path: Path) -> None:
    # The store is a path below a regular file: it can never be created.
    blocker = tmp_path / "file"
    blocker.write_text("x")
    config = Config(log=LogConfig(detail=LogDetail.EVENTS, store_path=blocker / "t.sqlite3"))
    sink = sink_for(config)
    assert sink is not None
    # IMAP side: rewriting is unaffected.
    engine = Engine()
    raw = sorted((Path(__file__).parents[2] / "mailproxy" / "samples").glob("04-*.eml"))[0]
    expected = engine.rewrite(raw.read_bytes()).data
    for _ in range(3):
        result = engine.rewrite(raw.read_bytes())
        sink.record_findings(result.findings, channel="imap", sender_domain=None, user=READER)
        assert result.data == expected
    # HTTP side: the addon still answers the tracker itself, with the sink as its event hook.
    state = ProxyState(config, on_event=sink.record_http)
    flow = tflow.tflow()
    flow.request = http.Request.make(
        "GET", "https://ambercycles.us9.list-manage.com/track/open.php?u=1&id=2&e=3"
    )
    TrackerBlock(state).requestheaders(flow)
    assert flow.response is not None and flow.response.status_code in (200, 204)
    assert sink.flush(10)
    sink.close()
    assert sink.written == 0 and sink.dropped > 3


def test_sink_for_writes_http_events_from_the_addon(tmp_path: Path) -> None:
    db = tmp_path / "t.sqlite3"
    config = Config(log=LogConfig(detail=LogDetail.EVENTS, store_path=db))
    sink = sink_for(config)
    assert sink is not None
    state = ProxyState(config, on_event=sink.record_http)
    flow = tflow.tflow()
    flow.request = http.Request.make(
        "GET", "https://ambercycles.us9.list-manage.com/track/open.php?u=1&id=2&e=3"
    )
    TrackerBlock(state).requestheaders(flow)
    sink.close()
    rows = list(open_store(db).iter_rows("events"))
    assert len(rows) == 1
    assert rows[0]["channel"] == "http" and rows[0]["tracker_domain"] == "list-manage.com"
    assert rows[0]["vendor"] == "Mailchimp" and rows[0]["action"] == "block"
