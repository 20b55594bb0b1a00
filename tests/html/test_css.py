"""Tests for mailproxy.html.css: references with exact offsets, declarations, hiding, conditions."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from mailproxy.html import css as C
from mailproxy.html.css import (
    FORWARD_SELECTOR_HINTS,
    CssRef,
    conditional_reason,
    hiding_rules,
    is_hiding,
    parse_declarations,
    scan_declarations,
    scan_stylesheet,
)


def sliced(text: str, span: tuple[int, int] | None) -> str | None:
    return None if span is None else text[span[0] : span[1]]


def only(refs: list[CssRef]) -> CssRef:
    assert len(refs) == 1, refs
    return refs[0]


def urls(refs: list[CssRef]) -> list[str]:
    return [r.url for r in refs]


# -- url() tokens and functions ----------------------------------------------------------------------


def test_unquoted_url_token_spans_and_fields() -> None:
    text = "color:red; background:#fff url(http://t.example/o.gif?u=1) no-repeat"
    ref = only(scan_declarations(text))
    assert ref.url == "http://t.example/o.gif?u=1"
    assert ref.kind == "url"
    assert sliced(text, ref.replace_span) == "url(http://t.example/o.gif?u=1)"
    assert sliced(text, ref.url_span) == ref.url
    assert ref.quoted is False
    assert ref.property == "background"
    assert ref.conditions == ()
    assert ref.selector is None
    assert ref.remote is True


@pytest.mark.parametrize("quote", ['"', "'"])
def test_quoted_url_function(quote: str) -> None:
    text = f"background-image: url( {quote}https://a.example/x.png{quote} )"
    ref = only(scan_declarations(text))
    assert ref.url == "https://a.example/x.png"
    assert ref.quoted is True
    assert sliced(text, ref.replace_span) == f"url( {quote}https://a.example/x.png{quote} )"
    assert sliced(text, ref.url_span) == "https://a.example/x.png"


def test_whitespace_around_unquoted_url_is_not_part_of_url_span() -> None:
    text = "background:url(   http://a/b   )"
    ref = only(scan_declarations(text))
    assert ref.url == "http://a/b"
    assert sliced(text, ref.url_span) == "http://a/b"
    assert sliced(text, ref.replace_span) == "url(   http://a/b   )"


def test_spaces_inside_quoted_url_are_trimmed_like_a_browser() -> None:
    text = 'background:url("  http://a/b  ")'
    ref = only(scan_declarations(text))
    assert ref.url == "http://a/b"
    assert sliced(text, ref.url_span) == "http://a/b"


@pytest.mark.parametrize(
    "text",
    [
        "/* background:url(http://x/c) */ color:red",
        'content:"url(http://x/s)"',
        "content:'url(http://x/s)'",
        "background:#url(http://x/h)",  # a hash token swallows the name
        "background:1url(http://x/d)",  # a dimension swallows the name
        "background:-url(http://x/m)",  # "-url(" is another function
        "background:curl(http://x/c)",
        "background:url (http://x/space)",  # not a function without '('
        "background:url(http://x/a b)",  # bad url: whitespace inside
        'background:url(http://x/a"b)',  # bad url: quote inside
        'background:url("http://x/bad\nstring")',  # bad string: raw newline
        "*background:url(http://x/ie)",  # not a property name
    ],
)
def test_things_that_are_not_references(text: str) -> None:
    assert scan_declarations(text) == []
    assert scan_stylesheet(".a{" + text + "}") == []


def test_url_in_selector_or_unfinished_rule_is_not_a_reference() -> None:
    assert scan_stylesheet("a[href=url(x)] { color: red }") == []
    assert scan_stylesheet(".a url(x)") == []  # no block: no rule at all


def test_reference_after_a_bad_url_or_bad_string_is_still_found() -> None:
    text = 'a:url(x y) url(good1); b:"bad\n; c:url(good2)'
    assert urls(scan_declarations(text)) == ["good1", "good2"]


@pytest.mark.parametrize(
    ("name", "spelled"),
    [
        ("u\\72 l", "u\\72 l("),
        ("\\75 rl", "\\75 rl("),
        ("\\000075rl", "\\000075rl("),
        ("U\\52L", "U\\52L("),
        ("u\\rl", "u\\rl("),
        ("URL", "URL("),
    ],
)
def test_escaped_and_uppercase_url_names(name: str, spelled: str) -> None:
    text = f"background:{name}(http://t/e)"
    ref = only(scan_declarations(text))
    assert ref.url == "http://t/e"
    assert sliced(text, ref.replace_span) == f"{spelled}http://t/e)"
    assert sliced(text, ref.url_span) == "http://t/e"


def test_escapes_inside_the_url_are_resolved_and_disable_url_span() -> None:
    text = "background:url(http\\:\\/\\/t\\2e example/p)"
    ref = only(scan_declarations(text))
    assert ref.url == "http://t.example/p"
    assert ref.url_span is None
    assert sliced(text, ref.replace_span) == text[len("background:") :]
    quoted = 'background:url("http://t\\2e example/\\\nq")'
    ref = only(scan_declarations(quoted))
    assert ref.url == "http://t.example/q"  # an escaped newline continues a string
    assert ref.url_span is None


def test_escaped_property_name_is_resolved_and_lowercased() -> None:
    ref = only(scan_declarations("B\\61 ckground-IMAGE:url(x)"))
    assert ref.property == "background-image"


def test_nul_becomes_replacement_character() -> None:
    ref = only(scan_declarations("background:url(a\x00b)"))
    assert ref.url == "a\ufffdb"
    assert ref.url_span is None


def test_unterminated_inputs_are_closed_by_end_of_text() -> None:
    text = "background:url(http://x/eof"
    ref = only(scan_declarations(text))
    assert ref.url == "http://x/eof"
    assert ref.replace_span == (len("background:"), len(text))
    text = 'background:url("http://x/eof2'
    ref = only(scan_declarations(text))
    assert ref.url == "http://x/eof2"
    assert sliced(text, ref.url_span) == "http://x/eof2"
    assert ref.replace_span == (len("background:"), len(text))
    sheet = "@media screen { .a { background: url(http://x/open)"
    ref = only(scan_stylesheet(sheet))
    assert (ref.url, ref.selector, ref.conditions) == ("http://x/open", ".a", ("media screen",))
    assert scan_stylesheet(".a{background:url(x)} /* open comment url(y)") != []
    assert urls(scan_stylesheet(".a{background:url(x)} /* open comment url(y)")) == ["x"]


def test_fragment_data_cid_and_empty_urls_are_reported_but_not_remote() -> None:
    text = "fill:url(#grad); background:url(data:image/gif;base64,R0lG); b:url(cid:part1); c:url()"
    refs = scan_declarations(text)
    assert urls(refs) == ["#grad", "data:image/gif;base64,R0lG", "cid:part1", ""]
    assert [r.remote for r in refs] == [False, False, False, False]
    remote = scan_declarations("fill:url(https://x/g.svg#grad); b:url(//cdn/x); c:url(rel/x.png)")
    assert [r.remote for r in remote] == [True, True, True]


@pytest.mark.parametrize(
    ("prop", "value"),
    [
        ("behavior", "url(http://x/a.htc)"),
        ("-moz-binding", "url(http://x/b.xml#b)"),
        ("filter", "url(http://x/f.svg#f)"),
        ("cursor", "url(http://x/c.cur), auto"),
        ("list-style-image", "url(http://x/l.png)"),
        ("border-image-source", "url(http://x/b.png)"),
        ("mask-image", "url(http://x/m.png)"),
        ("content", "url(http://x/c.png)"),
    ],
)
def test_every_url_property_is_reported_with_its_name(prop: str, value: str) -> None:
    ref = only(scan_declarations(f"{prop}: {value}"))
    assert ref.property == prop
    assert ref.url.startswith("http://x/")


def test_urls_nested_in_other_functions() -> None:
    text = "background:-webkit-cross-fade(url(a.png), url('b.png'), 50%), linear-gradient(red, blue)"
    refs = scan_declarations(text)
    assert urls(refs) == ["a.png", "b.png"]
    assert [sliced(text, r.replace_span) for r in refs] == ["url(a.png)", "url('b.png')"]


# -- image-set ---------------------------------------------------------------------------------------


def test_image_set_bare_strings_and_urls_share_the_function_span() -> None:
    text = 'background-image: -webkit-image-set("a.png" 1x, url(b.png) 2x, url("c.png") 3x)'
    refs = scan_declarations(text)
    assert urls(refs) == ["a.png", "b.png", "c.png"]
    assert {r.kind for r in refs} == {"image-set"}
    assert [r.quoted for r in refs] == [True, False, True]
    whole = text[len("background-image: ") :]
    assert all(sliced(text, r.replace_span) == whole for r in refs)
    assert [sliced(text, r.url_span) for r in refs] == ["a.png", "b.png", "c.png"]


def test_image_set_type_strings_are_not_urls() -> None:
    text = 'background:IMAGE-SET("a.avif" type("image/avif"), "a.jpg" type("image/jpeg"))'
    assert urls(scan_declarations(text)) == ["a.avif", "a.jpg"]


def test_strings_outside_image_set_are_not_urls() -> None:
    assert scan_declarations('font-family:"image-set.png"; content:"x.png"') == []


# -- @import, @namespace, @font-face -------------------------------------------------------------------


def test_import_forms_and_rule_spans() -> None:
    sheet = '@import "a.css";\n@import url(b.css) print;@IMPORT url("c.css") screen;@\\69mport \'d.css\''
    refs = scan_stylesheet(sheet)
    assert urls(refs) == ["a.css", "b.css", "c.css", "d.css"]
    assert {r.kind for r in refs} == {"import"}
    assert [sliced(sheet, r.replace_span) for r in refs] == [
        '@import "a.css";',
        "@import url(b.css) print;",
        '@IMPORT url("c.css") screen;',
        "@\\69mport 'd.css'",
    ]
    assert [r.quoted for r in refs] == [True, False, True, True]
    assert [r.conditions for r in refs] == [(), ("media print",), ("media screen",), ()]
    assert all(r.property is None for r in refs)
    assert [sliced(sheet, r.url_span) for r in refs] == ["a.css", "b.css", "c.css", "d.css"]


def test_import_with_layer_and_supports_conditions() -> None:
    ref = only(scan_stylesheet("@import url(x.css) layer(base) supports(display: grid) print;"))
    assert ref.conditions == ("supports (display: grid)", "media print")
    assert conditional_reason(ref) == "print"


def test_import_without_a_url_first_is_not_a_reference() -> None:
    assert scan_stylesheet("@import foo;") == []
    assert scan_stylesheet("@importer url(x.css);") == []


def test_namespace_is_reported_as_not_remote() -> None:
    sheet = "@namespace svg url(http://www.w3.org/2000/svg); @namespace 'http://www.w3.org/1999/xhtml';"
    refs = scan_stylesheet(sheet)
    assert [(r.kind, r.remote) for r in refs] == [("namespace", False), ("namespace", False)]
    assert urls(refs) == ["http://www.w3.org/2000/svg", "http://www.w3.org/1999/xhtml"]


def test_font_face_src_is_kind_font_and_format_strings_are_not_urls() -> None:
    sheet = (
        "@font-face { font-family: Brand; "
        "src: local('Brand'), url(https://f.example/b.woff2) format('woff2'), url('b.woff') format('woff') }"
    )
    refs = scan_stylesheet(sheet)
    assert urls(refs) == ["https://f.example/b.woff2", "b.woff"]
    assert {(r.kind, r.property) for r in refs} == {("font", "src")}
    assert refs[0].conditions == ()


# -- conditions, selectors, nesting --------------------------------------------------------------------


def test_nested_media_and_supports_conditions_are_normalised() -> None:
    sheet = (
        "@MEDIA  ( prefers-color-scheme :  DARK ) {\n"
        "  @supports (display:grid) { #_t::before { content: url(http://t/dark) } }\n"
        "}\n"
        "@media print{#_t{background-image:url(http://t/print)}}"
    )
    dark, printed = scan_stylesheet(sheet)
    assert dark.conditions == ("media (prefers-color-scheme: dark)", "supports (display: grid)")
    assert dark.selector == "#_t::before"
    assert conditional_reason(dark) == "prefers-color-scheme"
    assert printed.conditions == ("media print",)
    assert conditional_reason(printed) == "print"


@pytest.mark.parametrize(
    ("media", "reason"),
    [
        ("print", "print"),
        ("only print", "print"),
        ("print and (orientation: landscape)", "print"),
        ("screen, print", None),
        ("not print", None),
        ("screen", None),
        ("(max-width: 600px)", None),
    ],
)
def test_print_reason_only_when_every_query_is_print(media: str, reason: str | None) -> None:
    ref = only(scan_stylesheet(f"@media {media} {{ .x {{ background: url(p) }} }}"))
    assert conditional_reason(ref) == reason


def test_page_rules_count_as_print() -> None:
    ref = only(scan_stylesheet("@page :first { background: url(p) }"))
    assert ref.conditions == ("page :first",)
    assert conditional_reason(ref) == "print"


def test_cdo_cdc_and_comments_are_stripped_from_selectors() -> None:
    sheet = "<!--\n.a /* c */ td{background:url(1)}\n-->"
    ref = only(scan_stylesheet(sheet))
    assert ref.selector == ".a td"


def test_css_nesting_composes_selectors() -> None:
    sheet = (
        ".a { .b { background: url(n1) } &:hover { background: url(n2) } color: red; a:hover { x: url(n3) } }"
    )
    refs = scan_stylesheet(sheet)
    assert [(r.url, r.selector) for r in refs] == [
        ("n1", ".a .b"),
        ("n2", ".a:hover"),
        ("n3", ".a a:hover"),
    ]


def test_style_attribute_ignores_nested_rules_and_at_rules() -> None:
    text = "color:red; .x{background:url(nested)} @import url(at.css); background:url(real)"
    assert urls(scan_declarations(text)) == ["real"]


def test_stray_closing_brace_in_attribute_does_not_hide_later_references() -> None:
    assert urls(scan_declarations("color:red} background:url(after)")) == ["after"]


def test_semicolon_inside_parentheses_does_not_end_a_declaration() -> None:
    ref = only(scan_declarations("background: foo(a; b) url(x); color: red"))
    assert ref.property == "background"


# -- forward detection -----------------------------------------------------------------------------------


def test_forward_selector_hints_are_documented_and_small() -> None:
    assert {
        "div.outlookmessageheader",
        "table.moz-email-headers-table",
        "blockquote",
    } <= FORWARD_SELECTOR_HINTS
    assert len(FORWARD_SELECTOR_HINTS) <= 8
    assert all(h == h.lower() for h in FORWARD_SELECTOR_HINTS)


@pytest.mark.parametrize(
    ("selector", "reason"),
    [
        ("div.OutlookMessageHeader", "forward"),
        (".OutlookMessageHeader ~ #_t", "forward"),
        ("table.moz-email-headers-table", "forward"),
        ("blockquote #_t", "forward"),
        ("blockquote > .x", "forward"),
        ("#MailContainerBody #_t", "forward"),
        ("blockquote", None),  # a mail styling its own quotes
        (".blockquote-wrap", None),
        ("div.OutlookMessageHeaderX", None),
        ("#_t", None),
    ],
)
def test_forward_reason(selector: str, reason: str | None) -> None:
    ref = only(scan_stylesheet(selector + "{background-image:url(http://t/f)}"))
    assert conditional_reason(ref) == reason


def test_no_reason_in_style_attributes() -> None:
    assert conditional_reason(only(scan_declarations("background:url(x)"))) is None


# -- declarations and hiding -------------------------------------------------------------------------------


def test_parse_declarations_normalises_values() -> None:
    decls = parse_declarations(
        "DISPLAY : NONE ;  width:/* c */ 0PX ; font-family: 'Helvetica  Neue' , Arial; d\\69splay: none"
    )
    assert decls == {"display": "none", "width": "0px", "font-family": '"helvetica neue" , arial'}


def test_parse_declarations_last_wins_but_important_beats_later_normal() -> None:
    assert parse_declarations("display:none; display:block") == {"display": "block"}
    assert parse_declarations("display:none !important; display:block") == {"display": "none"}
    assert parse_declarations("display:none ! IMPORTANT; display:block!important") == {"display": "block"}


def test_parse_declarations_skips_invalid_ones() -> None:
    assert parse_declarations("*zoom:1; color red; :x; width:1px; {a:b}; height:2px") == {
        "width": "1px",
        "height": "2px",
    }
    assert parse_declarations("") == {}
    assert parse_declarations("no colon at all") == {}


_STYLE_PIECES = [*"aZ-_:; \t\n!0.5%#,*<>=|\x00é\u212a()'{}", "important", "px", "--x", "/*", "*/"]
_VALUE_PIECES = ["url(x.png)", "url('a b')", 'url("q")', "url(", "image-set('a' 1x)", "\\75 rl(y)", "red"]
_VALUE_PIECES += [" ", "0", "1", "none", "!important", "/* c */", "(", ")", "{", "}", "'", ";", "px", "é"]
_VALUE_PIECES += ["@import 'i'"]
_PROPERTIES = ["background", "BACKGROUND-image", "--x", "width", "b\\61 ckground", "", "a b", "display"]
_DECLARATION = st.tuples(
    st.sampled_from(_PROPERTIES), st.lists(st.sampled_from(_VALUE_PIECES), max_size=6).map("".join)
).map(":".join)
_STYLES = st.one_of(
    st.lists(st.sampled_from(_STYLE_PIECES)).map("".join), st.lists(_DECLARATION, max_size=5).map(";".join)
)


@settings(max_examples=500, deadline=None)
@given(_STYLES)
@example("display:none;background:url(t.gif)")
@example("DISPLAY : NONE !important; display:block; width:1px; height:1px; visibility:hidden")
@example("width:0;b\\61 ckground:url('x') ; max-height:0; overflow:hidden")
def test_one_parse_gives_the_declarations_and_the_references(style: str) -> None:
    # The style attribute's declarations (plain ones without the tokenizer) and its references come from one
    # parse: the same as a parser that only wants declarations and one that only scans for references.
    decls, refs = C._parse_declarations(style)
    assert decls == C._Parser(style, want_decls=True).declaration_list(attr=True)
    assert refs == C._scan_declarations(style) == C.scan_declarations(style)
    values = parse_declarations(style)
    assert C.style_hiding(style) == (is_hiding(values), values.get("width"), values.get("height"))


def test_parse_declarations_returns_independent_dicts() -> None:
    first = parse_declarations("width:1px")
    first["width"] = "changed"
    assert parse_declarations("width:1px") == {"width": "1px"}


@pytest.mark.parametrize(
    ("style", "reasons"),
    [
        ("display:none", ("display:none",)),
        ("visibility:hidden", ("visibility:hidden",)),
        ("visibility:collapse", ("visibility:hidden",)),
        ("opacity:0", ("opacity:0",)),
        ("opacity:0.0", ("opacity:0",)),
        ("max-height:0px;overflow:hidden", ("max-height:0+overflow:hidden",)),
        ("mso-hide:all", ("mso-hide:all",)),
        ("width:0", ("width:0",)),
        ("width:0;height:0", ("width:0", "height:0", "tiny:0x0")),
        ("width:1px;height:1px", ("tiny:1x1",)),
        ("width:2px;height:1.5px", ("tiny:2x1.5",)),
        ("height:0em", ("height:0",)),
    ],
)
def test_is_hiding_reasons(style: str, reasons: tuple[str, ...]) -> None:
    assert is_hiding(parse_declarations(style)) == reasons


@pytest.mark.parametrize(
    "style",
    [
        "display:block",
        "visibility:visible",
        "opacity:0.5",
        "max-height:0",  # without overflow:hidden the content still shows
        "overflow:hidden;max-height:10px",
        "width:3px;height:1px",
        "width:1em;height:1em",
        "font-size:0;line-height:0",  # irrelevant for images
        "width:100%",
        "",
    ],
)
def test_is_hiding_false_cases(style: str) -> None:
    assert is_hiding(parse_declarations(style)) == ()


def test_is_hiding_accepts_any_mapping() -> None:
    assert is_hiding({"display": "none", "opacity": "junk", "width": "calc(1px)"}) == ("display:none",)


def test_hiding_rules_only_outside_conditional_at_rules() -> None:
    sheet = (
        ".a{display:none} .c{color:red;width:100px} #d, .e { max-height:0; overflow:hidden }"
        "@media print{.b{display:none}} @layer base{.f{width:1px;height:1px}}"
        ".g{display:none;display:block} .h{display:none!important;display:block}"
    )
    assert hiding_rules(sheet) == [
        (".a", ("display:none",)),
        ("#d, .e", ("max-height:0+overflow:hidden",)),
        (".f", ("tiny:1x1",)),
        (".h", ("display:none",)),
    ]


def test_hiding_rules_with_escapes_and_comments() -> None:
    assert hiding_rules(".x{d\\69splay:n\\6f ne} .y{opacity:/**/0}") == [
        (".x", ("display:none",)),
        (".y", ("opacity:0",)),
    ]


# Pieces of declarations that hide or almost hide (numbers around the sizes that count, escapes, comments).
_HIDING_PIECES = ["display", "visibility", "opacity", "mso-hide", "max-width", "width", "HEIGHT"]
_HIDING_PIECES += ["overflow-x", ":", ";", " ", "none", "hidden", "collapse", "clip", "all", "visible"]
_HIDING_PIECES += ["0", ".0", "-0", "1", "2.5", "3e-1", "15E-1", "1e1", "px", "em", "%", "x"]
_HIDING_PIECES += ["!important", "/**/", "\\6e one", "\\30"]


@settings(max_examples=500, deadline=None)
@given(st.lists(st.sampled_from(_HIDING_PIECES), max_size=14).map("".join))
@example("width:3e-1px;height:15e-1px")
@example("WIDTH:1E-1;Height:0E1")
def test_hiding_hints_never_miss_a_hiding_rule(decls: str) -> None:
    # Rules without a hint are skipped unparsed, and may_hide turns away text before it is parsed: neither
    # may miss a declaration list is_hiding reports.
    reasons = is_hiding(parse_declarations(decls))
    assert hiding_rules(f".x{{{decls}}}") == ([(".x", reasons)] if reasons else [])
    if reasons:
        assert C.may_hide(decls.lower())


@pytest.mark.parametrize(
    "text", ["color:red;width:600px;height:20px", "max-width:100%;border:0", "width:3em"]
)
def test_may_hide_turns_away_plain_styles(text: str) -> None:
    assert not C.may_hide(text)


# -- fast path, caching, robustness ------------------------------------------------------------------


def test_fast_path_and_at_rules_without_urls() -> None:
    assert scan_declarations("color:red;font-size:12px") == []
    assert scan_stylesheet("@media screen{.a{color:red}} @font-face{font-family:x;src:local(x)}") == []


def test_results_are_fresh_lists() -> None:
    sheet = ".a{background:url(x)}"
    first = scan_stylesheet(sheet)
    first.clear()
    assert urls(scan_stylesheet(sheet)) == ["x"]


def test_refs_are_frozen() -> None:
    ref = only(scan_declarations("background:url(x)"))
    with pytest.raises(dataclasses.FrozenInstanceError):
        ref.url = "y"  # type: ignore[misc]


def test_deep_nesting_does_not_recurse_without_bound() -> None:
    deep = "@media x{" * 300 + ".a{background:url(deep)}"
    ref = only(scan_stylesheet(deep))
    assert ref.url == "deep"
    assert urls(scan_stylesheet("{" * 100_000 + "a:url(x)")) == ["x"]
    assert urls(scan_declarations("a:" + "(" * 100_000 + "url(x)")) == ["x"]
    nested = ".a{" * 200 + "background:url(n)" + "}" * 200
    assert urls(scan_stylesheet(nested)) == ["n"]


def test_large_stylesheet_beyond_the_cache_limit() -> None:
    sheet = ".a{color:red}" * 6000 + ".b{background:url(big)}"
    assert len(sheet) > 64 * 1024
    assert urls(scan_stylesheet(sheet)) == ["big"]
    assert hiding_rules(sheet + ".c{display:none}")[-1] == (".c", ("display:none",))


def test_crlf_and_form_feed_count_as_newlines() -> None:
    text = 'background:url("a\\\r\nb"); x:url("c\rd")'
    assert urls(scan_declarations(text)) == ["ab"]


# -- property-based --------------------------------------------------------------------------------------

_CSS_ALPHABET = st.sampled_from(
    list("url(URL)\"'\\/*{}[];:,@#!.-+<>=% \t\n\r\f0123456789abcimportedianmspx_\x00é")
    + ["url(", "image-set(", "@import ", "@media ", "@font-face", "/*", "*/", "<!--", "-->", "\\75 ", "src:"]
)
_CSS_TEXT = st.lists(_CSS_ALPHABET, max_size=60).map("".join) | st.text(max_size=80)


def _check_refs(text: str, refs: list[CssRef]) -> None:
    spans = sorted({r.replace_span for r in refs})
    for start, end in spans:
        assert 0 <= start <= end <= len(text)
    for (_s1, e1), (s2, _e2) in zip(spans, spans[1:], strict=False):
        assert e1 <= s2, spans  # distinct replace spans never overlap
    for r in refs:
        assert r.kind in ("url", "image-set", "import", "font", "namespace")
        if r.url_span is not None:
            assert r.replace_span[0] <= r.url_span[0] <= r.url_span[1] <= r.replace_span[1]
            assert text[r.url_span[0] : r.url_span[1]] == r.url


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(_CSS_TEXT)
def test_fuzz_never_raises_and_spans_are_sound(text: str) -> None:
    _check_refs(text, scan_stylesheet(text))
    _check_refs(text, scan_declarations(text))
    decls = parse_declarations(text)
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in decls.items())
    is_hiding(decls)
    for selector, reasons in hiding_rules(text):
        assert isinstance(selector, str) and reasons
    for r in scan_stylesheet(text):
        assert conditional_reason(r) in (None, "print", "prefers-color-scheme", "forward")


@settings(max_examples=400)
@given(_CSS_TEXT)
def test_fast_tokenizer_agrees_with_exact_tokenizer(text: str) -> None:
    text = text.replace("\\", "")
    assert C._tokenize_plain(text) == C._tokenize_exact(text)


@settings(max_examples=400)
@given(_CSS_TEXT, st.booleans())
@example("height:100px;background:url(x)", True)  # (no hiding, but its height counts)
@example("a:url(x) (;) {}", True)  # (the ';' after the url is no end: the '{}' makes "a" a nested rule)
def test_style_shortcuts_agree_with_the_full_parse(text: str, plain: bool) -> None:
    # A style that cannot hide is only scanned for references, and its tokens stop after the last one's
    # declaration; what style_hiding and scan_declarations say must be what the full parse says.
    if plain:
        text = text.replace("\\", "")
    for css in (text, "background:url(x);" + text, text + ";background:url(x);color:red"):
        decls, refs = C._parse_declarations(css, C._HIDING_PROPS)
        values = C._cascade(decls)
        assert C._style(css) == ((is_hiding(values), values.get("width"), values.get("height")), refs)


@given(st.sampled_from(["background", "content", "src"]), st.text(alphabet="abc/:.?=&-_%~", max_size=30))
def test_url_roundtrip(prop: str, url: str) -> None:
    for text in (f"{prop}:url({url})", f'{prop}:url("{url}")'):
        ref = only(scan_declarations(text))
        assert ref.url == url
        assert sliced(text, ref.url_span) == url
