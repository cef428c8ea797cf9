"""The notification's line, as pure text: answer first, durations as a clock, a link or
"no report", never "nan" or "inf"."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest

from canary.values import messages

HEADLINE = ("rolled back: latency-p50 +215% (canary 112 ms vs baseline 35 ms, 99.5% "
            "confidence), critical")  # fmt: skip


def test_a_rolled_back_release_says_who_what_why_how_long_and_where() -> None:
    line = messages.ended(app="goldengoose", version="3.0.0", commit="4b2b528" + "0" * 33,
                          headline=HEADLINE, seconds=46.2,
                          report="http://ui/artifacts/artifact/1", run="http://ui/runs/1")  # fmt: skip
    assert line == (f"goldengoose 3.0.0 (4b2b528) {HEADLINE} · 0:46 · report "
                    "http://ui/artifacts/artifact/1")  # fmt: skip


@pytest.mark.parametrize(("seconds", "text"), [
    (0, "0:00"), (46.4, "0:46"), (59.6, "1:00"), (725, "12:05"), (3723, "1:02:03"),
    (None, None), (math.nan, None), (math.inf, None), (-1, None),
])
def test_durations_read_like_a_clock_and_unknown_ones_are_left_out(seconds: float | None,
                                                                   text: str | None) -> None:  # fmt: skip
    assert messages.duration_text(seconds) == text
    line = messages.ended(app="a", version=None, commit=None, headline="promoted: ok",
                          seconds=seconds, report=None, run=None)  # fmt: skip
    assert line == " · ".join(p for p in ("a promoted: ok", text, "no report") if p)


def test_the_link_is_the_report_else_the_run_else_no_report() -> None:
    assert messages.link_text("http://r", "http://u") == "report http://r"
    assert messages.link_text("", "http://u") == "run http://u"
    assert messages.link_text(None, None) == "no report"


def test_no_nan_or_inf_reaches_a_message_and_words_containing_them_survive() -> None:
    line = messages.ended(app="a", version="1", commit="c" * 40, seconds=math.nan,
                          headline="rolled back: rate ratio nan, upper bound inf, -Infinity; "
                                   "financial infrastructure", report=None, run=None)  # fmt: skip
    assert "nan" not in line.lower().replace("financial", "") and "inf " not in line
    assert "rate ratio not a number" in line and "upper bound unbounded" in line
    assert "financial infrastructure" in line


def test_a_long_reason_is_one_capped_line() -> None:
    reason = "step compile failed:\n" + "error: x\n" * 400
    line = messages.build_failed(app="gg", commit="abcdef1234", reason=reason, seconds=12,
                                 run="http://ui/runs/9")  # fmt: skip
    assert "\n" not in line and len(line) <= messages.LIMIT
    assert line.startswith("gg (abcdef1) build failed: step compile failed: error: x")
    assert line.endswith("· 0:12 · run http://ui/runs/9") and "…" in line


def test_a_restore_and_a_stuck_release_say_so() -> None:
    assert messages.restored(app="gg", image="img:2", previous="img:3", by="by hand",
                             run=None) == (  # fmt: skip
        "gg production restored by hand (manual, no analysis): now img:2, was img:3 · no report")
    started = datetime(2026, 1, 1, 13, 0, 5, tzinfo=UTC) + timedelta(hours=1)
    assert messages.stuck(app="gg", version=None, commit="f" * 40, started=started,
                          lifetime_seconds=120, run="http://ui/runs/2") == (  # fmt: skip
        "gg (fffffff) stuck: no end since it started at 14:00:05 UTC (lifetime 2:00) · "
        "run http://ui/runs/2")


def test_seconds_from_a_push_time_or_a_start() -> None:
    end = datetime(2026, 1, 1, 12, 1, 0, tzinfo=UTC)
    assert messages.seconds_between("2026-01-01T12:00:00Z", end) == 60
    assert messages.seconds_between(datetime(2026, 1, 1, 12, 0, 30), end) == 30  # naive: UTC
    assert messages.seconds_between("yesterday", end) is None
    assert messages.seconds_between(None, end) is None
