"""The deployment guide stays true to the code: its TOML loads, its keys and commands exist."""

from __future__ import annotations

import argparse
import re
import shlex
from pathlib import Path

import pytest

from mailproxy.cli import parser
from mailproxy.config import load_config
from mailproxy.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
GUIDE = ROOT / "docs" / "deployment.md"


def fenced(text: str, lang: str) -> list[str]:
    return re.findall(rf"^```{lang}\n(.*?)^```$", text, re.MULTILINE | re.DOTALL)


def toml_blocks() -> list[tuple[str, str]]:
    blocks = [(f"{GUIDE.name} block {i}", b) for i, b in enumerate(fenced(GUIDE.read_text(), "toml"))]
    return [*blocks, ("config.example.toml", (ROOT / "config.example.toml").read_text())]


@pytest.mark.parametrize(("name", "block"), toml_blocks(), ids=[n for n, _ in toml_blocks()])
def test_toml_block_loads(tmp_path: Path, name: str, block: str) -> None:
    # load_config resolves the paths it names but opens none of them (the proxies do, at start),
    # so the guide's /etc/mailproxy/... paths need not exist here.
    path = tmp_path / "mailproxy.toml"
    path.write_text(block, encoding="utf-8")
    load_config(path)


def test_guide_has_a_full_example() -> None:
    # The guide's example is the org config: guards against the block silently losing its tables.
    assert any("[imap]" in b and "[http]" in b and "[log]" in b for _, b in toml_blocks()[:-1])


def prose_keys() -> list[tuple[str, str]]:
    """Every "[section] key" the guide names in backquotes."""
    return sorted(set(re.findall(r"`\[(\w+)\] (\w+)", GUIDE.read_text())))


@pytest.mark.parametrize(("section", "key"), prose_keys())
def test_prose_key_exists(tmp_path: Path, section: str, key: str) -> None:
    # A table is the wrong type for every leaf key: the loader must complain about the value, which
    # it does only after accepting the key (check_keys runs first).
    path = tmp_path / "mailproxy.toml"
    path.write_text(f"[{section}]\n{key} = {{}}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert "unknown key" not in str(info.value)


def subparsers(p: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in p._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_named_commands_exist() -> None:
    text = GUIDE.read_text()
    code = fenced(text, "sh") + fenced(text, "ini")  # the command blocks; not the diagram
    code += re.findall(r"`([^`\n]+)`", re.sub(r"^```.*?^```$", "", text, flags=re.MULTILINE | re.DOTALL))
    commands = subparsers(parser())
    named = re.findall(r"(?:^|\s|bin/)mailproxy (?:-v+ )?([a-z][a-z-]*)(?: ([a-z]+))?", "\n".join(code))
    assert named
    for command, action in named:
        assert command in commands, f"mailproxy {command}"
        if command == "data":
            assert action in subparsers(commands["data"]), f"mailproxy data {action}"


def command_lines() -> list[str]:
    """The guide's mailproxy invocations that are whole command lines: shell and unit blocks."""
    lines = []
    for block in fenced(GUIDE.read_text(), "sh") + fenced(GUIDE.read_text(), "ini"):
        for line in block.splitlines():
            if "bin/mailproxy" not in line or line.startswith("#"):
                continue
            words = shlex.split(line.removeprefix("ExecStart=").removeprefix("ExecStartPre="))
            at = next((i for i, w in enumerate(words) if w.endswith("bin/mailproxy")), None)
            if at is not None:
                lines.append(shlex.join(words[at + 1 :]))
    return lines


@pytest.mark.parametrize("line", command_lines())
def test_command_line_parses(line: str) -> None:
    try:
        parser().parse_args(shlex.split(line))
    except SystemExit as exc:  # argparse reports a bad flag or command this way
        pytest.fail(f"mailproxy {line}: exit {exc.code}")


def test_guide_has_command_lines() -> None:
    assert len(command_lines()) >= 5
