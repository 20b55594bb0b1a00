"""User filter lists: Adblock Plus syntax, Disconnect JSON, URL normalisation, TrackerDB integration."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mailproxy.detect.filterlists import (
    AdblockList,
    DomainList,
    host_suffixes,
    load_adblock,
    load_disconnect,
    split_url,
)
from mailproxy.detect.trackers import TrackerDB
from mailproxy.errors import FilterListError
from mailproxy.model import Tier

ABP = """\
[Adblock Plus 2.0]
! Title: test list
! comment with ||commented.example^
||tracker.example^
||pure.example^
||pixel.example/open/
/track/open.php?
|https://start.example/beacon
end.example/px.gif|
/ss/o/*.gif
-email-pixel.
||img.example^$image,third-party
||script.example^$script
||firstparty.example^$~third-party
||siteonly.example^$domain=news.example
||notsite.example^$domain=~news.example
||weird.example^$csp=script-src 'none'
||UPPER.example^$IMAGE
/pixel\\.(gif|png)\\?uid=\\d+/
/\\/Beacon\\/\\D+\\.gif/
/bad(regex/
||
*
@@||tracker.example/allowed/
@@/ss/o/ok.gif
@@||img.example^$document
brand.example##.ad-banner
brand.example#@#.ad
0.0.0.0 hosts.example
"""


@pytest.fixture
def abp(tmp_path: Path) -> AdblockList:
    path = tmp_path / "easytest.txt"
    path.write_text(ABP, encoding="utf-8")
    return load_adblock(path)


# --- URL helpers ----------------------------------------------------------------------------------


def test_split_url_normalises() -> None:
    s = split_url("  HTTPS://User:Pw@Sub.Example.COM.:8443/A/B.gif?X=1#frag ")
    assert s is not None
    parts = (s.scheme, s.host, s.port, s.path, s.query)
    assert parts == ("https", "sub.example.com", "8443", "/a/b.gif", "x=1")
    assert s.key == "sub.example.com/a/b.gif?x=1"
    assert s.url == "https://sub.example.com:8443/a/b.gif?x=1"
    bare = split_url("http://example.com")
    assert bare is not None and (bare.path, bare.query, bare.key) == ("/", "", "example.com/")


@pytest.mark.parametrize(
    "url",
    [
        "",
        "relative/x.gif",
        "/x.gif",
        "//example.com/x",
        "mailto:a@b.c",
        "https://",
        "https://a b/",
        "https://[::1/",
        "https://x.com:port/",
        "file:///etc/passwd",
        "http:example.com",
    ],
)
def test_split_url_rejects(url: str) -> None:
    assert split_url(url) is None


def test_split_url_slow_path_hosts() -> None:
    assert split_url("https://b\u00fccher.example/x").host == "xn--bcher-kva.example"  # type: ignore[union-attr]
    assert split_url("https://[2001:DB8::1]:443/x").host == "[2001:db8::1]"  # type: ignore[union-attr]
    assert split_url("https://ex%61mple.com/x").host == "example.com"  # type: ignore[union-attr]


def test_host_suffixes() -> None:
    assert list(host_suffixes("a.b.c")) == ["a.b.c", "b.c", "c"]
    assert list(host_suffixes("localhost")) == ["localhost"]


# --- Adblock Plus ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "rule"),
    [
        ("https://tracker.example/x.gif", "||tracker.example^"),
        ("https://a.b.tracker.example/x.gif", "||tracker.example^"),
        ("https://pixel.example/open/123", "||pixel.example/open/"),
        ("https://sub.pixel.example/open/", "||pixel.example/open/"),
        ("https://any.example/track/open.php?u=1", "/track/open.php?"),
        ("https://start.example/beacon?id=1", "|https://start.example/beacon"),
        ("https://cdn.end.example/px.gif", "end.example/px.gif|"),
        ("https://x.example/ss/o/abc/def.gif", "/ss/o/*.gif"),
        ("https://x.example/a-email-pixel.gif", "-email-pixel."),
        ("https://img.example/logo.png", "||img.example^$image,third-party"),
        ("https://notsite.example/x", "||notsite.example^$domain=~news.example"),
        ("https://upper.example/x", "||UPPER.example^$IMAGE"),
        ("https://x.example/pixel.gif?uid=123", "/pixel\\.(gif|png)\\?uid=\\d+/"),
        ("https://x.example/Beacon/abc.gif", "/\\/Beacon\\/\\D+\\.gif/"),
        ("https://hosts.example/x", "0.0.0.0 hosts.example"),
        ("HTTPS://TRACKER.EXAMPLE/X", "||tracker.example^"),
    ],
)
def test_adblock_matches(abp: AdblockList, url: str, rule: str) -> None:
    hit = abp.match(url)
    assert hit is not None, url
    assert hit.rule == rule
    assert hit.list_name == "easytest"
    assert hit.origin.startswith(str(abp.origin) + ":")


@pytest.mark.parametrize(
    "url",
    [
        "https://tracker.example.org/x",  # ^ needs a separator, "." is none
        "https://nottracker.example/x",
        "https://tracker.example/allowed/x.gif",  # @@ exception
        "https://x.example/ss/o/ok.gif",  # @@ exception
        "https://pixel.example/closed/1",
        "https://other.example/?u=https://start.example/beacon",  # | anchors at the start
        "https://cdn.end.example/px.gif?x=1",  # | anchors at the end
        "https://x.example/aemail-pixel.gif",
        "https://script.example/x.js",  # script-only rule skipped
        "https://firstparty.example/x",  # first-party-only rule skipped
        "https://siteonly.example/x",  # domain= restricted rule skipped
        "https://weird.example/x",  # unsupported option skipped
        "https://x.example/pixel.gif?uid=abc",
        "https://x.example/Beacon/123.gif",  # \\D keeps its meaning (case kept for regex rules)
        "https://commented.example/x",
        "https://brand.example/anything",  # cosmetic rules ignored; "||" and "*" never match everything
        "not a url",
        "",
    ],
)
def test_adblock_non_matches(abp: AdblockList, url: str) -> None:
    assert abp.match(url) is None


def test_adblock_counts_skipped_rules(abp: AdblockList) -> None:
    # script, ~third-party, domain=, csp=, bad regex, "||", "*", $document exception
    assert abp.skipped == 8
    assert len(abp) == 16


def test_adblock_match_host(abp: AdblockList) -> None:
    assert abp.match_host("pure.example") is not None
    assert abp.match_host("sub.pure.example").host_level  # type: ignore[union-attr]
    assert abp.match_host("hosts.example") is not None
    # An exception anchored on the host means not every URL there is blocked.
    assert abp.match_host("tracker.example") is None
    # Path rules never decide a whole host.
    assert abp.match_host("pixel.example") is None
    assert abp.match_host("start.example") is None
    assert abp.match_host("not a host") is None


def test_adblock_from_lines_in_memory() -> None:
    lst = AdblockList.from_lines(["||a.example^", "@@||a.example/ok"], name="mem")
    assert lst.match("https://a.example/x") is not None
    assert lst.match("https://a.example/ok") is None
    assert lst.origin == "<memory>"


def _write_bytes(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_adblock_missing_and_directory(tmp_path: Path) -> None:
    with pytest.raises(FilterListError, match="nope.txt"):
        load_adblock(tmp_path / "nope.txt")
    with pytest.raises(FilterListError, match=str(tmp_path)):
        load_adblock(tmp_path)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"||a.example^\n! ok\n||b\xff\xfe.example^\n", "line 3: not UTF-8"),
        (b"||a.example^\n||b.example^\x00\n", "line 2: binary"),
        (b"<!DOCTYPE html>\n<html><body>404</body></html>\n", "line 1: looks like HTML"),
        (b'! header\n{"categories": {}}\n', "line 2: looks like JSON"),
    ],
)
def test_adblock_malformed_files(tmp_path: Path, data: bytes, message: str) -> None:
    path = _write_bytes(tmp_path, "bad.txt", data)
    with pytest.raises(FilterListError) as info:
        load_adblock(path)
    assert str(path) in str(info.value)
    assert message in str(info.value)


def test_adblock_empty_and_bom(tmp_path: Path) -> None:
    assert len(load_adblock(_write_bytes(tmp_path, "empty.txt", b""))) == 0
    lst = load_adblock(_write_bytes(tmp_path, "bom.txt", "\ufeff||bom.example^\r\n".encode()))
    assert lst.match("https://bom.example/x") is not None


def test_adblock_big_list_loads_and_matches(tmp_path: Path) -> None:
    lines = ["[Adblock Plus 2.0]", "! big"]
    for i in range(8000):
        lines.append(f"||tracker{i}.example^")
    for i in range(4000):
        lines.append(f"||cdn{i}.example/px/{i}/")
    for i in range(4000):
        lines.append(f"/beacon{i}/open.gif?")
    for i in range(2000):
        lines.append(f"-tok{i}-pixel.")
    for i in range(1000):
        lines.append(f"@@||tracker{i}.example/ok/")
    for i in range(1000):
        lines.append(f"*/weird{i}*")
    path = tmp_path / "big.txt"
    path.write_text("\n".join(lines), encoding="utf-8")
    lst = load_adblock(path)
    assert len(lst) == 20000
    urls = [f"https://img{i}.brand.example/images/banner-{i}.png?w=600" for i in range(2000)]
    urls += [f"https://x.tracker{i}.example/a.gif" for i in range(2000)]
    urls += [f"https://site.example/beacon{i}/open.gif?id=1" for i in range(2000)]
    urls += [f"https://site.example/a-tok{i}-pixel.gif" for i in range(1000)]
    urls += [f"https://site.example/weird{i}/x" for i in range(1000)]
    hits = sum(1 for u in urls if lst.match(u) is not None)
    assert hits == 6000
    assert lst.match("https://tracker5.example/ok/x") is None
    assert lst.match("https://cdn7.example/px/7/a.gif") is not None
    assert lst.match("https://cdn7.example/px/8/a.gif") is None


# --- Disconnect -----------------------------------------------------------------------------------

DISCONNECT = {
    "license": "test data written for this test",
    "categories": {
        "Email": [
            {"OpenCo": {"https://openco.example/": ["openco.example", "opens.example"]}},
            {"FlagCo": {"https://flagco.example/": ["flagco.example"], "performance": "true"}},
        ],
        "EmailAggressive": [{"EspCo": {"https://espco.example/": ["espco.example"]}}],
        "Advertising": [{"AdCo": {"https://adco.example/": ["adco.example"]}}],
    },
}


def _json(tmp_path: Path, data: object, name: str = "disconnect.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(data, indent=1), encoding="utf-8")
    return path


def test_disconnect_default_categories(tmp_path: Path) -> None:
    lst = load_disconnect(_json(tmp_path, DISCONNECT))
    assert len(lst) == 4
    hit = lst.match_host("pixel.opens.example")
    assert hit is not None and hit.vendor == "OpenCo" and hit.host_level and hit.list_name == "disconnect"
    assert lst.match_host("FlagCo.example.").vendor == "FlagCo"  # type: ignore[union-attr]
    assert lst.match_host("espco.example") is not None
    assert lst.match_host("adco.example") is None
    assert lst.match_host("notopens.example") is None
    assert lst.match("https://a.espco.example/logo.png") is not None
    assert lst.match("garbage") is None


def test_disconnect_chosen_categories(tmp_path: Path) -> None:
    lst = load_disconnect(_json(tmp_path, DISCONNECT), categories=["email"])
    assert lst.match_host("openco.example") is not None
    assert lst.match_host("espco.example") is None


def test_disconnect_older_shape(tmp_path: Path) -> None:
    old = {"Email": [{"OldCo": ["old.example", "*.older.example"]}]}
    lst = load_disconnect(_json(tmp_path, old))
    assert lst.match_host("x.old.example").vendor == "OldCo"  # type: ignore[union-attr]
    assert lst.match_host("older.example") is not None


def test_disconnect_skips_invalid_domains(tmp_path: Path) -> None:
    data = {"categories": {"Email": [{"X": {"https://x/": ["ok.example", "not a domain", "com"]}}]}}
    lst = load_disconnect(_json(tmp_path, data))
    assert len(lst) == 1


def test_disconnect_no_wanted_category_is_empty(tmp_path: Path) -> None:
    lst = load_disconnect(_json(tmp_path, {"categories": {"Advertising": []}}))
    assert len(lst) == 0 and lst.match_host("adco.example") is None


@pytest.mark.parametrize(
    ("data", "where"),
    [
        ([1, 2], "top level"),
        ({"categories": []}, "categories"),
        ({}, "categories"),
        ({"categories": {"Email": {"a": 1}}}, "categories.Email"),
        ({"categories": {"Email": ["x"]}}, "categories.Email[0]"),
        ({"categories": {"Email": [{"V": 3}]}}, "categories.Email[0].V"),
        ({"categories": {"Email": [{"V": {"https://v/": [1]}}]}}, "categories.Email[0].V"),
    ],
)
def test_disconnect_bad_structure(tmp_path: Path, data: object, where: str) -> None:
    path = _json(tmp_path, data)
    with pytest.raises(FilterListError) as info:
        load_disconnect(path)
    assert f"{path}: {where}: expected" in str(info.value)


def test_disconnect_invalid_json_names_line(tmp_path: Path) -> None:
    path = _write_bytes(tmp_path, "d.json", b'{\n "categories": {\n  "Email": [,]\n }\n}\n')
    with pytest.raises(FilterListError, match=r"d\.json: line 3: invalid JSON"):
        load_disconnect(path)
    with pytest.raises(FilterListError, match="missing.json"):
        DomainList.from_disconnect(tmp_path / "missing.json")


# --- TrackerDB with user lists --------------------------------------------------------------------


@pytest.fixture
def loaded(tmp_path: Path) -> TrackerDB:
    abp_path = tmp_path / "easytest.txt"
    abp_path.write_text(
        "||listed.example^\n/custom-open.gif\n/p/rp/\n/spacer.gif\n||mcusercontent.com^\n", encoding="utf-8"
    )
    return TrackerDB.load(adblock=[abp_path], disconnect=[_json(tmp_path, DISCONNECT)])


def test_db_reports_filter_list_matches(loaded: TrackerDB) -> None:
    m = loaded.match("https://a.listed.example/x.png")
    assert m is not None and m.reason == "filter-list:easytest" and m.tier is Tier.HIGH and m.vendor is None
    assert "easytest.txt:1: ||listed.example^" in m.source
    m = loaded.match("https://brand.example/custom-open.gif")
    assert m is not None and m.reason == "filter-list:easytest" and m.tier is Tier.MEDIUM
    m = loaded.match("https://px.opens.example/a.gif")
    assert m is not None and (m.reason, m.vendor, m.tier) == ("filter-list:disconnect", "OpenCo", Tier.HIGH)
    assert len(loaded) == len(TrackerDB.bundled()) + 5 + 4


def test_db_precedence_with_lists(loaded: TrackerDB) -> None:
    # Vendor knowledge beats the list; content and spacers beat the list; the list beats generic shapes.
    assert loaded.match("https://acme.us3.list-manage.com/track/open.php?u=1").vendor == "Mailchimp"  # type: ignore[union-attr]
    assert loaded.match("https://brand.example/p/rp/abc.png") is None
    assert loaded.match("https://brand.example/img/spacer.gif") is None
    m = loaded.match("https://listed.example/open.gif")
    assert m is not None and m.reason == "filter-list:easytest"


def test_db_match_host_and_vendor_with_lists(loaded: TrackerDB) -> None:
    assert loaded.match_host("listed.example").reason == "filter-list:easytest"  # type: ignore[union-attr]
    assert loaded.match_host("espco.example").vendor == "EspCo"  # type: ignore[union-attr]
    assert loaded.match_host("brand.example") is None
    assert loaded.vendor_for_host("opens.example") == "OpenCo"
    assert loaded.vendor_for_host("mcusercontent.com") == "Mailchimp"  # bundled knowledge first


def test_db_load_reports_bad_list(tmp_path: Path) -> None:
    with pytest.raises(FilterListError, match="absent.txt"):
        TrackerDB.load(adblock=[tmp_path / "absent.txt"])
