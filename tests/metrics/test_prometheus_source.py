"""PrometheusMetricSource against a fake HTTP transport: requests sent, errors mapped, chunking."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pytest
import requests
from requests.adapters import BaseAdapter

from canary.config import CanaryConfig, MetricConfig
from canary.errors import ConfigError, MetricsError
from canary.metrics.collect import fetch_pair
from canary.metrics.prometheus import PrometheusMetricSource, redact_url
from canary.ports import MetricSource
from canary.values.scope import MetricScope

URL = "http://prom.test:9090"
TOKEN = "s3cr3t-t0ken"
T0 = datetime(2020, 7, 27, 19, 17, 36, 349000, tzinfo=UTC)
Handler = Callable[[requests.PreparedRequest], tuple[int, Any]]


class FakeTransport(BaseAdapter):
    def __init__(self, handler: Handler) -> None:
        super().__init__()
        self.handler = handler
        self.requests: list[requests.PreparedRequest] = []

    def send(self, request, **kwargs):  # type: ignore[override]
        self.requests.append(request)
        status, body = self.handler(request)
        response = requests.Response()
        response.status_code = status
        response._content = body if isinstance(body, bytes) else json.dumps(body).encode()
        response.url = request.url
        response.request = request
        return response

    def close(self) -> None:
        pass

    def params(self, index: int = -1) -> dict[str, str]:
        query = parse_qs(urlsplit(self.requests[index].url).query)
        return {k: v[0] for k, v in query.items()}


def source_with(
    handler: Handler, url: str = URL, **options: Any
) -> tuple[PrometheusMetricSource, FakeTransport]:
    session = requests.Session()
    src = PrometheusMetricSource(url, headers={"Authorization": f"Bearer {TOKEN}"}, session=session,
                                 **options)  # fmt: skip
    transport = FakeTransport(handler)
    session.mount(src.url, transport)  # replaces the client's adapter for this URL
    return src, transport


def ok(result: list[dict[str, Any]]) -> tuple[int, Any]:
    return 200, {"status": "success", "data": {"resultType": "matrix", "result": result}}


def metric(**query: Any) -> MetricConfig:
    config = CanaryConfig.from_kayenta({
        "metrics": [{"name": "requests", "query": {"type": "prometheus", **query},
                     "analysisConfigurations": {"canary": {}}}],
    })  # fmt: skip
    return config.metrics[0]


REQUESTS = metric(metricName="http_requests", customInlineTemplate='track="${scope}"',
                  groupByFields=["code"])  # fmt: skip
SCOPE = MetricScope(scope="canary", start=T0, end=T0 + timedelta(minutes=2), step=60)


def test_request_like_kayenta():
    src, transport = source_with(lambda r: ok([]))
    series = src.fetch(REQUESTS, {}, SCOPE)
    request = transport.requests[0]
    assert request.method == "GET"
    assert urlsplit(request.url).path == "/api/v1/query_range"
    assert transport.params() == {
        "query": 'avg(http_requests{track="canary"}) by (code)',
        "start": "2020-07-27T19:17:36.349Z",
        "end": "2020-07-27T19:19:36.349Z",
        "step": "60",
    }
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert len(series) == 1 and len(series[0].values) == 0  # the placeholder
    assert series[0].query == 'avg(http_requests{track="canary"}) by (code)'
    assert isinstance(src, MetricSource)


def test_fetch_pair_one_pair_per_label_set():
    def answer(request):
        track = "canary" if "canary" in request.url else "baseline"
        base = T0.timestamp()
        value = "2" if track == "canary" else "1"
        return ok([
            {"metric": {"code": "200"}, "values": [[base + 60 * k, value] for k in range(3)]},
            {"metric": {"code": "500"}, "values": [[base + 60 * k, "0"] for k in range(3)]},
        ])  # fmt: skip

    src, _ = source_with(answer)
    control = MetricScope(scope="baseline", start=T0, end=SCOPE.end, step=60)
    pairs = fetch_pair(src, REQUESTS, {}, control, SCOPE)
    assert [dict(p.tags) for p in pairs] == [{"code": "200"}, {"code": "500"}]
    np.testing.assert_array_equal(pairs[0].control_values, [1, 1, 1])
    np.testing.assert_array_equal(pairs[0].experiment_values, [2, 2, 2])


@pytest.mark.parametrize("status", [400, 422])
def test_rejected_query_is_config_error_with_query(status):
    src, _ = source_with(lambda r: (status, {"status": "error", "errorType": "bad_data",
                                             "error": "parse error at char 5"}))  # fmt: skip
    with pytest.raises(ConfigError) as err:
        src.fetch(REQUESTS, {}, SCOPE)
    message = str(err.value)
    assert "'requests'" in message and 'avg(http_requests{track="canary"}) by (code)' in message
    assert "parse error at char 5" in message and TOKEN not in message
    assert not err.value.transient


@pytest.mark.parametrize("status", [429, 500, 502, 503])
def test_server_trouble_is_transient(status):
    src, _ = source_with(lambda r: (status, b"overloaded"))
    with pytest.raises(MetricsError) as err:
        src.fetch(REQUESTS, {}, SCOPE)
    assert err.value.transient and f"HTTP {status}" in str(err.value)
    assert not isinstance(err.value, ConfigError)


def test_auth_failure_is_not_transient_and_hides_token():
    src, _ = source_with(lambda r: (401, b"Unauthorized"))
    with pytest.raises(MetricsError) as err:
        src.fetch(REQUESTS, {}, SCOPE)
    assert not err.value.transient and TOKEN not in str(err.value)


def test_wrong_path_is_config_error():
    src, _ = source_with(lambda r: (404, b"404 page not found"))
    with pytest.raises(ConfigError, match="path prefix"):
        src.fetch(REQUESTS, {}, SCOPE)


@pytest.mark.parametrize(
    "exc", [requests.ConnectTimeout, requests.ReadTimeout, requests.ConnectionError]
)
def test_transport_errors_are_transient_and_name_the_url(exc):
    def boom(request):
        raise exc(f"failed with headers {request.headers}")

    src, _ = source_with(boom, url="http://admin:pa55word@prom.test:9090/prefix/")
    with pytest.raises(MetricsError) as err:
        src.fetch(REQUESTS, {}, SCOPE)
    message = str(err.value)
    assert err.value.transient
    assert "http://prom.test:9090/prefix" in message
    assert "pa55word" not in message and TOKEN not in message
    assert "pa55word" not in repr(src) and TOKEN not in repr(src)


def test_unexpected_body_is_metrics_error():
    src, _ = source_with(lambda r: (200, b"<html>login</html>"))
    with pytest.raises(MetricsError, match="unexpected answer"):
        src.fetch(REQUESTS, {}, SCOPE)


def test_non_prometheus_metric_is_refused():
    config = CanaryConfig.from_kayenta(
        {"metrics": [{"name": "cpu", "query": {"type": "atlas", "q": "x"}}]}
    )
    src, transport = source_with(lambda r: ok([]))
    with pytest.raises(ConfigError, match="query type 'atlas'"):
        src.fetch(config.metrics[0], {}, SCOPE)
    assert transport.requests == []


def test_query_errors_raised_before_any_request():
    src, transport = source_with(lambda r: ok([]))
    with pytest.raises(ConfigError, match="Either a resource type"):
        src.fetch(metric(metricName="m"), {}, SCOPE)
    assert transport.requests == []


def test_chunking_splits_on_the_grid_and_stitches():
    step = 10
    scope = MetricScope(scope="s", start=T0, end=T0 + timedelta(seconds=95), step=step)

    def answer(request):
        params = {k: v[0] for k, v in parse_qs(urlsplit(request.url).query).items()}
        start = datetime.fromisoformat(params["start"]).timestamp()
        end = datetime.fromisoformat(params["end"]).timestamp()
        stamps = []
        t = start
        while t <= end + 1e-9:
            stamps.append(round(t, 3))
            t += step
        late = [ts for ts in stamps if ts >= T0.timestamp() + 55]  # appears in chunk 2 only
        result = [{"metric": {"k": "all"}, "values": [[ts, str(ts)] for ts in stamps]}]
        if late:
            result.append({"metric": {"k": "late"}, "values": [[ts, "1"] for ts in late]})
        return ok(result)

    src, transport = source_with(answer, max_points_per_request=3, align="grid")
    series = src.fetch(metric(metricName="m", customInlineTemplate="a=b"), {}, scope)
    assert len(transport.requests) == 4  # 10 points: 3 + 3 + 3 + 1
    spans = [(transport.params(i)["start"], transport.params(i)["end"]) for i in range(4)]
    assert spans[0] == ("2020-07-27T19:17:36.349Z", "2020-07-27T19:17:56.349Z")
    assert spans[1][0] == "2020-07-27T19:18:06.349Z"
    assert spans[3] == ("2020-07-27T19:19:06.349Z", "2020-07-27T19:19:11.349Z")
    everything = next(s for s in series if s.tags["k"] == "all")
    expected = [round(T0.timestamp() + step * k, 3) for k in range(10)]
    np.testing.assert_allclose(everything.values, expected)
    assert len(everything.values) == scope.points == 10
    late = next(s for s in series if s.tags["k"] == "late")
    np.testing.assert_array_equal(late.values, [np.nan] * 6 + [1] * 4)


def test_chunked_equals_single_request_in_kayenta_mode():
    base = T0.timestamp()
    full = [[round(base + k, 3), str(k)] for k in range(0, 50) if k % 7]

    def answer(request):
        params = {k: v[0] for k, v in parse_qs(urlsplit(request.url).query).items()}
        lo = datetime.fromisoformat(params["start"]).timestamp()
        hi = datetime.fromisoformat(params["end"]).timestamp()
        return ok([{"metric": {}, "values": [v for v in full if lo - 1e-6 <= v[0] <= hi + 1e-6]}])

    scope = MetricScope(start=T0, end=T0 + timedelta(seconds=49), step=1)
    q = metric(customInlineTemplate="PromQL:x")
    one, _ = source_with(answer)
    many, transport = source_with(answer, max_points_per_request=8)
    (a,), (b,) = one.fetch(q, {}, scope), many.fetch(q, {}, scope)
    assert len(transport.requests) == 7
    np.testing.assert_array_equal(a.values, b.values)
    assert (a.start, a.end, a.step) == (b.start, b.end, b.step)


def test_constructor_validation():
    for bad in ("prom:9090", "ftp://x", ""):
        with pytest.raises(ConfigError):
            PrometheusMetricSource(bad)
    with pytest.raises(ConfigError):
        PrometheusMetricSource(URL, align="nearest")  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        PrometheusMetricSource(URL, max_points_per_request=20_000)
    with pytest.raises(ConfigError):
        PrometheusMetricSource(URL, timeout=0)


def test_verify_tls_reaches_the_session():
    session = requests.Session()
    PrometheusMetricSource("https://prom.test", verify_tls=False, session=session)
    assert session.verify is False


def test_redact_url():
    assert redact_url("https://u:p@h:1/x?y=1") == "https://h:1/x?y=1"
    assert redact_url("http://h/") == "http://h/"
