"""Errors of the IMAP filter, in mailproxy's one hierarchy (h11 style: local misuse vs a peer's
fault)."""

from __future__ import annotations

from typing import Literal

from mailproxy.errors import MailproxyError

Side = Literal["client", "server"]


class ImapProtocolError(MailproxyError):
    """Something on an IMAP connection cannot continue; ``hint`` is what the proxy answers
    (BYE/BAD/NO)."""

    hint: str = "BYE"


class LocalProtocolError(ImapProtocolError):
    """The sans-IO core was driven wrongly (a bug in the caller, not in a peer)."""


class RemoteProtocolError(ImapProtocolError):
    """A peer sent bytes that cannot be framed (an over-long line, a bad literal)."""

    def __init__(self, side: Side, reason: str) -> None:
        self.side = side
        self.reason = reason
        super().__init__(f"{side}: {reason}")


class UpstreamError(ImapProtocolError):
    """The upstream server cannot be reached, refused TLS, or its certificate does not verify."""
