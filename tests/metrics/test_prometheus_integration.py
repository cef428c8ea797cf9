"""PrometheusMetricSource against a real Prometheus scraping two real goldengoose apps.

Tests that only need Prometheus come first: they run while the load is still going.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import numpy as np
import pytest
import requests

from canary.config import CanaryConfig, MetricConfig
from canary.errors import ConfigError, MetricsError
from canary.metrics.collect import fetch_pair
from canary.metrics.prometheus import MAX_POINTS_PER_REQUEST, PrometheusMetricSource
from canary.values.scope import MetricScope, iso_instant, scope_pair
from tests.support.prometheus import free_port

if TYPE_CHECKING:
    from tests.metrics.conftest import Stack

pytestmark = pytest.mark.slow

CONFIG = CanaryConfig.from_kayenta({
    "name": "goldengoose",
    "templates": {"app": 'track="${scope}",version="${version}"'},
    "metrics": [
        {"name": "request rate", "groups": ["traffic"],
         "query": {"type": "prometheus", "metricName": "goldengoose:requests:rate5s",
                   "customFilterTemplate": "app", "groupByFields": ["code"]}},
        {"name": "p99 latency", "groups": ["latency"],
         "query": {"type": "prometheus", "customInlineTemplate":
                   "PromQL:histogram_quantile(0.99, sum by (le) (rate("
                   'goldengoose_request_duration_seconds_bucket{track="${scope}"}[5s])))'}},
        {"name": "broken", "query": {"type": "prometheus",
                                     "customInlineTemplate": "PromQL:sum(rate(up[5s])"}},
        {"name": "duplicate labels", "query": {"type": "prometheus", "customInlineTemplate":
                   'PromQL:label_replace(up{job="goldengoose"}, "instance", "x", "", "")'}},
        {"name": "samples appended", "query": {"type": "prometheus", "customInlineTemplate":
                   "PromQL:sum(prometheus_tsdb_head_samples_appended_total)"}},
    ],
})  # fmt: skip
METRICS = {m.name: m for m in CONFIG.metrics}


class CountingSession(requests.Session):
    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def request(self, *args, **kwargs):  # type: ignore[override]
        self.calls += 1
        return super().request(*args, **kwargs)


def metric(name: str) -> MetricConfig:
    return METRICS[name]


def test_unreachable_prometheus_is_transient():
    src = PrometheusMetricSource(f"http://127.0.0.1:{free_port()}", timeout=2)
    now = datetime.now(UTC)
    with pytest.raises(MetricsError) as err:
        src.fetch(
            metric("samples appended"), {}, MetricScope(start=now - timedelta(minutes=1), end=now)
        )
    assert err.value.transient and "127.0.0.1" in str(err.value)
    with pytest.raises(MetricsError):
        src.check()


def test_rejected_queries_are_config_errors(stack: Stack):
    src = PrometheusMetricSource(stack.prometheus.url)
    src.check()
    now = datetime.now(UTC)
    scope = MetricScope(start=now - timedelta(seconds=30), end=now, step=1)
    with pytest.raises(ConfigError) as err:  # HTTP 400: parse error
        src.fetch(metric("broken"), {}, scope)
    assert "sum(rate(up[5s])" in str(err.value) and "'broken'" in str(err.value)
    assert "HTTP 400" in str(err.value)
    stack.prometheus.wait_for('up{job="goldengoose"}', lambda r: len(r) == 2)
    with pytest.raises(ConfigError) as err:  # HTTP 422: fails while executing
        src.fetch(metric("duplicate labels"), {}, scope)
    assert "HTTP 422" in str(err.value) and 'label_replace(up{job="goldengoose"}' in str(err.value)


def test_chunking_against_the_real_server(stack: Stack):
    stack.prometheus.wait_for(  # Prometheus has scraped itself for 8+ seconds
        "count_over_time(prometheus_tsdb_head_samples_appended_total[1m]) >= 8", bool, timeout=20
    )
    # a few seconds back, so no sample at or before `end` can still arrive between fetches
    end = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=3)
    start = end - timedelta(seconds=MAX_POINTS_PER_REQUEST + 600)  # 11,601 points at step 1 s
    long_scope = MetricScope(start=start, end=end, step=1)

    single = requests.get(
        f"{stack.prometheus.url}/api/v1/query_range",
        params={"query": "up", "start": iso_instant(start), "end": iso_instant(end), "step": "1"},
        timeout=10,
    )
    assert single.status_code == 400 and "11,000 points" in single.json()["error"]

    session = CountingSession()
    src = PrometheusMetricSource(stack.prometheus.url, session=session, align="grid")
    (series,) = src.fetch(metric("samples appended"), {}, long_scope)
    assert session.calls == 2
    assert len(series.values) == long_scope.points == MAX_POINTS_PER_REQUEST + 601
    finite = np.flatnonzero(np.isfinite(series.values))
    assert len(finite) >= 3  # the last seconds have data, contiguously, the first 3 h do not
    assert (
        finite[0] > 11_000 and (np.diff(finite) == 1).all() and finite[-1] == len(series.values) - 1
    )

    short_scope = MetricScope(start=end - timedelta(seconds=20), end=end, step=1)
    (short,) = src.fetch(metric("samples appended"), {}, short_scope)
    np.testing.assert_array_equal(series.values[-21:], short.values)  # same evaluation grid

    packed = PrometheusMetricSource(stack.prometheus.url)
    (kayenta,) = packed.fetch(metric("samples appended"), {}, long_scope)
    np.testing.assert_array_equal(kayenta.values, series.values[np.isfinite(series.values)])
    assert kayenta.step == 1 and kayenta.start > start


def window(stack: Stack) -> tuple[MetricScope, MetricScope]:
    load_start, load_end = stack.wait_for_load()
    return scope_pair(
        baseline="baseline", canary="canary", step=1,
        start=load_start + timedelta(seconds=4), end=load_end - timedelta(seconds=1),
    )  # fmt: skip


def with_version(scope: MetricScope, version: str) -> MetricScope:
    from dataclasses import replace

    return replace(scope, extended_scope_params={"version": version})


@pytest.mark.parametrize("align", ["kayenta", "grid"])
def test_request_rate_one_pair_per_code(stack: Stack, align: str):
    control, experiment = window(stack)
    control, experiment = with_version(control, "1.0.0"), with_version(experiment, "1.1.0")
    src = PrometheusMetricSource(stack.prometheus.url, align=align)  # type: ignore[arg-type]
    pairs = fetch_pair(src, metric("request rate"), CONFIG.templates, control, experiment)

    assert sorted(p.tags["code"] for p in pairs) == ["200", "500"]
    by_code = {p.tags["code"]: p for p in pairs}
    for pair in pairs:
        for values in (pair.control_values, pair.experiment_values):
            assert values.dtype == np.float64 and len(values) >= 5
            assert np.isfinite(values).all()
        if align == "grid":
            assert len(pair.control_values) == len(pair.experiment_values) == control.points
    for values in (by_code["200"].control_values, by_code["200"].experiment_values):
        assert 20 <= float(np.median(values)) <= 40  # 30 rps per app
    assert not by_code["500"].control_values.any() and not by_code["500"].experiment_values.any()
    assert by_code["200"].control.query == (
        'avg(goldengoose:requests:rate5s{track="baseline",version="1.0.0"}) by (code)'
    )


def test_p99_latency_inline_promql(stack: Stack):
    control, experiment = window(stack)
    src = PrometheusMetricSource(stack.prometheus.url, align="grid")
    (pair,) = fetch_pair(src, metric("p99 latency"), {}, control, experiment)
    assert dict(pair.tags) == {}
    for values in (pair.control_values, pair.experiment_values):
        assert len(values) == control.points and np.isfinite(values).all()
        assert 0.004 <= float(np.median(values)) <= 0.1  # 5-9 ms service time, bucketed
    assert pair.experiment.query.startswith("histogram_quantile(0.99, sum by (le) (rate(")
    assert 'track="canary"' in pair.experiment.query


def test_no_data_side_is_padded_with_nan(stack: Stack):
    control, experiment = window(stack)
    missing = with_version(control, "0.0.0-never")
    src = PrometheusMetricSource(stack.prometheus.url)
    pairs = fetch_pair(src, metric("request rate"), CONFIG.templates, missing,
                           with_version(experiment, "1.1.0"))  # fmt: skip
    assert sorted(p.tags["code"] for p in pairs) == ["200", "500"]
    for pair in pairs:
        assert np.isnan(pair.control_values).all()
        assert len(pair.control_values) == control.points - 1  # Kayenta: (end - start) / step
        assert np.isfinite(pair.experiment_values).all()
