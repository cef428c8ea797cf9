"""Request-level evidence as the metric store returns it: counts over one analysis window.

Plain values (no I/O). A count is the increase of Prometheus counters between the window's
two ends, computed from the raw samples with counter resets handled (a sample lower than
its predecessor means the process restarted and counted from 0 again), never from
`increase()`'s extrapolation. `canary.metrics.prometheus` produces them; the sequential
judge consumes them through `canary.judge.sequential`.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Iterable, Sequence

from canary.errors import MetricsError
from canary.metrics.series import MatrixItem
from canary.values.counts import CounterSeries, HistogramCounts, RatioCounts, SideCounts

__all__ = [
    "histogram_counts",
    "increase",
    "parse_le",
    "parse_matrix",
    "ratio_counts",
    "sum_increase",
]


def _ms(seconds: float) -> int:
    # Prometheus keeps whole milliseconds; comparing floats would make "at t0" a coin flip.
    return round(seconds * 1000)


def increase(samples: Iterable[tuple[float, float]], start: float, end: float) -> float:
    """The counter's increase from `start` to `end` (seconds), resets handled.

    The start value is the last sample at or before `start`, or 0 when there is none (the
    series was born inside the window); the end value is the last sample at or before
    `end`. A sample lower than its predecessor is a reset: the process counted from 0 again,
    so the whole sample value is new. `samples` must cover [start - lookback, end], where
    lookback is at least the scrape interval (Prometheus' staleness window, 5 min, is safe).
    """
    lo, hi = _ms(start), _ms(end)
    if hi < lo:
        raise ValueError(f"window end {end} is before its start {start}")
    previous, total = 0.0, 0.0
    for stamp, value in sorted(samples):
        at = _ms(stamp)
        if at > hi:
            break
        if at > lo:
            total += value - previous if value >= previous else value
        previous = value
    return total


def sum_increase(
    series: Iterable[CounterSeries], start: float, end: float, *, by: str | None = None
) -> dict[str, float]:
    """Increases summed over series, keyed by the value of label `by` ("" when None or
    absent). Empty when there are no series: the caller tells "none" from "zero"."""
    sums: dict[str, float] = {}
    for one in series:
        key = one.labels.get(by, "") if by is not None else ""
        sums[key] = sums.get(key, 0.0) + increase(one.samples, start, end)
    return sums


_LE = re.compile(r"[+-]?(?:inf(?:inity)?|(?:\d+\.?\d*|\.\d+)(?:e[+-]?\d+)?)", re.IGNORECASE)


def parse_le(text: str, *, metric: str = "<histogram>") -> float:
    """A Prometheus `le` label value as a float: "0.005", "1e-3", "+Inf"."""
    if not isinstance(text, str) or not _LE.fullmatch(text):
        raise MetricsError(
            f"metric {metric!r}: bucket bound le={text!r} is not a number; the histogram "
            "selector must pick the _bucket series of a Prometheus histogram"
        )
    return float(text)


def ratio_counts(
    events: Sequence[CounterSeries], total: Sequence[CounterSeries], start: float, end: float
) -> SideCounts:
    """Events among requests of one side; missing when either selector matched nothing
    (apps must export their event counters at 0 from the start, as goldengoose does, so an
    absent series means a wrong selector, never "no errors")."""
    counts = RatioCounts(
        events=sum(sum_increase(events, start, end).values()),
        total=sum(sum_increase(total, start, end).values()),
    )
    return SideCounts(counts, missing=not events or not total)


def histogram_counts(
    buckets: Sequence[CounterSeries], start: float, end: float, *, metric: str
) -> SideCounts:
    """Cumulative bucket counts summed over every histogram the selector matched.

    Nothing is repaired: histograms that counted requests in the window but have different
    bucket bounds, a missing +Inf bucket or sums that are not monotone over `le` raise
    MetricsError naming the metric, because any fix would invent or drop requests.
    """
    if not buckets:
        return SideCounts(HistogramCounts((), ()), missing=True)
    histograms: dict[tuple[tuple[str, str], ...], dict[float, float]] = {}
    for one in buckets:
        if "le" not in one.labels:
            raise MetricsError(
                f"metric {metric!r}: series {dict(one.labels)} has no `le` label; the histogram "
                "selector must pick the _bucket series (e.g. name_bucket{...})"
            )
        bound = parse_le(one.labels["le"], metric=metric)
        key = tuple(sorted((k, v) for k, v in one.labels.items() if k != "le"))
        counts = histograms.setdefault(key, {})
        if bound in counts:
            raise MetricsError(
                f"metric {metric!r}: series {dict(key)} has two buckets le={bound:g}"
            )
        counts[bound] = increase(one.samples, start, end)
    # Histograms with no requests in the window add nothing, whatever their bounds.
    active = {k: c for k, c in histograms.items() if any(c.values())}
    layouts = {frozenset(c) for c in active.values()}
    if len(layouts) > 1:
        (key_a, first), *rest = active.items()
        a = frozenset(first)
        key_b, b = next((k, frozenset(c)) for k, c in rest if frozenset(c) != a)
        raise MetricsError(
            f"metric {metric!r}: histograms with different bucket bounds cannot be summed "
            f"({dict(key_a)} has le {_bounds(a - b) or '-'} that {dict(key_b)} lacks, which "
            f"has le {_bounds(b - a) or '-'} instead); narrow the selector to one layout"
        )
    bounds = sorted(layouts.pop() if layouts else set().union(*histograms.values()))
    sums = [sum(c[b] for c in active.values()) for b in bounds]
    if not bounds or bounds[-1] != math.inf:
        raise MetricsError(f'metric {metric!r}: the histogram has no le="+Inf" bucket')
    for (b0, s0), (b1, s1) in itertools.pairwise(zip(bounds, sums, strict=True)):
        if s1 < s0:
            raise MetricsError(
                f"metric {metric!r}: bucket counts are not cumulative (le={b0:g}: {s0:g} > "
                f"le={b1:g}: {s1:g}); the selector must match whole histograms"
            )
    return SideCounts(HistogramCounts(tuple(bounds), tuple(sums)), missing=False)


def _bounds(values: Iterable[float]) -> str:
    return ", ".join(f"{v:g}" for v in sorted(values))


def parse_matrix(result: Iterable[MatrixItem], *, metric: str) -> list[CounterSeries]:
    """Counter series from a Prometheus ``matrix`` result (decoded JSON, checked here);
    MetricsError if malformed or if a value is negative or not finite (no counter holds
    those)."""
    series: list[CounterSeries] = []
    try:
        for item in result:
            labels = {str(k): str(v) for k, v in (item.get("metric") or {}).items()}
            samples = tuple((float(t), float(v)) for t, v in item.get("values") or ())
            series.append(CounterSeries(labels, samples))
    except (TypeError, ValueError, AttributeError):
        raise MetricsError(f"metric {metric!r}: Prometheus sent a malformed matrix") from None
    for one in series:
        bad = next((v for _, v in one.samples if not (math.isfinite(v) and v >= 0)), None)
        if bad is not None:
            raise MetricsError(
                f"metric {metric!r}: series {one.labels} holds {bad:g}, which no counter can; "
                "the selector must pick counters (or histogram buckets)"
            )
    return series
