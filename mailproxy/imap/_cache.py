"""A bounded LRU of rewritten messages, shared by the sessions of one proxy.

A client walking a 4 MB message in 64 KiB chunks sends 63 commands; the first fetches and rewrites
the whole message, the other 62 are cut from here. Keys carry everything the rewritten bytes depend
on: the login (policy and recipients depend on it), the mailbox and its UIDVALIDITY plus the UID
(together they name immutable message content, RFC 3501 section 2.3.1.1) and the policy key (a new
policy must not be served from old results, imap.md H15). The bound is in bytes, so memory stays
bounded whatever the sizes.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

DEFAULT_MAX_BYTES = 128 << 20


@dataclass(frozen=True, slots=True)
class CacheKey:
    user: str
    mailbox: bytes
    uidvalidity: int
    uid: int
    policy: str = ""


class RewriteCache:
    """Rewritten whole messages by ``CacheKey``; least recently used entries go first."""

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[CacheKey, bytes] = OrderedDict()
        self._size = 0
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def size(self) -> int:
        return self._size

    def __contains__(self, key: CacheKey) -> bool:
        return key in self._entries

    def get(self, key: CacheKey) -> bytes | None:
        data = self._entries.get(key)
        if data is None:
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return data

    def put(self, key: CacheKey, data: bytes) -> None:
        if len(data) > self.max_bytes // 2:
            return  # one huge message must not flush everything else
        old = self._entries.pop(key, None)
        if old is not None:
            self._size -= len(old)
        self._entries[key] = data
        self._size += len(data)
        while self._size > self.max_bytes:
            _, dropped = self._entries.popitem(last=False)
            self._size -= len(dropped)

    def clear(self) -> None:
        self._entries.clear()
        self._size = 0
