"""Judgement windows and the loop's decisions (judge spec, section 7, steps 1-6)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from canary.analysis import (
    JudgementWindow,
    effective_interval,
    effective_lifetime,
    judgement_windows,
)
from canary.config import AnalysisPlan
from canary.errors import ConfigError

T0 = datetime(2024, 1, 31, 12, 0, tzinfo=UTC)
NOW = datetime(2024, 2, 1, 8, 0, tzinfo=UTC)
TH = {"pass": 90, "marginal": 75}


def m(minutes: float) -> timedelta:
    return timedelta(minutes=minutes)


def plan(**kwargs: Any) -> AnalysisPlan:
    return AnalysisPlan(**{"thresholds": TH, **kwargs})


def spans(windows: tuple[JudgementWindow, ...], origin: datetime = T0) -> list[tuple[float, float]]:
    """Experiment windows as (start, end) minutes after `origin`."""
    return [
        ((w.experiment_start - origin) / m(1), (w.experiment_end - origin) / m(1)) for w in windows
    ]


def test_growing_windows_without_end_time() -> None:
    windows = judgement_windows(plan(lifetime="60m", interval="20m"), start=T0)
    assert [w.index for w in windows] == [1, 2, 3]
    assert spans(windows) == [(0, 20), (0, 40), (0, 60)]
    assert [w.not_before for w in windows] == [T0 + m(20), T0 + m(40), T0 + m(60)]
    assert all(
        (w.control_start, w.control_end) == (w.experiment_start, w.experiment_end) for w in windows
    )
    assert all(w.step == timedelta(seconds=60) for w in windows)


def test_sliding_windows_with_lookback() -> None:
    windows = judgement_windows(plan(lifetime="60m", interval="20m", lookback="10m"), start=T0)
    assert spans(windows) == [(10, 20), (30, 40), (50, 60)]


def test_lookback_longer_than_interval_overlaps_and_is_not_clamped() -> None:
    windows = judgement_windows(plan(lifetime="30m", interval="10m", lookback="15m"), start=T0)
    assert spans(windows) == [(-5, 10), (5, 20), (15, 30)]


def test_warm_up_without_end_time_shifts_edges_and_waits() -> None:
    windows = judgement_windows(plan(lifetime="30m", interval="10m", begin_after="5m"), start=T0)
    assert spans(windows) == [(5, 15), (5, 25), (5, 35)]
    assert [w.not_before for w in windows] == [T0 + m(15), T0 + m(25), T0 + m(35)]


def test_warm_up_with_sliding_window() -> None:
    p = plan(lifetime="30m", interval="10m", begin_after="5m", lookback="10m")
    assert spans(judgement_windows(p, start=T0)) == [(5, 15), (15, 25), (25, 35)]


def test_warm_up_with_end_time_waits_but_does_not_shift() -> None:
    p = plan(end_time=T0 + m(30), interval="10m", begin_after="5m")
    windows = judgement_windows(p, start=T0)
    assert spans(windows) == [(0, 10), (0, 20), (0, 30)]
    assert {w.not_before for w in windows} == {T0 + m(5)}


def test_end_time_without_warm_up_runs_everything_at_once() -> None:
    windows = judgement_windows(plan(end_time=T0 + m(30), interval="10m"), start=T0)
    assert {w.not_before for w in windows} == {T0}


def test_control_window_moved_earlier_by_offset() -> None:
    p = plan(lifetime="20m", interval="10m", control_offset="1h", lookback="5m")
    windows = judgement_windows(p, start=T0)
    assert spans(windows) == [(5, 10), (15, 20)]
    for w in windows:
        assert w.experiment_start - w.control_start == m(60)
        assert w.experiment_end - w.control_end == m(60)
    assert windows[0].control_start == T0 - m(55)


@pytest.mark.parametrize("interval", [None, 0, "0s", "45m", "31m"])
def test_interval_none_zero_or_too_long_means_one_judgement(interval: Any) -> None:
    windows = judgement_windows(plan(lifetime="30m", interval=interval), start=T0)
    assert spans(windows) == [(0, 30)]
    assert windows[0].not_before == T0 + m(30)


def test_interval_equal_to_lifetime() -> None:
    assert spans(judgement_windows(plan(lifetime="30m", interval="30m"), start=T0)) == [(0, 30)]


def test_number_of_judgements_is_floored() -> None:
    p = plan(lifetime="50m", interval="20m")
    assert spans(judgement_windows(p, start=T0)) == [(0, 20), (0, 40)]
    assert effective_interval(p, start=T0) == m(20)


def test_our_plans_use_exact_durations() -> None:
    p = plan(end_time=T0 + timedelta(seconds=90), interval="30s", step=5)
    assert effective_lifetime(p, start=T0) == timedelta(seconds=90)
    windows = judgement_windows(p, start=T0)
    assert [w.experiment_end - T0 for w in windows] == [timedelta(seconds=s) for s in (30, 60, 90)]
    assert windows[0].step == timedelta(seconds=5)


def test_kayenta_requests_count_lifetime_in_whole_minutes() -> None:
    request = {
        "scopes": [{"startTimeIso": "2024-01-31T12:00:00Z", "endTimeIso": "2024-01-31T12:45:59Z"}],
        "thresholds": {"pass": 95, "marginal": 75},
        "analysisIntervalMins": 15,
        "beginAfterMins": 2,
        "lookbackMins": 5,
    }
    p = AnalysisPlan.from_kayenta_request(request)
    assert effective_lifetime(p, start=NOW) == m(45)
    windows = judgement_windows(p, start=NOW)
    assert spans(windows) == [(10, 15), (25, 30), (40, 45)]
    assert {w.not_before for w in windows} == {NOW + m(2)}  # the real warm-up wait, from now


def test_kayenta_request_without_end_time() -> None:
    request = {
        "scopes": [{"step": 30, "controlOffsetInMinutes": 10}],
        "thresholds": {"pass": 95, "marginal": 75},
        "lifetimeDurationMins": 60,
        "analysisIntervalMins": 30,
        "beginAfterMins": 10,
    }
    windows = judgement_windows(AnalysisPlan.from_kayenta_request(request), start=NOW)
    assert spans(windows, NOW) == [(10, 40), (10, 70)]
    assert [w.not_before for w in windows] == [NOW + m(40), NOW + m(70)]
    assert windows[1].control_end == NOW + m(60)
    assert windows[0].step == timedelta(seconds=30)


def test_less_than_a_minute_to_end_time_is_an_error_for_kayenta_requests() -> None:
    request = {
        "scopes": [{"startTimeIso": "2024-01-31T12:00:00Z", "endTimeIso": "2024-01-31T12:00:59Z"}],
        "thresholds": {"pass": 95, "marginal": 75},
    }
    with pytest.raises(ConfigError, match="counted in whole minutes"):
        judgement_windows(AnalysisPlan.from_kayenta_request(request), start=NOW)
    # The same window in our own plan is 59 seconds long and fine.
    p = plan(start_time=T0, end_time=T0 + timedelta(seconds=59))
    assert len(judgement_windows(p, start=NOW)) == 1


def test_plan_start_time_is_the_window_origin_and_now_drives_the_schedule() -> None:
    p = plan(start_time=T0, lifetime="20m", interval="10m", begin_after="1m")
    windows = judgement_windows(p, start=NOW)
    assert spans(windows) == [(1, 11), (1, 21)]
    assert [w.not_before for w in windows] == [NOW + m(11), NOW + m(21)]


def test_end_time_in_the_past_and_naive_start_are_errors() -> None:
    with pytest.raises(ConfigError, match="leaves no time after the start"):
        judgement_windows(plan(end_time=T0), start=NOW)
    with pytest.raises(ConfigError, match="time zone"):
        judgement_windows(plan(lifetime="1h"), start=datetime(2024, 1, 1))


durations = st.integers(min_value=1, max_value=24 * 60).map(m)


@given(
    lifetime=durations,
    interval=st.one_of(st.none(), durations),
    lookback=st.one_of(st.just(timedelta(0)), durations),
    begin_after=st.one_of(st.just(timedelta(0)), durations),
    offset=st.one_of(st.just(timedelta(0)), durations),
    with_end=st.booleans(),
)
def test_window_invariants(
    lifetime: timedelta,
    interval: timedelta | None,
    lookback: timedelta,
    begin_after: timedelta,
    offset: timedelta,
    with_end: bool,
) -> None:
    length = {"end_time": T0 + lifetime} if with_end else {"lifetime": lifetime}
    p = plan(
        **length,
        interval=interval,
        lookback=lookback,
        begin_after=begin_after,
        control_offset=offset,
    )
    windows = judgement_windows(p, start=T0)
    step = interval if interval and interval <= lifetime else lifetime
    assert len(windows) == lifetime // step >= 1
    shift = timedelta(0) if with_end else begin_after
    for i, w in enumerate(windows, start=1):
        assert w.index == i
        assert w.experiment_end == T0 + shift + i * step
        assert w.experiment_start == (w.experiment_end - lookback if lookback else T0 + shift)
        assert w.experiment_end - w.experiment_start == (lookback or i * step)
        assert (w.experiment_start - w.control_start, w.experiment_end - w.control_end) == (
            offset,
            offset,
        )
        assert w.experiment_end <= T0 + shift + lifetime
        assert w.not_before >= T0 + begin_after
        assert w.not_before == (T0 + begin_after if with_end else w.experiment_end)
