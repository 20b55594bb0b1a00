"""The HTTP(S) half of mailproxy: mitmproxy addons (addon.py) and the embedded proxy (server.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mailproxy.http.addon import (
    TRANSPARENT_GIF,
    ConfigOption,
    NetworkGuard,
    PrivacyHeaders,
    ProxyState,
    TlsPolicy,
    TrackerBlock,
    all_addons,
)

if TYPE_CHECKING:
    from mailproxy.http.server import HttpProxy, ca_info

__all__ = [
    "TRANSPARENT_GIF",
    "ConfigOption",
    "HttpProxy",
    "NetworkGuard",
    "PrivacyHeaders",
    "ProxyState",
    "TlsPolicy",
    "TrackerBlock",
    "all_addons",
    "ca_info",
]


def __getattr__(name: str) -> Any:
    # server.py is imported on demand, so `python -m mailproxy.http.server` does not find it
    # already imported by its own package (runpy warns about that).
    if name in ("HttpProxy", "ca_info"):
        from mailproxy.http import server

        return getattr(server, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
