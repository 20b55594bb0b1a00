"""Tests for mailproxy.config: every key's validation, error messages, defaults == example file."""

from __future__ import annotations

import dataclasses
import ipaddress
from pathlib import Path

import pytest

from mailproxy.config import (
    ClientTls,
    Config,
    ContentRule,
    HostPort,
    HttpTls,
    IdentifierRule,
    ImageRule,
    LogConfig,
    LogDetail,
    PolicyRules,
    ReceiptRule,
    SenderRule,
    TrackerRule,
    UpstreamTls,
    default_store_path,
    load_config,
)
from mailproxy.errors import ConfigError

EXAMPLE = Path(__file__).resolve().parent.parent / "config.example.toml"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "mailproxy.toml"
    path.write_text(text, encoding="utf-8")
    return path


def load(tmp_path: Path, text: str) -> Config:
    return load_config(write(tmp_path, text))


def error(tmp_path: Path, text: str) -> ConfigError:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.file == str(path)
    assert str(path) in str(info.value)
    return info.value


# --- defaults and the example file ---------------------------------------------------------------


def test_no_file_gives_dataclass_defaults() -> None:
    cfg = load_config(None)
    assert cfg == Config()
    assert cfg.source is None
    assert cfg.policy == PolicyRules(
        tracker=TrackerRule.STRIP,
        identifiers=IdentifierRule.CLEAN,
        images=ImageRule.ALLOW,
        content=ContentRule.BLOCK,
        receipts=ReceiptRule.NEUTRALIZE,
    )
    assert (cfg.privacy.dnt, cfg.privacy.gpc) == ("1", True)
    assert str(cfg.imap.listen) == "127.0.0.1:1143"
    assert str(cfg.imap.upstream) == "127.0.0.1:993"
    assert cfg.imap.upstream_tls is UpstreamTls.IMPLICIT
    assert cfg.imap.client_tls is ClientTls.STARTTLS
    assert str(cfg.http.listen) == "127.0.0.1:8080"
    assert cfg.http.tls is HttpTls.AUTO  # what `mailproxy run` did before the key existed
    assert cfg.log == LogConfig(detail=LogDetail.AGGREGATE, retention_days=30)


def test_example_file_loads_to_exactly_the_defaults() -> None:
    cfg = load_config(EXAMPLE)
    assert cfg.source == EXAMPLE
    assert dataclasses.replace(cfg, source=None) == load_config(None)


def test_example_file_documents_every_key_once_with_a_comment() -> None:
    lines = EXAMPLE.read_text(encoding="utf-8").splitlines()
    keys = [
        line.split("=")[0].strip()
        for line in lines
        if "=" in line and not line.startswith("#") and not line.startswith("[")
    ]
    assert sorted(keys) == sorted(
        [
            *("tracker", "identifiers", "images", "content", "receipts", "dnt", "gpc"),
            *("adblock", "disconnect", "enabled", "listen", "upstream", "upstream_tls"),
            *("upstream_ca", "tls_cert", "tls_key", "client_tls", "allow_plaintext_upstream"),
            "rewrite_workers",
            *("enabled", "listen", "allow_networks", "tls", "require_user"),
            *("detail", "store", "retention_days"),
        ]
    )
    for index, line in enumerate(lines):
        if line.split("=")[0].strip() in keys and not line.startswith("#"):
            assert lines[index - 1].startswith("#"), line


def test_example_file_commented_examples_are_valid(tmp_path: Path) -> None:
    # The commented [[senders]] / [users] examples must work when uncommented.
    text = EXAMPLE.read_text(encoding="utf-8")
    for block in ("[[senders]]", '[users."alice@example.org"]'):
        start = text.index(f"# {block}")
        chunk = text[start:].split("\n\n")[0]
        text = text.replace(chunk, "\n".join(line[2:] for line in chunk.splitlines()))
    cfg = load(tmp_path, text)
    assert cfg.senders == (SenderRule(match="*@news.example.com", overrides=(("tracker", "allow"),)),)
    alice = cfg.user("Alice@Example.org")
    assert alice is not None
    assert alice.overrides == (("tracker", "block"),)
    assert alice.gpc is False
    assert alice.senders[0].match == "bank.example"


def test_empty_file_gives_defaults(tmp_path: Path) -> None:
    cfg = load(tmp_path, "")
    assert dataclasses.replace(cfg, source=None) == Config()
    assert cfg.source == (tmp_path / "mailproxy.toml").absolute()


# --- file-level errors ---------------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the file") as info:
        load_config(tmp_path / "nope.toml")
    assert info.value.file == str(tmp_path / "nope.toml")


def test_directory_is_not_a_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the file"):
        load_config(str(tmp_path))


def test_invalid_toml_names_the_line(tmp_path: Path) -> None:
    err = error(tmp_path, '[policy]\ntracker = "strip"\nimages = \n')
    assert "invalid TOML" in err.expected
    assert "line 3" in err.expected


def test_non_utf8_file(tmp_path: Path) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes(b'# caf\xe9\n[policy]\ntracker = "strip"\n')
    with pytest.raises(ConfigError, match="UTF-8"):
        load_config(path)


def test_deeply_nested_toml_is_an_error_not_a_crash(tmp_path: Path) -> None:
    err = error(tmp_path, "x = " + "[" * 100_000 + "]" * 100_000 + "\n")
    assert "TOML" in err.expected


def test_path_of_wrong_type() -> None:
    with pytest.raises(TypeError):
        load_config(3)  # type: ignore[arg-type]


@pytest.mark.parametrize("table", ["policy", "privacy", "users", "trackers", "imap", "http", "log"])
def test_top_level_tables_must_be_tables(tmp_path: Path, table: str) -> None:
    err = error(tmp_path, f'{table} = "x"\n')
    assert err.key == table
    assert err.expected == 'expected a table; got "x"'


def test_unknown_top_level_key_with_hint(tmp_path: Path) -> None:
    err = error(tmp_path, "[polcy]\n")
    assert err.key == "polcy"
    assert 'did you mean "policy"?' in err.expected


def test_unknown_key_without_close_match_has_no_hint(tmp_path: Path) -> None:
    err = error(tmp_path, "[policy]\nzzzzqqq = 1\n")
    assert err.key == "policy.zzzzqqq"
    assert "did you mean" not in err.expected
    assert "unknown key" in err.expected
    assert "tracker" in err.expected  # lists the known keys


# --- [policy] ------------------------------------------------------------------------------------

POLICY_VALUES = {
    "tracker": ("strip", "rewrite", "block", "allow"),
    "identifiers": ("clean", "allow", "block"),
    "images": ("allow", "block"),
    "content": ("block", "allow"),
    "receipts": ("neutralize", "allow"),
}


@pytest.mark.parametrize(("key", "value"), [(k, v) for k, values in POLICY_VALUES.items() for v in values])
def test_policy_accepts_every_documented_value(tmp_path: Path, key: str, value: str) -> None:
    cfg = load(tmp_path, f'[policy]\n{key} = "{value}"\n')
    assert getattr(cfg.policy, key) == value
    # Only that key moves.
    for other in POLICY_VALUES:
        if other != key:
            assert getattr(cfg.policy, other) == getattr(PolicyRules(), other)


def test_policy_error_message_is_exact(tmp_path: Path) -> None:
    err = error(tmp_path, '[policy]\ntracker = "strp"\n')
    assert err.key == "policy.tracker"
    assert err.expected == (
        'expected one of "strip", "rewrite", "block", "allow"; got "strp" (did you mean "strip"?)'
    )
    assert str(err) == f"{err.file}: policy.tracker: {err.expected}"


@pytest.mark.parametrize("key", list(POLICY_VALUES))
@pytest.mark.parametrize("raw", ['"nonsense"', "1", "true", '["strip"]', '"STRIP"', '""'])
def test_policy_rejects_bad_values_and_types(tmp_path: Path, key: str, raw: str) -> None:
    err = error(tmp_path, f"[policy]\n{key} = {raw}\n")
    assert err.key == f"policy.{key}"
    assert err.expected.startswith("expected one of ")
    assert "; got " in err.expected


def test_policy_wrong_type_is_described(tmp_path: Path) -> None:
    assert error(tmp_path, "[policy]\nimages = true\n").expected.endswith("got true (a boolean)")
    assert error(tmp_path, "[policy]\nimages = 2\n").expected.endswith("got 2 (an integer)")
    assert error(tmp_path, "[policy]\nimages = 1.5\n").expected.endswith("got 1.5 (a float)")
    assert error(tmp_path, "[policy]\nimages = []\n").expected.endswith("got an array")
    assert error(tmp_path, "[policy]\nimages = {}\n").expected.endswith("got a table")
    assert error(tmp_path, "[policy]\nimages = 2024-01-01\n").expected.endswith("got a date")


def test_policy_unknown_key_hint(tmp_path: Path) -> None:
    err = error(tmp_path, '[policy]\ntrackers = "strip"\n')
    assert err.key == "policy.trackers"
    assert 'did you mean "tracker"?' in err.expected


# --- [privacy] -----------------------------------------------------------------------------------


@pytest.mark.parametrize("dnt", ["1", "0", "unset"])
@pytest.mark.parametrize("gpc", ["true", "false"])
def test_privacy_good(tmp_path: Path, dnt: str, gpc: str) -> None:
    cfg = load(tmp_path, f'[privacy]\ndnt = "{dnt}"\ngpc = {gpc}\n')
    assert cfg.privacy.dnt == dnt
    assert cfg.privacy.gpc is (gpc == "true")


@pytest.mark.parametrize("raw", ["1", "0", "true", '"yes"', '"Unset"', '""'])
def test_privacy_dnt_bad(tmp_path: Path, raw: str) -> None:
    err = error(tmp_path, f"[privacy]\ndnt = {raw}\n")
    assert err.key == "privacy.dnt"
    assert err.expected.startswith('expected one of "1", "0", "unset"; got ')


def test_privacy_dnt_integer_gets_a_hint(tmp_path: Path) -> None:
    err = error(tmp_path, "[privacy]\ndnt = 1\n")
    assert 'write it as a string: dnt = "1"' in err.expected


@pytest.mark.parametrize("raw", ['"true"', "1", "0", '"yes"'])
def test_privacy_gpc_must_be_a_bool(tmp_path: Path, raw: str) -> None:
    err = error(tmp_path, f"[privacy]\ngpc = {raw}\n")
    assert err.key == "privacy.gpc"
    assert err.expected.startswith("expected true or false; got ")


def test_privacy_unknown_key(tmp_path: Path) -> None:
    err = error(tmp_path, '[privacy]\ndtn = "1"\n')
    assert err.key == "privacy.dtn"
    assert 'did you mean "dnt"?' in err.expected


# --- [[senders]] ---------------------------------------------------------------------------------


def test_senders_parse_in_order_lower_case(tmp_path: Path) -> None:
    cfg = load(
        tmp_path,
        '[[senders]]\nmatch = "*@News.Example.COM"\ntracker = "allow"\n'
        '[[senders]]\nmatch = " example.org "\nimages = "block"\ncontent = "allow"\n',
    )
    assert cfg.senders == (
        SenderRule(match="*@news.example.com", overrides=(("tracker", TrackerRule.ALLOW),)),
        SenderRule(
            match="example.org",
            overrides=(("images", ImageRule.BLOCK), ("content", ContentRule.ALLOW)),
        ),
    )
    assert cfg.senders[1].as_dict() == {"images": "block", "content": "allow"}


@pytest.mark.parametrize(
    "match",
    ["alice@example.com", "*@example.com", "example.com", "*.example.com", "a?c@*.example.com"],
)
def test_senders_good_patterns(tmp_path: Path, match: str) -> None:
    cfg = load(tmp_path, f'[[senders]]\nmatch = "{match}"\ntracker = "allow"\n')
    assert cfg.senders[0].match == match


@pytest.mark.parametrize(
    "raw", ['""', '"   "', '"@example.com"', '"alice@"', '"a@b@c"', '"a b@c"', '"<a@b>"', "3"]
)
def test_senders_bad_patterns(tmp_path: Path, raw: str) -> None:
    err = error(
        tmp_path,
        f'[[senders]]\nmatch = "x.org"\ntracker = "allow"\n[[senders]]\nmatch = {raw}\ntracker = "allow"\n',
    )
    assert err.key == "senders[1].match"
    assert err.expected.startswith("expected an address or domain pattern")


def test_senders_match_is_required(tmp_path: Path) -> None:
    err = error(tmp_path, '[[senders]]\ntracker = "allow"\n')
    assert err.key == "senders[0].match"
    assert "missing" in err.expected


def test_senders_need_at_least_one_rule(tmp_path: Path) -> None:
    err = error(tmp_path, '[[senders]]\nmatch = "example.com"\n')
    assert err.key == "senders[0]"
    assert "at least one of" in err.expected


def test_senders_bad_rule_value(tmp_path: Path) -> None:
    err = error(tmp_path, '[[senders]]\nmatch = "example.com"\nimages = "strip"\n')
    assert err.key == "senders[0].images"
    assert err.expected == 'expected one of "allow", "block"; got "strip"'


def test_senders_reject_non_policy_keys(tmp_path: Path) -> None:
    err = error(tmp_path, '[[senders]]\nmatch = "example.com"\ndnt = "0"\n')
    assert err.key == "senders[0].dnt"
    assert "unknown key" in err.expected


def test_senders_must_be_an_array_of_tables(tmp_path: Path) -> None:
    err = error(tmp_path, '[senders]\nmatch = "example.com"\n')
    assert err.key == "senders"
    assert "array of tables" in err.expected
    err = error(tmp_path, 'senders = ["example.com"]\n')
    assert err.key == "senders[0]"
    assert err.expected == 'expected a table; got "example.com"'


# --- [users] -------------------------------------------------------------------------------------


def test_users_flat_keys_and_own_senders(tmp_path: Path) -> None:
    cfg = load(
        tmp_path,
        '[users."Alice@Example.org"]\ntracker = "block"\ndnt = "unset"\ngpc = false\n'
        '[[users."Alice@Example.org".senders]]\nmatch = "bank.example"\nimages = "block"\n'
        '[users.bob]\nreceipts = "allow"\n',
    )
    assert [u.address for u in cfg.users] == ["alice@example.org", "bob"]
    alice = cfg.user("ALICE@example.org ")
    assert alice is not None
    assert alice.overrides == (("tracker", TrackerRule.BLOCK),)
    assert (alice.dnt, alice.gpc) == ("unset", False)
    assert alice.senders == (SenderRule(match="bank.example", overrides=(("images", "block"),)),)
    bob = cfg.user("bob")
    assert bob is not None
    assert (bob.dnt, bob.gpc, bob.senders) == (None, None, ())
    assert cfg.user("carol@example.org") is None


def test_users_error_names_the_quoted_key(tmp_path: Path) -> None:
    err = error(tmp_path, '[users."alice@example.org"]\ntracker = "strp"\n')
    assert err.key == 'users."alice@example.org".tracker'
    assert 'got "strp"' in err.expected


def test_users_policy_subtable_is_accepted(tmp_path: Path) -> None:
    cfg = load(
        tmp_path,
        '[users."alice@example.org".policy]\ntracker = "rewrite"\n'
        '[users."alice@example.org".privacy]\ndnt = "0"\n',
    )
    alice = cfg.user("alice@example.org")
    assert alice is not None
    assert alice.overrides == (("tracker", "rewrite"),)
    assert alice.dnt == "0"
    err = error(tmp_path, '[users."alice@example.org".policy]\ntracker = "strp"\n')
    assert err.key == 'users."alice@example.org".policy.tracker'
    assert err.expected.startswith('expected one of "strip", "rewrite", "block", "allow"; got "strp"')


def test_users_subtable_conflicts_with_flat_key(tmp_path: Path) -> None:
    err = error(
        tmp_path,
        '[users."a@b.c"]\ntracker = "block"\n[users."a@b.c".policy]\ntracker = "allow"\n',
    )
    assert err.key == 'users."a@b.c".policy.tracker'
    assert "only once" in err.expected
    err = error(tmp_path, '[users."a@b.c"]\ngpc = true\n[users."a@b.c".privacy]\ngpc = false\n')
    assert err.key == 'users."a@b.c".privacy.gpc'


def test_users_duplicate_after_case_folding(tmp_path: Path) -> None:
    err = error(tmp_path, '[users."a@b.c"]\ngpc = true\n[users."A@B.C"]\ngpc = false\n')
    assert err.key == 'users."A@B.C"'
    assert "once" in err.expected


@pytest.mark.parametrize("name", ['""', '"  "', '"a b@c"'])
def test_users_bad_names(tmp_path: Path, name: str) -> None:
    err = error(tmp_path, f"[users.{name}]\ngpc = true\n")
    assert err.key.startswith("users.")
    assert "address" in err.expected


def test_users_unknown_key_and_wrong_types(tmp_path: Path) -> None:
    err = error(tmp_path, '[users."a@b.c"]\nimage = "block"\n')
    assert err.key == 'users."a@b.c".image'
    assert 'did you mean "images"?' in err.expected
    err = error(tmp_path, '[users."a@b.c"]\ngpc = "false"\n')
    assert err.key == 'users."a@b.c".gpc'
    err = error(tmp_path, '[users]\n"a@b.c" = "block"\n')
    assert err.key == 'users."a@b.c"'
    assert err.expected == 'expected a table; got "block"'
    err = error(tmp_path, '[[users."a@b.c".senders]]\nmatch = ""\ntracker = "allow"\n')
    assert err.key == 'users."a@b.c".senders[0].match'


# --- [trackers] ----------------------------------------------------------------------------------


def test_trackers_paths_resolve_against_the_config_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir("/")
    cfg = load(
        tmp_path,
        '[trackers]\nadblock = ["lists/easyprivacy.txt", "/abs/list.txt",'
        ' "lists/easyprivacy.txt"]\n'
        'disconnect = ["~/services.json"]\n',
    )
    assert cfg.trackers.adblock == (tmp_path / "lists/easyprivacy.txt", Path("/abs/list.txt"))
    assert cfg.trackers.disconnect == (tmp_path / "home" / "services.json",)


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ('"list.txt"', "trackers.adblock"),
        ("[1]", "trackers.adblock[0]"),
        ('["ok.txt", ""]', "trackers.adblock[1]"),
        ('["~nosuchuser_zz9/x"]', "trackers.adblock[0]"),
    ],
)
def test_trackers_bad(tmp_path: Path, raw: str, key: str) -> None:
    err = error(tmp_path, f"[trackers]\nadblock = {raw}\n")
    assert err.key == key
    assert err.expected.startswith("expected ")


# --- [imap] --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "host", "port"),
    [
        ("localhost:1", "localhost", 1),
        ("[::1]:993", "::1", 993),
        ("Mail.Example.com:65535", "mail.example.com", 65535),
        ("0.0.0.0:143", "0.0.0.0", 143),
        ("192.0.2.7:1143", "192.0.2.7", 1143),
    ],
)
def test_imap_host_port_good(tmp_path: Path, raw: str, host: str, port: int) -> None:
    cfg = load(tmp_path, f'[imap]\nupstream = "{raw}"\n')
    assert cfg.imap.upstream == HostPort(host=host, port=port)


@pytest.mark.parametrize(
    "raw",
    [
        '"1143"',
        '"host:0"',
        '"host:65536"',
        '"::1:993"',
        '"host:+1"',
        '"host: 12"',
        '":143"',
        '"[::1]"',
        '"[1.2.3.4]:1"',
        '"999.1.1.1:1"',
        '"bad_host:1"',
        '"host:１２"',
        "1143",
        '""',
    ],
)
@pytest.mark.parametrize("key", ["listen", "upstream"])
def test_imap_host_port_bad(tmp_path: Path, raw: str, key: str) -> None:
    err = error(tmp_path, f"[imap]\n{key} = {raw}\n")
    assert err.key == f"imap.{key}"
    assert err.expected.startswith("expected ")
    assert "got " in err.expected


def test_imap_ipv6_without_brackets_gets_a_hint(tmp_path: Path) -> None:
    err = error(tmp_path, '[imap]\nupstream = "::1:993"\n')
    assert "[::1]:993" in err.expected


def test_plaintext_upstream_needs_loopback_or_explicit_permission(tmp_path: Path) -> None:
    err = error(tmp_path, '[imap]\nupstream = "mail.example.com:143"\nupstream_tls = "none"\n')
    assert err.key == "imap.upstream_tls"
    assert "mail.example.com:143" in err.expected
    assert "allow_plaintext_upstream" in err.expected
    cfg = load(
        tmp_path,
        '[imap]\nupstream = "mail.example.com:143"\nupstream_tls = "none"\nallow_plaintext_upstream = true\n',
    )
    assert cfg.imap.upstream_tls is UpstreamTls.NONE
    for loopback in ("127.0.0.2:143", "[::1]:143", "localhost:143"):
        cfg = load(tmp_path, f'[imap]\nupstream = "{loopback}"\nupstream_tls = "none"\n')
        assert cfg.imap.upstream.is_loopback


@pytest.mark.parametrize("value", ["implicit", "starttls", "none"])
def test_imap_upstream_tls_values(tmp_path: Path, value: str) -> None:
    assert load(tmp_path, f'[imap]\nupstream_tls = "{value}"\n').imap.upstream_tls == value


def test_imap_tls_cert_and_key_go_together(tmp_path: Path) -> None:
    err = error(tmp_path, '[imap]\ntls_cert = "cert.pem"\n')
    assert err.key == "imap.tls_key"
    err = error(tmp_path, '[imap]\ntls_key = "key.pem"\n')
    assert err.key == "imap.tls_cert"
    cfg = load(
        tmp_path,
        '[imap]\ntls_cert = "cert.pem"\ntls_key = "/etc/key.pem"\nclient_tls = "implicit"\n'
        'upstream_ca = "ca.pem"\n',
    )
    assert cfg.imap.tls_cert == tmp_path / "cert.pem"
    assert cfg.imap.tls_key == Path("/etc/key.pem")
    assert cfg.imap.upstream_ca == tmp_path / "ca.pem"
    assert cfg.imap.client_tls is ClientTls.IMPLICIT


@pytest.mark.parametrize(
    ("line", "key"),
    [
        ('enabled = "true"', "imap.enabled"),
        ("enabled = 1", "imap.enabled"),
        ('allow_plaintext_upstream = "yes"', "imap.allow_plaintext_upstream"),
        ('client_tls = "none"', "imap.client_tls"),
        ('upstream_tls = "tls"', "imap.upstream_tls"),
        ("upstream_ca = false", "imap.upstream_ca"),
        ('tls_cert = "   "', "imap.tls_cert"),
        ('listn = "127.0.0.1:1"', "imap.listn"),
        ("rewrite_workers = -1", "imap.rewrite_workers"),
        ('rewrite_workers = "auto"', "imap.rewrite_workers"),
        ("rewrite_workers = true", "imap.rewrite_workers"),
    ],
)
def test_imap_bad_values(tmp_path: Path, line: str, key: str) -> None:
    err = error(tmp_path, f"[imap]\n{line}\n")
    assert err.key == key


def test_rewrite_workers_reach_the_proxy_settings(tmp_path: Path) -> None:
    from mailproxy.imap import settings_from_config

    assert load(tmp_path, "").imap.rewrite_workers == 0
    cfg = load(tmp_path, '[imap]\nupstream_tls = "none"\nrewrite_workers = 3\n')
    assert settings_from_config(cfg.imap).rewrite_workers == 3


def test_warnings_for_exposed_listeners(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    load(tmp_path, '[imap]\nlisten = "0.0.0.0:1143"\n')
    assert "plaintext logins" in caplog.text
    caplog.clear()
    load(tmp_path, "")
    assert caplog.text == ""


# --- [http] --------------------------------------------------------------------------------------


def test_http_allow_networks_good(tmp_path: Path) -> None:
    cfg = load(
        tmp_path,
        '[http]\nallow_networks = ["10.0.0.0/8", "192.168.1.0/24", "fd00::/8", "127.0.0.1", '
        '"10.0.0.0/8", "100.64.0.0/10"]\nlisten = "[::1]:3128"\nenabled = false\n',
    )
    assert cfg.http.allow_networks == tuple(
        ipaddress.ip_network(n)
        for n in ("10.0.0.0/8", "192.168.1.0/24", "fd00::/8", "127.0.0.1/32", "100.64.0.0/10")
    )
    assert cfg.http.enabled is False
    assert str(cfg.http.listen) == "[::1]:3128"


@pytest.mark.parametrize(
    ("item", "fragment"),
    [
        ('"8.8.8.0/24"', "private"),
        ('"0.0.0.0/0"', "private"),
        ('"::/0"', "private"),
        ('"2001:db8::/32"', "private"),
        ('"10.0.0.1/8"', "host bits"),
        ('"nonsense"', "CIDR"),
        ("10", "CIDR"),
    ],
)
def test_http_allow_networks_bad(tmp_path: Path, item: str, fragment: str) -> None:
    err = error(tmp_path, f'[http]\nallow_networks = ["10.0.0.0/8", {item}]\n')
    assert err.key == "http.allow_networks[1]"
    assert fragment in err.expected


def test_http_bad_types(tmp_path: Path) -> None:
    assert error(tmp_path, '[http]\nallow_networks = "10.0.0.0/8"\n').key == "http.allow_networks"
    assert error(tmp_path, '[http]\nenabled = "no"\n').key == "http.enabled"
    assert error(tmp_path, '[http]\nlisten = "8080"\n').key == "http.listen"


def test_http_require_user(tmp_path: Path) -> None:
    assert Config().http.require_user is False  # opt-in: clients that cannot authenticate keep working
    cfg = load(tmp_path, "[http]\nrequire_user = true\n")
    assert cfg.http == dataclasses.replace(Config().http, require_user=True)
    err = error(tmp_path, '[http]\nrequire_user = "yes"\n')
    assert err.key == "http.require_user"


@pytest.mark.parametrize("value", ["auto", "intercept", "passthrough"])
def test_http_tls_values(tmp_path: Path, value: str) -> None:
    cfg = load(tmp_path, f'[http]\ntls = "{value}"\n')
    assert cfg.http.tls is HttpTls(value)
    assert cfg.http == dataclasses.replace(Config().http, tls=HttpTls(value))  # only that key moves


def test_http_tls_error_names_the_file_key_and_values(tmp_path: Path) -> None:
    err = error(tmp_path, '[http]\ntls = "intercep"\n')
    assert err.key == "http.tls"
    assert err.expected == (
        'expected one of "auto", "intercept", "passthrough"; got "intercep" (did you mean "intercept"?)'
    )
    assert str(err) == f"{err.file}: http.tls: {err.expected}"


@pytest.mark.parametrize("raw", ['"INTERCEPT"', '""', '"mitm"', "true", "1", '["intercept"]', "{}"])
def test_http_tls_bad_values(tmp_path: Path, raw: str) -> None:
    err = error(tmp_path, f"[http]\ntls = {raw}\n")
    assert err.key == "http.tls"
    assert err.expected.startswith('expected one of "auto", "intercept", "passthrough"; got ')


def test_http_and_imap_cannot_share_a_listen_address(tmp_path: Path) -> None:
    text = '[imap]\nlisten = "127.0.0.1:9000"\n[http]\nlisten = "127.0.0.1:9000"\n'
    err = error(tmp_path, text)
    assert err.key == "http.listen"
    cfg = load(tmp_path, text + "enabled = false\n")
    assert cfg.imap.listen == cfg.http.listen


# --- [log] ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("detail", ["aggregate", "events", "research"])
def test_log_detail_values(tmp_path: Path, detail: str) -> None:
    assert load(tmp_path, f'[log]\ndetail = "{detail}"\n').log.detail == detail


def test_log_store_forms(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = load(tmp_path, '[log]\nstore = "db/tracking.sqlite3"\n')
    assert cfg.log.store_path == tmp_path / "db/tracking.sqlite3"
    assert cfg.log.store_url is None
    assert cfg.log.store_location() == tmp_path / "db/tracking.sqlite3"
    url = "postgresql://mp:s3cret@db.internal:5432/mailproxy"
    cfg = load(tmp_path, f'[log]\nstore = "{url}"\n')
    assert (cfg.log.store_url, cfg.log.store_path) == (url, None)
    assert cfg.log.store_location() == url
    assert "s3cret" not in repr(cfg)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    cfg = load(tmp_path, '[log]\nstore = ""\n')
    assert (cfg.log.store_url, cfg.log.store_path) == (None, None)
    assert cfg.log.store_location() == tmp_path / "data" / "mailproxy" / "tracking.sqlite3"
    assert default_store_path() == cfg.log.store_location()


@pytest.mark.parametrize(
    "url",
    ["mysql://u:s3cret@h/db", "postgresql://u:s3cret@h:notaport/db", "postgresql://[s3cret/db"],
)
def test_log_store_bad_url_does_not_leak_the_password(tmp_path: Path, url: str) -> None:
    err = error(tmp_path, f'[log]\nstore = "{url}"\n')
    assert err.key == "log.store"
    assert "s3cret" not in str(err)


@pytest.mark.parametrize("raw", ["0", "-1", "true", '"30"', "1.5", "36501"])
def test_log_retention_days_bad(tmp_path: Path, raw: str) -> None:
    err = error(tmp_path, f"[log]\nretention_days = {raw}\n")
    assert err.key == "log.retention_days"
    assert err.expected.startswith("expected an integer from 1 to 36500; got ")


@pytest.mark.parametrize("days", [1, 365, 36500])
def test_log_retention_days_good(tmp_path: Path, days: int) -> None:
    assert load(tmp_path, f"[log]\nretention_days = {days}\n").log.retention_days == days


def test_log_bad_detail_and_store_type(tmp_path: Path) -> None:
    err = error(tmp_path, '[log]\ndetail = "verbose"\n')
    assert err.expected == 'expected one of "aggregate", "events", "research"; got "verbose"'
    assert error(tmp_path, "[log]\nstore = 5\n").key == "log.store"


# --- small types ---------------------------------------------------------------------------------


def test_host_port_text_and_loopback() -> None:
    assert str(HostPort(host="::1", port=993)) == "[::1]:993"
    assert str(HostPort(host="example.com", port=1)) == "example.com:1"
    assert HostPort(host="127.8.9.10", port=1).is_loopback
    assert HostPort(host="db.localhost", port=1).is_loopback
    assert not HostPort(host="localhost.example.com", port=1).is_loopback
    assert not HostPort(host="10.0.0.1", port=1).is_loopback
    assert not HostPort(host="::", port=1).is_loopback


def test_config_objects_are_frozen_and_hashable() -> None:
    cfg = load_config(None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.policy = PolicyRules()  # type: ignore[misc]
    assert hash(cfg) == hash(Config())
