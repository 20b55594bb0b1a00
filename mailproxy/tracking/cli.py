"""The tracking-log commands: ``mailproxy report`` and ``mailproxy data show | export | purge``.

``mailproxy.cli`` wires them in with :func:`add_commands` and :data:`COMMANDS`; each command takes
``(args, config)`` and returns the exit status, and raises MailproxyError (StoreError) for the CLI's
usual error path. Read-only commands never create a store that does not exist yet.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import sys
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path
from typing import Any

from mailproxy.config import Config
from mailproxy.tracking.inventory import (
    DAILY_NOT_PER_USER,
    NOT_STORED,
    export_header,
    export_jsonl,
    export_user_jsonl,
    find_user,
    inventory,
    purge,
    purge_user,
    render_inventory,
    render_user,
)
from mailproxy.tracking.report import FORMATS, build_report, render
from mailproxy.tracking.store import Store, key_path_for, open_store, public_location

__all__ = ["COMMANDS", "add_commands", "cmd_data", "cmd_report"]

EXIT_OK = 0
EXIT_ERROR = 2


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date YYYY-MM-DD, got {text!r}") from None


def _user(text: str) -> str:
    # Returned as given: UserHasher normalises it exactly as it does the proxies' login names.
    if not text.strip():
        raise argparse.ArgumentTypeError("expected the user's address or login name, got nothing")
    return text


_USER_HELP = (
    "only the rows of this user: the address or login name they use with the IMAP filter or the "
    "HTTP proxy (case and surrounding spaces do not matter)"
)


def add_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add ``report`` and ``data`` to the subparsers of the main parser; ``common`` holds the
    options every command takes (``-c``, ``-v``)."""

    def add(parent: Any, name: str, help: str) -> argparse.ArgumentParser:
        sp: argparse.ArgumentParser = parent.add_parser(name, help=help, description=help, parents=[common])
        return sp

    sp = add(sub, "report", "summarise the tracking log: vendors, domains, senders, vectors, days")
    sp.add_argument("--since", type=_date, metavar="DATE", help="only days from DATE (YYYY-MM-DD)")
    sp.add_argument("--format", choices=FORMATS, default="table", help="output format")
    sp.add_argument("-o", "--output", metavar="FILE", help="write to FILE (default: stdout)")

    data = sub.add_parser("data", help="what the tracking log stores: show, export, purge", description=None)
    data_sub = data.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    sp = add(data_sub, "show", "the inventory: what is stored, where, how much, how long and why")
    sp.add_argument("--user", type=_user, metavar="ADDR", help=_USER_HELP)
    sp = add(data_sub, "export", "write everything stored as JSON Lines")
    sp.add_argument("-o", "--output", metavar="FILE", help="write to FILE (default: stdout)")
    sp.add_argument("--user", type=_user, metavar="ADDR", help=_USER_HELP)
    sp = add(data_sub, "purge", "delete stored data")
    group = sp.add_mutually_exclusive_group(required=True)
    group.add_argument("--all", action="store_true", help="everything, and the hash key")
    group.add_argument("--before", type=_date, metavar="DATE", help="rows older than DATE")
    group.add_argument("--user", type=_user, metavar="ADDR", help=_USER_HELP)


def _existing_store(config: Config) -> Store | None:
    """The configured store, or None when it is an SQLite file that does not exist yet."""
    location = config.log.store_location()
    if isinstance(location, Path) and not location.exists():
        return None
    return open_store(location)


@contextlib.contextmanager
def _output(path: str | None) -> Iterator[Any]:
    if path is None or path == "-":
        yield sys.stdout
        return
    with open(path, "w", encoding="utf-8", newline="") as fh:
        yield fh


def _write_to(path: str | None, write: Callable[[Any], int]) -> int | None:
    """Run `write` on the output; None (after saying why) when the file cannot be written. A
    closed pipe (``| head``) goes up to the CLI, which ends quietly."""
    try:
        with _output(path) as out:
            return write(out)
    except BrokenPipeError:
        raise
    except OSError as exc:
        print(f"mailproxy: {path}: {exc.strerror}", file=sys.stderr)
        return None


def cmd_report(args: argparse.Namespace, config: Config) -> int:
    since: date | None = args.since
    since_day = since.isoformat() if since else None
    store = _existing_store(config)
    try:
        rows = store.daily(since_day) if store is not None else []
    finally:
        if store is not None:
            store.close()
    text = render(build_report(rows, since_day), args.format)
    return EXIT_OK if _write_to(args.output, lambda out: out.write(text)) is not None else EXIT_ERROR


def cmd_data(args: argparse.Namespace, config: Config) -> int:
    if args.user is not None:
        return _cmd_data_user(args, config)
    location = config.log.store_location()
    key_path = key_path_for(location)
    store = _existing_store(config)
    if store is None:
        if args.data_command == "show":
            print(f"Nothing stored: {public_location(location)} does not exist.\n{NOT_STORED}")
        elif args.data_command == "export":
            if _write_to(args.output, lambda out: out.write(export_header())) is None:
                return EXIT_ERROR
        else:
            if key_path.exists() and args.all:
                key_path.unlink()
            print("Nothing to purge.")
        return EXIT_OK
    try:
        if args.data_command == "show":
            rows = inventory(
                store,
                detail=config.log.detail,
                retention_days=config.log.retention_days,
                key_path=key_path,
            )
            print(render_inventory(rows), end="")
        elif args.data_command == "export":
            n = _write_to(args.output, lambda out: export_jsonl(store, out))
            if n is None:
                return EXIT_ERROR
            print(f"{n} rows exported", file=sys.stderr)
        else:
            n = purge(store, everything=args.all, before=args.before, key_path=key_path)
            what = "everything" if args.all else f"rows before {args.before.isoformat()}"
            print(f"Purged {what}: {n} rows deleted.")
    finally:
        store.close()
    return EXIT_OK


def _cmd_data_user(args: argparse.Namespace, config: Config) -> int:
    """``data show|export|purge --user``. Neither prints nor logs the user's hash: next to the
    name the operator typed, it would undo the pseudonym."""
    detail = config.log.detail
    location = config.log.store_location()
    # What export says goes to stderr: stdout may be the export itself.
    say = functools.partial(print, file=sys.stderr if args.data_command == "export" else sys.stdout)
    store = _existing_store(config)
    if store is None:
        header = export_header(detail)
        if args.data_command == "export" and _write_to(args.output, lambda out: out.write(header)) is None:
            return EXIT_ERROR
        say(f"Nothing stored: {public_location(location)} does not exist.")
        return EXIT_OK
    try:
        found = find_user(store, args.user, detail=detail, key_path=key_path_for(location))
        if args.data_command == "show":
            keep = config.log.retention_days
            say(render_user(found, store=store, detail=detail, retention_days=keep), end="")
        elif args.data_command == "export":
            n = _write_to(args.output, lambda out: export_user_jsonl(store, found, detail, out))
            if n is None:
                return EXIT_ERROR
            say(found.none_because or f"{n} rows of this user exported")
        else:
            n = purge_user(store, found)
            done = f"Purged this user's event rows: {n} rows deleted.\n{DAILY_NOT_PER_USER}"
            say(found.none_because or done)
    finally:
        store.close()
    return EXIT_OK


COMMANDS: dict[str, Callable[[argparse.Namespace, Config], int]] = {
    "report": cmd_report,
    "data": cmd_data,
}
