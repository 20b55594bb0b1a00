"""The rewriting benchmark runs and reports every row (its figures are not judged here: speed is
measured by running it, never in a test)."""

from __future__ import annotations

import json

import pytest

from bench import rewrite


def test_reports_every_row_with_mailproxy_as_the_unit(capsys: pytest.CaptureFixture[str]) -> None:
    assert rewrite.main(["-n", "2", "--rounds", "1", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in rows] == [
        "mailproxy rewrite",
        "mailproxy, same message again",
        "bs4 html.parser round trip",
        "lxml parse + serialize",
        "selectolax (lexbor) parse",
        "its C parts alone",
        "bytes copy",
    ]
    assert rows[0]["ratio"] == 1.0
    assert all(r["mb_per_s"] > 0 and r["ms_per_msg"] > 0 for r in rows)
