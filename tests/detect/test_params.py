"""Tests for mailproxy.detect.params: identifying parameters, path tokens, raw URL cleaning."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailproxy.detect.identity import IdentityMatcher
from mailproxy.detect.params import (
    ParamHit,
    PathToken,
    clean_raw_url,
    decode_param_name,
    identifying_params,
    identifying_path_tokens,
    looks_high_entropy,
)

UUID = "550e8400-e29b-41d4-a716-446655440000"
MD5 = "8f14e45fceea167a5a36dedd4bea2543"
BLOB = "AbC9dEf2GhI7jKl1MnO3pQr"  # base64-like, random-looking
ALICE = "alice@example.org"
ALICE_MD5 = hashlib.md5(ALICE.encode()).hexdigest()


def _names(url: str, identity: IdentityMatcher | None = None) -> dict[str, str]:
    return {h.name: h.reason for h in identifying_params(url, identity)}


# --- looks_high_entropy --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        UUID,
        UUID.upper(),
        MD5,
        MD5.upper(),
        "0123456789abcdef",  # 16 hex
        "123456789012",  # 12 digits
        "1699999999123",  # a 13-digit number is a long digit run, whatever it means
        BLOB,
        "eJwNy0EKgCAQBdCrzD-6yJ7kCxFzaZqOFhMbX",  # Mailgun zlib+base64
        "u001.AbC9dEf2GhI7jKl1MnO3pQr",  # compound token
        "k3j4h5g6f7d8s9a0q1w2",  # base36
        BLOB + "==",
    ],
)
def test_high_entropy_true(value: str) -> None:
    assert looks_high_entropy(value)


@pytest.mark.parametrize(
    "value",
    [
        "",
        "600",
        "newsletter",
        "0123456789abcde",  # 15 hex
        "12345678901",  # 11 digits
        "1699999999",  # a timestamp in seconds
        "SummerSale2024HeroBanner",  # CamelCase words
        "summer-sale-2024-hero-banner-final",  # slug
        "newsletter_header_background_2024",
        "MyImage_01_Final_Version2",
        "logo.3f9a2b1c4d5e6f70.png",  # CDN content hash in a file name
        "hero_a1b2c3d4e5f6a7b8.jpg",
        "hero_a1b2c3d4e5f6a7b8",
        "app-1a2b3c4d5e6f7a8b_600x",
        f"{UUID}.png",  # a content-addressed file name
        "auto=format,compress",
        "https://example.org/a/b",
        ALICE,  # an address is not "entropy" (the identity matcher and params handle it)
    ],
)
def test_high_entropy_false(value: str) -> None:
    assert not looks_high_entropy(value)


# --- identifying_params --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "utm_source",
        "UTM_Campaign",
        "utm_content",
        "mc_eid",
        "mc_cid",
        "mc_tc",
        "_hsenc",
        "_hsmi",
        "__hssc",
        "__hstc",
        "__hsfp",
        "hsCtaTracking",
        "mkt_tok",
        "vero_id",
        "vero_conv",
        "oly_enc_id",
        "oly_anon_id",
        "_ke",
        "ml_subscriber",
        "ml_subscriber_hash",
        "wickedid",
        "yclid",
        "gclid",
        "fbclid",
        "msclkid",
        "dclid",
        "igshid",
        "s_cid",
        "sc_cid",
        "trk",
        "trkid",
        "trk_contact",
        "elqTrackId",
        "_bta_tid",
        "vgo_ee",
        "upn",
        "utm%5Fsource",  # percent-encoded name
    ],
)
def test_known_params_whatever_the_value(name: str) -> None:
    assert _names(f"https://img.example/hero.jpg?w=600&{name}=x") == {name: "known-param"}


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        # person names: any real value, not a flag
        (f"email={ALICE}", {"email": "known-param"}),
        ("email=1", {}),
        ("email=true", {}),
        ("email=", {}),
        ("uid=0", {}),
        ("user_id=12345", {"user_id": "known-param"}),
        ("subscriber_id=abc", {"subscriber_id": "known-param"}),
        ("recipient=r-991", {"recipient": "known-param"}),
        # ambiguous short names: only token-like values
        ("cid=header-logo", {}),
        ("cid=a1b2c3d4e5f6", {"cid": "known-param"}),
        ("e=0a1b2c3d4e", {"e": "known-param"}),  # Mailchimp's 10-hex subscriber id
        ("e=1", {}),
        ("sid=5", {}),
        ("sid=Xk29sLq8Zp", {"sid": "known-param"}),
        ("u=123456", {"u": "known-param"}),
        ("u=newsletter2024", {}),
        (f"m={MD5}", {"m": "known-param"}),
        # unknown names: judged by the value
        (f"x={MD5}", {"x": "high-entropy"}),
        (f"x={UUID}", {"x": "high-entropy"}),
        (f"x={BLOB}", {"x": "high-entropy"}),
        ("x=12345678901234567890", {"x": "high-entropy"}),
        ("x=bob@example.net", {"x": "high-entropy"}),
        ("x=SummerSale2024HeroBanner", {}),
        ("x=summer-sale", {}),
        # sizes, versions, signatures, content ids stay clean
        ("w=600&h=400&fit=crop&auto=format,compress&q=80&dpr=2", {}),
        ("v=1699999999&ver=2", {}),
        ("v=3f9a2b1c4d5e6f708a9b", {}),  # content hash as a cache-buster
        ("t=1699999999123&_=1699999999123", {}),  # millisecond cache-busters
        (f"v={UUID}", {"v": "high-entropy"}),
        (f"s={MD5}", {}),  # imgix signature
        (f"Signature={BLOB}&Key-Pair-Id=APKAEXAMPLE12345&Expires=1699999999", {}),
        (f"X-Amz-Signature={MD5}{MD5}&X-Amz-Credential={BLOB}", {}),
        (f"export=view&id=1{BLOB}xYz", {}),  # Google Drive image
        (f"file={MD5}", {}),
        # bare keys: UUID / blob yes, cache-busters no
        (UUID, {UUID: "high-entropy"}),
        ("3f9a2b1c4d5e6f708a9b", {}),
        ("1699999999123", {}),
    ],
)
def test_params_table(query: str, expected: dict[str, str]) -> None:
    assert _names(f"https://img.example/hero.jpg?{query}") == expected


def test_recipient_identity_wins_and_needs_the_matcher() -> None:
    matcher = IdentityMatcher([ALICE])
    url = f"https://li.example/imp?s=123456&sz=2x1&m={ALICE_MD5}&email={ALICE}&utm_source=nl"
    assert identifying_params(url, matcher) == [
        ParamHit("m", "recipient-identity"),
        ParamHit("email", "recipient-identity"),
        ParamHit("utm_source", "known-param"),
    ]
    assert identifying_params(url) == [
        ParamHit("m", "known-param"),
        ParamHit("email", "known-param"),
        ParamHit("utm_source", "known-param"),
    ]
    # A parameter no list knows, carrying the address's sha256, is found only through identity.
    sha = hashlib.sha256(ALICE.encode()).hexdigest()
    assert identifying_params(f"https://x.example/a.png?zz=p{sha}q", matcher) == [
        ParamHit("zz", "recipient-identity")
    ]
    assert identifying_params("https://x.example/a.png?zz=1", IdentityMatcher([])) == []


def test_params_each_name_once_in_url_order_and_raw_separators() -> None:
    url = "https://img.example/a.png?utm_medium=e&amp;w=1&#38;utm_source=n&utm_medium=f#utm_x=1"
    assert identifying_params(url) == [
        ParamHit("utm_medium", "known-param"),
        ParamHit("utm_source", "known-param"),
    ]


@pytest.mark.parametrize(
    "url",
    [
        "",
        "https://img.example/a.png",
        "?",
        "??&&==",
        "#?utm_source=1",
        "http://[::1?%zz=%",
        "\x00?\ud800",
    ],
)
def test_params_garbage(url: str) -> None:
    assert identifying_params(url) == []


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(codec="utf-8") | st.sampled_from("%?&#=;amp"), max_size=200))
def test_params_never_raise(url: str) -> None:
    assert isinstance(identifying_params(url, IdentityMatcher([ALICE])), list)
    assert isinstance(identifying_path_tokens(url), list)


# --- identifying_path_tokens ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "segments"),
    [
        (
            "https://email.example.com/o/eJwNy0EKgCAQBdCrzD-6yJ7kCxFzaZqOFhMbX",
            ["eJwNy0EKgCAQBdCrzD-6yJ7kCxFzaZqOFhMbX"],
        ),
        (f"https://r.example.de/tr/op/{BLOB}-xy_Z", [f"{BLOB}-xy_Z"]),
        (f"https://t.example/{UUID}/open", [UUID]),
        (f"https://t.example/p/{MD5}/o.gif", [MD5]),
        ("https://t.example/img/000123456789012/x.gif", ["000123456789012"]),
        ("/assets/logo.3f9a2b1c4d5e6f70.png", []),
        (
            "https://cdn.example/s/files/1/0123/4567/files/hero_a1b2c3d4e5f6a7b8.jpg?v=1699999999",
            [],
        ),
        ("https://cdn.example/images/2024/05/summer-sale-2024-hero-banner.jpg", []),
        ("https://cdn.example/newsletter/SummerSale2024HeroBanner/", []),
        (f"https://cdn.example/img/{UUID}.png", []),
        (f"https://cdn.example/img/a.png?t={MD5}", []),  # the query is not the path
        (f"https://cdn.example/img/a.png#{MD5}", []),
    ],
)
def test_path_tokens(url: str, segments: list[str]) -> None:
    assert identifying_path_tokens(url) == [PathToken(s, "high-entropy-path") for s in segments]


# --- clean_raw_url -------------------------------------------------------------------------------


def _utm_or_e(name: str) -> bool:
    return name.startswith("utm_") or name == "e"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("a.png?utm_source=x&w=1", "a.png?w=1"),  # first
        ("a.png?w=1&utm_source=x", "a.png?w=1"),  # last
        ("a.png?w=1&utm_source=x&h=2", "a.png?w=1&h=2"),  # middle
        ("a.png?utm_source=x", "a.png"),  # only
        ("a.png?utm_source=x&utm_medium=y&e=3", "a.png"),  # all
        ("a.png?utm_source=x&amp;w=1&amp;utm_medium=y", "a.png?w=1"),
        ("a.png?w=1&amp;utm_source=x&amp;h=2", "a.png?w=1&amp;h=2"),
        ("a.png?w=1&AMP;utm_source=x&AMP;h=2", "a.png?w=1&AMP;h=2"),
        ("a.png?w=1&#38;utm_source=x&#38;h=2", "a.png?w=1&#38;h=2"),
        ("a.png?w=1&#038;utm_source=x&#x26;h=2", "a.png?w=1&#x26;h=2"),
        ("a.png?w=1&amp;h=2&utm_source=x", "a.png?w=1&amp;h=2"),  # mixed separators kept
        ("a.png?utm_source=x#frag", "a.png#frag"),
        ("a.png?w=1&utm_source=x#f?utm_medium=1&e=2", "a.png?w=1#f?utm_medium=1&e=2"),
        ("a.png#f?utm_source=x", "a.png#f?utm_source=x"),  # "?" inside the fragment
        ("a.png?&utm_source=x&&w=1&", "a.png?w=1"),  # empty parameters go with a removal
        ("a.png?w=1&&h=2&", "a.png?w=1&&h=2&"),  # ... and stay when nothing is removed
        ("a.png?", "a.png?"),
        ("a.png", "a.png"),
        ("a.png?utm%5Fsource=1&b", "a.png?b"),  # percent-encoded name
        ("a.png?utm&#95;source=1&b", "a.png?b"),  # entity-encoded name
        ("a.png?E=1&e=2", "a.png?E=1"),  # names compare as written (decoded), not case-folded
        ("a.png?w=%26utm_source%3D1", "a.png?w=%26utm_source%3D1"),  # encoded "&" is data
        ("a.png?x=a;utm_source=1", "a.png?x=a;utm_source=1"),  # ";" is not a separator
        ("a.png?x=1;y=2&utm_source=1", "a.png?x=1;y=2"),
        ("a.png?utm_a=1\n&amp;utm_b=2", "a.png\n"),  # line breaks survive: line count kept
        ("a.png?w=1&utm_a=1\r\n&h=2", "a.png?w=1\r\n&h=2"),
        ("https://h.example/p/q.gif?u=1&e=2&id=3#", "https://h.example/p/q.gif?u=1&id=3#"),
        ("", ""),
        ("?", "?"),
        ("?e", ""),
        ("??e=1", "??e=1"),  # the name is "?e"
    ],
)
def test_clean_raw_url_table(raw: str, expected: str) -> None:
    assert clean_raw_url(raw, _utm_or_e) == expected


def test_clean_raw_url_passes_decoded_names_once_each() -> None:
    seen: list[str] = []

    def remember(name: str) -> bool:
        seen.append(name)
        return False

    raw = "a.png?utm%5Fsource=1&amp;b+c=2&#38;d&#95;e=3&&=4#x=5"
    assert clean_raw_url(raw, remember) == raw
    assert seen == ["utm_source", "b c", "d_e", ""]


def test_decode_param_name() -> None:
    assert decode_param_name("utm%5Fsource") == "utm_source"
    assert decode_param_name("utm&#95;source") == "utm_source"
    assert decode_param_name("a+b") == "a b"
    assert decode_param_name("%zz") == "%zz"


_RAW_ALPHABET = st.sampled_from(
    [
        "a",
        "e",
        "=",
        "&",
        "&amp;",
        "&#38;",
        "&#x26;",
        "#",
        "?",
        ";",
        "%",
        "5F",
        "utm_",
        "\n",
        " ",
        "é",
    ]
)


@settings(max_examples=500, deadline=None)
@given(
    parts=st.lists(_RAW_ALPHABET, max_size=40),
    drop=st.sets(st.sampled_from(["a", "e", "utm_a", "utm_e", "", "ae", "a e", "utm_"])),
)
def test_clean_raw_url_property(parts: list[str], drop: set[str]) -> None:
    raw = "".join(parts)
    out = clean_raw_url(raw, lambda name: name in drop)
    assert len(out) <= len(raw)
    # a subsequence of the input
    it = iter(raw)
    assert all(ch in it for ch in out)
    # the part before the query is kept exactly
    assert out.startswith(raw.split("?", 1)[0])
    assert out.count("\n") == raw.count("\n")
    # idempotent: whatever is left is not removable any more
    assert clean_raw_url(out, lambda name: name in drop) == out


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=100))
def test_clean_raw_url_arbitrary_text(raw: str) -> None:
    out = clean_raw_url(raw, lambda name: len(name) % 2 == 0)
    it = iter(raw)
    assert len(out) <= len(raw)
    assert all(ch in it for ch in out)


# Shapes that make backtracking regexes explode; here their answers (their speed is bench/'s business).
@pytest.mark.parametrize(
    ("value", "entropy", "param_names", "path_tokens"),
    [
        ("abc" + "-a" * 40 + "!", False, [], 0),
        ("a" * 5000 + "!", True, ["x", "a" * 5000 + "!"], 1),  # judged on its head: 4096 hex digits
        ("abc." * 2000 + "png!", False, [], 0),
        ("A1b2" * 3000, True, ["x"], 1),  # all hex: as a bare key, a cache-buster
        ("-" * 10_000, False, [], 0),
    ],
)
def test_adversarial_values(value: str, entropy: bool, param_names: list[str], path_tokens: int) -> None:
    assert looks_high_entropy(value) is entropy
    hits = identifying_params(f"https://x.example/a?x={value}&{value}")
    assert [h.name for h in hits] == param_names
    assert all(h.reason == "high-entropy" for h in hits)
    assert len(identifying_path_tokens(f"https://x.example/{value}/a")) == path_tokens
    assert clean_raw_url(f"a?{value}=1&b", lambda n: True) == "a"
