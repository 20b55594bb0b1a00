"""The safety net's independent parse (mailproxy.rewrite.safety): what it skips must hold nothing to load."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from mailproxy.rewrite import safety

T = "https://t.example/o.gif"
_PIECES = [
    f'<v:fill type="tile" src="{T}" />',
    '<table role="presentation" width="600" cellpadding="0">',
    '<v:roundrect fillcolor="#fff" strokecolor="#000" style="height:40px" href="https://shop.example/">',
    "</td></tr></table>",
    "<!",
    f'<p style="background:url({T})">',
    '<p style="background:&#x75;rl(https://t.example/e.gif)">',
    '<p style="color:red">',
    f"<style>@import '{T}';</style>",
    "<style>p { color: red }</style>",
    f'<svg><style>a{{b:&#117;rl({T})}}</style><feImage href="{T}"/></svg>',
    f'x<link rel=stylesheet href="{T}">',
    f"<p/src={T}>",
    f'<p a="b"background={T}>',
    f'<p\tFILL="url({T})">',
    f'<meta http-equiv=refresh content="0;url={T}">',
    f"<SET to={T}>",
    f'<p style="a:\\75rl({T})">',
    f"<p style=a:image-set('{T}' 1x)>",
    "use the set of images in the link below",
    f"<p data={T} code={T}>",
    "<!--[if mso]>",
    "<![endif]-->",
    '"',
    "'",
    " ",
    "=",
]


@settings(max_examples=500, deadline=None)
@given(st.lists(st.sampled_from(_PIECES), max_size=6).map("".join))
def test_what_a_conditional_comment_is_skipped_for_loads_nothing(html: str) -> None:
    if not safety._may_load(html):
        assert safety.loading_urls(html) == []


def test_conditional_comments_with_and_without_something_to_load() -> None:
    doc = (
        "<p>x</p><!--[if mso]><table role=presentation><tr><td><![endif]-->"
        f'<!--[if gte mso 9]><v:rect><v:fill type="tile" src="{T}" /></v:rect><![endif]-->'
    )
    assert [(s.url, s.element, s.attr) for s in safety.loading_urls(doc)] == [(T, "v:fill", "src")]
