"""Detection benchmark: throughput and precision/recall of ``mailproxy.engine.Engine.analyse``.

``python -m bench.detect [-n 300] [--seed 1] [--rounds 3] [--json]`` generates a labelled synthetic
corpus (``bench.corpus``), warms the analyser up on other messages, then times it over every message
once, in messages/s and MB/s of raw message bytes (MB = 10**6 bytes). Once: the analyser caches what it
learnt of URLs and styles, and a second pass over the same messages would find them there, which a
proxy (analysing each message once) never does. For scale, the same run times two plain HTML parses of
the same HTML parts (bs4 with ``html.parser`` and selectolax; best and median of ``--rounds`` rounds),
so the report shows how the whole analysis compares with parsing alone.

Detection is scored against the corpus labels, per distinct URL in each message:

- a *positive* is a labelled tracker (open pixel or tracking CSS); it is found when some finding for
  that URL has verdict TRACKER;
- a *false positive* is a TRACKER verdict on any other URL, except the labelled identifying images
  (content whose query carries the recipient's identity), which may be TRACKER or IDENTIFYING;
- *leak recall* is the share of identifying images that got any verdict other than CLEAN.
"""

from __future__ import annotations

import argparse
import contextlib
import email
import email.policy
import html
import json
import logging
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage

from bench.corpus import Labels, generate_labelled
from mailproxy.model import Finding, Verdict

logger = logging.getLogger(__name__)

__all__ = ["DetectionScore", "Report", "Timing", "extract_html", "main", "run", "score"]

Analyse = Callable[..., Sequence[Finding]]
_SEVERITY = {Verdict.CLEAN: 0, Verdict.IDENTIFYING: 1, Verdict.TRACKER: 2}


@dataclass(frozen=True, slots=True, kw_only=True)
class Timing:
    """Wall-clock rounds of one workload over the whole corpus."""

    name: str
    rounds: tuple[float, ...]  # seconds per round
    items: int  # messages (or HTML parts) per round
    nbytes: int  # bytes processed per round

    @property
    def best(self) -> float:
        return min(self.rounds)

    @property
    def median(self) -> float:
        return statistics.median(self.rounds)

    @property
    def items_per_s(self) -> float:
        return self.items / self.median if self.median > 0 else float("inf")

    @property
    def mb_per_s(self) -> float:
        return self.nbytes / 1e6 / self.median if self.median > 0 else float("inf")

    def as_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "rounds_s": list(self.rounds),
            "best_s": self.best,
            "median_s": self.median,
            "items": self.items,
            "bytes": self.nbytes,
            "items_per_s": self.items_per_s,
            "mb_per_s": self.mb_per_s,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class DetectionScore:
    trackers: int  # labelled tracker URLs (positives)
    true_positives: int
    false_positives: int
    false_negatives: int
    seen: int  # positives with any finding at all (the extractor found them)
    vendor_named: int  # true positives whose finding names the labelled vendor
    content_images: int  # labelled clean content images (negatives)
    content_flagged: int  # ... of which called TRACKER
    identifying: int  # labelled identifying content images
    identifying_caught: int  # ... of which got a verdict other than CLEAN
    per_vendor: dict[str, tuple[int, int]] = field(default_factory=dict)  # vendor -> (found, total)
    missed: tuple[str, ...] = ()  # a few missed tracker URLs, for diagnosis
    wrong: tuple[str, ...] = ()  # a few false-positive URLs, for diagnosis

    @property
    def precision(self) -> float:
        flagged = self.true_positives + self.false_positives
        return self.true_positives / flagged if flagged else 1.0

    @property
    def recall(self) -> float:
        return self.true_positives / self.trackers if self.trackers else 1.0

    @property
    def leak_recall(self) -> float:
        return self.identifying_caught / self.identifying if self.identifying else 1.0

    def as_dict(self) -> dict[str, object]:
        return {
            "trackers": self.trackers,
            "true_positives": self.true_positives,
            "false_positives": self.false_positives,
            "false_negatives": self.false_negatives,
            "precision": self.precision,
            "recall": self.recall,
            "seen": self.seen,
            "vendor_named": self.vendor_named,
            "content_images": self.content_images,
            "content_flagged": self.content_flagged,
            "identifying_images": self.identifying,
            "identifying_caught": self.identifying_caught,
            "leak_recall": self.leak_recall,
            "per_vendor": {v: {"found": f, "total": t} for v, (f, t) in self.per_vendor.items()},
            "missed_examples": list(self.missed),
            "false_positive_examples": list(self.wrong),
        }


def _norm(url: str) -> str:
    # Findings may carry the attribute value as written (entities, surrounding blanks) or decoded.
    return html.unescape(url).strip()


def _vendor_key(name: str) -> str:
    return "".join(ch for ch in name.casefold() if ch.isalnum())


def _same_vendor(found: str | None, labelled: str) -> bool:
    if not found:
        return False
    a, b = _vendor_key(found), _vendor_key(labelled)
    return bool(a) and (a in b or b in a)


def score(pairs: Iterable[tuple[Labels, Sequence[Finding]]], *, examples: int = 5) -> DetectionScore:
    """Score findings against labels (see the module docstring for the rules)."""
    tp = fp = fn = seen = named = n_pos = n_content = flagged_content = n_ident = caught = 0
    per_vendor: dict[str, list[int]] = {}
    missed: list[str] = []
    wrong: list[str] = []
    for labels, findings in pairs:
        # The most severe verdict per URL: one URL can appear through several vectors.
        verdict: dict[str, Verdict] = {}
        vendor: dict[str, str | None] = {}
        for f in findings:
            u = _norm(f.url)
            if u not in verdict or _SEVERITY[f.verdict] > _SEVERITY[verdict[u]]:
                verdict[u] = f.verdict
                vendor[u] = f.vendor
        positives: dict[str, str] = {}
        for t in labels.trackers:
            positives.setdefault(t.url, t.vendor)
        identifying = set(labels.identifying_images)
        content = set(labels.content_images) - positives.keys() - identifying
        for url, v in positives.items():
            n_pos += 1
            counts = per_vendor.setdefault(v, [0, 0])
            counts[1] += 1
            if url in verdict:
                seen += 1
            if verdict.get(url) is Verdict.TRACKER:
                tp += 1
                counts[0] += 1
                named += _same_vendor(vendor.get(url), v)
            else:
                fn += 1
                if len(missed) < examples:
                    missed.append(url)
        for url, v in verdict.items():
            if v is Verdict.TRACKER and url not in positives and url not in identifying:
                fp += 1
                if len(wrong) < examples:
                    wrong.append(url)
        n_content += len(content)
        flagged_content += sum(1 for u in content if verdict.get(u) is Verdict.TRACKER)
        n_ident += len(identifying)
        caught += sum(1 for u in identifying if verdict.get(u, Verdict.CLEAN) is not Verdict.CLEAN)
    return DetectionScore(
        trackers=n_pos,
        true_positives=tp,
        false_positives=fp,
        false_negatives=fn,
        seen=seen,
        vendor_named=named,
        content_images=n_content,
        content_flagged=flagged_content,
        identifying=n_ident,
        identifying_caught=caught,
        per_vendor={k: (v[0], v[1]) for k, v in sorted(per_vendor.items())},
        missed=tuple(missed),
        wrong=tuple(wrong),
    )


def extract_html(raw: bytes) -> list[str]:
    """The decoded text/html parts of a message (the baselines' input; not part of any timing)."""
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    out = []
    for part in msg.walk():
        if part.get_content_type() == "text/html" and isinstance(part, EmailMessage):
            try:
                out.append(part.get_content())
            except (LookupError, UnicodeError, ValueError) as e:
                logger.warning("skipping an undecodable HTML part: %s", e)
    return out


def _time(name: str, work: Callable[[], object], rounds: int, items: int, nbytes: int) -> Timing:
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        work()
        times.append(time.perf_counter() - t0)
    return Timing(name=name, rounds=tuple(times), items=items, nbytes=nbytes)


def _baselines(htmls: Sequence[str], rounds: int) -> list[Timing]:
    nbytes = sum(len(h.encode("utf-8", "surrogatepass")) for h in htmls)
    out = []
    try:
        from bs4 import BeautifulSoup
    except ImportError:
        logger.warning("bs4 is not installed: no bs4 baseline")
    else:

        def bs4_all() -> None:
            for h in htmls:
                BeautifulSoup(h, "html.parser")

        out.append(_time("bs4 html.parser", bs4_all, rounds, len(htmls), nbytes))
    try:
        # selectolax 1.0 dropped the old Modest ``HTMLParser``; lexbor is its HTML5 parser now.
        from selectolax.lexbor import LexborHTMLParser
    except ImportError:
        logger.warning("selectolax is not installed: no selectolax baseline")
    else:

        def lax_all() -> None:
            for h in htmls:
                LexborHTMLParser(h)

        out.append(_time("selectolax", lax_all, rounds, len(htmls), nbytes))
    return out


@dataclass(frozen=True, slots=True, kw_only=True)
class Report:
    messages: int
    seed: int
    html_kb: tuple[int, int]
    raw_bytes: int
    html_bytes: int | None  # None without baselines
    timings: tuple[Timing, ...]  # analyse_message first, then the baselines
    detection: DetectionScore
    errors: tuple[str, ...] = ()  # analyser exceptions, one per failing message (first 20)

    def as_dict(self) -> dict[str, object]:
        return {
            "messages": self.messages,
            "seed": self.seed,
            "html_kb": list(self.html_kb),
            "raw_bytes": self.raw_bytes,
            "html_bytes": self.html_bytes,
            "timings": [t.as_dict() for t in self.timings],
            "ratios": {
                t.name: t.median / self.timings[0].median if self.timings[0].median > 0 else None
                for t in self.timings[1:]
            },
            "detection": self.detection.as_dict(),
            "errors": list(self.errors),
        }

    def format(self) -> str:
        det = self.detection
        html_mb = f", {self.html_bytes / 1e6:.1f} MB HTML" if self.html_bytes is not None else ""
        lines = [
            f"mailproxy detection benchmark: {self.messages} messages, seed {self.seed}, "
            f"{self.raw_bytes / 1e6:.1f} MB raw{html_mb}",
            "",
            f"{'workload':<18}{'best s':>9}{'median s':>10}{'items/s':>10}{'MB/s':>9}",
        ]
        for t in self.timings:
            lines.append(
                f"{t.name:<18}{t.best:>9.3f}{t.median:>10.3f}{t.items_per_s:>10.1f}{t.mb_per_s:>9.1f}"
            )
        base = self.timings[0]
        for t in self.timings[1:]:
            ratio = t.median / base.median if base.median > 0 else float("inf")
            lines.append(f"  analyse_message is {ratio:.2f}x as fast as a {t.name} parse alone")
        lines += [
            "(analyse_message MB/s counts raw message bytes; the parsers' count decoded HTML)",
            "",
            f"trackers {det.trackers}: TP {det.true_positives}  FP {det.false_positives}  "
            f"FN {det.false_negatives}  precision {det.precision:.3f}  recall {det.recall:.3f}",
            f"  seen by the extractor {det.seen}/{det.trackers}, "
            f"vendor named {det.vendor_named}/{det.true_positives}",
            f"content images {det.content_images}: called tracker {det.content_flagged}",
            f"identifying images {det.identifying}: not called clean {det.identifying_caught} "
            f"(leak recall {det.leak_recall:.3f})",
            "recall per vendor: " + ", ".join(f"{v} {f}/{t}" for v, (f, t) in det.per_vendor.items()),
        ]
        lines += [f"  missed: {u}" for u in det.missed]
        lines += [f"  false positive: {u}" for u in det.wrong]
        if self.errors:
            lines.append(f"analyser errors ({len(self.errors)} messages):")
            lines += [f"  {e}" for e in self.errors]
        return "\n".join(lines)


def run(
    analyse: Analyse,
    *,
    n: int = 300,
    seed: int = 1,
    rounds: int = 3,
    html_kb: tuple[int, int] = (50, 150),
    baselines: bool = True,
    warmup: int = 10,
) -> Report:
    """Run the benchmark with ``analyse`` (``analyse_message``'s signature)."""
    if n < 1 or rounds < 1:
        raise ValueError(f"n and rounds must be at least 1, got n={n}, rounds={rounds}")
    pairs = generate_labelled(n, seed=seed, html_kb=html_kb)
    raws = [raw for raw, _ in pairs]
    rcpts = [(labels.recipient,) for _, labels in pairs]
    errors: dict[int, str] = {}
    results: list[Sequence[Finding]] = [() for _ in raws]

    def one(i: int) -> Sequence[Finding]:
        try:
            return analyse(raws[i], recipients=rcpts[i])
        except Exception as e:  # the benchmark reports analyser crashes, never dies of them
            if len(errors) < 20:
                errors[i] = f"message {i}: {type(e).__name__}: {e}"
            return ()

    # Warm-up on other messages: lazy imports, tracker tables and regex compilation happen outside the
    # timing, and none of the timed messages is in the caches.
    for raw, labels in generate_labelled(warmup, seed=seed + 1000, html_kb=html_kb):
        with contextlib.suppress(Exception):  # (the timed pass reports crashes)
            analyse(raw, recipients=(labels.recipient,))

    def analyse_all() -> None:
        for i in range(n):
            results[i] = one(i)

    timings = [_time("analyse_message", analyse_all, 1, n, sum(map(len, raws)))]
    html_bytes = None
    if baselines:
        htmls = [h for raw in raws for h in extract_html(raw)]
        html_bytes = sum(len(h.encode("utf-8", "surrogatepass")) for h in htmls)
        timings += _baselines(htmls, rounds)
    return Report(
        messages=n,
        seed=seed,
        html_kb=html_kb,
        raw_bytes=sum(map(len, raws)),
        html_bytes=html_bytes,
        timings=tuple(timings),
        detection=score(zip((lab for _, lab in pairs), results, strict=True)),
        errors=tuple(errors[i] for i in sorted(errors)),
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.detect", description=__doc__.splitlines()[0])
    p.add_argument("-n", type=int, default=300, help="messages (default 300)")
    p.add_argument("--seed", type=int, default=1, help="corpus seed (default 1)")
    p.add_argument("--rounds", type=int, default=3, help="timed rounds of the parsers (default 3)")
    p.add_argument(
        "--html-kb", type=int, nargs=2, default=(50, 150), metavar=("LOW", "HIGH"),
        help="HTML part size range in KiB (default 50 150)",
    )  # fmt: skip
    p.add_argument("--no-baselines", action="store_true", help="skip the bs4/selectolax parses")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    args = p.parse_args(argv)
    if args.n < 1 or args.rounds < 1:
        print("bench.detect: -n and --rounds must be at least 1", file=sys.stderr)
        return 2
    from mailproxy.engine import Engine

    analyse: Analyse = Engine().analyse
    try:
        report = run(
            analyse,
            n=args.n,
            seed=args.seed,
            rounds=args.rounds,
            html_kb=(args.html_kb[0], args.html_kb[1]),
            baselines=not args.no_baselines,
        )
    except ValueError as e:
        print(f"bench.detect: {e}", file=sys.stderr)
        return 2
    print(json.dumps(report.as_dict(), indent=2) if args.json else report.format())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
