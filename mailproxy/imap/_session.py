"""The sans-IO state of one proxied IMAP connection: client bytes and server bytes in, bytes out.

Theory of operation
-------------------
The proxy is transparent by default: every byte goes through unchanged unless one of these rules
says otherwise. The rules, and the state each one needs, all live in this file.

1. Capability lists (greeting code, ``* CAPABILITY``, ``[CAPABILITY ...]`` codes in any response)
   lose the extensions the proxy cannot honour while rewriting
   (``_protocol.filter_capability_list``). Commands that use them (COMPRESS, NOTIFY, URLFETCH,
   CONVERT) are answered ``NO`` by the proxy itself.
2. STARTTLS from the client is the proxy's own (it terminates TLS on each leg): offered only when a
   certificate is configured, answered locally, and whatever the client pipelined after it is
   dropped.
3. A plaintext, non-loopback listener refuses LOGIN and AUTHENTICATE locally and says
   LOGINDISABLED, so no password crosses the network in clear through the proxy.
4. After a ``+`` from the server to an AUTHENTICATE or IDLE command, the client's next line is a
   SASL response or ``DONE``, not a command; it is passed on without being parsed (or logged).
5. FETCH commands may be extended (``_fetch.plan_fetch``) and every ``* n FETCH`` response with a
   body goes through ``_fetch.rewrite_fetch``, which is the only place message bytes change. A body
   it cannot serve from the rewritten message (no whole message to rewrite, a part the server
   numbers differently) is neutralized there (``rewrite.neutralize``), never passed on unfiltered.
6. The login name (for the rewriter's recipients and the cache key) is taken from LOGIN or the SASL
   exchange when the server says OK; passwords are never kept or logged.
7. SELECT/EXAMINE and their ``[UIDVALIDITY n]`` give the mailbox half of the cache key; while one
   is in flight, the cache is not consulted for new commands (the mailbox may be about to change).
8. With ``defer_rewrites`` (the asyncio shell), the session does not call the rewriter itself: when
   a FETCH response needs a message rewritten, the ``Output`` carries a ``RewriteJob`` and the
   response is held. The shell runs the job off the event loop and hands the result to
   ``rewrite_done``, which re-reads the held response (rewriting it is deterministic, and nothing
   changes state before the rewrite is asked for) and carries on. Everything after a held response
   waits behind it, so what the client sees keeps the server's order. With ``max_jobs`` above one,
   untagged responses after a held one are still read, so the FETCH responses of one command hand
   out up to that many jobs at once (a pool can rewrite them side by side); anything else (a
   tagged or continuation response, a streamed one) stops reading until everything before it is
   out, so no state the held responses depend on (user, mailbox, pinned cache entries) changes
   under them. Client bytes are only buffered while anything is held.
9. A FETCH response with a literal above ``max_literal`` cannot be buffered for the rewriter; it
   streams through ``rewrite.neutralize`` instead, which breaks every remote reference
   in it (base64 parts decoded on the way) without changing a length; see that module.
10. With ``may_change`` (the engine's adapter provides one), a message it judges from its bytes
   alone to come out of the rewriter unchanged is passed on without calling the rewriter or
   handing out a job: most mail without HTML costs a scan instead of a MIME parse and a thread
   trip.
11. With ``header_may_change`` (the engine's adapter provides one too), a header section fetched
   without its message (a listing) that names a field the engine renames goes through the
   rewriter on its own (``_fetch._served_header``). A response can then need several rewrites;
   they are handed out one after the other, each result kept with the held response.
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from mailproxy.imap._cache import CacheKey, RewriteCache
from mailproxy.imap._errors import LocalProtocolError
from mailproxy.imap._events import NEED_DATA, CommandLine, LiteralData, Response, ResponseChunk
from mailproxy.imap._fetch import FetchContext, plan_fetch, rewrite_fetch
from mailproxy.imap._protocol import (
    DEFAULT_MAX_LINE,
    DEFAULT_MAX_LITERAL,
    REFUSED_COMMANDS,
    ClientReader,
    ParseError,
    ServerReader,
    filter_capabilities,
    first_astring,
    has_capabilities,
    split_command,
)
from mailproxy.rewrite.neutralize import StreamNeutralizer

log = logging.getLogger(__name__)

Rewriter = Callable[[bytes, str | None], bytes]
"""Rewrite one whole message for a login (None before or without one); same length out as in."""

_UIDVALIDITY = re.compile(rb"\* OK \[UIDVALIDITY ([0-9]+)\]", re.IGNORECASE)
_FETCH = re.compile(rb"\* [0-9]+ FETCH ", re.IGNORECASE)
_STATUS = re.compile(rb"[^ ]+ (OK|NO|BAD)\b", re.IGNORECASE)
_MAX_CAPTURE = 1024  # the longest login name the proxy reads from a literal


@dataclass(frozen=True, slots=True)
class RewriteJob:
    """A whole message (or a header block, rule 11) to rewrite for ``user``; the result goes to
    ``Session.rewrite_done``."""

    whole: bytes
    user: str | None


@dataclass(frozen=True, slots=True)
class Output:
    """What to do after feeding bytes: write ``to_client`` then ``to_server`` (each as one write),
    then, if ``start_tls``, switch the client connection to TLS before reading from it again. Each
    of ``rewrites`` (new jobs, only with ``defer_rewrites``) must be run and its result passed to
    ``Session.rewrite_done``; the session holds back what follows each one until then."""

    to_client: bytes = b""
    to_server: bytes = b""
    start_tls: bool = False
    rewrites: tuple[RewriteJob, ...] = ()

    @property
    def rewrite(self) -> RewriteJob | None:
        """The first new job, if any (the only one with ``max_jobs=1``)."""
        return self.rewrites[0] if self.rewrites else None


@dataclass(slots=True, eq=False)
class _Held:
    """A FETCH response waiting for its job's result (rule 8), with the results it already has (a
    response can need more than one rewrite: header sections without their whole message)."""

    event: Response
    job: RewriteJob
    result: bytes | None = None
    # (message, rewritten) pairs. Not a dict: hashing a message costs more than the few
    # comparisons a response needs (bytes compare lengths first).
    done: tuple[tuple[bytes, bytes], ...] = ()


# Bytes held behind a pending rewrite before reading from the server stops: bounds what a stream of
# messages that need no rewrite costs while one before them is rewritten.
_MAX_HELD_BYTES = 16 << 20


class _Deferred(Exception):
    """Raised through ``rewrite_fetch`` when a rewrite is handed to the shell (rule 8)."""

    def __init__(self, whole: bytes) -> None:
        self.whole = whole


@dataclass(slots=True)
class SessionStats:
    commands: int = 0
    fetch_responses: int = 0
    messages_rewritten: int = 0  # whole messages the rewriter changed
    unrewritten: int = 0  # body items neutralized because they could not be rewritten
    streamed: int = 0  # responses too large to buffer, streamed instead of rewritten
    neutralized: int = 0  # streamed FETCH responses sent through the URL neutralizer
    neutralized_edits: int = 0  # URL schemes it broke


class Session:
    """One client connection and its upstream connection, as a state machine over bytes."""

    def __init__(
        self,
        rewriter: Rewriter,
        *,
        cache: RewriteCache | None = None,
        policy_key: str = "",
        offer_starttls: bool = False,
        client_tls: bool = False,
        login_disabled: bool = False,
        max_line: int = DEFAULT_MAX_LINE,
        max_literal: int = DEFAULT_MAX_LITERAL,
        defer_rewrites: bool = False,
        max_jobs: int = 1,
        may_change: Callable[[bytes], bool] | None = None,
        header_may_change: Callable[[bytes], bool] | None = None,
    ) -> None:
        self._rewriter = rewriter
        # Rule 10: the rewriter's own cheap verdict on a message it would leave as it is.
        self._may_change = may_change
        self._defer = defer_rewrites
        # Rule 8: in server order, held responses, output behind them and a response that waits
        # for all of them; the jobs not answered yet; jobs new since the last Output; the result
        # being applied.
        self._max_jobs = max(1, max_jobs)
        self._queue: deque[_Held | bytes | Response | ResponseChunk] = deque()
        self._queued_bytes = 0
        self._barrier = False
        self._open_jobs = 0
        self._new_jobs: list[RewriteJob] = []
        self._replaying = False
        self._done: tuple[tuple[bytes, bytes], ...] = ()  # the results of the held response being replayed
        self._cache = cache if cache is not None else RewriteCache()
        self._policy_key = policy_key
        self._offer_starttls = offer_starttls
        self.client_tls = client_tls
        self._login_disabled = login_disabled
        self._client = ClientReader(max_line=max_line)
        self._server = ServerReader(max_line=16 * max_line, max_literal=max_literal)
        self.stats = SessionStats()
        self.user: str | None = None
        self.authenticated = False
        self.bye_seen = False  # the server said BYE: its closing the connection is expected
        self._greeted = False
        self._to_client: list[bytes] = []
        self._to_server: list[bytes] = []
        self._start_tls = False
        # Rule 4: the AUTHENTICATE or IDLE command that owns the client's next line after a "+".
        self._raw_owner: bytes | None = None
        self._raw_owner_name = b""
        self._raw_line_expected = False
        self._sasl_mech = b""
        self._sasl_user: str | None = None
        self._sasl_lines = 0
        # A refused command whose remaining lines and literals the client still sends (non-sync
        # literal).
        self._discarding = False
        # LOGIN whose user name comes as a literal: the literal's octets are captured, up to a
        # bound.
        self._capture_tag: bytes | None = None
        self._capture = bytearray()
        self._capture_done = False
        self._pending_login: dict[bytes, str | None] = {}
        # Rule 7.
        self._pending_select: dict[bytes, bytes | None] = {}
        self._pending_uidvalidity: int | None = None
        self.mailbox: bytes | None = None
        self.uidvalidity: int | None = None
        self._pinned: dict[bytes, tuple[int, bytes]] = {}
        self._neutralizer: StreamNeutralizer | None = None
        self._streamed_size = 0
        self._fetch_ctx = FetchContext(
            rewrite=self._rewrite,
            lookup=self._lookup,
            store=self._store,
            header_may_change=header_may_change,
        )

    # -- feeding -----------------------------------------------------------------------------------
    def receive_client(self, data: bytes) -> Output:
        """Bytes from the client. Raises RemoteProtocolError when they cannot be framed."""
        self._client.receive_data(data)
        if not self._queue:
            self._pump_client()
        return self._flush()

    def _pump_client(self) -> None:
        while not self._start_tls:
            ev = self._client.next_event()
            if ev is NEED_DATA:
                break
            if isinstance(ev, LiteralData):
                self._client_literal(ev)
            else:
                self._client_line(ev)

    def receive_server(self, data: bytes) -> Output:
        """Bytes from the server. Raises RemoteProtocolError when they cannot be framed."""
        self._server.receive_data(data)
        self._pump_server()
        return self._flush()

    @property
    def rewrite_pending(self) -> bool:
        """A ``RewriteJob`` was handed out and ``rewrite_done`` has not been called for it yet."""
        return self._open_jobs > 0

    @property
    def wants_server_data(self) -> bool:
        """Whether server bytes would be processed now rather than only buffered (the shell stops
        reading from the server otherwise)."""
        return not self._barrier and (
            not self._queue or (self._open_jobs < self._max_jobs and self._queued_bytes < _MAX_HELD_BYTES)
        )

    def rewrite_done(self, result: bytes, job: RewriteJob | None = None) -> Output:
        """The rewritten bytes for ``job`` (by identity; None: the oldest job not answered yet).
        Processing resumes where it stopped once everything before it is out.

        Raises LocalProtocolError when no such job is pending.
        """
        held = next(
            (
                h
                for h in self._queue
                if isinstance(h, _Held) and h.result is None and (job is None or h.job is job)
            ),
            None,
        )
        if held is None:
            raise LocalProtocolError("rewrite_done without a pending rewrite")
        held.result = result
        self._open_jobs -= 1
        self._drain()
        self._pump_server()
        if not self._queue:
            self._pump_client()
        return self._flush()

    def _drain(self) -> None:
        """Send on everything at the front of the queue that no longer waits for a result."""
        queue = self._queue
        while queue:
            head = queue[0]
            if isinstance(head, _Held):
                result = head.result
                if result is None:
                    return
                queue.popleft()
                self._queued_bytes -= len(head.event.data)
                self._done = (*head.done, (head.job.whole, result))
                self._replaying = True
                try:
                    self._server_event(head.event)
                finally:
                    self._done = ()
                    self._replaying = False
            elif isinstance(head, bytes):
                queue.popleft()
                self._queued_bytes -= len(head)
                self._to_client.append(head)
            else:
                # The response that waited for everything before it (rule 8).
                queue.popleft()
                self._queued_bytes -= len(head.data)
                self._barrier = False
                self._server_event(head)

    def _pump_server(self) -> None:
        while self.wants_server_data:
            ev = self._server.next_event()
            if ev is NEED_DATA:
                break
            if self._queue and not (isinstance(ev, Response) and ev.kind == "*"):
                self._queue.append(ev)
                self._queued_bytes += len(ev.data)
                self._barrier = True
                break
            self._server_event(ev)

    def _server_event(self, ev: Response | ResponseChunk) -> None:
        if isinstance(ev, ResponseChunk):
            self._server_chunk(ev)
            return
        try:
            self._server_response(ev)
        except _Deferred as d:
            job = RewriteJob(d.whole, self.user)
            if self._replaying:
                # The held response at the head of the queue: it goes back there, with what it has.
                self._queue.appendleft(_Held(ev, job, done=self._done))
            else:
                self._queue.append(_Held(ev, job))
            self._queued_bytes += len(ev.data)
            self._open_jobs += 1
            self._new_jobs.append(job)

    def _emit(self, data: bytes) -> None:
        """Output for the client, in server order: behind whatever is held (rule 8)."""
        if self._queue and not self._replaying:
            self._queue.append(data)
            self._queued_bytes += len(data)
        else:
            self._to_client.append(data)

    def tls_started(self) -> None:
        """The shell finished the client's TLS handshake after an ``Output.start_tls``."""
        self._start_tls = False
        self.client_tls = True

    def _flush(self) -> Output:
        out = Output(
            to_client=b"".join(self._to_client),
            to_server=b"".join(self._to_server),
            start_tls=self._start_tls,
            rewrites=tuple(self._new_jobs),
        )
        self._to_client.clear()
        self._to_server.clear()
        self._new_jobs.clear()
        return out

    @property
    def _plaintext_login_refused(self) -> bool:
        return self._login_disabled and not self.client_tls

    # -- client side -------------------------------------------------------------------------------
    def _client_literal(self, ev: LiteralData) -> None:
        if self._discarding:
            return
        if self._capture_tag is not None and not self._capture_done:
            if len(self._capture) + len(ev.data) <= _MAX_CAPTURE:
                self._capture += ev.data
            if ev.last:
                self._capture_done = True
                self._pending_login[self._capture_tag] = bytes(self._capture).decode("utf-8", "replace")
                self._capture.clear()
        self._to_server.append(ev.data)

    def _client_line(self, ev: CommandLine) -> None:
        if not ev.first:
            if self._discarding:
                self._discarding = ev.literal is not None
                return
            if self._capture_tag is not None and ev.literal is None:
                self._capture_tag = None
            self._to_server.append(ev.data)
            return
        if self._raw_line_expected:
            self._raw_line_expected = False
            if self._raw_owner_name == b"AUTHENTICATE":
                self._sasl_response(ev.data)
            self._to_server.append(ev.data)
            return
        self.stats.commands += 1
        tag, name, rest = split_command(ev.data)
        if log.isEnabledFor(logging.DEBUG):
            log.debug("C: %s", redact(ev.data))
        if name == b"STARTTLS":
            self._starttls(tag, ev)
            return
        if name in REFUSED_COMMANDS:
            self._refuse(tag, ev, b"NO [CANNOT] " + name + b" is not available through mailproxy")
            return
        if name in (b"LOGIN", b"AUTHENTICATE") and self._plaintext_login_refused:
            self._refuse(tag, ev, b"NO [PRIVACYREQUIRED] Use STARTTLS or TLS first")
            return
        line = ev.data
        if name == b"LOGIN":
            self._login(tag, rest, ev)
        elif name == b"AUTHENTICATE":
            self._raw_owner, self._raw_owner_name = tag, name
            mech, _, initial = rest.rstrip(b"\r\n").partition(b" ")
            self._sasl_mech = mech.upper()
            self._sasl_user = None
            self._sasl_lines = 0
            if initial and initial != b"=":
                self._sasl_response(initial)
        elif name == b"IDLE":
            self._raw_owner, self._raw_owner_name = tag, name
        elif name in (b"SELECT", b"EXAMINE"):
            self._pending_select[tag] = _mailbox_name(rest)
        elif name in (b"CLOSE", b"UNSELECT"):
            self._pending_select[tag] = None
        elif name in (b"FETCH", b"UID FETCH") and ev.literal is None:
            line = self._plan_fetch(tag, line, rest, uid_command=name == b"UID FETCH")
        self._to_server.append(line)

    def _starttls(self, tag: bytes, ev: CommandLine) -> None:
        if self._offer_starttls and not self.client_tls and not self.authenticated:
            self._to_client.append(tag + b" OK Begin TLS negotiation now\r\n")
            # H12: anything pipelined after STARTTLS was sent in clear and must not be executed.
            self._client.discard_buffer()
            self._start_tls = True
            return
        self._refuse(tag, ev, b"BAD STARTTLS is not available now")

    def _refuse(self, tag: bytes, ev: CommandLine, text: bytes) -> None:
        self._to_client.append(tag + b" " + text + b"\r\n")
        if ev.literal is not None:
            if ev.sync:
                # a tagged reply instead of "+": the client sends nothing
                self._client.cancel_literal()
            else:
                self._discarding = True

    def _login(self, tag: bytes, rest: bytes, ev: CommandLine) -> None:
        try:
            user, _ = first_astring(rest)
        except ParseError:
            user = None
        if user is None and ev.literal is not None and rest.startswith((b"{", b"~{")):
            self._capture_tag, self._capture_done = tag, False
            self._capture.clear()
            self._pending_login[tag] = None
            return
        self._pending_login[tag] = user.decode("utf-8", "replace") if user is not None else None

    def _sasl_response(self, line: bytes) -> None:
        # Only the identity is read; the decoded secret goes out of scope at once and is never
        # stored.
        self._sasl_lines += 1
        if self._sasl_user is not None:
            return
        try:
            decoded = base64.b64decode(line.strip(), validate=True)
        except (binascii.Error, ValueError):
            return
        self._sasl_user = _sasl_identity(self._sasl_mech, decoded, self._sasl_lines)

    def _plan_fetch(self, tag: bytes, line: bytes, rest: bytes, *, uid_command: bool) -> bytes:
        def cached(uid: int) -> bool:
            if self._pending_select:
                return False
            key = self._key(uid)
            data = self._cache.get(key) if key is not None else None
            if data is None:
                return False
            self._pinned[tag] = (uid, data)  # held until the tagged reply: eviction cannot race it
            return True

        plan = plan_fetch(line, rest, uid_command=uid_command, cached=cached)
        return plan.line

    # -- server side -------------------------------------------------------------------------------
    def _server_chunk(self, ev: ResponseChunk) -> None:
        if ev.first:
            self.stats.streamed += 1
            self._streamed_size = 0
            # Rule 9: a body too large to buffer is never passed through unfiltered.
            self._neutralizer = StreamNeutralizer() if _FETCH.match(ev.data) else None
        self._streamed_size += len(ev.data)
        n = self._neutralizer
        if n is None:
            self._emit(ev.data)
            return
        data = n.feed(ev.data, last=ev.last)
        if data:
            self._emit(data)
        if ev.last:
            self._neutralizer = None
            self.stats.neutralized += 1
            self.stats.neutralized_edits += n.edits
            log.warning(
                "FETCH response of %d bytes above the buffering limit streamed through the URL "
                "neutralizer (%d reference(s) broken)",
                self._streamed_size,
                n.edits,
            )

    def _server_response(self, ev: Response) -> None:
        data = ev.data
        if not self._greeted:
            self._greeted = True
            if data[:10].upper().startswith(b"* PREAUTH"):
                self.authenticated = True
            self._emit(self._filter_caps(data))
            return
        if ev.kind == "+":
            if self._raw_owner is not None:
                self._raw_line_expected = True
            self._emit(data)
            return
        if ev.kind == "*":
            if _FETCH.match(data):
                new = rewrite_fetch(data, self._fetch_ctx)  # may raise _Deferred (rule 8)
                self.stats.fetch_responses += 1
                if self._fetch_ctx.unrewritten:
                    self.stats.unrewritten += self._fetch_ctx.unrewritten
                    self._fetch_ctx.unrewritten = 0
                if new is not None:
                    data = new
            else:
                if data[:6].upper() == b"* BYE ":
                    self.bye_seen = True
                m = _UIDVALIDITY.match(data)
                if m is not None:
                    self._pending_uidvalidity = int(m.group(1))
                elif has_capabilities(data):
                    data = self._filter_caps(data)
            if data:
                self._emit(data)
            return
        self._tagged(ev.tag, data)

    def _tagged(self, tag: bytes, data: bytes) -> None:
        m = _STATUS.match(data)
        ok = m is not None and m.group(1).upper() == b"OK"
        if has_capabilities(data):
            data = self._filter_caps(data)
        if tag in self._pending_login:
            user = self._pending_login.pop(tag)
            if tag == self._capture_tag:
                self._capture_tag = None
            if ok:
                self._logged_in(user)
        if tag == self._raw_owner:
            if ok and self._raw_owner_name == b"AUTHENTICATE":
                self._logged_in(self._sasl_user)
            self._raw_owner = None
            self._raw_line_expected = False
            self._sasl_user = None
        if tag in self._pending_select:
            mailbox = self._pending_select.pop(tag)
            if ok and mailbox is not None:
                self.mailbox, self.uidvalidity = mailbox, self._pending_uidvalidity
            else:
                # A failed SELECT leaves no mailbox selected (RFC 3501 section 6.3.1).
                self.mailbox = self.uidvalidity = None
            self._pending_uidvalidity = None
        self._pinned.pop(tag, None)
        self._emit(data)

    def _logged_in(self, user: str | None) -> None:
        self.authenticated = True
        self.user = user
        log.info("login accepted for %s", user or "(unknown user)")

    def _filter_caps(self, data: bytes) -> bytes:
        pre_auth = not self.authenticated
        return filter_capabilities(
            data,
            add_starttls=pre_auth and self._offer_starttls and not self.client_tls,
            login_disabled=pre_auth and self._plaintext_login_refused,
        )

    # -- rewriting ---------------------------------------------------------------------------------
    def _key(self, uid: int) -> CacheKey | None:
        if self.mailbox is None or self.uidvalidity is None:
            return None
        return CacheKey(self.user or "", self.mailbox, self.uidvalidity, uid, self._policy_key)

    def _rewrite(self, whole: bytes) -> bytes:
        done = next((out for seen, out in self._done if seen == whole), None)
        if done is not None:
            out = done
        elif self._may_change is not None and not self._may_change(whole):
            return whole
        elif self._defer:
            raise _Deferred(whole)
        else:
            out = self._rewriter(whole, self.user)
        if out != whole:
            self.stats.messages_rewritten += 1
        return out

    def _lookup(self, uid: int) -> bytes | None:
        for pinned_uid, data in self._pinned.values():
            if pinned_uid == uid:
                return data
        key = self._key(uid)
        return self._cache.get(key) if key is not None else None

    def _store(self, uid: int, data: bytes) -> None:
        key = self._key(uid)
        if key is not None:
            self._cache.put(key, data)


def _mailbox_name(rest: bytes) -> bytes | None:
    try:
        name, _ = first_astring(rest.rstrip(b"\r\n"))
    except ParseError:
        return None
    if name is not None and name.upper() == b"INBOX":
        return b"INBOX"  # INBOX is case-insensitive (RFC 3501 section 5.1)
    return name


def _sasl_identity(mech: bytes, decoded: bytes, line_no: int) -> str | None:
    if mech == b"PLAIN":
        fields = decoded.split(b"\0")
        if len(fields) == 3:
            return (fields[0] or fields[1]).decode("utf-8", "replace") or None
        return None
    if mech == b"LOGIN":
        return (decoded.decode("utf-8", "replace") or None) if line_no == 1 else None
    if mech == b"XOAUTH2":
        m = re.match(rb"user=([^\x01]*)\x01", decoded)
        return m.group(1).decode("utf-8", "replace") if m else None
    if mech == b"OAUTHBEARER":
        m = re.match(rb"n,a=([^,]*),", decoded)
        return m.group(1).decode("utf-8", "replace").replace("=2C", ",").replace("=3D", "=") if m else None
    return None


_REDACT = re.compile(rb"^([^ ]+ (?:LOGIN|AUTHENTICATE)) .*$", re.IGNORECASE | re.DOTALL)


def redact(line: bytes) -> str:
    """A command line fit for a log: credentials and literal contents masked."""
    text = line.rstrip(b"\r\n")
    m = _REDACT.match(text)
    if m is not None:
        if m.group(1).upper().endswith(b"AUTHENTICATE"):
            mech = text[m.end(1) :].split()[:1]
            return (m.group(1) + b" " + b"".join(mech) + b" ***").decode("ascii", "replace")
        return (m.group(1) + b" ***").decode("ascii", "replace")
    return text[:200].decode("ascii", "replace")
