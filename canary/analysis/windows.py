"""Judgement windows of the multi-interval loop (judge spec, section 7); decisions are in
canary.analysis.decision.

Pure: no clock, no I/O. The caller passes `start`, the real time at which the analysis
begins (normally "now"); a plan's `start_time`, when set, replaces it as the origin of the
data windows (Kayenta: "start = startTimeIso or now"), while the real-time schedule
(`not_before`) always counts from `start`, because Kayenta's waits are real waits that begin
when the analysis does.

Lifetime: with an `end_time`, Kayenta counts whole minutes from the window origin to the end
time; that rule applies to plans read from a Kayenta request (`plan.whole_minutes`). Our own
plans use the exact duration, so a 90-second local demo is possible.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from canary.config import AnalysisPlan
from canary.errors import ConfigError

_MINUTE = timedelta(minutes=1)


@dataclass(frozen=True, slots=True)
class JudgementWindow:
    """One judgement: the data windows of both sides, and when it may run at the earliest."""

    index: int  # 1-based
    experiment_start: datetime
    experiment_end: datetime
    control_start: datetime
    control_end: datetime
    not_before: datetime
    step: timedelta


def _origin(plan: AnalysisPlan, start: datetime) -> datetime:
    if start.tzinfo is None:
        raise ConfigError("start must carry a time zone (e.g. datetime.now(timezone.utc))")
    return plan.start_time or start


def effective_lifetime(plan: AnalysisPlan, *, start: datetime) -> timedelta:
    """Step 1: the analysis length (whole minutes to end_time for Kayenta requests).

    Args:
        plan: The analysis plan.
        start: When the analysis begins (aware).

    Returns:
        The lifetime.

    Raises:
        ConfigError: The end time leaves no time after the start.
    """
    origin = _origin(plan, start)
    if plan.end_time is None:
        assert plan.lifetime is not None  # guaranteed by AnalysisPlan
        return plan.lifetime
    lifetime = plan.end_time - origin
    if plan.whole_minutes:
        lifetime = (lifetime // _MINUTE) * _MINUTE
    if lifetime <= timedelta(0):
        unit = " (counted in whole minutes)" if plan.whole_minutes else ""
        raise ConfigError(
            f"end_time {plan.end_time.isoformat()} leaves no time after the start "
            f"{origin.isoformat()}{unit}; move end_time later"
        )
    return lifetime


def effective_interval(plan: AnalysisPlan, *, start: datetime) -> timedelta:
    """Step 2: the interval; None, 0 or longer than the lifetime means the lifetime.

    Args:
        plan: The analysis plan.
        start: When the analysis begins (aware).

    Returns:
        The interval between looks.
    """
    lifetime = effective_lifetime(plan, start=start)
    interval = plan.interval
    if not interval or interval > lifetime:
        return lifetime
    return interval


def judgement_windows(plan: AnalysisPlan, *, start: datetime) -> tuple[JudgementWindow, ...]:
    """Steps 1-4: every judgement's windows, N = floor(lifetime / interval) of them.

    Without an end time each judgement waits for its interval to pass (after the warm-up)
    and both window edges are shifted later by `begin_after`; with an end time the data
    already exist, so only the warm-up wait remains and the edges are not shifted. A
    `lookback` makes sliding windows (not clamped at the origin, as in Kayenta); otherwise
    windows grow from the origin. The control window is the experiment window moved earlier
    by `control_offset`.

    Args:
        plan: The analysis plan.
        start: The real time the analysis begins (aware; normally now).

    Returns:
        Every look's window, in order.
    """
    origin = _origin(plan, start)
    lifetime = effective_lifetime(plan, start=start)
    interval = effective_interval(plan, start=start)
    count = lifetime // interval
    shift = plan.begin_after if plan.end_time is None else timedelta(0)
    windows = []
    for i in range(1, count + 1):
        end = origin + i * interval + shift
        begin = end - plan.lookback if plan.lookback else origin + shift
        if plan.end_time is None:
            not_before = start + plan.begin_after + i * interval
        else:
            not_before = start + plan.begin_after
        windows.append(
            JudgementWindow(
                index=i,
                experiment_start=begin,
                experiment_end=end,
                control_start=begin - plan.control_offset,
                control_end=end - plan.control_offset,
                not_before=not_before,
                step=plan.step,
            )
        )
    return tuple(windows)
