"""The relay's ``/metrics``: release telemetry from Prefect's event stream, for Prometheus.

An adapter only: ``store.event_stream.EventStream`` brings our events as they happen,
``canary.telemetry.ReleaseTelemetry`` says what each one changes, and this module applies
that to ``prometheus_client`` metrics in the relay's own registry and serves them. The
stream runs as a background task of the relay: when Prefect is down it reconnects with a
backoff (1 s doubling to 30 s), logs one line per failure, and the webhook path never
waits for it. ``canary_telemetry_stream_up`` says whether the stream is connected.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
)
from prometheus_client.exposition import generate_latest
from starlette.requests import Request
from starlette.responses import Response

from canary.telemetry import DURATION_BUCKETS, METRICS, Inc, Observe, ReleaseTelemetry, Remove, Set
from canary.telemetry import Update as MetricUpdate
from store.event_stream import EventStream

log = logging.getLogger("webhook.telemetry")

STREAM_UP = "canary_telemetry_stream_up"
FIRST_BACKOFF_S, MAX_BACKOFF_S = 1.0, 30.0


class Exporter:
    """The release metrics in one registry, updated from our events."""

    def __init__(self) -> None:
        disable_created_metrics()  # no `_created` series: they only double what is exported
        self.registry = CollectorRegistry(auto_describe=True)
        self.telemetry = ReleaseTelemetry()
        self.metrics: dict[str, Gauge | Counter | Histogram] = {}
        for name, spec in METRICS.items():
            if spec.kind == "gauge":
                self.metrics[name] = Gauge(name, spec.help, spec.labels, registry=self.registry)
            elif spec.kind == "counter":
                self.metrics[name] = Counter(name, spec.help, spec.labels, registry=self.registry)
            else:
                self.metrics[name] = Histogram(name, spec.help, spec.labels,
                                               buckets=DURATION_BUCKETS, registry=self.registry)  # fmt: skip
        self.up = Gauge(STREAM_UP, "1 while the relay follows Prefect's event stream",
                        registry=self.registry)  # fmt: skip

    def apply(self, update: MetricUpdate) -> None:
        """Make one update on its metric."""
        metric = self.metrics[update.metric]
        if isinstance(update, Set) and isinstance(metric, Gauge):
            metric.labels(*update.labels).set(update.value)
        elif isinstance(update, Inc) and isinstance(metric, Counter):
            metric.labels(*update.labels).inc(update.amount)
        elif isinstance(update, Observe) and isinstance(metric, Histogram):
            metric.labels(*update.labels).observe(update.value)
        elif isinstance(update, Remove):
            with contextlib.suppress(KeyError):
                metric.remove(*update.labels)

    def exposition(self) -> bytes:
        """The metrics in Prometheus' text format."""
        return generate_latest(self.registry)

    async def follow(self, stream: EventStream) -> None:
        """Follow the stream for ever: apply each event, reconnect with a backoff."""
        delay = FIRST_BACKOFF_S

        def connected() -> None:
            nonlocal delay
            self.up.set(1)
            delay = FIRST_BACKOFF_S
            log.info("following Prefect's event stream for release metrics")

        while True:
            try:
                async for stored in stream.events(on_connect=connected):
                    for update in self.telemetry.apply(stored.occurred, stored.event):
                        self.apply(update)
                why = "the event stream ended"
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Prefect down, a dropped socket: reconnect later
                words = str(exc)[:200]  # a message with a URL in it might carry credentials
                why = type(exc).__name__ + (f": {words}" if words and "://" not in words else "")
            self.up.set(0)
            log.warning("release metrics: %s; reconnecting in %.0f s", why, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_BACKOFF_S)

    async def metrics_endpoint(self, request: Request) -> Response:
        """GET /metrics."""
        return Response(self.exposition(), media_type=CONTENT_TYPE_LATEST)


@asynccontextmanager
async def following(exporter: Exporter, stream: EventStream | None) -> AsyncIterator[None]:
    """The exporter follows `stream` in a background task while the relay runs (None: it
    serves what it has and follows nothing)."""
    if stream is None:
        yield
        return
    task = asyncio.create_task(exporter.follow(stream), name="release-metrics")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
