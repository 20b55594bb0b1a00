"""The engine both proxies and the CLI use: analyse a raw message, or rewrite it as the reader should see it.

``Engine.rewrite(raw)`` is a pure, deterministic function of (message bytes, policy, recipients, user):
the IMAP filter serves chunk 3 of a message from one call and chunk 4 from another, so the same input must
give the same bytes every time. Its output always has the input's length and line count, and differs only
inside the edited spans (invariant 1). It never raises on message content: a part it cannot analyse is
delivered with every remote reference neutralized (invariant 3).

Per part: decode the transfer encoding, extract references (``html.refs``), classify each group of
references (``detect.classify``), let the user's policy pick the action (``policy``), plan edits
(``rewrite.edits``), check the result with an independent parser (``rewrite.safety``), and apply the edits
through the transfer encoding (``rewrite.transfer``). A part clients read otherwise than this
(``mailproxy.readings``) is neutralized or blanked instead.
"""

from __future__ import annotations

import codecs
import logging
import re
from collections.abc import Iterable, Sequence
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
from mailproxy.readings import (
    MARKUP,
    STYLESHEET,
    blanked,
    charset_otherwise,
    encoding_otherwise,
    is_clearsigned,
    leaf_reading,
    neutralize_after_open_ends,
    neutralized_body,
    neutralized_leaf,
    untyped_texts,
    wide_codec,
)
from mailproxy.rewrite import edits as planner
from mailproxy.rewrite import safety
from mailproxy.rewrite.neutralize import neutralize_section
from mailproxy.rewrite.streams import apply_edits, decode
from mailproxy.rewrite.transfer import Edit, TransferError

log = logging.getLogger(__name__)

_AMP = "text/x-amp-html"
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
                out[part.body_start : part.end] = neutralized_body(raw, part)
        untyped = {id(part) for part in untyped_texts(root)}
        for part in leaves:
            label = mime.body_number(part)
            try:
                read_otherwise = part.content_type not in MARKUP
                reading = leaf_reading(raw, part, untyped=id(part) in untyped) if read_otherwise else None
            except Exception:  # a bug of ours must not leak what a client renders (the part is blanked)
                log.exception("part %s: the check of how clients read it failed", label)
                reading = "cannot be checked as clients read it"
            if reading is not None:
                log.warning("part %s %s: neutralizing it", label, reading)
                result.failsafe_parts.append(label)
                if out is not None:
                    out[part.body_start : part.end] = neutralized_leaf(raw[part.body_start : part.end], part)
            elif part.content_type in MARKUP or part.content_type == STYLESHEET:
                try:
                    self._part(raw, part, effective, classifier, out, result)
                except Exception:  # a bug of ours must not leak the pixel or lose the mail
                    log.exception("part %s: rewriting failed; neutralizing it", label)
                    encoded = raw[part.body_start : part.end]
                    self._failsafe(encoded, part, label, out, result, decoded=None)
        if out is not None:
            neutralize_after_open_ends(root, out, result.failsafe_parts)
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
        otherwise = encoding_otherwise(part, encoded)
        if otherwise is not None:
            why, body = otherwise
            log.warning("part %s %s: neutralizing it", label, why)
            result.failsafe_parts.append(label)
            if out is not None:
                out[part.body_start : part.end] = body
            return
        try:
            decoded = decode(encoded, part.cte)
            wide = wide_codec(part.charset, decoded)
            text = decoded.decode(wide or "latin-1")
        except (TransferError, UnicodeDecodeError, LookupError) as exc:
            log.warning("part %s cannot be decoded (%s): neutralizing it", label, type(exc).__name__)
            self._failsafe(encoded, part, label, out, result, decoded=None)
            return
        misread = charset_otherwise(part, decoded, wide)
        if misread is not None:
            log.warning("part %s %s: neutralizing it", label, misread)
            result.failsafe_parts.append(label)
            if out is not None:
                out[part.body_start : part.end] = blanked(encoded)
            return
        if is_clearsigned(text):
            log.warning("part %s is clearsigned HTML, read otherwise by clients: neutralizing it", label)
            self._failsafe(encoded, part, label, out, result, decoded=decoded)
            return

        if part.content_type == STYLESHEET:
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
        check = after if part.content_type != STYLESHEET else "<style>" + after + "</style>"
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
    wide = wide_codec(part.charset, decoded or b"")
    try:
        if decoded is None:
            decoded = decode(encoded, part.cte)
            wide = wide_codec(part.charset, decoded)
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
    return blanked(encoded)


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


def neutralize_message(raw: bytes) -> bytes:
    """The last resort of a caller whose ``Engine.rewrite`` raised (a bug): every remote reference in
    the raw message broken, same length and lines, base64 and binary attachments left intact."""
    try:
        root = mime.parse(raw)
    except Exception:  # the bug may be in the parser: the message as one body
        log.exception("message cannot be parsed: neutralizing it whole")
        return neutralize_section(raw)[0]
    return neutralize_section(raw[: root.body_start])[0] + neutralized_body(raw, root)


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
        for name, value in headers.get_params(failobj=[])[1:]:  # the first is the media type
            # (collapse_rfc2231_value raises ValueError for a charset name with a NUL in it.)
            text = collapse_rfc2231_value(value, errors="replace").strip()
            params.setdefault(name.lower(), set()).add(text)
    except mime.UNREADABLE_PARAMS:
        return "", ""

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
