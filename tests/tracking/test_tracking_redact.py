"""Research-level URL redaction: what `redact_url` keeps and replaces, and that its own URL split
agrees with urllib's urlsplit on every URL (it takes a shortcut for plain ones)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from urllib.parse import urlsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailproxy.detect.identity import IdentityMatcher
from mailproxy.tracking.events import _split, redact_url

READER = "reader@example.com"
MD5 = hashlib.md5(READER.encode()).hexdigest()
MATCHER = IdentityMatcher((READER,))

CASES = [
    # Scheme and host lower-cased, plain words and a static file name kept, utm values kept.
    (
        "https://Images.Example.COM/assets/email/banner.jpg?utm_source=newsletter&utm_medium=email",
        ("known-param:utm_source",),
        "https://images.example.com/assets/email/banner.jpg?utm_source=newsletter&utm_medium=email",
    ),
    # User info dropped, port and fragment kept.
    ("HTTPS://user:pw@img.example.com:8443/o/e.gif#top", (), "https://img.example.com:8443/o/e.gif#top"),
    (
        "https://d5pdmhe4xrqvg0.cloudfront.net/2023/909af12958e32021ea1703c2148a02854f233f42.png"
        "?v=1620615909",
        (),
        "https://<token>.cloudfront.net/2023/<token>.png?v=<token>",
    ),
    (
        f"https://t.example.com/open?e={MD5}&amp;c=spring",
        (),
        "https://t.example.com/open?e=<md5:recipient>&c=spring",
    ),
    (f"https://t.example.com/{MD5}.gif", (), "https://t.example.com/<md5:recipient>.gif"),
    (
        "https://t.example.com/o?u=reader%40example.com&x=1",
        (),
        "https://t.example.com/o?u=<urlencoded:recipient>&x=1",
    ),
    ("https://t.example.com/o?id=someone@other.org", (), "https://t.example.com/o?id=<address>"),
    ("https://[::1]:8080/p?q=1", (), "https://[::1]:8080/p?q=1"),
    ("https://[2001:db8::1]/p", (), "https://[2001:db8::1]/p"),
    ("https://[::1/p", (), "<unparsable>"),
    ("https://host.example.com:99999/p", (), "<unparsable>"),
    # Outer white space stripped, a tab inside dropped (as urlsplit does), quotes never kept.
    ('  https://host.example.com/a\tb?x="y"  ', (), "https://host.example.com/ab?x=<token>"),
    ("https://bücher.example/straße?q=ü", (), "https://b%C3%BCcher.example/<token>?q=<token>"),
    ("//cdn.example.com/img/logo.png", (), "//cdn.example.com/img/logo.png"),
    ("cid:part1.abc@example.com", (), "cid:<address>"),
    # A utm value shaped like a token is replaced; a parameter named by an identity reason is
    # marked with the encoding its value looks like.
    (
        "https://t.example.com/p?utm_campaign=" + "a" * 33 + "&utm_term=x1",
        ("known-param:utm_campaign",),
        "https://t.example.com/p?utm_campaign=<token>&utm_term=x1",
    ),
    (
        "https://t.example.com/p?m=abc&flag",
        ("recipient-identity:m",),
        "https://t.example.com/p?m=<hex:recipient>&flag",
    ),
]


@pytest.mark.parametrize(("url", "reasons", "expected"), CASES)
def test_redact_url(url: str, reasons: tuple[str, ...], expected: str) -> None:
    assert redact_url(url, matcher=MATCHER, reasons=reasons) == expected


def _urlsplit_view(url: str) -> tuple[object, ...]:
    parts = urlsplit(url)
    return (
        parts.scheme,
        parts.netloc,
        parts.hostname or "",
        parts.port,
        parts.path,
        parts.query,
        parts.fragment,
    )


def _outcome(f: Callable[[str], tuple[object, ...]], url: str) -> tuple[object, ...]:
    try:
        return ("ok", f(url))
    except ValueError:
        return ("ValueError",)


_PIECE = st.text(alphabet="aZ09-._~:/?#[]@!$&'()*+,;=% \t\n\x00é", max_size=12)


@settings(max_examples=400, deadline=None)
@given(
    st.sampled_from(["http", "HTTPS", "x-y+z.w", "1x", "", "h t"]),
    st.sampled_from(["://", ":", "//", ":///", ""]),
    st.one_of(st.sampled_from(["example.com", "A.B-c.org", "[::1]", "u@h.com", "h.com:80", ""]), _PIECE),
    st.lists(_PIECE, max_size=4),
)
def test_split_agrees_with_urlsplit(scheme: str, sep: str, host: str, rest: list[str]) -> None:
    url = scheme + sep + host + "".join(rest)
    assert _outcome(_split, url) == _outcome(_urlsplit_view, url)
