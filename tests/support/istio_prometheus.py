"""A Prometheus HTTP stub serving Istio's standard sidecar metrics for a few workloads.

No Istio mesh runs on this machine, so the flow's real PrometheusMetricSource (and the
PrometheusSource block) talk to this over HTTP instead: it answers the one request the count
metrics make, an instant query of a range-vector selector (``GET /api/v1/query`` with
``query=<selector>[<N>s]`` and ``time``), with raw counter samples every second, in the
shape the sidecars export with ``reporter="destination"``:

* ``istio_requests_total`` by ``response_code`` (200 and 503),
* ``istio_request_duration_milliseconds_bucket`` by ``le`` (Istio's default buckets).

The series are canned, not scraped: each workload has a request rate, an error share and a
latency profile (``Workload``), and the counters grow linearly from ``origin``, so any
window's increase is exact and the same for every query. A test changes a workload's
behaviour at any time with ``set``. Label matchers ``=``, ``!=``, ``=~`` and ``!~`` are
honoured (regexes anchored, as in PromQL); any other query is answered 400, like a
Prometheus that rejects it. No pytest in here.
"""

from __future__ import annotations

import json
import math
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

#: Istio's default histogram bounds for request durations, in milliseconds.
ISTIO_BUCKETS = (0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000,
                 60000, 300000, 600000, 1800000, 3600000)  # fmt: skip
#: A healthy service: the cumulative share of requests at or below each bound above.
HEALTHY_LATENCY = (0.0, 0.0, 0.02, 0.1, 0.45, 0.85, 0.97, 0.995, 0.999) + (1.0,) * 10
#: Every request two buckets slower (25-50 ms becomes 100-250 ms, and so on).
SLOW_LATENCY = (0.0,) * 4 + HEALTHY_LATENCY[2:-2]

_SELECTOR = re.compile(r"^\s*(?P<name>[A-Za-z_:][A-Za-z0-9_:]*)\s*(?:\{(?P<matchers>.*)\})?"
                       r"\s*\[(?P<range>\d+)s\]\s*$")  # fmt: skip
_MATCHER = re.compile(r'\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*(?:,|$)')


@dataclass
class Workload:
    """How one workload behaves: requests per second, the share answered 503, latencies."""

    rate: float = 200.0
    errors: float = 0.002
    latency: tuple[float, ...] = HEALTHY_LATENCY


@dataclass
class IstioPrometheus:
    """The stub; ``with IstioPrometheus(namespace="shop") as prom: prom.url``."""

    namespace: str
    workloads: dict[str, Workload] = field(default_factory=dict)
    #: counters start at 0 here (an hour ago: production has history to plan with)
    origin: float = field(default_factory=lambda: time.time() - 3600)
    queries: list[str] = field(default_factory=list)
    #: called with each query before it is answered (a test reads the cluster at that moment:
    #: the flow is then in a look, with the look's traffic in force); what it raises is kept
    #: in ``hook_errors`` and the query is answered anyway
    on_query: Callable[[str], None] | None = None
    hook_errors: list[BaseException] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def set(self, workload: str, behaviour: Workload | None = None) -> None:
        """From now on `workload` behaves so (None: healthy); its past stays as it was
        in this stub's simple model, which is fine for windows that start after the change."""
        with self._lock:
            self.workloads[workload] = behaviour or Workload()

    # -- the series ----------------------------------------------------------------------
    def _series(self) -> list[tuple[dict[str, str], Workload, float]]:
        """(labels, workload, share of its requests) of every series there is."""
        found = []
        with self._lock:
            workloads = dict(self.workloads)
        for name, w in workloads.items():
            base = {"reporter": "destination", "destination_workload": name,
                    "destination_workload_namespace": self.namespace,
                    "destination_service_name": name.rsplit("-", 1)[0]}  # fmt: skip
            for code, share in (("200", 1 - w.errors), ("503", w.errors)):
                found.append(({"__name__": "istio_requests_total", **base, "response_code": code}, w, share))
            for bound, share in zip(ISTIO_BUCKETS, w.latency, strict=True):
                labels = {"__name__": "istio_request_duration_milliseconds_bucket", **base,
                          "le": f"{bound:g}"}  # fmt: skip
                found.append((labels, w, share))
            found.append(({"__name__": "istio_request_duration_milliseconds_bucket", **base,
                           "le": "+Inf"}, w, 1.0))  # fmt: skip
        return found

    def answer(self, query: str, at: float) -> list[dict[str, Any]]:
        """The matrix for `query` (a selector with a range) evaluated at `at`."""
        parsed = _SELECTOR.match(query)
        if parsed is None:
            raise ValueError(f"only <selector>[<N>s] is served here, not {query!r}")
        matchers = [("__name__", "=", parsed["name"])]
        text = parsed["matchers"] or ""
        pos = 0
        while pos < len(text.strip()):
            m = _MATCHER.match(text, pos)
            if m is None:
                raise ValueError(f"bad label matchers in {query!r}")
            matchers.append((m[1], m[2], m[3].encode().decode("unicode_escape")))
            pos = m.end()
        start = at - int(parsed["range"])
        stamps = [float(t) for t in range(math.ceil(start), math.floor(at) + 1)]
        result = []
        for labels, w, share in self._series():
            if all(_matches(labels.get(k, ""), op, v) for k, op, v in matchers):
                values = [[t, str(math.floor(max(0.0, t - self.origin) * w.rate * share))]
                          for t in stamps]  # fmt: skip
                result.append({"metric": labels, "values": values})
        return result

    # -- HTTP ----------------------------------------------------------------------------
    def start(self) -> IstioPrometheus:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def do_GET(self) -> None:  # noqa: N802 - the http.server API
                url = urlsplit(self.path)
                params = {k: v[-1] for k, v in parse_qs(url.query).items()}
                if url.path == "/-/healthy":
                    return self._send(200, "Prometheus Server is Healthy.\n", "text/plain")
                if url.path != "/api/v1/query" or "query" not in params:
                    return self._send(404, "404 page not found\n", "text/plain")
                stub.queries.append(params["query"])
                if stub.on_query is not None:
                    try:
                        stub.on_query(params["query"])
                    except Exception as exc:  # the test asserts on it; the flow gets its answer
                        stub.hook_errors.append(exc)
                try:
                    at = _instant(params.get("time"))
                    result = stub.answer(params["query"], at)
                except ValueError as exc:
                    body = {"status": "error", "errorType": "bad_data", "error": str(exc)}
                    return self._send(400, json.dumps(body))
                body = {"status": "success", "data": {"resultType": "matrix", "result": result}}
                return self._send(200, json.dumps(body))

            def _send(self, status: int, text: str, kind: str = "application/json") -> None:
                data = text.encode()
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="istio-prometheus",
                                        kwargs={"poll_interval": 0.05}, daemon=True)  # fmt: skip
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    @property
    def url(self) -> str:
        assert self._server is not None, "start() the stub first"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> IstioPrometheus:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:  # fmt: skip
        self.stop()


def _matches(value: str, op: str, want: str) -> bool:
    if op == "=":
        return value == want
    if op == "!=":
        return value != want
    hit = re.fullmatch(want, value) is not None
    return hit if op == "=~" else not hit


def _instant(text: str | None) -> float:
    """Prometheus's `time`: an RFC 3339 instant or Unix seconds (default: now)."""
    if not text:
        return time.time()
    try:
        return float(text)
    except ValueError:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
