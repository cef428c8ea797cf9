"""A re-analysis' verdict: no data is its own outcome, never a regression."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from canary.analysis.look import Observation
from canary.analysis.reanalysis import Verification, missing_data, verify
from canary.analysis.windows import JudgementWindow
from canary.config import Thresholds
from canary.values.counts import CountsPair, RatioCounts

END = datetime(2026, 1, 1, 12, tzinfo=UTC)
WINDOW = JudgementWindow(index=1, experiment_start=END - timedelta(minutes=5), experiment_end=END,
                         control_start=END - timedelta(minutes=65), control_end=END - timedelta(hours=1),
                         not_before=END, step=timedelta(seconds=15))  # fmt: skip
THRESHOLDS = Thresholds(**{"pass": 95, "marginal": 75})


def _errors(control: float, experiment: float) -> CountsPair:
    return CountsPair("errors", RatioCounts(0.0, control), RatioCounts(0.0, experiment))


def test_zero_requests_is_no_data_whatever_the_score() -> None:
    quiet = Observation(WINDOW, counts=(_errors(0, 0),), requests=(0.0, 0.0))
    for score in (0.0, None, float("nan"), 100.0):
        outcome, reason = verify(quiet, score, THRESHOLDS)
        assert outcome is Verification.NO_DATA and outcome.value == "no data", (score, reason)
        assert "no requests in the control and experiment window" in reason, reason


def test_one_side_without_requests_is_no_data() -> None:
    outcome, reason = verify(Observation(WINDOW, requests=(1200.0, 0.0)), 0.0, THRESHOLDS)
    assert outcome is Verification.NO_DATA and "experiment window" in reason and "control" not in reason.split("(")[0]


def test_without_a_request_counter_the_metrics_must_have_data() -> None:
    assert missing_data(Observation(WINDOW, counts=(_errors(0, 0),))) is not None
    assert missing_data(Observation(WINDOW, counts=(_errors(500, 0),))) is not None
    assert missing_data(Observation(WINDOW, counts=(_errors(500, 400),))) is None


def test_with_data_the_score_decides() -> None:
    busy = Observation(WINDOW, counts=(_errors(500, 400),), requests=(500.0, 400.0))
    assert verify(busy, 100.0, THRESHOLDS)[0] is Verification.VERIFIED
    outcome, reason = verify(busy, 10.0, THRESHOLDS)
    assert outcome is Verification.REGRESSED and "marginal threshold 75" in reason
