"""Retention: rows older than ``[log] retention_days`` are deleted, at start-up and then daily.

The writer thread calls :meth:`RetentionSchedule.due` after each batch and :func:`purge_expired`
when it says so; ``mailproxy data purge --before`` uses the same store call by hand.
"""

from __future__ import annotations

import logging
import time
from typing import Final

from mailproxy.tracking.events import DAY
from mailproxy.tracking.store import Store, cutoff_for

__all__ = ["RetentionSchedule", "purge_expired"]

logger = logging.getLogger(__name__)

PURGE_INTERVAL: Final = DAY


def purge_expired(store: Store, retention_days: int, now: float | None = None) -> int:
    """Delete what is older than the retention period; the number of rows deleted. Raises
    StoreError like every store call."""
    cutoff = cutoff_for(retention_days, now)
    deleted = store.purge_before(cutoff)
    if deleted:
        logger.info("tracking log: %d rows older than %d days purged", deleted, retention_days)
    return deleted


class RetentionSchedule:
    """When the next automatic purge is due: at once (start-up), then every PURGE_INTERVAL."""

    __slots__ = ("_next", "interval")

    def __init__(self, interval: float = PURGE_INTERVAL) -> None:
        self.interval = interval
        self._next = 0.0

    def due(self, now: float | None = None) -> bool:
        return (time.monotonic() if now is None else now) >= self._next

    def done(self, now: float | None = None) -> None:
        self._next = (time.monotonic() if now is None else now) + self.interval

    def reset(self) -> None:
        """Purge again as soon as possible (after the store came back from an outage)."""
        self._next = 0.0
