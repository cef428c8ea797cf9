"""Our events as Prometheus metric updates: the one mapping, pure, kept by the relay.

``ReleaseTelemetry.apply`` takes one of our events (when it occurred, the typed model) and
returns the updates to make (``Set``, ``Inc``, ``Observe``, ``Remove``); an adapter applies
them to real metrics. The names, kinds, help texts and labels of every metric: ``METRICS``.

- ``canary.release.started``: the app's release is in progress; all traffic on production;
  the previous release's metric gauges are dropped.
- ``canary.release.look``: the shares the router carried, and each judged metric's
  estimate, interval ends and threshold.
- ``canary.release.<outcome>``: counted by outcome (``promoted``, ``rolled_back``,
  ``aborted``, ``skipped``). The release that started ends: no longer in progress, all
  traffic on production, its duration (start event to end event) observed. A skip never
  started (it may even come while another release of the app runs): it is only counted.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal, TypeAlias

from canary.values.events import ReleaseEnded, ReleaseEvent, ReleaseLook, ReleaseStarted
from canary.values.outcome import Outcome
from canary.values.tracks import ROUTED

__all__ = ["DURATION_BUCKETS", "METRICS", "Inc", "MetricSpec", "Observe", "ReleaseTelemetry",
           "Remove", "Set", "Update"]  # fmt: skip

IN_PROGRESS = "canary_release_in_progress"
WEIGHT = "canary_release_weight"
RELEASES = "canary_releases_total"
DURATION = "canary_release_duration_seconds"
#: per judged metric: the look event's field, and the gauge that shows it
METRIC_GAUGES = {"estimate": "canary_metric_estimate", "lower": "canary_metric_lower",
                 "upper": "canary_metric_upper", "threshold": "canary_metric_threshold"}  # fmt: skip

#: Releases take minutes: buckets from 15 s to an hour.
DURATION_BUCKETS = (15.0, 30.0, 60.0, 90.0, 120.0, 180.0, 300.0, 600.0, 900.0, 1800.0, 3600.0)


@dataclass(frozen=True)
class MetricSpec:
    """One metric the relay exports: its kind, help text and label names (in order)."""

    kind: Literal["gauge", "counter", "histogram"]
    help: str
    labels: tuple[str, ...]


#: Every metric, by its name as Prometheus shows it (a counter's without ``_total``).
METRICS: dict[str, MetricSpec] = {
    IN_PROGRESS: MetricSpec("gauge", "1 while a release of the app runs (start to end event)",
                            ("app",)),
    WEIGHT: MetricSpec("gauge", "Traffic share in percent per track, read back at each look",
                       ("app", "track")),
    RELEASES: MetricSpec("counter", "Releases ended, by outcome (promoted, rolled_back, "
                         "aborted, skipped), since the relay started", ("app", "outcome")),
    DURATION: MetricSpec("histogram", "Seconds from a release's start event to its end event",
                         ("app", "outcome")),
    **{gauge: MetricSpec("gauge", f"The last look's {field} of a judged metric (threshold: "
                         "the decision threshold, in the estimate's unit)", ("app", "metric"))
       for field, gauge in METRIC_GAUGES.items()},
}  # fmt: skip


@dataclass(frozen=True)
class Set:
    """Set a gauge's labelled series to `value`."""

    metric: str
    labels: tuple[str, ...]
    value: float


@dataclass(frozen=True)
class Inc:
    """Add `amount` (one; zero makes the series exist) to a counter's labelled series."""

    metric: str
    labels: tuple[str, ...]
    amount: float = 1.0


@dataclass(frozen=True)
class Observe:
    """Observe `value` in a histogram's labelled series."""

    metric: str
    labels: tuple[str, ...]
    value: float


@dataclass(frozen=True)
class Remove:
    """Drop a gauge's labelled series (a metric the new release does not judge)."""

    metric: str
    labels: tuple[str, ...]


Update: TypeAlias = Set | Inc | Observe | Remove


@dataclass(frozen=True)
class _Running:
    """The release of an app that started: its commit and when."""

    commit: str
    since: datetime


def _weights(app: str, shares: tuple[int, int, int]) -> list[Update]:
    """One weight gauge per track."""
    return [Set(WEIGHT, (app, track), float(share)) for track, share in zip(ROUTED, shares, strict=True)]


class ReleaseTelemetry:
    """The metric updates our events make, remembering per app what a later event needs:
    the running release (for its duration) and the metric series it set (to drop them)."""

    def __init__(self) -> None:
        self._running: dict[str, _Running] = {}
        self._judged: dict[str, set[str]] = {}
        self._known: set[str] = set()

    def apply(self, occurred: datetime, event: ReleaseEvent) -> list[Update]:
        """The updates one event makes (none for events that are not about a release).

        Args:
            occurred: When the event occurred (aware).
            event: The typed event.

        Returns:
            The updates, in order.
        """
        if isinstance(event, ReleaseStarted):
            return [*self._introduce(event.app), *self._started(occurred, event)]
        if isinstance(event, ReleaseLook):
            return [*self._introduce(event.app), *self._look(event)]
        if isinstance(event, ReleaseEnded):
            return [*self._introduce(event.app), *self._ended(occurred, event)]
        return []

    def _introduce(self, app: str) -> list[Update]:
        """An app's first event: its release counters at 0 for every outcome, so that an
        alert on their increase sees the first release end too."""
        if app in self._known:
            return []
        self._known.add(app)
        return [Inc(RELEASES, (app, outcome.label), 0.0) for outcome in Outcome]

    def _drop_judged(self, app: str) -> list[Update]:
        """Remove the metric gauges the app's previous release set."""
        names = sorted(self._judged.pop(app, set()))
        return [Remove(gauge, (app, name)) for name in names for gauge in METRIC_GAUGES.values()]

    def _started(self, occurred: datetime, event: ReleaseStarted) -> list[Update]:
        app = event.app
        self._running[app] = _Running(event.commit, occurred)
        return [*self._drop_judged(app), Set(IN_PROGRESS, (app,), 1.0), *_weights(app, (100, 0, 0))]

    def _look(self, event: ReleaseLook) -> list[Update]:
        app = event.app
        updates: list[Update] = [Set(IN_PROGRESS, (app,), 1.0),
                                 *_weights(app, (event.primary, event.baseline, event.canary))]  # fmt: skip
        judged = self._judged.setdefault(app, set())
        for m in event.metrics:
            judged.add(m.metric)
            for field, gauge in METRIC_GAUGES.items():
                value = getattr(m, field)
                labels = (app, m.metric)
                updates.append(Remove(gauge, labels) if value is None else Set(gauge, labels, value))
        return updates

    def _ended(self, occurred: datetime, event: ReleaseEnded) -> list[Update]:
        app, outcome = event.app, event.outcome
        updates: list[Update] = [Inc(RELEASES, (app, outcome.label))]
        if outcome is Outcome.SKIPPED:
            return updates
        running = self._running.get(app)
        if running is not None and event.commit is not None and running.commit != event.commit:
            return updates  # another release's end (e.g. aborted while queued): count only
        self._running.pop(app, None)
        updates += [Set(IN_PROGRESS, (app,), 0.0), *_weights(app, (100, 0, 0))]
        if running is not None:
            seconds = max(0.0, (occurred - running.since).total_seconds())
            updates.append(Observe(DURATION, (app, outcome.label), seconds))
        return updates
