"""Detection rules on real MIME messages built for the purpose: shape, hiding, conditional CSS, shared
verdicts, recipient identity, parties and the false-positive guards. True and false cases for each."""

from __future__ import annotations

import base64
import hashlib
from urllib.parse import quote

import pytest

from mailproxy.engine import Engine
from mailproxy.model import Party, Tier, Verdict

ENGINE = Engine()
RECIPIENT = "Alice.Smith@Example.org"
THIRD = "https://img.adnet.example/banner"  # an unknown third party


def msg(html: str, *, to: str = RECIPIENT, extra_headers: str = "") -> bytes:
    return (
        f"From: News <news@shop.example>\r\nTo: {to}\r\n{extra_headers}Subject: s\r\nMIME-Version: 1.0\r\n"
        "Content-Type: text/html; charset=utf-8\r\n\r\n" + html + "\r\n"
    ).encode()


def verdict_of(html: str, url_part: str, **kw: str) -> tuple[Verdict, tuple[str, ...]]:
    findings = ENGINE.analyse(msg(html, **kw))
    [f] = [f for f in findings if url_part in f.url]
    return f.verdict, f.reasons


# -- shape: declared size and hiding --------------------------------------------------------------------
@pytest.mark.parametrize(
    "html",
    [
        f'<img src="{THIRD}/a.png" width="1" height="1">',
        f'<img src="{THIRD}/a.png" width="2px" height="0">',
        f'<img src="{THIRD}/a.png" style="width:1px;height:1px">',
        f'<img src="{THIRD}/a.png" style="display:none">',
        f'<img src="{THIRD}/a.png" style="visibility:hidden">',
        f'<img src="{THIRD}/a.png" style="opacity:0">',
        f'<div style="display:none !important"><table><tr><td><img src="{THIRD}/a.png"></td></tr></table>',
        f'<div style="max-height:0;overflow:hidden"><img src="{THIRD}/a.png" width="600"></div>',
        f'<div style="width:0;height:0"><img src="{THIRD}/a.png"></div>',
        f'<style>.px {{ display: none }}</style><span class="px"><img src="{THIRD}/a.png"></span>',
        f'<img src="{THIRD}/a.png" hidden>',
    ],
)
def test_tiny_or_hidden_third_party_images_are_trackers(html: str) -> None:
    verdict, reasons = verdict_of(html, "/a.png")
    assert verdict is Verdict.TRACKER
    assert any(r.startswith("hidden:") for r in reasons)


@pytest.mark.parametrize(
    "html",
    [
        f'<img src="{THIRD}/a.png" width="600" height="300">',
        f'<img src="{THIRD}/a.png" style="display:block;width:600px">',
        f'<div style="display:block"><img src="{THIRD}/a.png"></div>',
        f'<div style="opacity:0.9"><img src="{THIRD}/a.png"></div>',
        f'<!-- <div style="display:none"> --><img src="{THIRD}/a.png">',
        f'<div style="display:none"></div><img src="{THIRD}/a.png">',
        f'<style>.px {{ display: none }}</style><span class="other"><img src="{THIRD}/a.png"></span>',
    ],
)
def test_visible_images_are_not_trackers(html: str) -> None:
    verdict, _ = verdict_of(html, "/a.png")
    assert verdict is Verdict.CLEAN


# -- conditional CSS ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("css", "reason"),
    [
        (f"@media print {{ #_t {{ background-image: url({THIRD}/p.gif) }} }}", "conditional-css:print"),
        (
            f"@media (prefers-color-scheme: dark) {{ #_t::before {{ content: url({THIRD}/p.gif) }} }}",
            "conditional-css:prefers-color-scheme",
        ),
        (
            f"div.OutlookMessageHeader #_t {{ background-image: url({THIRD}/p.gif) }}",
            "conditional-css:forward",
        ),
        (
            f"table.moz-email-headers-table #_t {{ background-image: url({THIRD}/p.gif) }}",
            "conditional-css:forward",
        ),
    ],
)
def test_images_only_conditional_css_loads_are_trackers(css: str, reason: str) -> None:
    verdict, reasons = verdict_of(f"<style>{css}</style><div id=_t></div>", "/p.gif")
    assert verdict is Verdict.TRACKER and reason in reasons


def test_unconditional_css_background_is_clean() -> None:
    verdict, _ = verdict_of(f"<style>.hero {{ background-image: url({THIRD}/p.gif) }}</style>", "/p.gif")
    assert verdict is Verdict.CLEAN


# -- shared verdicts -----------------------------------------------------------------------------------------
def test_srcset_and_picture_share_the_verdict_of_their_element() -> None:
    html = (
        f'<picture><source srcset="{THIRD}/x2.png 2x"><img src="{THIRD}/x1.png" width="1" height="1">'
        "</picture>"
        f'<img src="{THIRD}/y1.png" srcset="{THIRD}/y2.png 2x" style="display:none">'
    )
    findings = ENGINE.analyse(msg(html))
    assert len(findings) == 4
    assert all(f.verdict is Verdict.TRACKER for f in findings)


# -- recipient identity ------------------------------------------------------------------------------------
def _encodings(addr: str) -> dict[str, str]:
    low = addr.lower()
    return {
        "raw": addr,
        "lower": low,
        "urlencoded": quote(low, safe=""),
        "base64": base64.b64encode(low.encode()).decode().rstrip("="),
        "base64url": base64.urlsafe_b64encode(low.encode()).decode().rstrip("="),
        **{
            alg: hashlib.new(alg, low.encode()).hexdigest()
            for alg in ("md5", "sha1", "sha224", "sha256", "sha384", "sha512")
        },
        "MD5-upper": hashlib.md5(low.encode()).hexdigest().upper(),
    }


@pytest.mark.parametrize("encoding", sorted(_encodings(RECIPIENT)))
def test_recipient_identity_in_the_path_makes_a_tracker(encoding: str) -> None:
    token = _encodings(RECIPIENT)[encoding]
    verdict, reasons = verdict_of(f'<img src="{THIRD}/{token}/hero.png" width="600">', "hero.png")
    assert verdict is Verdict.TRACKER
    assert any(r.startswith("recipient-identity:") for r in reasons)


@pytest.mark.parametrize("encoding", ["md5", "sha256", "base64", "urlencoded"])
def test_recipient_identity_in_the_query_is_identifying(encoding: str) -> None:
    token = _encodings(RECIPIENT)[encoding]
    verdict, _ = verdict_of(f'<img src="{THIRD}/hero.png?r={quote(token)}" width="600">', "hero.png")
    assert verdict is Verdict.IDENTIFYING


def test_another_address_is_not_the_recipient() -> None:
    token = hashlib.md5(b"bob@example.org").hexdigest()
    verdict, reasons = verdict_of(f'<img src="{THIRD}/{token[:8]}/hero.png" width="600">', "hero.png")
    assert verdict is Verdict.CLEAN and not reasons


def test_recipients_come_from_delivered_to_and_x_original_to() -> None:
    for header in ("Delivered-To", "X-Original-To", "Cc"):
        token = hashlib.sha1(b"carol@example.net").hexdigest()
        verdict, _ = verdict_of(
            f'<img src="{THIRD}/{token}/h.png" width="600">',
            "h.png",
            extra_headers=f"{header}: carol@example.net\r\n",
        )
        assert verdict is Verdict.TRACKER, header


# -- parties and guards -------------------------------------------------------------------------------
def test_first_party_spacer_without_identifier_is_not_a_tracker() -> None:
    verdict, _ = verdict_of('<img src="https://shop.example/i/spacer.gif" width="1" height="1">', "spacer")
    assert verdict is Verdict.CLEAN


def test_first_party_tiny_image_with_a_token_is_a_tracker() -> None:
    html = '<img src="https://shop.example/o.gif?uid=8f14e45fceea167a5a36dedd4bea2543" width="1" height="1">'
    verdict, _ = verdict_of(html, "o.gif")
    assert verdict is Verdict.TRACKER


def test_known_spacer_from_a_third_party_is_not_a_tracker() -> None:
    verdict, _ = verdict_of(
        '<img src="https://ts-svc.inxserver.com/transparent.gif" width="1" height="1">', "gif"
    )
    assert verdict is Verdict.CLEAN


def test_party_and_vendor_are_reported() -> None:
    html = (
        '<img src="https://cdn.shop.example/a.png" width="600">'
        '<img src="https://news.us5.list-manage.com/track/open.php?u=0123456789abcdef012345678&amp;id=0a1b2c3d4e">'
    )
    first, tracker = ENGINE.analyse(msg(html))
    assert first.party is Party.FIRST and first.verdict is Verdict.CLEAN
    assert tracker.party is Party.THIRD and tracker.vendor == "Mailchimp" and tracker.tier is Tier.HIGH


def test_cid_data_and_relative_references_are_not_findings() -> None:
    html = '<img src="cid:logo"><img src="data:image/png;base64,iVBORw0KGgo="><img src="/local.png">'
    assert ENGINE.analyse(msg(html)) == []


def test_base_href_resolves_relative_references() -> None:
    html = '<base href="https://news.us5.list-manage.com/"><img src="track/open.php?u=1&amp;id=2">'
    findings = ENGINE.analyse(msg(html))
    img = next(f for f in findings if "open.php" in f.url)
    assert img.url.startswith("https://news.us5.list-manage.com/track/") and img.verdict is Verdict.TRACKER


def test_a_long_lived_classifier_keeps_a_bounded_cache() -> None:
    from mailproxy.detect import classify
    from mailproxy.detect.trackers import TrackerDB

    c = classify.Classifier(TrackerDB.bundled())
    for i in range(classify._CACHE_LIMIT + 10):
        c.classify(f"https://cdn.example.net/{i}.png")
    assert len(c._cache) <= classify._CACHE_LIMIT
