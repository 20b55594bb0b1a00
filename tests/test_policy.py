"""Tests for mailproxy.policy: resolution precedence and the action table."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from mailproxy.config import (
    Config,
    ContentRule,
    IdentifierRule,
    ImageRule,
    PolicyRules,
    Privacy,
    ReceiptRule,
    SenderRule,
    TrackerRule,
    UserOverride,
    load_config,
)
from mailproxy.model import Action, Verdict
from mailproxy.policy import EffectivePolicy, Policy

# --- action_for ----------------------------------------------------------------------------------

TRACKER_TABLE = {
    TrackerRule.STRIP: Action.STRIP,
    TrackerRule.REWRITE: Action.CLEAN,
    TrackerRule.BLOCK: Action.BLOCK,
    TrackerRule.ALLOW: Action.ALLOW,
}
IDENTIFIER_TABLE = {
    IdentifierRule.CLEAN: Action.CLEAN,
    IdentifierRule.ALLOW: Action.ALLOW,
    IdentifierRule.BLOCK: Action.BLOCK,
}
IMAGE_TABLE = {ImageRule.ALLOW: Action.ALLOW, ImageRule.BLOCK: Action.BLOCK}

ALL_POLICIES = [
    EffectivePolicy(tracker=t, identifiers=i, images=m, content=c)
    for t, i, m, c in itertools.product(TrackerRule, IdentifierRule, ImageRule, ContentRule)
]


def expected_action(p: EffectivePolicy, verdict: Verdict, is_image: bool) -> Action:
    """The specification's table, written out independently of the implementation."""
    if verdict is Verdict.TRACKER:
        return TRACKER_TABLE[p.tracker]
    if not is_image:
        if p.content is ContentRule.BLOCK:
            return Action.STRIP
        return IDENTIFIER_TABLE[p.identifiers] if verdict is Verdict.IDENTIFYING else Action.ALLOW
    if verdict is Verdict.IDENTIFYING:
        return IDENTIFIER_TABLE[p.identifiers]
    return IMAGE_TABLE[p.images]


@pytest.mark.parametrize("policy", ALL_POLICIES, ids=lambda p: p.rewrite_key)
@pytest.mark.parametrize("verdict", list(Verdict))
@pytest.mark.parametrize("is_image", [True, False])
def test_action_for_complete_table(policy: EffectivePolicy, verdict: Verdict, is_image: bool) -> None:
    assert policy.action_for(verdict, is_image=is_image) is expected_action(policy, verdict, is_image)


@pytest.mark.parametrize(
    ("rules", "verdict", "is_image", "action"),
    [
        # Spot checks written by hand, so a shared mistake in the table above cannot hide.
        ({"tracker": TrackerRule.REWRITE}, Verdict.TRACKER, True, Action.CLEAN),
        (
            {"tracker": TrackerRule.ALLOW, "content": ContentRule.BLOCK},
            Verdict.TRACKER,
            False,
            Action.ALLOW,
        ),
        ({"content": ContentRule.BLOCK}, Verdict.CLEAN, False, Action.STRIP),
        ({"content": ContentRule.BLOCK}, Verdict.IDENTIFYING, False, Action.STRIP),
        ({"content": ContentRule.ALLOW}, Verdict.CLEAN, False, Action.ALLOW),
        (
            {"content": ContentRule.ALLOW, "images": ImageRule.BLOCK},
            Verdict.CLEAN,
            False,
            Action.ALLOW,
        ),
        (
            {"content": ContentRule.ALLOW, "identifiers": IdentifierRule.BLOCK},
            Verdict.IDENTIFYING,
            False,
            Action.BLOCK,
        ),
        ({"identifiers": IdentifierRule.CLEAN}, Verdict.IDENTIFYING, True, Action.CLEAN),
        (
            {"identifiers": IdentifierRule.ALLOW, "images": ImageRule.BLOCK},
            Verdict.IDENTIFYING,
            True,
            Action.ALLOW,
        ),
        ({"images": ImageRule.BLOCK}, Verdict.CLEAN, True, Action.BLOCK),
        ({}, Verdict.CLEAN, True, Action.ALLOW),
        ({}, Verdict.TRACKER, True, Action.STRIP),
    ],
)
def test_action_for_spot_checks(
    rules: dict[str, object], verdict: Verdict, is_image: bool, action: Action
) -> None:
    policy = EffectivePolicy(**rules)  # type: ignore[arg-type]
    assert policy.action_for(verdict, is_image=is_image) is action


def test_action_for_accepts_plain_strings_and_rejects_unknown_verdicts() -> None:
    policy = EffectivePolicy()
    assert policy.action_for("tracker", is_image=True) is Action.STRIP  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown verdict"):
        policy.action_for("bogus", is_image=True)  # type: ignore[arg-type]


def test_neutralize_receipts_and_rewrite_key() -> None:
    assert EffectivePolicy().neutralize_receipts is True
    assert EffectivePolicy(receipts=ReceiptRule.ALLOW).neutralize_receipts is False
    assert EffectivePolicy().rewrite_key == "strip/clean/allow/block/neutralize"
    # dnt/gpc do not change rewritten bytes, so they must not change the key.
    assert EffectivePolicy(dnt="0", gpc=False).rewrite_key == EffectivePolicy().rewrite_key
    assert EffectivePolicy(images=ImageRule.BLOCK).rewrite_key != EffectivePolicy().rewrite_key


# --- resolution ----------------------------------------------------------------------------------


def rule(match: str, **overrides: str) -> SenderRule:
    return SenderRule(match=match, overrides=tuple(overrides.items()))


CONFIG = Config(
    policy=PolicyRules(),
    privacy=Privacy(dnt="1", gpc=True),
    senders=(
        rule("*.example.com", tracker="block", images="block"),  # domain glob
        rule("example.com", tracker="allow"),  # exact domain
        rule("news.example.com", tracker="rewrite"),  # exact domain, longer than the glob
        rule("*@news.example.com", tracker="allow", receipts="allow"),  # address glob
        rule("boss@news.example.com", tracker="strip"),  # exact address
        rule("shop.test", identifiers="allow"),
        rule("shop.test", identifiers="block"),  # same pattern later in the file: wins
        rule("*.shop.test", content="allow"),
        rule("*.eu.shop.test", content="block"),  # longer glob: wins over *.shop.test
    ),
    users=(
        UserOverride(
            address="alice@example.org",
            overrides=(("tracker", "block"), ("images", "block")),
            dnt="unset",
            senders=(rule("example.com", tracker="rewrite"), rule("*@shop.test", images="allow")),
        ),
        UserOverride(address="bob@example.org", gpc=False),
    ),
)
D = PolicyRules()


@pytest.mark.parametrize(
    ("sender", "user", "expected"),
    [
        # No rule matches: the defaults.
        (None, None, {}),
        ("someone@elsewhere.test", None, {}),
        # Domain glob matches subdomains, not the domain itself.
        ("a@x.example.com", None, {"tracker": "block", "images": "block"}),
        # Exact domain beats the glob; keys the exact rule does not set stay from the glob.
        ("a@example.com", None, {"tracker": "allow"}),
        ("a@news.example.com", None, {"tracker": "allow", "images": "block", "receipts": "allow"}),
        # Exact address beats the address glob, which still supplies receipts.
        (
            "Boss@News.Example.com",
            None,
            {"tracker": "strip", "images": "block", "receipts": "allow"},
        ),
        # Same pattern twice: the later rule wins.
        ("x@shop.test", None, {"identifiers": "block"}),
        # Longer glob beats shorter glob.
        ("x@a.shop.test", None, {"content": "allow"}),
        ("x@a.eu.shop.test", None, {"content": "block"}),
        # The user's keys beat global sender rules.
        ("a@x.example.com", "alice@example.org", {"tracker": "block", "images": "block"}),
        (
            "a@example.com",
            "ALICE@example.org",
            {"tracker": "rewrite", "images": "block"},
        ),  # ...and the user's own senders beat both
        (
            "x@shop.test",
            "alice@example.org",
            {"tracker": "block", "images": "allow", "identifiers": "block"},
        ),
        # No sender: only defaults and the user's own keys.
        (None, "alice@example.org", {"tracker": "block", "images": "block"}),
        # Unknown user: as if no user.
        ("a@example.com", "carol@example.org", {"tracker": "allow"}),
    ],
)
def test_resolution_precedence(sender: str | None, user: str | None, expected: dict[str, str]) -> None:
    policy = Policy.from_config(CONFIG)
    got = policy.resolve(sender=sender, user=user)
    for key in ("tracker", "identifiers", "images", "content", "receipts"):
        assert getattr(got, key) == expected.get(key, getattr(D, key)), key


def test_user_privacy_overrides() -> None:
    policy = Policy.from_config(CONFIG)
    alice = policy.resolve(sender=None, user="alice@example.org")
    assert (alice.dnt, alice.gpc) == ("unset", True)
    bob = policy.resolve(sender="a@example.com", user=" Bob@Example.org ")
    assert (bob.dnt, bob.gpc) == ("1", False)
    nobody = policy.resolve(sender=None, user=None)
    assert (nobody.dnt, nobody.gpc) == ("1", True)


@pytest.mark.parametrize(
    "sender",
    [
        "a@example.com",
        "A@EXAMPLE.COM",
        " a@example.com ",
        "Ann <a@example.com>",
        "<a@example.com>",
        "a@example.com.",
    ],
)
def test_sender_forms_are_normalised(sender: str) -> None:
    assert Policy(CONFIG).resolve(sender=sender, user=None).tracker is TrackerRule.ALLOW


@pytest.mark.parametrize("sender", ["", "   ", "@", "alice@", "not an address", "<>", "a@b@c"])
def test_odd_senders_are_safe(sender: str) -> None:
    got = Policy(CONFIG).resolve(sender=sender, user=None)
    assert isinstance(got, EffectivePolicy)


def test_bare_domain_sender_matches_domain_rules_only() -> None:
    policy = Policy(CONFIG)
    assert policy.resolve(sender="example.com", user=None).tracker is TrackerRule.ALLOW
    # "*@news.example.com" needs an address; the domain rules still apply.
    assert policy.resolve(sender="news.example.com", user=None).receipts is ReceiptRule.NEUTRALIZE
    assert policy.resolve(sender="news.example.com", user=None).tracker is TrackerRule.REWRITE


def test_wrong_types_raise_clear_errors() -> None:
    policy = Policy(CONFIG)
    with pytest.raises(TypeError, match="sender"):
        policy.resolve(sender=["a@example.com"], user=None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="user"):
        policy.resolve(sender=None, user=3)  # type: ignore[arg-type]


def test_resolution_is_cached_and_interned() -> None:
    policy = Policy(CONFIG)
    first = policy.resolve(sender="a@example.com", user=None)
    assert policy.resolve(sender="a@example.com", user=None) is first
    # A different sender with the same outcome shares the object.
    assert policy.resolve(sender="b@example.com", user=None) is first
    policy.cache_clear()
    assert policy.resolve(sender="a@example.com", user=None) is first


def test_default_policy() -> None:
    default = Policy.default()
    assert default is Policy.default()
    assert default.config == load_config(None)
    assert default.resolve(sender="x@y.z", user="u@v.w") == EffectivePolicy()


def test_policy_from_loaded_file(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(
        '[policy]\nimages = "block"\n[privacy]\ndnt = "0"\n'
        '[[senders]]\nmatch = "*@Trusted.example"\nimages = "allow"\n'
        '[users."Alice@Example.org"]\ngpc = false\n'
        '[[users."Alice@Example.org".senders]]\nmatch = "x@trusted.example"\nimages = "block"\n',
        encoding="utf-8",
    )
    policy = Policy.from_config(load_config(path))
    assert policy.resolve(sender="y@trusted.example", user=None).images is ImageRule.ALLOW
    assert policy.resolve(sender="y@other.example", user=None).images is ImageRule.BLOCK
    alice = policy.resolve(sender="X@Trusted.Example", user="alice@example.org")
    assert (alice.images, alice.dnt, alice.gpc) == (ImageRule.BLOCK, "0", False)
    assert policy.resolve(sender="y@trusted.example", user="alice@example.org").images == "allow"
