"""`mailproxy run`: the IMAP filter and the HTTP proxy on one asyncio loop, in one process.

Either half can be turned off with `enabled = false` in its section. SIGINT (Ctrl-C) and SIGTERM
stop both cleanly: the listening sockets close, running halves are awaited, the handlers are
restored. A half that fails while running stops the other one and the error propagates.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import signal
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from mailproxy.config import Config
from mailproxy.errors import MailproxyError
from mailproxy.http.addon import EventHook, TlsMode
from mailproxy.http.server import HttpProxy
from mailproxy.tracking.writer import EventSink, sink_for

if TYPE_CHECKING:
    from mailproxy.engine import Result

__all__ = ["ImapHalf", "record_rewrite", "run", "serve_imap_half"]

logger = logging.getLogger(__name__)

# The contract of the IMAP half: a coroutine function called as `imap(config, stop)` that binds
# `config.imap.listen`, serves until the `stop` event is set, then closes its sockets and returns.
# It raises MailproxyError if it cannot start.
ImapHalf = Callable[[Config, asyncio.Event], Awaitable[None]]


def record_rewrite(sink: EventSink, result: Result, user: str | None) -> None:
    """Hand the findings of one message the IMAP filter rewrote to the tracking log."""
    sink.record_findings(
        result.findings,
        channel="imap",
        sender_domain=result.sender_domain,
        user=user,
        recipients=result.recipients,
    )


async def serve_imap_half(
    config: Config,
    stop: asyncio.Event,
    *,
    sink: EventSink | None = None,
    listening: asyncio.Event | None = None,
) -> None:
    """The IMAP filter as a half of `run`: listen, serve until ``stop`` is set, then close. Each
    rewritten message's findings go to the tracking log's ``sink``; ``listening`` is set once the
    listener accepts connections."""
    # Imported here: the HTTP-only paths (and `mitmdump -s` scripts) need none of the IMAP code.
    from mailproxy.engine import Engine
    from mailproxy.imap import serve_imap

    def record(result: Result, user: str | None) -> None:
        if sink is not None:
            record_rewrite(sink, result, user)

    engine = Engine.from_config(config)
    listening = listening or asyncio.Event()
    serving = asyncio.ensure_future(
        serve_imap(
            config.imap,
            engine,
            ready=listening,
            on_result=record,
            engine_factory=functools.partial(Engine.from_config, config),
        )
    )
    started = asyncio.ensure_future(listening.wait())
    await asyncio.wait({serving, started}, return_when=asyncio.FIRST_COMPLETED)
    started.cancel()
    if serving.done():  # it could not start
        exc = serving.exception()
        if isinstance(exc, OSError):
            raise MailproxyError(f"the IMAP filter cannot listen on {config.imap.listen}: {exc}") from exc
        if exc is not None:
            raise exc
        return
    logger.info("IMAP filter listening on %s, upstream %s", config.imap.listen, config.imap.upstream)
    try:
        await stop.wait()
    finally:
        serving.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await serving


_IMAP_STOP_TIMEOUT: Final = 10.0
_SIGNALS: Final = (signal.SIGINT, signal.SIGTERM)


async def run(
    config: Config,
    *,
    imap: ImapHalf | None = None,
    tls: TlsMode | None = None,
    confdir: Path | str | None = None,
    mitm_options: Sequence[str] = (),
    on_event: EventHook | None = None,
    ready: Callable[[], None] | None = None,
) -> None:
    """Run the enabled halves until SIGINT/SIGTERM (or until one of them stops by itself).

    `tls` overrides `[http] tls`; `imap` replaces the IMAP filter (tests); `on_event` replaces the
    tracking log's recorder of HTTP events; `ready` is called once everything listens.
    Raises MailproxyError when nothing is enabled or a half cannot start.
    """
    if not config.http.enabled and not config.imap.enabled:
        raise MailproxyError("nothing to run: both [imap] and [http] have enabled = false")
    sink = sink_for(config)
    imap_listening: asyncio.Event | None = None
    if imap is None:
        imap_listening = asyncio.Event()
        imap = functools.partial(serve_imap_half, sink=sink, listening=imap_listening)
    if on_event is None and sink is not None:
        on_event = sink.record_http

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    installed = _install_signal_handlers(loop, stop)
    # mitmproxy logs every client connect and disconnect at INFO; a service wants less.
    quiet = logging.getLogger("mitmproxy.proxy.server")
    if quiet.level == logging.NOTSET:
        quiet.setLevel(logging.WARNING)

    http: HttpProxy | None = None
    imap_task: asyncio.Task[None] | None = None
    try:
        if config.http.enabled:
            http = HttpProxy(config, tls=tls, confdir=confdir, on_event=on_event, mitm_options=mitm_options)
            await http.start()
        if config.imap.enabled and imap is not None:
            imap_task = loop.create_task(_as_coroutine(imap(config, stop)), name="imap")
            if imap_listening is not None:
                # "running" is said (and `ready` called) only once both halves accept connections.
                listening = loop.create_task(imap_listening.wait())
                await asyncio.wait({listening, imap_task}, return_when=asyncio.FIRST_COMPLETED)
                listening.cancel()
        if ready is not None:
            ready()
        logger.info("mailproxy running; Ctrl-C or SIGTERM stops it")
        failed = await _until_stopped(stop, http, imap_task)
    finally:
        stop.set()
        for sig in installed:
            loop.remove_signal_handler(sig)
        if http is not None:
            await http.stop()
        if sink is not None:
            await asyncio.to_thread(sink.close)  # flushes what is queued; never blocks the loop
        if imap_task is not None:
            await _finish(imap_task)
    if imap_task is not None and imap_task.done() and not imap_task.cancelled():
        exc = imap_task.exception()
        if exc is not None:
            raise exc
    if failed:
        raise MailproxyError(f"the {failed} half stopped unexpectedly")
    logger.info("mailproxy stopped")


async def _as_coroutine(awaitable: Awaitable[None]) -> None:
    await awaitable


def _install_signal_handlers(loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> list[signal.Signals]:
    installed = []
    for sig in _SIGNALS:
        try:
            loop.add_signal_handler(sig, _on_signal, sig, stop)
        except (NotImplementedError, RuntimeError, ValueError):
            # Windows loops, or a loop outside the main thread (tests): the caller stops us.
            continue
        installed.append(sig)
    return installed


def _on_signal(sig: signal.Signals, stop: asyncio.Event) -> None:
    logger.info("%s received, stopping", sig.name)
    stop.set()


async def _until_stopped(
    stop: asyncio.Event, http: HttpProxy | None, imap_task: asyncio.Task[None] | None
) -> str:
    """Wait for a stop request or for a half to end; "" or the name of the half that ended."""
    waiters: set[asyncio.Future[Any]] = set()
    stop_task = asyncio.get_running_loop().create_task(stop.wait())
    waiters.add(stop_task)
    if http is not None and http.task is not None:
        waiters.add(http.task)
    if imap_task is not None:
        waiters.add(imap_task)
    try:
        done, _ = await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stop_task.cancel()
    if stop_task in done:
        return ""
    half = "IMAP" if imap_task in done else "HTTP"
    logger.error("the %s half stopped unexpectedly; stopping the other", half)
    return half


async def _finish(task: asyncio.Task[None]) -> None:
    try:
        await asyncio.wait_for(asyncio.shield(task), _IMAP_STOP_TIMEOUT)
    except TimeoutError:
        logger.warning("the IMAP half did not stop within %.0f s; cancelling it", _IMAP_STOP_TIMEOUT)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    except Exception:
        pass  # re-raised by run() once everything is closed
