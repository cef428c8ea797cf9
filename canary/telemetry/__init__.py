"""Release telemetry: a look as an event, and our events as Prometheus metric updates.

``look_event`` makes a look's ``canary.release.look`` event (the shares read back, each
metric's estimate, interval and threshold); ``ReleaseTelemetry`` turns each of our events
into the metric updates the relay's ``/metrics`` applies (names: ``METRICS``). Both pure.
"""

from canary.telemetry.looks import look_event, look_metric
from canary.telemetry.updates import (
    DURATION_BUCKETS,
    METRICS,
    Inc,
    Observe,
    ReleaseTelemetry,
    Remove,
    Set,
    Update,
)

__all__ = [
    "DURATION_BUCKETS",
    "METRICS",
    "Inc",
    "Observe",
    "ReleaseTelemetry",
    "Remove",
    "Set",
    "Update",
    "look_event",
    "look_metric",
]
