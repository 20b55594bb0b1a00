"""The IMAP rewrite filter: a transparent IMAP proxy that rewrites message bodies in FETCH
responses.

The protocol core (``Session`` and the readers) is sans-IO; ``proxy`` is the asyncio shell around
it.
"""

from mailproxy.imap._cache import CacheKey, RewriteCache
from mailproxy.imap._errors import (
    ImapProtocolError,
    LocalProtocolError,
    RemoteProtocolError,
    UpstreamError,
)
from mailproxy.imap._events import (
    NEED_DATA,
    CommandLine,
    LiteralData,
    Response,
    ResponseChunk,
)
from mailproxy.imap._fetch import FetchContext, FetchPlan, plan_fetch, rewrite_fetch
from mailproxy.imap._protocol import ClientReader, ServerReader, filter_capability_list
from mailproxy.imap._session import (
    Output,
    RewriteJob,
    Rewriter,
    Session,
    SessionStats,
    redact,
)
from mailproxy.imap.proxy import (
    EngineRewriter,
    ImapProxy,
    ProxySettings,
    serve_imap,
    settings_from_config,
)

__all__ = [
    "NEED_DATA",
    "CacheKey",
    "ClientReader",
    "CommandLine",
    "EngineRewriter",
    "FetchContext",
    "FetchPlan",
    "ImapProtocolError",
    "ImapProxy",
    "LiteralData",
    "LocalProtocolError",
    "Output",
    "ProxySettings",
    "RemoteProtocolError",
    "Response",
    "ResponseChunk",
    "RewriteCache",
    "RewriteJob",
    "Rewriter",
    "ServerReader",
    "Session",
    "SessionStats",
    "UpstreamError",
    "filter_capability_list",
    "plan_fetch",
    "redact",
    "rewrite_fetch",
    "serve_imap",
    "settings_from_config",
]
