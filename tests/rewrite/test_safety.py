"""The safety net's own listing of what a document still loads (independent of the extractor)."""

from __future__ import annotations

import pytest

from mailproxy.errors import UncheckableError
from mailproxy.rewrite.safety import MAX_NESTING, Survivor, loading_urls


def test_svg_elements_keep_their_case_and_are_still_listed() -> None:
    # lexbor names foreign elements as written ("feImage"); the net must not miss them.
    html = (
        '<svg><filter><feImage href="https://t.example/f.png"/></filter>'
        '<image xlink:href="https://t.example/i.png"/></svg>'
    )
    assert loading_urls(html) == [
        Survivor("https://t.example/f.png", "feimage", "href"),
        Survivor("https://t.example/i.png", "image", "xlink:href"),
    ]


def test_an_element_matching_several_selectors_is_listed_once() -> None:
    html = '<img src="https://x.example/1" srcset="https://x.example/2 2x" background="https://x.example/3">'
    assert [s.url for s in loading_urls(html)] == [
        "https://x.example/1",
        "https://x.example/2",
        "https://x.example/3",
    ]


def test_css_escapes_past_unicode_do_not_stop_the_scan() -> None:
    html = "<div style=\"content: '\\110000'; background: url(https://t.example/p.gif)\">x</div>"
    assert [s.url for s in loading_urls(html)] == ["https://t.example/p.gif"]


def test_escaped_url_in_a_style_attribute_is_decoded() -> None:
    html = '<div style="background: \\75 rl(https://t.example/e.gif)">x</div>'
    assert [s.url for s in loading_urls(html)] == ["https://t.example/e.gif"]


def test_a_tag_name_is_matched_as_the_parser_spells_it() -> None:
    # The parser lower-cases ASCII only: "linK" (with the Kelvin sign) is no <link>, so its href loads
    # nothing, though str.lower() would make it "link".
    assert loading_urls('<lin\u212a href="https://t.example/k.css">') == []
    assert loading_urls('<LINK href="https://t.example/l.css">') == [
        Survivor("https://t.example/l.css", "link", "href")
    ]


def test_conditional_comments_are_read_up_to_their_first_end() -> None:
    html = (
        '<!--[if mso]><v:fill src="https://t.example/1.png"/><![endif]-->'
        '<p style="x">text</p><!-- [IF gte mso 9]><v:image src="https://t.example/2.png"/>'
        '<!--[if mso]><img src="https://t.example/3.png"><![endif]-->'
        '<img src="https://t.example/4.png">'
        '<!--[if mso]><img src="https://t.example/5.png">'
    )
    # The second comment ends at the nested one's "-->"; the last one runs to the end of the document.
    assert [s.url for s in loading_urls(html)] == [
        "https://t.example/4.png",
        "https://t.example/1.png",
        "https://t.example/2.png",
        "https://t.example/3.png",
        "https://t.example/5.png",
    ]


def test_srcset_candidates_are_split_as_browsers_split_them() -> None:
    # Commas inside a URL belong to it (image CDNs put transformations there), commas after one are
    # separators, descriptors end at a comma outside parentheses, any ASCII white space separates.
    html = (
        '<img srcset="https://cdn.example/c_fill,w_100/a.jpg?u=ab12cd 2x,'
        "https://t.example/p.gif,,\thttps://b.example/b.png\t1x (x, y),"
        'https://c.example/c.png">'
    )
    assert [s.url for s in loading_urls(html)] == [
        "https://cdn.example/c_fill,w_100/a.jpg?u=ab12cd",
        "https://t.example/p.gif",
        "https://b.example/b.png",
        "https://c.example/c.png",
    ]


def test_conditional_comments_nested_beyond_the_bound_are_refused_without_recursing() -> None:
    def nested(depth: int) -> str:
        return '<!--[if mso]><img src="https://t.example/p.gif">' * depth + "-->"

    assert len(loading_urls(nested(MAX_NESTING))) == MAX_NESTING  # one per level, each parsed
    with pytest.raises(UncheckableError):
        loading_urls(nested(MAX_NESTING + 1))
    with pytest.raises(UncheckableError):  # not a RecursionError, however deep
        loading_urls(nested(5000))
