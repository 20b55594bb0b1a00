"""The one exception hierarchy of mailproxy.

Library code raises these; the boundaries (CLI, IMAP shell, mitmproxy addon) translate them into an exit
status, an IMAP response or a log line. Foreign exceptions (OSError, UnicodeError, ...) are mapped into this
hierarchy where they cross a module boundary, never left to escape as a crash.
"""

from __future__ import annotations


class MailproxyError(Exception):
    """Base class of every error mailproxy raises on purpose."""


class ConfigError(MailproxyError):
    """A configuration file is unreadable or invalid.

    The message names the file, the key (dotted path) and what was expected.
    """

    def __init__(self, file: str, key: str, expected: str) -> None:
        self.file = file
        self.key = key
        self.expected = expected
        where = f"{file}: {key}" if file and key else key or file
        super().__init__(f"{where}: {expected}")


class FilterListError(MailproxyError):
    """A user-supplied tracker list (Adblock Plus, Disconnect JSON) cannot be read."""


class InputError(MailproxyError):
    """An input (message file, mailbox) cannot be read at all."""


class UncheckableError(MailproxyError):
    """The safety net cannot check a part (hostile nesting beyond its bounds): the part is neutralized."""
