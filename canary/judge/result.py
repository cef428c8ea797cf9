"""What every judge result offers the rest of the project: one protocol, one report row.

The Kayenta-mode classifier (canary.judge.classify.MetricResult, also what the absolute
bounds check returns), the ratio test (canary.judge.ratio.CountsResult) and the histogram
test (canary.judge.histogram.HistogramResult) each answer for one metric. Reports,
pictures and the interval judge only ever talk to them through `JudgeResult`, so a new
statistical test is one more class that satisfies it (mypy checks each one, below each
class's module: `_: type[JudgeResult] = ...`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, TypedDict

if TYPE_CHECKING:
    from canary.judge.classify import Classification

__all__ = ["JudgeResult", "JudgedCounts", "NumberText", "ResultRow", "Sides", "finite_or_none"]

#: How a report writes a plain number (canary.report.sig: 3 significant digits).
NumberText = Callable[[float | None], str]
#: (baseline, canary, effect) of one metric, in words, with units.
Sides = tuple[str, str, str]


class ResultRow(TypedDict):
    """A result's numbers in a report table (JSON-friendly: non-finite numbers are None).

    `decided` is None for tests that do not decide early (Kayenta mode).
    """

    decided: bool | None
    baseline_mean: float | None
    canary_mean: float | None
    baseline_count: int
    canary_count: int
    ci_lower: float | None
    ci_upper: float | None
    estimate: float | None
    effect_size: float | None
    deviation: float | None


@dataclass(frozen=True, slots=True)
class JudgedCounts:
    """The counts a result judged, per track, cumulative since the analysis began (for
    pictures): (events, total) for a ratio metric, cumulative `le` buckets (last: +Inf)
    with their `upper_bounds` for a histogram, nothing for series metrics."""

    control: tuple[float, ...] = ()
    experiment: tuple[float, ...] = ()
    upper_bounds: tuple[float, ...] = ()
    unit: str = ""
    #: the test's point estimate of the effect (ratio metrics: the rate ratio)
    estimate: float = math.nan


class JudgeResult(Protocol):
    """One metric's answer, whichever test gave it.

    Read-only members (properties), so that frozen dataclasses fit.
    """

    @property
    def classification(self) -> Classification:
        """Kayenta's label: Pass, High, Low, Nodata, NodataFailMetric or Error."""
        ...

    @property
    def reason(self) -> str:
        """Why, in words a person reads."""
        ...

    @property
    def critical(self) -> bool:
        """True when this result trips the metric's critical rule."""
        ...

    @property
    def decided(self) -> bool | None:
        """Sequential tests: a regression proven, or proven within tolerance (final);
        None for tests that judge a fixed window (Kayenta mode)."""
        ...

    @property
    def confidence(self) -> float:
        """The level of the test's claims (1 - alpha; Kayenta's interval: 0.98)."""
        ...

    @property
    def counts(self) -> JudgedCounts:
        """What was judged, per track (empty for series metrics)."""
        ...

    def row(self) -> ResultRow:
        """The result's numbers for a report table."""
        ...

    def sides(self, number: NumberText) -> Sides:
        """(baseline, canary, effect) in words with units; `number` writes plain numbers."""
        ...


def finite_or_none(value: float | None) -> float | None:
    """JSON has no NaN or infinity: report non-finite numbers as None (the reason says why)."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None
