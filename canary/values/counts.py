"""Request-level evidence: counts per side, as the count metrics' judge takes them."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["CounterSeries", "CountsPair", "HistogramCounts", "RatioCounts", "SideCounts"]


@dataclass(frozen=True, slots=True)
class RatioCounts:
    """Events (e.g. 5xx answers) among all requests of one side, over the window."""

    events: float
    total: float


@dataclass(frozen=True, slots=True)
class HistogramCounts:
    """Cumulative `le` bucket counts of one side over the window; the last bound is +Inf
    and its count is the number of requests. Empty tuples mean: no series at all."""

    upper_bounds: tuple[float, ...]
    buckets: tuple[float, ...]

    @property
    def total(self) -> float:
        """The number of requests: the +Inf bucket's count (0 without series)."""
        return self.buckets[-1] if self.buckets else 0.0

    def __post_init__(self) -> None:
        if len(self.upper_bounds) != len(self.buckets):
            raise ValueError("upper_bounds and buckets must have the same length")
        if self.upper_bounds and self.upper_bounds[-1] != math.inf:
            raise ValueError("the last upper bound of a histogram must be +Inf")


@dataclass(frozen=True, slots=True)
class CountsPair:
    """Baseline (control) and canary (experiment) counts of one count metric.

    `missing` names the sides whose selector matched no series at all (a wrong query, or
    an app that does not export the metric): the judge reports them as Nodata.
    """

    name: str
    control: RatioCounts | HistogramCounts
    experiment: RatioCounts | HistogramCounts
    missing: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class SideCounts:
    """One side's counts and whether its selectors matched no series at all."""

    counts: RatioCounts | HistogramCounts
    missing: bool


@dataclass(frozen=True, slots=True)
class CounterSeries:
    """One counter series as Prometheus returns it: labels, (timestamp s, value) samples."""

    labels: Mapping[str, str]
    samples: tuple[tuple[float, float], ...]
