"""Which rules apply to one message, and what to do with each finding in it.

Theory of operation:

1. `Policy` is built once from a `Config`. It precompiles every sender pattern and sorts each
   layer's rules by specificity, so resolving is a short walk over the rules, and the result is
   cached per (sender, user) because it runs for every message.
2. Layers, least to most specific: [policy]/[privacy] < global [[senders]] < the user's own keys <
   the user's [[users."...".senders]]. A later layer overrides only the keys it sets.
3. Inside one layer of sender rules the most specific pattern wins, per key: exact address > address
   glob > exact domain > domain glob; ties go to the longer pattern, then to the later rule in the
   file. Applying the matching rules from least to most specific gives exactly that.
4. `EffectivePolicy` is small, frozen and hashable; equal results are interned to one object, and
   `rewrite_key` is a stable text that can version caches of rewritten messages (hash() of a str
   changes between runs, so it cannot).
"""

from __future__ import annotations

import fnmatch
import functools
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

from mailproxy.config import (
    POLICY_KEYS,
    Config,
    ContentRule,
    DntValue,
    IdentifierRule,
    ImageRule,
    ReceiptRule,
    SenderRule,
    TrackerRule,
    load_config,
)
from mailproxy.model import Action, Verdict

__all__ = [
    "ContentRule",
    "EffectivePolicy",
    "IdentifierRule",
    "ImageRule",
    "Policy",
    "ReceiptRule",
    "TrackerRule",
]

logger = logging.getLogger(__name__)

# Enum member access (Verdict.TRACKER) is a slow descriptor lookup in Python 3.11; module globals
# are not, and action_for runs for every URL.
_TRACKER: Final = Verdict.TRACKER
_IDENTIFYING: Final = Verdict.IDENTIFYING
_CLEAN: Final = Verdict.CLEAN

_TRACKER_ACTIONS: Final[Mapping[str, Action]] = {
    TrackerRule.STRIP: Action.STRIP,
    TrackerRule.REWRITE: Action.CLEAN,
    TrackerRule.BLOCK: Action.BLOCK,
    TrackerRule.ALLOW: Action.ALLOW,
}
_IDENTIFIER_ACTIONS: Final[Mapping[str, Action]] = {
    IdentifierRule.CLEAN: Action.CLEAN,
    IdentifierRule.ALLOW: Action.ALLOW,
    IdentifierRule.BLOCK: Action.BLOCK,
}
_IMAGE_ACTIONS: Final[Mapping[str, Action]] = {
    ImageRule.ALLOW: Action.ALLOW,
    ImageRule.BLOCK: Action.BLOCK,
}


@dataclass(frozen=True, slots=True, kw_only=True)
class EffectivePolicy:
    """The rules for one (sender, user) pair."""

    tracker: TrackerRule = TrackerRule.STRIP
    identifiers: IdentifierRule = IdentifierRule.CLEAN
    images: ImageRule = ImageRule.ALLOW
    content: ContentRule = ContentRule.BLOCK
    receipts: ReceiptRule = ReceiptRule.NEUTRALIZE
    dnt: DntValue = "1"
    gpc: bool = True

    # The answers of action_for, worked out once: it runs for every URL of every message, and
    # hashing a StrEnum (Enum.__hash__ is Python code) costs more than the whole lookup.
    _tracker_action: Action = field(init=False, repr=False, compare=False)
    _identifying_image: Action = field(init=False, repr=False, compare=False)
    _identifying_other: Action = field(init=False, repr=False, compare=False)
    _clean_image: Action = field(init=False, repr=False, compare=False)
    _clean_other: Action = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        content_blocked = self.content is ContentRule.BLOCK
        identifying = _IDENTIFIER_ACTIONS[self.identifiers]
        init = object.__setattr__  # the dataclass is frozen
        init(self, "_tracker_action", _TRACKER_ACTIONS[self.tracker])
        init(self, "_identifying_image", identifying)
        init(self, "_identifying_other", Action.STRIP if content_blocked else identifying)
        init(self, "_clean_image", _IMAGE_ACTIONS[self.images])
        init(self, "_clean_other", Action.STRIP if content_blocked else Action.ALLOW)

    def action_for(self, verdict: Verdict, *, is_image: bool) -> Action:
        """What to do with one reference, given its verdict and whether it renders as an image.

        A tracker follows `tracker` whatever it is. Other non-image content is stripped when
        `content` is block; otherwise identifying content follows `identifiers` and clean content
        loads. Identifying images follow `identifiers`, clean images follow `images`.
        """
        if verdict is _TRACKER:
            return self._tracker_action
        if verdict is _IDENTIFYING:
            return self._identifying_image if is_image else self._identifying_other
        if verdict is _CLEAN:
            return self._clean_image if is_image else self._clean_other
        try:  # a plain string such as "tracker"
            member = Verdict(verdict)
        except ValueError:
            raise ValueError(f"unknown verdict {verdict!r}") from None
        return self.action_for(member, is_image=is_image)

    @property
    def neutralize_receipts(self) -> bool:
        return self.receipts is ReceiptRule.NEUTRALIZE

    @property
    def rewrite_key(self) -> str:
        """A stable text naming the rules that change rewritten bytes (dnt and gpc do not)."""
        return f"{self.tracker}/{self.identifiers}/{self.images}/{self.content}/{self.receipts}"


# Specificity ranks of sender patterns (higher wins).
_DOMAIN_GLOB: Final = 0
_EXACT_DOMAIN: Final = 1
_ADDRESS_GLOB: Final = 2
_EXACT_ADDRESS: Final = 3
_GLOB_CHARS: Final = re.compile(r"[*?\[]")


@dataclass(frozen=True, slots=True)
class _CompiledRule:
    rank: tuple[int, int, int]  # (kind, pattern length, position in the file)
    on_address: bool  # match the whole address, not just its domain
    exact: str | None
    regex: re.Pattern[str] | None
    overrides: tuple[tuple[str, str], ...]

    def matches(self, address: str | None, domain: str | None) -> bool:
        subject = address if self.on_address else domain
        if subject is None:
            return False
        if self.regex is None:
            return subject == self.exact
        return self.regex.match(subject) is not None


def _compile(rules: Sequence[SenderRule]) -> tuple[_CompiledRule, ...]:
    compiled = []
    for position, rule in enumerate(rules):
        pattern = rule.match.lower()
        on_address = "@" in pattern
        is_glob = _GLOB_CHARS.search(pattern) is not None
        if on_address:
            kind = _ADDRESS_GLOB if is_glob else _EXACT_ADDRESS
        else:
            pattern = pattern.rstrip(".")
            kind = _DOMAIN_GLOB if is_glob else _EXACT_DOMAIN
        compiled.append(
            _CompiledRule(
                rank=(kind, len(pattern), position),
                on_address=on_address,
                exact=None if is_glob else pattern,
                # fnmatch.translate anchors the end; re.match anchors the start.
                regex=re.compile(fnmatch.translate(pattern)) if is_glob else None,
                overrides=rule.overrides,
            )
        )
    # Least specific first, so applying them in order lets the most specific set each key last.
    return tuple(sorted(compiled, key=lambda r: r.rank))


def _split_sender(sender: str | None) -> tuple[str | None, str | None]:
    """(address, domain) of a sender, lower-case; a bare domain gives (None, domain)."""
    if sender is None:
        return None, None
    text = sender.strip()
    # Tolerate "Name <addr>" and "<addr>": callers may pass a header value as it stands.
    opening = text.rfind("<")
    if opening >= 0:
        closing = text.find(">", opening)
        text = text[opening + 1 : closing if closing >= 0 else len(text)].strip()
    text = text.lower()
    local, at, domain = text.rpartition("@")
    domain = domain.rstrip(".")
    if not at:
        return None, domain or None
    if not local or not domain:
        return None, domain or None
    return f"{local}@{domain}", domain


def _apply(
    rules: Sequence[_CompiledRule], address: str | None, domain: str | None, values: dict[str, str]
) -> None:
    for rule in rules:
        if rule.matches(address, domain):
            values.update(rule.overrides)


@dataclass(frozen=True, slots=True)
class _UserLayer:
    overrides: tuple[tuple[str, str], ...]
    dnt: DntValue | None
    gpc: bool | None
    senders: tuple[_CompiledRule, ...]


_CACHE_SIZE: Final = 8192  # distinct (sender, user) pairs kept; one message's lookups are repeats


class Policy:
    """The configured rules, ready to resolve per message. Safe to share between threads."""

    __slots__ = ("_base", "_global", "_intern", "_resolve_cached", "_users", "config")

    def __init__(self, config: Config) -> None:
        self.config = config
        rules = config.policy
        self._base: tuple[tuple[str, str], ...] = tuple((key, getattr(rules, key)) for key in POLICY_KEYS)
        self._global = _compile(config.senders)
        self._users = {
            u.address.lower(): _UserLayer(
                overrides=u.overrides, dnt=u.dnt, gpc=u.gpc, senders=_compile(u.senders)
            )
            for u in config.users
        }
        self._intern: dict[EffectivePolicy, EffectivePolicy] = {}
        self._resolve_cached = functools.lru_cache(maxsize=_CACHE_SIZE)(self._resolve)

    @classmethod
    def from_config(cls, cfg: Config) -> Policy:
        return cls(cfg)

    @classmethod
    def default(cls) -> Policy:
        """The policy of `load_config(None)`, shared."""
        return _default_policy()

    def resolve(self, *, sender: str | None, user: str | None) -> EffectivePolicy:
        """The effective rules for mail from `sender` (address or None) read by `user` (or None)."""
        if not (sender is None or isinstance(sender, str)):
            raise TypeError(f"sender must be a str or None, not {type(sender).__name__}")
        if not (user is None or isinstance(user, str)):
            raise TypeError(f"user must be a str or None, not {type(user).__name__}")
        return self._resolve_cached(sender, user)

    def _resolve(self, sender: str | None, user: str | None) -> EffectivePolicy:
        address, domain = _split_sender(sender)
        values = dict(self._base)
        dnt = self.config.privacy.dnt
        gpc = self.config.privacy.gpc
        _apply(self._global, address, domain, values)
        layer = self._users.get(user.strip().lower()) if user else None
        if layer is not None:
            values.update(layer.overrides)
            dnt = dnt if layer.dnt is None else layer.dnt
            gpc = gpc if layer.gpc is None else layer.gpc
            _apply(layer.senders, address, domain, values)
        result = EffectivePolicy(
            tracker=TrackerRule(values["tracker"]),
            identifiers=IdentifierRule(values["identifiers"]),
            images=ImageRule(values["images"]),
            content=ContentRule(values["content"]),
            receipts=ReceiptRule(values["receipts"]),
            dnt=dnt,
            gpc=gpc,
        )
        # Few distinct results exist; sharing one object keeps downstream caches small.
        return self._intern.setdefault(result, result)

    def cache_clear(self) -> None:
        self._resolve_cached.cache_clear()


@functools.cache
def _default_policy() -> Policy:
    return Policy(load_config(None))
