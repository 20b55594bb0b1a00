"""Synthetic newsletter corpus with ground-truth labels, for tests, demos and the benchmark.

No licence-clear public corpus of modern marketing mail exists (trackers.md section 4), so we
generate one. Everything here is written from scratch; only the *URL shapes* of open pixels and
click redirects come from the tracker catalogue (trackers.md section 5). Brand names, tokens and
recipients are invented.

Properties the benchmark relies on:

- Deterministic: message ``i`` of seed ``s`` depends only on ``(s, i, html_kb, recipient)``, so a
  run of ``n=10`` is a prefix of a run of ``n=300`` and numbers stay comparable between machines.
- The decoded HTML part has an exact size drawn from ``html_kb`` (KiB), because throughput is
  quoted per MB.
- Ground truth lives beside the message (``Labels``), never inside it: a detector must not be able
  to cheat.

``python -m bench.corpus --out DIR -n 300 --seed 1`` writes ``DIR/NNNN.eml`` (or ``--maildir``).
"""

from __future__ import annotations

import argparse
import base64
import binascii
import hashlib
import html
import json
import logging
import random
import struct
import sys
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from email.header import Header
from email.utils import format_datetime, formataddr
from pathlib import Path
from urllib.parse import quote

from mailproxy.model import Vector

logger = logging.getLogger(__name__)

__all__ = [
    "Labels",
    "TrackerLabel",
    "generate",
    "generate_labelled",
    "main",
    "newsletter",
    "newsletter_labelled",
    "write_samples",
]

# The fixed skeleton (head, style, header, hero, footer, pixels) needs about 11 KiB; below
# this floor the # exact-size guarantee could not hold.
MIN_HTML_KB = 16
MAX_HTML_KB = 4096


# -------------------------------------------------------------------------------------------------
# Labels (the ground truth)


@dataclass(frozen=True, slots=True, kw_only=True)
class TrackerLabel:
    """One open-tracking reference the generator inserted.

    ``url`` is what a client would load: HTML entities decoded, transfer encoding undone.
    """

    url: str
    vendor: str
    vector: Vector = Vector.IMG
    identity: str | None = None  # how the recipient address is encoded in the URL ("md5", ...), if it is


@dataclass(frozen=True, slots=True, kw_only=True)
class Labels:
    """Ground truth for one generated message.

    Trackers are the positives of a detection benchmark. ``content_images`` (including
    ``spacers``) are the negatives. ``identifying_images`` are real content whose query carries the
    recipient's identity:
    a detector may call them identifying or tracker, but must not call them clean.
    """

    index: int
    recipient: str
    trackers: tuple[TrackerLabel, ...] = ()
    content_images: tuple[str, ...] = ()
    identifying_images: tuple[str, ...] = ()
    spacers: tuple[str, ...] = ()  # subset of content_images: 1-px layout gifs, a classic false positive
    other_remote: tuple[str, ...] = ()  # fonts and stylesheets: remote, not images, not trackers
    read_receipt: bool = False
    has_html: bool = True

    @property
    def tracker_urls(self) -> frozenset[str]:
        return frozenset(t.url for t in self.trackers)


# -------------------------------------------------------------------------------------------------
# Vocabulary. Words are chosen per language so that each charset can encode its text.

_WORDS_EN_TEXT = (
    "the a our your new this week season collection style fresh best favourite classic "
    "limited edition offer sale free shipping order today now shop discover explore read more "
    "guide tips story stories team community event update news product products release "
    "launch feature features price prices member members exclusive early access just for you "
    "handpicked picks trending popular top rated comfort quality design designed made with "
    "care from and to in on at for of by every all more less light warm bright simple easy "
    "fast better great small big local global home outdoor kitchen travel garden coffee books "
    "music summer winter spring autumn weekend morning evening journey adventure perfect gift "
    "gifts ideas idea inspiration recipe recipes interview podcast episode article issue"
)
_WORDS_EN = tuple(_WORDS_EN_TEXT.split())
_WORDS_DE_TEXT = (
    "der die das und mit für von zum zur neue neuen unsere ihre jetzt heute entdecken sie "
    "kaufen angebot angebote rabatt versand kostenlos woche saison kollektion lieblingsstücke "
    "größe größen schöne grüße frühling sommer herbst winter küche garten reisen bücher "
    "kaffee geschenk ideen qualität nachhaltig regional mehr erfahren lesen artikel ausgabe "
    "nachrichten gemütlich über schnell einfach besser natürlich wählen gewinnen mitglieder "
    "exklusiv früh zugang müssen möchten"
)
_WORDS_DE = tuple(_WORDS_DE_TEXT.split())
_WORDS_FR_TEXT = (
    "le la les et avec pour de du des nouvelle nouveau nos vos votre découvrez maintenant "
    "offre offres soldes livraison gratuite semaine saison collection préférés été hiver "
    "printemps automne cuisine jardin voyage livres café cadeau idées qualité élégant léger "
    "très plus lire article numéro actualités événement membres exclusif accès réservé à vous "
    "sélection créé fabriqué"
)
_WORDS_FR = tuple(_WORDS_FR_TEXT.split())
# Legal filler is ASCII on purpose: it is sized byte-exactly after encoding.
_LEGAL_TEXT = (
    "you are receiving this email because you subscribed to our newsletter or made a purchase "
    "prices and availability are subject to change offers valid while stocks last terms and "
    "conditions apply see website for details this message was sent by registered office "
    "company number all rights reserved we respect your privacy read our privacy policy to "
    "learn how we process personal data if you no longer wish to receive these emails you can "
    "unsubscribe or update your preferences"
)
_LEGAL = tuple(_LEGAL_TEXT.split())
_HEADLINES_EN = (
    "Fresh picks for {season}",
    "The {adj} edit: {n} things we love",
    "Last chance: {pct}% off {cat}",
    "Your {month} reading list",
    "New in: the {cat} collection",
    "Inside this issue",
    "Meet the makers behind {brand}",
    "Weekend plans, sorted",
)
_HEADLINES_DE = (
    "Neu für {season}: unsere Lieblingsstücke",
    "Nur noch heute: {pct}% Rabatt auf {cat}",
    "Ihre Ausgabe für {month}",
    "Entdecken Sie die neue Kollektion",
)
_HEADLINES_FR = (
    "Nouveautés de {season}",
    "Dernière chance : -{pct}% sur {cat}",
    "Votre sélection de {month}",
    "Découvrez la nouvelle collection",
)
_CATS = (
    "outerwear",
    "cookware",
    "sneakers",
    "notebooks",
    "coffee",
    "lighting",
    "bikes",
    "garden tools",
)
_ADJS = ("summer", "cosy", "bold", "quiet", "editor's", "weekend", "minimal")
_MONTHS = ("January", "March", "May", "June", "September", "October", "December")
_SEASONS = ("spring", "summer", "autumn", "winter")
_BRAND_A = (
    "North", "Blue", "Cedar", "Harbor", "Maple", "Silver", "Copper", "Lumen", "Willow", "Granite",
    "Juniper", "Atlas", "Bright", "Oak", "Pioneer", "Summit", "Fjord", "Kestrel", "Tidal", "Amber",
)  # fmt: skip
_BRAND_B = (
    "Outfitters", "Books", "Kitchen", "Supply", "Coffee", "Travel", "Labs", "Weekly", "Market",
    "Studio", "Garden", "Cycles", "Audio", "Home", "Journal", "Goods",
)  # fmt: skip
_TLDS = (".com", ".com", ".com", ".co.uk", ".de", ".fr", ".io", ".net")
_FIRST = (
    "jane",
    "john",
    "alex",
    "maria",
    "li",
    "noah",
    "emma",
    "lukas",
    "chloe",
    "sam",
    "priya",
    "omar",
)
_LAST = ("doe", "smith", "muller", "martin", "chen", "garcia", "novak", "kowalski", "silva", "berg")
# Reserved example domains (RFC 2606): generated recipients can never be real people.
_MAILBOX_DOMAINS = ("example.com", "example.net", "example.org", "mail.example.com")
_FONTS = (
    "Arial, Helvetica, sans-serif",
    "'Helvetica Neue', Helvetica, Arial, sans-serif",
    "Georgia, 'Times New Roman', serif",
    "Verdana, Geneva, sans-serif",
)
_COLOURS = ("#1a73e8", "#d93025", "#188038", "#e37400", "#7b1fa2", "#00796b", "#263238", "#c2185b")
_B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
_ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
_LOWER = "abcdefghijklmnopqrstuvwxyz0123456789"


def _hex(rng: random.Random, n: int) -> str:
    return f"{rng.getrandbits(4 * n):0{n}x}"


def _tok(rng: random.Random, n: int, alphabet: str = _B64URL) -> str:
    return "".join(rng.choices(alphabet, k=n))


def _uuid(rng: random.Random) -> str:
    h = _hex(rng, 32)
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:]}"


def _attr(url: str) -> str:
    """A URL as it appears in a double-quoted HTML attribute."""
    return url.replace("&", "&amp;")


# -------------------------------------------------------------------------------------------------
# Per-message context


@dataclass(frozen=True, slots=True, kw_only=True)
class _Identity:
    """The recipient address in the encodings trackers use (trackers.md A2, citp HashChecker)."""

    address: str
    urlenc: str
    md5: str
    sha256: str
    b64: str

    @classmethod
    def of(cls, address: str) -> _Identity:
        low = address.lower().encode()
        return cls(
            address=address,
            urlenc=quote(address, safe=""),
            md5=hashlib.md5(low).hexdigest(),
            sha256=hashlib.sha256(low).hexdigest(),
            b64=base64.urlsafe_b64encode(address.encode()).decode().rstrip("="),
        )

    def encode(self, how: str) -> str:
        return {"raw": self.address, "urlenc": self.urlenc, "md5": self.md5, "sha256": self.sha256,
                "b64": self.b64}[how]  # fmt: skip


@dataclass(frozen=True, slots=True, kw_only=True)
class _Ctx:
    brand: str
    domain: str  # the brand's web domain
    mail_domain: str  # the sending subdomain, also used for white-label tracking hosts
    slug: str
    cdn: str  # host of first-party content images
    campaign: str
    ident: _Identity
    lang: str
    charset: str
    colour: str
    font: str
    esp: str
    dc: int  # Mailchimp data centre number, stable within a message


@dataclass(frozen=True, slots=True, kw_only=True)
class _Plan:
    """The structural choices for one message; samples override some of them."""

    esp: str
    extra_pixels: tuple[str, ...] = ()
    no_pixels: bool = False
    charset: str = "utf-8"
    lang: str = "en"
    html_cte: str = "quoted-printable"
    layout: str = "alternative"  # alternative | related | html-only | plain-only
    attachment: str | None = None  # None | "rfc822" | "pdf"
    read_receipt: bool = False
    content_identity: bool = False
    litmus_css: bool = False
    spacers: bool = False
    font_import: bool = False


# -------------------------------------------------------------------------------------------------
# Vendor URL builders: (rng, ctx) -> (url, identity encoding or None).
# Shapes from trackers.md section 5; tokens are random.

_UrlBuilder = Callable[[random.Random, _Ctx], tuple[str, str | None]]


def _px_mailchimp(rng: random.Random, c: _Ctx) -> tuple[str, str | None]:
    return (
        f"https://{c.slug}.us{c.dc}.list-manage.com/track/open.php"
        f"?u={_hex(rng, 25)}&id={_hex(rng, 10)}&e={_hex(rng, 10)}",
        None,
    )


def _px_sendgrid(rng: random.Random, c: _Ctx) -> tuple[str, str | None]:
    host = rng.choice((f"u{rng.randint(1000000, 39999999)}.ct.sendgrid.net", f"em.{c.mail_domain}"))
    return f"https://{host}/wf/open?upn={_tok(rng, rng.randint(180, 420))}", None


_SES_REGIONS = ("us-east-1", "us-west-2", "eu-west-1", "eu-central-1", "ap-southeast-2")


def _ses_id(rng: random.Random) -> str:
    return f"0{rng.choice('12')}0{rng.randint(1, 9)}{_hex(rng, 12)}-{_uuid(rng)}-000000"


def _px_ses(rng: random.Random, c: _Ctx) -> tuple[str, str | None]:
    return (
        f"https://{_tok(rng, 8, _LOWER)}.r.{rng.choice(_SES_REGIONS)}.awstrack.me/I0/"
        f"{_ses_id(rng)}/{_tok(rng, 43)}={rng.randint(100, 400)}",
        None,
    )


def _px_hubspot(rng: random.Random, c: _Ctx) -> tuple[str, str | None]:
    host = rng.choice(("t.hubspotemail.net", f"d{_tok(rng, 6, _LOWER)}.{c.mail_domain}"))
    return f"https://{host}/e2t/o/{_tok(rng, 10)}/{_tok(rng, 60)}", None


def _px_klaviyo(rng: random.Random, c: _Ctx) -> tuple[str, str | None]:
    if rng.random() < 0.5:
        return (
            f"https://trk.klclick{rng.choice(('', '1', '2', '3'))}.com/wf/open?upn={_tok(rng, 300)}",
            None,
        )
    return f"https://ctrk.klclick{rng.choice(('', '1', '3'))}.com/o/{_tok(rng, 64)}", None


def _px_braze(rng: random.Random, c: _Ctx) -> tuple[str, str | None]:
    return (
        f"https://ablink.{c.mail_domain}/ss/o/{_tok(rng, 120)}/{_tok(rng, 3)}/{_tok(rng, 40)}",
        None,
    )


def _px_beehiiv(rng: random.Random, c: _Ctx) -> tuple[str, str | None]:
    return (
        f"https://link.mail.beehiiv.com/ss/o/{_tok(rng, 90)}/{_tok(rng, 3)}/{_tok(rng, 30)}/ho.gif",
        None,
    )


def _px_salesforce(rng: random.Random, c: _Ctx) -> tuple[str, str | None]:
    return (
        f"https://cl.exct.net/open.aspx?ffcb10-{_hex(rng, 14)}-fe{_hex(rng, 20)}-{_hex(rng, 8)}"
        f"-ff{_hex(rng, 12)}&d={rng.randint(10000, 99999)}&bmt=0",
        None,
    )


def _px_iterable(rng: random.Random, c: _Ctx) -> tuple[str, str | None]:
    return (
        f"https://links.{c.mail_domain}/s/eo/{_tok(rng, 40)}/{_tok(rng, 24)}/{rng.randint(10, 99)}",
        None,
    )


def _px_customerio(rng: random.Random, c: _Ctx) -> tuple[str, str | None]:
    host = rng.choice(("track.customer.io", "e.customeriomail.com"))
    return f"https://{host}/e/o/{_tok(rng, 63, _ALNUM)}", None


def _px_substack(rng: random.Random, c: _Ctx) -> tuple[str, str | None]:
    if rng.random() < 0.5:
        return f"https://eotrx.substackcdn.com/open?token={_tok(rng, 140)}&appName=newsletter", None
    return f"https://substack.com/o/{_tok(rng, 100)}", None


def _mailgun_token(rng: random.Random, payload: dict[str, str]) -> str:
    # Mailgun tokens are zlib-compressed JSON in url-safe base64: that is why they start with "eJ".
    raw = zlib.compress(json.dumps(payload, separators=(",", ":")).encode())
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _px_mailgun(rng: random.Random, c: _Ctx) -> tuple[str, str | None]:
    tok = _mailgun_token(rng, {"h": _hex(rng, 32), "i": _hex(rng, 24), "t": "o"})
    return f"https://email.{c.mail_domain}/o/{tok}", None


def _px_mailjet(rng: random.Random, c: _Ctx) -> tuple[str, str | None]:
    return (
        f"https://{_tok(rng, 5, _LOWER)}.mjt.lu/oo/{_tok(rng, 40, _ALNUM)}/{_tok(rng, 8, _ALNUM)}/e.gif",
        None,
    )


def _px_brevo(rng: random.Random, c: _Ctx) -> tuple[str, str | None]:
    host = rng.choice((f"r.{c.mail_domain}", "sendibt3.com"))
    return f"https://{host}/tr/op/{_tok(rng, 120)}", None


def _px_campaignmonitor(rng: random.Random, c: _Ctx) -> tuple[str, str | None]:
    parts = "-".join(_hex(rng, 8).upper() for _ in range(4))
    return f"https://{c.slug}.cmail{rng.choice((19, 20))}.com/t/{parts}/o.gif", None


def _px_postmark(rng: random.Random, c: _Ctx) -> tuple[str, str | None]:
    return f"https://pstmrk.it/open?m=v3_1.{_tok(rng, 60)}.{_tok(rng, 40)}", None


def _px_liveintent(rng: random.Random, c: _Ctx) -> tuple[str, str | None]:
    sz = rng.choice(("1x1", "1x1", "2x1"))
    return (
        f"https://li.{c.domain}/imp?s={rng.randint(100000, 999999)}&sz={sz}&li={c.slug}"
        f"&m={c.ident.md5}&p={c.campaign}",
        "md5",
    )


def _px_movableink(rng: random.Random, c: _Ctx) -> tuple[str, str | None]:
    return f"https://mi.{c.domain}/p/cp/{_hex(rng, 32)}/o.gif?mi_u={_hex(rng, 16)}", None


def _px_google(rng: random.Random, c: _Ctx) -> tuple[str, str | None]:
    return (
        f"https://www.google-analytics.com/collect?v=1&tid=UA-{rng.randint(10**6, 10**8)}-1"
        f"&cid={_uuid(rng)}&t=event&ec=email&ea=open&el={c.campaign}&cs=newsletter&cm=email",
        None,
    )


def _px_first_party(rng: random.Random, c: _Ctx) -> tuple[str, str | None]:
    # No vendor shape at all: only the hidden 1-px style and the identity give it away.
    how = rng.choice(("b64", "sha256", "urlenc"))
    return f"https://{c.mail_domain}/t/{c.campaign}/{c.ident.encode(how)}.gif", how


_PIXELS: dict[str, _UrlBuilder] = {
    "Mailchimp": _px_mailchimp,
    "SendGrid": _px_sendgrid,
    "Amazon SES": _px_ses,
    "HubSpot": _px_hubspot,
    "Klaviyo": _px_klaviyo,
    "Braze": _px_braze,
    "beehiiv": _px_beehiiv,
    "Salesforce Marketing Cloud": _px_salesforce,
    "Iterable": _px_iterable,
    "Customer.io": _px_customerio,
    "Substack": _px_substack,
    "Mailgun": _px_mailgun,
    "Mailjet": _px_mailjet,
    "Brevo": _px_brevo,
    "Campaign Monitor": _px_campaignmonitor,
    "Postmark": _px_postmark,
    "LiveIntent": _px_liveintent,
    "Movable Ink": _px_movableink,
    "Google Analytics": _px_google,
    "first-party": _px_first_party,
}
_ESPS = (
    "Mailchimp", "SendGrid", "Amazon SES", "HubSpot", "Klaviyo", "Braze", "beehiiv",
    "Salesforce Marketing Cloud", "Iterable", "Customer.io", "Substack", "Mailgun", "Mailjet",
    "Brevo", "Campaign Monitor",
)  # fmt: skip
# Pixels that ride along with an ESP's own: ad networks, analytics, engagement tools. Litmus is
# separate because it comes with its conditional CSS.
_EXTRAS = ("LiveIntent", "Movable Ink", "Google Analytics", "first-party", "Postmark", "Litmus")


def _click(rng: random.Random, c: _Ctx, target: str) -> str:
    """A click-tracking redirect of the message's ESP wrapping ``target``."""
    esp = c.esp
    if esp == "Mailchimp":
        return (
            f"https://{c.slug}.us{c.dc}.list-manage.com/track/click"
            f"?u={_hex(rng, 25)}&id={_hex(rng, 10)}&e={_hex(rng, 10)}"
        )
    if esp in ("SendGrid", "Klaviyo", "Braze"):
        host = {"SendGrid": f"u{rng.randint(10**6, 4 * 10**7)}.ct.sendgrid.net",
                "Klaviyo": "trk.klclick.com", "Braze": f"ablink.{c.mail_domain}"}[esp]  # fmt: skip
        return f"https://{host}/ls/click?upn={_tok(rng, rng.randint(200, 380))}"
    if esp == "Amazon SES":
        region = rng.choice(_SES_REGIONS)
        return (
            f"https://{_tok(rng, 8, _LOWER)}.r.{region}.awstrack.me/L0/{quote(target, safe='')}"
            f"/1/{_ses_id(rng)}/{_tok(rng, 43)}={rng.randint(100, 400)}"
        )
    if esp == "Mailgun":
        tok = _mailgun_token(rng, {"u": target, "h": _hex(rng, 32)})
        return f"https://email.{c.mail_domain}/c/{tok}"
    if esp == "Salesforce Marketing Cloud":
        return f"https://click.{c.mail_domain}/?qs={_hex(rng, 192)}"
    if esp == "Iterable":
        return (
            f"https://links.{c.mail_domain}/a/click?_t={_hex(rng, 32)}&_m={_hex(rng, 32)}&_e={_tok(rng, 80)}"
        )
    if esp == "Customer.io":
        return f"https://e.customeriomail.com/e/c/{_tok(rng, 140, _ALNUM)}"
    if esp == "Substack":
        return f"https://substack.com/redirect/{_uuid(rng)}?j={_tok(rng, 120)}"
    if esp == "HubSpot":
        return f"https://t.hubspotemail.net/e2t/tc/{_tok(rng, 12)}/{_tok(rng, 90)}"
    if esp == "Mailjet":
        return (
            f"https://{_tok(rng, 5, _LOWER)}.mjt.lu/lnk/{_tok(rng, 60, _ALNUM)}/"
            f"{rng.randint(1, 30)}/{_tok(rng, 40)}"
        )
    if esp == "Brevo":
        return f"https://r.{c.mail_domain}/mk/cl/f/{_tok(rng, 150)}"
    if esp == "beehiiv":
        return f"https://link.mail.beehiiv.com/ss/c/{_tok(rng, 140)}/{_tok(rng, 3)}/{_tok(rng, 30)}/h1"
    return f"https://{c.slug}.cmail20.com/t/r-l-{_tok(rng, 12, _LOWER)}-{_tok(rng, 8, _LOWER)}-r/"


def _target(rng: random.Random, c: _Ctx, path: str) -> str:
    return (
        f"https://www.{c.domain}/{path}?utm_source=newsletter&utm_medium=email"
        f"&utm_campaign={c.campaign}&utm_content={rng.choice(('hero', 'cta', 'product', 'text'))}"
    )


# -------------------------------------------------------------------------------------------------
# The HTML builder


class _Html:
    """Accumulates the HTML of one message and the URLs it references, in document order."""

    __slots__ = (
        "c", "content", "content_identity", "identifying", "litmus_body", "other", "out", "rng",
        "size", "spacers", "stories", "trackers",
    )  # fmt: skip

    def __init__(self, rng: random.Random, c: _Ctx) -> None:
        self.rng = rng
        self.c = c
        self.out: list[str] = []
        self.size = 0  # approximate output size in characters (each "\n" becomes CRLF later)
        self.trackers: list[TrackerLabel] = []
        self.content: list[str] = []
        self.identifying: list[str] = []
        self.spacers: list[str] = []
        self.other: list[str] = []
        self.stories: list[tuple[str, str, str]] = []  # (title, text, link) for the text/plain part
        self.content_identity = False  # may content images carry the recipient's identity?
        self.litmus_body = ""  # the Litmus base pixel and anchor, when the head has Litmus CSS

    def add(self, s: str) -> None:
        self.out.append(s)
        self.size += len(s) + s.count("\n")

    # words ----------------------------------------------------------------------------------------

    def words(self, lo: int, hi: int) -> str:
        vocab = _WORDS_DE if self.c.lang == "de" else _WORDS_FR if self.c.lang == "fr" else _WORDS_EN
        return " ".join(self.rng.choices(vocab, k=self.rng.randint(lo, hi)))

    def sentence(self) -> str:
        s = self.words(6, 16)
        end = self.rng.choice((".", ".", ".", "!", "?"))
        if self.c.charset != "iso-8859-1" and self.c.lang == "en" and self.rng.random() < 0.15:
            s += " \u2014 " + self.words(2, 5)  # em dash: needs a charset that has it
        return s[0].upper() + s[1:] + end

    def paragraph(self, lo: int = 2, hi: int = 5) -> str:
        # One sentence per line keeps every line far below the 998-octet limit of 8bit bodies.
        return "\n".join(self.sentence() for _ in range(self.rng.randint(lo, hi)))

    def headline(self) -> str:
        rng = self.rng
        table = (
            _HEADLINES_DE if self.c.lang == "de" else _HEADLINES_FR if self.c.lang == "fr" else _HEADLINES_EN
        )
        return rng.choice(table).format(
            season=rng.choice(_SEASONS), adj=rng.choice(_ADJS), n=rng.randint(3, 12),
            pct=rng.choice((10, 15, 20, 25, 30, 40, 50)), cat=rng.choice(_CATS),
            month=rng.choice(_MONTHS), brand=self.c.brand,
        )  # fmt: skip

    def price(self) -> str:
        cents = self.rng.randint(500, 25000)
        whole, frac = divmod(cents, 100)
        if self.c.lang == "en":
            return f"${whole}.{frac:02d}"
        euro = "EUR " if self.c.charset == "iso-8859-1" else "\u20ac"
        return f"{euro}{whole},{frac:02d}"

    # URLs -----------------------------------------------------------------------------------------

    def image(self, name: str, *, w: int, h: int, identity_ok: bool = True) -> str:
        """A content-image URL on a CDN, registered in the labels."""
        rng, c = self.rng, self.c
        kind = rng.randrange(6)
        if kind == 0:
            url = f"https://{c.cdn}/assets/email/{_hex(rng, 32)}/{name}.jpg"
        elif kind == 1:
            url = (
                f"https://images.ctfassets.net/{_tok(rng, 12, _LOWER)}/{_tok(rng, 22, _ALNUM)}/"
                f"{_hex(rng, 32)}/{name}.png?w={w}&h={h}&fm=jpg&q=80"
            )
        elif kind == 2:
            url = (
                f"https://res.cloudinary.com/{c.slug}/image/upload/c_fill,w_{w},h_{h}/"
                f"v{rng.randint(1500000000, 1750000000)}/email/{name}.jpg"
            )
        elif kind == 3:
            url = (
                f"https://d{_tok(rng, 13, _LOWER)}.cloudfront.net/"
                f"{rng.randint(2021, 2025)}/{_hex(rng, 40)}.png"
            )
        elif kind == 4:
            url = (
                f"https://cdn.shopify.com/s/files/1/{rng.randint(1000, 9999):04d}/"
                f"{rng.randint(1000, 9999)}"
                f"/products/{name}_{_hex(rng, 8)}.jpg?v={rng.randint(1600000000, 1750000000)}"
            )
        elif c.esp == "Mailchimp":
            url = f"https://mcusercontent.com/{_hex(rng, 25)}/images/{_uuid(rng)}.png"
        else:
            url = f"https://{c.cdn}/img/{rng.randint(2022, 2025)}/{name}-{w}x{h}.webp"
        roll = rng.random()
        sep = "&" if "?" in url else "?"
        if identity_ok and self.content_identity and roll < 0.12:
            how = rng.choice(("urlenc", "md5", "sha256"))
            key = {"urlenc": "email", "md5": "uid", "sha256": "h"}[how]
            url = f"{url}{sep}{key}={c.ident.encode(how)}"
            self.identifying.append(url)
            return url
        if roll < 0.35:
            url = f"{url}{sep}utm_source=newsletter&utm_medium=email&utm_campaign={c.campaign}"
        self.content.append(url)
        return url

    def spacer(self, h: int) -> str:
        url = f"https://{self.c.cdn}/img/spacer.gif"
        self.content.append(url)
        self.spacers.append(url)
        return (
            f'<img src="{url}" width="1" height="{h}" alt="" border="0" '
            f'style="display:block;height:{h}px;width:1px;border:0;">'
        )

    def link(self, path: str) -> str:
        return _attr(_click(self.rng, self.c, _target(self.rng, self.c, path)))

    def pixel(self, vendor: str) -> None:
        rng = self.rng
        url, identity = _PIXELS[vendor](rng, self.c)
        self.trackers.append(TrackerLabel(url=url, vendor=vendor, identity=identity))
        a = _attr(url)
        style = rng.randrange(7)
        if style == 0:
            self.add(
                f'<img src="{a}" width="1" height="1" alt="" style="display:block;'
                "height:1px!important;"
                "width:1px!important;border-width:0!important;margin:0!important;"
                'padding:0!important" />\n'
            )
        elif style == 1:
            self.add(f'<img alt="" src="{a}" style="display:none;width:1px;height:1px;">\n')
        elif style == 2:
            self.add(
                f'<div style="max-height:0;overflow:hidden;mso-hide:all;" aria-hidden="true">'
                f'<img src="{a}" width="600" height="1" alt="" border="0"></div>\n'
            )
        elif style == 3:
            self.add(f'<img src="{a}" style="width:0;max-height:0;overflow:hidden;border:0" alt="">\n')
        elif style == 4:
            self.add(f'<img src="{a}" alt="" border="0">\n')  # no size at all (trackers.md 6.3)
        elif style == 5 and '"' not in url and " " not in url:
            self.add(f"<IMG SRC={a} WIDTH=1 HEIGHT=1 BORDER=0>\n")  # unquoted, upper case
        else:
            self.add(
                f'<table cellpadding="0" cellspacing="0" border="0" width="1"><tr><td '
                f'style="font-size:0;line-height:0;"><img src="{a}" width="1" height="1" alt="" '
                f'style="display:block;border:0;"></td></tr></table>\n'
            )

    def litmus(self) -> str:
        """Litmus Email Analytics: conditional CSS (dark, light, print, forward) and a base pixel.

        Returns the ``<style>`` block for the head; the base pixel and the ``#_t`` anchor go in the
        body (``litmus_body``).
        """
        rng, c = self.rng, self.c
        base = f"https://{_hex(rng, 10)}.emltrk.com/v2/{_hex(rng, 10)}"
        d = c.ident.address

        def u(flag: str) -> str:
            url = f"{base}?{flag}&d={d}" if flag else f"{base}?d={d}"
            vector = Vector.CSS_URL if flag else Vector.IMG
            self.trackers.append(TrackerLabel(url=url, vendor="Litmus", vector=vector, identity="raw"))
            return url

        css = (
            "<style data-ignore-inlining>\n"
            "@media (prefers-color-scheme: dark) "
            f"{{ #_t::before {{ content: url('{u('rd')}'); }} }}\n"
            "@media (prefers-color-scheme: light) "
            f"{{ #_t::before {{ content: url('{u('rl')}'); }} }}\n"
            f"@media print {{ #_t {{ background-image: url('{u('p')}'); }} }}\n"
            f"div.OutlookMessageHeader, table.moz-email-headers-table, blockquote #_t, "
            f"#MailContainerBody #_t {{ background-image: url('{u('f')}'); }}\n"
            "</style>\n"
        )
        self.litmus_body = (
            f'<div id="_t"></div>\n<img src="{_attr(u(""))}" width="1" height="1" border="0" alt="" />\n'
        )
        return css


def _style_block(c: _Ctx, rng: random.Random, font_import: str | None, bg_url: str | None) -> str:
    imp = f"@import url('{font_import}');\n" if font_import else ""
    bg = f".promo-bg {{ background-image: url({bg_url}); background-size: cover; }}\n" if bg_url else ""
    return (
        '<style type="text/css">\n'
        f"{imp}"
        "body, table, td, a { -webkit-text-size-adjust: 100%; -ms-text-size-adjust: 100%; }\n"
        "table, td { mso-table-lspace: 0pt; mso-table-rspace: 0pt; }\n"
        "img { -ms-interpolation-mode: bicubic; border: 0; height: auto; line-height: 100%; "
        "outline: none; text-decoration: none; }\n"
        "body { margin: 0 !important; padding: 0 !important; width: 100% !important; }\n"
        "a[x-apple-data-detectors] { color: inherit !important; text-decoration: none !important; "
        "}\n"
        f"a {{ color: {c.colour}; }}\n"
        f"{bg}@media only screen and (max-width: 620px) {{\n"
        "  .container { width: 100% !important; max-width: 100% !important; }\n"
        "  .stack { display: block !important; width: 100% !important; padding: 0 0 16px 0 "
        "!important; }\n"
        "  .hero-title { font-size: 28px !important; line-height: 34px !important; }\n"
        "  .mobile-hide { display: none !important; max-height: 0 !important; overflow: hidden "
        "!important; }\n"
        "  .fluid { max-width: 100% !important; height: auto !important; }\n"
        "}\n"
        "@media (prefers-color-scheme: dark) {\n"
        "  .darkmode-bg { background-color: #111111 !important; }\n"
        "  .darkmode-text { color: #eeeeee !important; }\n"
        "}\n"
        f"u + .body .gmail-fix {{ min-width: {rng.choice((600, 640))}px !important; }}\n"
        "</style>\n"
    )


def _make_html(
    rng: random.Random, c: _Ctx, plan: _Plan, target: int, logo_cid: str | None
) -> tuple[bytes, _Html]:
    b = _Html(rng, c)
    b.content_identity = plan.content_identity
    font = c.font
    col = c.colour
    title = b.headline()

    # --- head
    font_url = None
    if plan.font_import:
        family = rng.choice(("Inter", "Lato", "Roboto", "Merriweather"))
        font_url = f"https://fonts.googleapis.com/css2?family={family}:wght@400;700&display=swap"
        b.other.append(font_url)
    promo_bg = b.image("promo-bg", w=600, h=200) if rng.random() < 0.4 else None
    litmus_css = b.litmus() if plan.litmus_css else ""
    b.add(
        '<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Transitional//EN" '
        '"http://www.w3.org/TR/xhtml1/DTD/xhtml1-transitional.dtd">\n'
        '<html xmlns="http://www.w3.org/1999/xhtml" xmlns:v="urn:schemas-microsoft-com:vml" '
        f'xmlns:o="urn:schemas-microsoft-com:office:office" lang="{c.lang}">\n<head>\n'
        f'<meta http-equiv="Content-Type" content="text/html; charset={c.charset}">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1.0">\n'
        '<meta http-equiv="X-UA-Compatible" content="IE=edge">\n'
        '<meta name="x-apple-disable-message-reformatting">\n'
        '<meta name="format-detection" content="telephone=no,address=no,email=no,date=no">\n'
        f"<title>{html.escape(title)}</title>\n"
        "<!--[if mso]>\n<xml><o:OfficeDocumentSettings><o:AllowPNG/><o:PixelsPerInch>"
        "96</o:PixelsPerInch>"
        "</o:OfficeDocumentSettings></xml>\n<style>table, td, div, h1, p { font-family: Arial, "
        "sans-serif; }</style>\n<![endif]-->\n"
    )
    if font_url and rng.random() < 0.5:
        b.add(f'<link href="{_attr(font_url)}" rel="stylesheet" type="text/css">\n')
        font_url = None
    b.add(_style_block(c, rng, font_url, promo_bg))
    b.add(litmus_css)
    b.add(
        '</head>\n<body class="body" style="margin:0;padding:0;background-color:#f4f4f4;" '
        'bgcolor="#f4f4f4">\n'
    )
    b.add(b.litmus_body)

    # --- preheader: hidden preview text, padded so clients do not show body text after it
    b.add(
        '<div style="display:none;font-size:1px;color:#f4f4f4;line-height:1px;max-height:0px;'
        f'max-width:0px;opacity:0;overflow:hidden;mso-hide:all;">{html.escape(b.sentence())}'
        + "\n".join(["&#847;&zwnj;&nbsp;" * 8] * rng.randint(3, 7))
        + "</div>\n"
    )
    b.add(
        '<table role="presentation" width="100%" cellpadding="0" cellspacing="0" border="0" '
        'bgcolor="#f4f4f4" class="darkmode-bg">\n<tr>\n<td align="center" style="padding:0 10px;">'
        "\n"
        '<!--[if mso]><table role="presentation" width="600" cellpadding="0" cellspacing="0" '
        'border="0">'
        "<tr><td><![endif]-->\n"
        '<table role="presentation" class="container" width="600" cellpadding="0" cellspacing="0" '
        'border="0" style="width:600px;max-width:600px;background-color:#ffffff;">\n'
    )
    # --- view online + header with logo
    b.add(
        f'<tr><td align="right" style="padding:10px 20px;font-family:{font};font-size:11px;'
        'color:#888888;">'
        f'<a href="{b.link("view-online")}" style="color:#888888;text-decoration:underline;">'
        "View this email in your browser</a></td></tr>\n"
    )
    logo = f"cid:{logo_cid}" if logo_cid else b.image("logo", w=180, h=48, identity_ok=False)
    b.add(
        f'<tr><td align="left" style="padding:20px 20px 10px 20px;">\n<a href="{b.link("")}" '
        'target="_blank">'
        f'<img src="{_attr(logo)}" width="180" height="48" alt="{html.escape(c.brand)}" border="0" '
        f'style="display:block;width:180px;max-width:180px;height:auto;font-family:{font};'
        "font-size:20px;"
        f'color:{col};"></a>\n</td></tr>\n'
    )
    _hero(b, title)

    # --- footer, rendered now so its size is known while content blocks fill the message
    fb = _Html(rng, c)
    fb.content_identity = plan.content_identity
    _footer(fb)
    pixels = _Html(rng, c)
    if not plan.no_pixels:
        for vendor in (plan.esp, *plan.extra_pixels):
            if vendor != "Litmus":
                pixels.pixel(vendor)
    tail = "</table>\n<!--[if mso]></td></tr></table><![endif]-->\n</td>\n</tr>\n</table>\n"
    fixed = fb.size + pixels.size + len(tail) + 200
    blocks = (_products, _article, _text_section, _banner, _products, _article)
    while b.size + fixed + 7000 < target:
        rng.choice(blocks)(b)
        if plan.spacers and rng.random() < 0.3:
            b.add(f"<tr><td>{b.spacer(rng.choice((10, 16, 24)))}</td></tr>\n")

    # Document order: content, size-exact filler, footer, closing tables, then the open pixels
    # (outside every table, where ESPs put them; inside a <table> HTML5 parsers would foster-parent
    # them).
    b.out.append("\x00FILL\x00")
    for other in (fb, pixels):
        b.content.extend(other.content)
        b.identifying.extend(other.identifying)
        b.trackers.extend(other.trackers)
    b.out.extend(fb.out)
    b.out.append(tail)
    b.out.extend(pixels.out)
    b.out.append("</body>\n</html>\n")
    doc = "".join(b.out).replace("\n", "\r\n")
    if pixels.out and rng.random() < 0.2:
        # Some ESPs put the open pixel right after <body> instead.
        first = pixels.out[0].replace("\n", "\r\n")
        doc = doc.replace(first, "", 1)
        at = doc.index(">", doc.index("<body")) + 3  # after "<body ...>" and its CRLF
        doc = doc[:at] + first + doc[at:]
    head, _, rest = doc.partition("\x00FILL\x00")
    encoded_head = head.encode(c.charset, "xmlcharrefreplace")
    encoded_rest = rest.encode(c.charset, "xmlcharrefreplace")
    room = target - len(encoded_head) - len(encoded_rest)
    if room < 0:
        raise RuntimeError(f"internal: fixed HTML skeleton exceeds the {target}-byte target")
    filler = _filler(rng, room, font)
    return encoded_head + filler + encoded_rest, b


def _filler(rng: random.Random, room: int, font: str) -> bytes:
    """Exactly ``room`` bytes of ASCII small print (whitespace when there is no room for a tag)."""
    open_tag = (
        f'<tr><td style="padding:0 20px 16px 20px;font-family:{font};font-size:10px;'
        'line-height:14px;color:#999999;">\r\n'
    )
    close_tag = "\r\n</td></tr>\r\n"
    inner = room - len(open_tag) - len(close_tag)
    if inner < 16:
        # Not enough room for a table row: blank lines are harmless between table rows.
        lines, rem = divmod(room, 80)
        return ((" " * 78 + "\r\n") * lines + " " * rem).encode("ascii")
    text: list[str] = []
    size = 0
    while size < inner:
        line = " ".join(rng.choices(_LEGAL, k=12)).capitalize() + "."
        text.append(line)
        size += len(line) + 2
    body = "\r\n".join(text)[:inner]
    if body.endswith("\r"):  # never cut a CRLF in half: a bare CR is a defect in 8bit bodies
        body = body[:-1] + "."
    return (open_tag + body + close_tag).encode("ascii")


def _button(b: _Html, label: str, path: str, *, width: int = 220) -> str:
    href = b.link(path)
    col = b.c.colour
    return (
        '<table role="presentation" cellpadding="0" cellspacing="0" border="0" align="center"><tr>'
        f'<td align="center" bgcolor="{col}" style="border-radius:4px;">\n'
        '<!--[if mso]><v:roundrect xmlns:v="urn:schemas-microsoft-com:vml" '
        'xmlns:w="urn:schemas-microsoft-com:office:word" '
        f'href="{href}" style="height:44px;v-text-anchor:middle;width:{width}px;" arcsize="10%" '
        f'strokecolor="{col}" fillcolor="{col}"><w:anchorlock/><center style="color:#ffffff;'
        'font-family:Arial,sans-serif;font-size:16px;font-weight:bold;">'
        f"{html.escape(label)}</center></v:roundrect><![endif]-->\n"
        f'<!--[if !mso]><!--><a href="{href}" target="_blank" style="display:inline-block;'
        "padding:12px 28px;"
        f"font-family:{b.c.font};font-size:16px;font-weight:bold;color:#ffffff;text-decoration:none;"
        f'border-radius:4px;background-color:{col};mso-hide:all;">{html.escape(label)}</a>'
        "<!--<![endif]-->\n"
        "</td></tr></table>\n"
    )


def _cta(b: _Html) -> str:
    return {"de": "Jetzt entdecken", "fr": "Découvrir"}.get(
        b.c.lang, b.rng.choice(("Shop now", "Read more", "Explore"))
    )


def _hero(b: _Html, title: str) -> None:
    rng, c = b.rng, b.c
    h = rng.choice((280, 300, 340))
    img = b.image("hero", w=600, h=h)
    a = _attr(img)
    text = b.paragraph(1, 2)
    b.stories.append((title, text, _click(rng, c, _target(rng, c, "hero"))))
    b.add(
        f'<tr>\n<td background="{a}" bgcolor="{c.colour}" width="600" height="{h}" '
        f'valign="middle" style="background:url(\'{a}\') center / cover no-repeat {c.colour};'
        f"background-image:url('{a}');height:{h}px;\">\n"
        # Outlook's Word engine ignores CSS backgrounds: a "bulletproof" VML fill carries the image.
        '<!--[if gte mso 9]>\n<v:rect xmlns:v="urn:schemas-microsoft-com:vml" fill="true" '
        f'stroke="false" style="width:600px;height:{h}px;">\n'
        f'<v:fill type="frame" src="{a}" color="{c.colour}" />\n'
        '<v:textbox inset="0,0,0,0">\n<![endif]-->\n'
        '<div><table role="presentation" width="100%" cellpadding="0" cellspacing="0" border="0">'
        f'<tr><td align="center" style="padding:40px 30px;font-family:{c.font};color:#ffffff;">\n'
        '<h1 class="hero-title" style="margin:0 0 12px 0;font-size:36px;line-height:42px;'
        f'font-weight:bold;color:#ffffff;">{html.escape(title)}</h1>\n'
        '<p style="margin:0 0 20px 0;font-size:16px;line-height:24px;color:#ffffff;">'
        f"{html.escape(text)}</p>\n"
        f"{_button(b, _cta(b), 'hero')}</td></tr></table></div>\n"
        "<!--[if gte mso 9]>\n</v:textbox>\n</v:rect>\n<![endif]-->\n"
        "</td>\n</tr>\n"
    )


def _products(b: _Html) -> None:
    rng, c = b.rng, b.c
    cols = rng.choice((2, 3))
    w = 560 // cols - 10
    cells = []
    for _ in range(cols):
        name = rng.choice(_CATS).replace(" ", "-") + f"-{rng.randint(100, 999)}"
        img1 = b.image(name, w=w, h=w)
        srcset = ""
        if rng.random() < 0.5:
            img2 = b.image(name + "@2x", w=w * 2, h=w * 2)
            srcset = f' srcset="{_attr(img1)} 1x, {_attr(img2)} 2x"'
        label = b.words(2, 4).title()
        href = b.link(f"products/{name}")
        cells.append(
            f'<td class="stack" width="{w}" valign="top" style="padding:0 5px;font-family:{c.font};'
            '">\n'
            f'<a href="{href}">\n<img src="{_attr(img1)}"{srcset} width="{w}" '
            f'alt="{html.escape(label)}" '
            f'class="fluid" style="display:block;width:100%;max-width:{w}px;height:auto;border:0;">'
            "</a>\n"
            '<p style="margin:8px 0 4px 0;font-size:15px;line-height:20px;color:#222222;'
            'font-weight:bold;">'
            f"{html.escape(label)}</p>\n"
            '<p style="margin:0 0 8px 0;font-size:14px;line-height:20px;color:#555555;">'
            f"{html.escape(b.price())}</p>\n"
            f'<a href="{href}" style="font-size:14px;color:{c.colour};text-decoration:underline;">'
            f"{_cta(b)}</a>\n"
            "</td>\n"
        )
        b.stories.append((label, b.price(), _click(rng, c, _target(rng, c, f"products/{name}"))))
    b.add(
        '<tr><td style="padding:20px 15px;">\n<table role="presentation" width="100%" '
        'cellpadding="0" '
        'cellspacing="0" border="0"><tr>\n' + "".join(cells) + "</tr></table>\n</td></tr>\n"
    )


def _article(b: _Html) -> None:
    rng, c = b.rng, b.c
    title = b.headline()
    text = b.paragraph(2, 5)
    img = b.image("article-" + str(rng.randint(1, 999)), w=260, h=180)
    href = b.link(f"blog/{rng.randint(1000, 9999)}")
    b.stories.append((title, text, _click(rng, c, _target(rng, c, "blog"))))
    b.add(
        '<tr><td style="padding:20px;">\n<table role="presentation" width="100%" cellpadding="0" '
        'cellspacing="0" border="0"><tr>\n'
        f'<td class="stack" width="260" valign="top"><a href="{href}">\n<img src="{_attr(img)}" '
        'width="260" '
        'height="180" alt="" style="display:block;border:0;border-radius:6px;" class="fluid"></a>'
        "</td>\n"
        f'<td class="stack" valign="top" style="padding-left:20px;font-family:{c.font};">\n'
        '<h2 style="margin:0 0 10px 0;font-size:20px;line-height:26px;color:#222222;">'
        f"{html.escape(title)}</h2>\n"
        '<p class="darkmode-text" style="margin:0 0 12px 0;font-size:15px;line-height:22px;'
        'color:#444444;">\n'
        f"{html.escape(text)}\n</p>\n"
        f'<a href="{href}" style="font-size:15px;font-weight:bold;color:{c.colour};">{_cta(b)} '
        "&rarr;</a>\n"
        "</td>\n</tr></table>\n</td></tr>\n"
    )


def _text_section(b: _Html) -> None:
    rng, c = b.rng, b.c
    title = b.headline()
    paras = [b.paragraph(3, 6) for _ in range(rng.randint(2, 4))]
    b.stories.append((title, "\n\n".join(paras), _click(rng, c, _target(rng, c, "story"))))
    body = "".join(
        '<p style="margin:0 0 14px 0;font-size:16px;line-height:24px;color:#333333;'
        f'font-family:{c.font};">\n'
        f"{html.escape(p)}\n</p>\n"
        for p in paras
    )
    b.add(
        '<tr><td style="padding:10px 30px 20px 30px;">\n<h2 style="margin:0 0 14px 0;'
        f"font-family:{c.font};"
        f'font-size:22px;line-height:28px;color:#111111;">{html.escape(title)}</h2>\n{body}'
        f'<p style="margin:0;"><a href="{b.link("story")}" style="color:{c.colour};">{_cta(b)}</a>'
        "</p>\n"
        "</td></tr>\n"
    )


def _banner(b: _Html) -> None:
    rng, c = b.rng, b.c
    img = b.image("banner", w=600, h=160)
    a = _attr(img)
    b.add(
        f'<tr><td class="promo-bg" background="{a}" style="background-image:url({a});'
        f"background-color:{c.colour};"
        f"background-size:cover;padding:40px 30px;text-align:center;font-family:{c.font};"
        'color:#ffffff;">\n'
        '<p style="margin:0;font-size:24px;line-height:30px;font-weight:bold;">'
        f"{html.escape(b.headline())}</p>\n"
        f'<p style="margin:8px 0 0 0;font-size:14px;">{html.escape(b.sentence())}</p>\n'
        "</td></tr>\n"
    )
    if rng.random() < 0.3:
        b.add(f"<tr><td>{_button(b, _cta(b), 'banner', width=260)}</td></tr>\n")


def _footer(b: _Html) -> None:
    rng, c = b.rng, b.c
    icons = []
    for net in rng.sample(("facebook", "instagram", "x", "linkedin", "youtube", "pinterest"), 4):
        url = b.image(f"icon-{net}", w=32, h=32, identity_ok=False)
        icons.append(
            f'<td style="padding:0 6px;"><a href="{b.link("social/" + net)}">\n<img '
            f'src="{_attr(url)}" width="32" '
            f'height="32" alt="{net}" style="display:block;border:0;"></a></td>\n'
        )
    street = f"{rng.randint(1, 400)} {rng.choice(('Market', 'Elm', 'Station', 'Mill'))} Street"
    unsub = _attr(f"https://{c.mail_domain}/unsubscribe?u={_hex(rng, 24)}&e={c.ident.urlenc}")
    b.add(
        '<tr><td align="center" style="padding:30px 20px 10px 20px;">\n<table role="presentation" '
        'cellpadding="0" cellspacing="0" border="0"><tr>\n' + "".join(icons) + "</tr></table>\n</td></tr>\n"
        f'<tr><td align="center" style="padding:10px 20px 20px 20px;font-family:{c.font};'
        "font-size:12px;"
        'line-height:18px;color:#888888;">\n'
        f"{html.escape(c.brand)} &middot; {street} &middot; {rng.randint(10000, 99999)}<br>\n"
        f'This email was sent to <a href="mailto:{c.ident.address}" style="color:#888888;">'
        f"{c.ident.address}</a>.<br>\n"
        f'<a href="{unsub}" style="color:#888888;text-decoration:underline;">Unsubscribe</a> '
        "&middot;\n"
        f'<a href="{b.link("preferences")}" style="color:#888888;text-decoration:underline;">'
        "Preferences</a>\n"
        f' &middot; <a href="{b.link("privacy")}" style="color:#888888;">Privacy</a>\n</td></tr>\n'
    )


# -------------------------------------------------------------------------------------------------
# MIME assembly (by hand: the email package's generator is slow and we want exact control of CRLF)


def _fold(name: str, value: str) -> bytes:
    """One header field, folded at spaces to keep lines near 78 characters."""
    line = f"{name}: "
    lines: list[str] = []
    for word in value.split(" "):
        if len(line) + len(word) > 77 and line.strip() and not line.endswith(": "):
            lines.append(line.rstrip(" "))
            line = " "
        line += word + " "
    lines.append(line.rstrip(" "))
    return ("\r\n".join(lines) + "\r\n").encode("ascii")


def _encode_body(data: bytes, cte: str) -> bytes:
    """Transfer-encode ``data`` (CRLF line ends); the result ends with CRLF."""
    if cte == "base64":
        return base64.encodebytes(data).replace(b"\n", b"\r\n")
    if cte == "quoted-printable":
        # b2a_qp keeps CRLF hard breaks and adds soft breaks at 76 columns, often inside URLs.
        out = binascii.b2a_qp(data, quotetabs=False, istext=True, header=False)
        return out if out.endswith(b"\r\n") else out + b"=\r\n"
    return data if data.endswith(b"\r\n") else data + b"\r\n"


def _leaf(ctype: str, body: bytes, cte: str, extra: Sequence[tuple[str, str]] = ()) -> bytes:
    head = _fold("Content-Type", ctype) + _fold("Content-Transfer-Encoding", cte)
    for k, v in extra:
        head += _fold(k, v)
    return head + b"\r\n" + _encode_body(body, cte)


def _multipart(subtype: str, boundary: str, parts: Sequence[bytes], extra: str = "") -> bytes:
    head = _fold("Content-Type", f'multipart/{subtype}; boundary="{boundary}"{extra}')
    sep = f"--{boundary}\r\n".encode()
    body = b"".join(sep + p + b"\r\n" for p in parts)
    return head + b"\r\n" + body + f"--{boundary}--\r\n".encode()


def _boundary(rng: random.Random) -> str:
    style = rng.randrange(4)
    if style == 0:
        return f"----=_Part_{rng.randint(10**5, 10**7)}_{rng.randint(10**8, 10**9)}.{_hex(rng, 12)}"
    if style == 1:
        return f"_000_{_hex(rng, 32)}_"
    if style == 2:
        return f"b1_{_hex(rng, 40)}"
    return f"=_{_tok(rng, 24, _ALNUM)}"


def _png(rng: random.Random, w: int, h: int) -> bytes:
    """A small valid PNG: a coloured bar with a lighter stripe (a stand-in for a brand logo)."""
    r, g, bl = rng.randrange(256), rng.randrange(256), rng.randrange(256)
    dark = bytes((r, g, bl)) * w
    light = bytes((min(r + 60, 255), min(g + 60, 255), min(bl + 60, 255))) * w
    stripe = range(h // 3, h // 3 + max(2, h // 6))
    raw = b"".join(b"\x00" + (light if y in stripe else dark) for y in range(h))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(raw, 9))
        + chunk(b"IEND", b"")
    )


def _pdf(rng: random.Random, size: int) -> bytes:
    """PDF-looking bytes (header, a binary stream, trailer): enough for a realistic attachment "
    "part."""
    stream = rng.randbytes(size)
    return (
        b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n"
        b"2 0 obj\n<< /Type /Pages /Kids [] /Count 0 >>\nendobj\n"
        + f"3 0 obj\n<< /Length {size} /Filter /FlateDecode >>\nstream\n".encode()
        + stream
        + b"\nendstream\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n"
    )


def _text_part(b: _Html, c: _Ctx) -> str:
    """The text/plain alternative: what ESPs derive from the HTML (titles, text, raw tracked "
    "links)."""
    lines = [
        f"View this email in your browser: {_click(b.rng, c, _target(b.rng, c, 'view-online'))}",
        "",
    ]
    for title, text, link in b.stories:
        lines += [title.upper() if c.lang == "en" else title, "", text, "", link, ""]
    lines += [
        "--",
        c.brand,
        f"This email was sent to {c.ident.address}.",
        f"Unsubscribe: https://{c.mail_domain}/unsubscribe?e={c.ident.urlenc}",
    ]
    return _crlf("\n".join(lines) + "\n")


def _crlf(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\n", "\r\n")


def _charset_cte(data: bytes, preferred: str) -> str:
    """The transfer encoding for a text part: the preferred one, but 7bit when 8bit is not "
    "needed."""
    if preferred in ("8bit", "7bit"):
        return "7bit" if data.isascii() else "8bit"
    return preferred


def _plan(rng: random.Random) -> _Plan:
    esp = rng.choice(_ESPS)
    k = rng.choices((0, 1, 2), weights=(55, 30, 15))[0]
    extras = tuple(rng.sample([v for v in (*_EXTRAS, *_ESPS) if v != esp], k)) if k else ()
    charset = rng.choices(("utf-8", "iso-8859-1", "windows-1252"), weights=(80, 10, 10))[0]
    lang = (
        rng.choice(("en", "en", "en", "de", "fr")) if charset == "utf-8" else rng.choice(("en", "de", "fr"))
    )
    return _Plan(
        esp=esp,
        extra_pixels=extras,
        charset=charset,
        lang=lang,
        html_cte=rng.choices(("quoted-printable", "base64", "8bit"), weights=(65, 20, 15))[0],
        layout=rng.choices(("alternative", "related", "html-only"), weights=(60, 35, 5))[0],
        attachment=rng.choices((None, "rfc822", "pdf"), weights=(85, 7, 8))[0],
        read_receipt=rng.random() < 0.08,
        content_identity=rng.random() < 0.3,
        litmus_css="Litmus" in extras,
        spacers=rng.random() < 0.3,
        font_import=rng.random() < 0.3,
    )


def _context(rng: random.Random, plan: _Plan, recipient: str, index: int) -> _Ctx:
    a, bname = rng.choice(_BRAND_A), rng.choice(_BRAND_B)
    domain = f"{a}{bname}".lower() + rng.choice(_TLDS)
    return _Ctx(
        brand=f"{a} {bname}",
        domain=domain,
        mail_domain=f"{rng.choice(('mail', 'news', 'e', 'email', 'em'))}.{domain}",
        slug=f"{a}{bname}".lower(),
        cdn=rng.choice((f"cdn.{domain}", f"images.{domain}", f"static.{domain}")),
        campaign=f"{rng.choice(('nl', 'promo', 'weekly'))}_{2024 + index % 2}_{rng.randrange(52)}",
        ident=_Identity.of(recipient),
        lang=plan.lang,
        charset=plan.charset,
        colour=rng.choice(_COLOURS),
        font=rng.choice(_FONTS),
        esp=plan.esp,
        dc=rng.randint(1, 21),
    )


def _validate(html_kb: tuple[int, int], recipient: str | None) -> None:
    if (
        not isinstance(html_kb, tuple)
        or len(html_kb) != 2
        or not all(isinstance(k, int) and not isinstance(k, bool) for k in html_kb)
    ):
        raise ValueError(f"html_kb must be a (low, high) pair of ints, got {html_kb!r}")
    lo, hi = html_kb
    if not MIN_HTML_KB <= lo <= hi <= MAX_HTML_KB:
        raise ValueError(
            f"html_kb must satisfy {MIN_HTML_KB} <= low <= high <= {MAX_HTML_KB}, got {html_kb!r}"
        )
    if recipient is not None and (
        recipient.count("@") != 1
        or not recipient.isascii()
        or any(ch in recipient for ch in ' <>"\r\n\t,;')
        or recipient.startswith("@")
        or recipient.endswith("@")
    ):
        raise ValueError(f"recipient must be a plain ASCII address like user@example.com, got {recipient!r}")


def _build(
    rng: random.Random, *, index: int, recipient: str, html_kb: tuple[int, int], plan: _Plan
) -> tuple[bytes, Labels]:
    c = _context(rng, plan, recipient, index)
    sent = datetime(2024, 1, 1, tzinfo=UTC) + timedelta(seconds=rng.randrange(2 * 365 * 86400))
    tz = timezone(timedelta(hours=rng.choice((-8, -5, 0, 0, 1, 2, 10))))
    msgid = f"<{_hex(rng, 16)}.{rng.randint(10**5, 10**7)}@{c.mail_domain}>"
    subject = _Html(rng, c).headline()
    if plan.charset == "utf-8" and rng.random() < 0.2:
        subject = rng.choice(("\U0001f389 ", "\u2728 ", "\u2615 ")) + subject

    logo_cid = f"logo.{_hex(rng, 12)}@{c.mail_domain}" if plan.layout == "related" else None
    labels_b: _Html | None = None
    if plan.layout == "plain-only":
        b = _Html(rng, c)
        for _ in range(rng.randint(6, 10)):
            b.stories.append((b.headline(), b.paragraph(4, 8), _click(rng, c, _target(rng, c, "story"))))
        text = _text_part(b, c).encode(c.charset, "replace")
        body = _leaf(
            f'text/plain; charset="{c.charset}"',
            text,
            _charset_cte(text, "quoted-printable" if c.charset == "utf-8" else "8bit"),
        )
    else:
        target = rng.randint(html_kb[0] * 1024, html_kb[1] * 1024)
        html_bytes, labels_b = _make_html(rng, c, plan, target, logo_cid)
        html_cte = plan.html_cte
        if html_cte == "8bit":
            html_cte = _charset_cte(html_bytes, "8bit")
            if max(map(len, html_bytes.split(b"\r\n"))) > 998:
                # RFC 5322 caps lines at 998 octets; the templates stay far below. Never emit one.
                html_cte = "quoted-printable"
        html_leaf = _leaf(f'text/html; charset="{c.charset}"', html_bytes, html_cte)
        if plan.layout == "related":
            png = _png(rng, 180, 48)
            logo_leaf = _leaf(
                'image/png; name="logo.png"',
                png,
                "base64",
                (
                    ("Content-ID", f"<{logo_cid}>"),
                    ("Content-Disposition", 'inline; filename="logo.png"'),
                ),
            )
            html_leaf = _multipart("related", _boundary(rng), (html_leaf, logo_leaf), '; type="text/html"')
        if plan.layout == "html-only":
            body = html_leaf
        else:
            text = _text_part(labels_b, c).encode(c.charset, "replace")
            text_cte = _charset_cte(text, "quoted-printable" if rng.random() < 0.7 else "8bit")
            text_leaf = _leaf(f'text/plain; charset="{c.charset}"', text, text_cte)
            body = _multipart("alternative", _boundary(rng), (text_leaf, html_leaf))

    trackers = list(labels_b.trackers) if labels_b else []
    content = list(labels_b.content) if labels_b else []
    if plan.attachment == "pdf":
        pdf = _pdf(rng, rng.randint(1500, 6000))
        name = rng.choice(("catalogue", "invoice", "menu", "programme", "terms"))
        att = _leaf(
            f'application/pdf; name="{name}.pdf"', pdf, "base64",
            (("Content-Disposition", f'attachment; filename="{name}.pdf"'),),
        )  # fmt: skip
        body = _multipart("mixed", _boundary(rng), (body, att))
    elif plan.attachment == "rfc822":
        inner, inner_labels = _inner_message(rng, c)
        trackers += inner_labels.trackers
        content += inner_labels.content_images
        att = (
            _fold("Content-Type", 'message/rfc822; name="forwarded.eml"')
            + _fold("Content-Disposition", 'attachment; filename="forwarded.eml"')
            + b"\r\n"
            + inner
        )
        body = _multipart("mixed", _boundary(rng), (body, att))

    from_name = c.brand if c.lang == "en" else f"{c.brand} {'Newsletter' if c.lang == 'de' else 'Actualités'}"
    sender = rng.choice(("news", "hello", "newsletter", "info", "no-reply"))
    head = b"".join(
        (
            _fold("Return-Path", f"<bounce-{_hex(rng, 12)}@{c.mail_domain}>"),
            _fold(
                "Received",
                f"from mta{rng.randint(1, 99)}.{c.mail_domain} (mta.{c.mail_domain} "
                f"[198.51.100.{rng.randint(1, 254)}]) by mx.example.com with ESMTPS id "
                f"{_tok(rng, 12, _ALNUM)} "
                f"for <{recipient}>; {format_datetime(sent.astimezone(tz))}",
            ),
            _fold("From", formataddr((from_name, f"{sender}@{c.mail_domain}"), charset="utf-8")),
            _fold("To", recipient),
            _subject(subject, c.charset),
            _fold("Date", format_datetime(sent.astimezone(tz))),
            _fold("Message-ID", msgid),
            _fold("MIME-Version", "1.0"),
            _fold(
                "List-Unsubscribe",
                f"<mailto:unsubscribe-{_hex(rng, 20)}@{c.mail_domain}>, "
                f"<https://{c.mail_domain}/u/{_tok(rng, 40)}>",
            ),
            _fold("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
            _fold("List-Id", f"{c.brand} <{c.slug}.{c.mail_domain}>") if rng.random() < 0.5 else b"",
            _fold("Precedence", "bulk") if rng.random() < 0.5 else b"",
            _fold(
                "Feedback-ID",
                f"{rng.randint(1, 999)}:{c.campaign}:{c.slug}:{c.esp.replace(' ', '')}",
            ),
            _fold("Disposition-Notification-To", f"{sender}@{c.mail_domain}") if plan.read_receipt else b"",
        )
    )
    labels = Labels(
        index=index,
        recipient=recipient,
        trackers=tuple(trackers),
        content_images=tuple(dict.fromkeys(content)),
        identifying_images=tuple(dict.fromkeys(labels_b.identifying)) if labels_b else (),
        spacers=tuple(dict.fromkeys(labels_b.spacers)) if labels_b else (),
        other_remote=tuple(labels_b.other) if labels_b else (),
        read_receipt=plan.read_receipt,
        has_html=labels_b is not None,
    )
    return head + body, labels


def _subject(subject: str, charset: str) -> bytes:
    if subject.isascii():
        return _fold("Subject", subject)
    enc = Header(subject, "utf-8" if charset == "utf-8" else charset, header_name="Subject").encode(
        linesep="\r\n"
    )
    return f"Subject: {enc}\r\n".encode("ascii")


def _inner_message(rng: random.Random, c: _Ctx) -> tuple[bytes, Labels]:
    """A small forwarded HTML mail (7bit-clean, as message/rfc822 requires) with its own pixel."""
    b = _Html(rng, c)
    img = b.image("receipt", w=300, h=80, identity_ok=False)
    b.pixel("Postmark")
    text = _crlf(f"Hello,\n\nHere is the message you asked for.\n\n{b.paragraph(1, 2)}\n")
    page = (
        '<html><body style="font-family:Arial,sans-serif;">\n<p>'
        f"{html.escape(b.paragraph(1, 3))}</p>\n"
        f'<img src="{_attr(img)}" width="300" height="80" alt="">\n' + "".join(b.out) + "</body></html>\n"
    ).replace("\n", "\r\n")
    alt = _multipart(
        "alternative",
        _boundary(rng),
        (
            _leaf('text/plain; charset="utf-8"', text.encode("utf-8", "replace"), "quoted-printable"),
            _leaf(
                'text/html; charset="utf-8"',
                page.encode("utf-8", "xmlcharrefreplace"),
                "quoted-printable",
            ),
        ),
    )
    sent = datetime(2023, 6, 1, tzinfo=UTC) + timedelta(seconds=rng.randrange(365 * 86400))
    head = (
        _fold("From", f"orders@{c.domain}")
        + _fold("To", c.ident.address)
        + _fold("Subject", "Your order confirmation")
        + _fold("Date", format_datetime(sent))
        + _fold("Message-ID", f"<{_hex(rng, 20)}@{c.domain}>")
        + _fold("MIME-Version", "1.0")
    )
    labels = Labels(index=-1, recipient=c.ident.address, trackers=tuple(b.trackers), content_images=(img,))
    return head + alt, labels


# -------------------------------------------------------------------------------------------------
# Public API


def _message_rng(seed: int, index: int) -> random.Random:
    # String seeds hash with SHA-512 (random's version 2 seeding): stable across runs and Python
    # versions, and independent per message, so message i does not depend on the messages before it.
    return random.Random(f"mailproxy-corpus:{seed}:{index}")


def _recipient(rng: random.Random) -> str:
    local = f"{rng.choice(_FIRST)}.{rng.choice(_LAST)}{rng.randint(1, 99)}"
    return f"{local}@{rng.choice(_MAILBOX_DOMAINS)}"


def newsletter_labelled(
    rng: random.Random, *, index: int, recipient: str, html_kb: tuple[int, int] = (50, 150)
) -> tuple[bytes, Labels]:
    """One raw RFC 5322 message (CRLF line endings) and its ground truth."""
    _validate(html_kb, recipient)
    return _build(rng, index=index, recipient=recipient, html_kb=html_kb, plan=_plan(rng))


def newsletter(rng: random.Random, *, index: int, recipient: str, html_kb: tuple[int, int]) -> bytes:
    """One raw RFC 5322 message (CRLF line endings) that looks like real marketing mail."""
    return newsletter_labelled(rng, index=index, recipient=recipient, html_kb=html_kb)[0]


def generate_labelled(
    n: int, *, seed: int = 0, html_kb: tuple[int, int] = (50, 150), recipient: str | None = None
) -> list[tuple[bytes, Labels]]:
    """``n`` newsletters with their labels; deterministic for ``(seed, html_kb, recipient)``.

    Without ``recipient`` every message gets its own invented address at an RFC 2606 example domain.
    """
    if not isinstance(n, int) or isinstance(n, bool) or n < 0:
        raise ValueError(f"n must be a non-negative int, got {n!r}")
    _validate(html_kb, recipient)
    out = []
    for i in range(n):
        rng = _message_rng(seed, i)
        rcpt = recipient if recipient is not None else _recipient(rng)
        out.append(_build(rng, index=i, recipient=rcpt, html_kb=html_kb, plan=_plan(rng)))
    return out


def generate(
    n: int, *, seed: int = 0, html_kb: tuple[int, int] = (50, 150), recipient: str | None = None
) -> list[bytes]:
    """``n`` raw newsletters (see ``generate_labelled``)."""
    return [raw for raw, _ in generate_labelled(n, seed=seed, html_kb=html_kb, recipient=recipient)]


# Bundled samples: (file name, seed, plan overrides): a seed plus the features it demonstrates.
_SAMPLES: tuple[tuple[str, int, _Plan], ...] = (
    ("01-mailchimp-related-qp.eml", 101, _Plan(esp="Mailchimp", layout="related", spacers=True)),
    (
        "02-sendgrid-litmus-base64.eml",
        102,
        _Plan(esp="SendGrid", extra_pixels=("Litmus",), litmus_css=True, html_cte="base64"),
    ),
    (
        "03-ses-latin1-8bit.eml",
        103,
        _Plan(esp="Amazon SES", html_cte="8bit", charset="iso-8859-1", lang="de"),
    ),
    (
        "04-hubspot-liveintent-md5.eml",
        104,
        _Plan(
            esp="HubSpot",
            extra_pixels=("LiveIntent", "first-party"),
            charset="windows-1252",
            content_identity=True,
        ),
    ),
    ("05-klaviyo-forwarded-rfc822.eml", 105, _Plan(esp="Klaviyo", attachment="rfc822", lang="fr")),
    (
        "06-mailgun-pdf.eml",
        106,
        _Plan(esp="Mailgun", attachment="pdf", layout="related", font_import=True),
    ),
    (
        "07-salesforce-read-receipt.eml",
        107,
        _Plan(esp="Salesforce Marketing Cloud", read_receipt=True),
    ),
    ("08-plain-text-only.eml", 108, _Plan(esp="Mailgun", layout="plain-only")),
    ("09-clean-no-trackers.eml", 109, _Plan(esp="Mailchimp", no_pixels=True)),
)
SAMPLE_HTML_KB = (16, 22)
SAMPLE_RECIPIENT = "reader@example.com"


def samples_labelled() -> list[tuple[str, bytes, Labels]]:
    """The bundled samples (name, raw message, labels), regenerated from their fixed seeds."""
    out = []
    for i, (name, seed, plan) in enumerate(_SAMPLES):
        rng = _message_rng(seed, 0)
        raw, labels = _build(rng, index=i, recipient=SAMPLE_RECIPIENT, html_kb=SAMPLE_HTML_KB, plan=plan)
        out.append((name, raw, labels))
    return out


def write_samples(directory: str | Path) -> list[Path]:
    """Write the bundled sample newsletters to ``directory`` (created if missing); return their "
    "paths."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, raw, _ in samples_labelled():
        p = d / name
        p.write_bytes(raw)
        paths.append(p)
    return paths


def _write(out: Path, messages: Sequence[bytes], *, maildir: bool, seed: int) -> None:
    if maildir:
        for sub in ("cur", "new", "tmp"):
            (out / sub).mkdir(parents=True, exist_ok=True)
        for i, raw in enumerate(messages):
            # Maildir names are "<time>.<unique>.<host>"; fixed values keep the output reproducible.
            (out / "new" / f"{1700000000 + i}.M{i}P{seed}.mailproxy-corpus").write_bytes(raw)
    else:
        out.mkdir(parents=True, exist_ok=True)
        for i, raw in enumerate(messages):
            (out / f"{i:04d}.eml").write_bytes(raw)


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.corpus --out DIR -n 300 --seed 1 [--maildir]``."""
    p = argparse.ArgumentParser(prog="python -m bench.corpus", description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, type=Path, help="output directory")
    p.add_argument("-n", type=int, default=300, help="number of messages (default 300)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--html-kb", type=int, nargs=2, default=(50, 150), metavar=("LOW", "HIGH"),
                   help="size range of the decoded HTML part in KiB (default 50 150)")  # fmt: skip
    p.add_argument("--recipient", default=None, help="one address for all messages (default: invented)")
    p.add_argument("--maildir", action="store_true", help="write a Maildir (cur/new/tmp) instead of NNNN.eml")
    p.add_argument("--labels", action="store_true", help="also write labels.json (the ground truth)")
    p.add_argument("--samples", action="store_true", help="write the bundled samples instead")
    args = p.parse_args(argv)
    try:
        if args.samples:
            for path in write_samples(args.out):
                print(path)
            return 0
        pairs = generate_labelled(
            args.n, seed=args.seed, html_kb=tuple(args.html_kb), recipient=args.recipient
        )
        _write(args.out, [raw for raw, _ in pairs], maildir=args.maildir, seed=args.seed)
        if args.labels:
            data = [_labels_json(lab) for _, lab in pairs]
            (args.out / "labels.json").write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"error: cannot write to {args.out}: {e}", file=sys.stderr)
        return 1
    total = sum(len(raw) for raw, _ in pairs)
    print(f"wrote {len(pairs)} messages ({total / 1e6:.1f} MB) to {args.out}")
    return 0


def _labels_json(lab: Labels) -> dict[str, object]:
    return {
        "index": lab.index,
        "recipient": lab.recipient,
        "trackers": [
            {"url": t.url, "vendor": t.vendor, "vector": str(t.vector), "identity": t.identity}
            for t in lab.trackers
        ],
        "content_images": list(lab.content_images),
        "identifying_images": list(lab.identifying_images),
        "spacers": list(lab.spacers),
        "other_remote": list(lab.other_remote),
        "read_receipt": lab.read_receipt,
        "has_html": lab.has_html,
    }


if __name__ == "__main__":
    raise SystemExit(main())
