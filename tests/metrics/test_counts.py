"""Count metrics: exact counter increases (pure) and reading them from Prometheus (fake HTTP)."""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from canary.config import CanaryConfig
from canary.errors import ConfigError, MetricsError
from canary.metrics.collect import collect_counts, collect_pairs, fetch_counts_pair
from canary.metrics.counts import (
    histogram_counts,
    increase,
    parse_le,
    parse_matrix,
    ratio_counts,
    sum_increase,
)
from canary.ports import MetricSource
from canary.values.counts import CounterSeries, CountsPair, HistogramCounts, RatioCounts
from canary.values.scope import MetricScope
from tests.metrics.test_prometheus_source import T0, TOKEN, ok, source_with

# -- the pure part: one series ------------------------------------------------------------


def test_increase_between_the_window_ends():
    samples = [(90, 10), (100, 12), (110, 15), (120, 20), (130, 99)]
    assert increase(samples, 100, 120) == 8  # 12 at t0 (at or before), 20 at t1 (inclusive)
    assert increase(samples, 95, 125) == 10  # 10 before t0, 20 the last before t1


def test_reset_adds_the_sample_after_it():
    # 10 before the window; 12 (+2); restart: 3 (+3); 5 (+2); restart to 0 (+0); 4 (+4)
    samples = [(90, 10), (100, 12), (110, 3), (120, 5), (130, 0), (140, 4)]
    assert increase(samples, 95, 140) == 11


def test_series_born_in_the_window_counts_from_zero():
    assert increase([(105, 4), (115, 9)], 100, 120) == 9


def test_no_sample_at_the_end_uses_the_last_one():
    assert increase([(90, 10), (105, 14)], 100, 120) == 4  # the pod went away at ~105
    assert increase([(80, 10), (90, 10)], 100, 120) == 0  # gone before the window
    assert increase([], 100, 120) == 0


def test_samples_are_sorted_and_compared_in_milliseconds():
    start = 1595877456.349  # as JSON gives it; datetime arithmetic may differ in the last bit
    samples = [(start + 2, 9.0), (start, 5.0), (start + 1, 7.0)]
    assert increase(samples, start + 1e-7, start + 2 - 1e-7) == 4
    with pytest.raises(ValueError, match="before its start"):
        increase(samples, 10, 9)


def test_sum_over_series_and_by_label():
    series = [
        CounterSeries({"pod": "a", "track": "canary"}, ((90, 1), (110, 4))),
        CounterSeries({"pod": "b", "track": "canary"}, ((105, 2),)),  # born in the window
        CounterSeries({"pod": "c", "track": "baseline"}, ((90, 7), (110, 2))),  # restarted
        CounterSeries({"pod": "d"}, ((95, 1), (110, 3))),
    ]
    assert sum_increase(series, 100, 120) == {"": 9}
    assert sum_increase(series, 100, 120, by="track") == {"canary": 5, "baseline": 2, "": 2}
    assert sum_increase([], 100, 120, by="track") == {}


def test_ratio_counts_and_missing_sides():
    events = [CounterSeries({"code": "500"}, ((90, 1), (110, 3)))]
    total = [CounterSeries({"code": "200"}, ((90, 10), (110, 30))), *events]
    got = ratio_counts(events, total, 100, 120)
    assert got.counts == RatioCounts(events=2, total=22) and not got.missing
    assert ratio_counts([], total, 100, 120).missing  # an unexported event counter is a fault
    assert ratio_counts(events, [], 100, 120).missing


# -- histograms ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [("0.005", 0.005), ("1e-3", 0.001), ("1E-3", 0.001), ("10", 10.0), (".5", 0.5),
     ("+Inf", math.inf), ("Inf", math.inf), ("2.5e+01", 25.0)],
)  # fmt: skip
def test_parse_le(text, value):
    assert parse_le(text) == value


@pytest.mark.parametrize("text", ["NaN", "", "abc", "1_0", " 1", "0x1p-3"])
def test_parse_le_rejects_non_numbers(text):
    with pytest.raises(MetricsError, match="'latency'.*not a number"):
        parse_le(text, metric="latency")


def bucket(le: str, before: float, after: float, **labels: str) -> CounterSeries:
    return CounterSeries({"le": le, **labels}, ((90, before), (110, after)))


def test_histogram_summed_over_pods_sorted_by_bound():
    buckets = [
        bucket("+Inf", 10, 20, pod="a"), bucket("0.1", 4, 9, pod="a"), bucket("1e-2", 0, 1, pod="a"),
        bucket("0.01", 0, 2, pod="b"), bucket("+Inf", 0, 5, pod="b"), bucket("0.100", 0, 3, pod="b"),
    ]  # fmt: skip
    got = histogram_counts(buckets, 100, 120, metric="latency")
    assert got.counts == HistogramCounts((0.01, 0.1, math.inf), (3.0, 8.0, 15.0))
    assert got.counts.total == 15 and not got.missing


def test_histogram_with_a_reset():
    buckets = [  # restarted between the samples at 100 and 110: every bucket went down
        CounterSeries({"le": "0.1"}, ((90, 5), (100, 6), (110, 1), (120, 2))),
        CounterSeries({"le": "+Inf"}, ((90, 8), (100, 10), (110, 2), (120, 4))),
    ]
    got = histogram_counts(buckets, 95, 120, metric="latency")
    assert got.counts.buckets == (3.0, 6.0)  # 1 + 1 + 1, 2 + 2 + 2


def test_missing_histogram():
    got = histogram_counts([], 100, 120, metric="latency")
    assert got.missing and got.counts == HistogramCounts((), ()) and got.counts.total == 0


def test_non_monotone_buckets_are_an_error_not_repaired():
    buckets = [bucket("0.1", 0, 5), bucket("+Inf", 0, 3)]
    with pytest.raises(MetricsError, match=r"'latency'.*not cumulative \(le=0.1: 5 > le=inf: 3\)"):
        histogram_counts(buckets, 100, 120, metric="latency")


def test_different_bucket_layouts_are_an_error():
    buckets = [
        bucket("0.1", 0, 5, pod="a"), bucket("+Inf", 0, 6, pod="a"),
        bucket("0.2", 0, 1, pod="b"), bucket("+Inf", 0, 2, pod="b"),
    ]  # fmt: skip
    with pytest.raises(MetricsError, match="'latency'.*different bucket bounds"):
        histogram_counts(buckets, 100, 120, metric="latency")
    # a histogram that counted nothing in the window adds nothing, whatever its layout
    idle = [bucket("0.3", 4, 4, pod="c"), bucket("+Inf", 9, 9, pod="c")]
    got = histogram_counts(buckets[:2] + idle, 100, 120, metric="latency")
    assert got.counts == HistogramCounts((0.1, math.inf), (5.0, 6.0))


@pytest.mark.parametrize(
    ("buckets", "match"),
    [
        ([bucket("0.1", 0, 1)], r'no le="\+Inf" bucket'),
        ([CounterSeries({"code": "200"}, ((90, 1),))], "no `le` label"),
        ([bucket("0.1", 0, 1), bucket("1e-1", 0, 1), bucket("+Inf", 0, 2)], "two buckets le=0.1"),
    ],
)
def test_histogram_selector_errors(buckets, match):
    with pytest.raises(MetricsError, match=match):
        histogram_counts(buckets, 100, 120, metric="latency")


def test_parse_matrix():
    got = parse_matrix([{"metric": {"le": "+Inf"}, "values": [[100.5, "3"], [101.5, "4"]]}],
                       metric="m")  # fmt: skip
    assert got == [CounterSeries({"le": "+Inf"}, ((100.5, 3.0), (101.5, 4.0)))]
    with pytest.raises(MetricsError, match="'m'.*holds -1"):
        parse_matrix([{"metric": {}, "values": [[1, "-1"]]}], metric="m")
    with pytest.raises(MetricsError, match="'m'.*holds nan"):
        parse_matrix([{"metric": {}, "values": [[1, "NaN"]]}], metric="m")
    with pytest.raises(MetricsError, match="malformed"):
        parse_matrix([{"metric": {}, "values": [[1]]}], metric="m")


# -- over HTTP ----------------------------------------------------------------------------

EVENTS = 'goldengoose_requests_total{track="${scope}",code=~"5.."}'
TOTAL = 'goldengoose_requests_total{track="${scope}"}'
BUCKETS = 'goldengoose_request_duration_seconds_bucket{track="${scope}",region="${location}"}'
CONFIG = CanaryConfig.model_validate({
    "judge": {"name": "sequential-v1"},
    "metrics": [
        {"name": "errors", "query": {"type": "prometheus", "ratio": {"events": EVENTS, "total": TOTAL}},
         "analysisConfigurations": {"canary": {}}},
        {"name": "latency", "query": {"type": "prometheus", "histogram": {"buckets": BUCKETS}},
         "analysisConfigurations": {"canary": {}}},
        {"name": "cpu", "query": {"type": "prometheus", "metricName": "cpu", "customInlineTemplate": 'track="${scope}"'},
         "analysisConfigurations": {"canary": {"muted": True}}},
    ],
})  # fmt: skip
ERRORS, LATENCY, CPU = CONFIG.metrics
END = T0 + timedelta(minutes=2)
BASE = T0.timestamp()


def scope(name: str, **extra: Any) -> MetricScope:
    return MetricScope(scope=name, location="eu", start=T0, end=END, step=60, **extra)


def series(labels: dict[str, str], *values: float) -> dict[str, Any]:
    """Samples at t0 - 10 s, t0, t0 + 60 s, ..."""
    stamps = [round(BASE - 10, 3)] + [round(BASE + 60 * k, 3) for k in range(len(values) - 1)]
    return {"metric": labels, "values": [[t, str(v)] for t, v in zip(stamps, values, strict=True)]}


def query_of(request: requests.PreparedRequest) -> str:
    return parse_qs(urlsplit(request.url).query)["query"][0]


def prometheus(request: requests.PreparedRequest) -> tuple[int, Any]:
    """A tiny Prometheus: answers the queries of CONFIG from made-up samples (the increase
    over the window is the last value minus the middle one)."""
    query = query_of(request)
    canary = 'track="canary"' in query
    if "_bucket" in query:
        scale = 2 if canary else 1
        return ok([
            series({"le": "0.1", "pod": "a"}, 0, 3 * scale, 5 * scale),
            series({"le": "+Inf", "pod": "a"}, 0, 4 * scale, 7 * scale),
            series({"le": "1e-1", "pod": "b"}, 1, 1, 2),  # another pod, another spelling
            series({"le": "+Inf", "pod": "b"}, 1, 1, 3),
        ])  # fmt: skip
    if "5.." in query:
        return ok([series({"code": "500"}, 2, 2, 4 if canary else 3)])
    return ok(
        [series({"code": "200"}, 50, 60, 90), series({"code": "500"}, 2, 2, 4 if canary else 3)]
    )


def test_instant_query_of_the_raw_samples():
    src, transport = source_with(prometheus)
    got = src.fetch_counts(ERRORS, {}, scope("canary"))
    assert got.counts == RatioCounts(events=2, total=32) and not got.missing
    first, second = transport.requests
    assert urlsplit(first.url).path == "/api/v1/query"
    assert transport.params(0) == {
        "query": 'goldengoose_requests_total{track="canary",code=~"5.."}[420s]',  # 120 s + 300
        "time": "2020-07-27T19:19:36.349Z",
    }
    assert transport.params(1)["query"] == 'goldengoose_requests_total{track="canary"}[420s]'
    assert second.headers["Authorization"] == f"Bearer {TOKEN}"
    assert isinstance(src, MetricSource)


def test_lookback_and_partial_seconds_widen_the_range():
    src, transport = source_with(prometheus, lookback=60)
    odd = MetricScope(scope="canary", start=T0, end=T0 + timedelta(seconds=10, milliseconds=1))
    src.counter_increase(TOTAL, {}, odd)
    assert transport.params()["query"].endswith("[71s]")  # ceil(10.001 + 60)
    for bad in (0, -1, math.inf, math.nan):
        with pytest.raises(ConfigError, match="lookback"):
            source_with(prometheus, lookback=bad)


def test_fetch_counts_pair_histogram_with_bindings():
    src, transport = source_with(prometheus)
    pair = fetch_counts_pair(src, LATENCY, {}, scope("baseline"), scope("canary"))
    assert pair == CountsPair(
        "latency",
        control=HistogramCounts((0.1, math.inf), (2.0 + 1, 3.0 + 2)),
        experiment=HistogramCounts((0.1, math.inf), (4.0 + 1, 6.0 + 2)),
    )
    assert transport.params(0)["query"] == (
        'goldengoose_request_duration_seconds_bucket{track="baseline",region="eu"}[420s]'
    )


def test_missing_side_is_named():
    def no_canary(request):
        return ok([]) if 'track="canary"' in query_of(request) else prometheus(request)

    src, _ = source_with(no_canary)
    pair = fetch_counts_pair(src, ERRORS, {}, scope("baseline"), scope("canary"))
    assert pair.missing == ("experiment",)
    assert pair.control == RatioCounts(1, 31) and pair.experiment == RatioCounts(0, 0)
    pair = fetch_counts_pair(src, LATENCY, {}, scope("canary"), scope("canary"))
    assert pair.missing == ("control", "experiment")


def test_counter_increase_by_label_with_extended_params():
    src, transport = source_with(prometheus)
    template = 'goldengoose_requests_total{job="${job}"}'
    sc = scope("canary", extended_scope_params={"job": "gg"})
    assert src.counter_increase(template, {}, sc, by="code") == {"200": 30, "500": 1}
    assert src.counter_increase(template, {}, sc) == {"": 31}
    assert transport.params()["query"] == 'goldengoose_requests_total{job="gg"}[420s]'


@pytest.mark.parametrize("value", ['canary"} or vector(1) or x{a="', "a\\", "x\ny"])
def test_scope_values_cannot_inject_promql(value):
    src, transport = source_with(prometheus)
    with pytest.raises(ConfigError, match="'errors'.*scope parameter scope"):
        src.fetch_counts(ERRORS, {}, scope(value))
    with pytest.raises(ConfigError, match="'requests'.*extendedScopeParams"):
        src.counter_increase(TOTAL, {}, scope("canary", extended_scope_params={"x": value}),
                             name="requests")  # fmt: skip
    assert transport.requests == []


def test_selector_errors_name_the_metric_before_any_request():
    src, transport = source_with(prometheus)
    with pytest.raises(ConfigError, match="'guard'.*Problem evaluating"):
        src.counter_increase('x{a="${undefined}"}', {}, scope("canary"), name="guard")
    with pytest.raises(ConfigError, match="'cpu' has no ratio or histogram"):
        src.fetch_counts(CPU, {}, scope("canary"))
    assert transport.requests == []


@pytest.mark.parametrize("status", [400, 422])
def test_rejected_selector_is_config_error_with_query(status):
    src, _ = source_with(lambda r: (status, {"status": "error", "errorType": "bad_data",
                                             "error": "ranges only allowed for vector selectors"}))  # fmt: skip
    with pytest.raises(ConfigError) as err:
        src.fetch_counts(ERRORS, {}, scope("canary"))
    message = str(err.value)
    assert "'errors'" in message and "ranges only allowed" in message
    assert 'goldengoose_requests_total{track="canary",code=~"5.."}[420s]' in message
    assert TOKEN not in message and not err.value.transient


@pytest.mark.parametrize("status", [429, 500, 503])
def test_server_trouble_is_transient(status):
    src, _ = source_with(lambda r: (status, b"overloaded"))
    with pytest.raises(MetricsError) as err:
        fetch_counts_pair(src, LATENCY, {}, scope("baseline"), scope("canary"))
    assert err.value.transient and f"HTTP {status}" in str(err.value)


@pytest.mark.parametrize("exc", [requests.ReadTimeout, requests.ConnectionError])
def test_timeouts_are_transient_and_hide_credentials(exc):
    def boom(request):
        raise exc(f"failed with {request.headers}")

    src, _ = source_with(boom, url="http://admin:pa55word@prom.test:9090/")
    with pytest.raises(MetricsError) as err:
        src.counter_increase(TOTAL, {}, scope("canary"))
    message = str(err.value)
    assert err.value.transient and "http://prom.test:9090" in message
    assert "pa55word" not in message and TOKEN not in message


def test_answers_that_are_not_a_matrix():
    vector = {"status": "success", "data": {"resultType": "vector", "result": []}}
    src, _ = source_with(lambda r: (200, vector))
    with pytest.raises(MetricsError, match="unexpected answer for metric 'errors'"):
        src.fetch_counts(ERRORS, {}, scope("canary"))
    src, _ = source_with(lambda r: (404, b"404 page not found"))
    with pytest.raises(ConfigError, match="no /api/v1/query "):
        src.fetch_counts(ERRORS, {}, scope("canary"))


def test_non_monotone_answer_names_the_metric():
    def broken(request):
        return ok([series({"le": "0.1"}, 0, 0, 9), series({"le": "+Inf"}, 0, 0, 4)])

    src, _ = source_with(broken)
    with pytest.raises(MetricsError, match="'latency'.*not cumulative"):
        src.fetch_counts(LATENCY, {}, scope("canary"))


def test_collect_counts_and_pairs_split_the_config():
    src, _ = source_with(prometheus)
    seen: list[tuple[str, int, int]] = []
    pairs = collect_counts(src, CONFIG, scope("baseline"), scope("canary"),
                           progress=lambda m, i, n: seen.append((m.name, i, n)))  # fmt: skip
    assert [p.name for p in pairs] == ["errors", "latency"]
    assert seen == [("errors", 1, 2), ("latency", 2, 2)]
    assert pairs[0].control == RatioCounts(1, 31) and pairs[0].experiment == RatioCounts(2, 32)

    def matrix(request):  # the series metric's range query
        return ok([{"metric": {}, "values": [[BASE, "1"]]}])

    src, transport = source_with(matrix)
    series_pairs = collect_pairs(src, CONFIG, scope("baseline"), scope("canary"))
    assert [p.name for p in series_pairs] == ["cpu"]
    assert {urlsplit(r.url).path for r in transport.requests} == {"/api/v1/query_range"}
