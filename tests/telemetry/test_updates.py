"""canary.telemetry.ReleaseTelemetry: the one mapping from our events to metric updates."""

from __future__ import annotations

from datetime import timedelta

from canary.telemetry import METRICS, Inc, Observe, ReleaseTelemetry, Remove, Set
from canary.values.events import (
    BuildSucceeded,
    LookMetric,
    ReleaseEnded,
    ReleaseLook,
)
from canary.values.outcome import Outcome
from tests.support.events import T0, release_started

A, B = "a" * 40, "b" * 40
#: an app's first event makes its counters exist, at 0 (an alert on increase() needs that)
ZEROS = [Inc("canary_releases_total", ("shop", label), 0.0)
         for label in ("promoted", "rolled_back", "aborted", "skipped")]


def look(app: str = "shop", *, metrics: tuple[LookMetric, ...] = ()) -> ReleaseLook:
    return ReleaseLook(app=app, look=1, looks=3, primary=80, baseline=10, canary=10,
                       score=100.0, action="continue", metrics=metrics)  # fmt: skip


def test_a_release_from_start_to_end() -> None:
    t = ReleaseTelemetry()
    assert t.apply(T0, release_started("shop", A, lifetime_seconds=120)) == [
        *ZEROS,
        Set("canary_release_in_progress", ("shop",), 1.0),
        Set("canary_release_weight", ("shop", "primary"), 100.0),
        Set("canary_release_weight", ("shop", "baseline"), 0.0),
        Set("canary_release_weight", ("shop", "canary"), 0.0),
    ]
    latency = LookMetric(metric="latency", classification="Pass", estimate=0.12, lower=0.1,
                         upper=0.14, threshold=0.2)  # fmt: skip
    updates = t.apply(T0 + timedelta(seconds=30), look(metrics=(latency,)))
    assert Set("canary_release_weight", ("shop", "canary"), 10.0) in updates
    assert Set("canary_release_weight", ("shop", "primary"), 80.0) in updates
    assert [u for u in updates if u.metric.startswith("canary_metric_")] == [
        Set("canary_metric_estimate", ("shop", "latency"), 0.12),
        Set("canary_metric_lower", ("shop", "latency"), 0.1),
        Set("canary_metric_upper", ("shop", "latency"), 0.14),
        Set("canary_metric_threshold", ("shop", "latency"), 0.2),
    ]
    ended = t.apply(T0 + timedelta(seconds=95),
                    ReleaseEnded(app="shop", outcome=Outcome.ROLLED_BACK, commit=A))  # fmt: skip
    assert ended == [
        Inc("canary_releases_total", ("shop", "rolled_back")),  # the label has no dash
        Set("canary_release_in_progress", ("shop",), 0.0),
        Set("canary_release_weight", ("shop", "primary"), 100.0),
        Set("canary_release_weight", ("shop", "baseline"), 0.0),
        Set("canary_release_weight", ("shop", "canary"), 0.0),
        Observe("canary_release_duration_seconds", ("shop", "rolled_back"), 95.0),
    ]


def test_every_outcome_has_its_exact_label() -> None:
    t = ReleaseTelemetry()
    t.apply(T0, look("x"))  # the app's counters exist now
    labels = [t.apply(T0, ReleaseEnded(app="x", outcome=o))[0] for o in Outcome]
    assert labels == [Inc("canary_releases_total", ("x", label))
                      for label in ("promoted", "rolled_back", "aborted", "skipped")]  # fmt: skip


def test_a_skip_while_another_release_runs_is_only_counted() -> None:
    t = ReleaseTelemetry()
    assert t.apply(T0, release_started("shop", A))[:4] == ZEROS
    skipped = t.apply(T0, ReleaseEnded(app="shop", outcome=Outcome.SKIPPED, commit=B))
    assert skipped == [Inc("canary_releases_total", ("shop", "skipped"))]
    aborted_queued = t.apply(T0, ReleaseEnded(app="shop", outcome=Outcome.ABORTED, commit=B))
    assert aborted_queued == [Inc("canary_releases_total", ("shop", "aborted"))]
    done = t.apply(T0 + timedelta(seconds=60), ReleaseEnded(app="shop", outcome=Outcome.PROMOTED, commit=A))
    assert Observe("canary_release_duration_seconds", ("shop", "promoted"), 60.0) in done


def test_an_end_without_a_seen_start_ends_the_release_but_has_no_duration() -> None:
    """The relay started mid-release: it saw a look, then the end."""
    t = ReleaseTelemetry()
    assert Set("canary_release_in_progress", ("shop",), 1.0) in t.apply(T0, look())
    ended = t.apply(T0, ReleaseEnded(app="shop", outcome=Outcome.PROMOTED, commit=A))
    assert Set("canary_release_in_progress", ("shop",), 0.0) in ended
    assert not [u for u in ended if isinstance(u, Observe)]


def test_a_new_release_drops_the_last_ones_metric_gauges_and_unknown_numbers() -> None:
    t = ReleaseTelemetry()
    old = LookMetric(metric="old", classification="Pass", estimate=1.0, lower=0.5, upper=1.5,
                     threshold=2.0)  # fmt: skip
    t.apply(T0, look(metrics=(old,)))
    started = t.apply(T0, release_started("shop", B))
    assert [u for u in started if isinstance(u, Remove)] == [
        Remove(gauge, ("shop", "old")) for gauge in ("canary_metric_estimate", "canary_metric_lower",
                                                     "canary_metric_upper", "canary_metric_threshold")
    ]  # fmt: skip
    nodata = LookMetric(metric="new", classification="Nodata")
    assert Remove("canary_metric_estimate", ("shop", "new")) in t.apply(T0, look(metrics=(nodata,)))


def test_other_events_change_nothing_and_every_update_names_a_declared_metric() -> None:
    t = ReleaseTelemetry()
    assert t.apply(T0, BuildSucceeded(app="shop", image="i", commit=A, repo="r")) == []
    every = [*t.apply(T0, release_started("shop", A)),
             *t.apply(T0, look(metrics=(LookMetric(metric="m", classification="Pass", estimate=1.0),))),
             *t.apply(T0, ReleaseEnded(app="shop", outcome=Outcome.PROMOTED, commit=A))]  # fmt: skip
    for update in every:
        spec = METRICS[update.metric]
        assert len(update.labels) == len(spec.labels), update
        kind = {Set: "gauge", Remove: "gauge", Inc: "counter", Observe: "histogram"}[type(update)]
        assert spec.kind == kind, update
