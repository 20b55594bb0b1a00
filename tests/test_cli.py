"""The command line, run as a real process."""

from __future__ import annotations

import json
import mailbox
import subprocess
import sys
from pathlib import Path

import pytest

TRACKER = "https://news.us5.list-manage.com/track/open.php?u=0123456789abcdef012345678&amp;id=abcdef0123"


def eml(html: str) -> bytes:
    return (
        "From: Shop <news@shop.example>\r\nTo: alice@example.org\r\nSubject: x\r\n"
        "Disposition-Notification-To: news@shop.example\r\n"
        "Content-Type: text/html; charset=utf-8\r\n\r\n" + html + "\r\n"
    ).encode()


NEWSLETTER = eml(
    f'<p>Hi</p><img src="{TRACKER}" width=1 height=1>'
    '<img src="https://cdn.shop.example/hero.png?utm_source=news&amp;w=600" width=600>'
)


def run(*args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "mailproxy", *args], input=stdin, capture_output=True, timeout=120, check=False
    )


def test_scan_json_lines(tmp_path: Path) -> None:
    (tmp_path / "a.eml").write_bytes(NEWSLETTER)
    proc = run("scan", "--json", str(tmp_path / "a.eml"))
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(rows) == 2
    for row in rows:
        assert {"message", "url", "vector", "verdict", "vendor", "reasons", "action"} <= row.keys()
        assert row["message"].endswith("a.eml") and isinstance(row["reasons"], list)
    tracker = next(r for r in rows if r["verdict"] == "tracker")
    assert tracker["vendor"] == "Mailchimp" and tracker["action"] == "strip" and tracker["vector"] == "img"
    content = next(r for r in rows if r["verdict"] == "identifying")
    assert content["action"] == "clean"


def test_scan_table_mbox_maildir_and_folder(tmp_path: Path) -> None:
    box = mailbox.mbox(tmp_path / "box.mbox")
    box.add(NEWSLETTER)
    box.add(eml("<p>plain</p>"))
    box.close()
    md = mailbox.Maildir(tmp_path / "md")
    md.add(NEWSLETTER)
    md.close()
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "one.eml").write_bytes(NEWSLETTER)
    proc = run("scan", str(tmp_path / "box.mbox"), str(tmp_path / "md"), str(folder))
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout.decode()
    assert "4 message(s)" in out and "3 tracker(s)" in out and "Mailchimp" in out


def test_scan_reports_unreadable_input_and_goes_on(tmp_path: Path) -> None:
    (tmp_path / "ok.eml").write_bytes(NEWSLETTER)
    proc = run("scan", str(tmp_path / "missing.eml"), str(tmp_path / "ok.eml"))
    assert proc.returncode == 1
    assert b"missing.eml: cannot read" in proc.stderr
    assert b"1 tracker(s)" in proc.stdout


def test_scan_bundled_samples() -> None:
    proc = run("scan", "--samples", "--json")
    assert proc.returncode == 0, proc.stderr
    verdicts = {json.loads(line)["verdict"] for line in proc.stdout.splitlines()}
    assert "tracker" in verdicts


def test_rewrite_stdin_to_stdout_keeps_length() -> None:
    proc = run("rewrite", stdin=NEWSLETTER)
    assert proc.returncode == 0, proc.stderr
    assert len(proc.stdout) == len(NEWSLETTER)
    assert b"list-manage" not in proc.stdout and b"utm_source" not in proc.stdout
    assert b"X-Mailproxy-Dispos" in proc.stdout
    assert b"rewrote 2 of 2" in proc.stderr


def test_rewrite_files_and_recipient(tmp_path: Path) -> None:
    import hashlib

    digest = hashlib.sha256(b"bob@example.net").hexdigest()
    src = tmp_path / "in.eml"
    src.write_bytes(eml(f'<img src="https://img.example.com/{digest}/b.png" width=600>'))
    dst = tmp_path / "out.eml"
    proc = run("rewrite", "--recipient", "bob@example.net", str(src), "-o", str(dst))
    assert proc.returncode == 0, proc.stderr
    assert digest.encode() not in dst.read_bytes()
    assert len(dst.read_bytes()) == len(src.read_bytes())


def test_rewrite_unreadable_input_fails_clearly(tmp_path: Path) -> None:
    proc = run("rewrite", str(tmp_path / "nope.eml"))
    assert proc.returncode == 2
    assert b"cannot read" in proc.stderr and b"Traceback" not in proc.stderr


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        ('[policy]\ntracker = "strp"\n', b"policy.tracker"),
        ("[polcy]\n", b"polcy"),
        ("[privacy]\ngpc = 1\n", b"privacy.gpc"),
        ("not toml = = =\n", b"line"),
        # files that parse as paths but do not load: caught before `run`, not by it
        ('[imap]\nupstream_tls = "none"\ntls_cert = "no.pem"\ntls_key = "no.key"\n', b"imap.tls_cert"),
        ('[imap]\nupstream_ca = "missing-ca.pem"\n', b"imap.upstream_ca"),
    ],
)
def test_check_config_reports_file_key_and_expectation(tmp_path: Path, toml: str, expected: bytes) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text(toml)
    proc = run("check-config", "-c", str(cfg))
    assert proc.returncode == 2
    assert str(cfg).encode() in proc.stderr and expected in proc.stderr
    assert b"Traceback" not in proc.stderr


def test_check_config_example_is_valid() -> None:
    example = Path(__file__).resolve().parent.parent / "config.example.toml"
    proc = run("check-config", "-c", str(example))
    assert proc.returncode == 0 and b"OK" in proc.stdout


def test_scan_feeds_the_tracking_log_and_report_reads_it(tmp_path: Path) -> None:
    (tmp_path / "a.eml").write_bytes(NEWSLETTER)
    assert run("scan", str(tmp_path / "a.eml")).returncode == 0
    proc = run("report", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert "Mailchimp" in json.dumps(report)
    show = run("data", "show")
    assert show.returncode == 0 and b"tracking.sqlite3" in show.stdout
    assert run("data", "purge", "--all").returncode == 0
    assert "Mailchimp" not in run("report", "--format", "json").stdout.decode()


def test_most_verbose_logging_keeps_header_values_out() -> None:
    # hpack logs every HTTP/2 header (Cookie, Authorization) at DEBUG inside decrypted tunnels.
    import logging

    from mailproxy.cli import main

    for name in ("hpack", "h2"):
        logging.getLogger(name).setLevel(logging.DEBUG)
    example = Path(__file__).resolve().parent.parent / "config.example.toml"
    assert main(["-vv", "check-config", "-c", str(example)]) == 0
    for name in ("hpack", "h2"):
        assert not logging.getLogger(name).isEnabledFor(logging.DEBUG)


@pytest.mark.parametrize(
    "argv",
    [["-vv", "check-config"], ["check-config", "-vv"], ["check-config", "-v", "-v"], ["data", "show", "-vv"]],
)
def test_verbosity_is_taken_before_or_after_the_command(argv: list[str]) -> None:
    from mailproxy.cli import parser

    assert parser().parse_args(argv).verbose == 2
