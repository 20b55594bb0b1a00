"""The event sink: a bounded queue in front of a background thread that writes batches to the store.

The proxies call :meth:`EventSink.record_findings` (rewrite side) and :meth:`EventSink.record_http`
(the addon's ``on_event`` hook) on their hot path. Those calls only put one item on a bounded
queue, without waiting: when the queue is full the item is counted as dropped. Everything slow
happens on the writer thread: reducing findings to events (URL redaction at ``research``), opening
the store, batched writes, retention purges. When the store is down, the writer counts the events
of each failed batch as dropped, logs the outage once, and tries again every ``retry_interval``
seconds; the proxy never notices. Dropped events are also counted in the store, per day, once it
can be written again (``mailproxy data show`` reports them).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Final

from mailproxy.config import Config, LogDetail
from mailproxy.model import Finding
from mailproxy.tracking.events import (
    DAY,
    TrackingEvent,
    UserHasher,
    acted_on,
    event_from_http,
    events_from_findings,
)
from mailproxy.tracking.retention import RetentionSchedule, purge_expired
from mailproxy.tracking.store import (
    Store,
    StoreError,
    key_path_for,
    load_or_create_key,
    open_store,
    public_location,
)

__all__ = ["EventSink", "sink_for"]

logger = logging.getLogger(__name__)

_HTTP_TRACKING_ACTIONS: Final = frozenset({"blocked", "cleaned"})

# Queue items, converted on the writer thread:
#   ("f", findings, channel, sender_domain, user, recipients, time)
#   ("h", event dict, time)
#   ("e", events)
_Item = tuple[object, ...]


class EventSink:
    """Accepts tracking events from any thread without blocking; writes them in the background."""

    def __init__(
        self,
        store_factory: Callable[[], Store],
        *,
        detail: LogDetail = LogDetail.AGGREGATE,
        retention_days: int = 30,
        key_path: Path | None = None,
        max_queue: int = 10_000,
        batch_size: int = 2_000,
        flush_interval: float = 0.5,
        retry_interval: float = 5.0,
    ) -> None:
        self.detail = detail
        self.retention_days = retention_days
        self._factory = store_factory
        self._key_path = key_path
        self._queue: queue.Queue[object] = queue.Queue(maxsize=max_queue)
        self._batch_size = batch_size
        self._flush_interval = flush_interval
        self._retry_interval = retry_interval
        self._lock = threading.Lock()
        # Notified when the writer has finished with a batch: flush() wakes then, not on a poll.
        self._finished = threading.Condition(self._lock)
        self._dropped = 0
        self._unsaved: dict[int, int] = {}  # day number -> dropped events not yet in the store
        self._written = 0
        self._enqueued = 0  # items put on the queue
        self._done = 0  # items the writer has finished with (written or dropped)
        self._store: Store | None = None
        self._hasher: UserHasher | None = None
        self._retry_at = 0.0
        self._outage = False
        self._retention = RetentionSchedule()
        self._closed = False
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name="mailproxy-tracking", daemon=True)
        self._thread.start()

    # -- the hot path ----------------------------------------------------------------------------
    def record_findings(
        self,
        findings: Iterable[Finding],
        *,
        channel: str,
        sender_domain: str | None,
        user: str | None,
        recipients: Sequence[str] = (),
    ) -> None:
        """Log the findings of one message that the policy acted on. Never blocks, never raises."""
        try:
            items = tuple(findings)
            if not items:
                return
            self._put(
                ("f", items, str(channel), sender_domain, user, tuple(recipients), time.time()),
                items,
            )
        except Exception:  # the proxy must go on whatever a caller passes
            logger.debug("record_findings: unusable input ignored", exc_info=True)

    def record_http(self, event: Mapping[str, object]) -> None:
        """Log one addon event (``ProxyState.on_event``). Never blocks, never raises."""
        try:
            if not isinstance(event, Mapping) or event.get("action") not in _HTTP_TRACKING_ACTIONS:
                return
            self._put(("h", dict(event), time.time()), None)
        except Exception:
            logger.debug("record_http: unusable input ignored", exc_info=True)

    def record(self, events: Iterable[TrackingEvent]) -> None:
        """Log events already reduced to a detail level (tests, imports). Never blocks."""
        batch = tuple(e for e in events if isinstance(e, TrackingEvent))
        if batch:
            self._put(("e", batch), None)

    def _put(self, item: _Item, findings: tuple[Finding, ...] | None) -> None:
        if self._closed:
            self._drop(self._count(item, findings))
            return
        with self._lock:
            try:
                self._queue.put_nowait(item)
            except queue.Full:
                self._count_dropped(self._count(item, findings))
            else:
                self._enqueued += 1

    @staticmethod
    def _count(item: _Item, findings: tuple[Finding, ...] | None) -> int:
        if findings is not None:
            return sum(1 for f in findings if isinstance(f, Finding) and acted_on(f))
        if item[0] == "e":
            batch = item[1]
            return len(batch) if isinstance(batch, tuple) else 0
        return 1

    def _drop(self, n: int) -> None:
        with self._lock:
            self._count_dropped(n)

    def _count_dropped(self, n: int) -> None:
        """With the lock held: add `n` to the total and to today's count still to be saved."""
        if n:
            self._dropped += n
            today = int(time.time()) // DAY
            self._unsaved[today] = self._unsaved.get(today, 0) + n

    # -- status ----------------------------------------------------------------------------------
    @property
    def dropped(self) -> int:
        """Events lost: queue full, store down, or recorded after close."""
        with self._lock:
            return self._dropped

    @property
    def written(self) -> int:
        with self._lock:
            return self._written

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything recorded so far is written or dropped; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._finished:
            target = self._enqueued
            self._wake.set()
            while self._done < target:
                left = deadline - time.monotonic()
                if left <= 0 or not self._thread.is_alive():
                    return False
                # Bounded, to notice a writer thread that died without finishing.
                self._finished.wait(min(left, 0.1))
        return True

    def close(self, timeout: float = 10.0) -> None:
        """Write what is queued (within `timeout`), stop the thread, close the store."""
        if self._closed:
            return
        self._closed = True
        self._wake.set()
        self._thread.join(timeout)
        if self._thread.is_alive():
            logger.warning("tracking log: writer did not finish within %.0f s", timeout)
        elif self._store is not None:
            self._store.close()
            self._store = None
        if self.dropped:
            logger.warning("tracking log: %d events were dropped in all", self.dropped)

    def __enter__(self) -> EventSink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the writer thread -----------------------------------------------------------------------
    def _run(self) -> None:
        self._maintain()  # open the store and purge expired rows at start-up
        while True:
            # A timed wait, not a blocking get: a get would wake this thread for every message and
            # each wake-up takes the GIL from the proxy; this way it wakes once per interval.
            self._wake.wait(self._flush_interval)
            self._wake.clear()
            stopping = self._closed
            while True:
                items = self._drain()
                if not items:
                    break
                try:
                    self._write_items(items)
                except Exception:  # the writer thread must survive anything
                    logger.exception("tracking log: writer failed on a batch")
                finally:
                    with self._finished:
                        self._done += len(items)
                        self._finished.notify_all()
            if stopping:
                if self._store is not None:
                    self._save_dropped(self._store)
                break
            self._maintain()

    def _drain(self) -> list[object]:
        items: list[object] = []
        while len(items) < self._batch_size:
            try:
                items.append(self._queue.get_nowait())
            except queue.Empty:
                break
        return items

    def _write_items(self, items: list[object]) -> None:
        if not items:
            return
        store = self._open()
        hasher = self._hasher
        events: list[TrackingEvent] = []
        for item in items:
            if not isinstance(item, tuple):
                continue
            if item[0] == "f":
                _, findings, channel, sender, user, recipients, when = item
                events.extend(
                    events_from_findings(
                        findings,
                        channel=str(channel),
                        sender_domain=sender if isinstance(sender, str) else None,
                        user=user if isinstance(user, str) else None,
                        detail=self.detail,
                        hasher=hasher,
                        now=float(when),
                        recipients=recipients,
                    )
                )
            elif item[0] == "h":
                event = event_from_http(
                    item[1],
                    detail=self.detail,
                    hasher=hasher,
                )
                if event is not None:
                    events.append(event)
            elif item[0] == "e":
                events.extend(item[1])
        if not events:
            return
        if store is None:
            self._drop(len(events))
            return
        try:
            store.write(events, self.detail)
        except StoreError as exc:
            self._failed(exc)
            self._drop(len(events))
            return
        with self._lock:
            self._written += len(events)
        self._maintain()

    def _open(self) -> Store | None:
        if self._store is not None:
            return self._store
        now = time.monotonic()
        if now < self._retry_at:
            return None
        try:
            if self.detail is not LogDetail.AGGREGATE and self._key_path is not None:
                # Only the levels that keep a user hash need the key: aggregate never creates it.
                self._hasher = UserHasher(load_or_create_key(self._key_path))
            self._store = self._factory()
        except StoreError as exc:
            self._failed(exc)
            return None
        except Exception as exc:  # a driver bug must not end the writer
            self._failed(StoreError(f"{type(exc).__name__}: {exc}"))
            return None
        if self._outage:
            logger.warning("tracking log: store %s is back", self._store.location)
            self._outage = False
        self._retention.reset()
        return self._store

    def _failed(self, exc: StoreError) -> None:
        if not self._outage:
            logger.warning("tracking log: store unavailable (%s); events are dropped until it is back", exc)
        self._outage = True
        self._retry_at = time.monotonic() + self._retry_interval
        if self._store is not None:
            self._store.close()
            self._store = None

    def _save_dropped(self, store: Store) -> None:
        """Count the dropped events in the store; kept for the next try if that fails."""
        with self._lock:
            unsaved, self._unsaved = self._unsaved, {}
        if not unsaved:
            return
        try:
            store.add_dropped({_day(d): n for d, n in unsaved.items()})
        except StoreError as exc:
            with self._lock:
                for d, n in unsaved.items():
                    self._unsaved[d] = self._unsaved.get(d, 0) + n
            self._failed(exc)

    def _maintain(self) -> None:
        """Dropped-event counts when there are any; retention on start (first open) and daily."""
        store = self._store
        if store is None:
            if not self._closed and time.monotonic() >= self._retry_at:
                self._open()
                store = self._store
            if store is None:
                return
        self._save_dropped(store)
        store = self._store  # None if saving failed
        if store is None or not self._retention.due():
            return
        try:
            purge_expired(store, self.retention_days)
            self._retention.done()
        except StoreError as exc:
            self._failed(exc)


def _day(number: int) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(number * DAY))


def sink_for(config: Config) -> EventSink | None:
    """The event sink the configuration asks for, or None when it cannot work at all (a
    postgresql:// store without the psycopg package). The store itself is opened in the background:
    an unreachable store never delays start-up."""
    log = config.log
    location = log.store_location()
    if isinstance(location, str):
        try:
            import psycopg  # noqa: F401
        except ImportError:
            logger.error("tracking log disabled: a postgresql:// store needs the psycopg package")
            return None
    if log.detail is LogDetail.RESEARCH:
        logger.warning(
            "tracking log at research detail: redacted tracker URLs are stored in %s for %d days "
            "(see PRIVACY.md; `mailproxy data purge` deletes them)",
            public_location(location),
            log.retention_days,
        )
    return EventSink(
        lambda: open_store(location),
        detail=log.detail,
        retention_days=log.retention_days,
        key_path=key_path_for(location),
    )
