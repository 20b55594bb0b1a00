"""Known-tracker dataset and TrackerDB: every trackers.md section 5 row, false cases, bad input, speed."""

from __future__ import annotations

import re
import tomllib
from importlib import resources
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailproxy.detect.filterlists import split_url
from mailproxy.detect.trackers import TrackerDB, TrackerMatch, _literal_prefix, _PatternSet
from mailproxy.errors import ConfigError
from mailproxy.model import Tier

MD5 = "0123456789abcdef0123456789abcdef"

# (trackers.md §5 row, URL built from the row's shape, expected vendor). Every pattern of the table has a
# sample; test_every_dataset_rule_has_a_sample checks that each rule of the TOML is exercised.
SAMPLES: list[tuple[int, str, str]] = [
    (
        1,
        "https://acme.us3.list-manage.com/track/open.php?u=0123456789abcdef012345678&id=0123456789&e=abcdef0123",
        "Mailchimp",
    ),
    (1, "https://us12.mailchimp.com/mctx/opens?xid=abc123&uid=42", "Mailchimp"),
    (2, "https://mandrillapp.com/track/open.php?u=30000001&id=0f3e2d1c0b", "Mandrill"),
    (3, "https://u1234567.ct.sendgrid.net/wf/open?upn=AbCdEf-123_xyz", "SendGrid"),
    (3, "https://links.brand.example/wf/open?upn=AbCdEf", "SendGrid"),
    (3, "https://links.brand.example/wf/open?x=1&upn=AbCdEf", "SendGrid"),
    (3, "https://u1.ct.sendgrid.net/ss/o/AbCdEf/3xy/GhIj", "SendGrid"),
    (3, "https://u1.ct.sendgrid.net/mpss/o/AbCdEf", "SendGrid"),
    (3, "https://u1.ct.sendgrid.net/trk?t=abc", "SendGrid"),
    (
        4,
        "https://a1b2c3d4.r.us-east-1.awstrack.me/I0/0100017f-abcd-ef01-0000-000000/AbCdEf=123",
        "Amazon SES",
    ),
    (5, "https://email.mg.shop.example/o/eJwlzEEOgiAQBdC7sNaFU0oFtA", "Mailgun"),
    (6, "https://pstmrk.it/open?m=v3_1.AbCdEf", "Postmark"),
    (7, "https://links.brand.example/q/AbCdEf-12~~/AAAAAQA~/RgRkAbC", "SparkPost"),
    (7, "https://spgo.sparkpostmail.com/q/AbCdEf", "SparkPost"),
    (7, "https://x.sparkpostmail2.com/q/AbCdEf", "SparkPost"),
    (8, "https://info.brand.example/e2t/o/5/f18dQhb0S7ks8dDMPbW2n0x6l2B9gXrN7sKj6v4", "HubSpot"),
    (8, "https://info.brand.example/e2t/to/VWabc123", "HubSpot"),
    (8, "https://d2v8tf04.na1.hubspotlinks.com/e3t/Cto/abc123", "HubSpot"),
    (8, "https://t.hubspotemail.net/e1t/o/5/f18dQhb0S7ks8dDMPbW2n0x6l2B9gXrN", "HubSpot"),
    (8, "https://t.hubspotfree-hrd.net/e1t/o/5/f18dQhb0", "HubSpot"),
    (8, "https://t.signauxdix.com/e1t/o/5/f18dQhb0", "HubSpot"),
    (8, "https://t.senalesdos.com/e1t/o/5/f18dQhb0", "HubSpot"),
    (8, "https://t.sigopn01.com/e1t/o/5/f18dQhb0", "HubSpot"),
    (8, "https://t.strk11.email/e1t/o/5/f18dQhb0", "HubSpot"),
    (8, "https://t.sidekickopen07.com/e1t/o/5/f18dQhb0", "HubSpot"),
    (8, "https://t.hsms06.com/e1t/o/5/f18dQhb0", "HubSpot"),
    (8, "https://d1.hubspotlinks.com/Bto/abc123", "HubSpot"),
    (9, "https://cl.exct.net/open.aspx?ffcb10-fe8a1c7a7d6c0c7b-fe2a1571", "Salesforce Marketing Cloud"),
    (9, "https://pixel.inbox.exacttarget.com/pixel.gif?r=abc123", "Salesforce Marketing Cloud"),
    (9, "https://nova.collect.igodigital.com/c2/7000000/track_email_open.gif", "Salesforce Marketing Cloud"),
    (10, "https://go.pardot.com/r/123456/open/1", "Salesforce Pardot"),
    (10, "https://info.brand.example/r/123456/open/1", "Salesforce Pardot"),
    (11, "https://trk.klaviyomail.com/AbC123/open", "Klaviyo"),
    (11, "https://ctrk.klclick.com/o/AbCdEf", "Klaviyo"),
    (11, "https://ctrk.klclick3.com/o/AbCdEf", "Klaviyo"),
    (11, "https://trk.klclick.com/wf/open?upn=AbCdEf", "Klaviyo"),
    (12, "https://ablink.email.brand.example/ss/o/AbCd/4ab/XyZ/ho.gif", "Braze"),
    (13, "https://link.mail.beehiiv.com/ss/o/AbCdEf/4ab/XyZ12/ho.gif", "beehiiv"),
    (14, "https://substack.com/o/AbCdEf?token=x", "Substack"),
    (14, "https://eotrx.substackcdn.com/open?token=AbCdEf", "Substack"),
    (15, "https://app-ab12.marketo.com/trk?t=1&mid=ABC-123-456:12345:1:2:3", "Marketo"),
    (16, "https://t.brand.example/r/?id=h1a2b3,4c5d6e,1", "Adobe Campaign"),
    (16, "https://edge.brand.example/ee/v1/open?xdm=AbC", "Adobe Campaign"),
    (16, "https://postoffice.adobe.com/po-server/link/open?trackingCode=AbC", "Adobe Campaign"),
    (16, "https://dpm.demdex.net/ibs:dpid=411&dpuuid=abc", "Adobe Campaign"),
    (17, "https://s1234.t.en25.com/e/FooterImages/FooterImage1?elq=AbC&siteid=123", "Oracle Eloqua"),
    (17, "https://info.brand.example/e/FooterImages/FooterImage1?elq=AbC", "Oracle Eloqua"),
    (18, "https://link.brand.example/pub/as?_ri_=X0Gzc2X%3DAbC&_ei_=EolaGGF4", "Oracle Responsys"),
    (19, "https://app.bm5150.com/t/o?x=AbC", "Oracle Bronto"),
    (19, "https://bm23.com/t/o?x=AbC", "Oracle Bronto"),
    (19, "https://news.brand.example/t/o?x=AbC", "Oracle Bronto"),
    (20, "https://open.mkt4177.com/open?x=AbC", "Acoustic (Silverpop)"),
    (20, "https://links.mkt41.net/open?x=AbC", "Acoustic (Silverpop)"),
    (20, "https://news.brand.example/eos/v1/AbCdEf", "Acoustic (Silverpop)"),
    (21, "https://news.brand.example/rts/open.aspx?tp=AbC", "Cheetah Digital"),
    (22, "https://news.brand.example/optiext/optiextension.dll?ID=AbC&TYPE=open", "Selligent"),
    (22, "https://t.slgnt.eu/AbC", "Selligent"),
    (22, "https://t.slgnt.us/AbC", "Selligent"),
    (22, "https://brand.emsecure.net/AbC", "Selligent"),
    (23, "https://link.brand.example/mo/AbCdEfGhIjKlMnOpQrStUv.gif", "Emarsys"),
    (23, "https://x.emarsys.com/e2t/o/AbCdEf", "Emarsys"),
    (24, "https://links.iterable.com/s/eo/AbC123/dEf456/12", "Iterable"),
    (25, "https://e.customeriomail.com/e/o/eyJhbGciOiJIUzI1NiJ9", "Customer.io"),
    (25, "https://track.customer.io/e/o/AbC", "Customer.io"),
    (25, "https://email.brand.example/e/o/" + "a" * 63, "Customer.io"),
    (26, "https://via.intercom.io/o?h=AbC", "Intercom"),
    (26, "https://intercom-mail-200.com/via/o?h=AbC", "Intercom"),
    (26, "https://intercom-mail.com/q/AbC", "Intercom"),
    (27, "https://brand.cmail20.com/t/i-o-abcd-efgh/o.gif", "Campaign Monitor"),
    (27, "https://brand.cmail19.com/ti/i-abcd-efgh/", "Campaign Monitor"),
    (27, "https://brand.createsend1.com/t/j-o-abcd-efgh/o.gif", "Campaign Monitor"),
    (28, "https://r20.rs6.net/on.jsp?ca=AbC&a=1&c=2", "Constant Contact"),
    (28, "https://img.constantcontact.com/images/p1x1.gif", "Constant Contact"),
    (29, "https://openrate.aweber.com/y/o/?l=AbC&m=1", "AWeber"),
    (30, "https://brand.activehosted.com/lt.php?nl=1&c=2&m=3&s=AbC&l=open", "ActiveCampaign"),
    (30, "https://brand.acemlna.com/lt.php?x=AbC", "ActiveCampaign"),
    (30, "https://brand.lt.acemlnb.com/Prod/link-tracker?nl=1&c=2&m=3&s=AbC&l=open", "ActiveCampaign"),
    (31, "https://open.convertkit-mail4.com/AbC123", "ConvertKit (Kit)"),
    (31, "https://convertkit-mail.com/o/AbC123", "ConvertKit (Kit)"),
    (32, "https://clicks.mlsend.com/tj/o/AbC", "MailerLite"),
    (32, "https://news.brand.example/link/o/AbC", "MailerLite"),
    (33, "https://r.email.trustedshops.example/tr/op/AbCdEf", "Brevo (Sendinblue)"),
    (33, "https://abc.sendibt3.com/tr/op/AbCdEf", "Brevo (Sendinblue)"),
    (33, "https://x.sp1-brevo.net/mk/op/AbCdEf", "Brevo (Sendinblue)"),
    (33, "https://img.sendibm1.com/AbC", "Brevo (Sendinblue)"),
    (33, "https://amxe.net/a1b2-c3d4-e5f6-0007.gif", "Brevo (Sendinblue)"),
    (34, "https://abc.mjt.lu/oo/AbC/12345678/e.gif", "Mailjet"),
    (34, "https://links.brand.example/oo/AbCdEf/aBcDeFgH/e.gif", "Mailjet"),
    (35, "https://brand.gr8.com/open.html?x=a62b&m=AbC&s=123", "GetResponse"),
    (36, "https://stats-eu2.crsend.com/stats/mc_12345_67890_abc-1", "CleverReach"),
    (37, "https://news.brand.example/d/d.gif?o0000abc", "Inxmail"),
    (37, "https://newsletter.inxmail.de/d?o0000abc", "Inxmail"),
    (37, "https://x.inxmail-commerce.com/tracking/AbC", "Inxmail"),
    (38, "https://brand.maillist-manage.com/clicks/AbC", "Zoho Campaigns"),
    (38, "https://brand.maillist-manage.eu/camp/open.gif?x=1", "Zoho Campaigns"),
    (38, "https://sender4.zohoinsights-crm.com/ocimage/AbC", "Zoho Campaigns"),
    (39, "https://link.sailthru.com/trk?x=1", "Sailthru"),
    (39, "https://link.brand.example/img/5f3c1a2b3c4d5e6f7a8b9c0d/abc.gif", "Sailthru"),
    (40, "https://brand.movable-ink-1234.com/p/cp/abc123/o.gif?mi_u=1", "Movable Ink"),
    (40, "https://brand.movable-ink-1234.com/p/up/abc123/o.gif", "Movable Ink"),
    (41, f"https://li.brand.example/imp?s=123456&sz=1x1&li=brand&m={MD5}&p=abc", "LiveIntent"),
    (41, f"https://ads.brand.example/imp?s=123456&sz=2x1&m={MD5}", "LiveIntent"),
    (41, "https://i.liadm.com/s/12345?bidder_id=1", "LiveIntent"),
    (42, "https://abc123.emltrk.com/v2/abc123?d=user", "Litmus Email Analytics"),
    (42, "https://abc123.emltrk.com/v2/abc123?rd", "Litmus Email Analytics"),
    (42, "https://abc123.emltrk.com/v2/abc123?f", "Litmus Email Analytics"),
    (42, "https://x.eoapxl.com/AbC", "Email on Acid"),
    (43, "https://github.com/notifications/beacon/ABCDEFG.gif", "GitHub"),
    (44, "https://www.linkedin.com/emimp/ip_AbC.gif", "LinkedIn"),
    (45, "https://notifications.google.com/g/img/AbC.gif", "Google"),
    (45, "https://notifications.googleapis.com/email/t/AbC/a.gif", "Google"),
    (45, "https://www.google.com/appserve/mkt/img/AbC.gif", "Google"),
    (45, "https://www.google-analytics.com/collect?v=1&tid=UA-1&cid=1&t=event", "Google"),
    (46, "https://www.facebook.com/email_open_log_pic.php?mid=AbC", "Meta"),
    (46, "https://www.fb.com/trk?x=1", "Meta"),
    (47, "https://beaconimages.netflix.net/img/BAAAAA.gif", "Netflix"),
    (48, "https://shop.brand.example/tools/emails/open/AbC/def", "Shopify"),
    (49, "https://engage.squarespace-mail.com/v2/a.gif?x=1", "Squarespace"),
    (49, "https://shoutout.wix.com/so/pixel/AbC", "Wix"),
    (50, "https://abc.svc.dynamics.com/t/i/AbCdEf", "Microsoft Dynamics 365"),
    (51, "https://t.yesware.com/t/AbC/def/spacer.gif", "Yesware"),
    (51, "https://mailtrack.io/trace/mail/AbC.png?u=1", "Mailtrack"),
    (51, "https://mailfoogae.appspot.com/t?sender=AbC&type=zerocontent&guid=1", "Streak"),
    (51, "https://r.superhuman.com/AbC.gif", "Superhuman"),
    (51, "https://track.mixmax.com/AbC", "Mixmax"),
    (51, "https://app1b.outreach.io/api/mailings/opened/AbC.gif", "Outreach"),
    (51, "https://sdr.salesloft.com/email_trackers/AbC/open.gif", "Salesloft"),
    (51, "https://ec2.gmtrack.net/AbC", "GMass"),
    (51, "https://link.gmreg5.net/AbC", "GMass"),
    # Shapes from elsewhere in trackers.md (sections 1.1, 2.1 and 4).
    (0, f"https://p.alcmpn.com/em/1/2/3.gif?email_md5_lc={MD5}", "Alliance Data (alcmpn)"),
    (0, "https://mailstat.us/tr/AbC", "Boomerang"),
    (0, "https://de.ioam.de/tx.io?st=AbC", "INFOnline (IVW)"),
    (0, "https://lists.brand.example/lists/ut.php?u=AbC", "phpList"),
    (0, "https://news.wwf.example/op/13/abc12-def34-ghi56.gif", "Optimizely Campaign"),
    (0, "https://epost.brand.example/action/view/123/abc/456?static=1", "artegic ELAINE"),
]

# Same vendors' content and click URLs, and ordinary content: must not match at all.
NOT_TRACKERS: list[str] = [
    "https://acme.us3.list-manage.com/track/click?u=abc&id=def&e=ghi",
    "https://mcusercontent.com/0123456789abcdef/images/logo.png",
    "https://mandrillapp.com/track/click/30000/brand.example?p=AbC",
    "https://u1.ct.sendgrid.net/ls/click?upn=AbCdEf",
    "https://a1b2c3d4.r.us-east-1.awstrack.me/L0/https:%2F%2Fbrand.example/1/0100017f/AbC=123",
    "https://email.mg.shop.example/c/eJwlzEEOgiAQBdC7sNaFU0oFtA",
    "https://firebasestorage.googleapis.com/v0/b/app.appspot.com/o/ejemplo-de-imagen.png?alt=media",
    "https://click.pstmrk.it/3s/brand.example/AbC",
    "https://links.brand.example/f/a/AbC~~/AAAAAQA~/RgRk",
    "https://d2.hubspotlinks.com/e3t/Ctc/abc123",
    "https://t.sidekickopen07.com/e1t/c/5/f18dQhb0",
    "https://info.brand.example/e2t/c/abc",
    "https://cl.exct.net/?qs=AbCdEf",
    "https://image.s7.sfmc-content.com/lib/fe3c/m/1/logo.png",
    "https://go.pardot.com/l/123/2020-01-01/AbC",
    "https://ctrk.klclick.com/l/AbCdEf",
    "https://ablink.email.brand.example/ls/click?upn=AbC",
    "https://substackcdn.com/image/fetch/w_1456,c_limit/https%3A%2F%2Fbrand.example%2Fa.png",
    "https://newsletter.substack.com/p/my-post",
    "https://info.brand.example/landing.html?mkt_tok=AbC",
    "https://t.brand.example/r/?id=h1a2b3,4c5d6e,4c5d70",
    "https://s1234.t.en25.com/e/er?s=1&lid=2&elqTrackId=AbC",
    "https://img04.en25.com/Web/Brand/{abc}_logo.png",
    "https://link.brand.example/pub/cc?_ri_=X0Gzc2X",
    "https://links.mkt41.net/ctt?kn=1&ms=AbC",
    "https://brand.example/mo/logo.gif",
    "https://links.iterable.com/e/encryptedUrlClick?_e=AbC",
    "https://e.customeriomail.com/e/c/eyJhbGciOiJIUzI1NiJ9",
    "https://via.intercom.io/e?ob=AbC",
    "https://brand.createsend1.com/t/j-l-abcd-efgh-r/",
    "https://r20.rs6.net/tn.jsp?f=AbC",
    "https://clicks.aweber.com/y/ct/?l=AbC",
    "https://brand.lt.acemlnb.com/Prod/link-tracker?redirectUrl=aHR0cHM&sig=AbC",
    "https://click.convertkit-mail2.com/AbC/def",
    "https://abc.sendibt3.com/tr/cl/AbCdEf",
    "https://abc.mjt.lu/lnk/AbC/def",
    "https://link.brand.example/img/logo.gif",
    "https://link.brand.example/click/123/AbC",
    "https://brand.movable-ink-1234.com/p/rp/abc123.png",
    "https://brand.movable-ink-1234.com/p/rp/abc123/o.gif",
    "https://github.com/user/repo",
    "https://avatars.githubusercontent.com/u/123?s=60",
    "https://www.linkedin.com/comm/in/someone",
    "https://media.licdn.com/dms/image/AbC/photo.jpg",
    "https://www.google.com/logos/doodle.png",
    "https://lh3.googleusercontent.com/AbC=w100",
    "https://static.xx.fbcdn.net/rsrc.php/AbC.png",
    "https://assets.nflxext.com/us/email/gem/netflix_logo.png",
    "https://cdn.shopify.com/s/files/1/0/abc.png",
    "https://shop.brand.example/tools/emails/click/AbC",
    "https://abc.svc.dynamics.com/t/c/AbCdEf",
    "https://mailtrack.io/trace/link/AbC?url=https%3A%2F%2Fbrand.example",
    "https://brand.example/images/open-sign.png",
    "https://brand.example/opening-hours.jpg",
    "https://brand.example/tracking/parcel.png",
    "https://brand.example/traces/logo.png",
    "https://example.com/",
]

SPACERS = [
    "https://ts-svc.inxserver.com/transparent.gif",
    "https://news.brand.example/d/gmail_fix.gif",
    "https://brand.example/img/spacer.gif",
    "https://brand.example/img/email_spacer_1x1.gif",
    "https://brand.example/img/transparent.png",
    "https://brand.example/img/clear.gif",
    "https://attachments.office.net/owa/user@brand.example/service.svc/s/GetAttachmentThumbnail?id=AbC",
]

NOT_SPACERS = [
    "https://brand.example/img/spacer.gif?u=123",
    "https://brand.example/img/logo.png",
    "https://brand.example/img/1x1_transparent.gif",
    "not a url",
]

GENERIC = [
    ("https://tracker.example/open.gif", "/open"),
    ("https://tracker.example/x/open/AbC", "/open"),
    ("https://tracker.example/px?event=open", "=open"),
    ("https://tracker.example/trace/AbC", "/trace"),
    ("https://tracker.example/track/open?id=1", "/track/open"),
    ("https://tracker.example/c/AbC/o.gif", "/o.gif"),
    ("https://tracker.example/e/o/AbC", "/e/o/"),
    ("https://tracker.example/ss/o/AbC.gif", "/ss/o/"),
    ("https://tracker.example/eos/AbC", "/eos/"),
    ("https://tracker.example/imp?x=1", "/imp?"),
    ("https://tracker.example/x/email_open_log.gif", "email_open_log"),
    ("https://tracker.example/email-pixel?id=1", "/email-pixel?"),
    ("https://tracker.example/mailings/opened/AbC", "/mailings/opened/"),
    ("https://tracker.example/MailIsRead?id=1", "/MailIsRead?"),
    ("https://tracker.example/x_track_pixel.gif?id=1", "_track_pixel.gif"),
    ("https://tracker.example/p1x1.gif", "/p1x1.gif"),
    ("https://tracker.example/img/1x1_transparent.gif", "1x1_transparent"),
]


@pytest.fixture(scope="module")
def db() -> TrackerDB:
    return TrackerDB.bundled()


def _dataset() -> dict[str, object]:
    text = resources.files("mailproxy.detect").joinpath("data", "trackers.toml").read_text("utf-8")
    return tomllib.loads(text)


# --- the catalogue --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("row", "url", "vendor"), SAMPLES, ids=[f"{r}-{v}-{i}" for i, (r, _, v) in enumerate(SAMPLES)]
)
def test_catalogue_sample_matches_its_vendor(db: TrackerDB, row: int, url: str, vendor: str) -> None:
    m = db.match(url)
    assert m is not None, url
    assert (m.vendor, m.reason, m.tier) == (vendor, "known-tracker", Tier.HIGH)
    assert "§5 row" in m.source if row else m.source


def test_every_catalogue_row_has_a_dataset_table_and_samples() -> None:
    rows = {t.get("row") for t in _dataset().values() if isinstance(t, dict)}
    assert set(range(1, 52)) <= rows
    assert {r for r, _, _ in SAMPLES} >= set(range(1, 52))


def _rule_hits(kind: str, rule: str, key: str, host: str) -> bool:
    if kind in ("domains",):
        return host == rule or host.endswith("." + rule)
    if kind == "host_patterns":
        return re.fullmatch(r"(?:[^.]*\.)*?(?:" + rule + ")", host) is not None
    if rule.startswith("/"):
        return re.search(rule, key[len(host) :]) is not None
    return re.match(r"(?:[^/.]*\.)*?(?:" + rule + ")", key) is not None


def test_every_dataset_rule_has_a_sample() -> None:
    """No dead rule: each domain, host pattern and pattern of every vendor is hit by one of its samples."""
    by_vendor: dict[str, list[tuple[str, str]]] = {}
    for _, url, vendor in SAMPLES:
        split = split_url(url)
        assert split is not None
        by_vendor.setdefault(vendor, []).append((split.key, split.host))
    missing = []
    for table in _dataset().values():
        if not isinstance(table, dict) or "vendor" not in table:
            continue
        samples = by_vendor.get(table["vendor"], [])
        for kind in ("domains", "host_patterns", "patterns"):
            for rule in table.get(kind, []):
                if not any(_rule_hits(kind, rule, key, host) for key, host in samples):
                    missing.append(f"{table['vendor']} {kind} {rule}")
    assert missing == []


@pytest.mark.parametrize("url", NOT_TRACKERS)
def test_content_and_click_urls_do_not_match(db: TrackerDB, url: str) -> None:
    assert db.match(url) is None


@pytest.mark.parametrize(("url", "shape"), GENERIC)
def test_generic_shapes_are_medium_without_vendor(db: TrackerDB, url: str, shape: str) -> None:
    m = db.match(url)
    assert m is not None
    assert (m.vendor, m.reason, m.tier) == (None, "tracking-path", Tier.MEDIUM)
    assert m.source.startswith(shape + ":")


# Generic shapes that a vendor pattern covers completely: the vendor (a stronger answer) wins.
SHADOWED = {"/tr/op/": ("https://tracker.example/tr/op/AbC", "Brevo (Sendinblue)")}


def test_every_generic_shape_has_a_sample(db: TrackerDB) -> None:
    names = {g["name"] for g in _dataset()["generic"]}  # type: ignore[attr-defined]
    assert names == {shape for _, shape in GENERIC} | set(SHADOWED)
    for url, vendor in SHADOWED.values():
        assert db.match(url).vendor == vendor  # type: ignore[union-attr]


def test_generic_shapes_ignore_the_host(db: TrackerDB) -> None:
    assert db.match("https://open.brand.example/logo.png") is None
    assert db.match("https://trace.brand.example/logo.png") is None


# --- precedence -----------------------------------------------------------------------------------


def test_content_exception_beats_generic_and_vendor_shape(db: TrackerDB) -> None:
    # /p/rp/.../o.gif would be a generic "/o.gif" otherwise.
    assert db.match("https://brand.example/p/rp/abc/o.gif") is None
    assert db.match("https://brand.example/p/cp/abc/o.gif") is not None


@pytest.mark.parametrize("url", SPACERS)
def test_spacers(db: TrackerDB, url: str) -> None:
    assert db.is_spacer(url)
    assert db.match(url) is None


@pytest.mark.parametrize("url", NOT_SPACERS)
def test_not_spacers(db: TrackerDB, url: str) -> None:
    assert not db.is_spacer(url)


def test_spacer_beats_generic_shape_but_not_vendor(db: TrackerDB) -> None:
    assert db.match("https://brand.example/trace/spacer.gif") is None
    assert db.match("https://brand.example/trace/logo.gif") is not None
    m = db.match("https://t.yesware.com/t/AbC/def/spacer.gif")
    assert m is not None and m.vendor == "Yesware"


def test_host_specific_pattern_beats_shared_path_shape(db: TrackerDB) -> None:
    # /e2t/o/ is HubSpot's path, but on emarsys.com it is Emarsys; /wf/open on klclick is Klaviyo.
    assert db.match("https://x.emarsys.com/e2t/o/AbC").vendor == "Emarsys"  # type: ignore[union-attr]
    assert db.match("https://y.example/e2t/o/AbC").vendor == "HubSpot"  # type: ignore[union-attr]
    assert db.match("https://trk.klclick.com/wf/open?upn=1").vendor == "Klaviyo"  # type: ignore[union-attr]
    assert db.match("https://brand.example/rts/open.aspx?tp=1").vendor == "Cheetah Digital"  # type: ignore[union-attr]


# --- host-level decisions -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "vendor"),
    [
        ("openrate.aweber.com", "AWeber"),
        ("OPENRATE.AWEBER.COM.", "AWeber"),
        ("openrate.aweber.com:443", "AWeber"),
        ("abc123.emltrk.com", "Litmus Email Analytics"),
        ("open.mkt4177.com", "Acoustic (Silverpop)"),
        ("open.convertkit-mail4.com", "ConvertKit (Kit)"),
        ("dpm.demdex.net", "Adobe Campaign"),
    ],
)
def test_match_host_beacon_hosts(db: TrackerDB, host: str, vendor: str) -> None:
    m = db.match_host(host)
    assert m is not None and m.vendor == vendor and m.tier is Tier.HIGH


@pytest.mark.parametrize(
    "host",
    [
        "aweber.com",
        "clicks.aweber.com",
        "x.us3.list-manage.com",
        "github.com",
        "ct.sendgrid.net",
        "open.mkt4177.com.evil.example",
        "notopenrate.aweber.com.example",
        "",
        "exa mple.com",
        "[::1",
    ],
)
def test_match_host_rejects_shared_hosts_and_garbage(db: TrackerDB, host: str) -> None:
    assert db.match_host(host) is None


@pytest.mark.parametrize(
    ("host", "vendor"),
    [
        ("clicks.aweber.com", "AWeber"),
        ("acme.us3.list-manage.com", "Mailchimp"),
        ("mcusercontent.com", "Mailchimp"),
        ("brand.movable-ink-7158.com", "Movable Ink"),
        ("t.sidekickopen07.com", "HubSpot"),
        ("openrate.aweber.com", "AWeber"),
        ("open.mkt41.net", "Acoustic (Silverpop)"),
    ],
)
def test_vendor_for_host(db: TrackerDB, host: str, vendor: str) -> None:
    assert db.vendor_for_host(host) == vendor


@pytest.mark.parametrize("host", ["example.com", "list-manage.com.evil.example", "", "bad host"])
def test_vendor_for_host_unknown(db: TrackerDB, host: str) -> None:
    assert db.vendor_for_host(host) is None


# --- odd and bad input ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "HTTPS://ACME.US3.LIST-MANAGE.COM/TRACK/OPEN.PHP?U=1&ID=2",
        "  https://acme.us3.list-manage.com/track/open.php?u=1  ",
        "https://user:pw@acme.us3.list-manage.com:8443/track/open.php?u=1",
        "https://acme.us3.list-manage.com./track/open.php?u=1",
        "https://acme.us3.list-manage.com/track/op\ten.php?u=1",
        "https://acme.us3.list-manage.com\\track\\open.php?u=1",
        "https://acme.us3.list-manage.com/track/open.php?u=1#fragment",
        "http://acme.us3.list-manage.com/track/open.php",
    ],
)
def test_odd_spellings_still_match(db: TrackerDB, url: str) -> None:
    m = db.match(url)
    assert m is not None and m.vendor == "Mailchimp"


@pytest.mark.parametrize(
    "url",
    [
        "",
        "   ",
        "not a url",
        "/track/open.php",
        "//openrate.aweber.com/x",
        "openrate.aweber.com/x",
        "data:image/gif;base64,R0lGODlhAQABAAAAACw=",
        "cid:part1@example",
        "javascript:alert(1)",
        "ftp://openrate.aweber.com/x",
        "https://",
        "https:///path",
        "https://[::1/x",
        "http://exa mple.com/x",
        "https://openrate.aweber.com:abc/x",
        "http:openrate.aweber.com/x",
        "https://\u00e9\u0000.com/x",
    ],
)
def test_invalid_urls_give_none(db: TrackerDB, url: str) -> None:
    assert db.match(url) is None
    assert db.is_spacer(url) is False


def test_non_string_input_gives_none(db: TrackerDB) -> None:
    assert db.match(None) is None  # type: ignore[arg-type]
    assert db.match(b"https://openrate.aweber.com/x") is None  # type: ignore[arg-type]
    assert db.match_host(None) is None  # type: ignore[arg-type]
    assert db.vendor_for_host(42) is None  # type: ignore[arg-type]
    assert db.is_spacer(None) is False  # type: ignore[arg-type]


def test_idn_and_ipv6_hosts_are_parsed(db: TrackerDB) -> None:
    assert db.match("https://b\u00fccher.example/open.gif") is not None  # punycoded host, generic path
    assert db.match("https://[2001:db8::1]/open.gif") is not None
    assert db.match("https://[2001:db8::1]/logo.png") is None


def test_huge_url_is_matched_on_its_capped_key(db: TrackerDB) -> None:
    # Only the first MAX_KEY_CHARS of the key are matched: the tail that would make this a Movable Ink
    # pixel lies beyond them, the beacon host is in front.
    assert db.match("https://brand.example/p/cp/" + "/p/cp/a" * 150_000 + "/o.gif") is None
    assert db.match("https://brand.example/p/cp/a/o.gif") is not None
    hit = db.match("https://openrate.aweber.com/" + "a" * 1_000_000)
    assert hit is not None and hit.vendor == "AWeber"


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_arbitrary_text_never_raises(text: str) -> None:
    db = TrackerDB.bundled()
    for candidate in (text, "https://" + text, "https://x.example/" + text):
        result = db.match(candidate)
        assert result is None or isinstance(result, TrackerMatch)
        db.is_spacer(candidate)
        db.match_host(text)
        db.vendor_for_host(text)


def test_long_host_of_many_labels_never_raises(db: TrackerDB) -> None:
    # The key is capped at MAX_KEY_CHARS; a longer host once sent the label walk past the key's end.
    for host in ("a." * 2500 + "com", "a." * 2500 + "list-manage.com", "t." * 3000 + "sendgrid.net"):
        for url in (f"https://{host}/track/open.php", f"https://{host}/ss/o/x"):
            assert db.match(url) is None or isinstance(db.match(url), TrackerMatch)
            assert db.vendor_for_host(host) is None or isinstance(db.vendor_for_host(host), str)


_REGEX_PIECES = ["a", "b", "ab", ".", "\\.", "\\-", "\\d", "?", "*", "+", "{2}", "|", "(?:", ")", "-", "/"]
_REGEX_PIECES += ["[ab]", "[]a]", "[^]a]", "[|]", "\\|"]


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(_REGEX_PIECES), max_size=8), st.text(alphabet="ab.-1/|]^", max_size=10))
def test_literal_prefix_starts_every_match(pieces: list[str], text: str) -> None:
    pattern = "".join(pieces)
    try:
        rx = re.compile(pattern)
    except re.error:
        return
    prefix = _literal_prefix(pattern)
    for start in range(len(text) + 1):
        if rx.match(text, start) is not None:
            assert text.startswith(prefix, start), (pattern, prefix, text, start)


def _find_host_unfiltered(
    patterns: _PatternSet[TrackerMatch], key: str, host_end: int
) -> TrackerMatch | None:
    """Every label start tried against its bucket, as before the per-host filter."""
    i = 0
    while i < host_end:
        bucket = patterns._by_char.get(key[i])
        if bucket is not None:
            found = bucket.match(key, i)
            if found is not None:
                return found
        i = key.find(".", i, host_end) + 1
        if i == 0:
            break
    return patterns._host.match(key) if patterns._host is not None else None


_LONG_TOKEN = "abcdefghijklmnopqrstuvwxyz0123456789" * 2


def _keys_near_the_dataset() -> list[tuple[str, int]]:
    """(key, host length) around every host-anchored pattern's literal text: matching, cut short, extended."""
    keys = []
    for patterns in (TrackerDB.bundled()._core.patterns, TrackerDB.bundled()._core.spacers):
        for bucket in patterns._by_char.values():
            for rx in bucket._each:
                host, _, path = _literal_prefix(rx.pattern).partition("/")
                for h in (host, "x." + host, host[:-1], host + "x", host + ".x", host.replace(".", "-")):
                    for tail in ("/" + path + _LONG_TOKEN + ".gif", "/" + path, "/", "/o/x"):
                        if h:
                            keys.append((h + tail, len(h)))
    return keys


def test_host_filter_keeps_every_host_anchored_match() -> None:
    core = TrackerDB.bundled()._core
    for patterns in (core.patterns, core.spacers, core.content):
        for key, host_end in _keys_near_the_dataset():
            assert patterns.find_host(key, host_end) == _find_host_unfiltered(patterns, key, host_end), key


# --- stats, caching, construction -----------------------------------------------------------------


def test_stats_and_bundled_is_cached(db: TrackerDB) -> None:
    assert TrackerDB.bundled() is db
    assert len(db.vendors) >= 60 and "Mailchimp" in db.vendors
    assert list(db.vendors) == sorted(db.vendors, key=str.casefold)
    assert len(db) > 100
    assert {"mkt_tok", "_hsenc", "mc_eid", "ml_subscriber"} <= db.link_params


def test_load_without_lists_equals_bundled_behaviour() -> None:
    db = TrackerDB.load()
    assert len(db) == len(TrackerDB.bundled())
    assert db.match("https://openrate.aweber.com/x") == TrackerDB.bundled().match(
        "https://openrate.aweber.com/x"
    )


def test_many_distinct_urls_match_exactly_the_trackers(db: TrackerDB) -> None:
    # Speed is bench/detect.py's business; here the many-URL path (caches filling up) must stay right.
    urls = [f"https://cdn{i}.example.com/images/a{i}/banner-{i}.png?w=600&h={i}" for i in range(5000)]
    urls += [f"https://x{i}.us3.list-manage.com/track/open.php?u={i:025d}&id={i}" for i in range(5000)]
    hits = [u for u in urls if db.match(u) is not None]
    assert hits == urls[5000:]


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "data.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_from_toml_custom_dataset(tmp_path: Path) -> None:
    db = TrackerDB.from_toml(
        _write(
            tmp_path,
            '[acme]\nvendor = "Acme"\ndomains = ["px.acme.example"]\npatterns = [\'/acme/open/\']\n'
            'tier = "medium"\nsource = "test"\n[spacers]\npatterns = [\'/dot\\.gif$\']\n',
        )
    )
    assert db.vendors == ("Acme",)
    assert db.match("https://px.acme.example/a") == TrackerMatch("Acme", "known-tracker", Tier.MEDIUM, "test")
    assert db.match("https://brand.example/acme/open/1").vendor == "Acme"  # type: ignore[union-attr]
    assert db.is_spacer("https://brand.example/dot.gif")
    assert db.match("https://openrate.aweber.com/x") is None


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ('[a]\nvendor = "A"\npatterns = [\'(open\']\nsource = "s"\n', "a.patterns[0]"),
        ('[a]\nvendor = "A"\npatterns = [\'/(o)pen\']\nsource = "s"\n', "a.patterns[0]"),
        ('[a]\nvendor = "A"\npatterns = [\'/Open\']\nsource = "s"\n', "a.patterns[0]"),
        ('[a]\nvendor = "A"\npatterns = [\'^x\\\\.com/\']\nsource = "s"\n', "a.patterns[0]"),
        ('[a]\nvendor = "A"\ndomains = ["Not A Host"]\nsource = "s"\n', "a.domains[0]"),
        ('[a]\nvendor = "A"\ndomains = "x.com"\nsource = "s"\n', "a.domains"),
        ('[a]\nvendor = "A"\ndomain = ["x.com"]\nsource = "s"\n', "a.domain"),
        ('[a]\nvendor = "A"\ndomains = ["x.com"]\ntier = "extreme"\nsource = "s"\n', "a.tier"),
        ('[a]\ndomains = ["x.com"]\nsource = "s"\n', "a.vendor"),
        ('[a]\nvendor = "A"\ndomains = ["x.com"]\n', "a.source"),
        ('[a]\nvendor = "A"\nshared_domains = ["x.com"]\nsource = "s"\n', "a"),
        ('[a]\nvendor = "A"\ndomains = ["x.com"]\nsource = "s"\nrow = "one"\n', "a.row"),
        ("a = 1\n", "a"),
        ("generic = 1\n", "generic"),
        ('[[generic]]\nname = "g"\npatterns = [1]\nsource = "s"\n', "generic[0].patterns[0]"),
        ("[spacers]\npatterns = ['(x']\n", "spacers.patterns[0]"),
        ("[a\n", ""),
    ],
)
def test_from_toml_rejects_bad_datasets(tmp_path: Path, text: str, key: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        TrackerDB.from_toml(path)
    assert info.value.file == str(path)
    assert info.value.key == key


def test_empty_dataset_is_still_truthy(tmp_path: Path) -> None:
    db = TrackerDB.from_toml(_write(tmp_path, "# no vendors\n"))
    assert len(db) == 0 and bool(db) is True
    assert db.match("https://openrate.aweber.com/x") is None


def test_from_toml_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="missing.toml"):
        TrackerDB.from_toml(tmp_path / "missing.toml")
