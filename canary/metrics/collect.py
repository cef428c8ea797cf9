"""Fetch every metric of a canary config for one judgement window.

Errors are not swallowed: a metric store that cannot answer raises (a transient
MetricsError for timeouts and refused connections), so no verdict is ever computed from a
half-fetched interval. A store that answers with no series yields NaN placeholders (series
metrics) or a side marked missing (count metrics), which the judge sees as Nodata (fail
closed both ways).
"""

from __future__ import annotations

from collections.abc import Callable

from canary.config import CanaryConfig, MetricConfig, PrometheusQuery
from canary.ports import MetricSource
from canary.values.counts import CountsPair, HistogramCounts, RatioCounts
from canary.values.scope import MetricScope
from canary.values.series import MetricPair


def collect_pairs(
    source: MetricSource,
    config: CanaryConfig,
    control: MetricScope,
    experiment: MetricScope,
    *,
    progress: Callable[[MetricConfig, int, int], None] | None = None,
) -> list[MetricPair]:
    """All control/experiment pairs of `config`'s series metrics, in config order (count
    metrics are read by collect_counts)."""
    pairs: list[MetricPair] = []
    metrics = [m for m in config.metrics if m.evidence == "series"]
    for index, metric in enumerate(metrics, start=1):
        pairs.extend(source.fetch_pair(metric, config.templates, control, experiment))
        if progress is not None:
            progress(metric, index, len(metrics))
    return pairs


def collect_counts(
    source: MetricSource,
    config: CanaryConfig,
    control: MetricScope,
    experiment: MetricScope,
    *,
    progress: Callable[[MetricConfig, int, int], None] | None = None,
) -> list[CountsPair]:
    """Control/experiment counts of `config`'s ratio and histogram metrics, in config order."""
    pairs: list[CountsPair] = []
    metrics = [m for m in config.metrics if m.evidence != "series"]
    for index, metric in enumerate(metrics, start=1):
        pairs.append(source.fetch_counts_pair(metric, config.templates, control, experiment))
        if progress is not None:
            progress(metric, index, len(metrics))
    return pairs


def request_counter(config: CanaryConfig) -> tuple[str, str | None, str] | None:
    """(selector, group-by label, key) of the counter that counts each track's requests:
    `guards.requests`, else the first ratio metric's total, else the first histogram's
    +Inf bucket; None when the config has none of them (a plain Kayenta config)."""
    if config.guards.requests:
        return config.guards.requests, None, ""
    # evidence "ratio" / "histogram" means exactly: a PrometheusQuery with that counter set
    for metric in config.metrics:
        query = metric.query
        if isinstance(query, PrometheusQuery) and query.ratio is not None:
            return query.ratio.total, None, ""
    for metric in config.metrics:
        query = metric.query
        if isinstance(query, PrometheusQuery) and query.histogram is not None:
            return query.histogram.buckets, "le", "+Inf"
    return None


def count_requests(
    source: MetricSource, config: CanaryConfig, control: MetricScope, experiment: MetricScope
) -> tuple[float, float] | None:
    """(baseline, canary) requests over the window, for the guards; None without a counter."""
    counter = request_counter(config)
    if counter is None:
        return None
    selector, by, key = counter
    sides = [source.counter_increase(selector, config.templates, scope, by=by, name="requests")
             for scope in (control, experiment)]  # fmt: skip
    return sides[0].get(key, 0.0), sides[1].get(key, 0.0)


def unseen_tracks(
    source: MetricSource, config: CanaryConfig, control: MetricScope, experiment: MetricScope
) -> list[str] | None:
    """The tracks (scope names; "baseline"/"canary" for a scope without one) whose request
    counter shows no request over the scopes' window, in (control, experiment) order; None
    when the config has no request counter.

    Prometheus discovers a new target after a delay (its discovery manager hands new
    targets to the scrapers at most every 5 s; Kubernetes service discovery adds the
    watch latency), and Istio's request series only exist after a track's first request:
    until both tracks' requests are visible, a look would judge a track that merely has
    not been scraped yet."""
    got = count_requests(source, config, control, experiment)
    if got is None:
        return None
    sides = ((control, "baseline"), (experiment, "canary"))
    return [scope.scope or side for (scope, side), n in zip(sides, got, strict=True) if n <= 0]


def production_counts(
    source: MetricSource, config: CanaryConfig, scope: MetricScope
) -> dict[str, RatioCounts | HistogramCounts | None]:
    """Production's counts per count metric over `scope` (None: no series), for planning."""
    out: dict[str, RatioCounts | HistogramCounts | None] = {}
    for metric in config.metrics:
        if metric.evidence != "series":
            got = source.fetch_counts(metric, config.templates, scope)
            out[metric.name] = None if got.missing else got.counts
    return out
