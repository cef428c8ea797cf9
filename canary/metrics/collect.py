"""Fetch every metric of a canary config for one judgement window, control against experiment.

The one home of the pairing: a metric store (canary.ports.MetricSource) answers for one
scope; `fetch_pair` and `fetch_counts_pair` ask it for both sides and pair the answers, the
same way for every store.

Errors are not swallowed: a metric store that cannot answer raises (a transient
MetricsError for timeouts and refused connections), so no verdict is ever computed from a
half-fetched interval. A store that answers with no series yields NaN placeholders (series
metrics) or a side marked missing (count metrics), which the judge sees as Nodata (fail
closed both ways).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from canary.config import CanaryConfig, MetricConfig
from canary.metrics.series import mix
from canary.ports import MetricSource
from canary.values.counts import CountsPair, HistogramCounts, RatioCounts
from canary.values.scope import MetricScope
from canary.values.series import MetricPair


def fetch_pair(
    source: MetricSource,
    metric: MetricConfig,
    templates: Mapping[str, str] | None,
    control_scope: MetricScope,
    experiment_scope: MetricScope,
) -> list[MetricPair]:
    """One series metric for both sides, paired by tag set and NaN-padded (Kayenta's mixer).

    Args:
        source: The metric store.
        metric: A series metric.
        templates: The config's named query templates.
        control_scope: The control's (baseline's) scope.
        experiment_scope: The experiment's (canary's) scope.

    Returns:
        One pair per tag set found on either side.

    Raises:
        ConfigError: The store rejects the query.
        MetricsError: The store cannot answer (transient for timeouts and 5xx).
    """
    control = source.fetch(metric, templates, control_scope)
    experiment = source.fetch(metric, templates, experiment_scope)
    return mix(metric.name, control, experiment)


def fetch_counts_pair(
    source: MetricSource,
    metric: MetricConfig,
    templates: Mapping[str, str] | None,
    control_scope: MetricScope,
    experiment_scope: MetricScope,
) -> CountsPair:
    """One count metric's counts for both sides.

    Args:
        source: The metric store.
        metric: A ratio or histogram metric.
        templates: The config's named query templates.
        control_scope: The control's (baseline's) scope.
        experiment_scope: The experiment's (canary's) scope.

    Returns:
        Both sides' counts; `missing` names the sides ("control", "experiment") whose
        counters matched no series.

    Raises:
        ConfigError: The metric has no counters, or the store rejects a selector.
        MetricsError: The store cannot answer (transient for timeouts and 5xx).
    """
    control = source.fetch_counts(metric, templates, control_scope)
    experiment = source.fetch_counts(metric, templates, experiment_scope)
    missing = tuple(
        side for side, got in (("control", control), ("experiment", experiment)) if got.missing
    )
    return CountsPair(metric.name, control.counts, experiment.counts, missing)


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
        pairs.extend(fetch_pair(source, metric, config.templates, control, experiment))
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
        pairs.append(fetch_counts_pair(source, metric, config.templates, control, experiment))
        if progress is not None:
            progress(metric, index, len(metrics))
    return pairs


def request_counter(config: CanaryConfig) -> tuple[str, str | None, str] | None:
    """(selector, group-by label, key) of the counter that counts each track's requests:
    `guards.requests`, else the first ratio metric's total, else the first histogram's
    +Inf bucket; None when the config has none of them (a plain Kayenta config)."""
    if config.guards.requests:
        return config.guards.requests, None, ""
    for metric in config.metrics:
        if (ratio := metric.ratio_counters) is not None:
            return ratio.total, None, ""
    for metric in config.metrics:
        if (histogram := metric.histogram_counters) is not None:
            return histogram.buckets, "le", "+Inf"
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
