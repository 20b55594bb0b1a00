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
from mailproxy.tracking import events
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


# --- redaction of URL parts met before (each distinct host, path word and query is redacted once) ---

_HOSTS = [
    "cdn.example.com",
    f"{MD5}.t.example.com",
    "u1234567.ct.sendgrid.net",
    "d5pdmhe4xrqvg0.cloudfront.net",
    "[::1]",
]
_SEGMENTS = [
    "assets",
    "email",
    "2025",
    MD5,
    "article-601.jpg",
    "c_fill,w_260",
    "o.gif",
    "reader%40example.com",
]
_QUERIES = ["", "?m=abc", f"?m={MD5}", "?utm_source=newsletter&utm_campaign=x1", "?m=abc#top", "?a=1&#38;b=2"]
_REASONS = [
    (),
    ("recipient-identity:m",),
    ("known-param:m",),
    ("known-param:utm_source",),
    ("high-entropy:a",),
]


def _clear_part_caches() -> None:
    for cached in (events._plain_host_shown, events._plain_segment_shown, events._plain_query_shown):
        cached.cache_clear()


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["https://", "HTTP://", "//", " https://"]),
            st.sampled_from(_HOSTS),
            st.lists(st.sampled_from(_SEGMENTS), max_size=4),
            st.sampled_from(_QUERIES),
            st.sampled_from(_REASONS),
            st.booleans(),
        ),
        min_size=1,
        max_size=12,
    )
)
def test_redaction_does_not_depend_on_the_urls_redacted_before(
    cases: list[tuple[str, str, list[str], str, tuple[str, ...], bool]],
) -> None:
    # The same hosts, path words and queries under other reasons, with and without the identity
    # elsewhere in the URL, in both orders with empty caches: the answers are the same.
    inputs = [
        (scheme + host + "".join("/" + s for s in path) + query, reasons, MATCHER if with_matcher else None)
        for scheme, host, path, query, reasons, with_matcher in cases
    ]
    _clear_part_caches()
    forward = [redact_url(url, matcher=m, reasons=r) for url, r, m in inputs]
    _clear_part_caches()
    backward = [redact_url(url, matcher=m, reasons=r) for url, r, m in reversed(inputs)]
    assert forward == backward[::-1]


def test_a_query_met_again_is_redacted_by_its_reasons_and_the_identity() -> None:
    url = "https://t.example.com/p?m=abc&u=x"
    assert redact_url(url, reasons=()) == url
    # The same query named identifying, then carrying the identity: not the answer kept from before.
    assert redact_url(url, reasons=("known-param:m",)) == "https://t.example.com/p?m=<token>&u=x"
    assert (
        redact_url(url, reasons=("recipient-identity:m",)) == "https://t.example.com/p?m=<hex:recipient>&u=x"
    )
    assert (
        redact_url(url + f"&e={MD5}", matcher=MATCHER)
        == "https://t.example.com/p?m=abc&u=x&e=<md5:recipient>"
    )
    assert redact_url(url, matcher=MATCHER) == url


def test_a_host_or_path_word_met_again_is_marked_as_the_identity_when_it_is() -> None:
    # Redacted first without the reader's matcher (another mailbox), then with it.
    url = f"https://{MD5}.t.example.com/o/{MD5}.gif?x=1"
    assert redact_url(url) == "https://<token>.t.example.com/o/<token>.gif?x=1"
    assert (
        redact_url(url, matcher=MATCHER) == "https://<md5:recipient>.t.example.com/o/<md5:recipient>.gif?x=1"
    )


def test_part_caches_hold_short_pieces_only() -> None:
    # Bounded memory: a message can hold thousands of distinct long tokens, each cached to no use.
    _clear_part_caches()
    token = "Zq9" * 2000
    shown = events.redact_url(f"https://{token}.example.com/{token}/p.gif?{token}=1&id={token}")
    assert token not in shown and shown.startswith("https://") and "/p.gif?" in shown
    caches = (events._plain_host_shown, events._plain_segment_shown, events._plain_query_shown)
    assert [c.cache_info().currsize for c in caches] == [0, 2, 0]  # the segments "" and "p.gif"
