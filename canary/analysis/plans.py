"""What a plan is: the look schedule, one count metric's plan, a release's plans, and the
production counts plans are made from (canary.analysis.planning makes them)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from canary.analysis.windows import effective_interval
from canary.config import AnalysisPlan
from canary.errors import ConfigError
from canary.judge.count_metrics import DEFAULT_ALPHA, DEFAULT_TOLERANCE

__all__ = ["POWER", "HistogramLike", "LookSchedule", "MetricPlan", "ProductionCounts", "RatioLike", "ReleasePlan"]

POWER = 0.9
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class RatioLike(Protocol):
    """Production's events among its requests (canary.values.counts.RatioCounts fits)."""

    @property
    def events(self) -> float:
        """Requests that count as events (errors)."""
        ...

    @property
    def total(self) -> float:
        """All requests."""
        ...


class HistogramLike(Protocol):
    """Production's cumulative `le` buckets (canary.values.counts.HistogramCounts fits)."""

    @property
    def upper_bounds(self) -> Sequence[float]:
        """The bucket bounds, the last +Inf."""
        ...

    @property
    def buckets(self) -> Sequence[float]:
        """Cumulative counts per bound (empty: no series)."""
        ...


#: One count metric's production counts over the planning window.
ProductionCounts = RatioLike | HistogramLike


@dataclass(frozen=True, slots=True)
class LookSchedule:
    """When the judge looks and at which share: look i judges the counts of i intervals,
    the i-th served at `shares[i - 1]` percent per track (the last share holds after)."""

    shares: tuple[float, ...]
    interval: float  # seconds between looks
    looks: int  # looks within the lifetime
    lifetime: float  # seconds, after the warm-up
    begin_after: float = 0.0

    def __post_init__(self) -> None:
        if not self.shares or any(not 0 < s <= 50 for s in self.shares):
            raise ConfigError(f"traffic shares must be 1..50 percent per track, got {self.shares}")
        if not self.interval > 0 or self.looks < 1 or not self.lifetime > 0 or self.begin_after < 0:
            raise ConfigError(
                f"a schedule needs interval > 0, looks >= 1, lifetime > 0 and begin_after >= 0, "
                f"got interval {self.interval}, looks {self.looks}, lifetime {self.lifetime}, "
                f"begin_after {self.begin_after}"
            )

    @classmethod
    def from_plan(cls, analysis: AnalysisPlan, steps: Sequence[int]) -> LookSchedule:
        """A release's schedule: `spec.analysis` and `spec.traffic.steps`."""
        if analysis.lifetime is None or analysis.end_time is not None:
            raise ConfigError("planning needs analysis.lifetime (a live release), not an end_time")
        interval = effective_interval(analysis, start=_EPOCH)
        return cls(tuple(float(s) for s in steps), interval.total_seconds(),
                   int(analysis.lifetime // interval), analysis.lifetime.total_seconds(),
                   analysis.begin_after.total_seconds())  # fmt: skip

    def share(self, look: int) -> float:
        """The percent per track served during look `look` (1 = the first)."""
        return self.shares[min(look, len(self.shares)) - 1]

    def at(self, looks: int) -> float:
        """Seconds from the release's start to look `looks`."""
        return self.begin_after + looks * self.interval


@dataclass(frozen=True, slots=True)
class MetricPlan:
    """One count metric's plan. `status` is "planned", or why there is none ("missing",
    "no-traffic", "no-events"; `reason` says it in words).

    `detection[k]` is the chance that the judge has proven the regression by look k + 1,
    `requests[k]` the expected requests per track by then; both run past the lifetime until
    the chance reaches `power` or `max_looks`. `aa_safe[k]` is the chance that a canary no
    worse than production is decided within tolerance by look k + 1 (within the lifetime),
    `aa_false_alarm` that it is wrongly caught within the lifetime.
    """

    name: str
    kind: str
    status: str
    reason: str
    schedule: LookSchedule
    direction: str = "increase"
    alpha: float = DEFAULT_ALPHA
    tolerance: float = DEFAULT_TOLERANCE
    min_effect: float = 0.0
    unit: str = ""
    request_rate: float = 0.0
    baseline: float | None = None  # error rate, or production's p90
    canary: float | None = None  # the same for a canary worse by min_effect
    quantiles: tuple[tuple[float, float], ...] = ()  # (q, production's value), histograms
    power: float = POWER
    detection: tuple[float, ...] = ()
    requests: tuple[float, ...] = ()
    looks_needed: int | None = None
    aa_safe: tuple[float, ...] = ()
    aa_false_alarm: float | None = None
    simulations: int = 0
    warnings: tuple[str, ...] = ()
    #: histograms: what the tolerance bounds ("quantile" or "share"); ratios: the safe rate
    tolerance_on: str = "quantile"
    safe_rate: float | None = None

    @property
    def safe_looks_needed(self) -> int | None:
        """The first look by which a canary no worse than production is decided within
        tolerance (promoted early) with probability `power`; None: not within the lifetime."""
        return next((k + 1 for k, p in enumerate(self.aa_safe) if p >= self.power), None)

    @property
    def planned(self) -> bool:
        """True when the metric has a plan (status "planned")."""
        return self.status == "planned"

    @property
    def lifetime_detection(self) -> float | None:
        """The chance of catching the regression within the lifetime (None: not simulated)."""
        looks = self.schedule.looks
        return self.detection[looks - 1] if len(self.detection) >= looks else None

    @property
    def lifetime_suffices(self) -> bool | None:
        """Whether the lifetime catches the regression with probability `power` (None: no plan)."""
        if not self.planned:
            return None
        return self.looks_needed is not None and self.looks_needed <= self.schedule.looks

    @property
    def seconds_needed(self) -> float | None:
        """Seconds from the release's start to the look needed (None: not within max_looks)."""
        return None if self.looks_needed is None else self.schedule.at(self.looks_needed)

    def to_dict(self) -> dict[str, object]:
        """The plan and what follows from it, JSON-ready (non-finite numbers as None)."""
        out: dict[str, object] = asdict(self)
        out.update(planned=self.planned, lifetime_detection=self.lifetime_detection,
                   lifetime_suffices=self.lifetime_suffices, seconds_needed=self.seconds_needed,
                   safe_looks_needed=self.safe_looks_needed,
                   lifetime_needed=None if self.looks_needed is None
                   else self.looks_needed * self.schedule.interval)  # fmt: skip
        return _finite_dict(out)


@dataclass(frozen=True, slots=True)
class ReleasePlan:
    """The plans of a config's count metrics, and notes on what was not planned."""

    config: str
    window: float  # seconds of production data the plans rest on
    schedule: LookSchedule
    metrics: tuple[MetricPlan, ...] = ()
    notes: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, object]:
        """The plans, JSON-ready (non-finite numbers as None)."""
        return _finite_dict({"config": self.config, "window": self.window,
                             "schedule": asdict(self.schedule), "notes": list(self.notes),
                             "metrics": [m.to_dict() for m in self.metrics]})  # fmt: skip


def _finite_dict(values: dict[str, object]) -> dict[str, object]:
    """JSON has no NaN or infinity: None instead, all the way down."""
    return {k: _finite(v) for k, v in values.items()}


def _finite(value: object) -> object:
    """JSON has no NaN or infinity: None instead."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value

