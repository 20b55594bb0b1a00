"""Tests for mailproxy.html.refs: what extraction reports on inputs the engine tests do not reach."""

from __future__ import annotations

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from mailproxy.html import css
from mailproxy.html.refs import extract, unescape_attr
from mailproxy.model import Vector


def test_nested_conditional_comments_neither_recurse_nor_rescan() -> None:
    # A comment inside a conditional comment runs to the end of the outer one's text, and Outlook renders
    # each level: hostile nesting must not exhaust the stack or rescan the tail once per level.
    text = "<!--[if mso]>" * 30000 + '<img src="http://t.example/o.gif">'
    [ref] = extract(text).refs
    assert ref.vector is Vector.IMG and ref.url == "http://t.example/o.gif" and ref.in_comment
    assert ref.kill_span == (len(text) - len('<img src="http://t.example/o.gif">'), len(text))


def test_groups_partition_references_by_element_and_picture() -> None:
    # Groups are compared for equality only: an element's references share one, a <picture>'s sources and
    # image share one (not the <picture>'s own), and no two elements share one, inside or outside a
    # conditional comment, whatever the tags in between.
    text = (
        "<style>p{background:url(s1)} q{background:url(s2)}</style>"
        '<picture style="background:url(p)"><source srcset="c 1x, d 2x"><img src="i" srcset="j">'
        "</picture><a href=url><img src=k srcset=l><td background=m>"
        '<!--[if mso]><v:fill src="n"><img src=o><![endif]-->'
    )
    refs = extract(text).refs
    partition = sorted(sorted(r.url for r in refs if r.group == g) for g in {r.group for r in refs})
    expected = [["c", "d", "i", "j"], ["k", "l"], ["m"], ["n"], ["o"], ["p"], ["s1", "s2"]]
    assert partition == expected


# -- hidden ancestors --------------------------------------------------------------------------------------
PIXEL = '<img src="https://t.example/p.gif">'


def hidden_by(ancestor: str) -> tuple[str, ...]:
    """The hiding reasons of an image without attributes of its own, under ``ancestor`` and a plain <p>."""
    refs = extract(f"{ancestor}<p>{PIXEL}</p>").refs
    assert refs[-1].url == "https://t.example/p.gif"
    return refs[-1].hidden


@pytest.mark.parametrize(
    ("style", "reason"),
    [
        ("visibility:collapse", "visibility:hidden"),
        ("VISIBILITY: Collapse", "visibility:hidden"),
        ("width:.0px", "width:0"),
        ("height:-0", "height:0"),
        ("width:+0em", "width:0"),
        ("height:/* x */0", "height:0"),
        ("width:1px;height:1px", "tiny:1x1"),
        ("width:3e-1px;height:.5px", "tiny:0.3x0.5"),
        ("width&colon;0", "width:0"),  # a named character reference spells the colon
        ("width:&period;0", "width:0"),
    ],
)
def test_every_hiding_style_is_inherited(style: str, reason: str) -> None:
    # The cheap test that decides whether an ancestor's attributes are parsed at all must let through every
    # style that hides, as the element's own style does.
    assert hidden_by(f'<div style="{style}">') == (reason,)
    assert reason in extract(f'<img style="{style}" src="https://t.example/p.gif">').refs[0].hidden


@pytest.mark.parametrize(
    "ancestor",
    [
        '<div style="visibility:visible;width:600px;height:20px">',
        '<td style="width:100%;height:200px;border:0">',
        '<a href="https://shop.example/?a=1&b=2" style="width:10px">',
        '<div class="collapse-me">',  # hint words in other attributes alone do not hide
    ],
)
def test_visible_ancestors_do_not_hide(ancestor: str) -> None:
    assert hidden_by(ancestor) == ()


# Pieces of style attributes that hide or almost hide (numbers around the sizes that count, escapes, comments,
# character references).
_HIDING_PIECES = ["display", "visibility", "opacity", "mso-hide", "max-height", "width", "HEIGHT"]
_HIDING_PIECES += ["overflow", ":", ";", " ", "none", "hidden", "collapse", "clip", "all", "visible"]
_HIDING_PIECES += ["0", ".0", "-0", "1", "2.5", "3e-1", "15E-1", "px", "em", "%", "x"]
_HIDING_PIECES += ["!important", "/**/", "\\6e one", "&colon;", "&#48;", "&period;", "&amp;"]


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(_HIDING_PIECES), max_size=14).map("".join))
@example("visibility:collapse")
@example("width:1px;height:1px")
@example("width:&#48;")
def test_an_ancestor_hides_exactly_when_its_own_style_would(style: str) -> None:
    own = css.style_hiding(unescape_attr(style))[0]
    assert hidden_by(f'<div style="{style}">') == own
    assert hidden_by(f'<section><div style="{style}"><span>') == own


def test_hiding_reasons_stay_bounded_on_hostile_input() -> None:
    # Every level of a hidden subtree, and every class of a hostile list, would add reasons of its own: the
    # reasons of the outermost hidden element (and of one matching rule) say why, and keep the walk linear.
    deep = '<div style="display:none">' * 30000 + PIXEL
    assert extract(deep).refs[0].hidden == ("display:none",)
    loading = '<div style="display:none;background:url(https://t.example/b.png)">' * 20000
    assert {r.hidden for r in extract(loading).refs} == {("display:none",), ("display:none", "display:none")}
    classes = " ".join(f"c{i}" for i in range(20000))
    sheet = "<style>" + "".join(f".c{i}{{display:none}}" for i in range(20000)) + "</style>"
    refs = extract(f'{sheet}<div class="{classes}">' + PIXEL * 20000).refs
    assert {r.hidden for r in refs} == {("display:none (.c0)",)}


# -- stylesheet rules on ancestors -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("sheet", "ancestors", "reason"),
    [
        ("div{display:none}", "<div{bg}>", "display:none (div)"),
        ("TD { visibility: hidden }", "<table><tr><TD{bg}>", "visibility:hidden (td)"),
        ("span{mso-hide:all}", '<span title="x"{bg}>', "mso-hide:all (span)"),
        (".hidden{display:none}", '<div class="hidden"{bg}>', "display:none (.hidden)"),
        (".x{opacity:0}", '<div class="a x"{bg}>', "opacity:0 (.x)"),
        ("#x{display:none}", '<div id="x"{bg}>', "display:none (#x)"),
        (
            "table.pre{max-height:0;overflow:hidden}",
            '<table class="pre"{bg}><tr><td>',
            "max-height:0+overflow:hidden (table.pre)",
        ),
        ("@layer base{section{display:none}}", "<section{bg}>", "display:none (section)"),
    ],
)
def test_hiding_rules_apply_to_ancestors(sheet: str, ancestors: str, reason: str) -> None:
    # Elements inside the one a rule matches are hidden by it, as the element itself is ({bg} marks it).
    assert hidden_by(f"<style>{sheet}</style>" + ancestors.format(bg="")) == (reason,)
    [ref] = extract(
        f"<style>{sheet}</style>" + ancestors.format(bg=' background="https://t.example/b.png"')
    ).refs
    assert ref.hidden == (reason,)


@pytest.mark.parametrize(
    ("sheet", "ancestor"),
    [
        ("span{display:none}", "<div>"),  # another element
        (".other{display:none}", '<div class="hidden">'),
        ("div.x{display:none}", '<section class="x">'),
        ("#y{display:none}", '<div id="x" class="y">'),
        ("div span{display:none}", "<div>"),  # a descendant selector is not matched
        ("div{display:block;visibility:visible}", "<div>"),
        ("@media print{div{display:none}}", "<div>"),  # conditional rules do not hide
        ("@media screen and (max-width:600px){.x{display:none}}", '<div class="x">'),
    ],
)
def test_rules_that_do_not_hide_an_ancestor(sheet: str, ancestor: str) -> None:
    assert hidden_by(f"<style>{sheet}</style>{ancestor}") == ()


def test_hiding_rules_on_deep_nesting_stay_linear() -> None:
    deep = "<style>div{display:none}</style>" + "<div>" * 40000 + PIXEL
    assert extract(deep).refs[0].hidden == ("display:none (div)",)


def test_a_style_block_hides_the_elements_before_it_too() -> None:
    # CSS applies to the whole document: a rule after the image hides it as one before it would.
    late = extract('<p><img class="px" src="https://a.example/i.png"></p><style>.px{display:none}</style>')
    early = extract('<style>.px{display:none}</style><p><img class="px" src="https://a.example/i.png"></p>')
    assert [r.hidden for r in late.refs] == [r.hidden for r in early.refs] == [("display:none (.px)",)]
    other = extract('<p><img class="logo" src="https://a.example/i.png"></p><style>.px{display:none}</style>')
    assert [r.hidden for r in other.refs] == [()]
