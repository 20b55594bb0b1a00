"""The engine both proxies and the CLI use: analyse a raw message, or rewrite it as the reader should see it.

``Engine.rewrite(raw)`` is a pure, deterministic function of (message bytes, policy, recipients, user):
the IMAP filter serves chunk 3 of a message from one call and chunk 4 from another, so the same input must
give the same bytes every time. Its output always has the input's length and line count, and differs only
inside the edited spans (invariant 1). It never raises on message content: a part it cannot analyse is
delivered with every remote reference neutralized (invariant 3).

Per part: decode the transfer encoding, extract references (``html.refs``), classify each group of
references (``detect.classify``), let the user's policy pick the action (``policy``), plan edits
(``rewrite.edits``), check the result with an independent parser (``rewrite.safety``), and apply the edits
through the transfer encoding (``rewrite.transfer``).
"""

from __future__ import annotations

import binascii
import codecs
import html
import logging
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from email.message import Message
from email.utils import collapse_rfc2231_value, parseaddr
from urllib.parse import urljoin

from mailproxy import mime
from mailproxy.config import Config
from mailproxy.detect.classify import Classifier, UrlVerdict, is_remote
from mailproxy.detect.identity import recipients_from_headers
from mailproxy.detect.params import clean_raw_url
from mailproxy.detect.trackers import TrackerDB
from mailproxy.errors import UncheckableError
from mailproxy.html.refs import Reference, extract
from mailproxy.model import IMAGE_VECTORS, Action, Finding, Tier, Vector, Verdict
from mailproxy.policy import EffectivePolicy, Policy
from mailproxy.rewrite import edits as planner
from mailproxy.rewrite import safety, streams
from mailproxy.rewrite.neutralize import neutralize_section
from mailproxy.rewrite.streams import apply_edits, decode
from mailproxy.rewrite.transfer import Edit, TransferError

log = logging.getLogger(__name__)

# Parts whose content the client renders as markup (or loads from markup, for cid: stylesheets and SVG).
# K-9 renders application/pgp (mutt's old inline PGP) as HTML: MessageExtractor.isPartTextualBody takes it
# for text, and findViewablesAndAttachments makes every such part but text/plain an Html viewable.
_MARKUP = frozenset(
    {"text/html", "application/xhtml+xml", "image/svg+xml", "text/x-amp-html", "application/pgp"}
)
_AMP = "text/x-amp-html"
_STYLESHEET = "text/css"
RECEIPT_HEADERS = ("disposition-notification-to", "return-receipt-to", "x-confirm-reading-to")
_RECEIPT_LINE = re.compile(
    rb"(?im)^(disposition-notification-to|return-receipt-to|x-confirm-reading-to)[ \t]*:"
)
# Module-level names for the enum members read for every reference: an enum class attribute costs a
# lookup through the enum's metaclass.
_TRACKER, _CLEAN = Verdict.TRACKER, Verdict.CLEAN
_ALLOW, _CLEAN_URL, _STRIP, _BLOCK = Action.ALLOW, Action.CLEAN, Action.STRIP, Action.BLOCK
_LOW = Tier.LOW
# message/external-body (RFC 2046 section 5.2.3, RFC 2017): the part says where its body is, and some
# clients fetch it from there. Found in a Content-Type field however it is spaced or folded.
_EXTERNAL = re.compile(rb"(?i)message[ \t\r\n]*/[ \t\r\n]*external-body")
_CONTENT_TYPE_FIELD = re.compile(rb"(?im)^(content-type)[ \t]*:((?:[^\r\n]|\r?\n[ \t])*)")
# Access types whose body stays on the reader's machine (local-file) or in the message (content-id,
# RFC 1873). mail-server mails a request to an address the sender chose: a read receipt by another name.
_LOCAL_ACCESS = frozenset({"local-file", "content-id"})
_FTP_SCHEMES = {"ftp": "ftp", "anon-ftp": "ftp", "tftp": "tftp"}
_URL_JUNK = re.compile(r'[\s"]')
_QP_BARE_CR = re.compile(rb"=\r(?!\n)")
_CLEARSIGNED = "-----BEGIN PGP SIGNED MESSAGE-----"
# Quoted-printable as K-9 decodes it (mime4j QuotedPrintableInputStream.read0, its input's line breaks
# made CRLF): "==" is "=" (and a soft break before a line break); "=" and any run of what Java takes for
# white space (VT, FF, FS-US too) before a line break is a soft break; "=" and two hex digits a byte;
# any other "=" is text with the two bytes after it, whatever they are (the engine, like Thunderbird,
# reads an escape in "=G=3E"); white space before a line break is dropped.
_K9_QP = re.compile(
    rb"(?P<eq>==(?:\r?\n)?)"
    rb"|(?P<soft>=[\t\x0b\x0c\x1c-\x1f ]*\r?\n)"
    rb"|=(?P<hex>[0-9A-Fa-f]{2})"
    rb"|(?P<text>=[^\t\x0b\x0c\x1c-\x1f \r\n=](?s:.)?)"
    rb"|(?P<pad>[\t\x0b\x0c\x1c-\x1f ]+(?=\r?\n|\Z))"
)
# A lone CR or LF, which mime4j's EOLConvertingInputStream makes CRLF before anything else reads it.
_LONE_BREAK = re.compile(rb"\r(?!\n)|(?<!\r)\n")
# Where K-9's reading may differ from ``decode``'s: "=" then neither two hex digits nor transport padding.
_K9_QP_DIFFERS = re.compile(rb"=(?:[^0-9A-Fa-f \t\r\n]|[0-9A-Fa-f](?![0-9A-Fa-f])|[ \t]+[\x0b\x0c\x1c-\x1f])")
# Transfer encodings beyond RFC 2045's that Thunderbird decodes before it renders a part (libmime's
# mimeleaf: uuencode under four names, yEnc), a comment or parameter after the name allowed. The
# engine cannot edit through them, so such a markup part is blanked.
_CLIENT_DECODED = re.compile(r"(?:x-uuencode|x-uue|uuencode|uue|x-yencode)(?:[\s;(].*)?", re.DOTALL)


@dataclass(slots=True)
class Result:
    """What a rewrite did. ``data`` has exactly the length and line count of the input."""

    data: bytes
    findings: list[Finding] = field(default_factory=list)
    misses: int = 0  # references the safety net caught after the rewriter missed them
    failsafe_parts: list[str] = field(default_factory=list)  # parts neutralized wholesale
    receipts_neutralized: int = 0
    sender: str | None = None  # the From address, lower-cased
    recipients: tuple[str, ...] = ()  # the addresses looked for in URLs

    @property
    def sender_domain(self) -> str | None:
        return self.sender.rpartition("@")[2] or None if self.sender else None


# The labels of UTF-16 in the WHATWG Encoding Standard, which Thunderbird's converters follow (Python's
# codecs know few of them), and the byte order each means: a byte-order mark overrides it.
_WHATWG_UTF16 = {
    **dict.fromkeys(
        ("csunicode", "iso-10646-ucs-2", "ucs-2", "unicode", "unicodefeff", "utf-16", "utf-16le"), "utf-16-le"
    ),
    **dict.fromkeys(("unicodefffe", "utf-16be"), "utf-16-be"),
}
_UTF16_BOMS = {b"\xff\xfe": "utf-16-le", b"\xfe\xff": "utf-16-be"}


def _wide_codec(charset: str | None, decoded: bytes) -> str | None:
    """The codec for a part's ``decoded`` body when its charset is UTF-16 (the only encodings of the
    WHATWG standard that are not ASCII-compatible), else None: text is then edited as the bytes it is.
    The byte order is fixed, so that edits re-encode to the same bytes (a byte-order mark picks it and
    stays a character)."""
    label = _label(charset)
    if label not in _WHATWG_UTF16:
        return None
    return _UTF16_BOMS.get(decoded[:2], _WHATWG_UTF16[label])


def _label(charset: str | None) -> str:
    return (charset or "").strip("\t\n\f\r ").lower()


_PROBE = '<img src="https://x.example/a?b=1&c=2">'


def _other_reading(charset: str | None) -> str | None:
    """A codec Python knows for ``charset`` that reads markup otherwise than as ASCII bytes (UTF-32,
    UTF-7, EBCDIC; UTF-16 under other spellings than WHATWG's), else None. Thunderbird does not know
    these labels and reads such a part as ASCII-compatible bytes, as the engine does; a client that
    knows them would read other text."""
    label = _label(charset)
    if not label or label in _WHATWG_UTF16:
        return None
    try:
        name = codecs.lookup(label).name
        if name == "utf-8-sig":
            return None
        return name if name == "utf-7" or _PROBE.encode(name) != _PROBE.encode() else None
    except (LookupError, TypeError, ValueError):  # unknown labels, codecs of no text encoding ("base64")
        return None


def sender_of(headers: object) -> str | None:
    get = getattr(headers, "get", None)
    if get is None:
        return None
    try:
        _, addr = parseaddr(str(get("from", "")))
    except (TypeError, ValueError):
        return None
    return addr.lower() or None


class Engine:
    def __init__(self, policy: Policy | None = None, db: TrackerDB | None = None) -> None:
        self.policy = policy or Policy.default()
        self.db = db or TrackerDB.bundled()

    @classmethod
    def from_config(cls, config: Config) -> Engine:
        """The engine for a configuration: its policy, and the bundled trackers plus the user's lists."""
        db = TrackerDB.load(adblock=config.trackers.adblock, disconnect=config.trackers.disconnect)
        return cls(Policy.from_config(config), db)

    # -- public API ----------------------------------------------------------------------------------
    def analyse(
        self, raw: bytes, *, recipients: Sequence[str] = (), user: str | None = None
    ) -> list[Finding]:
        return self.inspect(raw, recipients=recipients, user=user).findings

    def inspect(self, raw: bytes, *, recipients: Sequence[str] = (), user: str | None = None) -> Result:
        """What a rewrite would do, without doing it: ``data`` is the input."""
        return self._run(raw, recipients, user, write=False)

    def rewrite(self, raw: bytes, *, recipients: Sequence[str] = (), user: str | None = None) -> Result:
        return self._run(raw, recipients, user, write=True)

    # -- the message ---------------------------------------------------------------------------------
    def _run(self, raw: bytes, extra: Sequence[str], user: str | None, write: bool) -> Result:
        root = mime.parse(raw)
        sender = sender_of(root.headers)
        effective = self.policy.resolve(sender=sender, user=user)
        extra_recipients = list(extra) + ([user] if user and "@" in user else [])
        recipients = recipients_from_headers(root.headers, extra_recipients)
        sender_domain = sender.rpartition("@")[2] if sender else None
        classifier = Classifier(self.db, recipients=recipients, sender_domain=sender_domain)
        result = Result(data=raw, sender=sender, recipients=tuple(recipients))
        out = bytearray(raw) if write else None

        if effective.neutralize_receipts and out is not None:
            self._receipts(raw, root, out, result)
        self._external_bodies(raw, root, effective, classifier, out, result)
        leaves: list[mime.Part] = []
        for part in _outermost_ambiguous(root, leaves):
            # A client may find other parts, types or encodings here than we do: nothing in it loads.
            log.warning("part %s may be read otherwise by clients: neutralizing it", mime.body_number(part))
            result.failsafe_parts.append(mime.body_number(part))
            if out is not None:
                # Its header block too: a client that ends it elsewhere (at a line of a lone CR, say)
                # reads part of it as the body. (From ``out``: receipt fields may be renamed there.)
                out[part.start : part.body_start] = neutralize_section(
                    bytes(out[part.start : part.body_start])
                )[0]
                out[part.body_start : part.end] = _neutralized_body(raw, part)
        for part in leaves:
            label = mime.body_number(part)
            try:
                reading = None if part.content_type in _MARKUP else _evolution_reading(raw, part)
            except Exception:  # a bug of ours must not leak what Evolution renders (the part is blanked)
                log.exception("part %s: the check of Evolution's reading failed", label)
                reading = "cannot be checked as Evolution reads it"
            if reading is not None:
                log.warning("part %s %s: neutralizing it", label, reading)
                result.failsafe_parts.append(label)
                if out is not None:
                    out[part.body_start : part.end] = _neutralized_leaf(raw[part.body_start : part.end], part)
            elif part.content_type in _MARKUP or part.content_type == _STYLESHEET:
                try:
                    self._part(raw, part, effective, classifier, out, result)
                except Exception:  # a bug of ours must not leak the pixel or lose the mail
                    log.exception("part %s: rewriting failed; neutralizing it", label)
                    encoded = raw[part.body_start : part.end]
                    self._failsafe(encoded, part, label, out, result, decoded=None)
        if out is not None:
            _neutralize_after_open_ends(root, out, result)
            result.data = bytes(out)
        return result

    def _receipts(self, raw: bytes, root: mime.Part, out: bytearray, result: Result) -> None:
        # Renaming the field keeps its length; no client acts on the new name (the body may stay).
        for m in _RECEIPT_LINE.finditer(raw, root.start, root.body_start):
            name = m.group(1)
            new = (b"X-Mailproxy-" + name)[: len(name)]
            out[m.start(1) : m.end(1)] = new
            result.receipts_neutralized += 1

    def _external_bodies(
        self,
        raw: bytes,
        root: mime.Part,
        effective: EffectivePolicy,
        classifier: Classifier,
        out: bytearray | None,
        result: Result,
    ) -> None:
        """Neutralize the message/external-body parts a client would fetch from the network.

        Their Content-Type fields are renamed, keeping their length, as read-receipt fields are: the part
        is then plain text that names nothing to fetch, however its parameters are spelled (continued,
        charset-encoded, split over lines, malformed). A part whose access type cannot be read is
        neutralized; what it would fetch, when known, follows the policy for non-image remote content.
        """
        for part in root.walk():
            if part.children or _EXTERNAL.search(raw, part.start, part.body_start) is None:
                continue
            fields = list(_CONTENT_TYPE_FIELD.finditer(raw, part.start, part.body_start))
            if not any(_EXTERNAL.search(m.group(2)) for m in fields):
                continue
            # Read the parameters only where the stdlib and every client agree on the one field there is.
            unambiguous = len(fields) == 1 and part.content_type == "message/external-body"
            access, url = _external_target(part.headers) if unambiguous else ("", "")
            if access in _LOCAL_ACCESS and not url:
                continue
            if access == "mail-server":
                if effective.neutralize_receipts and out is not None:
                    _rename_fields(fields, out)
                    result.receipts_neutralized += 1
                continue
            verdict = classifier.classify(url, is_image=False)
            action = Action.STRIP
            if access and url and effective.action_for(verdict.verdict, is_image=False) is Action.ALLOW:
                action = Action.ALLOW  # the reader allows this content; nothing can be cleaned in a header
            if action is Action.STRIP and out is not None:
                _rename_fields(fields, out)
            result.findings.append(
                Finding(
                    url=url,
                    vector=Vector.EXTERNAL_BODY,
                    verdict=verdict.verdict,
                    action=action,
                    tier=verdict.tier,
                    vendor=verdict.vendor,
                    reasons=verdict.reasons,
                    party=verdict.party,
                    is_image=False,
                    part=mime.body_number(part),
                    tracker_domain=verdict.domain,
                )
            )

    # -- one part ------------------------------------------------------------------------------------
    def _part(
        self,
        raw: bytes,
        part: mime.Part,
        effective: EffectivePolicy,
        classifier: Classifier,
        out: bytearray | None,
        result: Result,
    ) -> None:
        encoded = raw[part.body_start : part.end]
        label = mime.body_number(part)
        otherwise = _read_otherwise(part, encoded)
        if otherwise is not None:
            why, body = otherwise
            log.warning("part %s %s: neutralizing it", label, why)
            result.failsafe_parts.append(label)
            if out is not None:
                out[part.body_start : part.end] = body
            return
        try:
            decoded = decode(encoded, part.cte)
            wide = _wide_codec(part.charset, decoded)
            text = decoded.decode(wide or "latin-1")
        except (TransferError, UnicodeDecodeError, LookupError) as exc:
            log.warning("part %s cannot be decoded (%s): neutralizing it", label, type(exc).__name__)
            self._failsafe(encoded, part, label, out, result, decoded=None)
            return
        misread = _charset_otherwise(part, decoded, wide)
        if misread is not None:
            log.warning("part %s %s: neutralizing it", label, misread)
            result.failsafe_parts.append(label)
            if out is not None:
                out[part.body_start : part.end] = _blanked(encoded)
            return
        if text.startswith(_CLEARSIGNED):
            # K-9 renders only what lies between the armor's header lines and its signature
            # (MessageViewInfoExtractor.getTextFromPart, OpenPgpUtils.extractClearsignedMessage), so
            # markup the header lines hide from a parser of the whole part ("<textarea>", "<!--") loads.
            log.warning("part %s is clearsigned HTML, read otherwise by clients: neutralizing it", label)
            self._failsafe(encoded, part, label, out, result, decoded=decoded)
            return

        if part.content_type == _STYLESHEET:
            text_for_refs = "<style>" + text + "</style>"
            shift = len("<style>")
        else:
            text_for_refs, shift = text, 0
        try:
            doc = extract(text_for_refs)
        except Exception:  # a bug in our own extraction must not leak the pixel or lose the mail
            log.exception("part %s cannot be analysed: neutralizing it", label)
            self._failsafe(encoded, part, label, out, result, decoded=decoded)
            return

        base = doc.base or _content_base(part)
        classify = classifier.classify
        # The remote references by group, each with its URL, verdict and whether it renders as an image.
        groups: dict[int, list[tuple[Reference, str, UrlVerdict, bool]]] = {}
        for ref in doc.refs:
            url = ref.url
            remote = is_remote(url)
            if not remote and base and ":" not in url.split("/", 1)[0]:
                url = urljoin(base, url)
                remote = is_remote(url)
            if not remote:
                continue
            is_image = ref.vector in IMAGE_VECTORS
            verdict = classify(url, is_image=is_image, hidden=ref.hidden, conditional=ref.conditional)
            members = groups.get(ref.group)
            if members is None:
                groups[ref.group] = [(ref, url, verdict, is_image)]
            else:
                members.append((ref, url, verdict, is_image))

        amp = part.content_type == _AMP
        action_for = effective.action_for
        findings = result.findings
        # Only the references to edit: the planner leaves the others alone.
        decisions: list[planner.Decision] = []
        # URLs stopped somewhere and URLs deliberately kept somewhere: the same image can be hidden (a
        # tracker there) and visible elsewhere, and then the safety net must not undo the visible one.
        stopped: set[str] = set()
        kept: set[str] = set()
        for members in groups.values():
            # <picture>, srcset and the <img> they belong to share the verdict of the group's first
            # tracker, if it has one (the worst verdict there is).
            tracker = None
            if len(members) > 1:
                tracker = next((m[2] for m in members if m[2].verdict is _TRACKER), None)
            for ref, url, verdict, is_image in members:
                shared = verdict if tracker is None else tracker
                action = _STRIP if amp else action_for(shared.verdict, is_image=is_image)
                cleaned = None
                if action is _CLEAN_URL and ref.url_span is not None:
                    raw_url = text_for_refs[ref.url_span[0] : ref.url_span[1]]
                    cleaned = clean_raw_url(raw_url, shared.remove_params.__contains__)
                if action is _STRIP or action is _BLOCK:
                    stopped.add(url)
                else:
                    kept.add(url)
                if action is not _ALLOW:
                    decisions.append(planner.Decision(ref, action, cleaned))
                findings.append(_finding(ref, url, shared, action, label, is_image))

        if out is None:
            return
        edits = [_shift(e, -shift) for e in planner.plan(decisions)] if shift else planner.plan(decisions)
        if amp:
            # AMP parts load dynamic, per-open content: neutralize everything remote, whatever was found.
            edits = _merge(edits, safety.break_everything(_apply(text, edits)))
        else:
            try:
                edits, misses = self._safety_net(
                    text, edits, stopped - kept, kept, effective, classifier, part
                )
            except UncheckableError as exc:
                log.warning("part %s cannot be checked (%s): neutralizing it", label, exc)
                result.failsafe_parts.append(label)
                edits, misses = _merge(edits, safety.break_everything(_apply(text, edits))), 0
            result.misses += misses
            for start, end in doc.unclosed:
                tail = safety.break_everything(text_for_refs[start:end])
                edits = _merge(edits, [_shift(e, start - shift) for e in tail])
        if not edits:
            return
        self._write(encoded, part, label, edits, wide, text, out, result)

    def _safety_net(
        self,
        text: str,
        edits: list[Edit],
        stopped: set[str],
        kept: set[str],
        effective: EffectivePolicy,
        classifier: Classifier,
        part: mime.Part,
    ) -> tuple[list[Edit], int]:
        """Parse the rewritten part with an independent parser; break whatever forbidden still loads."""
        after = _apply(text, edits)
        check = after if part.content_type != _STYLESHEET else "<style>" + after + "</style>"
        forbidden: list[str] = []
        for s in safety.loading_urls(check):
            url = s.url
            if not is_remote(url):
                continue
            if url in stopped:
                forbidden.append(url)
                continue
            if url in kept:
                continue
            is_image = s.is_image
            if s.element in ("a", "area") and s.attr == "href":
                continue  # a link loads nothing until clicked
            verdict = classifier.classify(url, is_image=is_image)
            if effective.action_for(verdict.verdict, is_image=is_image) in (Action.STRIP, Action.BLOCK):
                forbidden.append(url)
        if not forbidden:
            return edits, 0
        log.warning("safety net: %d reference(s) survived the rewriter; breaking them", len(forbidden))
        extra = safety.break_urls(after, forbidden)
        if extra is None:
            extra = safety.break_everything(after)
        return _merge(edits, extra), len(forbidden)

    def _write(
        self,
        encoded: bytes,
        part: mime.Part,
        label: str,
        edits: list[Edit],
        wide: str | None,
        text: str,
        out: bytearray,
        result: Result,
    ) -> None:
        try:
            if wide is not None:
                new_body = self._wide(encoded, part, wide, text, edits)
            else:
                new_body = apply_edits(encoded, part.cte, edits)
        except TransferError as exc:
            log.warning("part %s: edits do not fit its encoding (%s): neutralizing it", label, exc)
            self._failsafe(encoded, part, label, out, result, decoded=decode(encoded, part.cte))
            return
        if len(new_body) != len(encoded) or _line_breaks(new_body) != _line_breaks(encoded):
            # Cannot happen if the transfer layer keeps its contract; never ship a length change.
            log.error("part %s: rewrite changed the length: neutralizing it", label)
            self._failsafe(encoded, part, label, out, result, decoded=decode(encoded, part.cte))
            return
        out[part.body_start : part.end] = new_body

    def _wide(self, encoded: bytes, part: mime.Part, charset: str, text: str, edits: list[Edit]) -> bytes:
        """Edits in a charset that is not ASCII-compatible (UTF-16, UTF-32): edit characters, re-encode,
        and turn the byte differences into same-length byte edits."""
        if part.cte == "quoted-printable":
            raise TransferError("quoted-printable text in a wide charset")
        old = decode(encoded, part.cte)
        return apply_edits(encoded, part.cte, _wide_edits(old, text, edits, charset))

    def _failsafe(
        self,
        encoded: bytes,
        part: mime.Part,
        label: str,
        out: bytearray | None,
        result: Result,
        decoded: bytes | None,
    ) -> None:
        """Deliver the part with every remote reference neutralized (``_failsafe_body``)."""
        result.failsafe_parts.append(label)
        if out is not None:
            out[part.body_start : part.end] = _failsafe_body(encoded, part, decoded)


def _failsafe_body(encoded: bytes, part: mime.Part, decoded: bytes | None) -> bytes:
    """``encoded`` (the body of a markup part) with every remote reference broken, its length and
    line breaks kept, and as much of its text as can be kept.

    As the rewriter would first: every reference the decoded text may spell broken
    (``safety.break_everything``), through the transfer encoding. When the edits do not fit the
    encoding (a malformed one, which clients may also decode otherwise than ``decode`` does), the
    encoded bytes go through the neutralizer, which reads quoted-printable and base64 as clients
    decode them, with the part taken as text whatever bytes it holds (it is markup).
    """
    wide = _wide_codec(part.charset, decoded or b"")
    try:
        if decoded is None:
            decoded = decode(encoded, part.cte)
            wide = _wide_codec(part.charset, decoded)
        if wide is None:
            edits = safety.break_everything(decoded.decode("latin-1"))
        else:
            text = decoded.decode(wide)
            edits = _wide_edits(decoded, text, safety.break_everything(text), wide)
        return apply_edits(encoded, part.cte, edits)
    except (TransferError, UnicodeError, LookupError) as exc:
        log.warning(
            "fail-safe edits do not fit the part (%s): neutralizing its encoded bytes", type(exc).__name__
        )
    if wide is None:
        return neutralize_section(encoded, text=True)[0]
    # A charset that is not ASCII-compatible spells a URL in other bytes (two or four per letter in
    # UTF-16 and UTF-32, other codes in EBCDIC), which the neutralizer, reading bytes as ASCII, does
    # not see; with no decoded text to edit, nothing else is safe. The body is blanked to spaces,
    # line breaks kept (base64 ignores them: the part decodes empty): the reader loses this part's
    # text, never the message, and nothing loads.
    return _blanked(encoded)


def _read_otherwise(part: mime.Part, encoded: bytes) -> tuple[str, bytes] | None:
    """Why clients may read a markup part's bytes otherwise than ``decode`` does, and the body to
    deliver then (neutralized or blanked, so that no reading loads anything); None when they agree."""
    if part.cte == "quoted-printable" and _QP_BARE_CR.search(encoded):
        # Thunderbird drops "=\r" as a soft line break, ``decode`` keeps it: "htt=\rps://" spells a URL
        # to the one only. The neutralizer reads such soft breaks as Thunderbird does.
        return "has soft line breaks clients read otherwise", neutralize_section(encoded, text=True)[0]
    if part.cte == "quoted-printable" and b"=" in encoded and _K9_QP_DIFFERS.search(encoded):
        own, k9 = decode(encoded, part.cte), _K9_QP.sub(_k9_qp_token, _LONE_BREAK.sub(b"\r\n", encoded))
        if k9 != own and _new_remote_urls(k9, own):
            return "has quoted-printable clients decode otherwise", _blanked(encoded)
    if part.cte == "base64" and not streams.groups_agree(encoded):
        return "has base64 padding clients read otherwise", _blanked(encoded)
    if _CLIENT_DECODED.fullmatch(part.cte):
        return "is uuencoded or yEncoded (clients decode it, the engine does not)", _blanked(encoded)
    return None


# What K-9 reads the charset of a text/html part without one from (MessageExtractor.getTextFromTextPart:
# this pattern in the first 256 bytes of the decoded body, read as ASCII); Java then decodes with any
# charset it knows (CharsetSupport.readToString).
_META_CHARSET = re.compile(rb'(?i)<meta http-equiv="?Content-Type"? content="text/html; charset=(.+?)">')
_META_PREFIX = 256
# The readings of a body holding NUL bytes that spell ASCII markup otherwise than the bytes do.
_WIDE_READINGS = ("utf-16-le", "utf-16-be", "utf-32-le", "utf-32-be")


def _charset_otherwise(part: mime.Part, decoded: bytes, wide: str | None) -> str | None:
    """Why clients may read a markup part's ``decoded`` body as other text than the engine (which reads
    it with ``wide``, or as bytes) that spells remote URLs, or None.

    A client that knows a label Thunderbird does not (``_other_reading``) reads other text. K-9 also
    takes a text/html part's charset from a <meta> in its first bytes, and Java reads UTF-16 without a
    byte-order mark as big-endian where WHATWG (and the engine) read little-endian; K-9's parameter
    reader skips comments and drops a charset given twice with two values. Rather than follow every
    label, a body with a NUL byte (without one no UTF-16 or UTF-32 reading holds ASCII) is read in
    each byte order of both."""
    value = str(part.headers.get("content-type", ""))
    # Evolution's camel reads an unquoted charset up to a tspecial ("ibm037?x" is "ibm037" to glibc).
    labels = [part.charset, *_k9_charsets(value), mime.camel_charset(value)]
    if part.content_type == "text/html":
        sniffed = _META_CHARSET.search(decoded, 0, _META_PREFIX)
        if sniffed is not None:
            labels.append(sniffed.group(1).decode("latin-1"))
    readings = [_other_reading(label) for label in labels]
    if any(_unknown(label) for label in labels):
        why = _icu_reading(decoded)
        if why is not None:
            return why
    if b"\0" in decoded:
        readings.extend(codec for codec in _WIDE_READINGS if codec != wide)
    for codec in readings:
        if codec is None:
            continue
        try:
            text = decoded.decode(codec, "replace")
        except ValueError:  # a codec that fails whatever the errors argument (punycode) shows nothing
            continue
        if safety.break_everything(text):
            return f"spells remote URLs when read as {codec}"
    return None


# A name Java may know a charset by (java.nio.charset.Charset: others raise IllegalCharsetNameException,
# and K-9 then reads US-ASCII).
_JAVA_CHARSET_NAME = re.compile(r"[a-z0-9][a-z0-9+.:_-]*")


_COMMENT = re.compile(r"\((?:[^()\\]|\\.)*\)")
_CHARSET_PARAM = re.compile(r'(?i);[ \t\r\n]*charset[ \t\r\n]*=[ \t\r\n]*(?:"((?:[^"\\]|\\.)*)"|([^\s;"]+))')


def _k9_charsets(value: str) -> list[str]:
    """The charset parameters of Content-Type ``value`` as K-9's MimeParameterDecoder may read them:
    comments dropped (it skips them where the stdlib keeps them as text)."""
    if "(" in value:
        while (bare := _COMMENT.sub("", value)) != value:
            value = bare
    return [quoted or token for quoted, token in _CHARSET_PARAM.findall(value)]


def _unknown(label: str | None) -> bool:
    """Whether ``label`` may name a charset in Java that Python knows no codec for (nor WHATWG UTF-16)."""
    name = _label(label)
    if name in _WHATWG_UTF16 or not _JAVA_CHARSET_NAME.fullmatch(name):
        return False
    try:
        codecs.lookup(name)
    except (LookupError, TypeError, ValueError):
        return True
    return False


# UTF-7 (RFC 2152) and IMAP's modified UTF-7 (RFC 3501 section 5.1.3): a shift character, base64 of
# UTF-16, an optional "-".
_UTF7_RUN = re.compile(rb"\+([A-Za-z0-9+/]+)-?")
_IMAP_UTF7_RUN = re.compile(rb"&([A-Za-z0-9+,]+)-?")
# What markup needs and UTF-7 writers leave unshifted.
_MARKUP_CHARS = frozenset("<>\"'=:/\\&()")


def _icu_reading(decoded: bytes) -> str | None:
    """Why a markup part under a charset label Python does not know may spell markup to K-9, or None.

    K-9 decodes with whatever charset Java knows by the label (CharsetSupport.readToString), and Android's
    Java charsets are ICU's converters under all their aliases (NativeConverter.charsetForName). Among
    them, EBCDIC ("ibm-37", "cp1047": ICU always builds code pages 37 and 1047) and UTF-7 ("windows-65000",
    "unicode-2-0-utf-7", "IMAP-mailbox-name") read ASCII markup from other bytes. The body is read as
    EBCDIC (its markup characters are the same in each Latin code page), where ASCII or Latin text never
    parses as an element; and UTF-7's shifted runs are read for the markup characters they hide."""
    try:
        if safety.loading_urls(decoded.decode("cp037")):
            return "spells markup when read as EBCDIC"
    except UncheckableError:
        return "spells markup when read as EBCDIC"
    for run, shift in ((_UTF7_RUN, b"+"), (_IMAP_UTF7_RUN, b"&")):
        for m in run.finditer(decoded):
            text = (b"+" + m.group(1).replace(b",", b"/") + b"-").decode("utf-7", "replace")
            if not _MARKUP_CHARS.isdisjoint(text):
                return f"spells markup in UTF-7 runs (shifted by {shift.decode()})"
    return None


# The parts K-9 renders as one document (MessageViewInfoExtractor.extractTextFromViewables appends
# each textual part's HTML, a plain text part converted, with a divider before every part but the first),
# as MessageExtractor.findViewablesAndAttachments finds them. Their types:
_K9_TEXTUAL = frozenset({"text/plain", "text/html", "application/pgp"})
# Appended to a part's rewritten text to see whether what follows it in K-9's document would be read as
# markup in the data state: the first image loads there, the second (in a <textarea>, raw text) does not.
# Inside a tag, a raw-text element (<style>: CSS) or a comment, the first does not load; in <svg> or
# <math> content the second does (K-9's divider, a <p>, leaves such content today; this does not count
# on it).
_PROBE_FOLLOWER = (
    '<img src="https://probe.invalid/p"><textarea><img src="https://probe.invalid/q"></textarea>'
)
_PROBE_LOADS = ["https://probe.invalid/p"]


def _k9_views(part: mime.Part) -> list[mime.Part]:
    """The leaves K-9 renders from ``part``, in order (over-inclusive where it picks one of several:
    every HTML part of a multipart/alternative, or else its text parts)."""
    if part.content_type == "message/rfc822":
        return []  # K-9 parses a fetched message without its attached ones: they are attachments
    if not part.children:
        disposition = str(part.headers.get("content-disposition", "")).lower()
        shown = part.content_type in _K9_TEXTUAL and "attachment" not in disposition
        return [part] if shown and "filename" not in disposition else []
    if part.content_type == "multipart/signed":
        return _k9_views(part.children[0])
    views = [v for child in part.children for v in _k9_views(child)]
    if part.content_type == "multipart/alternative":
        html = [v for v in views if v.content_type == "text/html"]
        return html or [v for v in views if v.content_type == "text/plain"]
    return views


def _neutralize_after_open_ends(root: mime.Part, out: bytearray, result: Result) -> None:
    """Neutralize the parts K-9 renders after a markup part whose rewritten text does not end in the
    HTML data state: K-9 joins them into one document, where a part ending inside a tag ("<img alt='")
    makes the next part's text its attributes and one ending in an open <style> makes it CSS; the engine
    read each part on its own."""
    views = _k9_views(root)
    for i, part in enumerate(views[:-1]):
        if part.content_type not in _MARKUP:
            continue
        try:
            decoded = decode(bytes(out[part.body_start : part.end]), part.cte)
            text = decoded.decode(_wide_codec(part.charset, decoded) or "latin-1")
            loads = [s.url for s in safety.loading_urls(text + _PROBE_FOLLOWER) if "probe.invalid" in s.url]
        except (TransferError, UnicodeError, LookupError, UncheckableError):
            loads = []
        if loads == _PROBE_LOADS:
            continue
        for later in views[i + 1 :]:
            label = mime.body_number(later)
            log.warning("part %s follows a part that ends inside markup: neutralizing it", label)
            out[later.body_start : later.end] = neutralize_section(
                bytes(out[later.body_start : later.end]), text=True
            )[0]
            if label not in result.failsafe_parts:
                result.failsafe_parts.append(label)
        return


def _k9_qp_token(m: re.Match[bytes]) -> bytes:
    """What K-9 decodes a token of ``_K9_QP`` to."""
    if m["eq"]:
        return b"="
    if m["hex"]:
        return bytes.fromhex(m["hex"].decode("ascii"))
    return m["text"] or b""


def _new_remote_urls(other: bytes, own: bytes) -> bool:
    """Whether markup ``other`` (another reading of ``own``) loads a remote URL more often than ``own``
    (the engine's edits reach the places its own reading loads from, not others)."""
    try:
        seen = Counter(s.url for s in safety.loading_urls(own.decode("latin-1")))
        loads = Counter(s.url for s in safety.loading_urls(other.decode("latin-1")) if is_remote(s.url))
    except UncheckableError:
        return True
    return any(n > seen[url] for url, n in loads.items())


def _blanked(encoded: bytes) -> bytes:
    """``encoded`` as spaces, its line breaks kept: the last resort for markup no edit can reach."""
    return re.sub(rb"[^\r\n]", b" ", encoded)


def _wide_edits(old: bytes, text: str, edits: list[Edit], charset: str) -> list[Edit]:
    """Edits of ``text`` (``old`` decoded from ``charset``, not ASCII-compatible) as same-length edits of
    the bytes: the edited text re-encoded, and each byte that differs replaced."""
    new = _encode_like(old, _apply(text, edits), charset)
    if len(new) != len(old):
        raise TransferError("re-encoding changed the length")
    diff = [Edit(i, i + 1, new[i : i + 1]) for i in range(len(old)) if old[i] != new[i]]
    if any(e.content in (b"\r", b"\n") for e in diff):
        raise TransferError("an edit would move a line break")
    return diff


# -- parts Evolution reads as other parts --------------------------------------------------------------
# Parts a client decodes and parses as messages: message/rfc822 that mime leaves unparsed (in a transfer
# encoding), message/news (Evolution's e-mail-parser-message-rfc822.c), message/global and
# message/rfc2822 (camel-mime-parser.c parses them as messages), and mailboxes (e-mail-parser-
# application-mbox.c: the decoded body split at its "From " lines, each message rendered inline).
_MESSAGES = frozenset({"message/rfc822", "message/news", "message/global", "message/rfc2822"})
_MBOX = "application/mbox"
_MBOX_FROM = re.compile(rb"(?m)^From ")
# Evolution's text/plain parser (e-mail-parser-text-plain.c, with e-mail-inline-filter.c) cuts a text
# part at inline PGP, BinHex and PostScript blocks, and parses a piece that starts with "Content-Type:"
# as a MIME part (construct_part_from_stream), which it renders whatever its type: HTML in "plain text".
_INLINE_BLOCK = re.compile(
    rb"(?m)^(?:\(This file must be converted with BinHex 4\.0\)|%!PS-Adobe-"
    rb"|-----BEGIN PGP (?:SIGNED )?MESSAGE-----)"
)
_ENTITY_LINE = re.compile(rb"(?im)^content-type:")
# The major types Evolution has parsers for; a part of another type (most application/*, audio/* and
# video/* types) is parsed as the type e_mail_part_snoop_type guesses from its decoded content
# (g_content_type_guess: shared-mime-info's magic for text/html and message/rfc822 or message/news)
# and its file name (e-mail-parser-multipart-mixed.c, e_mail_parser_wrap_as_attachment).
_EVOLUTION_PARSES = ("text/", "image/", "multipart/", "message/")
# shared-mime-info's text/html magic: some strings anywhere in the first 256 bytes, some at the start only.
_SNIFFED_HTML = re.compile(rb"(?i)<(?:!doctype html|html|head|script|title)|\A<(?:body|h1|!--)")
_SNIFFED_MESSAGE = re.compile(
    rb"#! rnews|N#! rnews|Forward to|From:|Pipe to|Received:|Relay-Version:|Return-[Pp]ath:|Subject: "
    rb"|Article|Path:|Xref:"
)
_SNIFF_BYTES = 256 + 16  # shared-mime-info looks at offsets 0 to 256
_NAMED_HTML = re.compile(r"(?i)\.html?\s*$")
_NAMED_MESSAGE = re.compile(r"(?i)\.(?:eml|mbox)\s*$")
_NAMED_MARKDOWN = re.compile(r"(?i)\.(?:md|mkd|markdown)\s*$")
_NAMED_VCARD = re.compile(r"(?i)\.(?:vcf|vcard)\s*$")
_NAMED_CALENDAR = re.compile(r"(?i)\.(?:ics|ifb|vcs)\s*$")
# Parts inside parts: deeper than this, blanked.
_MAX_NESTING = 8


_WHY = {
    "messages": "holds messages or a MIME part Evolution decodes and renders",
    "markup": "is HTML to Evolution, which guesses its type",
    "markdown": "is markdown Evolution renders with remote images",
    "vcard": "is a vCard Evolution renders with a remote picture or markup",
    "calendar": "is a calendar Evolution renders with remote content",
    "signed": "is S/MIME signed data clients unwrap and render, with remote content",
}


def _evolution_reading(raw: bytes, part: mime.Part) -> str | None:
    """Why Evolution reads a (non-markup) leaf as markup, markdown or messages where the engine reads
    nothing to rewrite, or None."""
    kind = _evolution_kind(raw[part.body_start : part.end], part)
    return None if kind is None else _WHY[kind]


def _evolution_kind(encoded: bytes, part: mime.Part) -> str | None:
    """What Evolution reads a leaf as where the engine sees nothing to rewrite: "messages" (it decodes
    and parses them), "markup", "markdown", a "vcard" or a "calendar" that loads something, or None."""
    ctype = part.content_type
    if ctype in _MESSAGES or ctype == _MBOX:
        return "messages"
    if ctype in _PKCS7:
        der = _decoded(encoded, part)
        if _SIGNED_DATA not in der[:32]:
            return None  # enveloped (encrypted) data: out of anyone's sight but the reader's
        content = _signed_content(der)
        return "signed" if content is None or _entity_loads(content) else None
    if ctype == _MARKDOWN:
        kind: str | None = "markdown"
    elif ctype in _VCARDS:
        kind = "vcard"
    elif ctype in _CALENDARS:
        return "calendar" if _calendar_loads(_decoded(encoded, part)) else None
    elif ctype.startswith("text/"):
        if part.cte == "quoted-printable" and _QP_BARE_CR.search(encoded) is None:
            # The soft breaks and escapes camel reads (camel_quoted_decode_step), binascii several times
            # faster than ``decode`` (which a "=" before a bare CR needs: binascii drops a byte there).
            text = binascii.a2b_qp(encoded)
        else:
            text = _decoded(encoded, part)
        return "messages" if _embeds_entity(text) else None
    elif ctype.startswith(_EVOLUTION_PARSES):
        return None
    else:
        kind = _sniffed(encoded, part)
    if kind == "markdown" and not _markdown_loads(_decoded(encoded, part), part.charset):
        return None
    if kind == "vcard" and not _vcard_loads(_decoded(encoded, part)):
        return None
    if kind == "calendar" and not _calendar_loads(_decoded(encoded, part)):
        return None
    return kind


# Evolution renders text/markdown with cmark (e-mail-formatter-text-markdown.c, cmark_markdown_to_html),
# whose images load from their URLs however a backslash escape or a character reference spells them.
_MARKDOWN = "text/markdown"
_MARKDOWN_ESCAPE = re.compile(r"\\([!-/:-@\[-`{-~])")


# Evolution renders vCards (its vcard-inline module: text/vcard, text/x-vcard, text/directory) with
# eab-contact-formatter.c, which writes a picture given by URI (PHOTO or LOGO) as an <img> of that URI,
# and some values (the parts of an address) into the HTML as they are.
_VCARDS = frozenset({"text/vcard", "text/x-vcard", "text/directory"})
_VCARD_FOLD = re.compile(rb"\r?\n[ \t]")
_VCARD_PICTURE = re.compile(r"(?im)^(?:[\w-]+\.)?(?:photo|logo)[;:](.*)$")
_VCARD_MARKUP = re.compile(r"<[a-zA-Z!/?]")


def _vcard_loads(decoded: bytes) -> bool:
    """Whether a vCard, unfolded and read with and without quoted-printable (vCard 2.1), has a picture
    with a remote URI or markup, backslash escapes dropped."""
    unfolded = _VCARD_FOLD.sub(b"", decoded)
    for reading in (unfolded, binascii.a2b_qp(unfolded)):
        text = reading.decode("latin-1").replace("\\", "")
        if _VCARD_MARKUP.search(text) or any(
            safety.break_everything(m.group(1)) for m in _VCARD_PICTURE.finditer(text)
        ):
            return True
    return False


# Evolution renders calendars (its itip-formatter module: text/calendar, application/ics) in its own view:
# itip-view.c (itip_view_init_view) writes an X-ALT-DESC given as text/html, and a DESCRIPTION holding
# one of a few tags, into it as HTML, and e-mail-parser-itip.c shows inline ATTACH data as a part of its
# FMTTYPE.
_CALENDARS = frozenset({"text/calendar", "application/ics"})
_ICAL_TEXT = re.compile(r"(?im)^(?:[\w-]+\.)?(x-alt-desc|description|attach)((?:;[^:\n]*)?):(.*)$")
_ICAL_ESCAPE = re.compile(r"\\(.)")
_GOOGLE_HTML = re.compile(r"(?i)<(?:html|body|br|span|b|i|u|ul|li)>|</a>|&nbsp;")


def _calendar_loads(decoded: bytes) -> bool:
    """Whether a calendar, unfolded, has an HTML description or inline attachment that loads something
    remote (links aside)."""
    text = _VCARD_FOLD.sub(b"", decoded).decode("latin-1")
    for m in _ICAL_TEXT.finditer(text):
        name, params, value = m.group(1).lower(), m.group(2), m.group(3)
        if name == "attach":
            if "binary" not in params.lower():
                continue
            try:
                value = binascii.a2b_base64(value).decode("latin-1")
            except binascii.Error:
                continue
        else:
            value = _ICAL_ESCAPE.sub(lambda e: "\n" if e.group(1) in "nN" else e.group(1), value)
            html = "text/html" in params.lower() if name == "x-alt-desc" else _GOOGLE_HTML.search(value)
            if not html:
                continue
        if _loads_remote(value):
            return True
    return False


def _loads_remote(html: str) -> bool:
    """Whether markup ``html`` loads anything remote (a link aside), or cannot be checked."""
    try:
        survivors = safety.loading_urls(html)
    except UncheckableError:
        return True
    return any(is_remote(s.url) and not (s.element in ("a", "area") and s.attr == "href") for s in survivors)


# S/MIME signed data in a part of its own (RFC 8551 section 3.5.2): Evolution (e-mail-parser-application-
# smime.c, camel_cipher_context_decrypt_sync) and Thunderbird unwrap the MIME entity signed inside and
# render it, whatever the signature. It lies in the DER (BER) structure, beyond the neutralizer's sight.
_PKCS7 = frozenset(
    {
        "application/pkcs7-mime",
        "application/x-pkcs7-mime",
        "application/xpkcs7mime",
        "application/xpkcs7-mime",
    }
)
_SIGNED_DATA = bytes.fromhex("06092a864886f70d010702")  # OBJECT IDENTIFIER 1.2.840.113549.1.7.2


def _ber(data: bytes, pos: int) -> tuple[int, int, int] | None:
    """(tag, start of the contents, their end or -1 when indefinite) of the BER element at ``pos``, or
    None where it is malformed (or has a tag number above 30, which signed data does not use)."""
    if pos + 2 > len(data) or data[pos] & 0x1F == 0x1F:
        return None
    tag, first, start = data[pos], data[pos + 1], pos + 2
    if first < 0x80:
        return (tag, start, start + first) if start + first <= len(data) else None
    if first == 0x80:
        return (tag, start, -1) if tag & 0x20 else None  # indefinite: constructed only
    n = first & 0x7F
    if n > 4 or start + n > len(data):
        return None
    end = start + n + int.from_bytes(data[start : start + n], "big")
    return (tag, start + n, end) if end <= len(data) else None


def _ber_children(data: bytes, start: int, end: int) -> Iterator[tuple[int, int, int, int]]:
    """(tag, contents' start, contents' end, element's end) of each element in a constructed
    element's contents from ``start`` to ``end`` (-1: up to an end-of-contents mark)."""
    pos = start
    while pos < (len(data) if end < 0 else end):
        if end < 0 and data[pos : pos + 2] == b"\0\0":
            return
        element = _ber(data, pos)
        if element is None:
            raise ValueError("malformed BER")
        tag, cstart, cend = element
        if cend < 0:  # indefinite: the contents end where the children's end-of-contents mark is
            cend = cstart
            for child in _ber_children(data, cstart, -1):
                cend = child[3]
            after = cend + 2
        else:
            after = cend
        yield tag, cstart, cend, after
        pos = after
    if end < 0:
        raise ValueError("unterminated BER")


def _signed_content(der: bytes) -> bytes | None:
    """The content signed in a ContentInfo of signed data (ContentInfo, SignedData,
    EncapsulatedContentInfo: its eContent's octets, constructed or not), or None where it cannot be read."""
    try:
        top = _ber(der, 0)
        if top is None or top[0] != 0x30:
            return None
        info = list(_ber_children(der, top[1], top[2]))
        if len(info) < 2 or info[1][0] != 0xA0:
            return None
        signed = next(_ber_children(der, info[1][1], info[1][2]))
        encap = [c for c in _ber_children(der, signed[1], signed[2]) if c[0] == 0x30][0]
        econtent = [c for c in _ber_children(der, encap[1], encap[2]) if c[0] == 0xA0]
        if not econtent:
            return b""  # detached: nothing signed in it
        octets = next(_ber_children(der, econtent[0][1], econtent[0][2]))
        return _octets(der, octets)
    except (ValueError, IndexError, StopIteration, RecursionError):  # (hostile nesting too)
        return None


def _octets(der: bytes, element: tuple[int, int, int, int]) -> bytes:
    tag, start, end, _ = element
    if tag == 0x04:
        return der[start:end]
    if tag != 0x24:
        raise ValueError("not an OCTET STRING")
    return b"".join(_octets(der, child) for child in _ber_children(der, start, end))


def _entity_loads(content: bytes) -> bool:
    """Whether a MIME entity (signed data's content) has a part that loads something remote as clients
    read it (links aside): markup that does, a part Evolution reads as such (``_evolution_kind``), or
    parts clients may read otherwise that name anything remote."""
    root = mime.parse(content)
    for leaf in root.leaves():
        encoded = content[leaf.body_start : leaf.end]
        if leaf.content_type in _MARKUP:
            decoded = _decoded(encoded, leaf)
            if b"\0" in decoded or _loads_remote(decoded.decode("latin-1")):
                return True
        elif _evolution_kind(encoded, leaf) is not None:
            return True
    ambiguous = any(p.ambiguous for p in root.walk())
    return ambiguous and _neutralized_entity(content, 0) != content


def _markdown_loads(decoded: bytes, charset: str | None) -> bool:
    """Whether markdown ``decoded`` (read as bytes or in its charset) has an image and spells a remote
    URL once its escapes and character references are read."""
    for codec in ("latin-1", _label(charset) or "latin-1"):
        try:
            text = decoded.decode(codec, "replace")
        except (LookupError, ValueError):  # a label Python does not know (as bytes above)
            continue
        if "![" in text and safety.break_everything(html.unescape(_MARKDOWN_ESCAPE.sub(r"\1", text))):
            return True
    return False


def _decoded(encoded: bytes, part: mime.Part) -> bytes:
    try:
        return decode(encoded, part.cte)
    except TransferError:
        return encoded


def _embeds_entity(decoded: bytes) -> bool:
    """Whether Evolution's text/plain parser finds a MIME part in a text part's ``decoded`` body: one
    starting the body, or (loosely) a line after an inline block."""
    if decoded[:13].lower() == b"content-type:":
        return True
    return _inline_block(decoded) and _ENTITY_LINE.search(decoded) is not None


# What every inline block starts with: looked for first, at C speed (the line-anchored pattern is tried
# at every line start).
_INLINE_MARKERS = (b"-----BEGIN PGP ", b"(This file must be converted with BinHex", b"%!PS-Adobe-")


def _inline_block(data: bytes) -> bool:
    return any(m in data for m in _INLINE_MARKERS) and _INLINE_BLOCK.search(data) is not None


def _sniffed(encoded: bytes, part: mime.Part) -> str | None:
    """What Evolution takes a part of a type it has no parser for for, by its file name or the first bytes
    of its content: "markup", "messages", "vcard", "calendar" or "markdown"; else None."""
    try:
        name = mime.filename(part.headers) or ""
    except mime.UNREADABLE_PARAMS:
        name = ""
    # The first bytes decoded from a prefix of the body (a prefix of base64 lines decodes to one).
    head = _decoded(encoded[:1024].rpartition(b"\n")[0] or encoded[:1024], part)[:_SNIFF_BYTES]
    if _SNIFFED_MESSAGE.match(head) or _NAMED_MESSAGE.search(name):
        return "messages"
    if _SNIFFED_HTML.search(head) or _NAMED_HTML.search(name):
        return "markup"
    if head[:11].upper() == b"BEGIN:VCARD" or _NAMED_VCARD.search(name):
        return "vcard"
    if head[:15].upper() == b"BEGIN:VCALENDAR" or _NAMED_CALENDAR.search(name):
        return "calendar"
    return "markdown" if _NAMED_MARKDOWN.search(name) else None


def _neutralized_leaf(encoded: bytes, part: mime.Part, depth: int = 0) -> bytes:
    """The body of leaf ``part`` with every remote reference broken, as ``neutralize_section`` reads it
    and, for a part clients decode and parse as messages or a MIME part, in every part they find there:
    a reference in an encoded part inside an encoded part is out of the neutralizer's sight. Blanked
    where that reading fails (a bug of ours)."""
    try:
        return _neutralized_as_read(encoded, part, depth)
    except Exception:
        log.exception("a part cannot be read as clients read it: blanking it")
        return _blanked(encoded)


def _neutralized_as_read(encoded: bytes, part: mime.Part, depth: int) -> bytes:
    """``_neutralized_leaf``, unguarded."""
    ctype = part.content_type
    kind = None if ctype in _MARKUP else _evolution_kind(encoded, part)
    if kind in ("markdown", "vcard", "signed"):  # read through escapes or DER no neutralizer reads
        return _blanked(encoded)
    if kind == "calendar":
        # Unless a URL is folded or escaped out of the neutralizer's sight, the invitation stays.
        body = neutralize_section(encoded)[0]
        return body if not _calendar_loads(_decoded(body, part)) else _blanked(encoded)
    if kind != "messages":
        return neutralize_section(encoded, text=kind == "markup")[0]
    if depth >= _MAX_NESTING:
        return _blanked(encoded)
    try:
        decoded = decode(encoded, part.cte)
        # A mailbox (by its type, or sniffed) is split at its "From " lines, as camel reads one.
        split = ctype not in _MESSAGES and not ctype.startswith("text/")
        starts = [m.start() for m in _MBOX_FROM.finditer(decoded) if m.start()] if split else []
        bounds = zip([0, *starts], [*starts, len(decoded)], strict=True)
        new = b"".join(_neutralized_entity(decoded[a:b], depth + 1) for a, b in bounds)
        return neutralize_section(apply_edits(encoded, part.cte, _differences(decoded, new)))[0]
    except TransferError:
        return _blanked(encoded)


def _neutralized_entity(data: bytes, depth: int) -> bytes:
    """A MIME entity (a message, or a part with its header block) with every remote reference broken."""
    root = mime.parse(data)
    return neutralize_section(data[: root.body_start])[0] + _neutralized_body(data, root, depth)


def _differences(old: bytes, new: bytes) -> list[Edit]:
    """Where ``new`` (same length) differs from ``old``, as edits of ``old``."""
    edits: list[Edit] = []
    i, n = 0, len(old)
    while i < n:
        if old[i : i + 256] == new[i : i + 256]:
            i += 256
            continue
        if old[i] == new[i]:
            i += 1
            continue
        j = i
        while j < n and old[j] != new[j]:
            j += 1
        edits.append(Edit(i, j, new[i:j]))
        i = j
    return edits


def neutralize_message(raw: bytes) -> bytes:
    """The last resort of a caller whose ``Engine.rewrite`` raised (a bug): every remote reference in
    the raw message broken, same length and lines, base64 and binary attachments left intact."""
    try:
        root = mime.parse(raw)
    except Exception:  # the bug may be in the parser: the message as one body
        log.exception("message cannot be parsed: neutralizing it whole")
        return neutralize_section(raw)[0]
    return neutralize_section(raw[: root.body_start])[0] + _neutralized_body(raw, root)


def _neutralized_body(raw: bytes, part: mime.Part, depth: int = 0) -> bytes:
    """The body of ``part`` with every remote reference broken (``rewrite.neutralize``, which reads
    quoted-printable and base64 text, and leaves base64 lines and binary content alone). Each leaf's
    body is judged on its own (``_neutralized_leaf``), so that a binary attachment does not make the
    text beside it pass for binary, and the bytes between them (headers, delimiters) as text."""
    pieces: list[bytes] = []
    pos = part.body_start
    for leaf in part.leaves():
        start = max(pos, leaf.body_start)
        pieces.append(neutralize_section(raw[pos:start])[0])
        body = raw[start : leaf.end]
        pieces.append(
            _neutralized_leaf(body, leaf, depth) if start == leaf.body_start else neutralize_section(body)[0]
        )
        pos = max(start, leaf.end)
    pieces.append(neutralize_section(raw[pos : part.end])[0])
    return b"".join(pieces)


def _outermost_ambiguous(part: mime.Part, leaves: list[mime.Part]) -> list[mime.Part]:
    """The ambiguous parts not inside another one; the leaves outside them are added to ``leaves``."""
    if part.ambiguous:
        return [part]
    if not part.children:
        leaves.append(part)
    return [a for child in part.children for a in _outermost_ambiguous(child, leaves)]


def _encode_like(old: bytes, text: str, charset: str) -> bytes:
    """Encode ``text`` as ``old`` was encoded, byte order mark included."""
    name = codecs.lookup(charset).name
    if name in ("utf-16", "utf-32"):
        for bom, codec in (
            (codecs.BOM_UTF32_LE, "utf-32-le"),
            (codecs.BOM_UTF32_BE, "utf-32-be"),
            (codecs.BOM_UTF16_LE, "utf-16-le"),
            (codecs.BOM_UTF16_BE, "utf-16-be"),
        ):
            if codec.startswith(name) and old.startswith(bom):
                return bom + text.encode(codec)
    return text.encode(charset)


def _content_base(part: mime.Part) -> str | None:
    for name in ("content-base", "content-location"):
        value = part.headers.get(name)
        if value:
            return str(value).strip().strip('"') or None
    return None


def _external_target(headers: Message) -> tuple[str, str]:
    """(access type, what a client would fetch) of a message/external-body part. The access type is ""
    when it is missing or given twice with different values; the target is "" when it cannot be told or
    stays on the reader's machine."""
    params: dict[str, set[str]] = {}
    try:
        pairs = headers.get_params(failobj=[])
    except mime.UNREADABLE_PARAMS:
        return "", ""
    for name, value in pairs[1:]:  # the first is the media type
        params.setdefault(name.lower(), set()).add(collapse_rfc2231_value(value, errors="replace").strip())

    def one(name: str) -> str:
        values = params.get(name, set())
        return next(iter(values)) if len(values) == 1 else ""

    access = one("access-type").lower()
    if access in _FTP_SCHEMES:
        site, path = one("site"), "/".join(p.strip("/") for p in (one("directory"), one("name")) if p)
        return access, (f"{_FTP_SCHEMES[access]}://{site}/{path}" if site else "")
    if access == "local-file":
        # A network path (\\host\share, //host/share) is fetched from that host, credentials and all. A
        # name starting with one backslash may be one to a client that does not unquote it.
        name = one("name")
        network = re.match(r"\\|//", name)
        return access, ("file://" + name.replace("\\", "/").lstrip("/") if network else "")
    # RFC 2017 section 3.1: the URL may be split into quoted words; quotes and white space are dropped.
    return access, _URL_JUNK.sub("", one("url"))


def _rename_fields(fields: Iterable[re.Match[bytes]], out: bytearray) -> None:
    for m in fields:
        name = m.group(1)
        out[m.start(1) : m.end(1)] = (b"X-Mailproxy-" + name)[: len(name)]


def _finding(ref: Reference, url: str, v: UrlVerdict, action: Action, part: str, is_image: bool) -> Finding:
    return Finding(
        url=url,
        vector=ref.vector,
        verdict=v.verdict,
        action=action,
        tier=v.tier if v.verdict is not _CLEAN else _LOW,
        vendor=v.vendor,
        reasons=v.reasons,
        party=v.party,
        is_image=is_image,
        part=part,
        tracker_domain=v.domain,
    )


def _line_breaks(data: bytes) -> int:
    # bytes.count(b"\n") looks at every byte; replace() finds them with memchr, about twice as fast on a
    # part's body (a line break every 50 to 80 bytes).
    return len(data) - len(data.replace(b"\n", b""))


def _shift(e: Edit, by: int) -> Edit:
    return Edit(e.start + by, e.end + by, e.content)


def _merge(a: Iterable[Edit], b: Iterable[Edit]) -> list[Edit]:
    """Both edit lists, sorted; an edit of ``b`` inside one of ``a`` is dropped."""
    first = sorted(a, key=lambda e: e.start)
    out = list(first)
    for e in b:
        if not any(x.start <= e.start < x.end or x.start < e.end <= x.end for x in first):
            out.append(e)
    return sorted(out, key=lambda e: e.start)


def _apply(text: str, edits: Iterable[Edit]) -> str:
    """The decoded text after the edits, laid out as the transfer layer does for 7bit: content, spaces,
    then the span's line breaks. Same length as ``text``, so offsets into it are offsets into the original."""
    pieces: list[str] = []
    pos = 0
    for e in edits:
        pieces.append(text[pos : e.start])
        span = text[e.start : e.end]
        breaks = "".join(c for c in span if c in "\r\n") if "\n" in span or "\r" in span else ""
        content = e.content.decode("latin-1")
        pieces.append(content + " " * (len(span) - len(content) - len(breaks)) + breaks)
        pos = e.end
    pieces.append(text[pos:])
    return "".join(pieces)
