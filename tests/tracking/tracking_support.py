"""Helpers of the tracking-log tests: real findings from the bundled samples, raw DB reads, the
tracking commands as the CLI parses them."""

from __future__ import annotations

import hashlib
import sqlite3
import threading
from collections.abc import Callable
from functools import cache
from pathlib import Path

from mailproxy.cli import parser
from mailproxy.config import load_config
from mailproxy.engine import Engine
from mailproxy.model import Finding
from mailproxy.tracking import cli as tracking_cli
from mailproxy.tracking.store import Store, StoreError, open_store

SAMPLES = Path(__file__).resolve().parents[2] / "mailproxy" / "samples"
READER = "reader@example.com"  # the recipient of the bundled samples
READER_MD5 = hashlib.md5(READER.encode()).hexdigest()
SENDER_DOMAIN = "news.example.com"


@cache
def sample_findings() -> tuple[tuple[Finding, ...], ...]:
    """The findings of every bundled sample, as the IMAP filter would see them."""
    engine = Engine()
    out = []
    for path in sorted(SAMPLES.glob("*.eml")):
        out.append(tuple(engine.rewrite(path.read_bytes(), user=READER).findings))
    return tuple(out)


def all_cells(db: Path) -> list[object]:
    """Every value in every table of an SQLite file, read with a fresh connection."""
    conn = sqlite3.connect(db)
    try:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        cells: list[object] = []
        for t in tables:
            for row in conn.execute(f"SELECT * FROM {t}"):
                cells.extend(row)
        return cells
    finally:
        conn.close()


def raw_bytes(db: Path) -> bytes:
    """The database file and its WAL, as bytes: what someone copying the files would get."""
    data = db.read_bytes()
    wal = db.with_name(db.name + "-wal")
    if wal.exists():
        data += wal.read_bytes()
    return data


def run_cli(argv: list[str]) -> int:
    """`mailproxy report` / `mailproxy data` parsed and run as the CLI does; argparse errors raise
    SystemExit, MailproxyError goes up (the CLI turns it into exit status 2)."""
    args = parser().parse_args(argv)
    return tracking_cli.COMMANDS[args.command](args, load_config(args.config))


def store_while_down(db: Path) -> tuple[Callable[[], Store], threading.Event]:
    """A store factory that fails ("starting up") until the returned event is set."""
    available = threading.Event()

    def factory() -> Store:
        if not available.is_set():
            raise StoreError("database is starting up")
        return open_store(db)

    return factory, available
