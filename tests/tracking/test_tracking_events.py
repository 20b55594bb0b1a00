"""Events of one message's findings: findings met again in the message (an image in src and srcset,
every image with the same campaign query) give the events each gives alone."""

from __future__ import annotations

import dataclasses
from typing import Any, cast

import pytest
from tracking_support import READER, SENDER_DOMAIN, sample_findings

from mailproxy.config import LogDetail
from mailproxy.model import Finding, Vector
from mailproxy.tracking.events import TrackingEvent, UserHasher, acted_on, events_from_findings

HASHER = UserHasher(b"k" * 32)


def events(findings: list[Finding], detail: LogDetail) -> list[TrackingEvent]:
    return events_from_findings(
        findings,
        channel="imap",
        sender_domain=SENDER_DOMAIN,
        user=READER,
        detail=detail,
        hasher=HASHER,
        now=1_700_000_000,
        recipients=(READER,),
    )


@pytest.mark.parametrize("detail", list(LogDetail))
def test_findings_met_again_give_the_events_they_give_alone(detail: LogDetail) -> None:
    acted = [f for fs in sample_findings() for f in fs if acted_on(f)]
    # Each finding again, under another vector, under another URL with the same query, with other
    # reasons: all that an event is made of.
    findings = [
        variant
        for f in acted
        for variant in (
            f,
            dataclasses.replace(f, vector=Vector.SRCSET),
            f,
            dataclasses.replace(f, url=f.url.replace("/", "/x", 3)),
            dataclasses.replace(f, reasons=(*f.reasons, "hidden:tiny:1x1")),
            dataclasses.replace(f, vendor="Other"),
        )
    ]
    together = events(findings, detail)
    assert together == [e for f in findings for e in events([f], detail)]
    assert len(together) == len(findings)


def test_a_finding_with_an_unhashable_field_still_gives_its_event() -> None:
    f = next(f for fs in sample_findings() for f in fs if acted_on(f))
    odd = dataclasses.replace(f, vendor=cast(Any, ["list"]), vector=cast(Any, ["img"]))
    got = events([odd, odd, f], LogDetail.RESEARCH)
    assert len(got) == 3 and got[0] == got[1] and got[0].vendor == "" and got[0].vector == "['img']"
