"""``PrometheusMetricSource``: the MetricSource port over Prometheus's HTTP API.

The only module that imports ``prometheus_api_client``. Its ``PrometheusConnect`` supplies
the HTTP session (auth headers, TLS verification, no hidden retries: Prefect tasks retry
transient errors). Range queries go through that session directly because
``custom_query_range`` rounds start/end to whole seconds and hides the HTTP status behind
one exception type, while Kayenta sends ISO-8601 instants with their fraction and we must
tell a rejected query (the config's fault) from an overloaded server (worth a retry).

Requests follow Kayenta: ``GET <url>/api/v1/query_range`` with ``query``, ``start`` and
``end`` as ``Instant.toString()`` and ``step`` in whole seconds. Windows longer than
Prometheus's 11,000 points per series are split into consecutive requests on the same
evaluation grid and stitched per label set, so the result equals one big query.

Count metrics (the sequential judge) read raw counter samples instead: one instant query
``<selector>[<N>s]`` at the window's end, N reaching ``lookback`` seconds before its start
so the last sample at or before the start is in the answer; canary.metrics.counts turns
the samples into exact increases (no ``increase()`` extrapolation).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, TypedDict, cast
from urllib.parse import urlencode, urlsplit, urlunsplit

import requests
from prometheus_api_client import PrometheusConnect
from urllib3.util.retry import Retry

from canary.config import PrometheusQuery
from canary.errors import ConfigError, MetricsError
from canary.metrics.counts import histogram_counts, parse_matrix, ratio_counts, sum_increase
from canary.metrics.promql import counter_selector, graph_expr, metric_query
from canary.metrics.series import Align, MatrixItem, to_series
from canary.values.counts import CounterSeries, SideCounts
from canary.values.scope import MetricScope, epoch_millis, iso_instant
from canary.values.series import Series

if TYPE_CHECKING:
    from canary.config import MetricConfig

log = logging.getLogger(__name__)

#: Prometheus refuses a range query whose (end - start) / step exceeds 11,000.
MAX_POINTS_PER_REQUEST = 11_000
#: How far before a window's start counters are looked up: Prometheus' staleness window.
DEFAULT_LOOKBACK = 300.0
_BODY_LIMIT = 500


def redact_url(url: str) -> str:
    """The URL without user:password@ (safe for messages and logs)."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


class SourceOptions(TypedDict, total=False):
    """PrometheusMetricSource's keywords besides the connection's (url, headers, TLS,
    timeout): what the PrometheusSource block's ``source(**options)`` passes through."""

    scope_label: str
    align: Align
    max_points_per_request: int
    lookback: float
    session: requests.Session | None


class PrometheusMetricSource:
    """Fetches Kayenta-style metric series from one Prometheus server.

    ``headers`` carries credentials (``Authorization: Bearer ...`` or ``Basic ...``); they
    are sent with every request and never logged, repr'd or put into error messages.
    ``align`` picks how samples become values (see canary.metrics.series): ``"kayenta"``
    packs them as Kayenta does (gaps vanish), ``"grid"`` aligns them to the scope's step grid
    with NaN for gaps. ``lookback`` (seconds) is how far before a window's start a count
    metric's starting value is searched; a series with no sample that far back counts as
    born in the window (from 0), so it must exceed the scrape interval. ``session`` is the
    transport seam for tests.
    """

    def __init__(
        self,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        verify_tls: bool = True,
        timeout: float = 10.0,
        scope_label: str = "instance",
        align: Align = "kayenta",
        max_points_per_request: int = MAX_POINTS_PER_REQUEST,
        lookback: float = DEFAULT_LOOKBACK,
        session: requests.Session | None = None,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigError(
                f"Prometheus URL {redact_url(url)!r} must be http(s)://host[:port][/prefix]"
            )
        if align not in ("kayenta", "grid"):
            raise ConfigError(f"align must be 'kayenta' or 'grid', got {align!r}")
        if not 2 <= max_points_per_request <= MAX_POINTS_PER_REQUEST + 1:
            raise ConfigError(
                f"max_points_per_request must be 2..{MAX_POINTS_PER_REQUEST + 1}, "
                f"got {max_points_per_request}"
            )
        if timeout <= 0:
            raise ConfigError(f"timeout must be > 0 seconds, got {timeout}")
        if not (math.isfinite(lookback) and lookback > 0):
            raise ConfigError(f"lookback must be > 0 seconds (default 300), got {lookback}")
        self.url = url.rstrip("/")
        self._safe_url = redact_url(self.url)
        self._timeout = timeout
        self._scope_label = scope_label
        self._align: Align = align
        self._max_points = max_points_per_request
        self._lookback = lookback
        if session is None:
            session = requests.Session()
        session.verify = verify_tls
        self._client = PrometheusConnect(
            url=self.url,
            headers=dict(headers or {}),
            retry=Retry(total=0, redirect=0, raise_on_status=False),
            session=session,
            timeout=timeout,
        )
        self._session = session

    def __repr__(self) -> str:
        return f"PrometheusMetricSource(url={self._safe_url!r}, align={self._align!r})"

    def close(self) -> None:
        """Close the HTTP session (also on leaving a ``with`` block)."""
        self._client.close()

    def __enter__(self) -> PrometheusMetricSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the port --------------------------------------------------------------------------

    def fetch(
        self, metric: MetricConfig, templates: Mapping[str, str] | None, scope: MetricScope
    ) -> list[Series]:
        """All series of ``metric`` over ``scope`` (one empty placeholder when none)."""
        query = self.build(metric, templates, scope)
        result = self.query_range(query, scope, metric_name=metric.name)
        return to_series(result, query=query, scope=scope, align=self._align)

    def build(
        self, metric: MetricConfig, templates: Mapping[str, str] | None, scope: MetricScope
    ) -> str:
        """The PromQL text for ``metric`` over ``scope`` (Kayenta's dry run)."""
        return metric_query(metric, templates, scope, scope_label=self._scope_label)

    # -- count metrics ---------------------------------------------------------------------

    def fetch_counts(
        self, metric: MetricConfig, templates: Mapping[str, str] | None, scope: MetricScope
    ) -> SideCounts:
        """One side's counts of a ratio or histogram metric over the scope's window."""
        query, ratio, histogram = metric.query, metric.ratio_counters, metric.histogram_counters
        if not isinstance(query, PrometheusQuery) or (ratio is None and histogram is None):
            raise ConfigError(
                f"metric {metric.name!r} has no ratio or histogram counters; read it with fetch"
            )
        start, end = _window(scope)
        if ratio is not None:
            events, total = (
                self._counters(text, templates, scope, metric.name, query.resource_type)
                for text in (ratio.events, ratio.total)
            )
            return ratio_counts(events, total, start, end)
        assert histogram is not None
        buckets = self._counters(histogram.buckets, templates, scope, metric.name, query.resource_type)
        return histogram_counts(buckets, start, end, metric=metric.name)

    def counter_increase(
        self,
        selector_template: str,
        templates: Mapping[str, str] | None,
        scope: MetricScope,
        *,
        by: str | None = None,
        name: str = "request counter",
    ) -> dict[str, float]:
        """Increase over the scope's window of the counters a selector template matches,
        summed per value of label `by` (key "" without it); empty if nothing matched.
        `name` is what error messages call the selector."""
        series = self._counters(selector_template, templates, scope, name, None)
        return sum_increase(series, *_window(scope), by=by)

    def selector(
        self,
        template: str,
        templates: Mapping[str, str] | None,
        scope: MetricScope,
        *,
        name: str = "<selector>",
        resource_type: str | None = None,
    ) -> str:
        """A counter selector for ``scope`` (canary.metrics.promql.counter_selector)."""
        return counter_selector(template, templates, scope, name=name, resource_type=resource_type)

    def _counters(
        self,
        template: str,
        templates: Mapping[str, str] | None,
        scope: MetricScope,
        name: str,
        resource_type: str | None,
    ) -> list[CounterSeries]:
        selector = self.selector(template, templates, scope, name=name, resource_type=resource_type)
        span_ms = epoch_millis(scope.end) - epoch_millis(scope.start)
        query = f"{selector}[{math.ceil(span_ms / 1000 + self._lookback)}s]"
        params = {"query": query, "time": iso_instant(scope.end)}
        result = self._get("/api/v1/query", params, query, name)
        return parse_matrix(result, metric=name)

    def graph_link(self, metric: MetricConfig, templates: Mapping[str, str] | None,
                   control_scope: MetricScope, experiment_scope: MetricScope) -> str:
        """A link to Prometheus's graph page showing the metric for both sides over the
        experiment's window (count metrics as a 1-minute rate, or p99 for histograms)."""
        exprs = [graph_expr(metric, templates, scope, scope_label=self._scope_label)
                 for scope in (control_scope, experiment_scope)]  # fmt: skip
        seconds = max(60, math.ceil((experiment_scope.end - experiment_scope.start).total_seconds()))
        end = experiment_scope.end.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
        params: dict[str, str] = {}
        for i, expr in enumerate(exprs):
            params |= {f"g{i}.expr": expr, f"g{i}.tab": "0", f"g{i}.range_input": f"{seconds}s",
                       f"g{i}.end_input": end}  # fmt: skip
        return f"{self._safe_url}/graph?{urlencode(params)}"

    def check(self) -> None:
        """Raise a MetricsError unless the server answers its health endpoint."""
        try:
            healthy = self._client.check_prometheus_connection()
        except requests.RequestException as exc:
            raise self._transport_error(exc) from None
        if not healthy:
            raise MetricsError(f"Prometheus at {self._safe_url} is not healthy", transient=True)

    # -- HTTP ------------------------------------------------------------------------------

    def query_range(
        self, query: str, scope: MetricScope, *, metric_name: str = "<query>"
    ) -> list[MatrixItem]:
        """``data.result`` for ``query`` over the scope's window, chunked and stitched.

        Args:
            query: The PromQL text.
            scope: The window and step.
            metric_name: What error messages call the query.

        Returns:
            One item per label set, its samples of every chunk in order.
        """
        step = timedelta(seconds=scope.step)
        chunk_span = step * (self._max_points - 1)
        merged: dict[tuple[tuple[str, str], ...], MatrixItem] = {}
        chunk_start = scope.start
        while chunk_start <= scope.end:
            chunk_end = min(scope.end, chunk_start + chunk_span)
            for item in self._get_range(query, chunk_start, chunk_end, scope.step, metric_name):
                labels = item.get("metric") or {}
                key = tuple(sorted(labels.items()))
                if key in merged:
                    merged[key]["values"].extend(item.get("values") or [])
                else:
                    merged[key] = {"metric": labels, "values": list(item.get("values") or [])}
            chunk_start = chunk_start + step * self._max_points
        return list(merged.values())

    def _get_range(
        self, query: str, start: datetime, end: datetime, step: int, metric_name: str
    ) -> Sequence[MatrixItem]:
        params = {
            "query": query,
            "start": iso_instant(start),
            "end": iso_instant(end),
            "step": str(step),
        }
        return self._get("/api/v1/query_range", params, query, metric_name)

    def _get(
        self, path: str, params: Mapping[str, str], query: str, metric_name: str
    ) -> Sequence[MatrixItem]:
        """GET ``path`` and return the ``matrix`` result, errors mapped (see _result)."""
        log.debug("GET %s%s %s", self._safe_url, path, params)
        try:
            response = self._session.get(
                f"{self.url}{path}",
                params=params,
                headers=self._client.headers,
                timeout=self._timeout,
            )
        except requests.RequestException as exc:
            raise self._transport_error(exc) from None
        return self._result(response, query, metric_name, path)

    def _result(
        self,
        response: requests.Response,
        query: str,
        metric_name: str,
        path: str = "/api/v1/query_range",
    ) -> Sequence[MatrixItem]:
        status = response.status_code
        detail = _error_detail(response)
        where = f"Prometheus at {self._safe_url}"
        if status in (400, 422):
            raise ConfigError(
                f"{where} rejected the query of metric {metric_name!r} (HTTP {status}: {detail}). "
                f"Query: {query}"
            )
        if status == 429 or status >= 500:
            raise MetricsError(
                f"{where} answered HTTP {status} for metric {metric_name!r}: {detail}",
                transient=True,
            )
        if status in (401, 403):
            raise MetricsError(
                f"{where} refused the credentials (HTTP {status}); check the token or "
                "username/password configured for it"
            )
        if status == 404:
            raise ConfigError(
                f"{where} has no {path} (HTTP 404); check the URL and any path prefix"
            )
        if status != 200:
            raise MetricsError(
                f"{where} answered HTTP {status} for metric {metric_name!r}: {detail}"
            )
        try:
            body = response.json()
            data = body["data"]
            if body.get("status") != "success" or data.get("resultType") != "matrix":
                raise ValueError
            return cast("Sequence[MatrixItem]", data["result"])  # decoded JSON, checked by the readers
        except (ValueError, KeyError, TypeError, AttributeError):
            raise MetricsError(
                f"{where} sent an unexpected answer for metric {metric_name!r}: "
                f"{response.text[:_BODY_LIMIT]!r}"
            ) from None

    def _transport_error(self, exc: requests.RequestException) -> MetricsError | ConfigError:
        name = type(exc).__name__
        if isinstance(exc, requests.exceptions.SSLError):
            return MetricsError(
                f"TLS with Prometheus at {self._safe_url} failed ({name}); check the "
                "certificate or verify_tls"
            )
        if isinstance(exc, requests.Timeout | requests.ConnectionError):
            return MetricsError(
                f"Prometheus at {self._safe_url} is unreachable ({name}, timeout "
                f"{self._timeout:g}s); the call may be retried",
                transient=True,
            )
        return ConfigError(f"cannot call Prometheus at {self._safe_url} ({name})")


def _error_detail(response: requests.Response) -> str:
    try:
        body = response.json()
        text = f"{body.get('errorType', 'error')}: {body.get('error', '')}"
    except (ValueError, AttributeError):
        text = response.text.strip() or response.reason or ""
    return text[:_BODY_LIMIT]


def _window(scope: MetricScope) -> tuple[float, float]:
    """The scope's window in seconds, truncated to milliseconds as Prometheus reads it."""
    return epoch_millis(scope.start) / 1000, epoch_millis(scope.end) / 1000
