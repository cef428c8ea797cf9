"""Fetch every metric of a canary config for one judgement window.

Errors are not swallowed: a metric store that cannot answer raises (a transient
MetricsError for timeouts and refused connections), so no verdict is ever computed from a
half-fetched interval. A store that answers with no series yields NaN placeholders, which
the judge sees as Nodata (fail closed both ways).
"""

from __future__ import annotations

from collections.abc import Callable

from canary.config import CanaryConfig, MetricConfig
from canary.metrics.scope import MetricScope
from canary.metrics.series import MetricPair
from canary.ports import MetricSource


def collect_pairs(
    source: MetricSource,
    config: CanaryConfig,
    control: MetricScope,
    experiment: MetricScope,
    *,
    progress: Callable[[MetricConfig, int, int], None] | None = None,
) -> list[MetricPair]:
    """All control/experiment pairs of `config`'s metrics, in config order."""
    pairs: list[MetricPair] = []
    total = len(config.metrics)
    for index, metric in enumerate(config.metrics, start=1):
        pairs.extend(source.fetch_pair(metric, config.templates, control, experiment))
        if progress is not None:
            progress(metric, index, total)
    return pairs
