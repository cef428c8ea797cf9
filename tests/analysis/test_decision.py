"""canary.analysis.decision: the threshold rules and the stop / continue / promote decision."""

from __future__ import annotations

import math

import pytest

from canary.analysis.decision import fails_fast, final_decision, in_marginal_band
from canary.config import Thresholds


@pytest.mark.parametrize(
    ("score", "thresholds", "stop"),
    [
        (75.0, Thresholds(pass_=90, marginal=75), True),  # at marginal: stop
        (74.99, Thresholds(pass_=90, marginal=75), True),
        (75.01, Thresholds(pass_=90, marginal=75), False),
        (0.0, Thresholds(pass_=90), False),  # no marginal: never early
        (0.0, None, False),
        (math.nan, Thresholds(pass_=90, marginal=75), True),  # fail closed
    ],
)
def test_fails_fast(score: float, thresholds: Thresholds | None, stop: bool) -> None:
    assert fails_fast(score, thresholds) is stop


@pytest.mark.parametrize(
    ("score", "thresholds", "passed", "reason"),
    [
        (None, Thresholds(pass_=90, marginal=75), False, "no successful canary judgements"),
        (None, None, False, "no successful canary judgements"),
        (10.0, None, True, "no thresholds"),
        (10.0, Thresholds(), True, "no thresholds"),
        (75.0, Thresholds(pass_=90, marginal=75), False, "at or below the marginal threshold 75"),
        (80.0, Thresholds(marginal=75), True, "no pass threshold"),
        (80.0, Thresholds(pass_=90, marginal=75), False, "below the pass threshold 90"),
        (89.99, Thresholds(pass_=90), False, "below the pass threshold 90"),
        (90.0, Thresholds(pass_=90, marginal=75), True, "reaches the pass threshold 90"),
        (100.0, Thresholds(pass_=90, marginal=75), True, "reaches the pass threshold 90"),
        (math.nan, Thresholds(pass_=90, marginal=75), False, "not a number"),
    ],
)
def test_final_decision(
    score: float | None, thresholds: Thresholds | None, passed: bool, reason: str
) -> None:
    result, why = final_decision(score, thresholds)
    assert result is passed
    assert reason in why


@pytest.mark.parametrize(
    ("score", "passing", "marginal", "expected"),
    [
        (80.0, 95, 75, True),
        (75.0, 95, 75, False),  # at marginal: fails outright (Kayenta's "at or below")
        (95.0, 95, 75, False),  # at pass: passes outright
        (50.0, 95, None, True),  # no marginal threshold: everything below pass is the band
        (80.0, None, 75, False),  # no pass threshold: above marginal passes outright
        (float("nan"), 95, 75, False),
        (None, 95, 75, False),
    ],
)
def test_is_marginal_band(score, passing, marginal, expected):
    assert in_marginal_band(score, Thresholds(pass_=passing, marginal=marginal)) is expected
