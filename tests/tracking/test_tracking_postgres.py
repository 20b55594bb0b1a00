"""The PostgreSQL store against a real server: a throwaway cluster on a loopback port (Debian's
postgresql package, installed by scripts/install-postgres), two proxy processes writing at once."""

from __future__ import annotations

import glob
import io
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import pytest
from tracking_support import run_cli

from mailproxy.config import LogDetail
from mailproxy.model import Action, Finding, Tier, Vector, Verdict
from mailproxy.tracking.events import UserHasher
from mailproxy.tracking.inventory import export_jsonl, import_jsonl
from mailproxy.tracking.store import (
    SCHEMA_VERSION,
    PostgresStore,
    StoreError,
    key_path_for,
    open_store,
)
from mailproxy.tracking.writer import EventSink

psycopg = pytest.importorskip("psycopg")

BINDIRS: Final = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
REPO: Final = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(
    not BINDIRS, reason="PostgreSQL server not installed (scripts/install-postgres)"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    bindir = BINDIRS[-1]
    # initdb refuses to run as root: the cluster belongs to "nobody" then, in a folder it can reach.
    base = Path(tempfile.mkdtemp(prefix="mailproxy-pg-", dir="/tmp"))
    base.chmod(0o755)
    data, sockets = base / "data", base / "sock"
    sockets.mkdir()
    as_user: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(base, "nobody")
        shutil.chown(sockets, "nobody")
        as_user = ["runuser", "-u", "nobody", "--"]
    port = free_port()
    env = {**os.environ, "LC_ALL": "C"}
    subprocess.run(
        [*as_user, f"{bindir}/initdb", "-D", str(data), "-U", "postgres", "--auth=trust",
         "-E", "UTF8", "--no-sync"],
        check=True, capture_output=True, env=env, timeout=120,
    )  # fmt: skip
    options = f"-p {port} -k {sockets} -h 127.0.0.1 -F -c max_connections=20"
    subprocess.run(
        [*as_user, f"{bindir}/pg_ctl", "-D", str(data), "-o", options, "-l", str(base / "log"),
         "-w", "-t", "60", "start"],
        check=True, capture_output=True, env=env, timeout=90,
    )  # fmt: skip
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            [*as_user, f"{bindir}/pg_ctl", "-D", str(data), "-m", "immediate", "-w", "stop"],
            capture_output=True, env=env, timeout=60,
        )  # fmt: skip
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def clean_db(pg_url: str) -> str:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        for table in ("tracking_events", "tracking_daily", "tracking_dropped", "tracking_meta"):
            conn.execute(f"DROP TABLE IF EXISTS {table}")
    return pg_url


PROXY: Final = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from mailproxy.config import LogDetail
    from mailproxy.model import Action, Finding, Tier, Vector, Verdict
    from mailproxy.tracking.store import open_store
    from mailproxy.tracking.writer import EventSink

    url, key, messages, name = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    findings = [
        Finding(url=f"https://t{i}.tracker.example/open?u=abcdef0123456789abcd", vector=Vector.IMG,
                verdict=Verdict.TRACKER, action=Action.STRIP, tier=Tier.HIGH, vendor=f"V{i}",
                reasons=("known-tracker",), tracker_domain="tracker.example")
        for i in range(5)
    ]
    sink = EventSink(lambda: open_store(url), detail=LogDetail.EVENTS, key_path=key,
                     batch_size=200, flush_interval=0.05)
    for n in range(messages):
        # Half the rows share their daily key with the other process: concurrent upserts.
        sender = "shared.example" if n % 2 else f"{name}.example"
        sink.record_findings(findings, channel="imap", sender_domain=sender,
                             user=f"user{n % 7}@example.org")
    sink.close(60)
    print(sink.written, sink.dropped)
    """
)


def test_two_proxies_write_at_once(clean_db: str, tmp_path: Path) -> None:
    messages = 2000
    key = tmp_path / "shared.key"  # organisations copy one key to every proxy
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", PROXY, clean_db, str(key), str(messages), name],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in ("alpha", "beta")
    ]
    for p in procs:
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
        written, dropped = map(int, out.split())
        assert (written, dropped) == (messages * 5, 0)
    with psycopg.connect(clean_db) as conn:
        version = conn.execute("SELECT value FROM tracking_meta").fetchall()
        assert version == [(str(SCHEMA_VERSION),)]  # migrated once, though both started together
        rows = conn.execute("SELECT COUNT(*) FROM tracking_events").fetchone()
        assert rows == (2 * messages * 5,)
        per_sender = dict(
            conn.execute(
                "SELECT sender_domain, SUM(count) FROM tracking_daily GROUP BY sender_domain"
            ).fetchall()
        )
        half = messages // 2 * 5
        assert per_sender == {
            "alpha.example": half,
            "beta.example": half,
            "shared.example": 2 * half,
        }
        # Same key, same users: the two proxies' hashes agree, and no address is stored.
        users = conn.execute("SELECT COUNT(DISTINCT user_hash) FROM tracking_events").fetchone()
        assert users == (7,)
        leaked = conn.execute(
            "SELECT COUNT(*) FROM tracking_events WHERE user_hash LIKE '%@%' OR url <> ''"
        ).fetchone()
        assert leaked == (0,)


def test_postgres_round_trip_purge_and_migration(clean_db: str, tmp_path: Path) -> None:
    # A version-1 database, as an older mailproxy left it.
    with psycopg.connect(clean_db, autocommit=True) as conn:
        conn.execute("CREATE TABLE tracking_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        conn.execute(
            "CREATE TABLE tracking_daily (day TEXT NOT NULL, channel TEXT NOT NULL,"
            " sender_domain TEXT NOT NULL, tracker_domain TEXT NOT NULL, vendor TEXT NOT NULL,"
            " vector TEXT NOT NULL, reasons TEXT NOT NULL, action TEXT NOT NULL,"
            " count BIGINT NOT NULL, PRIMARY KEY (day, channel, sender_domain, tracker_domain,"
            " vendor, vector, reasons, action))"
        )
        conn.execute(
            "CREATE TABLE tracking_events (id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
            " time BIGINT NOT NULL, channel TEXT NOT NULL, sender_domain TEXT NOT NULL,"
            " tracker_domain TEXT NOT NULL, vendor TEXT NOT NULL, vector TEXT NOT NULL,"
            " reasons TEXT NOT NULL, action TEXT NOT NULL, user_hash TEXT NOT NULL)"
        )
        conn.execute("INSERT INTO tracking_meta VALUES ('schema_version', '1')")
        conn.execute(
            "INSERT INTO tracking_events (time, channel, sender_domain, tracker_domain, vendor,"
            " vector, reasons, action, user_hash) VALUES (1893456000, 'imap', 's.example',"
            " 't.example', 'V', 'img', 'known-tracker', 'strip', 'h')"
        )
    store = open_store(clean_db)
    assert isinstance(store, PostgresStore) and store.schema_version() == SCHEMA_VERSION
    assert [r["url"] for r in store.iter_rows("events")] == [""]
    sink = EventSink(lambda: open_store(clean_db), detail=LogDetail.RESEARCH, flush_interval=0.05)
    sink.close()
    # Export from PostgreSQL, import into SQLite: same rows in both dialects.
    dump = io.StringIO()
    n = export_jsonl(store, dump)
    lite = open_store(tmp_path / "copy.sqlite3")
    assert import_jsonl(lite, dump.getvalue().splitlines()) == n == 1
    again = io.StringIO()
    export_jsonl(lite, again)
    assert again.getvalue() == dump.getvalue()
    lite.close()
    assert store.purge_all() == 1
    assert store.stats()["event_rows"] == 0
    store.close()


def test_postgres_one_user_and_dropped_counts(
    clean_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))  # where the PostgreSQL store's key lives
    key = key_path_for(clean_db)
    sink = EventSink(lambda: open_store(clean_db), detail=LogDetail.EVENTS, key_path=key)
    finding = Finding(url="https://t.example/o.gif", vector=Vector.IMG, verdict=Verdict.TRACKER,
                      action=Action.STRIP, tier=Tier.HIGH, reasons=("known-tracker",),
                      tracker_domain="t.example")  # fmt: skip
    for n in range(30):
        sink.record_findings([finding], channel="imap", sender_domain="s.example",
                             user=("Alice@Example.org", "bob@example.org", None)[n % 3])  # fmt: skip
    sink.close()
    store = open_store(clean_db)
    store.add_dropped({"2030-01-02": 3})
    store.close()
    alice = UserHasher(key.read_bytes())("alice@example.org")
    config = tmp_path / "c.toml"
    config.write_text(f'[log]\nstore = "{clean_db}"\ndetail = "events"\n')

    def users() -> dict[str, int]:
        with psycopg.connect(clean_db) as conn:
            rows = conn.execute("SELECT user_hash, COUNT(*) FROM tracking_events GROUP BY 1")
            return dict(rows.fetchall())

    before = users()
    assert before[alice] == 10 and len(before) == 3  # alice, bob, and no user
    assert run_cli(["data", "show", "-c", str(config), "--user", "alice@example.org"]) == 0
    shown = capsys.readouterr().out
    assert "10 rows, 0 with a redacted URL" in shown and alice not in shown
    out = tmp_path / "alice.jsonl"
    argv = ["data", "export", "-c", str(config), "--user", "ALICE@example.org", "-o", str(out)]
    assert run_cli(argv) == 0
    lines = out.read_text().splitlines()
    assert len(lines) == 11 and alice not in out.read_text()
    assert run_cli(["data", "purge", "-c", str(config), "--user", "alice@example.org"]) == 0
    assert "10 rows deleted" in capsys.readouterr().out
    assert users() == {h: n for h, n in before.items() if h != alice}
    with psycopg.connect(clean_db) as conn:
        assert conn.execute("SELECT SUM(count) FROM tracking_daily").fetchone() == (30,)
    assert run_cli(["data", "show", "-c", str(config)]) == 0
    assert "how much:  3 events, 2030-01-02 to 2030-01-02" in capsys.readouterr().out


def test_unreachable_postgres_does_not_block() -> None:
    url = f"postgresql://postgres@127.0.0.1:{free_port()}/postgres"
    with pytest.raises(StoreError, match="127.0.0.1"):
        open_store(url)
    sink = EventSink(lambda: open_store(url), retry_interval=0.05, flush_interval=0.01)
    start = time.perf_counter()
    for _ in range(1000):
        sink.record_http({"action": "blocked", "host": "t.example", "reasons": ["known-tracker"]})
    assert time.perf_counter() - start < 1.0
    assert sink.flush(20)
    sink.close()
    assert sink.written == 0 and sink.dropped == 1000
