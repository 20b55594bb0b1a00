"""The tokenizer must agree with a WHATWG parser about what is a tag and what is not."""

from __future__ import annotations

import html5lib
from hypothesis import given, settings
from hypothesis import strategies as st

from mailproxy.html.tokenizer import Comment, EndTag, RawText, StartTag, attributes, tokenize


def start_tags(text: str) -> list[tuple[str, dict[str, str]]]:
    out = []
    for tok in tokenize(text):
        if isinstance(tok, StartTag):
            out.append((tok.name, {a.name: a.value for a in attributes(text, tok)}))
    return out


def html5lib_imgs(text: str) -> list[str]:
    tree = html5lib.parse(text, namespaceHTMLElements=False)
    return [el.get("src", "") for el in tree.iter("img")]


def our_imgs(text: str) -> list[str]:
    import html

    return [
        html.unescape(attrs.get("src", "")) for name, attrs in start_tags(text) if name in ("img", "image")
    ]


def test_uppercase_unquoted_and_slash_separated_attributes() -> None:
    text = "<IMG SRC=http://t.example/o WIDTH=1><img/src='a.png'/alt=x>"
    assert start_tags(text) == [
        ("img", {"src": "http://t.example/o", "width": "1"}),
        ("img", {"src": "a.png", "alt": "x"}),
    ]


def test_newlines_inside_tags_and_values() -> None:
    text = '<img\nsrc="http://a/\nb"\r\nwidth=1\n>'
    [(name, attrs)] = start_tags(text)
    assert name == "img" and attrs["src"] == "http://a/\nb" and attrs["width"] == "1"


def test_quote_only_opens_a_value_after_equals() -> None:
    # alt=a"b is an unquoted value containing a quote; the '>' after it ends the tag.
    text = '<img alt=a"b src=x><p>'
    assert start_tags(text) == [("img", {"alt": 'a"b', "src": "x"}), ("p", {})]


def test_gt_inside_quoted_value_does_not_end_the_tag() -> None:
    text = "<img title='a>b' src=c>"
    assert start_tags(text) == [("img", {"title": "a>b", "src": "c"})]


def test_duplicate_attribute_first_wins() -> None:
    assert start_tags("<img src=a src=b>") == [("img", {"src": "a"})]


def test_comments_hide_tags() -> None:
    text = "<!-- <img src=a> --><!--><img src=b><!---><img src=c><!-- x --!><img src=d>"
    assert [a["src"] for _, a in start_tags(text)] == ["b", "c", "d"]


def test_bogus_comments() -> None:
    text = "<!DOCTYPE html><?xml x?></ 1><img src=a></>"
    toks = list(tokenize(text))
    assert [type(t) for t in toks] == [Comment, Comment, Comment, StartTag]


def test_raw_text_elements_hide_tags() -> None:
    for el in ("textarea", "title", "script", "style", "xmp", "noembed", "noframes", "iframe"):
        text = f"<{el}><img src=a></{el.upper()} ><img src=b>"
        assert [a["src"] for n, a in start_tags(text) if n == "img"] == ["b"], el
        raws = [t for t in tokenize(text) if isinstance(t, RawText)]
        assert text[raws[0].start : raws[0].end] == "<img src=a>"


def test_raw_text_end_needs_a_delimiter() -> None:
    text = "<textarea></textareax><img src=a></textarea><img src=b>"
    assert [a["src"] for n, a in start_tags(text) if n == "img"] == ["b"]


def test_raw_text_ends_only_at_its_name_in_ascii_case() -> None:
    # The end tag name is compared ASCII case-insensitively: "İ" and "ſ" are not "i" and "s" there, so
    # neither a tag nor CSS escapes the raw text early (html5lib agrees).
    text = "<title>a</tİtle><img src=x></TITLE><style>b</ſtyle>.t{background:url(x)}</STYLE>"
    raws = [text[t.start : t.end] for t in tokenize(text) if isinstance(t, RawText)]
    assert raws == ["a</tİtle><img src=x>", "b</ſtyle>.t{background:url(x)}"]
    assert start_tags(text) == [("title", {}), ("style", {})]


def test_plaintext_swallows_the_rest() -> None:
    assert [n for n, _ in start_tags("<plaintext><img src=a>")] == ["plaintext"]


def test_unclosed_tag_at_eof_is_not_a_tag() -> None:
    assert start_tags('<img src="http://t.example/o') == []
    assert start_tags("<img src=x") == []


def test_end_tags_and_not_tags() -> None:
    toks = list(tokenize("a < b <3 </p><1img>"))
    assert toks == [EndTag(name="p", start=9, end=13)]


def test_offsets_are_exact() -> None:
    text = 'xx<img src="http://a/b" width=1>'
    [tag] = [t for t in tokenize(text) if isinstance(t, StartTag)]
    assert text[tag.start : tag.end] == '<img src="http://a/b" width=1>'
    src = next(a for a in attributes(text, tag) if a.name == "src")
    assert text[src.value_start : src.value_end] == "http://a/b"
    assert src.quote == '"'


def test_hostile_input_is_linear() -> None:
    # Unclosed quotes and attribute soup must not make the regexes backtrack exponentially.
    text = "<a " + 'b="' * 5000 + "<img " + "x=y " * 20000
    list(tokenize(text))


# -- differential: every <img> a WHATWG parser builds, we see, with the same src --------------------------
_frag = st.sampled_from(
    [
        "<img src=a>",
        "<IMG SRC='b'>",
        '<img\nsrc="c"\n>',
        "<img/src=d/>",
        "<!-- <img src=e> -->",
        "<!--><img src=f>",
        "<textarea><img src=g></textarea>",
        "<title><img src=h></title>",
        "<script><img src=i></script>",
        "<style><img src=j></style>",
        "<p title='<img src=k>'>",
        '<img alt=x"y src=l>',
        "text < more",
        "<div>",
        "</div>",
        "<table><tr><td><img src=m></td></tr></table>",
        "<img src=&quot;n>",
        "<img src=o&amp;p>",
        "<!DOCTYPE html>",
        "<? pi <img src=q> ?>",
        "</ <img src=r>>",
        "<image src=s>",
        "<noscript><img src=t></noscript>",
    ]
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_frag, min_size=1, max_size=12))
def test_differential_against_html5lib(frags: list[str]) -> None:
    text = "".join(frags)
    assert sorted(our_imgs(text)) == sorted(html5lib_imgs(text))


def test_unclosed_tag_swallows_the_rest_and_hostile_input_is_one_token() -> None:
    from mailproxy.html.tokenizer import UNCLOSED, scan

    toks = list(scan('<p>a</p><img src="http://t.example/o.gif><p>b</p>'))
    assert toks[-1][0] == UNCLOSED and toks[-1][2] == 8
    # Input that used to make the scanner retry at every "<" (quadratic) is now one match to the end.
    for hostile in ("<a" * 50000, '<a x="' * 30000, "</a" * 50000, "<a " + 'b="' * 50000):
        [(kind, *_)] = list(scan(hostile))
        assert kind == UNCLOSED
