"""Count metrics (ratio, histogram) in the interval judge: the sequential tests on the
counts since the analysis began, with each metric's direction, alpha and tolerance
(and toleranceOn, safeRate); histogram metrics also get the earlier looks' counts of the
release, on which their e-processes learn to bet."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Protocol, TypedDict

from canary.config import CanaryConfig, MetricConfig
from canary.errors import ConfigError
from canary.judge.classify import Classification
from canary.judge.common import format_value
from canary.judge.histogram import HistogramResult, compare_histograms
from canary.judge.ratio import CountsResult, compare_counts
from canary.values.counts import HistogramCounts, RatioCounts

__all__ = ["DEFAULT_ALPHA", "DEFAULT_TOLERANCE", "CountsLike", "compare_metric", "group_counts"]

#: Defaults of the sequential judge's per-metric settings (our extension of Kayenta's format).
DEFAULT_ALPHA = 0.01
DEFAULT_TOLERANCE = 0.0

#: Labels that trip a critical count metric.
_FAILED = (Classification.HIGH, Classification.LOW, Classification.NODATA)

Buckets = tuple[float, ...]


class CountsLike(Protocol):
    """What the judge needs of one count metric (canary.values.counts.CountsPair fits).

    `control`/`experiment` are RatioCounts (ratio metrics) or HistogramCounts. Read-only
    members (properties), so that frozen dataclasses fit.
    """

    @property
    def name(self) -> str:
        """The metric's name in the canary config."""
        ...

    @property
    def control(self) -> RatioCounts | HistogramCounts:
        """The baseline's counts."""
        ...

    @property
    def experiment(self) -> RatioCounts | HistogramCounts:
        """The canary's counts."""
        ...

    @property
    def missing(self) -> tuple[str, ...]:
        """The sides ("control", "experiment") whose selectors matched no series."""
        ...


class _SequentialSettings(TypedDict):
    """The keyword arguments compare_counts and compare_histograms share."""

    direction: str
    alpha: float
    tolerance: float
    split: float


def compare_metric(metric: MetricConfig, counts: CountsLike | None, split: float | None,
                   past: Sequence[CountsLike] = (),
                   planned_looks: int | None = None) -> CountsResult | HistogramResult:  # fmt: skip
    """A count metric's sequential test; no counts, or a side without series, is Nodata.

    Args:
        metric: the metric's config (its kind and settings).
        counts: its counts since the analysis began (None: not fetched).
        split: the canary's share of the pair's traffic; None: the observed share.
        past: the metric's counts at the release's earlier looks, oldest first.
        planned_looks: the release's number of looks.

    Returns:
        The test's result, marked critical when it failed on a critical metric.
    """
    cfg = metric.canary
    missing = ("baseline", "canary") if counts is None else tuple(counts.missing)
    settings: _SequentialSettings = {
        "direction": cfg.direction,
        "alpha": cfg.alpha if cfg.alpha is not None else DEFAULT_ALPHA,
        "tolerance": cfg.tolerance if cfg.tolerance is not None else DEFAULT_TOLERANCE,
        "split": _split(counts, split, missing),
    }
    result: CountsResult | HistogramResult
    if metric.evidence == "ratio":
        result = _ratio(metric, None if missing else counts, settings)
    else:
        result = _histogram(metric, None if missing else counts, settings, past, planned_looks)
    if missing:
        sides = " and ".join({"control": "baseline", "experiment": "canary"}.get(m, m) for m in missing)
        result = replace(result, reason=f"no series for the {sides}: the query matches nothing "
                         "(does the app export it, and does the scope label match?)")  # fmt: skip
    return replace(result, critical=bool(cfg.critical and result.classification in _FAILED))


def _split(counts: CountsLike | None, split: float | None, missing: tuple[str, ...]) -> float:
    """The split to test with: as given, or (None) the observed share of requests (1/2
    without requests on both sides)."""
    if split is not None:
        return split
    if counts is not None and not missing:
        n_c, n_e = counts.control.total, counts.experiment.total
        return n_e / (n_c + n_e) if n_c > 0 and n_e > 0 else 0.5
    return 0.5


def _ratio(metric: MetricConfig, counts: CountsLike | None, settings: _SequentialSettings) -> CountsResult:
    """compare_counts on the metric's events and totals (all zero without counts)."""
    if counts is None:
        return compare_counts(0, 0, 0, 0, **settings)
    c, e = counts.control, counts.experiment
    if not (isinstance(c, RatioCounts) and isinstance(e, RatioCounts)):
        raise ConfigError(f"metric {metric.name!r} is a ratio metric: its counts must be events "
                          "and totals, not histogram buckets")  # fmt: skip
    return compare_counts(c.events, c.total, e.events, e.total, safe_rate=metric.canary.safe_rate,
                          **settings)  # fmt: skip


def _histogram(metric: MetricConfig, counts: CountsLike | None, settings: _SequentialSettings,
               past: Sequence[CountsLike], planned_looks: int | None) -> HistogramResult:  # fmt: skip
    """compare_histograms on the metric's buckets, with the earlier looks' (empty buckets
    without counts)."""
    histogram = metric.histogram_counters
    unit = histogram.unit if histogram is not None else ""
    mode = metric.canary.tolerance_on or "quantile"
    if counts is None:
        return compare_histograms([0, 0], [0, 0], [1.0, math.inf], unit=unit, tolerance_on=mode,
                                  planned_looks=planned_looks, **settings)  # fmt: skip
    c, e = counts.control, counts.experiment
    if not (isinstance(c, HistogramCounts) and isinstance(e, HistogramCounts)):
        raise ConfigError(f"metric {metric.name!r} is a histogram metric: its counts must be "
                          "buckets, not events and totals")  # fmt: skip
    bounds = _common_bounds(metric.name, c.upper_bounds, e.upper_bounds)
    return compare_histograms(c.buckets, e.buckets, bounds, unit=unit, tolerance_on=mode,
                              planned_looks=planned_looks, history=_histogram_history(past, bounds),
                              **settings)  # fmt: skip


def _histogram_history(past: Sequence[CountsLike], bounds: Sequence[float]) -> list[tuple[Buckets, Buckets]]:
    """The earlier looks' (control, experiment) buckets of one histogram metric: looks
    where a side had no series or no requests, or other buckets than now, are left out."""
    looks = []
    for look in past:
        if look.missing:
            continue
        c, e = look.control, look.experiment
        if not (isinstance(c, HistogramCounts) and isinstance(e, HistogramCounts)):
            continue
        if tuple(c.upper_bounds) != tuple(bounds) or tuple(e.upper_bounds) != tuple(bounds):
            continue
        if c.total <= 0 or e.total <= 0:
            continue
        looks.append((tuple(c.buckets), tuple(e.buckets)))
    return looks


def _common_bounds(name: str, control: Sequence[float], experiment: Sequence[float]) -> Sequence[float]:
    """The bucket bounds both tracks share; different buckets cannot be compared."""
    if tuple(control) != tuple(experiment):
        raise ConfigError(
            f"metric {name!r}: baseline and canary histograms have different buckets "
            f"({[format_value(b, '') for b in control]} vs "
            f"{[format_value(b, '') for b in experiment]}); both tracks must run builds that "
            "export the same buckets for a bucket-wise comparison"
        )
    return control


def group_counts(config: CanaryConfig, counts: Iterable[CountsLike]) -> dict[str, CountsLike]:
    """The count metrics' counts by metric name, each checked to name a count metric.

    Raises:
        ConfigError: counts for a metric the config does not define as ratio or histogram.
    """
    kinds = {m.name: m.evidence for m in config.metrics}
    out: dict[str, CountsLike] = {}
    for c in counts:
        if kinds.get(c.name) in (None, "series"):
            raise ConfigError(
                f"judge: counts given for {c.name!r}, which canary config {config.name!r} does not "
                "define as a ratio or histogram metric"
            )
        out[c.name] = c
    return out
