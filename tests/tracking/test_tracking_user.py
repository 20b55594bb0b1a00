"""One user's data: `mailproxy data show|export|purge --user ADDR` on real SQLite stores, checked
against the raw database, and the dropped-event counts `data show` reports."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Final

import pytest
from tracking_support import READER, SENDER_DOMAIN, raw_bytes, run_cli, sample_findings, store_while_down

from mailproxy.config import LogDetail
from mailproxy.errors import MailproxyError
from mailproxy.tracking.events import UserHasher
from mailproxy.tracking.inventory import export_jsonl, import_jsonl
from mailproxy.tracking.store import SCHEMA_VERSION, Store, StoreError, key_path_for, open_store
from mailproxy.tracking.writer import EventSink

REPO: Final = Path(__file__).resolve().parents[2]
OTHER: Final = "other@example.org"
# As the IMAP filter hands it over: the login as the client typed it (the HTTP proxy lower-cases).
READER_AS_TYPED: Final = " Reader@Example.COM"


def fill(db: Path, detail: LogDetail) -> None:
    """The samples read by two users over IMAP, one of them also through the HTTP proxy, plus a
    scan (no user)."""
    sink = EventSink(lambda: open_store(db), detail=detail, key_path=key_path_for(db))
    for n, findings in enumerate(sample_findings()):
        user = READER_AS_TYPED if n % 2 else OTHER
        sink.record_findings(findings, channel="imap", sender_domain=SENDER_DOMAIN, user=user)
        sink.record_findings(findings, channel="scan", sender_domain=SENDER_DOMAIN, user=None)
    sink.record_http({"action": "blocked", "host": "t.example", "reasons": ["known-tracker"], "user": READER})
    sink.close()
    assert sink.dropped == 0


def config_for(tmp_path: Path, db: Path, detail: LogDetail) -> str:
    config = tmp_path / "c.toml"
    config.write_text(f'[log]\nstore = "{db}"\ndetail = "{detail}"\nretention_days = 9\n')
    return str(config)


def events(db: Path) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute("SELECT * FROM tracking_events ORDER BY id").fetchall()
    finally:
        conn.close()


def daily(db: Path) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute("SELECT * FROM tracking_daily ORDER BY day, reasons, vector").fetchall()
    finally:
        conn.close()


def hash_of(db: Path, user: str) -> str:
    return UserHasher(key_path_for(db).read_bytes())(user)


@pytest.mark.parametrize("detail", [LogDetail.EVENTS, LogDetail.RESEARCH])
def test_show_export_purge_one_user(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], detail: LogDetail
) -> None:
    db = tmp_path / "t.sqlite3"
    fill(db, detail)
    config = config_for(tmp_path, db, detail)
    reader, other = hash_of(db, READER), hash_of(db, OTHER)
    before = events(db)
    mine = [r for r in before if r[9] == reader]
    assert mine and any(r[9] == other for r in before) and any(r[9] == "" for r in before)
    assert {r[2] for r in mine} == {"imap", "http"}  # IMAP login as typed and HTTP name: one user

    # show: the counts, the day, the retention; never the hash. Case and spaces do not matter.
    assert run_cli(["data", "show", "-c", config, "--user", READER]) == 0
    shown = capsys.readouterr().out
    today = time.strftime("%Y-%m-%d", time.gmtime(int(str(mine[0][1]))))
    urls = sum(1 for r in mine if r[10])  # the HTTP side never has a URL
    assert (urls > 0) is (detail is LogDetail.RESEARCH)
    assert f"{len(mine)} rows, {urls} with a redacted URL" in shown
    assert f"{today}: {len(mine)}" in shown and "9 days" in shown and "tracking_daily" in shown
    assert reader not in shown and other not in shown
    assert run_cli(["data", "show", "-c", config, "--user", "READER@example.com  "]) == 0
    assert capsys.readouterr().out == shown

    # export: a header naming the scope and level, then exactly this user's rows, hash left out.
    out = tmp_path / "me.jsonl"
    assert run_cli(["data", "export", "-c", config, "--user", READER, "-o", str(out)]) == 0
    assert capsys.readouterr().err.strip() == f"{len(mine)} rows of this user exported"
    text = out.read_text()
    header, *rows = [json.loads(line) for line in text.splitlines()]
    assert header["scope"] == "one user" and header["detail"] == str(detail)
    assert header["schema_version"] == SCHEMA_VERSION
    columns = ("time", "channel", "sender_domain", "tracker_domain", "vendor", "vector", "reasons")
    assert [tuple(r[c] for c in (*columns, "action", "url")) for r in rows] == [
        (*r[1:9], r[10]) for r in mine
    ]
    assert {r["table"] for r in rows} == {"events"} and {r["user_hash"] for r in rows} == {""}
    assert reader not in text and READER not in text
    # The same format as the whole export: it imports.
    copy = open_store(tmp_path / "copy.sqlite3")
    assert import_jsonl(copy, text.splitlines()) == len(mine)
    copy.close()

    # purge: only this user's rows go; everyone else's, the rows without a user and the daily
    # counts stay as they were.
    counts = daily(db)
    assert run_cli(["data", "purge", "-c", config, "--user", READER]) == 0
    said = capsys.readouterr().out
    assert f"{len(mine)} rows deleted" in said and "daily counts" in said and reader not in said
    assert events(db) == [r for r in before if r[9] != reader]
    assert daily(db) == counts
    assert key_path_for(db).exists()  # the other users' hashes still need it
    assert reader.encode() not in raw_bytes(db) and other.encode() in raw_bytes(db)

    assert run_cli(["data", "show", "-c", config, "--user", READER]) == 0
    assert "No rows of this user are stored" in capsys.readouterr().out
    assert run_cli(["data", "purge", "-c", config, "--user", READER]) == 0
    assert "0 rows deleted" in capsys.readouterr().out


def test_unknown_user_has_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "t.sqlite3"
    fill(db, LogDetail.EVENTS)
    config = config_for(tmp_path, db, LogDetail.EVENTS)
    before, counts = events(db), daily(db)
    assert run_cli(["data", "show", "-c", config, "--user", "nobody@example.net"]) == 0
    assert "No rows of this user are stored" in capsys.readouterr().out
    out = tmp_path / "x.jsonl"
    assert run_cli(["data", "export", "-c", config, "--user", "nobody@example.net", "-o", str(out)]) == 0
    assert [json.loads(line)["scope"] for line in out.read_text().splitlines()] == ["one user"]
    assert run_cli(["data", "purge", "-c", config, "--user", "nobody@example.net"]) == 0
    assert "0 rows deleted" in capsys.readouterr().out
    assert events(db) == before and daily(db) == counts


def test_aggregate_holds_nothing_per_user(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "t.sqlite3"
    fill(db, LogDetail.AGGREGATE)
    config = config_for(tmp_path, db, LogDetail.AGGREGATE)
    counts = daily(db)
    assert counts and events(db) == []
    for action in ("show", "purge"):
        assert run_cli(["data", action, "-c", config, "--user", READER]) == 0
        said = capsys.readouterr().out
        assert 'detail "aggregate"' in said and "only daily counts" in said, said
    assert run_cli(["data", "export", "-c", config, "--user", READER]) == 0
    got = capsys.readouterr()
    assert [json.loads(line)["detail"] for line in got.out.splitlines()] == ["aggregate"]
    assert "only daily counts" in got.err
    assert daily(db) == counts
    assert not key_path_for(db).exists()  # looking a user up never creates the key


def test_rows_from_an_earlier_level_are_found_at_aggregate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "t.sqlite3"
    fill(db, LogDetail.EVENTS)
    config = config_for(tmp_path, db, LogDetail.AGGREGATE)  # switched down since
    n = sum(1 for r in events(db) if r[9] == hash_of(db, READER))
    assert run_cli(["data", "show", "-c", config, "--user", READER]) == 0
    shown = capsys.readouterr().out
    assert f"{n} rows" in shown and "from before" in shown
    assert run_cli(["data", "purge", "-c", config, "--user", READER]) == 0
    assert f"{n} rows deleted" in capsys.readouterr().out


def test_without_the_key_nothing_is_per_user(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "t.sqlite3"
    # Written at aggregate, the configuration now says events, the proxy has not run since.
    fill(db, LogDetail.AGGREGATE)
    config = config_for(tmp_path, db, LogDetail.EVENTS)
    assert run_cli(["data", "show", "-c", config, "--user", READER]) == 0
    assert "does not exist yet" in capsys.readouterr().out
    # Hashed rows but no key (deleted by hand, or a PostgreSQL store written by another machine):
    # they cannot be matched, and saying "nothing stored" would be false.
    fill(db, LogDetail.EVENTS)
    key_path_for(db).unlink()
    before = events(db)
    for action in ("show", "export", "purge"):
        with pytest.raises(MailproxyError, match="key .* is missing"):
            run_cli(["data", action, "-c", config, "--user", READER])
    assert events(db) == before


def test_no_store_yet(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "none" / "t.sqlite3"
    config = config_for(tmp_path, db, LogDetail.EVENTS)
    for action in ("show", "purge"):
        assert run_cli(["data", action, "-c", config, "--user", READER]) == 0
        assert "Nothing stored" in capsys.readouterr().out
    assert run_cli(["data", "export", "-c", config, "--user", READER]) == 0
    got = capsys.readouterr()
    assert json.loads(got.out)["scope"] == "one user" and "Nothing stored" in got.err
    assert not db.parent.exists()


@pytest.mark.parametrize(
    "argv",
    [
        ["data", "show", "--user", ""],
        ["data", "export", "--user", "  "],
        ["data", "purge", "--user", ""],
        ["data", "purge", "--user", READER, "--all"],
        ["data", "purge", "--user", READER, "--before", "2030-01-01"],
        ["data", "purge", "--user"],
    ],
)
def test_bad_user_arguments(tmp_path: Path, argv: list[str]) -> None:
    db = tmp_path / "t.sqlite3"
    fill(db, LogDetail.EVENTS)
    before = events(db)
    config = config_for(tmp_path, db, LogDetail.EVENTS)
    with pytest.raises(SystemExit) as exc:
        run_cli([*argv, "-c", config])
    assert exc.value.code == 2
    assert events(db) == before


def test_real_command_never_pairs_the_user_with_the_hash(tmp_path: Path) -> None:
    """`mailproxy -vv data ... --user` as a process: neither stdout nor the debug log carries the
    hash, and the log does not name the user."""
    db = tmp_path / "t.sqlite3"
    fill(db, LogDetail.RESEARCH)
    config = config_for(tmp_path, db, LogDetail.RESEARCH)
    reader = hash_of(db, READER)
    out = tmp_path / "me.jsonl"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    for argv in (["show"], ["export", "-o", str(out)], ["export"], ["purge"], ["show"]):
        run = subprocess.run(
            [sys.executable, "-m", "mailproxy", "-vv", "data", *argv, "-c", config, "--user", READER],
            capture_output=True, text=True, env=env, timeout=60, check=False,
        )  # fmt: skip
        assert run.returncode == 0, run.stderr
        assert reader not in run.stdout + run.stderr
        assert READER.lower() not in (run.stdout + run.stderr).lower()
        assert "DEBUG" in run.stderr  # the log was on
    assert reader not in out.read_text() and len(out.read_text().splitlines()) > 1
    assert all(r[9] != reader for r in events(db))


# --- dropped events -------------------------------------------------------------------------------


def test_dropped_events_are_counted_in_the_store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "t.sqlite3"
    factory, available = store_while_down(db)

    sink = EventSink(factory, retry_interval=0.05, flush_interval=0.01)
    findings = sample_findings()[3]
    sink.record_findings(findings, channel="imap", sender_domain=None, user=None)
    assert sink.flush(10) and sink.dropped > 0
    lost = sink.dropped
    available.set()
    # Saved once the store is back, without waiting for another event to write.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not (db.exists() and _dropped(db)):
        time.sleep(0.02)
    sink.close()
    today = time.strftime("%Y-%m-%d", time.gmtime())
    assert _dropped(db) == [(today, lost)]

    config = config_for(tmp_path, db, LogDetail.AGGREGATE)
    assert run_cli(["data", "show", "-c", config]) == 0
    shown = capsys.readouterr().out
    assert "tracking_dropped" in shown and f"how much:  {lost} events, {today} to {today}" in shown

    # Another proxy's drops add up on the same day; export and import carry the counts.
    store = open_store(db)
    store.add_dropped({today: 2})
    assert list(store.iter_rows("dropped")) == [{"day": today, "count": lost + 2}]
    dump = tmp_path / "all.jsonl"
    with dump.open("w") as fh:
        export_jsonl(store, fh)
    copy = open_store(tmp_path / "copy.sqlite3")
    import_jsonl(copy, dump.read_text().splitlines())
    assert list(copy.iter_rows("dropped")) == [{"day": today, "count": lost + 2}]
    copy.close()
    # Retention and purge take them like every count.
    store.purge_before(int(time.time()) + 2 * 86400)
    assert _dropped(db) == []
    store.add_dropped({today: 1})
    store.purge_all()
    assert _dropped(db) == []
    store.close()


def test_dropped_count_survives_a_failed_save(tmp_path: Path) -> None:
    db = tmp_path / "t.sqlite3"
    opened: list[Store] = []

    def factory() -> Store:
        store = open_store(db)
        opened.append(store)
        if len(opened) == 1:

            def failing(per_day: dict[str, int]) -> None:
                raise StoreError("disk I/O error")

            store.add_dropped = failing  # type: ignore[method-assign]
        return store

    # The first store drops a batch (full queue) and cannot save the count; the next one does.
    sink = EventSink(factory, max_queue=1, retry_interval=0.05, flush_interval=0.05)
    findings = sample_findings()[3]
    for _ in range(50):
        sink.record_findings(findings, channel="imap", sender_domain=None, user=None)
    assert sink.flush(10)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and len(opened) < 2:
        time.sleep(0.02)
    sink.close()
    assert len(opened) >= 2 and sink.dropped > 0
    assert sum(n for _, n in _dropped(db)) == sink.dropped


def _dropped(db: Path) -> list[tuple[str, int]]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute("SELECT day, count FROM tracking_dropped ORDER BY day").fetchall()
    except sqlite3.OperationalError:  # not created yet
        return []
    finally:
        conn.close()
