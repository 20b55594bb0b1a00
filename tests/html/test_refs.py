"""Tests for mailproxy.html.refs: what extraction reports on inputs the engine tests do not reach."""

from __future__ import annotations

from mailproxy.html.refs import extract
from mailproxy.model import Vector


def test_nested_conditional_comments_neither_recurse_nor_rescan() -> None:
    # A comment inside a conditional comment runs to the end of the outer one's text, and Outlook renders
    # each level: hostile nesting must not exhaust the stack or rescan the tail once per level.
    text = "<!--[if mso]>" * 30000 + '<img src="http://t.example/o.gif">'
    [ref] = extract(text).refs
    assert ref.vector is Vector.IMG and ref.url == "http://t.example/o.gif" and ref.in_comment
    assert ref.kill_span == (len(text) - len('<img src="http://t.example/o.gif">'), len(text))
