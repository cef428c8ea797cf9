"""The first look waits until both tracks' requests are visible in the metric store.

A new target is scraped only after Prometheus' discovery hands it over (up to ~5 s), and
Istio's request series exist only after a track's first request. Without the wait a short
first window judged a canary that had served requests as "received 0 requests".
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from canary.config import CanaryConfig
from canary.config.release import Scopes
from canary.errors import ConfigError, MetricsError
from canary.metrics.collect import unseen_tracks
from canary.values.scope import scope_pair
from tasks.analysis import wait_for_requests

ROOT = Path(__file__).resolve().parents[2]
CONFIG = CanaryConfig.load(ROOT / "deployments" / "canary-configs" / "goldengoose.yaml")


class Source:
    """Answers counter_increase from a script of answers, one per poll (the last repeats)."""

    def __init__(self, *answers: dict[str, float] | Exception) -> None:
        self.answers, self.calls, self.polls = list(answers), 0, 0

    def counter_increase(self, selector: str, templates: Any, scope: Any, *, by: str | None = None,
                         name: str = "") -> dict[str, float]:  # fmt: skip
        if scope.scope == "baseline":  # each poll asks the control side first
            self.polls += 1
        answer = self.answers[min(self.polls, len(self.answers)) - 1]
        self.calls += 1
        if isinstance(answer, Exception):
            raise answer
        return {"": answer[scope.scope]} if scope.scope in answer else {}


def _wait(source: Source, timeout: float = 5.0) -> float:
    return wait_for_requests.fn(source, CONFIG, Scopes(), "gg", datetime.now(UTC), timeout, every=0.01)


def test_unseen_tracks_names_the_side_without_requests() -> None:
    now = datetime.now(UTC)
    control, experiment = scope_pair(baseline="baseline", canary="canary", start=now, end=now, step=1)
    assert unseen_tracks(Source({"baseline": 40.0}), CONFIG, control, experiment) == ["canary"]
    assert unseen_tracks(Source({"baseline": 40.0, "canary": 0.0}), CONFIG, control, experiment) == [
        "canary"
    ]
    assert unseen_tracks(Source({"baseline": 4.0, "canary": 1.0}), CONFIG, control, experiment) == []


def test_unseen_tracks_is_none_without_a_request_counter() -> None:
    kayenta = CanaryConfig.load(ROOT / "deployments" / "canary-configs" / "goldengoose-kayenta.yaml")
    # series metrics only; without guards.requests nothing counts each track's requests
    plain = kayenta.model_copy(update={"guards": kayenta.guards.model_copy(update={"requests": None})})
    now = datetime.now(UTC)
    control, experiment = scope_pair(baseline="baseline", canary="canary", start=now, end=now, step=1)
    source = Source({})
    assert unseen_tracks(source, plain, control, experiment) is None
    assert wait_for_requests.fn(source, plain, Scopes(), "gg", now, 0.1, every=0.01) == 0.0
    assert source.calls == 0  # nothing to ask: only readiness guards a plain Kayenta config


def test_waits_until_the_canary_is_scraped() -> None:
    source = Source({"baseline": 30.0}, {"baseline": 60.0}, {"baseline": 90.0, "canary": 20.0})
    waited = _wait(source)
    assert (source.polls, source.calls) == (3, 6)  # the third poll saw both sides
    assert waited >= 0.02


def test_transient_errors_are_waited_through() -> None:
    source = Source(MetricsError("connection refused", transient=True),
                    {"baseline": 3.0, "canary": 2.0})  # fmt: skip
    _wait(source)
    assert (source.polls, source.calls) == (2, 3)  # the failed poll asked one side


def test_a_config_error_is_not_waited_on() -> None:
    source = Source(ConfigError("metric 'requests': the counter selector is empty"))
    with pytest.raises(ConfigError, match="selector is empty"):
        _wait(source)
    assert source.calls == 1


def test_a_track_never_seen_fails_closed_with_the_reason() -> None:
    source = Source({"baseline": 30.0})
    with pytest.raises(MetricsError) as caught:
        _wait(source, timeout=0.1)
    text = str(caught.value)
    assert "no request of canary of gg within 0.1 s" in text
    assert 'goldengoose_requests_total{track="${scope}"}' in text
    assert "never judged before its requests are visible" in text
    assert not caught.value.transient  # not retried into a longer blind wait


def test_timeout_names_the_last_transient_error() -> None:
    source = Source(MetricsError("Prometheus at 127.0.0.1:9 refused the connection", transient=True))
    with pytest.raises(MetricsError, match=r"baseline and canary .*last error: Prometheus at 127"):
        _wait(source, timeout=0.05)


def test_a_track_that_stops_serving_ends_the_wait_at_once() -> None:
    """A canary killed during the wait: the first look comes now, and its readiness guard
    rolls back naming the dead process, instead of a 120 s wait for requests that never come."""
    source = Source({"baseline": 30.0})
    reasons = iter([None, None, "the canary process (pid 4242) is not running"])
    began = datetime.now(UTC)
    waited = wait_for_requests.fn(source, CONFIG, Scopes(), "gg", began, 60.0, every=0.01,
                                  stop=lambda: next(reasons))  # fmt: skip
    assert source.polls == 3 and waited < 5.0
