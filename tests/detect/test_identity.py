"""Tests for mailproxy.detect.identity: the recipient's address in URLs, in every encoding."""

from __future__ import annotations

import base64
import email
import email.policy
import hashlib
import re
from urllib.parse import quote, quote_plus

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailproxy.detect.identity import (
    _QUERY_SEP_RE,
    _STD_ALPHABET,
    HASH_ALGORITHMS,
    IdentityHit,
    IdentityMatcher,
    _b64_atoms,
    _compile,
    _query_of,
    _query_pairs,
    _split_url,
    recipients_from_headers,
)

# Chosen so that its base64 holds a "+" (standard alphabet) where base64url has a "-", and so that
# its URL encoding has a hex escape with a letter (%2B) to test both hex cases.
ADDR = "Kate.Ho~~a+Nl@Example.org"
LOWER = ADDR.lower()
OTHER = "kate.ho~~a+nl@example.com"

MATCHER = IdentityMatcher([ADDR])


def _b64(data: str, *, url: bool, pad: bool) -> str:
    raw = data.encode()
    out = (base64.urlsafe_b64encode(raw) if url else base64.b64encode(raw)).decode()
    return out if pad else out.rstrip("=")


def _encodings() -> list[tuple[str, str]]:
    """(encoding label, token) for every encoding the matcher must find."""
    cases = [
        ("raw", ADDR),
        ("lower", LOWER),
        ("urlencoded", quote(ADDR, safe="")),
        ("urlencoded", quote_plus(ADDR)),
        ("urlencoded", quote(LOWER, safe="")),
        ("urlencoded", quote(ADDR, safe="").replace("%2B", "%2b")),  # lower-case hex
        ("urlencoded", "Kate.Ho%7E%7Ea%2BNl%40Example.org"),  # PHP urlencode also escapes "~"
    ]
    for form in (ADDR, LOWER):
        for pad in (True, False):
            cases.append(("base64", _b64(form, url=False, pad=pad)))
            cases.append(("base64url", _b64(form, url=True, pad=pad)))
        for algo in HASH_ALGORITHMS:
            digest = hashlib.new(algo, form.encode()).hexdigest()
            cases.append((algo, digest))
            cases.append((algo, digest.upper()))
    return cases


ENCODINGS = _encodings()
LOCATIONS = [
    ("host", None, "https://{}@t.example/p.gif"),
    ("path", None, "https://t.example/o/{}/p.gif"),
    ("query", "id", "https://t.example/p.gif?a=1&id={}&b=2"),
    ("fragment", None, "https://t.example/p.gif#{}"),
]


def test_fixture_address_exercises_both_base64_alphabets() -> None:
    assert "+" in _b64(ADDR, url=False, pad=True)
    assert "-" in _b64(ADDR, url=True, pad=True)
    assert _b64(ADDR, url=False, pad=True).endswith("=")


@pytest.mark.parametrize(("location", "param", "template"), LOCATIONS)
@pytest.mark.parametrize(("encoding", "token"), ENCODINGS)
def test_every_encoding_in_every_location(
    encoding: str, token: str, location: str, param: str | None, template: str
) -> None:
    url = template.format(token)
    assert MATCHER.find(url) == [IdentityHit(encoding=encoding, location=location, param=param)]


@pytest.mark.parametrize("algo", HASH_ALGORITHMS)
def test_digest_as_a_subdomain(algo: str) -> None:
    digest = hashlib.new(algo, LOWER.encode()).hexdigest()
    url = f"https://{digest}.pixel.example/o.gif"
    assert MATCHER.find(url) == [IdentityHit(encoding=algo, location="host", param=None)]


def test_stripped_lowercased_digest_of_padded_input() -> None:
    m = IdentityMatcher(["  Alice@Example.ORG "])
    md5 = hashlib.md5(b"alice@example.org").hexdigest()
    assert m.find(f"https://li.example/imp?s=1&m={md5}") == [IdentityHit("md5", "query", "m")]


@pytest.mark.parametrize(
    "url",
    [
        f"https://t.example/p.gif?e={OTHER}",  # another address
        "https://t.example/p.gif?e=bob@example.org",
        f"https://t.example/p.gif?e=m{LOWER}",  # a longer address ending in ours
        f"https://t.example/p.gif?e={LOWER}.uk",  # a longer domain
        "https://t.example/p.gif?e=kate.ho~~a+nl",  # the local part alone
        "https://t.example/p.gif?e=kate.ho~~a%2Bnl",
        f"https://t.example/p.gif?m={hashlib.md5(OTHER.encode()).hexdigest()}",  # other's hash
        f"https://t.example/p.gif?m={hashlib.sha256(OTHER.encode()).hexdigest()}",
        f"https://t.example/p.gif?m={hashlib.md5(LOWER.encode()).hexdigest()[:31]}",  # partial
        f"https://t.example/p.gif?m={hashlib.sha1(LOWER.encode()).hexdigest()[1:]}",
        f"https://t.example/p.gif?d={_b64(OTHER, url=False, pad=True)}",  # other's base64
        f"https://t.example/p.gif?d={_b64('kate.ho~~a+nl', url=False, pad=False)}",
        "https://t.example/images/hero.png?w=600&h=400",
        "",
        "not a url at all",
    ],
)
def test_false_cases(url: str) -> None:
    assert MATCHER.find(url) == []


@pytest.mark.parametrize("prefix", ["", "x", "e=", "id=", "email=", "email:", '{"e":"'])
@pytest.mark.parametrize("suffix", ["", "|1", "&x=12", '","c":42}'])
@pytest.mark.parametrize("url_safe", [False, True])
def test_base64_inside_a_longer_token_at_any_offset(prefix: str, suffix: str, url_safe: bool) -> None:
    token = _b64(prefix + LOWER + suffix, url=url_safe, pad=False)
    hits = MATCHER.find(f"https://t.example/o?d={token}")
    assert [(h.location, h.param) for h in hits] == [("query", "d")]
    assert hits[0].encoding in {"base64", "base64url"}


def test_base64_atoms_reproduce_the_standard_encoding() -> None:
    for text in (b"a", b"ab", b"abc", b"alice@example.org", bytes(range(250, 256))):
        atoms, fixed = _b64_atoms(text, 0, _STD_ALPHABET)
        assert re.fullmatch("".join(atoms), base64.b64encode(text).decode().rstrip("="))
        assert base64.b64encode(text).decode().startswith(fixed)


def test_percent_encoded_and_nested_redirect() -> None:
    inner = "https://tracker.example/o?email=" + quote(LOWER, safe="")
    url = "https://click.example/r?u=" + quote(inner, safe="")
    assert MATCHER.find(url) == [IdentityHit("urlencoded", "query", "u")]


def test_raw_address_and_encodings_in_one_url_are_all_reported_in_order() -> None:
    md5 = hashlib.md5(LOWER.encode()).hexdigest()
    b64url = _b64(LOWER, url=True, pad=False)
    url = f"https://{md5}.t.example/{ADDR}/x?e={quote(LOWER, safe='')}#{b64url}"
    assert MATCHER.find(url) == [
        IdentityHit("md5", "host", None),
        IdentityHit("raw", "path", None),
        IdentityHit("urlencoded", "query", "e"),
        IdentityHit("base64url", "fragment", None),
    ]


def test_address_as_bare_query_key_and_entity_separators() -> None:
    assert MATCHER.find(f"https://t.example/p?{LOWER}") == [IdentityHit("lower", "query", LOWER)]
    url = f"https://t.example/p?a=1&amp;em={LOWER}&#38;b=2"
    assert MATCHER.find(url) == [IdentityHit("lower", "query", "em")]


def test_mixed_case_variant_counts_as_raw() -> None:
    assert MATCHER.find(f"https://t.example/p?e={ADDR.upper()}") == [IdentityHit("raw", "query", "e")]


def test_empty_and_invalid_recipients() -> None:
    empty = IdentityMatcher([])
    assert not empty
    assert empty.find(f"https://t.example/p?e={LOWER}") == []
    junk = IdentityMatcher(["", "   ", "not-an-address", "a@b", "undisclosed-recipients:;"])
    assert not junk
    assert bool(MATCHER)


def test_address_with_a_lone_surrogate_is_ignored() -> None:
    # Undecodable header bytes kept as surrogates have no UTF-8 form to digest or encode; such an
    # address once compiled into empty needles that matched every URL component.
    broken = "\udce9x@example.org"
    assert not IdentityMatcher([broken])
    assert IdentityMatcher([broken]).find("https://t.example/p.gif?a=1&b=2") == []
    m = IdentityMatcher([broken, LOWER])
    assert repr(m) == "IdentityMatcher(<1 recipients>)"
    assert m.find("https://u@t.example/p.gif?a=1&b=2") == []
    assert m.find(f"https://t.example/p.gif?e={LOWER}") == [IdentityHit("raw", "query", "e")]


def test_dedupes_and_hides_addresses_in_repr() -> None:
    m = IdentityMatcher([LOWER, LOWER, f" {LOWER} ", f"<{LOWER}>"])
    assert repr(m) == "IdentityMatcher(<1 recipients>)"
    assert LOWER not in repr(m)


def test_several_recipients() -> None:
    m = IdentityMatcher(["a.one@example.org", "b.two@example.net"])
    md5 = hashlib.md5(b"b.two@example.net").hexdigest()
    assert m.find(f"https://t.example/p?x={md5}") == [IdentityHit("md5", "query", "x")]
    assert m.find("https://t.example/p?x=a.one@example.org") == [IdentityHit("raw", "query", "x")]


def test_cache_returns_independent_lists() -> None:
    m = IdentityMatcher([LOWER])
    url = f"https://t.example/p?e={LOWER}"
    first = m.find(url)
    first.clear()
    assert m.find(url) == [IdentityHit("raw", "query", "e")]


@pytest.mark.parametrize(
    "url",
    ["http://[::1", "%", "%%%41", "?&&&=#", "#?#", "//", "http://", "\x00\ud800@", "a" * 100_000],
)
def test_garbage_urls_do_not_raise(url: str) -> None:
    assert MATCHER.find(url) == []


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(codec="utf-8") | st.sampled_from("%?&#=@:/.+"), max_size=200))
def test_find_never_raises(url: str) -> None:
    assert isinstance(MATCHER.find(url), list)


_GATE_NEEDLES = [
    _compile((ADDR,)),
    # Beyond ASCII, case-insensitive matching pairs "ſ" with "s" and "ı" with "i": the regexes alone.
    _compile(("jürgen.straße@example.de", "kiss@example.com", "ſam@example.com")),
    _compile(("kiss@example.com",)),
]
_NEAR_MISSES = [LOWER, ADDR.upper(), "kiss@example.com", "KIſS@EXAMPLE.COM", "JÜRGEN.STRASSE@example.de"]
_NEAR_MISSES += ["sam@example.com", "ſam@example.com"]
_NEAR_MISSES += [quote(LOWER, safe=""), hashlib.md5(LOWER.encode()).hexdigest().upper()]
_NEAR_MISSES += [_b64(LOWER, url=True, pad=False)[3:], _b64("x" + ADDR, url=False, pad=True)]


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(_GATE_NEEDLES),
    st.text(alphabet=st.sampled_from("aAsSkKıſİ%@.4_-+/=ü"), max_size=8),
    st.sampled_from(_NEAR_MISSES),
    st.text(alphabet=st.sampled_from("aAsSkKıſİ%@.4_-+/=ü"), max_size=8),
)
def test_substring_gates_only_skip_regexes_that_cannot_match(
    needles: object, before: str, token: str, after: str
) -> None:
    from mailproxy.detect.identity import _Needles

    assert isinstance(needles, _Needles)
    for text in (before + token + after, before + token[1:] + after, before + token.swapcase() + after):
        regexes = (needles.raw_re.re, needles.ci_re.re, needles.b64_re.re)
        assert needles.any_match(text) == any(rx.search(text) for rx in regexes)
        for gated, regex in (
            (needles.raw_matches, needles.raw_re.re),
            (needles.ci_matches, needles.ci_re.re),
            (needles.b64_matches, needles.b64_re.re),
        ):
            assert [m.span() for m in gated(text)] == [m.span() for m in regex.finditer(text)]


_LOCAL = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._+-~",
    min_size=4,
    max_size=20,
)


@settings(max_examples=150, deadline=None)
@given(
    local=_LOCAL,
    prefix=st.binary(max_size=5),
    suffix=st.binary(max_size=5),
    algo=st.sampled_from(HASH_ALGORITHMS),
)
def test_property_any_address_is_found(local: str, prefix: bytes, suffix: bytes, algo: str) -> None:
    address = f"{local}@mail.example.org"
    m = IdentityMatcher([address])
    blob = base64.urlsafe_b64encode(prefix + address.encode() + suffix).decode().rstrip("=")
    assert [h.param for h in m.find(f"https://t.example/o?d={blob}")] == ["d"]
    digest = hashlib.new(algo, address.lower().encode()).hexdigest().upper()
    assert m.find(f"https://t.example/o?h={digest}") == [IdentityHit(algo, "query", "h")]


def test_split_url_tolerates_odd_shapes() -> None:
    parts = _split_url("https://u@h.example:8080/a/b?x=1&#38;y=2#frag?z")
    assert (parts.host, parts.path, parts.query, parts.fragment) == (
        "u@h.example:8080",
        "/a/b",
        "x=1&#38;y=2",
        "frag?z",
    )
    parts = _split_url("/rel/p.gif?q")
    assert (parts.host, parts.path, parts.query, parts.fragment) == ("", "/rel/p.gif", "q", None)
    parts = _split_url("mailto:a@b.example")
    assert (parts.host, parts.path) == ("", "a@b.example")


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(["&", "&amp;", "&AMP;", "&#38;", "&#x26;", "&#95;", "&#", "amp;", "=", "a"])))
def test_query_pairs_split_like_the_separator_regex(pieces: list[str]) -> None:
    # The plain split taken without entity-encoded separators must agree with the full rule.
    query = "".join(pieces)
    expected = [
        (name, value, bool(eq))
        for name, eq, value in (pair.partition("=") for pair in _QUERY_SEP_RE.split(query) if pair)
    ]
    assert _query_pairs(query) == expected
    assert _query_of("https://t.example/p?" + query) == _split_url("https://t.example/p?" + query).query


# --- recipients_from_headers ---------------------------------------------------------------------


def test_recipients_from_headers() -> None:
    msg = email.message_from_string(
        "To: Alice <Alice@Example.org>, bob@example.net\n"
        'Cc: "Carol, C." <carol@example.com>, alice@example.org\n'
        "Delivered-To: dave+inbox@example.org\n"
        "X-Original-To: erin@example.org\n"
        "From: news@sender.example\n"
        "\nbody\n"
    )
    assert recipients_from_headers(msg, extra=["Login@Example.org", "not-an-address"]) == (
        "alice@example.org",
        "bob@example.net",
        "carol@example.com",
        "dave+inbox@example.org",
        "erin@example.org",
        "login@example.org",
    )


@pytest.mark.parametrize("policy", [email.policy.compat32, email.policy.default])
def test_recipients_from_malformed_headers(policy: email.policy.Policy) -> None:
    raw = (
        b"To: undisclosed-recipients:;\r\n"
        b"Cc: =?utf-8?q?broken <<<@@@>>> \xff\xfe, ok@example.org\r\n"
        b"Delivered-To: \r\n"
        b'X-Original-To: <"weird"@@example.org>\r\n'
        b"\r\nbody\r\n"
    )
    msg = email.message_from_bytes(raw, policy=policy)
    got = recipients_from_headers(msg)
    assert "ok@example.org" in got
    assert all("@" in a and a == a.lower() for a in got)


def test_recipients_from_headers_without_any() -> None:
    msg = email.message_from_string("Subject: hi\n\nbody\n")
    assert recipients_from_headers(msg) == ()
    assert recipients_from_headers(msg, extra=["me@example.org"]) == ("me@example.org",)


def test_address_followed_by_a_file_extension_is_found() -> None:
    # A per-recipient pixel file named after the address (seen in the generated corpus).
    m = IdentityMatcher(["john.berg5@example.com"])
    assert m.find("https://n.example.fr/t/w/john.berg5%40example.com.gif")
    assert not m.find("https://n.example.fr/t/john.berg5@example.com.evil/x")
    assert not m.find("https://n.example.fr/t/john.berg5@example.com.gifs/x")
