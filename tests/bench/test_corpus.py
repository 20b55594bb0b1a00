"""The synthetic newsletter corpus: determinism, MIME validity, sizes, labels, samples, CLI."""

from __future__ import annotations

import email
import email.policy
import hashlib
import html
import json
import random
import struct
import time
import zlib
from email.message import EmailMessage
from pathlib import Path

import pytest

from bench import corpus
from bench.corpus import Labels, generate, generate_labelled, newsletter, write_samples
from mailproxy.model import Vector

SAMPLES = Path(__file__).resolve().parents[2] / "mailproxy" / "samples"
SMALL = (16, 40)


@pytest.fixture(scope="module")
def small() -> list[tuple[bytes, Labels]]:
    return generate_labelled(80, seed=11, html_kb=SMALL)


def parse(raw: bytes) -> EmailMessage:
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    return msg


def defects(msg: EmailMessage) -> list[str]:
    out = []
    for part in msg.walk():
        out += [f"{part.get_content_type()}: {d!r}" for d in part.defects]
        for name, value in part.items():
            out += [f"{name}: {d!r}" for d in getattr(value, "defects", ())]
    return out


def html_parts(msg: EmailMessage) -> list[EmailMessage]:
    return [p for p in msg.walk() if p.get_content_type() == "text/html"]


def decoded_html(msg: EmailMessage) -> str:
    return html.unescape("".join(str(p.get_content()) for p in html_parts(msg)))


# ---- determinism ---------------------------------------------------------------------------------


def test_same_seed_same_bytes_and_labels() -> None:
    a = generate_labelled(6, seed=5, html_kb=SMALL)
    b = generate_labelled(6, seed=5, html_kb=SMALL)
    assert a == b


def test_other_seed_other_messages() -> None:
    a = generate(4, seed=5, html_kb=SMALL)
    b = generate(4, seed=6, html_kb=SMALL)
    assert all(x != y for x, y in zip(a, b, strict=True))


def test_messages_do_not_depend_on_n() -> None:
    # Message i is a function of (seed, i): a short run is a prefix of a long one.
    assert generate(3, seed=2, html_kb=SMALL) == generate(7, seed=2, html_kb=SMALL)[:3]


def test_newsletter_uses_the_given_rng_and_recipient() -> None:
    a = newsletter(random.Random(9), index=0, recipient="x@example.org", html_kb=SMALL)
    b = newsletter(random.Random(9), index=0, recipient="x@example.org", html_kb=SMALL)
    c = newsletter(random.Random(10), index=0, recipient="x@example.org", html_kb=SMALL)
    assert a == b != c
    assert parse(a)["To"] == "x@example.org"


# ---- MIME validity -------------------------------------------------------------------------------


def test_every_message_parses_without_defects(small: list[tuple[bytes, Labels]]) -> None:
    for raw, labels in small:
        msg = parse(raw)
        assert defects(msg) == [], labels.index
        for header in ("From", "To", "Subject", "Date", "Message-ID", "MIME-Version"):
            assert msg[header], (labels.index, header)
        assert msg["List-Unsubscribe"].startswith("<mailto:")
        # Every leaf decodes (base64 and QP bodies are well formed, charsets are real).
        for part in msg.walk():
            if not part.is_multipart() and part.get_content_type() != "message/rfc822":
                assert part.get_payload(decode=True) is not None


def test_default_size_messages_parse_without_defects() -> None:
    for raw, labels in generate_labelled(4, seed=0):
        assert defects(parse(raw)) == [], labels.index


def test_line_endings_are_crlf_and_lines_short(small: list[tuple[bytes, Labels]]) -> None:
    for raw, _ in small:
        bare = raw.replace(b"\r\n", b"")
        assert b"\n" not in bare and b"\r" not in bare
        assert max(map(len, raw.split(b"\r\n"))) <= 998


def test_corpus_mixes_structures_encodings_and_charsets(small: list[tuple[bytes, Labels]]) -> None:
    ctes: set[str] = set()
    charsets: set[str] = set()
    types: set[str] = set()
    receipts = 0
    for raw, labels in small:
        msg = parse(raw)
        types |= {p.get_content_type() for p in msg.walk()}
        for part in html_parts(msg)[:1]:
            ctes.add(str(part["Content-Transfer-Encoding"]))
            charsets.add(str(part.get_content_charset()))
        receipts += "Disposition-Notification-To" in msg
        assert labels.read_receipt == ("Disposition-Notification-To" in msg)
    assert {"quoted-printable", "base64"} <= ctes and ctes & {"8bit", "7bit"}
    assert {"utf-8", "iso-8859-1", "windows-1252"} <= charsets
    assert {"multipart/alternative", "multipart/related", "image/png", "text/plain"} <= types
    assert {"message/rfc822", "application/pdf"} <= types
    assert 0 < receipts < len(small)


def test_related_logo_is_a_valid_png_referenced_by_cid(small: list[tuple[bytes, Labels]]) -> None:
    checked = 0
    for raw, _ in small:
        msg = parse(raw)
        for part in msg.walk():
            if part.get_content_type() != "image/png":
                continue
            cid = str(part["Content-ID"]).strip("<>")
            assert f"cid:{cid}" in decoded_html(msg)
            png = part.get_payload(decode=True)
            assert isinstance(png, bytes) and png.startswith(b"\x89PNG\r\n\x1a\n")
            pos, idat = 8, b""
            while pos < len(png):
                (length,) = struct.unpack(">I", png[pos : pos + 4])
                kind, data = png[pos + 4 : pos + 8], png[pos + 8 : pos + 8 + length]
                (crc,) = struct.unpack(">I", png[pos + 8 + length : pos + 12 + length])
                assert zlib.crc32(kind + data) == crc
                idat += data if kind == b"IDAT" else b""
                pos += 12 + length
            width, height = struct.unpack(">II", png[16:24])
            assert len(zlib.decompress(idat)) == height * (1 + 3 * width)
            checked += 1
    assert checked > 0


def test_html_has_email_layout_features(small: list[tuple[bytes, Labels]]) -> None:
    text = "".join(decoded_html(parse(raw)) for raw, _ in small[:20])
    for marker in ("<!--[if mso]>", "<v:fill", "<v:roundrect", "@media", "srcset=", "background=",
                   "background-image:url(", 'role="presentation"', "display:none"):  # fmt: skip
        assert marker in text, marker


# ---- sizes ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("html_kb", [(16, 16), (20, 30), (50, 150)])
def test_html_part_size_is_within_range(html_kb: tuple[int, int]) -> None:
    lo, hi = html_kb[0] * 1024, html_kb[1] * 1024
    for raw, labels in generate_labelled(12, seed=4, html_kb=html_kb):
        parts = html_parts(parse(raw))
        if not labels.has_html:
            continue
        data = parts[0].get_payload(decode=True)
        assert isinstance(data, bytes)
        assert lo <= len(data) <= hi, (labels.index, len(data))


# ---- labels --------------------------------------------------------------------------------------


def test_labelled_urls_occur_in_the_decoded_html(small: list[tuple[bytes, Labels]]) -> None:
    for raw, labels in small:
        text = decoded_html(parse(raw))
        assert labels.trackers, labels.index  # random messages always carry at least one pixel
        for t in labels.trackers:
            assert t.url in text, (labels.index, t.vendor)
        for url in labels.content_images + labels.identifying_images + labels.other_remote:
            assert url in text, (labels.index, url)
        assert set(labels.spacers) <= set(labels.content_images)
        assert not labels.tracker_urls & set(labels.content_images)


def test_quoted_printable_breaks_fall_inside_urls(small: list[tuple[bytes, Labels]]) -> None:
    # A URL split by a soft line break is not found verbatim in the raw bytes, only after decoding.
    split = 0
    for raw, labels in small:
        if b"quoted-printable" in raw:
            split += sum(t.url.encode() not in raw for t in labels.trackers)
    assert split > 0


def test_labels_identity_encodings_are_true(small: list[tuple[bytes, Labels]]) -> None:
    kinds: set[str] = set()
    for _, labels in small:
        md5 = hashlib.md5(labels.recipient.lower().encode()).hexdigest()
        for t in labels.trackers:
            if t.identity == "md5":
                assert md5 in t.url
            elif t.identity == "raw":
                assert labels.recipient in t.url
            elif t.identity is None:
                assert md5 not in t.url and labels.recipient not in t.url
            kinds.add(t.identity or "none")
    assert {"md5", "raw", "none"} <= kinds


def test_litmus_css_trackers_are_labelled_as_css() -> None:
    name, raw, labels = corpus.samples_labelled()[1]
    assert "litmus" in name
    css = [t for t in labels.trackers if t.vector is Vector.CSS_URL]
    assert len(css) == 4 and all(t.vendor == "Litmus" for t in css)
    text = decoded_html(parse(raw))
    assert "prefers-color-scheme: dark" in text and "OutlookMessageHeader" in text


def test_fixed_recipient_is_used_everywhere() -> None:
    for raw, labels in generate_labelled(3, seed=1, html_kb=SMALL, recipient="me@example.com"):
        assert labels.recipient == "me@example.com"
        assert parse(raw)["To"] == "me@example.com"


# ---- bad input -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n": -1}, "n must be"),
        ({"n": "3"}, "n must be"),
        ({"n": 1, "html_kb": (40, 20)}, "html_kb"),
        ({"n": 1, "html_kb": (4, 20)}, "html_kb"),
        ({"n": 1, "html_kb": (16,)}, "html_kb"),
        ({"n": 1, "html_kb": (16.0, 20.0)}, "html_kb"),
        ({"n": 1, "recipient": "no-at-sign"}, "recipient"),
        ({"n": 1, "recipient": "a@example.com\r\nBcc: x@example.com"}, "recipient"),
        ({"n": 1, "recipient": "jösé@example.com"}, "recipient"),
    ],
)
def test_bad_arguments_raise_value_error(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        generate(**kwargs)  # type: ignore[arg-type]


def test_zero_messages_is_empty() -> None:
    assert generate(0) == []


def test_generation_is_fast() -> None:
    t0 = time.perf_counter()
    generate(50, seed=3)
    # About 8 ms a message on a laptop; the bound only catches an accidental slowdown.
    assert time.perf_counter() - t0 < 5.0


# ---- bundled samples -----------------------------------------------------------------------------


def test_bundled_samples_parse_and_have_the_advertised_shapes() -> None:
    files = sorted(SAMPLES.glob("*.eml"))
    assert 6 <= len(files) <= 10
    without_html = receipts = 0
    for f in files:
        raw = f.read_bytes()
        assert 5_000 <= len(raw) <= 40_000, f.name
        msg = parse(raw)
        assert defects(msg) == [], f.name
        without_html += not html_parts(msg)
        receipts += "Disposition-Notification-To" in msg
    assert without_html == 1
    assert receipts == 1


def test_bundled_samples_are_what_write_samples_produces(tmp_path: Path) -> None:
    written = write_samples(tmp_path / "s")
    assert [p.name for p in written] == sorted(p.name for p in SAMPLES.glob("*.eml"))
    for p in written:
        assert p.read_bytes() == (SAMPLES / p.name).read_bytes(), p.name


# ---- CLI -----------------------------------------------------------------------------------------


def test_cli_writes_eml_files_and_labels(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    rc = corpus.main(["--out", str(out), "-n", "3", "--seed", "1", "--html-kb", "16", "20", "--labels"])
    assert rc == 0
    assert sorted(p.name for p in out.glob("*.eml")) == ["0000.eml", "0001.eml", "0002.eml"]
    assert (out / "0001.eml").read_bytes() == generate(2, seed=1, html_kb=(16, 20))[1]
    labels = json.loads((out / "labels.json").read_text())
    assert len(labels) == 3 and labels[0]["trackers"][0]["url"].startswith("https://")
    assert "wrote 3 messages" in capsys.readouterr().out


def test_cli_writes_a_maildir(tmp_path: Path) -> None:
    rc = corpus.main(["--out", str(tmp_path / "md"), "-n", "2", "--html-kb", "16", "16", "--maildir"])
    assert rc == 0
    assert {p.name for p in (tmp_path / "md").iterdir()} == {"cur", "new", "tmp"}
    assert len(list((tmp_path / "md" / "new").iterdir())) == 2


def test_cli_bad_size_is_a_clean_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert corpus.main(["--out", str(tmp_path), "-n", "1", "--html-kb", "30", "10"]) == 2
    assert "html_kb" in capsys.readouterr().err


def test_cli_unwritable_output_is_a_clean_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert corpus.main(["--out", str(blocker / "sub"), "-n", "1", "--html-kb", "16", "16"]) == 1
    assert "cannot write" in capsys.readouterr().err
