"""The asyncio shell of the IMAP filter: sockets, TLS and timers around the sans-IO ``Session``.

Everything protocol-related happens in ``_session``; this module only moves bytes. It uses asyncio
protocols rather than streams so that a STARTTLS switch leaves no plaintext behind in a stream
buffer, each batch of output is one ``write`` (H16: a relay that writes in pieces adds 40 ms per
command), and backpressure is the transports' own: when one side's write buffer fills, the other
side stops reading.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import logging
import multiprocessing
import multiprocessing.connection
import os
import ssl
import threading
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING, Any, Protocol

from mailproxy.config import MAX_AUTO_WORKERS
from mailproxy.engine import neutralize_message
from mailproxy.errors import ConfigError
from mailproxy.imap._cache import DEFAULT_MAX_BYTES, RewriteCache
from mailproxy.imap._errors import ImapProtocolError, UpstreamError
from mailproxy.imap._events import NEED_DATA, Response
from mailproxy.imap._protocol import (
    DEFAULT_MAX_LINE,
    DEFAULT_MAX_LITERAL,
    ServerReader,
    strip_capability_code,
)
from mailproxy.imap._session import Output, RewriteJob, Rewriter, Session
from mailproxy.model import Action
from mailproxy.triage import header_may_change, may_change

if TYPE_CHECKING:
    from mailproxy.config import ImapConfig

log = logging.getLogger(__name__)

IDLE_TIMEOUT = 35 * 60.0  # above the 30 min IDLE/autologout of RFC 3501 section 5.4 (H10)
CONNECT_TIMEOUT = 30.0
_EARLY_LIMIT = 1 << 16  # client bytes buffered while the upstream connection is being set up


@dataclass(frozen=True, slots=True, kw_only=True)
class ProxySettings:
    """Everything the shell needs, resolved from the configuration (SSL contexts built once)."""

    listen_host: str = "127.0.0.1"
    listen_port: int = 1143
    upstream_host: str
    upstream_port: int
    upstream_tls: str = "implicit"  # "implicit" | "starttls" | "none"
    upstream_ssl: ssl.SSLContext | None = None
    client_ssl: ssl.SSLContext | None = None
    client_tls: str = "starttls"  # "implicit" | "starttls" (only with client_ssl)
    login_disabled: bool = False  # plaintext logins refused until the client uses TLS
    max_line: int = DEFAULT_MAX_LINE
    max_literal: int = DEFAULT_MAX_LITERAL
    cache_bytes: int = DEFAULT_MAX_BYTES
    idle_timeout: float = IDLE_TIMEOUT
    connect_timeout: float = CONNECT_TIMEOUT
    # Rewrites run off the event loop, so one big message does not stall every other session: one
    # at a time in a thread (the rewriter is pure Python, so more threads would only take turns at
    # the GIL). With an engine factory (``serve_imap``) and more than one worker (0: one per CPU,
    # at most MAX_AUTO_WORKERS), rewrites that come while another runs go to that many worker
    # processes, so the messages of one FETCH, and those of several sessions, are rewritten side by
    # side; each session then hands out up to one job more than there are workers.
    rewrite_workers: int = 0


def settings_from_config(config: ImapConfig, **overrides: Any) -> ProxySettings:
    """ProxySettings for an ``[imap]`` table; raises ConfigError when a certificate cannot be
    loaded."""
    upstream_ssl: ssl.SSLContext | None = None
    tls = str(config.upstream_tls)
    if tls != "none":
        try:
            upstream_ssl = ssl.create_default_context(
                cafile=str(config.upstream_ca) if config.upstream_ca else None
            )
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError("", "imap.upstream_ca", f"a readable CA bundle ({exc})") from exc
    client_ssl: ssl.SSLContext | None = None
    if config.tls_cert is not None and config.tls_key is not None:
        client_ssl = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        try:
            client_ssl.load_cert_chain(str(config.tls_cert), str(config.tls_key))
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError("", "imap.tls_cert", f"a certificate and key that load ({exc})") from exc
    return ProxySettings(
        listen_host=config.listen.host,
        listen_port=config.listen.port,
        upstream_host=config.upstream.host,
        upstream_port=config.upstream.port,
        upstream_tls=tls,
        upstream_ssl=upstream_ssl,
        client_ssl=client_ssl,
        client_tls=str(config.client_tls),
        login_disabled=not config.listen.is_loopback,
        rewrite_workers=config.rewrite_workers,
        **overrides,
    )


class _Engine(Protocol):
    def rewrite(self, raw: bytes, *, recipients: Any = (), user: str | None = None) -> Any: ...


def _engine_rewrite(engine: _Engine, raw: bytes, user: str | None) -> Any:
    """The engine's Result for ``raw`` without the findings the policy allowed, or the neutralized
    bytes when the engine failed.

    Allowed references interest neither the log nor the tracking log (which keeps what the policy
    acted on) and are most of a newsletter's findings: leaving them out halves what a worker
    process pickles back.
    """
    try:
        result = engine.rewrite(raw, user=user)
    except Exception:  # the engine promises not to raise; if it does, the session must survive
        log.exception("rewriting a message failed; it was delivered with every URL neutralized")
        return neutralize_message(raw)
    result.findings = [f for f in result.findings if f.action is not Action.ALLOW]
    return result


# The engine of a rewrite worker process (``_worker_start``), built there from a picklable factory.
_worker_engine: _Engine | None = None


def _worker_start(factory: Callable[[], _Engine]) -> None:
    global _worker_engine
    parent = multiprocessing.parent_process()
    if parent is not None:
        # A worker holds both ends of its job queue, so it would wait for jobs forever after the
        # proxy was killed (a clean shutdown stops it); this ends it with its parent instead.
        threading.Thread(target=_exit_with, args=(parent.sentinel,), daemon=True).start()
    _worker_engine = factory()
    # The engine's first messages pay for its lazy tables and compiled patterns (40 ms instead of
    # 10 for a newsletter): the bundled samples pay for them here, before any reader waits.
    with contextlib.suppress(Exception):
        for sample in sorted((resources.files("mailproxy") / "samples").iterdir(), key=str):
            _worker_engine.rewrite(sample.read_bytes())


def _exit_with(parent_sentinel: int) -> None:
    multiprocessing.connection.wait([parent_sentinel])
    os._exit(0)


def _worker_rewrite(raw: bytes, user: str | None) -> Any:
    assert _worker_engine is not None, "the worker was started without an engine"
    return _engine_rewrite(_worker_engine, raw, user)


def _worker_ready() -> None:
    """A no-op job: the pool starts its processes (and they build their engines) at once."""


class EngineRewriter:
    """Adapts ``mailproxy.engine.Engine`` to the ``Rewriter`` callable; logs counts, never
    content.

    With a ``factory`` (picklable, building the same engine), ``ImapProxy`` can rewrite in worker
    processes: they run ``_worker_rewrite`` and this object ``finish``es their results here.
    """

    may_change = staticmethod(may_change)
    header_may_change = staticmethod(header_may_change)

    def __init__(
        self,
        engine: _Engine,
        on_result: Callable[[Any, str | None], None] | None = None,
        *,
        factory: Callable[[], _Engine] | None = None,
    ) -> None:
        self._engine = engine
        self._on_result = on_result  # e.g. the tracking log's recorder: (Result, login user)
        self.factory = factory

    def __call__(self, raw: bytes, user: str | None) -> bytes:
        return self.finish(_engine_rewrite(self._engine, raw, user), user)

    def finish(self, result: Any, user: str | None) -> bytes:
        """The rewritten bytes of an ``_engine_rewrite`` outcome; records and logs its findings."""
        if isinstance(result, bytes):
            return result  # neutralized after an engine failure (already logged)
        if self._on_result is not None:
            try:
                self._on_result(result, user)
            except Exception:  # the tracking log must never cost the reader their mail
                log.exception("recording the tracking events of a message failed")
        data: bytes = result.data
        findings = result.findings
        if findings:
            vendors = sorted({f.vendor for f in findings if f.vendor})
            log.info(
                "rewrote a message for %s: %d reference(s) changed%s",
                user or "(unknown user)",
                len(findings),
                f" ({', '.join(vendors)})" if vendors else "",
            )
        return data


class _Tasks:
    """Strong references to background tasks (the loop keeps only weak ones)."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[None]] = set()

    def spawn(self, coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def cancel_all(self) -> None:
        for task in list(self._tasks):
            task.cancel()


class ImapProxy:
    """Listens for IMAP clients and relays each to its own upstream connection through a Session."""

    def __init__(self, settings: ProxySettings, rewriter: Rewriter, *, policy_key: str = "") -> None:
        self.settings = settings
        self.rewriter = rewriter
        # The engine's adapter knows which messages the engine would leave alone (session rule 10).
        self.may_change = rewriter.may_change if isinstance(rewriter, EngineRewriter) else None
        self.header_may_change = rewriter.header_may_change if isinstance(rewriter, EngineRewriter) else None
        self.policy_key = policy_key
        self.cache = RewriteCache(settings.cache_bytes)
        self.connections: set[_ClientSide] = set()
        self._server: asyncio.Server | None = None
        self._tasks = _Tasks()
        workers = settings.rewrite_workers or min(os.cpu_count() or 1, MAX_AUTO_WORKERS)
        self._engine_rewriter = rewriter if isinstance(rewriter, EngineRewriter) else None
        factory = self._engine_rewriter.factory if self._engine_rewriter is not None else None
        self._thread = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="imap-rewrite")
        self._in_flight = 0  # rewrites running, in the thread or the worker processes
        self._new_pool: Callable[[], concurrent.futures.ProcessPoolExecutor] | None = None
        self._pool: concurrent.futures.ProcessPoolExecutor | None = None
        if workers > 1 and factory is not None:
            # "spawn": a forked child would inherit the event loop, the tracking log's thread and
            # their locks.
            self._new_pool = functools.partial(
                concurrent.futures.ProcessPoolExecutor,
                max_workers=workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_worker_start,
                initargs=(factory,),
            )
            self._pool = self._new_pool()
        self.workers = workers if self._pool is not None else 0
        self.max_jobs = self.workers + 1 if self._pool is not None else 1

    async def run_rewrite(self, job: RewriteJob) -> bytes:
        """``job.whole`` rewritten off the event loop.

        A job while no other one runs (a message opened, a chunk walk) goes to this process's
        rewrite thread: a worker process would add about half a millisecond of pickling and
        hand-offs to what a reader waits for. Jobs that come while another runs (the messages of
        one FETCH, other sessions) go to the worker processes, side by side.
        """
        loop = asyncio.get_running_loop()
        self._in_flight += 1
        try:
            if self._pool is None or self._in_flight == 1:
                return await loop.run_in_executor(self._thread, self.rewriter, job.whole, job.user)
            return await self._run_in_worker(job, self._pool)
        finally:
            self._in_flight -= 1

    async def _run_in_worker(self, job: RewriteJob, pool: concurrent.futures.ProcessPoolExecutor) -> bytes:
        assert self._engine_rewriter is not None
        loop = asyncio.get_running_loop()
        try:
            work = loop.run_in_executor(pool, _worker_rewrite, job.whole, job.user)
        except concurrent.futures.BrokenExecutor:  # broken since the last rewrite: this one may go on
            pool = self._replace_broken_pool(pool)
            work = loop.run_in_executor(pool, _worker_rewrite, job.whole, job.user)
        try:
            outcome = await work
        except concurrent.futures.BrokenExecutor:
            self._replace_broken_pool(pool)
            # A worker died on this message or beside it. Ending the session would keep a message
            # that kills workers from ever reaching its reader; rewriting it here could take the
            # proxy down with it. It is delivered neutralized, as after an engine bug.
            log.error("a rewrite worker died: a message was delivered with every URL neutralized")
            return neutralize_message(job.whole)
        return self._engine_rewriter.finish(outcome, job.user)

    def _replace_broken_pool(
        self, broken: concurrent.futures.ProcessPoolExecutor
    ) -> concurrent.futures.ProcessPoolExecutor:
        """A pool in place of ``broken``, whose worker died (killed, out of memory): the messages
        it held are delivered neutralized, later rewrites go to new workers."""
        pool, new_pool = self._pool, self._new_pool
        assert pool is not None and new_pool is not None
        if pool is broken:  # not yet replaced on another session's news of it
            log.error("a rewrite worker process died; starting new ones")
            broken.shutdown(wait=False, cancel_futures=True)
            pool = self._pool = new_pool()
        return pool

    @property
    def address(self) -> tuple[str, int]:
        """The bound (host, port); the port is the real one when 0 was asked for."""
        if self._server is None or not self._server.sockets:
            raise RuntimeError("the proxy is not listening")
        host, port = self._server.sockets[0].getsockname()[:2]
        return host, port

    async def start(self) -> None:
        s = self.settings
        if self._pool is not None:
            # Start the workers (and their engines) now, not on the first message.
            for _ in range(self.workers):
                self._pool.submit(_worker_ready)
        ssl_ctx = s.client_ssl if s.client_ssl is not None and s.client_tls == "implicit" else None
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _ClientSide(self), s.listen_host, s.listen_port, ssl=ssl_ctx
        )
        log.info(
            "IMAP filter listening on %s:%d (%s), upstream %s:%d (%s)",
            *self.address,
            "TLS" if ssl_ctx else ("STARTTLS" if s.client_ssl else "plaintext"),
            s.upstream_host,
            s.upstream_port,
            s.upstream_tls,
        )

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for conn in list(self.connections):
            conn.close("server shutting down")
        self._tasks.cancel_all()
        # A rewrite still running finishes in its thread or process; nobody waits for its result.
        self._thread.shutdown(wait=False, cancel_futures=True)
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 5)

    async def __aenter__(self) -> ImapProxy:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class _ClientSide(asyncio.Protocol):
    """One client connection; owns its Session and its upstream connection."""

    def __init__(self, proxy: ImapProxy) -> None:
        self.proxy = proxy
        s = proxy.settings
        self.session = Session(
            proxy.rewriter,
            cache=proxy.cache,
            policy_key=proxy.policy_key,
            offer_starttls=s.client_ssl is not None and s.client_tls == "starttls",
            client_tls=s.client_ssl is not None and s.client_tls == "implicit",
            login_disabled=s.login_disabled,
            max_line=s.max_line,
            max_literal=s.max_literal,
            defer_rewrites=True,
            max_jobs=proxy.max_jobs,
            may_change=proxy.may_change,
            header_may_change=proxy.header_may_change,
        )
        self.transport: asyncio.Transport | None = None
        self.upstream: _UpstreamSide | None = None
        self.peer = "?"
        self.closed = False
        self._early: list[bytes] = []
        self._early_size = 0
        self._idle: asyncio.TimerHandle | None = None
        self._last = 0.0
        # Write buffers above their high-water mark: the other side is not read meanwhile.
        self.client_full = False
        self.upstream_full = False
        self._tls_switch = False

    # -- asyncio callbacks -------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        peer = transport.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        self.proxy.connections.add(self)
        loop = asyncio.get_running_loop()
        self._last = loop.time()
        self._idle = loop.call_later(self.proxy.settings.idle_timeout, self._check_idle)
        self.proxy._tasks.spawn(self._connect(), name=f"imap-upstream-{self.peer}")

    def data_received(self, data: bytes) -> None:
        if self.closed:
            return
        self._last = asyncio.get_running_loop().time()
        if self.upstream is None or not self.upstream.ready:
            self._early.append(data)
            self._early_size += len(data)
            if self._early_size > _EARLY_LIMIT and self.transport is not None:
                self.transport.pause_reading()
            return
        try:
            out = self.session.receive_client(data)
        except ImapProtocolError as exc:
            log.warning("client %s: %s", self.peer, exc)
            self.close("protocol error from the client", bye=b"* BYE Protocol error\r\n")
            return
        self._apply(out)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.proxy.connections.discard(self)
        if self._idle is not None:
            self._idle.cancel()
        if self.upstream is not None:
            self.upstream.close()
        st = self.session.stats
        log.info(
            "client %s (%s) disconnected: %d commands, %d FETCH responses, %d messages rewritten%s",
            self.peer,
            self.session.user or "not logged in",
            st.commands,
            st.fetch_responses,
            st.messages_rewritten,
            f", {st.unrewritten} section(s) neutralized instead of rewritten" if st.unrewritten else "",
        )
        if st.neutralized:
            log.info(
                "client %s: %d oversized FETCH response(s) neutralized instead of rewritten "
                "(%d remote reference(s) broken)",
                self.peer,
                st.neutralized,
                st.neutralized_edits,
            )

    def pause_writing(self) -> None:
        self.client_full = True
        self.update_reading()

    def resume_writing(self) -> None:
        self.client_full = False
        self.update_reading()

    # -- plumbing ----------------------------------------------------------------------------------
    def _apply(self, out: Output) -> None:
        if out.to_client and self.transport is not None:
            self.transport.write(out.to_client)
        if out.to_server and self.upstream is not None:
            self.upstream.write(out.to_server)
        if out.start_tls:
            self._tls_switch = True
            self.proxy._tasks.spawn(self._start_tls(), name=f"imap-starttls-{self.peer}")
        for job in out.rewrites:
            self.proxy._tasks.spawn(self._rewrite(job), name=f"imap-rewrite-{self.peer}")
        self.update_reading()

    def update_reading(self) -> None:
        """Read from each side only while its bytes can go somewhere: the other side's write buffer
        has room, and the session would process them rather than only buffer them (it holds
        responses while their rewrites run)."""
        up = self.upstream
        if self.closed or up is None or not up.ready or up.transport is None or self.transport is None:
            return
        if self._tls_switch:
            pass  # the client transport is start_tls's until the handshake is done
        elif self.upstream_full or self.session.rewrite_pending:
            self.transport.pause_reading()
        else:
            self.transport.resume_reading()
        if self.client_full or not self.session.wants_server_data:
            up.transport.pause_reading()
        else:
            up.transport.resume_reading()

    def _server_error(self, exc: ImapProtocolError) -> None:
        log.warning("upstream of %s: %s", self.peer, exc)
        self.close("protocol error from the server", bye=b"* BYE [UNAVAILABLE] Server error\r\n")

    def _rewrite_failed(self) -> None:
        # Nothing unrewritten may reach the client: the session ends instead.
        log.exception("client %s: rewriting a message failed", self.peer)
        self.close("rewrite failed", bye=b"* BYE [UNAVAILABLE] Internal error\r\n")

    async def _rewrite(self, job: RewriteJob) -> None:
        try:
            result = await self.proxy.run_rewrite(job)
        except Exception:
            self._rewrite_failed()
            return
        if self.closed:
            return
        try:
            out = self.session.rewrite_done(result, job)
        except ImapProtocolError as exc:
            self._server_error(exc)
            return
        self._apply(out)

    def server_data(self, data: bytes) -> None:
        self._last = asyncio.get_running_loop().time()
        try:
            out = self.session.receive_server(data)
        except ImapProtocolError as exc:
            self._server_error(exc)
            return
        self._apply(out)

    def upstream_lost(self) -> None:
        if self.closed:
            return
        if self.session.bye_seen:
            self.close("server closed the connection")
        else:
            log.warning("upstream of %s closed the connection unexpectedly", self.peer)
            self.close(
                "upstream closed",
                bye=b"* BYE [UNAVAILABLE] Upstream server closed the connection\r\n",
            )

    def close(self, reason: str, *, bye: bytes = b"") -> None:
        if self.closed:
            return
        self.closed = True
        log.debug("closing %s: %s", self.peer, reason)
        if self.transport is not None:
            if bye:
                self.transport.write(bye)
            self.transport.close()
        if self.upstream is not None:
            self.upstream.close()

    def _check_idle(self) -> None:
        if self.closed:
            return
        loop = asyncio.get_running_loop()
        left = self._last + self.proxy.settings.idle_timeout - loop.time()
        if left > 0:
            self._idle = loop.call_later(left, self._check_idle)
            return
        log.info("client %s idle too long; closing", self.peer)
        self.close("idle timeout", bye=b"* BYE Autologout; idle for too long\r\n")

    async def _connect(self) -> None:
        s = self.proxy.settings
        try:
            upstream = await asyncio.wait_for(_open_upstream(self, s), s.connect_timeout)
        except (TimeoutError, UpstreamError, OSError) as exc:
            reason = _describe(exc)
            log.warning(
                "client %s: upstream %s:%d unavailable: %s",
                self.peer,
                s.upstream_host,
                s.upstream_port,
                reason,
            )
            self.close("upstream unavailable", bye=b"* BYE [UNAVAILABLE] Upstream server unavailable\r\n")
            return
        if self.closed:
            upstream.close()
            return
        self.upstream = upstream
        log.info(
            "client %s connected; upstream %s:%d (%s)",
            self.peer,
            s.upstream_host,
            s.upstream_port,
            s.upstream_tls,
        )
        upstream.go_live()
        early, self._early = b"".join(self._early), []
        if self.transport is not None and self._early_size > _EARLY_LIMIT:
            self.transport.resume_reading()
        self._early_size = 0
        if early:
            self.data_received(early)

    async def _start_tls(self) -> None:
        s = self.proxy.settings
        assert s.client_ssl is not None and self.transport is not None
        loop = asyncio.get_running_loop()
        try:
            new = await loop.start_tls(
                self.transport,
                self,
                s.client_ssl,
                server_side=True,
                ssl_handshake_timeout=s.connect_timeout,
            )
        except (TimeoutError, OSError, ssl.SSLError, ConnectionError) as exc:
            log.warning("client %s: STARTTLS handshake failed: %s", self.peer, _describe(exc))
            self.close("TLS handshake failed")
            return
        finally:
            self._tls_switch = False
        if new is None:
            self.close("TLS handshake failed")
            return
        self.transport = new
        self.session.tls_started()


class _UpstreamSide(asyncio.Protocol):
    """The proxy's connection to the IMAP server. Before ``go_live`` it serves the STARTTLS
    setup."""

    def __init__(self, owner: _ClientSide) -> None:
        self.owner = owner
        self.transport: asyncio.Transport | None = None
        self.ready = False
        self._setup: ServerReader | None = None
        self._setup_queue: asyncio.Queue[Response | None] = asyncio.Queue()
        self._pending: list[bytes] = []  # bytes that arrived before go_live
        self.lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if self.ready:
            self.owner.server_data(data)
        elif self._setup is not None:
            self._setup.receive_data(data)
            try:
                while (ev := self._setup.next_event()) is not NEED_DATA:
                    if isinstance(ev, Response):
                        self._setup_queue.put_nowait(ev)
            except ImapProtocolError:
                self._setup_queue.put_nowait(None)
        else:
            self._pending.append(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self._setup_queue.put_nowait(None)
        if self.ready:
            self.owner.upstream_lost()

    def pause_writing(self) -> None:
        self.owner.upstream_full = True
        self.owner.update_reading()

    def resume_writing(self) -> None:
        self.owner.upstream_full = False
        self.owner.update_reading()

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.lost:
            self.transport.write(data)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def go_live(self) -> None:
        self.ready = True
        pending, self._pending = b"".join(self._pending), []
        if pending:
            self.owner.server_data(pending)
        if self.lost:
            self.owner.upstream_lost()

    async def next_response(self) -> Response:
        ev = await self._setup_queue.get()
        if ev is None:
            raise UpstreamError("connection closed during setup")
        return ev


async def _open_upstream(owner: _ClientSide, s: ProxySettings) -> _UpstreamSide:
    loop = asyncio.get_running_loop()
    host, port = s.upstream_host, s.upstream_port
    if s.upstream_tls == "implicit":
        if s.upstream_ssl is None:
            raise UpstreamError("no TLS context for an implicit-TLS upstream")
        _, proto = await loop.create_connection(
            lambda: _UpstreamSide(owner), host, port, ssl=s.upstream_ssl, server_hostname=host
        )
        return proto
    _, proto = await loop.create_connection(lambda: _UpstreamSide(owner), host, port)
    if s.upstream_tls != "starttls":
        return proto
    if s.upstream_ssl is None:
        raise UpstreamError("no TLS context for a STARTTLS upstream")
    try:
        proto._setup = ServerReader(max_line=s.max_line, max_literal=s.max_line)
        greeting = await proto.next_response()
        if not greeting.data.upper().startswith(b"* OK"):
            raise UpstreamError("upstream did not greet with OK")
        assert proto.transport is not None
        proto.transport.write(b"mp0 STARTTLS\r\n")
        while True:
            resp = await proto.next_response()
            if resp.kind == "tagged" and resp.tag == b"mp0":
                break
        if not resp.data[4:6].upper() == b"OK":
            raise UpstreamError("upstream refused STARTTLS")
        # Nothing the server sent in clear after its OK may be trusted (H12): the setup reader is
        # dropped.
        proto._setup = None
        new = await loop.start_tls(
            proto.transport,
            proto,
            s.upstream_ssl,
            server_hostname=host,
            ssl_handshake_timeout=s.connect_timeout,
        )
        if new is None:
            raise UpstreamError("TLS handshake with the upstream failed")
        proto.transport = new
        # The greeting's capabilities were those of the plaintext connection; the client asks again.
        proto._pending.insert(0, strip_capability_code(greeting.data))
    except BaseException:
        proto.close()
        raise
    return proto


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"certificate verification failed: {exc.verify_message}"
    if isinstance(exc, TimeoutError):
        return "timed out"
    return str(exc) or type(exc).__name__


Ready = Callable[[tuple[str, int]], None] | asyncio.Event | None


async def serve_imap(
    config: ImapConfig,
    engine: _Engine,
    *,
    ready: Ready = None,
    on_result: Callable[[Any, str | None], None] | None = None,
    engine_factory: Callable[[], _Engine] | None = None,
    **overrides: Any,
) -> None:
    """Run the IMAP filter for ``config`` until cancelled.

    ``ready`` is called with the bound (host, port), or set, once the listener accepts connections.
    ``on_result`` gets each rewrite's Result (without the findings the policy allowed) and the
    login user (the tracking log).
    ``engine_factory`` (picklable, building an engine like ``engine``) lets rewrites run in worker
    processes (``ProxySettings.rewrite_workers``).
    ``overrides`` set ProxySettings fields (max_literal, cache_bytes, ...). Raises ConfigError for
    unusable certificates and OSError when the address cannot be bound.
    """
    settings = settings_from_config(config, **overrides)
    proxy = ImapProxy(settings, EngineRewriter(engine, on_result, factory=engine_factory))
    async with proxy:
        if isinstance(ready, asyncio.Event):
            ready.set()
        elif ready is not None:
            ready(proxy.address)
        await asyncio.Event().wait()  # until cancelled
