"""The ``mailproxy`` command line. A thin shell: it parses arguments, loads the configuration, calls the
engine, and turns ``MailproxyError`` into a message and an exit status."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TextIO

from mailproxy import __version__
from mailproxy.config import Config, HttpTls, load_config
from mailproxy.detect.trackers import TrackerDB
from mailproxy.engine import Engine
from mailproxy.errors import ConfigError, InputError, MailproxyError
from mailproxy.mailboxes import Message, read_messages
from mailproxy.model import Finding, Verdict
from mailproxy.tracking import cli as tracking_cli
from mailproxy.tracking.writer import EventSink, sink_for

log = logging.getLogger("mailproxy")

EXIT_OK = 0
EXIT_FAILURES = 1  # the command ran, but some inputs could not be read
EXIT_ERROR = 2  # the command could not run (bad configuration, unreadable input)


# -- scan -------------------------------------------------------------------------------------------------
@dataclass(slots=True)
class _Totals:
    messages: int = 0
    failed: int = 0
    trackers: int = 0
    identifying: int = 0
    references: int = 0


def _table(out: TextIO, msg: Message, findings: list[Finding]) -> None:
    trackers = sum(f.verdict is Verdict.TRACKER for f in findings)
    out.write(f"\n{msg.name}: {len(findings)} remote reference(s), {trackers} tracker(s)\n")
    if not findings:
        return
    rows = [("VERDICT", "ACTION", "VECTOR", "VENDOR", "URL")]
    for f in findings:
        url = f.url if len(f.url) <= 70 else f.url[:67] + "..."
        rows.append((str(f.verdict), str(f.action), str(f.vector), f.vendor or "-", url))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for r in rows:
        out.write(
            "  " + "  ".join(c.ljust(w) for c, w in zip(r[:4], widths, strict=True)) + "  " + r[4] + "\n"
        )


def _scan_messages(
    engine: Engine,
    messages: Iterator[Message],
    as_json: bool,
    out: TextIO,
    total: int | None,
    sink: EventSink | None,
) -> _Totals:
    from tqdm import tqdm

    totals = _Totals()
    # A progress bar on long runs, on stderr only, and only when a person is watching.
    bar = tqdm(total=total, unit="msg", disable=not sys.stderr.isatty() or (total or 0) < 50, file=sys.stderr)
    for msg in messages:
        bar.update(1)
        totals.messages += 1
        if msg.error is not None:
            totals.failed += 1
            print(f"{msg.name}: cannot read: {msg.error}", file=sys.stderr)
            continue
        result = engine.inspect(msg.data)
        findings = result.findings
        if sink is not None:
            sink.record_findings(
                findings,
                channel="scan",
                sender_domain=result.sender_domain,
                user=None,
                recipients=result.recipients,
            )
        totals.references += len(findings)
        totals.trackers += sum(f.verdict is Verdict.TRACKER for f in findings)
        totals.identifying += sum(f.verdict is Verdict.IDENTIFYING for f in findings)
        if as_json:
            for f in findings:
                out.write(json.dumps({"message": msg.name, **f.as_dict()}) + "\n")
        else:
            _table(out, msg, findings)
    bar.close()
    return totals


def cmd_scan(args: argparse.Namespace, config: Config) -> int:
    engine = Engine.from_config(config)
    paths = list(args.paths)
    if args.samples or not paths:
        paths.append(sample_dir())
    messages, total = read_messages(paths)
    sink = sink_for(config)
    try:
        totals = _scan_messages(engine, messages, args.json, sys.stdout, total, sink)
    finally:
        if sink is not None:
            sink.close()
    if not args.json:
        print(
            f"\n{totals.messages} message(s), {totals.references} remote reference(s): "
            f"{totals.trackers} tracker(s), {totals.identifying} with identifying parameters"
            + (f"; {totals.failed} unreadable" if totals.failed else "")
        )
    return EXIT_FAILURES if totals.failed else EXIT_OK


def sample_dir() -> Path:
    return Path(str(resources.files("mailproxy") / "samples"))


# -- rewrite ----------------------------------------------------------------------------------------------
def cmd_rewrite(args: argparse.Namespace, config: Config) -> int:
    try:
        raw = sys.stdin.buffer.read() if args.input in (None, "-") else Path(args.input).read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read {args.input}: {exc.strerror or exc}") from exc
    result = Engine.from_config(config).rewrite(raw, recipients=args.recipient or ())
    if args.output in (None, "-"):
        sys.stdout.buffer.write(result.data)
        sys.stdout.buffer.flush()
    else:
        try:
            Path(args.output).write_bytes(result.data)
        except OSError as exc:
            raise InputError(f"cannot write {args.output}: {exc.strerror or exc}") from exc
    changed = sum(f.action.value in ("strip", "block", "clean") for f in result.findings)
    print(
        f"rewrote {changed} of {len(result.findings)} remote reference(s); "
        f"{result.receipts_neutralized} read-receipt request(s) neutralized"
        + (f"; safety net caught {result.misses}" if result.misses else "")
        + (f"; neutralized part(s) {', '.join(result.failsafe_parts)}" if result.failsafe_parts else ""),
        file=sys.stderr,
    )
    return EXIT_OK


# -- check-config / run -----------------------------------------------------------------------------------
def cmd_check_config(args: argparse.Namespace, config: Config) -> int:
    from mailproxy.imap import settings_from_config

    TrackerDB.load(adblock=config.trackers.adblock, disconnect=config.trackers.disconnect)
    if config.imap.enabled:
        # Loads the certificates and CA bundle as `run` will, so a service's check before start
        # catches an unreadable or mismatched file instead of the start itself.
        try:
            settings_from_config(config.imap)
        except ConfigError as exc:
            raise ConfigError(str(config.source or "defaults"), exc.key, exc.expected) from exc
    print(f"{args.config or 'defaults'}: OK")
    return EXIT_OK


def cmd_run(args: argparse.Namespace, config: Config) -> int:
    import asyncio

    from mailproxy.runner import run

    # Tracking events are INFO lines on "mailproxy.tracking": show them while the proxies run.
    logging.getLogger("mailproxy").setLevel(min(logging.INFO, logging.getLogger().level))
    asyncio.run(run(config, tls=args.tls, confdir=args.confdir, mitm_options=args.set))
    return EXIT_OK


def cmd_ca(args: argparse.Namespace, config: Config) -> int:
    from mailproxy.http.server import ca_info

    print(ca_info(args.confdir))
    return EXIT_OK


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mailproxy", description="Email-tracking protection.")
    p.add_argument("--version", action="version", version=f"mailproxy {__version__}")
    p.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    # What every command takes, after its name too ("mailproxy run -v -c FILE").
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "-c", "--config", metavar="FILE", help="configuration file (default: built-in defaults)"
    )
    common.add_argument(
        "-v", "--verbose", action="count", default=argparse.SUPPRESS, help="more log output (-vv for debug)"
    )

    def add(name: str, help: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help, description=help, parents=[common])

    sp = add("run", "run the IMAP filter and the HTTP proxy (the halves enabled in the configuration)")
    sp.add_argument(
        "--tls",
        choices=[m.value for m in HttpTls],
        help="HTTPS: intercept (the client trusts the mitmproxy CA), passthrough (host-level blocking only), "
        "or auto (intercept until the client rejects the CA, then passthrough); default: [http] tls",
    )
    sp.add_argument("--confdir", metavar="DIR", help="mitmproxy's folder with the CA (default ~/.mitmproxy)")
    sp.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a mitmproxy option (as mitmdump --set)",
    )
    sp = add("scan", "list the remote references in messages and what the policy does with them")
    sp.add_argument(
        "paths", nargs="*", metavar="PATH", help=".eml file, mbox, Maildir or folder of .eml files"
    )
    sp.add_argument("--json", action="store_true", help="one JSON object per finding, one per line")
    sp.add_argument("--samples", action="store_true", help="also scan the bundled sample newsletters")
    sp = add("rewrite", "rewrite one message as the reader should see it")
    sp.add_argument("input", nargs="?", metavar="INPUT", help="message file (default: standard input)")
    sp.add_argument("-o", "--output", metavar="OUTPUT", help="where to write (default: standard output)")
    sp.add_argument(
        "--recipient", action="append", metavar="ADDR", help="an extra recipient address to look for"
    )
    add("check-config", "validate a configuration file")
    tracking_cli.add_commands(sub, common)
    sp = add("ca", "where the mitmproxy CA certificate is and how to install it for Thunderbird")
    sp.add_argument(
        "--confdir", metavar="DIR", help="mitmproxy's configuration folder (default ~/.mitmproxy)"
    )
    return p


_COMMANDS = {
    "run": cmd_run,
    "scan": cmd_scan,
    "rewrite": cmd_rewrite,
    "check-config": cmd_check_config,
    "ca": cmd_ca,
    **tracking_cli.COMMANDS,
}


_HEADER_LOGGERS = ("hpack", "h2")


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    # Libraries under mitmproxy log header values at DEBUG (hpack: every HTTP/2 header of a decrypted
    # tunnel, Cookie and Authorization included); credentials never go to our logs, -vv or not.
    for name in _HEADER_LOGGERS:
        logging.getLogger(name).setLevel(max(level, logging.INFO))
    try:
        config = load_config(args.config)
        return _COMMANDS[args.command](args, config)
    except MailproxyError as exc:
        print(f"mailproxy: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except BrokenPipeError:
        return EXIT_OK
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
