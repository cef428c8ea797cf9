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
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import requests
from prometheus_api_client import PrometheusConnect
from urllib3.util.retry import Retry

from canary.errors import ConfigError, MetricsError
from canary.metrics.promql import build_query
from canary.metrics.scope import MetricScope, iso_instant
from canary.metrics.series import Align, MetricPair, Series, mix, to_series

if TYPE_CHECKING:
    from canary.config import MetricConfig

log = logging.getLogger(__name__)

#: Prometheus refuses a range query whose (end - start) / step exceeds 11,000.
MAX_POINTS_PER_REQUEST = 11_000
_BODY_LIMIT = 500


def redact_url(url: str) -> str:
    """The URL without user:password@ (safe for messages and logs)."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


class PrometheusMetricSource:
    """Fetches Kayenta-style metric series from one Prometheus server.

    ``headers`` carries credentials (``Authorization: Bearer ...`` or ``Basic ...``); they
    are sent with every request and never logged, repr'd or put into error messages.
    ``align`` picks how samples become values (see canary.metrics.series): ``"kayenta"``
    packs them as Kayenta does (gaps vanish), ``"grid"`` aligns them to the scope's step grid
    with NaN for gaps. ``session`` is the transport seam for tests.
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
        self.url = url.rstrip("/")
        self._safe_url = redact_url(self.url)
        self._timeout = timeout
        self._scope_label = scope_label
        self._align: Align = align
        self._max_points = max_points_per_request
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

    def fetch_pair(
        self,
        metric: MetricConfig,
        templates: Mapping[str, str] | None,
        control_scope: MetricScope,
        experiment_scope: MetricScope,
    ) -> list[MetricPair]:
        """Control and experiment series paired by label set and NaN-padded (the mixer)."""
        control = self.fetch(metric, templates, control_scope)
        experiment = self.fetch(metric, templates, experiment_scope)
        return mix(metric.name, control, experiment)

    def build(
        self, metric: MetricConfig, templates: Mapping[str, str] | None, scope: MetricScope
    ) -> str:
        """The PromQL text for ``metric`` over ``scope`` (Kayenta's dry run)."""
        kind = getattr(metric.query, "type", None)
        if kind != "prometheus":
            raise ConfigError(
                f"metric {metric.name!r} has query type {kind!r}; a Prometheus source can only "
                "run queries of type 'prometheus'"
            )
        return build_query(metric.query, templates, scope, scope_label=self._scope_label)

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
    ) -> list[dict[str, Any]]:
        """``data.result`` for ``query`` over the scope's window, chunked and stitched."""
        step = timedelta(seconds=scope.step)
        chunk_span = step * (self._max_points - 1)
        merged: dict[tuple[tuple[str, str], ...], dict[str, Any]] = {}
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
        self, query: str, start: Any, end: Any, step: int, metric_name: str
    ) -> Sequence[dict[str, Any]]:
        params = {
            "query": query,
            "start": iso_instant(start),
            "end": iso_instant(end),
            "step": str(step),
        }
        log.debug(
            "GET %s/api/v1/query_range start=%s end=%s step=%s query=%s",
            self._safe_url,
            params["start"],
            params["end"],
            step,
            query,
        )
        try:
            response = self._session.get(
                f"{self.url}/api/v1/query_range",
                params=params,
                headers=self._client.headers,
                timeout=self._timeout,
            )
        except requests.RequestException as exc:
            raise self._transport_error(exc) from None
        return self._result(response, query, metric_name)

    def _result(
        self, response: requests.Response, query: str, metric_name: str
    ) -> Sequence[dict[str, Any]]:
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
                f"{where} has no /api/v1/query_range (HTTP 404); check the URL and any path prefix"
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
            return data["result"]
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
